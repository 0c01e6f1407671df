// Two one-shot baselines (docs/baselines.md).
//
//   ffa  FFA-LoRA: A frozen at a random Haar draw (from the seed), one shared
//        B fitted by least squares, nothing personal: W_i = W_0 + B A for all
//        i. It is CoLoRA with A fixed and S_i = I; the fit is exactly the
//        solver's B-step (summed normal equations, one r x r solve for (M1),
//        qr x qr for (M2)), with ridge lambda on B [choice].
//   mom  method of moments: the solver's spectral initialization (A^T, B =
//        top-r eigenvectors of sum_i M_i M_i^T, sum_i M_i^T M_i) followed by
//        one S-step. It is the CoLoRA solver with max_iterations = 0.
#pragma once

#include "colora/baselines/estimate.hpp"
#include "colora/regression/data_scale.hpp"

namespace colora {

/// The frozen A of ffa (r x p, orthonormal rows): Haar from Rng(seed, 0xFFA10BA).
template <class Scalar>
Matrix<Scalar> ffa_frozen_A(Index p, Index r, std::uint64_t seed) {
  Rng rng(seed, 0xFFA10BAULL);
  return haar_orthonormal<Scalar>(rng, p, r).transpose();
}

/// ffa: B = argmin sum_i w_i L_i(W_0 + B A) + lambda ||B||_F^2 with A frozen.
template <class Problem>
BaselineResult<typename Problem::Scalar> fit_ffa(const Problem& pb, const BaselineOptions& o) {
  using Scalar = typename Problem::Scalar;
  using Mat = Matrix<Scalar>;
  const char* where = "colora::fit_ffa";
  pb.validate(where);
  o.validate();
  detail::check_rank(pb, o.rank, where);
  const auto t0 = std::chrono::steady_clock::now();
  const Index k = pb.num_tasks(), r = o.rank;
  const auto w = detail::task_weights(pb, o.weighting);
  const measurement_model_t<Problem> model(pb, o.num_threads);
  const Mat A = ffa_frozen_A<Scalar>(pb.input_dim(), r, o.seed);
  const Mat I = Mat::Identity(r, r);
  auto ne = detail::ordered_sum(k, o.num_threads, model.b_zero(r),
                                [&](Index i, BNormal<Scalar>& acc) { acc += model.b_normal(i, A, I, w[size_t(i)]); });
  ne.gram.diagonal().array() += Scalar(o.lambda);
  Mat B;
  const bool ok = model.b_from_normal(ne, B) && B.allFinite();
  BaselineResult<Scalar> res;
  res.method = "ffa";
  auto& e = res.estimate;
  e.U.assign(size_t(k), B);
  e.V.assign(1, A.transpose());  // shared by every task
  e.A = A;
  e.B = B;
  e.W0 = pb.W0;
  e.shared = {{"A", A}, {"B", B}};
  e.trainable_parameters = B.size();
  detail::finish_closed_form(pb, res, ok, estimate_loss(pb, e, w, o.num_threads) + o.lambda * double(B.squaredNorm()),
                             t0, o);
  return res;
}

/// mom: the kernel's spectral initialization + one S-step (the solver's
/// starting point).
template <class Problem>
BaselineResult<typename Problem::Scalar> fit_mom(const Problem& pb, const BaselineOptions& o) {
  using Scalar = typename Problem::Scalar;
  const char* where = "colora::fit_mom";
  pb.validate(where);
  o.validate();
  detail::check_rank(pb, o.rank, where, /*wide_ok=*/true);
  const auto t0 = std::chrono::steady_clock::now();
  BaselineResult<Scalar> res;
  res.method = "mom";
  Matrix<Scalar> A, B;
  std::vector<Matrix<Scalar>> S;
  // Data at the ends of the floating-point range are rescaled exactly, as
  // the solver does (regression/data_scale.hpp), and the cores mapped back.
  const detail::DataScale sc = detail::choose_data_scale<Scalar>(detail::all_task_magnitudes(pb, o.num_threads));
  auto start = [&](const Problem& data, double lambda, double& f) {
    const measurement_model_t<Problem> model(data, o.num_threads);
    const auto w = altmin::task_weights(model, o.weighting);
    const bool init = altmin::initialize(model, InitKind::Spectral, o.rank, o.seed, A, B);
    const bool cores = altmin::fit_cores(model, A, B, altmin::core_ridges(w, lambda), o.core, S);
    res.warnings = altmin::core_warnings(model, o.rank, o.lambda);
    f = altmin::objective(model, A, B, S, w, lambda);
    return init && cores;
  };
  double f = 0;
  bool ok;
  if (sc.identity()) {
    ok = start(pb, o.lambda, f);
  } else {
    ok = start(detail::scaled_problem(pb, sc), std::ldexp(o.lambda, -2 * sc.ex), f);
    for (auto& s : S) s = detail::times_pow2(s, sc.ey - sc.ex);
    ok = ok && std::isfinite(f);
    f = std::ldexp(f, 2 * sc.ey);  // the objective at the user's scale (may exceed the range, as the solver's)
    res.warnings.push_back(
        detail::concat("the data were rescaled by 2^", -sc.ex, " (inputs) and 2^", -sc.ey,
                       " (outputs) to keep sums of squares finite; results are mapped back exactly"));
  }
  ok = ok && std::all_of(S.begin(), S.end(), [](const Matrix<Scalar>& s) { return s.allFinite(); });
  res.estimate = detail::colora_form_estimate<Scalar>(A, B, S, pb.W0);
  detail::finish_closed_form(pb, res, ok && (std::isfinite(f) || !sc.identity()), f, t0, o);
  return res;
}

}  // namespace colora
