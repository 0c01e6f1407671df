// Internals of regression_tangent_grip (diagnostics/tangent_grip.hpp states
// the constant, the derivation and the choices): the whitened tangent model,
// the pencil whose definiteness a Cholesky factorization decides, the
// shift-invert Lanczos that proposes trial points, and the bracket search.
// Templates on the working type (always double) so that a translation unit
// that includes the library but never calls regression_tangent_grip does not
// compile them (compile time of every user file).
#pragma once

#include <Eigen/Cholesky>
#include <Eigen/Eigenvalues>
#include <Eigen/QR>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "colora/core/config.hpp"
#include "colora/core/errors.hpp"
#include "colora/core/random.hpp"
#include "colora/detail/parallel.hpp"

namespace colora {

namespace detail {

/// Everything the tangent pencil needs, in double, in whitened coordinates
/// (see the header): the dS_i block in the eigenbasis of M_i, the dA block as
/// Phi (m x ra) with norm ||Phi||_F^2.
template <class Real>
struct TangentModel {
  Index k = 0, r = 0, m = 0, ra = 0;  // m = p - r, ra = rank of sum_i S_i^T S_i
  int num_threads = 0;
  std::vector<Vector<Real>> mu;    // ascending eigenvalues of M_i = A Sigma_i A^T
  std::vector<Matrix<Real>> Chat;  // r x m: U_i^T C_i (U_i eigenvectors of M_i)
  std::vector<Matrix<Real>> Sw;    // r x ra: whitened cores, sum_i Sw_i^T Sw_i = I
  std::vector<Matrix<Real>> Nw;    // ra x ra: Sw_i^T Sw_i
  Matrix<Real> Q0;                 // (m ra)^2, lower block triangle: sum_i Nw_i (x) G_i
  Real mu_min = 0, mu_max = 0;

  Index dim_f() const { return m * ra; }
  /// Threads for a parallel loop of about `flops` work: 1 below a threshold
  /// (a parallel region costs more than it saves there, and more still on a
  /// loaded machine); the results are the same for any thread count.
  int threads_for(Real flops) const { return flops >= 4e6 ? num_threads : 1; }
  Index dim_e() const { return k * r * r; }
  /// Lower block pairs (a, b), a >= b, of the ra x ra block structure.
  std::vector<std::pair<Index, Index>> block_pairs() const {
    std::vector<std::pair<Index, Index>> out;
    for (Index b = 0; b < ra; ++b)
      for (Index a = b; a < ra; ++a) out.emplace_back(a, b);
    return out;
  }
};

/// Tasks per chunk of the block assembly (bounds the memory of the per-task
/// m x m matrices; the sums run over tasks in order whatever the chunking).
inline Index tangent_chunk() { return 16; }

/// G = sign * H' (H' the form in whitened coordinates, identity norm) on
/// either the coupled (dS, dA) space or the shared dA space alone; factor(tau)
/// decides whether G - tau I is positive definite, solve() applies its inverse.
template <class Real>
class TangentPencil {
 public:
  TangentPencil(const TangentModel<Real>& md, bool coupled, int sign) : md_(md), coupled_(coupled), s_(sign) {}

  Index dim() const { return (coupled_ ? md_.dim_e() : 0) + md_.dim_f(); }

  void apply(const Eigen::Ref<const Vector<Real>>& x, Vector<Real>& y) const {
    const Index off = coupled_ ? md_.dim_e() : 0, nf = md_.dim_f(), r = md_.r, rr = r * r;
    y.setZero(dim());
    if (nf > 0) y.segment(off, nf).noalias() = md_.Q0.template selfadjointView<Eigen::Lower>() * x.segment(off, nf);
    if (coupled_) {
      const Eigen::Map<const Matrix<Real>> Phi(x.data() + off, md_.m, md_.ra);
      Eigen::Map<Matrix<Real>> yPhi(y.data() + off, md_.m, md_.ra);
      for (Index i = 0; i < md_.k; ++i) {
        const Eigen::Map<const Matrix<Real>> E(x.data() + i * rr, r, r);
        Eigen::Map<Matrix<Real>> yE(y.data() + i * rr, r, r);
        yE = md_.mu[size_t(i)].asDiagonal() * E;
        if (nf > 0) {
          const auto& C = md_.Chat[size_t(i)];
          const auto& S = md_.Sw[size_t(i)];
          yE.noalias() += (C * Phi) * S.transpose();
          yPhi.noalias() += C.transpose() * (E * S);
        }
      }
    }
    if (s_ < 0) y = -y;
  }

  /// Whether G - tau I is positive definite (keeps the factor for solve()).
  bool factor(Real tau) {
    tau_ = tau;
    const Real sigma = Real(s_) * tau;  // the trial lambda
    const Index m = md_.m, nf = md_.dim_f();
    if (coupled_) {
      dinv_.assign(size_t(md_.k), Vector<Real>());
      for (Index i = 0; i < md_.k; ++i) {
        const Vector<Real> d = md_.mu[size_t(i)].array() - sigma;
        if (!(Real(s_) * d.minCoeff() > 0.0) || !(Real(s_) * d.maxCoeff() > 0.0)) return false;
        dinv_[size_t(i)] = d.cwiseInverse();
      }
    }
    if (nf == 0) return true;
    // work = s (Q0 - sum_i N_i (x) Y_i) - tau I on the lower block triangle.
    if (work_.rows() != nf) work_.resize(nf, nf);
    const auto pairs = md_.block_pairs();
    const Real block_work = Real(m) * Real(m);
    parallel_for(
        Index(pairs.size()), md_.threads_for(block_work * Real(pairs.size())),
        [&](Index t) {
          const Index a = pairs[size_t(t)].first, b = pairs[size_t(t)].second;
          work_.block(a * m, b * m, m, m) = md_.Q0.block(a * m, b * m, m, m);
        },
        true);
    if (coupled_) {
      const Index chunk = tangent_chunk();
      std::vector<Matrix<Real>> Y(size_t(std::min(chunk, md_.k)));
      for (Index c0 = 0; c0 < md_.k; c0 += chunk) {
        const Index c1 = std::min(md_.k, c0 + chunk);
        parallel_for(
            c1 - c0, md_.threads_for(2.0 * block_work * Real(md_.r) * Real(c1 - c0)),
            [&](Index j) {
              const auto& C = md_.Chat[size_t(c0 + j)];
              Y[size_t(j)].noalias() = C.transpose() * (dinv_[size_t(c0 + j)].asDiagonal() * C);
            },
            true);
        parallel_for(
            Index(pairs.size()), md_.threads_for(2.0 * block_work * Real(pairs.size()) * Real(c1 - c0)),
            [&](Index t) {
              const Index a = pairs[size_t(t)].first, b = pairs[size_t(t)].second;
              auto blk = work_.block(a * m, b * m, m, m);
              for (Index i = c0; i < c1; ++i) blk -= md_.Nw[size_t(i)](a, b) * Y[size_t(i - c0)];
            },
            true);
      }
    }
    if (s_ < 0) {
      for (const auto& pr : pairs) work_.block(pr.first * m, pr.second * m, m, m) *= -1.0;
    }
    work_.diagonal().array() -= tau;
    for (Index j = 0; j < nf; ++j)
      if (!std::isfinite(work_(j, j))) return false;
    Eigen::LLT<Eigen::Ref<Matrix<Real>>, Eigen::Lower> llt(work_);  // in place: work_ holds L
    return llt.info() == Eigen::Success;
  }

  /// x = (G - tau I)^{-1} b for the tau of the last successful factor().
  void solve(const Eigen::Ref<const Vector<Real>>& b, Vector<Real>& x) const {
    const Index off = coupled_ ? md_.dim_e() : 0, nf = md_.dim_f(), r = md_.r, rr = r * r;
    x.resize(dim());
    const Real s = Real(s_);
    if (nf > 0) {
      Vector<Real> rhs = b.segment(off, nf);
      if (coupled_) {
        Eigen::Map<Matrix<Real>> R(rhs.data(), md_.m, md_.ra);
        for (Index i = 0; i < md_.k; ++i) {
          const Eigen::Map<const Matrix<Real>> Bi(b.data() + i * rr, r, r);
          R.noalias() -= md_.Chat[size_t(i)].transpose() * ((dinv_[size_t(i)].asDiagonal() * Bi) * md_.Sw[size_t(i)]);
        }
      }
      work_.template triangularView<Eigen::Lower>().solveInPlace(rhs);
      work_.template triangularView<Eigen::Lower>().transpose().solveInPlace(rhs);
      x.segment(off, nf) = rhs;
    }
    if (coupled_) {
      const Eigen::Map<const Matrix<Real>> Phi(x.data() + off, md_.m, md_.ra);
      for (Index i = 0; i < md_.k; ++i) {
        const Eigen::Map<const Matrix<Real>> Bi(b.data() + i * rr, r, r);
        Eigen::Map<Matrix<Real>> Ei(x.data() + i * rr, r, r);
        Matrix<Real> t = s * Bi;
        if (nf > 0) t.noalias() -= (md_.Chat[size_t(i)] * Phi) * md_.Sw[size_t(i)].transpose();
        Ei = dinv_[size_t(i)].asDiagonal() * t;
      }
    }
  }

 private:
  const TangentModel<Real>& md_;
  bool coupled_;
  int s_;
  Real tau_ = 0.0;
  Matrix<Real> work_;
  std::vector<Vector<Real>> dinv_;
};

template <class Real>
struct TangentRitz {
  Vector<Real> y;     // Ritz vector (unit)
  Real theta1 = 0.0;  // largest Ritz value of (G - tau I)^{-1}
  Real theta2 = 0.0;  // second largest (0 when only one)
};

/// Lanczos with full reorthogonalization on (G - tau I)^{-1} (positive definite).
template <class Real>
TangentRitz<Real> tangent_lanczos(const TangentPencil<Real>& P, const Vector<Real>& start, int max_steps, Real eps) {
  const Index n = P.dim();
  const Index steps = std::min<Index>(n, max_steps);
  Matrix<Real> V(n, steps);
  std::vector<Real> alpha, beta;
  V.col(0) = start / start.norm();
  Vector<Real> w;
  TangentRitz<Real> out;
  for (Index j = 0; j < steps; ++j) {
    P.solve(V.col(j), w);
    alpha.push_back(V.col(j).dot(w));
    for (int pass = 0; pass < 2; ++pass) {
      const Vector<Real> h = V.leftCols(j + 1).transpose() * w;
      w.noalias() -= V.leftCols(j + 1) * h;
    }
    const Real b = w.norm();
    Eigen::SelfAdjointEigenSolver<Matrix<Real>> es;
    const Vector<Real> diag = Eigen::Map<const Vector<Real>>(alpha.data(), Index(alpha.size()));
    const Vector<Real> sub = Eigen::Map<const Vector<Real>>(beta.data(), Index(beta.size()));
    es.computeFromTridiagonal(diag, sub, Eigen::ComputeEigenvectors);
    out.theta1 = es.eigenvalues()(j);
    out.theta2 = j > 0 ? es.eigenvalues()(j - 1) : 0.0;
    const auto sv = es.eigenvectors().col(j);
    const Real scale = std::max(std::abs(out.theta1), std::numeric_limits<Real>::min());
    const bool done = b * std::abs(sv(j)) <= eps * scale || b <= 1e-13 * scale || j + 1 == steps;
    if (done) {
      out.y = V.leftCols(j + 1) * sv;
      out.y /= out.y.norm();
      return out;
    }
    beta.push_back(b);
    V.col(j + 1) = w / b;
  }
  return out;  // not reached
}

template <class Real>
struct TangentBracket {
  Real lo = 0.0, hi = 0.0;
  int evaluations = 0;
  bool converged = false;
  Vector<Real> vector;  // direction attaining hi when hi came from a Rayleigh quotient
};

/// The smallest eigenvalue of G in [lo, hi] (lo a certified lower bound, hi an
/// attained value or certified upper bound), narrowed to `tol` relative width
/// (or `abs_floor`): Cholesky tests of G - tau I, trial points from
/// shift-invert Lanczos with bisection as the fallback.
template <class Real>
TangentBracket<Real> tangent_extreme(TangentPencil<Real>& P, Real lo, Real hi, Real tol, Real abs_floor,
                                      std::uint64_t stream, int max_evaluations = 60) {
  TangentBracket<Real> out;
  Rng rng(0x7a6e67656e74ULL, stream);
  const Index n = P.dim();
  Vector<Real> warm = rng.normal_matrix<Real>(n, 1);
  Real tau = lo;  // the first test at the certified lower bound (0 for lambda_min: decides lambda_min = 0)
  const int max_steps = 60;
  const Real eps = std::min(1e-4, 0.1 * tol);
  while (true) {
    const Real target = std::max(tol * std::max(std::abs(lo), std::abs(hi)), abs_floor);
    if (hi - lo <= target) {
      out.converged = true;
      break;
    }
    if (out.evaluations >= max_evaluations) break;
    const bool pd = P.factor(tau);
    ++out.evaluations;
    Real err;
    if (pd) {
      lo = std::max(lo, tau);
      Vector<Real> start = warm;
      if (out.evaluations > 1) {
        Vector<Real> noise = rng.normal_matrix<Real>(n, 1);
        start += (0.01 / noise.norm()) * noise;
      }
      const TangentRitz<Real> rz = tangent_lanczos(P, start, max_steps, eps);
      Vector<Real> Gy;
      P.apply(rz.y, Gy);
      const Real rho = rz.y.dot(Gy);  // |y| = 1: an attained value of G
      const Real res = (Gy - rho * rz.y).norm();
      if (rho < hi) {
        hi = std::max(rho, lo);
        out.vector = rz.y;
      }
      warm = rz.y;
      const Real second = rz.theta2 > 0 ? tau + 1.0 / rz.theta2 : std::numeric_limits<Real>::infinity();
      const Real gap = second - rho;
      err = gap > res ? res * res / gap : res;
      err = std::min(err, hi - lo);
    } else {
      hi = std::min(hi, tau);
      err = 0.5 * (hi - lo);
    }
    const Real next_target = std::max(tol * std::max(std::abs(lo), std::abs(hi)), abs_floor);
    tau = hi - std::max(2.0 * err, 0.25 * next_target);
    if (!(tau > lo)) tau = 0.5 * (lo + hi);
  }
  out.lo = std::min(lo, hi);
  out.hi = hi;
  return out;
}

/// Whitening of a symmetric PSD r x r matrix N on its range: V_k
/// diag(lambda_k^{-1/2}) over the eigenpairs with lambda > thr * lambda_max
/// (an r x rank matrix W with W^T N W = I; rank 0 when N = 0).
template <class Real>
Matrix<Real> tangent_whitener(const Matrix<Real>& N, Real thr = 1e-10) {
  Eigen::SelfAdjointEigenSolver<Matrix<Real>> es(N);
  const Index r = N.rows();
  const Real top = r > 0 ? es.eigenvalues()(r - 1) : 0.0;
  Index keep = 0;
  for (Index j = 0; j < r; ++j)
    if (top > 0 && es.eigenvalues()(j) > thr * top) ++keep;
  Matrix<Real> out(r, keep);
  for (Index j = 0, c = 0; j < r; ++j)
    if (top > 0 && es.eigenvalues()(j) > thr * top) {
      out.col(c++) = es.eigenvectors().col(j) / std::sqrt(es.eigenvalues()(j));
    }
  return out;
}

}  // namespace detail

}  // namespace colora
