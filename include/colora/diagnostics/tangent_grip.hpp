// Tangent-space GRIP for (M1): an informative restricted-isometry constant
// for scarce tasks (docs/theory.md, "Tangent-space GRIP").
//
// The GRIP constant of grip.hpp takes the worst deviation from 1 of
//     ratio(D) = sum_i ||X_i D_i^T||^2 / n_i  /  sum_i ||D_i||_F^2
// over S_s (shared U, V of rank s = 2r). For (M1) it equals the extremes over
// tasks of the eigenvalues of Sigma_i = X_i^T X_i / n_i (all mass on one
// task is allowed), so it is >= 1 as soon as one n_i < p: useless when tasks
// are scarce. Here the same ratio is restricted to the tangent space T of the
// model at a point (A, B, S_1..S_k) (A r x p orthonormal rows, B q x r
// orthonormal columns):
//     D_i = B dS_i A + dB S_i A + B S_i dA,  dS_i r x r per task,
//     dB q x r with B^T dB = 0, dA r x p with dA A^T = 0 (shared).
// T is a subspace of S_{2r} (every D_i has column space in span(B, dB) and row
// space in span(A, dA)), so lambda_min_T >= lambda_min, lambda_max_T <=
// lambda_max and
//     delta_T = max(lambda_max_T - 1, 1 - lambda_min_T) <= delta
// (regression_grip_exact). All mass on one task is possible only through dS_i,
// where the ratio lies in the spectrum of M_i = A Sigma_i A^T (r x r); the
// shared directions dA, dB see the samples of all tasks together.
//
// Exact computation. With Z_i = X_i A^T, P an orthonormal basis of the
// complement of A's rows, dA = F P, W_i = X_i P^T, the three parts of D_i lie
// in orthogonal blocks, so
//   norm  sum_i ||dS_i||^2 + ||dB S_i||^2 + ||S_i F||^2
//   form  sum_i ||Z_i dS_i^T + W_i F^T S_i^T||^2 / n_i + ||Z_i S_i^T dB^T||^2 / n_i.
// (a) dB decouples: generalized eigenvalues of (K, N_B), K = sum_i S_i M_i S_i^T,
//     N_B = sum_i S_i S_i^T, each (q - r) times.
// (b) (dS, F): a symmetric pencil H - lambda N of size k r^2 + r (p - r). The dS_i
//     block is I_r (x) (M_i - lambda I); eliminating it (Haynsworth inertia)
//     leaves in Phi = F^T the Schur complement
//         Schur(lambda) = sum_i N_i (x) (G_i - lambda I - C_i^T (M_i - lambda I)^{-1} C_i),
//     N_i = S_i^T S_i, C_i = Z_i^T W_i / n_i, G_i = W_i^T W_i / n_i, an
//     r (p - r) square matrix. For lambda below every eigenvalue of every M_i,
//     H - lambda N is positive definite iff Schur(lambda) is (and for lambda
//     above them, lambda N - H iff -Schur(lambda) is): one Cholesky
//     factorization decides on which side of lambda_min_T (lambda_max_T) a
//     trial lambda lies. The search keeps a bracket [lo, hi]: lo certified by
//     a successful Cholesky factorization, hi by the Rayleigh quotient of an
//     explicit direction of T (or by a failed factorization); trial points come
//     from shift-invert Lanczos with the factorization just computed, with
//     bisection as the fallback. It stops when hi - lo <= tolerance * |lambda|
//     (or at rounding level near 0). The bracket is rigorous up to rounding.
//     (The general inertia count r sum_i #neg(M_i - lambda) + #neg(Schur) is not
//     needed: only the extremes are asked for, where the count is 0 or full, and
//     trial points never reach the spectrum of an M_i, so no nudging is needed.)
// The cores are whitened first: [choice] when sum_i S_i^T S_i (sum_i S_i S_i^T)
// is singular, the directions dA (dB) in its null space give D_i = 0; they are
// left out (the extremes are over the nonzero directions of T, exact),
// `degenerate` is set and `reason` says which. Everything runs in double.
//
// Cost: per task O(n_i p (p - r)) once; per factorization O(k r^2 (p - r)^2) to
// assemble and (r (p - r))^3 / 3 to factor; typically 2 or 3 factorizations per
// extreme, four extremes (full and shared, min and max). Measured (one thread,
// -O2 -march=native): 0.03 s at (k, n_i, p, q, r) = (100, 24, 64, 64, 4), 1.5 s
// at (100, 64, 256, 256, 8) (docs/theory.md).
//
//   regression_tangent_grip(pb)              at the planted truth (A*, B*, S_i*)
//   regression_tangent_grip(pb, A, B, cores) at any point (e.g. a fit's estimate)
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
#include "colora/regression/data.hpp"

namespace colora {

/// Options of regression_tangent_grip().
struct TangentGripOptions {
  double tolerance = 1e-6;  ///< bracket width relative to |lambda| (rounding level near 0)
  int num_threads = 0;      ///< threads over tasks and blocks (0 = all); the result does not depend on it

  void validate(const char* where = "colora::TangentGripOptions") const {
    detail::require(std::isfinite(tolerance) && tolerance > 0.0 && tolerance < 1.0, where,
                    "tolerance must be in (0, 1), got ", tolerance);
    detail::require(num_threads >= 0, where, "num_threads must be >= 0, got ", num_threads);
  }
};

/// The tangent-space GRIP constant and its certified brackets.
struct TangentGrip {
  bool valid = false;  ///< false when not computable (q < r); `reason` says why
  std::string reason;  ///< why not valid, or a note (degenerate cores, bracket not converged); empty otherwise
  bool degenerate = false;  ///< sum_i S_i^T S_i or sum_i S_i S_i^T singular: zero-norm directions left out
  double lambda_min = std::numeric_limits<double>::quiet_NaN();  ///< midpoint of [lambda_min_low, lambda_min_high]
  double lambda_min_low = std::numeric_limits<double>::quiet_NaN();
  double lambda_min_high = std::numeric_limits<double>::quiet_NaN();
  double lambda_max = std::numeric_limits<double>::quiet_NaN();  ///< midpoint of [lambda_max_low, lambda_max_high]
  double lambda_max_low = std::numeric_limits<double>::quiet_NaN();
  double lambda_max_high = std::numeric_limits<double>::quiet_NaN();
  double delta = std::numeric_limits<double>::quiet_NaN();  ///< max(lambda_max - 1, 1 - lambda_min)
  double delta_low = std::numeric_limits<double>::quiet_NaN();   ///< from the inner ends of the brackets
  double delta_high = std::numeric_limits<double>::quiet_NaN();  ///< from the outer ends: delta_T <= delta_high
  /// Extremes over the shared directions only (dS = 0: the dA block and the dB
  /// block); NaN when T has no shared direction of positive norm.
  double shared_lambda_min = std::numeric_limits<double>::quiet_NaN();
  double shared_lambda_max = std::numeric_limits<double>::quiet_NaN();
  double shared_lambda_min_low = std::numeric_limits<double>::quiet_NaN(), shared_lambda_min_high = shared_lambda_min_low;
  double shared_lambda_max_low = std::numeric_limits<double>::quiet_NaN(), shared_lambda_max_high = shared_lambda_max_low;
  /// delta_shared = max(shared_lambda_max - 1, 1 - shared_lambda_min): the GRIP
  /// constant over the shared tangent directions, whose mass is spread across
  /// the tasks (in proportion to ||S_i||); [low, high] from the brackets.
  double shared_delta = std::numeric_limits<double>::quiet_NaN();
  double shared_delta_low = std::numeric_limits<double>::quiet_NaN();
  double shared_delta_high = std::numeric_limits<double>::quiet_NaN();
  Index dimension = 0;  ///< dim T = k r^2 + rank(sum S^T S) (p - r) + rank(sum S S^T) (q - r)
  int evaluations = 0;  ///< Cholesky factorizations (definiteness tests) run
};

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

/// Tangent-space GRIP of (M1) at the point (A, B, cores): A r x p, B q x r,
/// cores k matrices r x r (A's rows and B's columns need not be orthonormal:
/// B S A = Qb (Rb S Ra^T) Qa^T is used). q < r returns valid = false; bad
/// input throws std::invalid_argument.
template <class Scalar>
TangentGrip regression_tangent_grip(const RegressionProblem<Scalar>& pb, const Matrix<Scalar>& A,
                                    const Matrix<Scalar>& B, const std::vector<Matrix<Scalar>>& cores,
                                    const TangentGripOptions& opt = {}) {
  const char* where = "colora::regression_tangent_grip";
  opt.validate(where);
  pb.validate(where);
  const Index k = pb.num_tasks(), p = pb.input_dim(), q = pb.output_dim(), r = A.rows();
  detail::require(r >= 1, where, "A must have at least 1 row (r >= 1), got ", r);
  detail::require(A.cols() == p, where, "A must be r x p = ", r, " x ", p, ", got ", A.rows(), " x ", A.cols());
  detail::require(r <= p, where, "A has r = ", r, " rows but p = ", p, ": needs r <= p");
  detail::require(B.rows() == q && B.cols() == r, where, "B must be q x r = ", q, " x ", r, ", got ", B.rows(), " x ",
                  B.cols());
  detail::require(Index(cores.size()) == k, where, "cores must hold k = ", k, " matrices, got ", cores.size());
  for (size_t i = 0; i < cores.size(); ++i) {
    detail::require(cores[i].rows() == r && cores[i].cols() == r, where, "task ", i, ": core must be r x r = ", r,
                    " x ", r, ", got ", cores[i].rows(), " x ", cores[i].cols());
    detail::require_finite(cores[i], where, detail::concat("task ", i, ": core"));
  }
  detail::require_finite(A, where, "A");
  detail::require_finite(B, where, "B");

  TangentGrip out;
  if (q < r) {
    out.reason = detail::concat("q = ", q, " < r = ", r,
                                ": B cannot have orthonormal columns (personal-head model); the tangent space of "
                                "(M1) is not defined here");
    return out;
  }
  const Index m = p - r;

  // Orthonormalize: A^T = Qa Ra, B = Qb Rb, B S A = Qb (Rb S Ra^T) Qa^T.
  const Matrix<double> Ad = A.template cast<double>(), Bd = B.template cast<double>();
  Eigen::HouseholderQR<Matrix<double>> qra(Ad.transpose());
  const Matrix<double> Qfull = qra.householderQ();
  const Matrix<double> Ra = qra.matrixQR().topRows(r).template triangularView<Eigen::Upper>();
  Eigen::HouseholderQR<Matrix<double>> qrb(Bd);
  const Matrix<double> Rb = qrb.matrixQR().topRows(r).template triangularView<Eigen::Upper>();
  const Matrix<double> Qa = Qfull.leftCols(r), P = Qfull.rightCols(m);
  std::vector<Matrix<double>> Sp(static_cast<size_t>(k));
  Matrix<double> NA = Matrix<double>::Zero(r, r), NB = Matrix<double>::Zero(r, r);
  for (Index i = 0; i < k; ++i) {
    Sp[size_t(i)] = Rb * cores[size_t(i)].template cast<double>() * Ra.transpose();
    NA.noalias() += Sp[size_t(i)].transpose() * Sp[size_t(i)];
    NB.noalias() += Sp[size_t(i)] * Sp[size_t(i)].transpose();
  }
  const Matrix<double> WA = detail::tangent_whitener(NA), WB = detail::tangent_whitener(NB);

  detail::TangentModel md;
  md.k = k;
  md.r = r;
  md.m = m;
  md.ra = m > 0 ? WA.cols() : 0;
  md.num_threads = opt.num_threads;
  md.mu.resize(size_t(k));
  md.Chat.resize(size_t(k));
  md.Sw.resize(size_t(k));
  md.Nw.resize(size_t(k));
  for (Index i = 0; i < k; ++i) {
    md.Sw[size_t(i)] = Sp[size_t(i)] * WA;
    md.Nw[size_t(i)] = md.Sw[size_t(i)].transpose() * md.Sw[size_t(i)];
  }
  const Index nf = md.dim_f();
  if (nf > 0) md.Q0 = Matrix<double>::Zero(nf, nf);
  std::vector<double> ub_task(static_cast<size_t>(k), 0.0);
  std::vector<Matrix<double>> K_task(static_cast<size_t>(k));
  const auto pairs = md.block_pairs();

  // One pass over the data, in chunks of tasks: M_i, C_i, ub_i, and Q0 = sum_i N_i (x) G_i.
  const Index chunk = detail::tangent_chunk();
  std::vector<Matrix<double>> G(size_t(std::min(chunk, k)));
  for (Index c0 = 0; c0 < k; c0 += chunk) {
    const Index c1 = std::min(k, c0 + chunk);
    double chunk_work = 0.0;
    for (Index i = c0; i < c1; ++i) chunk_work += 2.0 * double(pb.samples(i)) * double(p) * double(p + m);
    detail::parallel_for(
        c1 - c0, md.threads_for(chunk_work),
        [&](Index j) {
          const Index i = c0 + j;
          const Matrix<double> X = pb.tasks[size_t(i)].X.template cast<double>();
          const Index n = X.rows();
          const Matrix<double> Z = X * Qa;
          const Matrix<double> W = X * P;
          const Matrix<double> M = (Z.transpose() * Z) / double(n);
          Eigen::SelfAdjointEigenSolver<Matrix<double>> es(M);
          md.mu[size_t(i)] = es.eigenvalues().cwiseMax(0.0);  // M_i is PSD: no rounding-negative values
          md.Chat[size_t(i)] = es.eigenvectors().transpose() * ((Z.transpose() * W) / double(n));
          K_task[size_t(i)] = Sp[size_t(i)] * M * Sp[size_t(i)].transpose();
          const Matrix<double> gram = n >= p ? Matrix<double>(X.transpose() * X) : Matrix<double>(X * X.transpose());
          Eigen::SelfAdjointEigenSolver<Matrix<double>> eg(gram / double(n), Eigen::EigenvaluesOnly);
          ub_task[size_t(i)] = eg.eigenvalues()(gram.rows() - 1);
          if (nf > 0) G[size_t(j)] = (W.transpose() * W) / double(n);
        },
        true);
    if (nf > 0)
      detail::parallel_for(
          Index(pairs.size()), md.threads_for(2.0 * double(m) * double(m) * double(pairs.size()) * double(c1 - c0)),
          [&](Index t) {
            const Index a = pairs[size_t(t)].first, b = pairs[size_t(t)].second;
            auto blk = md.Q0.block(a * m, b * m, m, m);
            for (Index i = c0; i < c1; ++i) blk += md.Nw[size_t(i)](a, b) * G[size_t(i - c0)];
          },
          true);
  }
  G.clear();
  double ub = 0.0;
  md.mu_min = std::numeric_limits<double>::infinity();
  md.mu_max = -std::numeric_limits<double>::infinity();
  for (Index i = 0; i < k; ++i) {
    ub = std::max(ub, ub_task[size_t(i)]);
    md.mu_min = std::min(md.mu_min, md.mu[size_t(i)](0));
    md.mu_max = std::max(md.mu_max, md.mu[size_t(i)](r - 1));
  }
  ub = std::max(ub, md.mu_max);

  // (a) the dB block: eigenvalues of the whitened K, each (q - r) times.
  const Index rb = q > r ? WB.cols() : 0;
  double kap_min = std::numeric_limits<double>::infinity(), kap_max = -std::numeric_limits<double>::infinity();
  if (rb > 0) {
    Matrix<double> K = Matrix<double>::Zero(r, r);
    for (Index i = 0; i < k; ++i) K += K_task[size_t(i)];
    const Matrix<double> Kw = WB.transpose() * K * WB;
    Eigen::SelfAdjointEigenSolver<Matrix<double>> ek(0.5 * (Kw + Kw.transpose()), Eigen::EigenvaluesOnly);
    kap_min = std::max(0.0, ek.eigenvalues()(0));
    kap_max = ek.eigenvalues()(rb - 1);
  }

  const double tol = opt.tolerance;
  const double abs_floor = 64.0 * std::numeric_limits<double>::epsilon() * std::max(1.0, ub);
  bool all_converged = true;
  int evals = 0;

  // (b) the shared dA block alone (Q0), then the coupled (dS, dA) pencil.
  double sh_min_lo = std::numeric_limits<double>::infinity(), sh_min_hi = sh_min_lo;
  double sh_max_lo = -std::numeric_limits<double>::infinity(), sh_max_hi = sh_max_lo;
  double f_min_lo = md.mu_min, f_min_hi = md.mu_min, f_max_lo = md.mu_max, f_max_hi = md.mu_max;
  if (nf > 0) {
    const double dmin = md.Q0.diagonal().minCoeff(), dmax = md.Q0.diagonal().maxCoeff();
    {
      detail::TangentPencil pen(md, false, +1);
      const auto b = detail::tangent_extreme(pen, 0.0, dmin, tol, abs_floor, 1);
      sh_min_lo = b.lo;
      sh_min_hi = b.hi;
      evals += b.evaluations;
      all_converged = all_converged && b.converged;
    }
    {
      detail::TangentPencil pen(md, false, -1);
      const auto b = detail::tangent_extreme(pen, -ub, -dmax, tol, abs_floor, 2);
      sh_max_lo = -b.hi;
      sh_max_hi = -b.lo;
      evals += b.evaluations;
      all_converged = all_converged && b.converged;
    }
    {
      detail::TangentPencil pen(md, true, +1);
      const auto b = detail::tangent_extreme(pen, 0.0, std::min(md.mu_min, sh_min_hi), tol, abs_floor, 3);
      f_min_lo = b.lo;
      f_min_hi = b.hi;
      evals += b.evaluations;
      all_converged = all_converged && b.converged;
    }
    {
      detail::TangentPencil pen(md, true, -1);
      const auto b = detail::tangent_extreme(pen, -ub, -std::max(md.mu_max, sh_max_lo), tol, abs_floor, 4);
      f_max_lo = -b.hi;
      f_max_hi = -b.lo;
      evals += b.evaluations;
      all_converged = all_converged && b.converged;
    }
  }

  out.valid = true;
  out.evaluations = evals;
  out.dimension = k * r * r + nf + rb * (q - r);
  out.lambda_min_low = std::min(f_min_lo, kap_min);
  out.lambda_min_high = std::min(f_min_hi, kap_min);
  out.lambda_max_low = std::max(f_max_lo, kap_max);
  out.lambda_max_high = std::max(f_max_hi, kap_max);
  out.lambda_min = 0.5 * (out.lambda_min_low + out.lambda_min_high);
  out.lambda_max = 0.5 * (out.lambda_max_low + out.lambda_max_high);
  out.delta = std::max(out.lambda_max - 1.0, 1.0 - out.lambda_min);
  out.delta_low = std::max(out.lambda_max_low - 1.0, 1.0 - out.lambda_min_high);
  out.delta_high = std::max(out.lambda_max_high - 1.0, 1.0 - out.lambda_min_low);
  if (nf > 0 || rb > 0) {
    out.shared_lambda_min_low = std::min(nf > 0 ? sh_min_lo : kap_min, kap_min);
    out.shared_lambda_min_high = std::min(nf > 0 ? sh_min_hi : kap_min, kap_min);
    out.shared_lambda_max_low = std::max(nf > 0 ? sh_max_lo : kap_max, kap_max);
    out.shared_lambda_max_high = std::max(nf > 0 ? sh_max_hi : kap_max, kap_max);
    out.shared_lambda_min = 0.5 * (out.shared_lambda_min_low + out.shared_lambda_min_high);
    out.shared_lambda_max = 0.5 * (out.shared_lambda_max_low + out.shared_lambda_max_high);
    out.shared_delta = std::max(out.shared_lambda_max - 1.0, 1.0 - out.shared_lambda_min);
    out.shared_delta_low = std::max(out.shared_lambda_max_low - 1.0, 1.0 - out.shared_lambda_min_high);
    out.shared_delta_high = std::max(out.shared_lambda_max_high - 1.0, 1.0 - out.shared_lambda_min_low);
  }
  const Index rank_a = WA.cols(), rank_b = WB.cols();
  if ((m > 0 && rank_a < r) || (q > r && rank_b < r)) {
    out.degenerate = true;
    out.reason = detail::concat("degenerate cores: rank(sum_i S_i^T S_i) = ", rank_a, ", rank(sum_i S_i S_i^T) = ",
                                rank_b, " of r = ", r,
                                "; the dA/dB directions in their null spaces give D_i = 0 and are left out");
  }
  if (!all_converged) {
    if (!out.reason.empty()) out.reason += "; ";
    out.reason += "a bracket did not reach the tolerance within the evaluation limit (it is still rigorous)";
  }
  return out;
}

/// Tangent-space GRIP of (M1) at the planted truth (A*, B*, S_i*) =
/// (truth.A_shared, truth.B_shared, truth.S[i]); requires pb.truth. With
/// theta_a, theta_b > 0 the tasks' own rotations A_i*, B_i* are not used: T is
/// the tangent space of the shared-factor model at the shared factors.
template <class Scalar>
TangentGrip regression_tangent_grip(const RegressionProblem<Scalar>& pb, const TangentGripOptions& opt = {}) {
  const char* where = "colora::regression_tangent_grip";
  detail::require(pb.truth.has_value(), where, "the problem has no planted truth (pb.truth is empty)");
  const auto& t = *pb.truth;
  return regression_tangent_grip(pb, t.A_shared, t.B_shared, t.S, opt);
}

}  // namespace colora
