// fedrep (spec section 7): W_i = W_0 + H_i A with a shared representation
// A (r x p, orthonormal rows) and a personal head H_i (q x r). With q = 1
// this is FedRep (Collins et al. 2021) exactly; for a linear layer it is
// FedSA-LoRA (shared A, personal B). It is CoLoRA with B = I_q and a q x r
// "core" H_i, which is how the pieces below reuse the solver's:
//
//   head step (per task, parallel): the single-task B-step of the solver with
//       S = I: H_i = argmin w_i L_i(H A) + lambda ||H||_F^2 (r x r solve (M1),
//       qr x qr (M2)).
//   A-step (shared): min_G sum_i w_i L_i(H_i G^T), G = A^T (p x r), by the
//       solver's A-step solvers (on fedrep's own operator, below): AltMin = exact (dense) or cg (options.a_step; cg as inexact as the solver's, cg_reduction),
//       AltGD = one gradient step of size options.gd_step / L (FedRep /
//       AltGDmin). Then thin QR G = Q R, A <- Q^T, H_i <- H_i R^T.
//
// One round: draw the participating tasks (all when participation = 1),
// A-step over the participants with their current heads, re-gauge, new heads
// for the participants. With participation < 1 non-participants keep their
// (re-gauged) heads; after the last round every task fits its head to the
// final A (FedRep's personalisation step) and the last history record is
// recomputed for that state. The relative-objective stop applies only with
// full participation (a partial round may leave the objective unchanged
// without convergence); with participation < 1 the run uses max_iterations.
//
// Participants of round t: ceil(participation k) tasks drawn without
// replacement by a partial Fisher-Yates shuffle from
// Rng(seed, 0xFED5E1EC7).substream(t) — the same for any thread count.
#pragma once

#include <numeric>

#include "colora/baselines/estimate.hpp"

namespace colora {

enum class FedRepVariant {
  AltMin,  ///< exact head LS + exact A-step (options.a_step exact, or cg to tolerance)
  AltGD    ///< exact head LS + one gradient step on A (FedRep, AltGDmin)
};

inline const char* to_string(FedRepVariant v) noexcept { return v == FedRepVariant::AltMin ? "altmin" : "altgd"; }

namespace detail {

/// (M1) the A-step quadratic of fedrep: H(G) = sum_i w_i X_i^T X_i G (H_i^T H_i),
/// rhs = sum_i w_i X_i^T R_i H_i; tasks with w_i = 0 are skipped. The same
/// interface as RegressionModel::ASystem (see a_step.hpp).
template <class Scalar>
class HeadASystem {
 public:
  using Mat = Matrix<Scalar>;
  HeadASystem(const RegressionModel<Scalar>& m, const std::vector<Mat>& H, const std::vector<Scalar>& w,
              const std::vector<Vector<Scalar>>& colsq, int threads)
      : m_(m), w_(w), threads_(threads) {
    const Index k = m.tasks(), p = m.input_dim(), r = H.front().cols();
    C_.assign(size_t(k), Mat());
    C_bar_ = Mat::Zero(r, r);
    d_ = Vector<Scalar>::Zero(p);
    Scalar n_total = 0;
    for (Index i = 0; i < k; ++i) {
      if (w[size_t(i)] == Scalar(0)) continue;
      C_[size_t(i)] = w[size_t(i)] * (H[size_t(i)].transpose() * H[size_t(i)]);
      C_bar_ += Scalar(m.samples(i)) * C_[size_t(i)];
      d_ += colsq[size_t(i)];
      n_total += Scalar(m.samples(i));
    }
    if (n_total > 0) d_ /= n_total;
    rhs_ = ordered_sum(k, threads_, Mat(Mat::Zero(p, r)), [&](Index i, Mat& acc) {
      if (w[size_t(i)] == Scalar(0)) return;
      acc.noalias() += m.X(i).transpose() * ((m.target(i) * H[size_t(i)]) * w[size_t(i)]);
    });
  }
  const Mat& rhs() const { return rhs_; }
  Mat apply(const Mat& G) const {
    return ordered_sum(m_.tasks(), threads_, Mat(Mat::Zero(G.rows(), G.cols())), [&](Index i, Mat& acc) {
      if (w_[size_t(i)] == Scalar(0)) return;
      const Mat XG = m_.X(i) * G;
      acc.noalias() += m_.X(i).transpose() * (XG * C_[size_t(i)]);
    });
  }
  const Mat& c_bar() const { return C_bar_; }
  const Vector<Scalar>& d() const { return d_; }
  Mat dense_gram() const {
    const Index k = m_.tasks(), p = m_.input_dim(), r = C_bar_.rows();
    const auto& grams = m_.input_grams();
    Mat Hd = Mat::Zero(p * r, p * r);
    for (Index a = 0; a < r; ++a)
      for (Index b = a; b < r; ++b) {
        Mat acc = Mat::Zero(p, p);
        for (Index i = 0; i < k; ++i)
          if (w_[size_t(i)] != Scalar(0)) acc += C_[size_t(i)](a, b) * grams[size_t(i)];
        Hd.block(a * p, b * p, p, p) = acc;
        if (a != b) Hd.block(b * p, a * p, p, p) = acc;
      }
    return Hd;
  }

 private:
  const RegressionModel<Scalar>& m_;
  const std::vector<Scalar>& w_;
  int threads_;
  std::vector<Mat> C_;
  Mat C_bar_, rhs_;
  Vector<Scalar> d_;
};

template <class Scalar>
HeadASystem<Scalar> head_a_system(const RegressionModel<Scalar>& m, const RegressionProblem<Scalar>&,
                                  const std::vector<Matrix<Scalar>>& H,
                                  const std::vector<Scalar>& w, const std::vector<Vector<Scalar>>& colsq,
                                  int threads) {
  return HeadASystem<Scalar>(m, H, w, colsq, threads);
}

/// (M2) the A-step quadratic of fedrep with per-measurement features
/// vec(M_ij^T H_i) (p r), as in SensingModel::ASystem (whose B must be q x r).
template <class Scalar>
class HeadASystemSensing {
 public:
  using Mat = Matrix<Scalar>;
  using Vec = Vector<Scalar>;
  HeadASystemSensing(const SensingModel<Scalar>& m, const SensingProblem<Scalar>& pb, const std::vector<Mat>& H,
                     const std::vector<Scalar>& w, int threads)
      : k_(m.tasks()), w_(w), threads_(threads) {
    const Index p = m.input_dim(), r = H.front().cols();
    features_.assign(size_t(k_), Mat());
    parallel_for_tasks(k_, threads_, [&](Index i) {
      if (w[size_t(i)] == Scalar(0)) return;
      Mat F(m.samples(i), p * r);
      for (Index j = 0; j < m.samples(i); ++j) {
        const Mat T = m.measurement(i, j).transpose() * H[size_t(i)];  // p x r
        F.row(j) = Eigen::Map<const Vec>(T.data(), p * r).transpose();
      }
      features_[size_t(i)] = std::move(F);
    });
    C_bar_ = Mat::Zero(r, r);
    for (Index i = 0; i < k_; ++i)
      C_bar_ += w[size_t(i)] * Scalar(m.samples(i)) * (H[size_t(i)].transpose() * H[size_t(i)]);
    const Vec rv = ordered_sum(k_, threads_, Vec(Vec::Zero(p * r)), [&](Index i, Vec& acc) {
      if (w[size_t(i)] == Scalar(0)) return;
      acc.noalias() += w[size_t(i)] * (features_[size_t(i)].transpose() * sensing_target(pb, i));
    });
    rhs_ = Eigen::Map<const Mat>(rv.data(), p, r);
    d_ = Vec::Ones(p);
  }
  const Mat& rhs() const { return rhs_; }
  Mat apply(const Mat& G) const {
    const Eigen::Map<const Vec> g(G.data(), G.size());
    const Vec v = ordered_sum(k_, threads_, Vec(Vec::Zero(G.size())), [&](Index i, Vec& acc) {
      if (w_[size_t(i)] == Scalar(0)) return;
      acc.noalias() += w_[size_t(i)] * (features_[size_t(i)].transpose() * (features_[size_t(i)] * g));
    });
    return Eigen::Map<const Mat>(v.data(), G.rows(), G.cols());
  }
  const Mat& c_bar() const { return C_bar_; }
  const Vec& d() const { return d_; }
  Mat dense_gram() const {
    const Index n = rhs_.size();
    return ordered_sum(k_, threads_, Mat(Mat::Zero(n, n)), [&](Index i, Mat& acc) {
      if (w_[size_t(i)] == Scalar(0)) return;
      acc.noalias() += w_[size_t(i)] * (features_[size_t(i)].transpose() * features_[size_t(i)]);
    }, 4);
  }

 private:
  Index k_;
  const std::vector<Scalar>& w_;
  int threads_;
  std::vector<Mat> features_;
  Mat C_bar_, rhs_;
  Vec d_;
};

template <class Scalar>
HeadASystemSensing<Scalar> head_a_system(const SensingModel<Scalar>& m, const SensingProblem<Scalar>& pb,
                                         const std::vector<Matrix<Scalar>>& H, const std::vector<Scalar>& w,
                                         const std::vector<Vector<Scalar>>&, int threads) {
  return HeadASystemSensing<Scalar>(m, pb, H, w, threads);
}

/// Head step: H = argmin ||target_i - A_i(H A)||^2 + ridge ||H||^2 (the
/// solver's single-task B-step with S = I).
template <class Model, class Mat>
bool head_step(const Model& m, Index i, const Mat& A, typename Mat::Scalar ridge, Mat& H) {
  auto ne = m.b_normal(i, A, Mat::Identity(A.rows(), A.rows()), typename Mat::Scalar(1));
  ne.gram.diagonal().array() += ridge;
  return m.b_from_normal(ne, H) && H.allFinite();
}

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
  detail::require(o.rank >= 1 && o.rank <= pb.input_dim(), where, "rank r = ", o.rank, " must be in [1, p = ",
                  pb.input_dim(), "]");
  const auto t0 = std::chrono::steady_clock::now();
  const Index k = pb.num_tasks(), r = o.rank;
  const auto w = detail::task_weights(pb, o.weighting);
  const detail::model_for<Problem> model(pb, o.num_threads);

  BaselineResult<Scalar> res;
  res.method = variant == FedRepVariant::AltMin ? "fedrep" : "fedrep-gd";
  for (Index i = 0; i < k; ++i)
    if (pb.samples(i) < r && o.lambda == 0.0)
      res.warnings.push_back(detail::concat("task ", i, ": n_i = ", pb.samples(i), " < r = ", r,
                                            ": its head is underdetermined; the minimum-norm head is used"));

  // Initialization: the solver's A (spectral: top-r eigenvectors of
  // sum_i M_i M_i^T; random: the same Haar draw as the solver's).
  Mat A;
  if (o.init == InitKind::Spectral) {
    const Index p = pb.input_dim();
    const Mat AA = detail::ordered_sum(k, o.num_threads, Mat(Mat::Zero(p, p)), [&](Index i, Mat& acc) {
      const Mat M = model.moment(i);
      acc.noalias() += M * M.transpose();
    });
    A = top_eigenvectors<Scalar>(AA, r).transpose();
  } else {
    Rng rng(o.seed, 0x5EED1A17ULL);
    A = haar_orthonormal<Scalar>(rng, pb.input_dim(), r).transpose();
  }
  std::vector<Mat> H(static_cast<size_t>(k));
  std::vector<Vector<Scalar>> colsq(static_cast<size_t>(k));
  if constexpr (std::is_same<Problem, RegressionProblem<Scalar>>::value)
    detail::parallel_for_tasks(k, o.num_threads, [&](Index i) {
      colsq[size_t(i)] = pb.tasks[size_t(i)].X.colwise().squaredNorm().transpose();
    });

  auto heads = [&](const std::vector<char>* only) {
    std::vector<char> ok(size_t(k), 1);
    detail::parallel_for_tasks(k, o.num_threads, [&](Index i) {
      if (only && !(*only)[size_t(i)]) return;
      ok[size_t(i)] = detail::head_step(model, i, A, Scalar(o.lambda) / w[size_t(i)], H[size_t(i)]);
    });
    return std::all_of(ok.begin(), ok.end(), [](char c) { return c != 0; });
  };
  auto estimate = [&] {
    MultiTaskEstimate<Scalar> e;
    e.U = H;
    e.V.assign(size_t(k), A.transpose());
    e.A = A;
    e.W0 = pb.W0;
    e.shared = {{"A", A}};
    e.personal = {{"H", H}};
    e.trainable_parameters = A.size() + k * pb.output_dim() * r;
    return e;
  };
  auto objective = [&](const MultiTaskEstimate<Scalar>& e) {
    double reg = 0;
    for (const auto& h : H) reg += o.lambda * double(h.squaredNorm());
    return estimate_loss(pb, e, w, o.num_threads) + reg;
  };

  bool ok = heads(nullptr) && A.allFinite();
  {
    const auto e = estimate();
    res.history.push_back(detail::record_estimate(pb, e, objective(e), 0, detail::seconds_since(t0), o));
  }
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
  const double cg_tol = o.cg_tolerance > 0 ? o.cg_tolerance : 100.0 * double(Eigen::NumTraits<Scalar>::epsilon());
  const double floor_eps = 16.0 * double(Eigen::NumTraits<Scalar>::epsilon());
  double f_scale = 0;
  {
    MultiTaskEstimate<Scalar> zero = estimate();
    for (auto& u : zero.U) u.setZero();
    f_scale = estimate_loss(pb, zero, w, o.num_threads);
  }
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
    for (Index i = 0; i < k; ++i) w_on[size_t(i)] = on[size_t(i)] ? w[size_t(i)] : Scalar(0);

    Mat G = A.transpose();
    detail::AStepStats ast;
    {
      const auto sys = detail::head_a_system(model, pb, H, w_on, colsq, o.num_threads);
      if (variant == FedRepVariant::AltGD || o.a_step == AStepSolver::Gd)
        ast = detail::a_step_gd(sys, G, o.gd_step);
      else if (o.a_step == AStepSolver::Exact)
        ast = detail::a_step_exact(sys, G);
      else
        ast = detail::a_step_cg(sys, G, o.cg_max_products, cg_tol, o.cg_reduction);
    }
    if (!ast.ok || !G.allFinite()) {
      fail(StopReason::SingularSystem);
      break;
    }
    const ThinQR<Scalar> qr = thin_qr(G);
    A = qr.Q.transpose();
    for (auto& h : H) h = h * qr.R.transpose();
    if (!heads(&on)) {
      fail(StopReason::SingularSystem);
      break;
    }
    const auto e = estimate();
    rec = detail::record_estimate(pb, e, objective(e), it, detail::seconds_since(t0), o);
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
    if (!partial &&
        (std::abs(f_prev - f) <= o.tolerance * std::abs(f_prev) || f <= f_scale * floor_eps * floor_eps)) {
      res.status = Status::Success;
      res.stop_reason = StopReason::ToleranceReached;
      break;
    }
    f_prev = f;
  }
  if (partial && res.status != Status::NumericalIssue) {
    const std::vector<Mat> H_good = H;
    if (heads(nullptr)) {
      const auto e = estimate();
      IterationRecord last = detail::record_estimate(pb, e, objective(e), res.iterations, detail::seconds_since(t0), o);
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
