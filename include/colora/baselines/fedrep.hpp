// fedrep (docs/baselines.md): W_i = W_0 + H_i A with a shared representation
// A (r x p, orthonormal rows) and a personal head H_i (q x r). With q = 1
// this is FedRep (Collins et al. 2021) exactly; for a linear layer it is
// FedSA-LoRA (shared A, personal B). It is the alternating-minimization
// kernel (regression/altmin.hpp) with B = I_q fixed and the q x r head as
// the "core": S_i = H_i.
//
//   head step (per task, parallel): altmin::fit_cores with B = I_q:
//       H_i = argmin w_i L_i(H A) + lambda ||H||_F^2.
//   representation step: altmin::a_step on min_G sum_i w_i L_i(H_i G^T),
//       G = A^T (p x r), over the round's participants: fedrep = exact or cg
//       (options.a_step, cg as inexact as the solver's), fedrep-gd = one
//       gradient step of size options.gd_step / L (FedRep / AltGDmin). Then
//       altmin::regauge_a: G = Q R, A <- Q^T, H_i <- H_i R^T.
//
// One round follows FedRep: draw the participants (all when participation =
// 1); each participant refits its head on the current representation; the
// representation step uses those fresh heads; re-gauge; the participants
// refit their heads on the new representation (this last fit changes only
// the round's history record: a participant drawn again is refit on the same
// representation at the start of its next round, so A's trajectory is
// FedRep's). With full participation the start-of-round fit is the previous
// round's end-of-round fit and is skipped. Non-participants keep their
// (re-gauged) heads; after the last round every task fits its head to the
// final A (FedRep's personalisation step) and the last history record is
// recomputed for that state. The relative-objective stop applies only with
// full participation (a partial round may leave the objective unchanged
// without convergence); with participation < 1 the run uses max_iterations.
//
// Participants of round t: ceil(participation k) tasks drawn without
// replacement by a partial Fisher-Yates shuffle from
// Rng(seed, 0xFED5E1EC7).substream(t) - the same for any thread count.
#pragma once

#include <numeric>

#include "colora/baselines/estimate.hpp"

namespace colora {

enum class FedRepVariant {
  AltMin,  ///< exact head LS + exact A-step (options.a_step exact, or cg to tolerance)
  AltGD    ///< exact head LS + one gradient step on A (FedRep, AltGDmin)
};

template <>
struct EnumNames<FedRepVariant> {
  static constexpr const char* what = "fedrep variant";
  static constexpr EnumName<FedRepVariant> table[] = {{FedRepVariant::AltMin, "altmin"},
                                                      {FedRepVariant::AltGD, "altgd"}};
};
inline const char* to_string(FedRepVariant v) noexcept { return enum_name(v); }

namespace detail {

/// The participants of round `round`: flags, ceil(fraction k) of them set.
inline std::vector<char> participants(Index k, double fraction, std::uint64_t seed, std::uint64_t round) {
  std::vector<char> on(size_t(k), 0);
  Index m = Index(std::ceil(fraction * double(k) - 1e-9));
  m = std::max<Index>(1, std::min(m, k));
  if (m == k) {
    std::fill(on.begin(), on.end(), char(1));
    return on;
  }
  std::vector<Index> idx(static_cast<size_t>(k));
  std::iota(idx.begin(), idx.end(), Index(0));
  Rng rng = Rng(seed, 0xFED5E1EC7ULL).substream(round);
  for (Index j = 0; j < m; ++j) {
    const Index s = j + Index(rng.below(std::uint64_t(k - j)));
    std::swap(idx[size_t(j)], idx[size_t(s)]);
    on[size_t(idx[size_t(j)])] = 1;
  }
  return on;
}

}  // namespace detail

/// fedrep / fedrep-gd: shared A, personal heads H_i. (M1) and (M2).
template <class Problem>
BaselineResult<typename Problem::Scalar> fit_fedrep(const Problem& pb, const BaselineOptions& o,
                                                    FedRepVariant variant = FedRepVariant::AltMin) {
  using Scalar = typename Problem::Scalar;
  using Mat = Matrix<Scalar>;
  const char* where = "colora::fit_fedrep";
  pb.validate(where);
  o.validate();
  // H_i is a free q x r head, so only r <= p is needed (FedRep has q = 1 < r).
  detail::require(o.rank >= 1 && o.rank <= pb.input_dim(), where, "rank r = ", o.rank,
                  " must be in [1, p = ", pb.input_dim(), "]");
  const auto t0 = std::chrono::steady_clock::now();
  const Index k = pb.num_tasks(), q = pb.output_dim(), r = o.rank;
  const measurement_model_t<Problem> model(pb, o.num_threads);
  const auto w = altmin::task_weights(model, o.weighting);
  const std::vector<Scalar> ridge = altmin::core_ridges(w, o.lambda);
  altmin::AStepControl control = static_cast<const SolverOptions&>(o).a_step_control();
  if (variant == FedRepVariant::AltGD) control.solver = AStepSolver::Gd;

  BaselineResult<Scalar> res;
  res.method = variant == FedRepVariant::AltMin ? "fedrep" : "fedrep-gd";
  for (Index i = 0; i < k; ++i)
    if (pb.samples(i) < r && o.lambda == 0.0)
      res.warnings.push_back(detail::concat("task ", i, ": n_i = ", pb.samples(i), " < r = ", r,
                                            ": its head is underdetermined; the minimum-norm head is used"));

  // The solver's starting A (spectral or random, the same draw); B is I_q.
  Mat A, unused;
  altmin::initialize(model, o.init, r, o.seed, A, unused, /*learn_b=*/false);
  const Mat I = Mat::Identity(q, q);
  std::vector<Mat> H(static_cast<size_t>(k), Mat::Zero(q, r));
  std::vector<char> fresh(static_cast<size_t>(k), 0);  // head fitted to the current A

  auto heads = [&](const std::vector<char>* only) {
    const bool ok = altmin::fit_cores(model, A, I, ridge, CoreKind::Full, H, only);
    for (Index i = 0; i < k; ++i)
      if (!only || (*only)[size_t(i)]) fresh[size_t(i)] = 1;
    return ok && std::all_of(H.begin(), H.end(), [](const Mat& h) { return h.allFinite(); });
  };
  auto estimate = [&] {
    MultiTaskEstimate<Scalar> e;
    e.U = H;
    e.V.assign(1, A.transpose());  // shared by every task
    e.A = A;
    e.W0 = pb.W0;
    e.shared = {{"A", A}};
    e.personal = {{"H", H}};
    e.trainable_parameters = A.size() + k * q * r;
    return e;
  };
  auto record = [&](int it) {
    const double f = altmin::objective(model, A, I, H, w, o.lambda);
    return detail::record_estimate(pb, estimate(), f, it, detail::seconds_since(t0), o);
  };

  bool ok = heads(nullptr) && A.allFinite();
  res.history.push_back(record(0));
  IterationRecord rec = res.history.back();
  if (!ok || !std::isfinite(rec.objective)) {
    res.status = Status::NumericalIssue;
    res.stop_reason = ok ? StopReason::NonFiniteValue : StopReason::SingularSystem;
    res.estimate = estimate();
    return res;
  }
  res.status = Status::MaxIterations;
  res.stop_reason = StopReason::MaxIterations;
  if (o.callback && !o.callback(rec)) {
    res.status = Status::Success;
    res.stop_reason = StopReason::CallbackRequested;
  }
  const double floor_eps = 16.0 * double(Eigen::NumTraits<Scalar>::epsilon());
  const double f_scale = altmin::objective(model, A, I, std::vector<Mat>(size_t(k), Mat::Zero(q, r)), w, 0.0);
  double f_prev = rec.objective;
  const bool partial = o.participation < 1.0;
  for (int it = 1; it <= o.max_iterations && res.stop_reason != StopReason::CallbackRequested; ++it) {
    const Mat A_good = A;
    const std::vector<Mat> H_good = H;
    auto fail = [&](StopReason why) {
      A = A_good;
      H = H_good;
      res.status = Status::NumericalIssue;
      res.stop_reason = why;
    };
    const std::vector<char> on = detail::participants(k, o.participation, o.seed, std::uint64_t(it));
    std::vector<Scalar> w_on(static_cast<size_t>(k));
    std::vector<char> stale(static_cast<size_t>(k), 0);
    bool any_stale = false;
    for (Index i = 0; i < k; ++i) {
      w_on[size_t(i)] = on[size_t(i)] ? w[size_t(i)] : Scalar(0);
      stale[size_t(i)] = on[size_t(i)] && !fresh[size_t(i)];
      any_stale = any_stale || stale[size_t(i)];
    }
    // The participants' heads on the current representation, then the
    // representation step with those heads.
    if (any_stale && !heads(&stale)) {
      fail(StopReason::SingularSystem);
      break;
    }
    Mat G = A.transpose();
    const AStepStats ast = altmin::a_step(model, I, H, w_on, control, G);
    if (!ast.ok) {
      fail(StopReason::SingularSystem);
      break;
    }
    altmin::regauge_a(G, CoreKind::Full, A, H);
    std::fill(fresh.begin(), fresh.end(), char(0));
    if (!heads(&on)) {
      fail(StopReason::SingularSystem);
      break;
    }
    rec = record(it);
    rec.a_step_products = ast.products;
    if (!std::isfinite(rec.objective)) {
      fail(StopReason::NonFiniteValue);
      break;
    }
    res.history.push_back(rec);
    res.iterations = it;
    if (o.callback && !o.callback(rec)) {
      res.status = Status::Success;
      res.stop_reason = StopReason::CallbackRequested;
      break;
    }
    const double f = rec.objective;
    // With partial participation a round can leave the objective unchanged
    // (e.g. the same single task drawn twice) without convergence: only
    // max_iterations or the callback stop then.
    if (!partial && (std::abs(f_prev - f) <= o.tolerance * std::abs(f_prev) || f <= f_scale * floor_eps * floor_eps)) {
      res.status = Status::Success;
      res.stop_reason = StopReason::ToleranceReached;
      break;
    }
    f_prev = f;
  }
  if (partial && res.status != Status::NumericalIssue) {
    const std::vector<Mat> H_good = H;
    if (heads(nullptr)) {
      IterationRecord last = record(res.iterations);
      last.a_step_products = res.history.back().a_step_products;
      res.history.back() = last;
    } else {
      H = H_good;
      res.status = Status::NumericalIssue;
      res.stop_reason = StopReason::SingularSystem;
    }
  }
  res.estimate = estimate();
  return res;
}

}  // namespace colora
