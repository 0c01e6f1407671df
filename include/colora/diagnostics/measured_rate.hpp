// Measured rates of the alternating minimization (docs/theory.md, "Measured
// and predicted rates"); the predicted rate is in predicted_rate.hpp.
//
//   noiseless_twin(problem)        the same designs with targets A_i(W_i*) (no noise)
//   run_noiseless_twin(...)        the solver's iteration from the run's start on the
//                                  twin, to its fixed point, and the contraction rate
//                                  of its steps (fit_contraction_rate)
//   objective_gap_rate(history)    runs without a truth: the rate of f_t - f_final
//
// Choices [choice], documented in docs/theory.md:
//  * The twin's rate is the rate of its step lengths max(dist_A, dist_B)
//    between successive iterates, which shrink at the rate of the distance
//    to the fixed point and need no knowledge of it (with theta > 0 the
//    fixed point is not the planted truth). It is fitted on the second half
//    of the linear phase (at least its last 3 points): the first iterations
//    mix in faster modes, and the linearization describes the asymptotic
//    regime. Steps at rounding level (<= 1000 eps(Scalar)) are left out.
//    The distance of every iterate to the limit is kept as well.
//  * Runs without a truth: a linear rate rho of the iterates gives a rate of
//    about rho^2 for the objective gap (the objective is quadratic near its
//    minimum).
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "colora/core/errors.hpp"
#include "colora/core/subspace.hpp"
#include "colora/diagnostics/convergence_rate.hpp"
#include "colora/regression/altmin.hpp"
#include "colora/regression/data.hpp"
#include "colora/regression/solver.hpp"

namespace colora {

/// The noiseless twin of a planted problem: the same designs (and test
/// designs), targets A_i(W_i*) with W_i* = W_0 + B_i* S_i* A_i*, truth.sigma = 0.
template <class Scalar>
RegressionProblem<Scalar> noiseless_twin(const RegressionProblem<Scalar>& pb) {
  const char* where = "colora::noiseless_twin";
  detail::require(pb.truth.has_value(), where, "the problem carries no ground truth");
  pb.validate(where);
  RegressionProblem<Scalar> out = pb;
  const auto& t = *pb.truth;
  for (Index i = 0; i < pb.num_tasks(); ++i) {
    auto& task = out.tasks[size_t(i)];
    Matrix<Scalar> Wt = t.delta(i).transpose();  // p x q
    if (pb.W0.size()) Wt += pb.W0.transpose();
    task.Y.noalias() = task.X * Wt;
    if (task.X_test.rows()) task.Y_test.noalias() = task.X_test * Wt;
  }
  out.truth->sigma = 0.0;
  return out;
}

/// (M2): y_ij = <M_ij, W_i*> exactly.
template <class Scalar>
SensingProblem<Scalar> noiseless_twin(const SensingProblem<Scalar>& pb) {
  const char* where = "colora::noiseless_twin";
  detail::require(pb.truth.has_value(), where, "the problem carries no ground truth");
  pb.validate(where);
  SensingProblem<Scalar> out = pb;
  const auto& t = *pb.truth;
  for (Index i = 0; i < pb.num_tasks(); ++i) {
    auto& task = out.tasks[size_t(i)];
    Matrix<Scalar> W = t.delta(i);
    if (pb.W0.size()) W += pb.W0;
    const Eigen::Map<const Vector<Scalar>> w(W.data(), W.size());
    task.y.noalias() = task.M * w;
    if (task.M_test.rows()) task.y_test.noalias() = task.M_test * w;
  }
  out.truth->sigma = 0.0;
  return out;
}

/// Options of run_noiseless_twin().
struct TwinOptions {
  int max_iterations = 300;  ///< cap on the twin's iterations
  /// Converged when max(dist_A, dist_B) between successive iterates is at
  /// most this; 0 = 100 eps(Scalar).
  double tolerance = 0.0;
  /// Also stop when that change has not reached a new minimum for this many
  /// iterations (the rounding floor of a slow or stalled run).
  int patience = 8;
  RateFitOptions rate;  ///< the fit of the twin's distance history

  void validate(const char* where = "colora::TwinOptions") const {
    detail::require(max_iterations >= 2, where, "max_iterations must be >= 2, got ", max_iterations);
    detail::require(std::isfinite(tolerance) && tolerance >= 0, where, "tolerance must be >= 0, got ", tolerance);
    detail::require(patience >= 1, where, "patience must be >= 1, got ", patience);
    rate.validate(where);
  }
};

/// What run_noiseless_twin() returns.
template <class Scalar>
struct TwinRun {
  bool ok = false;     ///< false: a solve failed or a value was not finite (see reason)
  std::string reason;  ///< why not ok
  /// max(dist_A, dist_B) of iterate t = 0 .. T-1 to the limit (iterate T).
  std::vector<double> distance;
  /// change[j] = max(dist_A, dist_B) between iterates j and j + 1, j = 0 .. T-1.
  std::vector<double> change;
  /// fit_contraction_rate of `change` on the second half of its linear phase
  /// (window indices refer to `change`).
  RateFit rate;
  int iterations = 0;          ///< T
  bool converged = false;      ///< the last change was <= the tolerance
  double limit_distance_to_truth = std::numeric_limits<double>::quiet_NaN();  ///< of the limit, to A*, B*
  Matrix<Scalar> A, B;                                                      ///< the limit (a fixed point)
  std::vector<Matrix<Scalar>> cores;
};

namespace detail {

/// Iteration settings of a solver run, as the kernel takes them.
template <class Model>
struct IterationSettings {
  using Scalar = typename Model::Scalar;
  std::vector<Scalar> w, ridge;
  CoreKind core = CoreKind::Full;
  altmin::AStepControl control;
  bool fixed_b = false;
  Index r = 0;

  IterationSettings(const Model& model, const SolverOptions& o)
      : w(altmin::task_weights(model, o.weighting)),
        ridge(altmin::core_ridges(w, o.lambda)),
        core(o.core),
        control(o.a_step_control()),
        fixed_b(model.output_dim() < o.rank),
        r(o.rank) {}
};

inline double pair_distance(double da, double db) { return std::max(da, db); }

template <class Scalar>
double factor_distance(const Matrix<Scalar>& A1, const Matrix<Scalar>& B1, const Matrix<Scalar>& A2,
                       const Matrix<Scalar>& B2, bool fixed_b) {
  const double da = row_space_distance(A1, A2).spectral;
  const double db = fixed_b ? 0.0 : subspace_distance(B1, B2).spectral;
  return pair_distance(da, db);
}

}  // namespace detail

/// The contraction rate of `seq` fitted on the second half of its linear
/// phase (at least its last 3 points; all of it when shorter): the
/// asymptotic regime, after the faster modes of the first iterations.
inline RateFit fit_asymptotic_rate(const std::vector<double>& seq, const RateFitOptions& ro = {}) {
  const RateFit all = fit_contraction_rate(seq, ro);
  const Index b = all.window_begin, e = all.window_end;
  if (all.status != RateFitStatus::Fitted || e - b <= 3) return all;
  RateFitOptions tail = ro;
  tail.skip_initial = std::min(b + (e - b) / 2, e - 3);
  const RateFit late = fit_contraction_rate(seq, tail);
  return late.status == RateFitStatus::Fitted ? late : all;
}

/// Runs the solver's iteration (settings `opt`: rank, init, seed, A-step,
/// core, weighting, lambda, threads) on the noiseless twin of `pb` from the
/// start the solver takes on `pb` itself, until the iterates stop moving,
/// and fits the contraction rate of their distance to the limit. `pb` must
/// carry its truth. Never throws for numerical trouble (ok = false).
/// `twin` must be noiseless_twin(pb) (the overload below builds it; a caller
/// that needs the twin again passes its own copy).
template <class Problem>
TwinRun<typename Problem::Scalar> run_noiseless_twin(const Problem& pb, const Problem& twin, const SolverOptions& opt,
                                                     const TwinOptions& to = {}) {
  using Scalar = typename Problem::Scalar;
  using Mat = Matrix<Scalar>;
  const char* where = "colora::run_noiseless_twin";
  opt.validate();
  to.validate(where);
  detail::require(opt.rank <= pb.input_dim(), where, "rank r = ", opt.rank, " exceeds the input width p = ",
                  pb.input_dim());
  detail::require(twin.num_tasks() == pb.num_tasks() && twin.input_dim() == pb.input_dim() &&
                      twin.output_dim() == pb.output_dim() && twin.truth.has_value(),
                  where, "twin does not match the problem (pass noiseless_twin(pb))");
  using Model = measurement_model_t<Problem>;
  const Model noisy(pb, opt.num_threads), model(twin, opt.num_threads);
  const detail::IterationSettings<Model> it(model, opt);
  TwinRun<Scalar> out;
  Mat A, B;
  std::vector<Mat> S;
  if (!altmin::initialize(noisy, opt.init, opt.rank, opt.seed, A, B, !it.fixed_b)) {
    out.reason = "the initialization is not finite";
    return out;
  }
  if (!altmin::fit_cores(model, A, B, it.ridge, it.core, S)) {
    out.reason = "the first S-step failed (singular system)";
    return out;
  }
  const double tol =
      to.tolerance > 0 ? to.tolerance : 100.0 * double(std::numeric_limits<Scalar>::epsilon());
  std::vector<Mat> As{A}, Bs{B};
  double best_change = std::numeric_limits<double>::infinity();
  int since_best = 0;
  for (int t = 1; t <= to.max_iterations; ++t) {
    AStepStats ast;
    if (!altmin::iterate(model, it.w, it.ridge, it.core, it.control, it.fixed_b, A, B, S, ast) || !A.allFinite() ||
        !B.allFinite()) {
      out.reason = detail::concat("iteration ", t, " failed (singular system or non-finite factors)");
      return out;
    }
    const double ch = detail::factor_distance(A, B, As.back(), Bs.back(), it.fixed_b);
    As.push_back(A);
    Bs.push_back(B);
    out.change.push_back(ch);
    out.iterations = t;
    if (ch <= tol) {
      out.converged = true;
      break;
    }
    if (ch < best_change) {
      best_change = ch;
      since_best = 0;
    } else if (++since_best >= to.patience) {
      break;
    }
  }
  out.ok = true;
  out.A = A;
  out.B = B;
  out.cores = S;
  const Index T = out.iterations;
  out.distance.resize(size_t(T));
  for (Index t = 0; t < T; ++t)
    out.distance[size_t(t)] = detail::factor_distance(As[size_t(t)], Bs[size_t(t)], A, B, it.fixed_b);
  // Steps at rounding level (<= 1000 eps) say nothing about the rate.
  const double rounding = 1000.0 * double(std::numeric_limits<Scalar>::epsilon());
  std::vector<double> steps;
  for (double c : out.change) {
    if (c <= rounding) break;
    steps.push_back(c);
  }
  out.rate = fit_asymptotic_rate(steps, to.rate);
  const auto& truth = *pb.truth;
  out.limit_distance_to_truth =
      detail::pair_distance(row_space_distance(A, truth.A_shared).spectral,
                            it.fixed_b ? 0.0 : subspace_distance(B, truth.B_shared).spectral);
  return out;
}

/// The same, building the noiseless twin of `pb` itself.
template <class Problem>
TwinRun<typename Problem::Scalar> run_noiseless_twin(const Problem& pb, const SolverOptions& opt,
                                                     const TwinOptions& to = {}) {
  return run_noiseless_twin(pb, noiseless_twin(pb), opt, to);
}

/// Runs without a truth: the contraction rate of the objective gap
/// f_t - f_T over t = 0 .. T-1 (f_T the last objective); a linear rate of the
/// gap is the rate of the iterates squared, so rho_gap ~ rho^2 [choice].
inline RateFit objective_gap_rate(const std::vector<IterationRecord>& history, const RateFitOptions& ro = {}) {
  RateFit none;
  if (history.size() < 3) return none;
  const double fT = history.back().objective;
  std::vector<double> gap;
  for (size_t t = 0; t + 1 < history.size(); ++t) {
    const double g = history[t].objective - fT;
    if (!std::isfinite(g)) return none;
    gap.push_back(std::max(0.0, g));
  }
  return fit_contraction_rate(gap, ro);
}
}  // namespace colora
