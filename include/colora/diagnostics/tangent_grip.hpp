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
#include "colora/detail/tangent_pencil.hpp"
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

  detail::TangentModel<double> md;
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
      detail::TangentPencil<double> pen(md, false, +1);
      const auto b = detail::tangent_extreme(pen, 0.0, dmin, tol, abs_floor, 1);
      sh_min_lo = b.lo;
      sh_min_hi = b.hi;
      evals += b.evaluations;
      all_converged = all_converged && b.converged;
    }
    {
      detail::TangentPencil<double> pen(md, false, -1);
      const auto b = detail::tangent_extreme(pen, -ub, -dmax, tol, abs_floor, 2);
      sh_max_lo = -b.hi;
      sh_max_hi = -b.lo;
      evals += b.evaluations;
      all_converged = all_converged && b.converged;
    }
    {
      detail::TangentPencil<double> pen(md, true, +1);
      const auto b = detail::tangent_extreme(pen, 0.0, std::min(md.mu_min, sh_min_hi), tol, abs_floor, 3);
      f_min_lo = b.lo;
      f_min_hi = b.hi;
      evals += b.evaluations;
      all_converged = all_converged && b.converged;
    }
    {
      detail::TangentPencil<double> pen(md, true, -1);
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
