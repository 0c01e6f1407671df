// Two one-shot baselines (spec section 7).
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
  const detail::model_for<Problem> model(pb, o.num_threads);
  const Mat A = ffa_frozen_A<Scalar>(pb.input_dim(), r, o.seed);
  const Mat I = Mat::Identity(r, r);
  auto ne = detail::ordered_sum(k, o.num_threads, model.b_zero(r), [&](Index i, detail::BNormal<Scalar>& acc) {
    acc += model.b_normal(i, A, I, w[size_t(i)]);
  });
  ne.gram.diagonal().array() += Scalar(o.lambda);
  Mat B;
  const bool ok = model.b_from_normal(ne, B) && B.allFinite();
  BaselineResult<Scalar> res;
  res.method = "ffa";
  auto& e = res.estimate;
  e.U.assign(size_t(k), B);
  e.V.assign(size_t(k), A.transpose());
  e.A = A;
  e.B = B;
  e.W0 = pb.W0;
  e.shared = {{"A", A}, {"B", B}};
  e.trainable_parameters = B.size();
  detail::finish_closed_form(pb, res, ok, estimate_loss(pb, e, w, o.num_threads) + o.lambda * double(B.squaredNorm()),
                             t0, o);
  return res;
}

/// mom: spectral initialization + one S-step (the solver with 0 iterations).
template <class Problem>
BaselineResult<typename Problem::Scalar> fit_mom(const Problem& pb, const BaselineOptions& o) {
  using Scalar = typename Problem::Scalar;
  const char* where = "colora::fit_mom";
  pb.validate(where);
  o.validate();
  detail::check_rank(pb, o.rank, where, /*wide_ok=*/true);
  const auto t0 = std::chrono::steady_clock::now();
  SolverOptions so = o;
  so.init = InitKind::Spectral;
  so.max_iterations = 0;
  so.track_truth = false;
  so.callback = nullptr;
  Solver<Scalar> solver(so);
  solver.compute(pb);
  BaselineResult<Scalar> res;
  res.method = "mom";
  res.warnings = solver.warnings();
  res.estimate = detail::colora_form_estimate<Scalar>(solver.A(), solver.B(), solver.cores(), pb.W0);
  const double f = solver.history().empty() ? std::numeric_limits<double>::quiet_NaN()
                                            : solver.history().front().objective;
  detail::finish_closed_form(pb, res, solver.info() != Status::NumericalIssue, f, t0, o);
  return res;
}

}  // namespace colora
