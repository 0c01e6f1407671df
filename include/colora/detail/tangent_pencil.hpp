// Internals of regression_tangent_grip (diagnostics/tangent_grip.hpp states
// the constant, the derivation and the choices): the whitened tangent model,
// the pencil whose definiteness a Cholesky factorization decides, the
// shift-invert Lanczos that proposes trial points, and the bracket search.
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
struct TangentModel {
  Index k = 0, r = 0, m = 0, ra = 0;  // m = p - r, ra = rank of sum_i S_i^T S_i
  int num_threads = 0;
  std::vector<Vector<double>> mu;    // ascending eigenvalues of M_i = A Sigma_i A^T
  std::vector<Matrix<double>> Chat;  // r x m: U_i^T C_i (U_i eigenvectors of M_i)
  std::vector<Matrix<double>> Sw;    // r x ra: whitened cores, sum_i Sw_i^T Sw_i = I
  std::vector<Matrix<double>> Nw;    // ra x ra: Sw_i^T Sw_i
  Matrix<double> Q0;                 // (m ra)^2, lower block triangle: sum_i Nw_i (x) G_i
  double mu_min = 0, mu_max = 0;

  Index dim_f() const { return m * ra; }
  /// Threads for a parallel loop of about `flops` work: 1 below a threshold
  /// (a parallel region costs more than it saves there, and more still on a
  /// loaded machine); the results are the same for any thread count.
  int threads_for(double flops) const { return flops >= 4e6 ? num_threads : 1; }
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
class TangentPencil {
 public:
  TangentPencil(const TangentModel& md, bool coupled, int sign) : md_(md), coupled_(coupled), s_(sign) {}

  Index dim() const { return (coupled_ ? md_.dim_e() : 0) + md_.dim_f(); }

  void apply(const Eigen::Ref<const Vector<double>>& x, Vector<double>& y) const {
    const Index off = coupled_ ? md_.dim_e() : 0, nf = md_.dim_f(), r = md_.r, rr = r * r;
    y.setZero(dim());
    if (nf > 0) y.segment(off, nf).noalias() = md_.Q0.selfadjointView<Eigen::Lower>() * x.segment(off, nf);
    if (coupled_) {
      const Eigen::Map<const Matrix<double>> Phi(x.data() + off, md_.m, md_.ra);
      Eigen::Map<Matrix<double>> yPhi(y.data() + off, md_.m, md_.ra);
      for (Index i = 0; i < md_.k; ++i) {
        const Eigen::Map<const Matrix<double>> E(x.data() + i * rr, r, r);
        Eigen::Map<Matrix<double>> yE(y.data() + i * rr, r, r);
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
  bool factor(double tau) {
    tau_ = tau;
    const double sigma = double(s_) * tau;  // the trial lambda
    const Index m = md_.m, nf = md_.dim_f();
    if (coupled_) {
      dinv_.assign(size_t(md_.k), Vector<double>());
      for (Index i = 0; i < md_.k; ++i) {
        const Vector<double> d = md_.mu[size_t(i)].array() - sigma;
        if (!(double(s_) * d.minCoeff() > 0.0) || !(double(s_) * d.maxCoeff() > 0.0)) return false;
        dinv_[size_t(i)] = d.cwiseInverse();
      }
    }
    if (nf == 0) return true;
    // work = s (Q0 - sum_i N_i (x) Y_i) - tau I on the lower block triangle.
    if (work_.rows() != nf) work_.resize(nf, nf);
    const auto pairs = md_.block_pairs();
    const double block_work = double(m) * double(m);
    parallel_for(
        Index(pairs.size()), md_.threads_for(block_work * double(pairs.size())),
        [&](Index t) {
          const Index a = pairs[size_t(t)].first, b = pairs[size_t(t)].second;
          work_.block(a * m, b * m, m, m) = md_.Q0.block(a * m, b * m, m, m);
        },
        true);
    if (coupled_) {
      const Index chunk = tangent_chunk();
      std::vector<Matrix<double>> Y(size_t(std::min(chunk, md_.k)));
      for (Index c0 = 0; c0 < md_.k; c0 += chunk) {
        const Index c1 = std::min(md_.k, c0 + chunk);
        parallel_for(
            c1 - c0, md_.threads_for(2.0 * block_work * double(md_.r) * double(c1 - c0)),
            [&](Index j) {
              const auto& C = md_.Chat[size_t(c0 + j)];
              Y[size_t(j)].noalias() = C.transpose() * (dinv_[size_t(c0 + j)].asDiagonal() * C);
            },
            true);
        parallel_for(
            Index(pairs.size()), md_.threads_for(2.0 * block_work * double(pairs.size()) * double(c1 - c0)),
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
    Eigen::LLT<Eigen::Ref<Matrix<double>>, Eigen::Lower> llt(work_);  // in place: work_ holds L
    return llt.info() == Eigen::Success;
  }

  /// x = (G - tau I)^{-1} b for the tau of the last successful factor().
  void solve(const Eigen::Ref<const Vector<double>>& b, Vector<double>& x) const {
    const Index off = coupled_ ? md_.dim_e() : 0, nf = md_.dim_f(), r = md_.r, rr = r * r;
    x.resize(dim());
    const double s = double(s_);
    if (nf > 0) {
      Vector<double> rhs = b.segment(off, nf);
      if (coupled_) {
        Eigen::Map<Matrix<double>> R(rhs.data(), md_.m, md_.ra);
        for (Index i = 0; i < md_.k; ++i) {
          const Eigen::Map<const Matrix<double>> Bi(b.data() + i * rr, r, r);
          R.noalias() -= md_.Chat[size_t(i)].transpose() * ((dinv_[size_t(i)].asDiagonal() * Bi) * md_.Sw[size_t(i)]);
        }
      }
      work_.triangularView<Eigen::Lower>().solveInPlace(rhs);
      work_.triangularView<Eigen::Lower>().transpose().solveInPlace(rhs);
      x.segment(off, nf) = rhs;
    }
    if (coupled_) {
      const Eigen::Map<const Matrix<double>> Phi(x.data() + off, md_.m, md_.ra);
      for (Index i = 0; i < md_.k; ++i) {
        const Eigen::Map<const Matrix<double>> Bi(b.data() + i * rr, r, r);
        Eigen::Map<Matrix<double>> Ei(x.data() + i * rr, r, r);
        Matrix<double> t = s * Bi;
        if (nf > 0) t.noalias() -= (md_.Chat[size_t(i)] * Phi) * md_.Sw[size_t(i)].transpose();
        Ei = dinv_[size_t(i)].asDiagonal() * t;
      }
    }
  }

 private:
  const TangentModel& md_;
  bool coupled_;
  int s_;
  double tau_ = 0.0;
  Matrix<double> work_;
  std::vector<Vector<double>> dinv_;
};

struct TangentRitz {
  Vector<double> y;     // Ritz vector (unit)
  double theta1 = 0.0;  // largest Ritz value of (G - tau I)^{-1}
  double theta2 = 0.0;  // second largest (0 when only one)
};

/// Lanczos with full reorthogonalization on (G - tau I)^{-1} (positive definite).
inline TangentRitz tangent_lanczos(const TangentPencil& P, const Vector<double>& start, int max_steps, double eps) {
  const Index n = P.dim();
  const Index steps = std::min<Index>(n, max_steps);
  Matrix<double> V(n, steps);
  std::vector<double> alpha, beta;
  V.col(0) = start / start.norm();
  Vector<double> w;
  TangentRitz out;
  for (Index j = 0; j < steps; ++j) {
    P.solve(V.col(j), w);
    alpha.push_back(V.col(j).dot(w));
    for (int pass = 0; pass < 2; ++pass) {
      const Vector<double> h = V.leftCols(j + 1).transpose() * w;
      w.noalias() -= V.leftCols(j + 1) * h;
    }
    const double b = w.norm();
    Eigen::SelfAdjointEigenSolver<Matrix<double>> es;
    const Vector<double> diag = Eigen::Map<const Vector<double>>(alpha.data(), Index(alpha.size()));
    const Vector<double> sub = Eigen::Map<const Vector<double>>(beta.data(), Index(beta.size()));
    es.computeFromTridiagonal(diag, sub, Eigen::ComputeEigenvectors);
    out.theta1 = es.eigenvalues()(j);
    out.theta2 = j > 0 ? es.eigenvalues()(j - 1) : 0.0;
    const auto sv = es.eigenvectors().col(j);
    const double scale = std::max(std::abs(out.theta1), std::numeric_limits<double>::min());
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

struct TangentBracket {
  double lo = 0.0, hi = 0.0;
  int evaluations = 0;
  bool converged = false;
  Vector<double> vector;  // direction attaining hi when hi came from a Rayleigh quotient
};

/// The smallest eigenvalue of G in [lo, hi] (lo a certified lower bound, hi an
/// attained value or certified upper bound), narrowed to `tol` relative width
/// (or `abs_floor`): Cholesky tests of G - tau I, trial points from
/// shift-invert Lanczos with bisection as the fallback.
inline TangentBracket tangent_extreme(TangentPencil& P, double lo, double hi, double tol, double abs_floor,
                                      std::uint64_t stream, int max_evaluations = 60) {
  TangentBracket out;
  Rng rng(0x7a6e67656e74ULL, stream);
  const Index n = P.dim();
  Vector<double> warm = rng.normal_matrix<double>(n, 1);
  double tau = lo;  // the first test at the certified lower bound (0 for lambda_min: decides lambda_min = 0)
  const int max_steps = 60;
  const double eps = std::min(1e-4, 0.1 * tol);
  while (true) {
    const double target = std::max(tol * std::max(std::abs(lo), std::abs(hi)), abs_floor);
    if (hi - lo <= target) {
      out.converged = true;
      break;
    }
    if (out.evaluations >= max_evaluations) break;
    const bool pd = P.factor(tau);
    ++out.evaluations;
    double err;
    if (pd) {
      lo = std::max(lo, tau);
      Vector<double> start = warm;
      if (out.evaluations > 1) {
        Vector<double> noise = rng.normal_matrix<double>(n, 1);
        start += (0.01 / noise.norm()) * noise;
      }
      const TangentRitz rz = tangent_lanczos(P, start, max_steps, eps);
      Vector<double> Gy;
      P.apply(rz.y, Gy);
      const double rho = rz.y.dot(Gy);  // |y| = 1: an attained value of G
      const double res = (Gy - rho * rz.y).norm();
      if (rho < hi) {
        hi = std::max(rho, lo);
        out.vector = rz.y;
      }
      warm = rz.y;
      const double second = rz.theta2 > 0 ? tau + 1.0 / rz.theta2 : std::numeric_limits<double>::infinity();
      const double gap = second - rho;
      err = gap > res ? res * res / gap : res;
      err = std::min(err, hi - lo);
    } else {
      hi = std::min(hi, tau);
      err = 0.5 * (hi - lo);
    }
    const double next_target = std::max(tol * std::max(std::abs(lo), std::abs(hi)), abs_floor);
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
inline Matrix<double> tangent_whitener(const Matrix<double>& N, double thr = 1e-10) {
  Eigen::SelfAdjointEigenSolver<Matrix<double>> es(N);
  const Index r = N.rows();
  const double top = r > 0 ? es.eigenvalues()(r - 1) : 0.0;
  Index keep = 0;
  for (Index j = 0; j < r; ++j)
    if (top > 0 && es.eigenvalues()(j) > thr * top) ++keep;
  Matrix<double> out(r, keep);
  for (Index j = 0, c = 0; j < r; ++j)
    if (top > 0 && es.eigenvalues()(j) > thr * top) {
      out.col(c++) = es.eigenvectors().col(j) / std::sqrt(es.eigenvalues()(j));
    }
  return out;
}

}  // namespace detail

}  // namespace colora
