// Task structure of a planted truth (docs/theory.md, "Task structure"): task
// diversity, task similarity as principal angles, and degrees of freedom
// against samples.
//
//   diversity nu = lambda_min / lambda_mean of (1/k) sum_i S_i* S_i*^T
//                  (1 = the cores excite every direction of R^r equally,
//                   0 = they span fewer than r directions); with q < r
//                  (personal heads S_i* = [H_i*; 0]) of (1/k) sum_i S_i*^T S_i*,
//                  FedRep's head diversity [choice];
//   similarity   = principal angles between span B_i* and span B* (columns)
//                  and between the row spaces of A_i* and A*;
//   dof          = (p + q) r + k r^2 (full cores) or (p + q) r + k r
//                  (diagonal cores), against the total sample count.
#pragma once

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <limits>
#include <vector>

#include "colora/core/adapter.hpp"
#include "colora/core/subspace.hpp"
#include "colora/regression/data.hpp"

namespace colora {

/// Similarity of one task's true subspaces to the shared ones.
struct TaskSimilarity {
  Vector<double> angles_B;  ///< principal angles (radians, ascending) between span B_i* and span B*
  Vector<double> angles_A;  ///< principal angles between the row spaces of A_i* and A*
  SubspaceDistance dist_B;  ///< dist(B_i*, B*): spectral = sin(largest angle), Frobenius = ||sin Theta||_F
  SubspaceDistance dist_A;
  double theta_B = 0.0;  ///< largest angle for B (radians)
  double theta_A = 0.0;  ///< largest angle for A (radians)
};

/// What task_structure() returns.
struct TaskStructure {
  static constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  Index k = 0, p = 0, q = 0, r = 0;
  double diversity = nan;                        ///< nu = lambda_min / lambda_mean (NaN when every core is 0)
  Vector<double> core_gram_eigenvalues;          ///< eigenvalues (ascending) of (1/k) sum_i S_i* S_i*^T
  std::vector<TaskSimilarity> tasks;             ///< per task
  double max_theta_B = 0.0, mean_theta_B = 0.0;  ///< over tasks (radians)
  double max_theta_A = 0.0, mean_theta_A = 0.0;
  Index shared_dof = 0;    ///< (p + q) r
  Index personal_dof = 0;  ///< k r^2 (full) or k r (diagonal)
  Index total_dof = 0;
  Index total_samples = -1;      ///< sum_i n_i (-1 when not given)
  double samples_per_dof = nan;  ///< total_samples / total_dof
};

/// Degrees of freedom of a CoLoRA model: (p + q) r + k r^2 (full cores) or
/// (p + q) r + k r (diagonal cores). The gauge (r^2 + r^2 per invertible G,
/// H) is not subtracted: this is the parameter count docs/theory.md, "Task
/// structure", compares the sample count with.
inline Index colora_degrees_of_freedom(Index p, Index q, Index r, Index k, CoreKind core = CoreKind::Full) {
  if (q < r) return p * r + k * q * r;  // B = [I_q 0] fixed, a q x r head per task
  return (p + q) * r + k * (core == CoreKind::Diagonal ? r : r * r);
}

/// Task diversity, per-task principal angles and degrees of freedom of a
/// planted truth. `total_samples` (optional, -1 = unknown) fills the ratio.
template <class Scalar>
TaskStructure task_structure(const GroundTruth<Scalar>& truth, Index total_samples = -1,
                             CoreKind core = CoreKind::Full) {
  const char* where = "colora::task_structure";
  const Index k = truth.num_tasks(), r = truth.rank();
  detail::require(k >= 1, where, "the truth has k = 0 cores S");
  detail::require(r >= 1, where, "A_shared must have r >= 1 rows, got ", r);
  const Index p = truth.A_shared.cols(), q = truth.B_shared.rows();
  detail::require(truth.B_shared.cols() == r, where, "B_shared is ", truth.B_shared.rows(), " x ",
                  truth.B_shared.cols(), " but r = ", r);
  detail::require(Index(truth.A.size()) == k && Index(truth.B.size()) == k, where, "A has ", truth.A.size(),
                  " and B has ", truth.B.size(), " entries but S has k = ", k);
  for (Index i = 0; i < k; ++i) {
    const auto& S = truth.S[size_t(i)];
    detail::require(S.rows() == r && S.cols() == r, where, "task ", i, ": S is ", S.rows(), " x ", S.cols(),
                    " but r = ", r);
    detail::require(truth.A[size_t(i)].rows() == r && truth.A[size_t(i)].cols() == p, where, "task ", i, ": A is ",
                    truth.A[size_t(i)].rows(), " x ", truth.A[size_t(i)].cols(), " but should be r x p = ", r, " x ",
                    p);
    detail::require(truth.B[size_t(i)].rows() == q && truth.B[size_t(i)].cols() == r, where, "task ", i, ": B is ",
                    truth.B[size_t(i)].rows(), " x ", truth.B[size_t(i)].cols(), " but should be q x r = ", q, " x ",
                    r);
    detail::require_finite(S, where, detail::concat("task ", i, ": S"));
  }
  detail::require(total_samples >= -1, where, "total_samples must be >= 0 (or -1 = unknown), got ", total_samples);

  TaskStructure out;
  out.k = k;
  out.p = p;
  out.q = q;
  out.r = r;
  // Diversity: fixed task order, in double.
  Matrix<double> G = Matrix<double>::Zero(r, r);
  for (Index i = 0; i < k; ++i) {
    const Matrix<double> S = truth.S[size_t(i)].template cast<double>();
    if (q < r)
      G.noalias() += S.transpose() * S;  // personal heads (q < r): FedRep's sum_i H_i^T H_i
    else
      G.noalias() += S * S.transpose();
  }
  G /= double(k);
  Eigen::SelfAdjointEigenSolver<Matrix<double>> es(G, Eigen::EigenvaluesOnly);
  out.core_gram_eigenvalues = es.eigenvalues();
  const double mean = out.core_gram_eigenvalues.mean();
  if (mean > 0.0) out.diversity = std::max(0.0, out.core_gram_eigenvalues(0)) / mean;

  // Similarity.
  out.tasks.resize(size_t(k));
  for (Index i = 0; i < k; ++i) {
    TaskSimilarity& ts = out.tasks[size_t(i)];
    ts.angles_B = principal_angles(truth.B[size_t(i)], truth.B_shared);
    ts.angles_A = principal_angles(truth.A[size_t(i)].transpose(), truth.A_shared.transpose());
    ts.dist_B = subspace_distance(truth.B[size_t(i)], truth.B_shared);
    ts.dist_A = row_space_distance(truth.A[size_t(i)], truth.A_shared);
    ts.theta_B = ts.angles_B.size() ? ts.angles_B.maxCoeff() : 0.0;
    ts.theta_A = ts.angles_A.size() ? ts.angles_A.maxCoeff() : 0.0;
    out.max_theta_B = std::max(out.max_theta_B, ts.theta_B);
    out.max_theta_A = std::max(out.max_theta_A, ts.theta_A);
    out.mean_theta_B += ts.theta_B / double(k);
    out.mean_theta_A += ts.theta_A / double(k);
  }

  out.shared_dof = (p + q) * r;
  out.total_dof = colora_degrees_of_freedom(p, q, r, k, core);
  out.personal_dof = out.total_dof - out.shared_dof;
  out.total_samples = total_samples;
  if (total_samples >= 0) out.samples_per_dof = double(total_samples) / double(out.total_dof);
  return out;
}

/// The same for a problem that carries its truth (throws if it has none).
template <class Problem>
TaskStructure task_structure(const Problem& pb, CoreKind core = CoreKind::Full) {
  detail::require(pb.truth.has_value(), "colora::task_structure", "the problem carries no ground truth");
  return task_structure(*pb.truth, pb.total_samples(), core);
}

}  // namespace colora
