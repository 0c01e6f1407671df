// What grip_estimate() and regression_grip_exact() take and return: the
// options, the explicit directions of S_s, the search result and the exact
// (M1) extremes (docs/theory.md, "Parameters" and "What it returns").
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "colora/core/config.hpp"
#include "colora/core/errors.hpp"
#include "colora/core/status.hpp"

namespace colora {

/// Options of grip_estimate().
struct GripOptions {
  Index rank = 1;           ///< r of the model; the set S_s uses s = min(2r, p, q)
  int restarts = 3;         ///< random starts for each of the max and min searches
  int max_iterations = 30;  ///< core+factor iterations per restart (upper bound)
  int samples = 8;          ///< random directions spread over all tasks
  double tolerance = 1e-8;  ///< a search stops when one step changes the value by less than this (relative)
  std::uint64_t seed = 0;   ///< seed of the random starts and samples
  int num_threads = 0;      ///< threads over tasks (0 = all)

  void validate(const char* where = "colora::GripOptions") const {
    detail::require(rank >= 1, where, "rank must be >= 1, got ", rank);
    detail::require(restarts >= 1, where, "restarts must be >= 1, got ", restarts);
    detail::require(max_iterations >= 1, where, "max_iterations must be >= 1, got ", max_iterations);
    detail::require(samples >= 0, where, "samples must be >= 0, got ", samples);
    detail::require(std::isfinite(tolerance) && tolerance >= 0.0, where, "tolerance must be finite and >= 0, got ",
                    tolerance);
    detail::require(num_threads >= 0, where, "num_threads must be >= 0, got ", num_threads);
  }
};

/// An explicit direction of S_s: D_i = U C[i] V^T for every task i.
template <class Scalar>
struct GripDirection {
  Index task = -1;                ///< the task carrying all the mass; -1 for a direction spread over all tasks
  Matrix<Scalar> U;               ///< q x s, orthonormal columns
  Matrix<Scalar> V;               ///< p x s, orthonormal columns
  std::vector<Matrix<Scalar>> C;  ///< k cores (s x s); zero except C[task] when task >= 0
  double ratio = std::numeric_limits<double>::quiet_NaN();  ///< sum_i ||A_i(D_i)||^2/n_i / sum_i ||D_i||_F^2

  /// The dense q x p matrix D_i.
  Matrix<Scalar> D(Index i) const { return U * C[size_t(i)] * V.transpose(); }
};

/// What grip_estimate() found.
template <class Scalar>
struct GripResult {
  Status status = Status::NotComputed;
  double delta_hat = std::numeric_limits<double>::quiet_NaN();   ///< max(lambda_max - 1, 1 - lambda_min): attained
  double lambda_max = std::numeric_limits<double>::quiet_NaN();  ///< largest ratio attained
  double lambda_min = std::numeric_limits<double>::quiet_NaN();  ///< smallest ratio attained
  double sampled_deviation = std::numeric_limits<double>::quiet_NaN();  ///< max |ratio - 1| over the random samples
  double sampled_max = std::numeric_limits<double>::quiet_NaN();
  double sampled_min = std::numeric_limits<double>::quiet_NaN();
  Index subspace_rank = 0;              ///< s = min(2r, p, q)
  GripDirection<Scalar> max_direction;  ///< attains lambda_max
  GripDirection<Scalar> min_direction;  ///< attains lambda_min
  int restarts = 0;                     ///< restarts run (max and min searches together)
  int iterations = 0;                   ///< core+factor iterations run in total
  int samples = 0;                      ///< random directions evaluated
  long long operator_applications = 0;  ///< per-task operator products (see docs/theory.md, cost)
};

/// Exact (M1) GRIP extremes: eigenvalues of Sigma_i = X_i^T X_i / n_i.
struct GripExact {
  double lambda_max = std::numeric_limits<double>::quiet_NaN();
  double lambda_min = std::numeric_limits<double>::quiet_NaN();
  double delta = std::numeric_limits<double>::quiet_NaN();  ///< max(lambda_max - 1, 1 - lambda_min)
  Index argmax_task = -1;
  Index argmin_task = -1;
  std::vector<double> task_lambda_max;  ///< per task
  std::vector<double> task_lambda_min;  ///< per task (0 when n_i < p)
};

}  // namespace colora
