// Cores for given shared factors, both by the kernel's S-step
// (altmin::fit_cores): the oracle estimator (docs/solver.md), the
// least-squares cores when the shared truth A*, B* is known, and adapt_core,
// a new task's core on fitted shared factors.
//
// The oracle: the least-squares cores when the
// shared truth A*, B* is known. With task similarity theta > 0 it still uses
// the shared A*, B* (the best any CoLoRA model with one shared pair could do
// knowing them); its expected error on the exact model is oracle_core_floor.
#pragma once

#include "colora/regression/solver.hpp"

namespace colora {

/// Fits S_i by the kernel's S-step (altmin::fit_cores) with A = A*, B = B* from problem.truth. Throws
/// std::invalid_argument if the problem has no truth.
template <class Problem>
FitResult<typename Problem::Scalar> fit_oracle(const Problem& problem, double lambda = 0.0,
                                               CoreKind core = CoreKind::Full, int num_threads = 0) {
  using Scalar = typename Problem::Scalar;
  const char* where = "colora::fit_oracle";
  problem.validate(where);
  detail::require(problem.truth.has_value(), where, "the problem has no ground truth (oracle needs A*, B*)");
  detail::require(lambda >= 0 && std::isfinite(lambda), where, "lambda must be finite and >= 0, got ", lambda);
  const measurement_model_t<Problem> model(problem, num_threads);
  FitResult<Scalar> out;
  out.A = problem.truth->A_shared;
  out.B = problem.truth->B_shared;
  const std::vector<Scalar> ridge(size_t(problem.num_tasks()), Scalar(lambda));
  const bool all_ok = altmin::fit_cores(model, out.A, out.B, ridge, core, out.cores);
  out.status = all_ok ? Status::Success : Status::NumericalIssue;
  out.stop_reason = all_ok ? StopReason::ClosedForm : StopReason::SingularSystem;
  return out;
}

/// Adapting a new task: given fitted shared A (r x p) and B (q x r,
/// orthonormal columns for a full core), fit the personal core from n_new
/// samples (X: n x p, Y: n x q, W0 q x p or empty) by the S-step with ridge.
/// A task with fewer than r samples gets the minimum-norm core when
/// ridge = 0. Throws std::invalid_argument on mismatched shapes.
template <class Scalar>
Matrix<Scalar> adapt_core(const Matrix<Scalar>& A, const Matrix<Scalar>& B, const Matrix<Scalar>& W0,
                          const Matrix<Scalar>& X, const Matrix<Scalar>& Y, double ridge = 0.0,
                          CoreKind core = CoreKind::Full) {
  const char* w = "colora::adapt_core";
  detail::require(A.rows() == B.cols(), w, "A has ", A.rows(), " rows but B has ", B.cols(), " columns");
  detail::require(X.cols() == A.cols(), w, "X has ", X.cols(), " columns but A has p = ", A.cols());
  detail::require(Y.cols() == B.rows(), w, "Y has ", Y.cols(), " columns but B has q = ", B.rows());
  detail::require(X.rows() == Y.rows(), w, "X has ", X.rows(), " rows but Y has ", Y.rows());
  detail::require(X.rows() > 0, w, "the new task has 0 samples");
  detail::require(ridge >= 0 && std::isfinite(ridge), w, "ridge must be finite and >= 0, got ", ridge);
  RegressionProblem<Scalar> pb;
  pb.tasks.push_back({X, Y, {}, {}});
  pb.W0 = W0;
  pb.validate(w);
  const RegressionModel<Scalar> model(pb, 1);
  std::vector<Matrix<Scalar>> S;
  altmin::fit_cores(model, A, B, {Scalar(ridge)}, core, S);
  return S.front();
}

}  // namespace colora
