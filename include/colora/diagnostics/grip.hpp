// Generalized restricted isometry (GRIP) diagnostics (docs/theory.md, "GRIP").
//
// Differences of two CoLoRA models lie in
//     S_s = {(D_1..D_k): D_i = U C_i V^T, U q x s, V p x s orthonormal},
// s = min(2r, p, q). The design has GRIP constant delta when, on S_s,
//     (1 - delta) sum_i ||D_i||_F^2 <= sum_i ||A_i(D_i)||^2 / n_i <= (1 + delta) sum_i ||D_i||_F^2
// with A_i(D) = X_i D^T for (M1) and A_i(D)_j = <M_ij, D> for (M2).
//
//   grip_estimate(problem, options)     (M1) or (M2): a certified lower bound,
//                                       the extremes attained by explicit
//                                       directions (search: detail/grip_search.hpp)
//   regression_grip_exact(problem)      (M1) only: the exact value, in closed form
//   predict_grip_delta(...)             what a Gaussian design is predicted to
//                                       have (grip_prediction.hpp)
// Why the extremes sit on one task, why the estimate is a lower bound and
// why (M1) has a closed form: docs/theory.md, "GRIP: what is computed and why
// it is a lower bound".
#pragma once

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <vector>

#include "colora/core/config.hpp"
#include "colora/core/errors.hpp"
#include "colora/detail/grip_search.hpp"
#include "colora/detail/parallel.hpp"
#include "colora/diagnostics/grip_prediction.hpp"
#include "colora/diagnostics/grip_types.hpp"
#include "colora/regression/data.hpp"

namespace colora {

/// GRIP lower-bound estimate for (M1) multi-output regression.
template <class Scalar>
GripResult<Scalar> grip_estimate(const RegressionProblem<Scalar>& pb, const GripOptions& opt) {
  opt.validate("colora::grip_estimate");
  pb.validate("colora::grip_estimate");
  return detail::grip_estimate_impl<Scalar>(detail::GripRegressionModel<Scalar>(pb), opt);
}

/// GRIP lower-bound estimate for (M2) matrix sensing.
template <class Scalar>
GripResult<Scalar> grip_estimate(const SensingProblem<Scalar>& pb, const GripOptions& opt) {
  opt.validate("colora::grip_estimate");
  pb.validate("colora::grip_estimate");
  return detail::grip_estimate_impl<Scalar>(detail::GripSensingModel<Scalar>(pb), opt);
}

/// Exact (M1) GRIP extremes: per task the extreme eigenvalues of
/// X_i^T X_i / n_i, computed from the smaller of X^T X and X X^T (the
/// smallest is 0 when n_i < p). Cost O(sum_i n_i p min(n_i, p)).
template <class Scalar>
GripExact regression_grip_exact(const RegressionProblem<Scalar>& pb, int num_threads = 0) {
  const char* where = "colora::regression_grip_exact";
  detail::require(num_threads >= 0, where, "num_threads must be >= 0, got ", num_threads);
  pb.validate(where);
  const Index k = pb.num_tasks(), p = pb.input_dim();
  GripExact out;
  out.task_lambda_max.assign(size_t(k), 0.0);
  out.task_lambda_min.assign(size_t(k), 0.0);
  detail::parallel_for(
      k, num_threads,
      [&](Index i) {
        const auto& X = pb.tasks[size_t(i)].X;
        const Index n = X.rows();
        Matrix<Scalar> G = n >= p ? Matrix<Scalar>(X.transpose() * X) : Matrix<Scalar>(X * X.transpose());
        G /= Scalar(n);
        Eigen::SelfAdjointEigenSolver<Matrix<Scalar>> es(G, Eigen::EigenvaluesOnly);
        out.task_lambda_max[size_t(i)] = double(es.eigenvalues()(G.rows() - 1));
        out.task_lambda_min[size_t(i)] = n >= p ? std::max(0.0, double(es.eigenvalues()(0))) : 0.0;
      },
      /*static_schedule=*/true);
  out.argmax_task = 0;
  out.argmin_task = 0;
  for (Index i = 1; i < k; ++i) {
    if (out.task_lambda_max[size_t(i)] > out.task_lambda_max[size_t(out.argmax_task)]) out.argmax_task = i;
    if (out.task_lambda_min[size_t(i)] < out.task_lambda_min[size_t(out.argmin_task)]) out.argmin_task = i;
  }
  out.lambda_max = out.task_lambda_max[size_t(out.argmax_task)];
  out.lambda_min = out.task_lambda_min[size_t(out.argmin_task)];
  out.delta = std::max(out.lambda_max - 1.0, 1.0 - out.lambda_min);
  return out;
}

}  // namespace colora
