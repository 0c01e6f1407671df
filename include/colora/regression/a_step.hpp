// The A-step solvers of the alternating-minimization kernel (altmin::a_step; docs/solver.md).
//
// With B and the cores fixed, G = A^T (p x r) minimises the quadratic
//   f(G) = sum_i w_i ||target_i - A_i(B S_i G^T)||^2,
// whose normal equations are H(G) = rhs with (M1)
//   H(G) = sum_i w_i X_i^T X_i G (S_i^T B^T B S_i),  rhs = sum_i w_i X_i^T R_i B S_i.
// Three solvers behind AStepSolver:
//   Exact : assemble H as a dense pr x pr matrix and Cholesky it. O((pr)^3).
//   Cg    : matrix-free preconditioned conjugate gradients, warm-started at
//           the current A^T. One product costs O(sum_i n_i p r). The
//           preconditioner is the Kronecker approximation H ~ C_bar (x) D with
//           C_bar = sum_i w_i n_i S_i^T B^T B S_i and D the pooled diagonal
//           input second moment: exact when X_i^T X_i = n_i D, which makes CG
//           converge in a handful of products on well-conditioned designs
//           [choice: this preconditioner]. Each A-step stops once the
//           residual fell by Options::cg_reduction (default 1e-2) from its
//           warm start, or below cg_tolerance ||rhs|| [choice: inexact
//           A-step; the warm start's residual shrinks as the outer iteration
//           converges, so the fixed point is the exact one].
//   Gd    : one gradient step G <- G - (eta / L) (H(G) - rhs) with
//           L = max(D) lambda_max(C_bar), the Lipschitz constant of the
//           Kronecker approximation (the AltGDmin / FedRep update; eta =
//           Options::gd_step) [choice: step normalisation].
#pragma once

#include <Eigen/Cholesky>
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "colora/core/enum_names.hpp"
#include "colora/core/errors.hpp"
#include "colora/core/linalg.hpp"

namespace colora {

enum class AStepSolver { Exact, Cg, Gd };

template <>
struct EnumNames<AStepSolver> {
  static constexpr const char* what = "A-step solver";
  static constexpr EnumName<AStepSolver> table[] = {{AStepSolver::Exact, "exact"},
                                                    {AStepSolver::Cg, "cg"},
                                                    {AStepSolver::Gd, "gd"}};
};
inline const char* to_string(AStepSolver s) noexcept { return enum_name(s); }
inline AStepSolver parse_a_step_solver(const std::string& s) {
  return parse_enum<AStepSolver>(s, "colora::parse_a_step_solver");
}

/// What one A-step did.
struct AStepStats {
  int products = 0;       ///< operator products H(G) used
  double residual = 0.0;  ///< final ||rhs - H(G)||_F / ||rhs||_F (cg; NaN otherwise)
  bool ok = true;         ///< false on a singular or non-finite system
};

namespace detail {

template <class Mat>
typename Mat::Scalar frob_dot(const Mat& a, const Mat& b) {
  return (a.array() * b.array()).sum();
}

/// G <- argmin f, dense Cholesky of the pr x pr system.
template <class System, class Mat>
AStepStats a_step_exact(const System& sys, Mat& G) {
  using Scalar = typename Mat::Scalar;
  AStepStats st;
  st.residual = std::numeric_limits<double>::quiet_NaN();
  const Matrix<Scalar> H = sys.dense_gram();
  const Eigen::Map<const Vector<Scalar>> b(sys.rhs().data(), sys.rhs().size());
  Matrix<Scalar> g;
  st.ok = solve_spd<Scalar>(H, Matrix<Scalar>(b), g);
  if (st.ok) G = Eigen::Map<const Mat>(g.data(), G.rows(), G.cols());
  return st;
}

/// Kronecker preconditioner: R -> D^{-1} R C_bar^{-1}.
template <class Scalar>
class KroneckerPreconditioner {
 public:
  template <class System>
  explicit KroneckerPreconditioner(const System& sys) {
    const auto& d = sys.d();
    inv_d_ = d.unaryExpr([](Scalar v) { return v > Scalar(0) ? Scalar(1) / v : Scalar(1); });
    const Matrix<Scalar>& C = sys.c_bar();
    Eigen::SelfAdjointEigenSolver<Matrix<Scalar>> es(C);
    const auto& ev = es.eigenvalues();
    const Scalar top = ev.size() ? ev.cwiseAbs().maxCoeff() : Scalar(0);
    const Scalar cut = top * Scalar(1e3) * Eigen::NumTraits<Scalar>::epsilon();
    Vector<Scalar> inv(ev.size());
    for (Index j = 0; j < ev.size(); ++j)
      inv(j) = ev(j) > cut ? Scalar(1) / ev(j) : (top > 0 ? Scalar(1) / top : Scalar(1));
    inv_c_ = es.eigenvectors() * inv.asDiagonal() * es.eigenvectors().transpose();
    lipschitz_ = double(d.size() ? d.maxCoeff() : Scalar(0)) * double(top);
  }
  Matrix<Scalar> apply(const Matrix<Scalar>& R) const { return inv_d_.asDiagonal() * R * inv_c_; }
  double lipschitz() const { return lipschitz_; }

 private:
  Vector<Scalar> inv_d_;
  Matrix<Scalar> inv_c_;
  double lipschitz_ = 0.0;
};

/// Preconditioned CG on H(G) = rhs from the current G. Stops when the
/// residual is below rel_tol ||rhs|| or below `reduction` times the residual
/// of the warm start (an inexact A-step whose accuracy grows as the outer
/// iteration converges, since the warm start's residual shrinks).
template <class System, class Mat>
AStepStats a_step_cg(const System& sys, Mat& G, int max_products, double rel_tol, double reduction) {
  using Scalar = typename Mat::Scalar;
  AStepStats st;
  const KroneckerPreconditioner<Scalar> pre(sys);
  const double bnorm = double(sys.rhs().norm());
  if (!(bnorm > 0)) {
    G.setZero();
    st.residual = 0;
    return st;
  }
  Mat R = sys.rhs() - sys.apply(G);
  ++st.products;
  Mat Z = pre.apply(R);
  Mat P = Z;
  Scalar rz = frob_dot(R, Z);
  double rnorm = double(R.norm());
  const double target = std::max(rel_tol * bnorm, reduction * rnorm);
  while (rnorm > target && st.products < max_products) {
    const Mat HP = sys.apply(P);
    ++st.products;
    const Scalar pHp = frob_dot(P, HP);
    if (!(pHp > Scalar(0)) || !std::isfinite(double(pHp))) break;  // converged to rounding or degenerate
    const Scalar alpha = rz / pHp;
    G.noalias() += alpha * P;
    R.noalias() -= alpha * HP;
    Z = pre.apply(R);
    const Scalar rz_new = frob_dot(R, Z);
    P = Z + (rz_new / rz) * P;
    rz = rz_new;
    rnorm = double(R.norm());
    if (!(rz > Scalar(0))) break;
  }
  st.residual = rnorm / bnorm;
  st.ok = G.allFinite();
  return st;
}

/// One gradient step of size eta / L.
template <class System, class Mat>
AStepStats a_step_gd(const System& sys, Mat& G, double eta) {
  using Scalar = typename Mat::Scalar;
  AStepStats st;
  const KroneckerPreconditioner<Scalar> pre(sys);
  const Mat grad = sys.apply(G) - sys.rhs();
  st.products = 1;
  if (pre.lipschitz() > 0) G.noalias() -= Scalar(eta / pre.lipschitz()) * grad;
  st.residual = std::numeric_limits<double>::quiet_NaN();
  st.ok = G.allFinite();
  return st;
}

}  // namespace detail
}  // namespace colora
