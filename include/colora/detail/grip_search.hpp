// The GRIP search behind grip_estimate() (diagnostics/grip.hpp): internals.
// What it computes and why the result is a certified lower bound:
// docs/theory.md, "GRIP: what is computed and why it is a lower bound"; its
// cost: docs/theory.md, "Cost".
//
// Every task is searched separately (in parallel over tasks, each from
// `restarts` random starts) for the largest and the smallest restricted
// ratio, and the extreme over tasks is kept (reduced in task order). One
// search alternates
//   1. core step: for the current U, V the optimal core C is the extreme
//      eigenvector of the restricted Gram G_i(U, V);
//   2. factor step with C fixed:
//      (M1) block subspace iteration V <- orth(Sigma_i V) for the maximum and
//           V <- orth((c I - Sigma_i) V), c >= lambda_max, for the minimum,
//           with Sigma_i = X_i^T X_i / n_i applied as X_i^T (X_i V) / n_i;
//      (M2) one generalized-power-method step (Journee et al. 2010) on U and
//           then on V: U <- polar(H V C^T) for the maximum, polar(c U C C^T -
//           H V C^T) for the minimum, H = A_i^*(A_i(U C V^T)) / m_i.
//   Every step is checked; a step that worsens the value is undone (for the
//   minimum the shift c is doubled and the step retried).
// A search on one shared (U, V) for all tasks would get stuck on the task
// that looks extreme from the random start; per-task searches cost the same
// per round (one operator product per task) and cannot.
// Random directions spread over all tasks are sampled as well. Every reported
// value is the ratio recomputed from an explicit feasible direction.
#pragma once

#include <Eigen/Eigenvalues>
#include <Eigen/SVD>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "colora/core/config.hpp"
#include "colora/core/linalg.hpp"
#include "colora/core/random.hpp"
#include "colora/core/status.hpp"
#include "colora/detail/parallel.hpp"
#include "colora/diagnostics/grip_types.hpp"
#include "colora/regression/data.hpp"

namespace colora {
namespace detail {

/// Polar factor P Q^T of G = P Sigma Q^T (m x s, m >= s): the orthonormal
/// matrix maximizing <G, U> over the Stiefel manifold.
template <class Scalar>
Matrix<Scalar> polar_factor(const Matrix<Scalar>& G) {
  Eigen::JacobiSVD<Matrix<Scalar>> svd(G, Eigen::ComputeThinU | Eigen::ComputeThinV);
  return svd.matrixU() * svd.matrixV().transpose();
}

/// (M1) model: A_i(D) = X_i D^T.
template <class Scalar>
class GripRegressionModel {
 public:
  explicit GripRegressionModel(const RegressionProblem<Scalar>& pb) : pb_(pb) {}
  Index num_tasks() const { return pb_.num_tasks(); }
  Index p() const { return pb_.input_dim(); }
  Index q() const { return pb_.output_dim(); }
  static constexpr int factor_step_applications = 1;
  /// Caches Z = X_i V of the last core step, reused by the next factor step.
  struct Workspace {
    Matrix<Scalar> Z;
  };

  /// Extreme eigenpair of the restricted Gram of task i: the ratio of
  /// U C V^T is c^T (K_i kron I) c / ||c||^2 with K_i = V^T Sigma_i V, so the
  /// optimal C is e_1 w^T with w the extreme eigenvector of K_i.
  void extreme_core(Index i, const Matrix<Scalar>& /*U*/, const Matrix<Scalar>& V, bool maximize, double& value,
                    Matrix<Scalar>& C, Workspace& ws) const {
    const auto& X = pb_.tasks[size_t(i)].X;
    const Index s = V.cols();
    ws.Z.noalias() = X * V;
    const Matrix<Scalar>& Z = ws.Z;
    Matrix<Scalar> K = Z.transpose() * Z;
    K /= Scalar(X.rows());
    Eigen::SelfAdjointEigenSolver<Matrix<Scalar>> es(K);
    const Index j = maximize ? s - 1 : 0;
    value = double(es.eigenvalues()(j));
    C.setZero(s, s);
    C.row(0) = es.eigenvectors().col(j).transpose();
  }

  /// ||A_i(U C V^T)||^2 / n_i (the numerator of the ratio for task i).
  double numerator(Index i, const Matrix<Scalar>& /*U*/, const Matrix<Scalar>& C, const Matrix<Scalar>& V) const {
    const auto& X = pb_.tasks[size_t(i)].X;
    const Matrix<Scalar> Z = (X * V) * C.transpose();
    return double(Z.squaredNorm()) / double(X.rows());
  }

  /// One factor step on task i (see the file comment).
  void factor_step(Index i, Matrix<Scalar>& /*U*/, Matrix<Scalar>& V, const Matrix<Scalar>& /*C*/, bool maximize,
                   double shift, const Workspace& ws) const {
    const auto& X = pb_.tasks[size_t(i)].X;
    Matrix<Scalar> T = X.transpose() * ws.Z;  // ws.Z = X V from the core step at this V
    T /= Scalar(X.rows());
    if (!maximize) T = Scalar(shift) * V - T;
    V = thin_qr(T).Q;
  }

 private:
  const RegressionProblem<Scalar>& pb_;
};

/// (M2) model: A_i(D)_j = <M_ij, D>, row j of tasks[i].M = vec(M_ij).
template <class Scalar>
class GripSensingModel {
 public:
  explicit GripSensingModel(const SensingProblem<Scalar>& pb) : pb_(pb) {}
  Index num_tasks() const { return pb_.num_tasks(); }
  Index p() const { return pb_.input_dim(); }
  Index q() const { return pb_.output_dim(); }
  static constexpr int factor_step_applications = 4;
  struct Workspace {};

  /// Features F (m x s^2), row j = vec(U^T M_ij V), computed with two GEMMs:
  /// M seen as (m q) x p times V, then each (m x q) block times U.
  Matrix<Scalar> features(Index i, const Matrix<Scalar>& U, const Matrix<Scalar>& V) const {
    const auto& M = pb_.tasks[size_t(i)].M;
    const Index m = M.rows(), p = pb_.p, q = pb_.q, s = V.cols();
    const Eigen::Map<const Matrix<Scalar>> Mr(M.data(), m * q, p);
    const Matrix<Scalar> T1 = Mr * V;  // (m q) x s: entry (j + m x, b) = (M_j V)(x, b)
    const Eigen::Map<const Matrix<Scalar>> T1r(T1.data(), m, q * s);
    Matrix<Scalar> F(m, s * s);
    for (Index b = 0; b < s; ++b) F.middleCols(s * b, s).noalias() = T1r.middleCols(q * b, q) * U;
    return F;
  }

  void extreme_core(Index i, const Matrix<Scalar>& U, const Matrix<Scalar>& V, bool maximize, double& value,
                    Matrix<Scalar>& C, Workspace&) const {
    const Matrix<Scalar> F = features(i, U, V);
    const Index s = V.cols();
    Matrix<Scalar> G = F.transpose() * F;
    G /= Scalar(F.rows());
    Eigen::SelfAdjointEigenSolver<Matrix<Scalar>> es(G);
    const Index j = maximize ? s * s - 1 : 0;
    value = double(es.eigenvalues()(j));
    C = Eigen::Map<const Matrix<Scalar>>(es.eigenvectors().col(j).data(), s, s);
  }

  Vector<Scalar> apply(Index i, const Matrix<Scalar>& D) const {
    const auto& M = pb_.tasks[size_t(i)].M;
    return M * Eigen::Map<const Vector<Scalar>>(D.data(), D.size());
  }

  double numerator(Index i, const Matrix<Scalar>& U, const Matrix<Scalar>& C, const Matrix<Scalar>& V) const {
    const Matrix<Scalar> D = U * C * V.transpose();
    return double(apply(i, D).squaredNorm()) / double(pb_.tasks[size_t(i)].M.rows());
  }

  /// H = A_i^*(A_i(D)) / m_i as a q x p matrix.
  Matrix<Scalar> normal_apply(Index i, const Matrix<Scalar>& D) const {
    const auto& M = pb_.tasks[size_t(i)].M;
    const Vector<Scalar> y = apply(i, D);
    Vector<Scalar> h = M.transpose() * y;
    h /= Scalar(M.rows());
    return Eigen::Map<const Matrix<Scalar>>(h.data(), pb_.q, pb_.p);
  }

  void factor_step(Index i, Matrix<Scalar>& U, Matrix<Scalar>& V, const Matrix<Scalar>& C, bool maximize, double shift,
                   const Workspace&) const {
    const Scalar c = Scalar(shift);
    {
      const Matrix<Scalar> H = normal_apply(i, U * C * V.transpose());
      Matrix<Scalar> G = H * V * C.transpose();
      if (!maximize) G = c * U * (C * C.transpose()) - G;
      if (G.norm() > Scalar(0)) U = polar_factor<Scalar>(G);
    }
    {
      const Matrix<Scalar> H = normal_apply(i, U * C * V.transpose());
      Matrix<Scalar> G = H.transpose() * U * C;
      if (!maximize) G = c * V * (C.transpose() * C) - G;
      if (G.norm() > Scalar(0)) V = polar_factor<Scalar>(G);
    }
  }

 private:
  const SensingProblem<Scalar>& pb_;
};

template <class Scalar>
GripDirection<Scalar> single_task_direction(Index k, Index task, const Matrix<Scalar>& U, const Matrix<Scalar>& V,
                                            const Matrix<Scalar>& C, double ratio) {
  GripDirection<Scalar> d;
  d.task = task;
  d.U = U;
  d.V = V;
  d.C.assign(size_t(k), Matrix<Scalar>::Zero(C.rows(), C.cols()));
  d.C[size_t(task)] = C;
  d.ratio = ratio;
  return d;
}

/// The search on one task from one random start: alternate the core step
/// (exact for fixed U, V) and a safeguarded factor step until the value stops
/// changing. The value sequence is monotone.
template <class Scalar>
struct GripTaskSearch {
  double value = std::numeric_limits<double>::quiet_NaN();  ///< certified ratio of (U, C, V)
  Matrix<Scalar> U, V, C;
  int iterations = 0;
  long long applications = 0;
};

template <class Scalar, class Model>
void grip_search_task(const Model& model, Index i, const GripOptions& opt, Index s, bool maximize, double shift,
                      Rng rng, GripTaskSearch<Scalar>& out) {
  auto better = [maximize](double a, double b) { return maximize ? a > b : a < b; };
  Matrix<Scalar> U = haar_orthonormal<Scalar>(rng, model.q(), s);
  Matrix<Scalar> V = haar_orthonormal<Scalar>(rng, model.p(), s);
  Matrix<Scalar> C;
  double val = 0.0;
  typename Model::Workspace ws;
  model.extreme_core(i, U, V, maximize, val, C, ws);
  out.applications += 1;
  for (int it = 1; it < opt.max_iterations && std::isfinite(val); ++it) {
    ++out.iterations;
    // Factor step with the core fixed; a step that worsens the value is
    // undone (for the minimum: retried with a doubled shift).
    bool accepted = false;
    double c = shift;
    for (int attempt = 0; attempt < 8 && !accepted; ++attempt) {
      Matrix<Scalar> U2 = U, V2 = V, C2;
      typename Model::Workspace ws2;
      model.factor_step(i, U2, V2, C, maximize, c, ws);
      double v2 = 0.0;
      model.extreme_core(i, U2, V2, maximize, v2, C2, ws2);
      out.applications += Model::factor_step_applications + 1;
      const double slack = 1e-12 * std::max(1.0, std::abs(val));
      if (std::isfinite(v2) && !better(maximize ? val - slack : val + slack, v2)) {
        const double change = std::abs(v2 - val);
        U = std::move(U2);
        V = std::move(V2);
        C = std::move(C2);
        ws = std::move(ws2);
        val = v2;
        accepted = true;
        if (change <= opt.tolerance * std::max(1.0, std::abs(val))) it = opt.max_iterations;  // converged
      } else if (maximize) {
        break;  // an ascent step loses only by rounding: stop here
      } else {
        c *= 2.0;
      }
    }
    if (!accepted) break;
  }
  ++out.iterations;
  // Certify: the ratio recomputed from the explicit direction.
  out.value = model.numerator(i, U, C, V) / double(C.squaredNorm());
  out.applications += 1;
  out.U = std::move(U);
  out.V = std::move(V);
  out.C = std::move(C);
}

/// The max (or min) search: every task searched from `restarts` random
/// starts, in parallel over tasks; the per-task results reduced in task
/// order. `shift` (min search) holds a per-task shift. Updates `best` and
/// `task_best` (per task, over restarts).
template <class Scalar, class Model>
void grip_search(const Model& model, const GripOptions& opt, Index s, bool maximize, const std::vector<double>& shift,
                 const Rng& base, GripResult<Scalar>& res, GripDirection<Scalar>& best, std::vector<double>& task_best,
                 bool& numerical_issue) {
  const Index k = model.num_tasks();
  auto better = [maximize](double a, double b) { return maximize ? a > b : a < b; };
  std::vector<GripTaskSearch<Scalar>> runs(static_cast<size_t>(k));
  for (int restart = 0; restart < opt.restarts; ++restart) {
    const Rng rrng = base.substream(std::uint64_t(restart));
    parallel_for(
        k, opt.num_threads,
        [&](Index i) {
          runs[size_t(i)] = GripTaskSearch<Scalar>();
          grip_search_task<Scalar>(model, i, opt, s, maximize, shift.empty() ? 0.0 : shift[size_t(i)],
                                   rrng.substream(std::uint64_t(i)), runs[size_t(i)]);
        },
        /*static_schedule=*/true);
    ++res.restarts;
    for (Index i = 0; i < k; ++i) {
      auto& run = runs[size_t(i)];
      res.iterations += run.iterations;
      res.operator_applications += run.applications;
      if (!std::isfinite(run.value)) {
        numerical_issue = true;
        continue;
      }
      if (!std::isfinite(task_best[size_t(i)]) || better(run.value, task_best[size_t(i)]))
        task_best[size_t(i)] = run.value;
      if (!std::isfinite(best.ratio) || better(run.value, best.ratio))
        best = single_task_direction<Scalar>(k, i, run.U, run.V, run.C, run.value);
    }
  }
}

template <class Scalar, class Model>
GripResult<Scalar> grip_estimate_impl(const Model& model, const GripOptions& opt) {
  GripResult<Scalar> res;
  const Index k = model.num_tasks(), p = model.p(), q = model.q();
  const Index s = std::min<Index>(2 * opt.rank, std::min(p, q));
  res.subspace_rank = s;
  const Rng base(opt.seed, 0x67726970ULL);  // "grip"
  bool numerical_issue = false;

  // Random directions spread over all tasks.
  std::vector<double> num(static_cast<size_t>(k)), den(static_cast<size_t>(k));
  std::vector<Matrix<Scalar>> Cs(static_cast<size_t>(k));
  GripDirection<Scalar> best_max, best_min;
  double smax = -std::numeric_limits<double>::infinity(), smin = std::numeric_limits<double>::infinity();
  for (int smp = 0; smp < opt.samples; ++smp) {
    const Rng srng = base.substream(std::uint64_t(1000003 + smp));
    Rng r0 = srng.substream(0);
    const Matrix<Scalar> U = haar_orthonormal<Scalar>(r0, q, s);
    const Matrix<Scalar> V = haar_orthonormal<Scalar>(r0, p, s);
    parallel_for(
        k, opt.num_threads,
        [&](Index i) {
          Rng ri = srng.substream(std::uint64_t(i + 1));
          Cs[size_t(i)] = ri.normal_matrix<Scalar>(s, s);
          num[size_t(i)] = model.numerator(i, U, Cs[size_t(i)], V);
          den[size_t(i)] = double(Cs[size_t(i)].squaredNorm());
        },
        /*static_schedule=*/true);
    res.operator_applications += k;
    ++res.samples;
    double sn = 0.0, sd = 0.0;
    for (Index i = 0; i < k; ++i) {
      sn += num[size_t(i)];
      sd += den[size_t(i)];
    }
    const double ratio = sn / sd;
    if (!std::isfinite(ratio)) {
      numerical_issue = true;
      continue;
    }
    smax = std::max(smax, ratio);
    smin = std::min(smin, ratio);
    auto spread = [&] {
      GripDirection<Scalar> d;
      d.task = -1;
      d.U = U;
      d.V = V;
      d.C = Cs;
      d.ratio = ratio;
      return d;
    };
    if (!std::isfinite(best_max.ratio) || ratio > best_max.ratio) best_max = spread();
    if (!std::isfinite(best_min.ratio) || ratio < best_min.ratio) best_min = spread();
  }
  if (res.samples > 0 && std::isfinite(smax)) {
    res.sampled_max = smax;
    res.sampled_min = smin;
    res.sampled_deviation = std::max(smax - 1.0, 1.0 - smin);
  }

  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<double> task_max(static_cast<size_t>(k), nan), task_min(static_cast<size_t>(k), nan);
  grip_search<Scalar>(model, opt, s, true, {}, base.substream(1), res, best_max, task_max, numerical_issue);
  // Per-task shift for the minimum search: 1.1 x the largest ratio found on
  // that task (doubled by the safeguard if it turns out too small).
  std::vector<double> shift(static_cast<size_t>(k));
  for (Index i = 0; i < k; ++i) {
    const double m = task_max[size_t(i)];
    shift[size_t(i)] = 1.1 * (std::isfinite(m) && m > 0.0 ? m : 1.0);
  }
  grip_search<Scalar>(model, opt, s, false, shift, base.substream(2), res, best_min, task_min, numerical_issue);

  res.max_direction = std::move(best_max);
  res.min_direction = std::move(best_min);
  res.lambda_max = res.max_direction.ratio;
  res.lambda_min = res.min_direction.ratio;
  res.delta_hat = std::max(res.lambda_max - 1.0, 1.0 - res.lambda_min);
  res.status = (numerical_issue || !std::isfinite(res.delta_hat)) ? Status::NumericalIssue : Status::Success;
  return res;
}

}  // namespace detail
}  // namespace colora
