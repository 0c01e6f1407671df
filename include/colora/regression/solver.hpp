// CoLoRA alternating minimization (docs/solver.md states the model and the
// algorithm): a short loop over the kernel's steps (altmin.hpp).
//
//   minimize over B, A, {S_i}:  sum_i w_i L_i(W_0 + B S_i A) + lambda sum_i ||S_i||_F^2
//
// Life cycle (Eigen / Spectra style):
//   colora::Solver<double> solver(options);
//   solver.compute(problem);            // RegressionProblem or SensingProblem
//   solver.info();                      // Status
//   solver.A(), solver.B(), solver.core(i), solver.weight(i), solver.predict(i, X)
//   solver.history();                   // one IterationRecord per iteration
// or the one-liner  auto result = colora::fit(problem, options);
//
// One iteration: S-step (per task, parallel) -> B-step (closed form, then
// thin QR, B <- Q, S_i <- R S_i) -> A-step (exact | cg | gd, then thin QR of
// G = A^T, A <- Q^T, S_i <- S_i R^T) -> S-step. With a diagonal core the
// gauge is fixed by unit-norm columns of B and rows of A instead, which keeps
// S_i diagonal [choice].
//
// q < r (e.g. scalar outputs, FedRep's setting): B S_i then ranges over every
// q x r matrix, so CoLoRA is exactly the personal-head model W_i = H_i A. The
// solver fixes B = [I_q 0] (orthonormal rows), skips the B-step and lets the
// S-step's minimum-norm solution S_i = [H_i; 0] carry the head [choice]; the
// A-step is unchanged. Full cores only.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "colora/core/adapter.hpp"
#include "colora/core/linalg.hpp"
#include "colora/core/status.hpp"
#include "colora/detail/parallel.hpp"
#include "colora/regression/recovery_metrics.hpp"
#include "colora/regression/altmin.hpp"
#include "colora/regression/data_scale.hpp"

namespace colora {

/// One row of the solver's history. Truth-based fields are NaN when the
/// problem has no ground truth; test_mse is NaN without a test split.
struct IterationRecord {
  int iteration = 0;       ///< 0 = after initialization and the first S-step
  double seconds = 0.0;    ///< wall time since compute() started
  double objective = 0.0;  ///< sum_i w_i L_i + lambda sum_i ||S_i||^2
  double dist_a = std::numeric_limits<double>::quiet_NaN();
  double dist_b = std::numeric_limits<double>::quiet_NaN();
  double mean_rel_err = std::numeric_limits<double>::quiet_NaN();
  double median_rel_err = std::numeric_limits<double>::quiet_NaN();
  double max_rel_err = std::numeric_limits<double>::quiet_NaN();
  double test_mse = std::numeric_limits<double>::quiet_NaN();
  int a_step_products = 0;  ///< operator products the A-step used (cg, gd)
};

/// The outcome every fit reports (the solver's fit(), every baseline's
/// BaselineResult, fit_oracle): how it ended, its history and its warnings.
struct FitReport {
  Status status = Status::NotComputed;
  StopReason stop_reason = StopReason::NotStarted;
  int iterations = 0;
  std::vector<IterationRecord> history;  ///< one record per iteration (one for closed forms)
  std::vector<std::string> warnings;     ///< notes about the data that did not stop the fit
};

struct SolverOptions {
  Index rank = 0;  ///< r (required, 1 <= r <= p; r > q: see the header)
  InitKind init = InitKind::Spectral;
  AStepSolver a_step = AStepSolver::Cg;
  CoreKind core = CoreKind::Full;
  TaskWeighting weighting = TaskWeighting::PerSample;
  double lambda = 0.0;  ///< ridge on the cores
  int max_iterations = 100;
  double tolerance = 1e-10;    ///< stop when |f_{t-1} - f_t| <= tolerance * f_{t-1}
  int cg_max_products = 50;    ///< per A-step
  double cg_tolerance = 0.0;   ///< relative residual; 0 = 100 eps(Scalar)
  double cg_reduction = 1e-2;  ///< stop CG once the residual fell by this factor
  double gd_step = 1.0;        ///< eta of the gd A-step (in units of 1/L)
  int num_threads = 0;         ///< 0 = all OpenMP threads
  std::uint64_t seed = 0;      ///< random initialization
  bool track_truth = true;     ///< record truth-based errors when the problem has a truth
  /// Called after every iteration (and after initialization); return false to stop.
  std::function<bool(const IterationRecord&)> callback;

  void validate() const {
    const char* w = "colora::SolverOptions";
    detail::require(rank >= 1, w, "rank must be >= 1, got ", rank);
    detail::require(std::isfinite(lambda) && lambda >= 0, w, "lambda must be finite and >= 0, got ", lambda);
    detail::require(max_iterations >= 0, w, "max_iterations must be >= 0, got ", max_iterations);
    detail::require(std::isfinite(tolerance) && tolerance >= 0, w, "tolerance must be >= 0, got ", tolerance);
    detail::require(cg_max_products >= 1, w, "cg_max_products must be >= 1, got ", cg_max_products);
    detail::require(std::isfinite(cg_tolerance) && cg_tolerance >= 0, w, "cg_tolerance must be >= 0, got ",
                    cg_tolerance);
    detail::require(cg_reduction >= 0 && cg_reduction < 1, w, "cg_reduction must be in [0, 1), got ", cg_reduction);
    detail::require(std::isfinite(gd_step) && gd_step > 0, w, "gd_step must be > 0, got ", gd_step);
    detail::require(num_threads >= 0, w, "num_threads must be >= 0, got ", num_threads);
  }

  /// The A-step settings as the kernel takes them.
  altmin::AStepControl a_step_control() const { return {a_step, cg_max_products, cg_tolerance, cg_reduction, gd_step}; }
};

template <class Scalar_>
class Solver {
 public:
  using Scalar = Scalar_;
  using Mat = Matrix<Scalar>;

  Solver() = default;
  explicit Solver(SolverOptions options) : options_(std::move(options)) {}

  const SolverOptions& options() const { return options_; }
  SolverOptions& options() { return options_; }

  /// Fits (M1). Throws std::invalid_argument on bad input or options.
  /// Numerical trouble is a status (info()), never an exception: data at the
  /// ends of the floating-point range are rescaled exactly (data_scale.hpp);
  /// tasks whose inputs are zero give a warning, and if every task's are, the
  /// status is NumericalIssue with StopReason::DegenerateProblem.
  Solver& compute(const RegressionProblem<Scalar>& problem) {
    return compute_problem<RegressionModel<Scalar>>(problem);
  }

  /// Fits (M2).
  Solver& compute(const SensingProblem<Scalar>& problem) { return compute_problem<SensingModel<Scalar>>(problem); }

  Status info() const { return status_; }
  StopReason stop_reason() const { return stop_reason_; }
  int iterations() const { return iterations_; }
  const std::vector<IterationRecord>& history() const { return history_; }
  /// Notes about the data that did not stop the fit (e.g. a task with n_i < r).
  const std::vector<std::string>& warnings() const { return warnings_; }
  /// info(), stop_reason(), iterations(), history() and warnings() together.
  FitReport report() const { return {status_, stop_reason_, iterations_, history_, warnings_}; }

  const Mat& A() const { return A_; }                          ///< r x p, shared
  const Mat& B() const { return B_; }                          ///< q x r, shared
  const Mat& core(Index i) const { return S_.at(size_t(i)); }  ///< r x r, personal
  const std::vector<Mat>& cores() const { return S_; }
  Index num_tasks() const { return Index(S_.size()); }
  /// W_i = W_0 + B S_i A (q x p; forms the dense matrix).
  Mat weight(Index i) const {
    check_task(i, "colora::Solver::weight");
    Mat W = B_ * S_[size_t(i)] * A_;
    if (W0_.size()) W += W0_;
    return W;
  }
  /// Predictions X W_i^T (n x q) for inputs X (n x p), never forming W_i.
  Mat predict(Index i, const Eigen::Ref<const Mat>& X) const {
    check_task(i, "colora::Solver::predict");
    detail::require(X.cols() == A_.cols(), "colora::Solver::predict", "task ", i, ": X has ", X.cols(),
                    " columns but p = ", A_.cols());
    Mat Y = ((X * A_.transpose()) * S_[size_t(i)].transpose()) * B_.transpose();
    if (W0_.size()) Y.noalias() += X * W0_.transpose();
    return Y;
  }

 private:
  void check_task(Index i, const char* where) const {
    detail::require(status_ != Status::NotComputed, where, "compute() has not run");
    detail::require(i >= 0 && i < num_tasks(), where, "task ", i, " is out of range [0, ", num_tasks(), ")");
  }

  template <class Model, class Problem>
  Solver& compute_problem(const Problem& problem);
  template <class Model>
  void run(const Model& model, const GroundTruth<Scalar>* truth, bool has_test);
  template <class Model>
  bool start(const Model& model, bool wide);
  void zero_adapter(bool solved);
  template <class Model>
  bool iterate(const Model& model, bool wide, AStepStats& ast);
  template <class Model>
  IterationRecord record(const Model& model, const GroundTruth<Scalar>* truth, bool has_test, int iter,
                         double seconds) const;

  SolverOptions options_;
  Status status_ = Status::NotComputed;
  StopReason stop_reason_ = StopReason::NotStarted;
  int iterations_ = 0;
  std::vector<IterationRecord> history_;
  std::vector<std::string> warnings_;
  Mat A_, B_, W0_;
  std::vector<Mat> S_;
  double lambda_ = 0;                  ///< options_.lambda at the scale the model works in
  double report_scale_ = 1;            ///< objective and test MSE of the scaled problem -> the user's scale
  mutable double last_objective_ = 0;  ///< objective of the last record(), at the model's scale
  std::vector<Scalar> w_, ridge_;      ///< task weights and S-step ridges lambda / w_i of the current run
};

/// The result of the one-line fit(): the report and the factors.
template <class Scalar>
struct FitResult : FitReport {
  Matrix<Scalar> A, B;
  std::vector<Matrix<Scalar>> cores;
};

/// One-liner: fit CoLoRA to a problem and return the factors and history.
template <class Problem>
FitResult<typename Problem::Scalar> fit(const Problem& problem, const SolverOptions& options) {
  Solver<typename Problem::Scalar> s(options);
  s.compute(problem);
  FitResult<typename Problem::Scalar> out;
  static_cast<FitReport&>(out) = s.report();
  out.A = s.A();
  out.B = s.B();
  out.cores = s.cores();
  return out;
}

/// Held-out mean squared error of factored estimates W_i = W_0 + B S_i A:
/// sum_i ||test residual_i||^2 / (number of held-out entries). NaN when the
/// problem has no test split.
template <class Problem>
double test_mse(const Problem& problem, const Matrix<typename Problem::Scalar>& A,
                const Matrix<typename Problem::Scalar>& B, const std::vector<Matrix<typename Problem::Scalar>>& cores,
                int num_threads = 0) {
  detail::require(Index(cores.size()) == problem.num_tasks(), "colora::test_mse", "got ", cores.size(), " cores for ",
                  problem.num_tasks(), " tasks");
  const measurement_model_t<Problem> model(problem, num_threads);
  const auto se = altmin::test_error(model, A, B, cores);
  return se.second > 0 ? se.first / se.second : std::numeric_limits<double>::quiet_NaN();
}

// ---------------------------------------------------------------------------

template <class Scalar>
template <class Model, class Problem>
Solver<Scalar>& Solver<Scalar>::compute_problem(const Problem& problem) {
  problem.validate("colora::Solver::compute");
  options_.validate();
  warnings_.clear();
  W0_ = problem.W0;
  const std::vector<detail::TaskMagnitudes> mags = detail::all_task_magnitudes(problem, options_.num_threads);
  const detail::DataScale sc = detail::choose_data_scale<Scalar>(mags);
  lambda_ = std::ldexp(options_.lambda, -2 * sc.ex);
  report_scale_ = std::ldexp(1.0, 2 * sc.ey);
  // Tasks whose inputs are zero, or so small next to the largest task's that
  // their squares underflow, cannot inform anything: their cores are 0.
  const double tiny = std::sqrt(double(std::numeric_limits<Scalar>::min()));
  double x_max = 0;
  for (const auto& m : mags) x_max = std::max(x_max, m.train_input);
  Index degenerate = 0;
  for (Index i = 0; i < problem.num_tasks(); ++i) {
    const double xi = mags[size_t(i)].train_input;
    if (xi == 0 || std::ldexp(xi, -sc.ex) < tiny) {
      ++degenerate;
      warnings_.push_back(detail::concat("task ", i, ": its inputs are ",
                                         xi == 0 ? std::string("all zero")
                                                 : detail::concat("negligible (largest |x| = ", xi, " against ", x_max,
                                                                  " in the largest task)"),
                                         ": the task cannot inform the fit and its core is 0"));
    }
  }
  if (sc.identity()) {
    const Model model(problem, options_.num_threads);
    run(model, problem.truth ? &*problem.truth : nullptr, problem.has_test());
  } else {
    warnings_.push_back(detail::concat("the data were rescaled by 2^", -sc.ex, " (inputs) and 2^", -sc.ey,
                                       " (outputs) to keep sums of squares finite; results are mapped back exactly"));
    const Problem scaled = detail::scaled_problem(problem, sc);
    const Model model(scaled, options_.num_threads);
    run(model, scaled.truth ? &*scaled.truth : nullptr, scaled.has_test());
    bool finite = true;
    for (auto& S : S_) finite = (S = detail::times_pow2(S, sc.ey - sc.ex)).allFinite() && finite;
    if (!finite) {  // the adapter itself is beyond the scalar's range: report, do not hide
      status_ = Status::NumericalIssue;
      stop_reason_ = StopReason::NonFiniteValue;
      warnings_.push_back(
          "the fitted cores exceed the range of the scalar type at the data's scale (outputs are "
          "far larger than inputs); rescale the data");
    }
  }
  if (degenerate == problem.num_tasks() && status_ != Status::NumericalIssue) {
    status_ = Status::NumericalIssue;
    stop_reason_ = StopReason::DegenerateProblem;
  }
  return *this;
}

template <class Scalar>
template <class Model>
IterationRecord Solver<Scalar>::record(const Model& model, const GroundTruth<Scalar>* truth, bool has_test, int iter,
                                       double seconds) const {
  IterationRecord rec;
  rec.iteration = iter;
  rec.seconds = seconds;
  last_objective_ = altmin::objective(model, A_, B_, S_, w_, lambda_);
  rec.objective = last_objective_ * report_scale_;
  if (truth && options_.track_truth) {
    const RecoveryMetrics m = recovery_metrics(*truth, A_, B_, S_, model.threads());
    rec.dist_a = m.dist_a;
    rec.dist_b = m.dist_b;
    rec.mean_rel_err = m.mean_rel_err;
    rec.median_rel_err = m.median_rel_err;
    rec.max_rel_err = m.max_rel_err;
  }
  if (has_test) {
    const auto se = altmin::test_error(model, A_, B_, S_);
    rec.test_mse = se.second > 0 ? se.first / se.second * report_scale_ : std::numeric_limits<double>::quiet_NaN();
  }
  return rec;
}

/// Initialization and the first S-step. False when a solve failed or a factor is not finite.
template <class Scalar>
template <class Model>
bool Solver<Scalar>::start(const Model& model, bool wide) {
  altmin::initialize(model, options_.init, options_.rank, options_.seed, A_, B_, !wide);
  S_.assign(size_t(model.tasks()), Mat::Zero(options_.rank, options_.rank));
  return altmin::fit_cores(model, A_, B_, ridge_, options_.core, S_) && A_.allFinite() && B_.allFinite();
}

/// No good state after initialization: the zero adapter (W_i = W_0) on the
/// initial basis, or on canonical orthonormal factors where that is not finite.
template <class Scalar>
void Solver<Scalar>::zero_adapter(bool solved) {
  const Index r = options_.rank;
  if (!A_.allFinite()) A_ = Mat::Identity(r, A_.cols());
  if (!B_.allFinite()) B_ = Mat::Identity(B_.rows(), r);
  for (auto& S : S_) S.setZero();
  status_ = Status::NumericalIssue;
  stop_reason_ = solved ? StopReason::NonFiniteValue : StopReason::SingularSystem;
}

/// One iteration: B-step (unless B is fixed), A-step, S-step. On failure the
/// state is left as the kernel left it and false is returned.
template <class Scalar>
template <class Model>
bool Solver<Scalar>::iterate(const Model& model, bool wide, AStepStats& ast) {
  return altmin::iterate(model, w_, ridge_, options_.core, options_.a_step_control(), wide, A_, B_, S_, ast);
}

template <class Scalar>
template <class Model>
void Solver<Scalar>::run(const Model& model, const GroundTruth<Scalar>* truth, bool has_test) {
  options_.validate();
  const char* where = "colora::Solver::compute";
  const Index k = model.tasks(), p = model.input_dim(), q = model.output_dim(), r = options_.rank;
  detail::require(r <= p, where, "rank r = ", r, " exceeds the input width p = ", p);
  // q < r: B S_i is a free q x r head; B is fixed to [I_q 0] (see the header).
  const bool wide = q < r;
  detail::require(!wide || options_.core == CoreKind::Full, where, "rank r = ", r, " exceeds the output width q = ", q,
                  ": only full cores are supported then (a diagonal core would not reach every head)");

  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };

  status_ = Status::NotComputed;
  stop_reason_ = StopReason::NotStarted;
  iterations_ = 0;
  history_.clear();
  w_ = altmin::task_weights(model, options_.weighting);
  ridge_ = altmin::core_ridges(w_, lambda_);
  for (auto& line : altmin::core_warnings(model, r, options_.lambda)) warnings_.push_back(std::move(line));

  const bool ok = start(model, wide);
  IterationRecord rec = record(model, truth, has_test, 0, elapsed());
  history_.push_back(rec);
  if (!ok || !std::isfinite(last_objective_)) {
    zero_adapter(ok);
    return;
  }
  if (options_.callback && !options_.callback(rec)) {
    status_ = Status::Success;
    stop_reason_ = StopReason::CallbackRequested;
    return;
  }

  double f_prev = last_objective_;
  const double floor_eps = 1000.0 * double(Eigen::NumTraits<Scalar>::epsilon());
  // The objective of the zero adapter: the scale "rounding level" refers to.
  double f_scale = 0;
  for (Index i = 0; i < k; ++i) f_scale += double(w_[size_t(i)]) * model.loss(i, A_, B_, Mat::Zero(r, r));
  stop_reason_ = StopReason::MaxIterations;
  status_ = Status::MaxIterations;

  for (int it = 1; it <= options_.max_iterations; ++it) {
    const Mat A_good = A_, B_good = B_;
    const std::vector<Mat> S_good = S_;
    auto fail = [&](StopReason why) {
      A_ = A_good;
      B_ = B_good;
      S_ = S_good;
      status_ = Status::NumericalIssue;
      stop_reason_ = why;
    };
    AStepStats ast;
    if (!iterate(model, wide, ast)) {
      fail(StopReason::SingularSystem);
      break;
    }
    rec = record(model, truth, has_test, it, elapsed());
    rec.a_step_products = ast.products;
    if (!std::isfinite(last_objective_)) {
      fail(StopReason::NonFiniteValue);
      break;
    }
    history_.push_back(rec);
    iterations_ = it;
    if (options_.callback && !options_.callback(rec)) {
      status_ = Status::Success;
      stop_reason_ = StopReason::CallbackRequested;
      break;
    }
    const double f = last_objective_;
    // Relative change, or an objective at rounding level of the initial one.
    if (std::abs(f_prev - f) <= options_.tolerance * std::abs(f_prev) || f <= f_scale * floor_eps * floor_eps) {
      status_ = Status::Success;
      stop_reason_ = StopReason::ToleranceReached;
      break;
    }
    f_prev = f;
  }
}

}  // namespace colora
