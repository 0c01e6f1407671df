// The oracle estimator (spec section 4): the least-squares cores when the
// shared truth A*, B* is known. With task similarity theta > 0 it still uses
// the shared A*, B* (the best any CoLoRA model with one shared pair could do
// knowing them); its expected error on the exact model is oracle_core_floor.
#pragma once

#include "colora/regression/solver.hpp"

namespace colora {

/// Fits S_i by the S-step with A = A*, B = B* from problem.truth. Throws
/// std::invalid_argument if the problem has no truth.
template <class Problem>
FitResult<typename Problem::Scalar> fit_oracle(const Problem& problem, double lambda = 0.0,
                                               CoreKind core = CoreKind::Full, int num_threads = 0) {
  using Scalar = typename Problem::Scalar;
  const char* where = "colora::fit_oracle";
  problem.validate(where);
  detail::require(problem.truth.has_value(), where, "the problem has no ground truth (oracle needs A*, B*)");
  detail::require(lambda >= 0 && std::isfinite(lambda), where, "lambda must be finite and >= 0, got ", lambda);
  using Model = std::conditional_t<std::is_same<Problem, RegressionProblem<Scalar>>::value,
                                   detail::RegressionModel<Scalar>, detail::SensingModel<Scalar>>;
  const Model model(problem, num_threads);
  FitResult<Scalar> out;
  out.A = problem.truth->A_shared;
  out.B = problem.truth->B_shared;
  out.cores.assign(size_t(problem.num_tasks()), Matrix<Scalar>());
  std::vector<char> ok(size_t(problem.num_tasks()), 1);
  detail::parallel_for_tasks(problem.num_tasks(), num_threads, [&](Index i) {
    ok[size_t(i)] = model.solve_core(i, out.A, out.B, Scalar(lambda), core, out.cores[size_t(i)]);
  });
  const bool all_ok = std::all_of(ok.begin(), ok.end(), [](char c) { return c != 0; });
  out.status = all_ok ? Status::Success : Status::NumericalIssue;
  out.stop_reason = all_ok ? StopReason::ClosedForm : StopReason::SingularSystem;
  return out;
}

}  // namespace colora
