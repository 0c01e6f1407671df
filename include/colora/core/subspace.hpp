// Gauge-free subspace distances (docs/solver.md, "Diagnostics").
//
// For column spaces of U (n x r) and U* (n x r*): the principal angles
// theta_1..theta_r* are the arccos of the singular values of Q^T Q*, where Q
// and Q* are orthonormal bases. dist(U, U*) = ||(I - P_U) U*_orth||_2
// = sin(theta_max); the Frobenius version is ||sin Theta||_F.
#pragma once

#include <Eigen/SVD>
#include <algorithm>
#include <cmath>

#include "colora/core/errors.hpp"
#include "colora/core/linalg.hpp"

namespace colora {

/// Principal angles (radians, ascending) between the column spaces of U and V.
/// Returns min(rank) angles. Inputs need not be orthonormal.
template <class DerivedU, class DerivedV>
Vector<double> principal_angles(const Eigen::MatrixBase<DerivedU>& U, const Eigen::MatrixBase<DerivedV>& V) {
  detail::require(U.rows() == V.rows(), "colora::principal_angles", "U has ", U.rows(), " rows but V has ", V.rows());
  const Matrix<double> Qu = column_basis(U.template cast<double>().eval());
  const Matrix<double> Qv = column_basis(V.template cast<double>().eval());
  Eigen::JacobiSVD<Matrix<double>> svd(Qu.transpose() * Qv);
  Vector<double> sv = svd.singularValues();  // descending cosines
  Vector<double> angles(sv.size());
  for (Index i = 0; i < sv.size(); ++i) angles(i) = std::acos(std::min(1.0, std::max(0.0, sv(i))));
  return angles;
}

/// Distance measures between two subspaces.
struct SubspaceDistance {
  double spectral = 0.0;   ///< sin of the largest principal angle, ||(I - P_U) V||_2 for orthonormal V
  double frobenius = 0.0;  ///< ||sin Theta||_F
};

/// Distance between the column spaces of U (estimate) and U_star (truth).
/// Wide inputs (more columns than rows, e.g. B with q < r) span the whole
/// space, so their distance is 0 (docs/solver.md, "q < r").
/// When U_star has more columns than U, the missing directions count fully:
/// dist = ||(I - P_U) Q_star||, computed directly.
template <class DerivedU, class DerivedV>
SubspaceDistance subspace_distance(const Eigen::MatrixBase<DerivedU>& U, const Eigen::MatrixBase<DerivedV>& U_star) {
  detail::require(U.rows() == U_star.rows(), "colora::subspace_distance", "estimate has ", U.rows(),
                  " rows but truth has ", U_star.rows());
  const Matrix<double> Q = column_basis(U.template cast<double>().eval());
  const Matrix<double> Qs = column_basis(U_star.template cast<double>().eval());
  const Matrix<double> resid = Qs - Q * (Q.transpose() * Qs);
  SubspaceDistance d;
  d.frobenius = resid.norm();
  Eigen::JacobiSVD<Matrix<double>> svd(resid);
  d.spectral = svd.singularValues().size() ? std::min(1.0, svd.singularValues()(0)) : 0.0;
  return d;
}

/// Distance between row spaces (A is r x p: its rows span the subspace).
template <class DerivedA, class DerivedB>
SubspaceDistance row_space_distance(const Eigen::MatrixBase<DerivedA>& A, const Eigen::MatrixBase<DerivedB>& A_star) {
  return subspace_distance(A.transpose(), A_star.transpose());
}

}  // namespace colora
