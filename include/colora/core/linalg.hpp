// Small dense linear-algebra helpers used throughout the library.
#pragma once

#include <Eigen/Cholesky>
#include <Eigen/Eigenvalues>
#include <Eigen/QR>
#include <cmath>
#include <limits>

#include "colora/core/errors.hpp"
#include "colora/core/random.hpp"

namespace colora {

/// Thin QR M = Q R (M is m x n, m >= n) with the signs fixed so that
/// diag(R) >= 0, which makes Q a deterministic function of M.
template <class Scalar>
struct ThinQR {
  Matrix<Scalar> Q;  ///< m x n, orthonormal columns
  Matrix<Scalar> R;  ///< n x n, upper triangular
};

template <class Derived>
ThinQR<typename Derived::Scalar> thin_qr(const Eigen::MatrixBase<Derived>& M) {
  using Scalar = typename Derived::Scalar;
  const Index m = M.rows(), n = M.cols();
  detail::require(m >= n, "colora::thin_qr", "needs rows >= cols, got ", m, " x ", n);
  Eigen::HouseholderQR<Matrix<Scalar>> qr(M);
  ThinQR<Scalar> out;
  out.Q = qr.householderQ() * Matrix<Scalar>::Identity(m, n);
  out.R = qr.matrixQR().topRows(n).template triangularView<Eigen::Upper>();
  for (Index j = 0; j < n; ++j) {
    if (out.R(j, j) < Scalar(0)) {
      out.R.row(j) *= Scalar(-1);
      out.Q.col(j) *= Scalar(-1);
    }
  }
  return out;
}

/// An orthonormal basis of the column space of M, assuming full rank: the thin
/// QR factor when M is tall or square, the identity of R^{rows} when M is wide
/// (a wide full-row-rank matrix spans everything; used for B when q < r).
template <class Derived>
Matrix<typename Derived::Scalar> column_basis(const Eigen::MatrixBase<Derived>& M) {
  using Scalar = typename Derived::Scalar;
  if (M.cols() <= M.rows()) return thin_qr(M).Q;
  return Matrix<Scalar>::Identity(M.rows(), M.rows());
}

/// A rows x cols matrix with orthonormal columns (rows >= cols), drawn
/// Haar-uniformly: QR of a Gaussian matrix with the sign fix above.
template <class Scalar>
Matrix<Scalar> haar_orthonormal(Rng& rng, Index rows, Index cols) {
  return thin_qr(rng.normal_matrix<Scalar>(rows, cols)).Q;
}

/// The top-r eigenvectors (largest eigenvalues first) of a symmetric matrix.
template <class Scalar>
Matrix<Scalar> top_eigenvectors(const Matrix<Scalar>& symmetric, Index r) {
  const Index n = symmetric.rows();
  // A non-finite matrix (overflowed moments) has no eigenvectors: NaN, for the caller to see.
  if (!symmetric.allFinite()) return Matrix<Scalar>::Constant(n, r, std::numeric_limits<Scalar>::quiet_NaN());
  Eigen::SelfAdjointEigenSolver<Matrix<Scalar>> es(symmetric);
  if (es.info() != Eigen::Success) return Matrix<Scalar>::Constant(n, r, std::numeric_limits<Scalar>::quiet_NaN());
  Matrix<Scalar> V(n, r);
  for (Index j = 0; j < r; ++j) V.col(j) = es.eigenvectors().col(n - 1 - j);
  return V;
}

/// Solve the symmetric positive (semi)definite system G X = B. Cholesky
/// (LLT) first; if it fails, yields non-finite values, or has a pivot at
/// rounding level (L_jj^2 <= 16 n eps max_j G_jj: G is singular to working
/// precision, and a Cholesky that "succeeds" on rounding noise returns an
/// O(1) null-space component), fall back to the pseudo-inverse through the
/// eigen-decomposition: the minimum-norm solution. Returns false only if the
/// result is still not finite.
template <class Scalar>
bool solve_spd(const Matrix<Scalar>& G, const Matrix<Scalar>& B, Matrix<Scalar>& X) {
  if (G.rows() == 0) {
    X = Matrix<Scalar>(0, B.cols());
    return true;
  }
  Eigen::LLT<Matrix<Scalar>> llt(G);
  if (llt.info() == Eigen::Success) {
    const auto& L = llt.matrixLLT();
    const Scalar floor = Scalar(16) * Scalar(G.rows()) * Eigen::NumTraits<Scalar>::epsilon() *
                         G.diagonal().cwiseAbs().maxCoeff();
    if (L.diagonal().cwiseAbs2().minCoeff() > floor) {
      X = llt.solve(B);
      if (X.allFinite()) return true;
    }
  }
  Eigen::SelfAdjointEigenSolver<Matrix<Scalar>> es(G);
  if (es.info() != Eigen::Success) return false;
  const auto& ev = es.eigenvalues();
  const Scalar cut = ev.cwiseAbs().maxCoeff() * Scalar(G.rows()) * Eigen::NumTraits<Scalar>::epsilon();
  Vector<Scalar> inv(ev.size());
  for (Index i = 0; i < ev.size(); ++i) inv(i) = ev(i) > cut ? Scalar(1) / ev(i) : Scalar(0);
  X = es.eigenvectors() * inv.asDiagonal() * (es.eigenvectors().transpose() * B);
  return X.allFinite();
}

}  // namespace colora
