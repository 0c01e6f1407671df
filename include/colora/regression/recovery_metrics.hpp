// Gauge-free recovery errors against a planted truth (docs/solver.md, "Diagnostics").
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "colora/core/subspace.hpp"
#include "colora/detail/parallel.hpp"
#include "colora/regression/data.hpp"

namespace colora {

/// Errors of an estimate (A, B, S_i) against a GroundTruth.
struct RecoveryMetrics {
  double dist_a = std::numeric_limits<double>::quiet_NaN();       ///< sin of largest angle, row(A) vs row(A*)
  double dist_b = std::numeric_limits<double>::quiet_NaN();       ///< sin of largest angle, col(B) vs col(B*)
  double dist_a_frob = std::numeric_limits<double>::quiet_NaN();  ///< ||sin Theta||_F for A
  double dist_b_frob = std::numeric_limits<double>::quiet_NaN();  ///< ||sin Theta||_F for B
  double mean_rel_err = std::numeric_limits<double>::quiet_NaN();
  double median_rel_err = std::numeric_limits<double>::quiet_NaN();
  double max_rel_err = std::numeric_limits<double>::quiet_NaN();
  /// mean_i ||B S_i A - B_i* S_i* A_i*||_F^2 (absolute; compare with oracle_core_floor)
  double mean_sq_err = std::numeric_limits<double>::quiet_NaN();
  std::vector<double> rel_err;  ///< per task e_i = ||B S_i A - Delta_i*||_F / ||Delta_i*||_F
  std::vector<double> sq_err;   ///< per task ||B S_i A - Delta_i*||_F^2
};

namespace detail {

/// ||U1 V1^T - U2 V2^T||_F without forming the q x p matrices and without
/// the cancellation of the expanded trace formula: both terms are written in
/// orthonormal bases of span[U1, U2] and span[V1, V2] (at most 2r each).
template <class Scalar>
double factored_difference_norm(const Matrix<Scalar>& U1, const Matrix<Scalar>& V1, const Matrix<Scalar>& U2,
                                const Matrix<Scalar>& V2) {
  Matrix<double> U(U1.rows(), U1.cols() + U2.cols()), V(V1.rows(), V1.cols() + V2.cols());
  U << U1.template cast<double>(), U2.template cast<double>();
  V << V1.template cast<double>(), V2.template cast<double>();
  if (U.cols() > U.rows() || V.cols() > V.rows()) {
    // Wide case (tiny dimensions): form the matrices.
    return (U1.template cast<double>() * V1.template cast<double>().transpose() -
            U2.template cast<double>() * V2.template cast<double>().transpose())
        .norm();
  }
  const Matrix<double> Qu = thin_qr(U).Q, Qv = thin_qr(V).Q;
  const Matrix<double> D =
      (Qu.transpose() * U1.template cast<double>()) * (V1.template cast<double>().transpose() * Qv) -
      (Qu.transpose() * U2.template cast<double>()) * (V2.template cast<double>().transpose() * Qv);
  return D.norm();
}

inline double median_of(std::vector<double> v) {
  if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
  const size_t m = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + long(m), v.end());
  double med = v[m];
  if (v.size() % 2 == 0) med = 0.5 * (med + *std::max_element(v.begin(), v.begin() + long(m)));
  return med;
}

}  // namespace detail

/// Subspace distances and per-task relative errors of (A, B, cores) against
/// `truth`. A is r x p, B is q x r, cores[i] is r x r. The tasks run on up to
/// `num_threads` threads (0 = all); the averages are summed in task order, so
/// the result does not depend on the thread count.
template <class Scalar>
RecoveryMetrics recovery_metrics(const GroundTruth<Scalar>& truth, const Matrix<Scalar>& A, const Matrix<Scalar>& B,
                                 const std::vector<Matrix<Scalar>>& cores, int num_threads = 1) {
  detail::require(Index(cores.size()) == truth.num_tasks(), "colora::recovery_metrics", "got ", cores.size(),
                  " cores for ", truth.num_tasks(), " tasks");
  RecoveryMetrics m;
  const auto da = row_space_distance(A, truth.A_shared);
  const auto db = subspace_distance(B, truth.B_shared);
  m.dist_a = da.spectral;
  m.dist_a_frob = da.frobenius;
  m.dist_b = db.spectral;
  m.dist_b_frob = db.frobenius;
  const size_t k = cores.size();
  m.rel_err.resize(k);
  m.sq_err.resize(k);
  const Matrix<Scalar> At = A.transpose();
  detail::parallel_for_tasks(Index(k), num_threads, [&](Index t) {
    const size_t i = size_t(t);
    const Matrix<Scalar> U1 = B * cores[i];
    const Matrix<Scalar> U2 = truth.B[i] * truth.S[i];
    const Matrix<Scalar> V2 = truth.A[i].transpose();
    const double err = detail::factored_difference_norm<Scalar>(U1, At, U2, V2);
    // ||U2 V2^T||_F^2 = tr(U2^T U2 V2^T V2): a sum of squares, no cancellation.
    const Matrix<double> U2d = U2.template cast<double>(), V2d = V2.template cast<double>();
    const double ref = std::sqrt(std::max(0.0, ((U2d.transpose() * U2d).cwiseProduct(V2d.transpose() * V2d)).sum()));
    m.sq_err[i] = err * err;
    m.rel_err[i] = ref > 0 ? err / ref : err;
  });
  double sum = 0, sum_sq = 0, mx = 0;
  for (size_t i = 0; i < k; ++i) {
    sum += m.rel_err[i];
    sum_sq += m.sq_err[i];
    mx = std::max(mx, m.rel_err[i]);
  }
  m.mean_rel_err = sum / double(k);
  m.mean_sq_err = sum_sq / double(k);
  m.max_rel_err = mx;
  m.median_rel_err = detail::median_of(m.rel_err);
  return m;
}

}  // namespace colora
