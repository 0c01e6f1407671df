// CoLoRA alternating minimization (spec sections 5 and 6).
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
#include "colora/diagnostics/recovery_metrics.hpp"
#include "colora/regression/a_step.hpp"
#include "colora/regression/data_scale.hpp"
#include "colora/regression/regression_model.hpp"
#include "colora/regression/sensing_model.hpp"

namespace colora {

enum class InitKind { Spectral, Random };
/// w_i = 1 (every sample counts the same) or 1/n_i (every task counts the same).
enum class TaskWeighting { PerSample, PerTask };

inline InitKind parse_init_kind(const std::string& s) {
  if (s == "spectral") return InitKind::Spectral;
  if (s == "random") return InitKind::Random;
  detail::invalid("colora::parse_init_kind", "unknown initialization '", s, "' (expected spectral or random)");
}
inline const char* to_string(InitKind k) noexcept { return k == InitKind::Spectral ? "spectral" : "random"; }
inline const char* to_string(TaskWeighting w) noexcept { return w == TaskWeighting::PerSample ? "per-sample" : "per-task"; }

/// One row of the solver's history. Truth-based fields are NaN when the
/// problem has no ground truth; test_mse is NaN without a test split.
struct IterationRecord {
  int iteration = 0;        ///< 0 = after initialization and the first S-step
  double seconds = 0.0;     ///< wall time since compute() started
  double objective = 0.0;   ///< sum_i w_i L_i + lambda sum_i ||S_i||^2
  double dist_a = std::numeric_limits<double>::quiet_NaN();
  double dist_b = std::numeric_limits<double>::quiet_NaN();
  double mean_rel_err = std::numeric_limits<double>::quiet_NaN();
  double median_rel_err = std::numeric_limits<double>::quiet_NaN();
  double max_rel_err = std::numeric_limits<double>::quiet_NaN();
  double test_mse = std::numeric_limits<double>::quiet_NaN();
  int a_step_products = 0;  ///< operator products the A-step used (cg, gd)
};

struct SolverOptions {
  Index rank = 0;                            ///< r (required, 1 <= r <= p; r > q: see the header)
  InitKind init = InitKind::Spectral;
  AStepSolver a_step = AStepSolver::Cg;
  CoreKind core = CoreKind::Full;
  TaskWeighting weighting = TaskWeighting::PerSample;
  double lambda = 0.0;                       ///< ridge on the cores
  int max_iterations = 100;
  double tolerance = 1e-10;                  ///< stop when |f_{t-1} - f_t| <= tolerance * f_{t-1}
  int cg_max_products = 50;                  ///< per A-step
  double cg_tolerance = 0.0;                 ///< relative residual; 0 = 100 eps(Scalar)
  double cg_reduction = 1e-2;                ///< stop CG once the residual fell by this factor
  double gd_step = 1.0;                      ///< eta of the gd A-step (in units of 1/L)
  int num_threads = 0;                       ///< 0 = all OpenMP threads
  std::uint64_t seed = 0;                    ///< random initialization
  bool track_truth = true;                   ///< record truth-based errors when the problem has a truth
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
    return compute_problem<detail::RegressionModel<Scalar>>(problem);
  }

  /// Fits (M2).
  Solver& compute(const SensingProblem<Scalar>& problem) { return compute_problem<detail::SensingModel<Scalar>>(problem); }

  Status info() const { return status_; }
  StopReason stop_reason() const { return stop_reason_; }
  int iterations() const { return iterations_; }
  const std::vector<IterationRecord>& history() const { return history_; }
  /// Notes about the data that did not stop the fit (e.g. a task with n_i < r).
  const std::vector<std::string>& warnings() const { return warnings_; }

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
  bool s_step(const Model& model, const std::vector<Scalar>& w);
  template <class Model>
  double objective(const Model& model, const std::vector<Scalar>& w) const;
  template <class Model>
  IterationRecord record(const Model& model, const std::vector<Scalar>& w, const GroundTruth<Scalar>* truth,
                         bool has_test, int iter, double seconds) const;

  SolverOptions options_;
  Status status_ = Status::NotComputed;
  StopReason stop_reason_ = StopReason::NotStarted;
  int iterations_ = 0;
  std::vector<IterationRecord> history_;
  std::vector<std::string> warnings_;
  Mat A_, B_, W0_;
  std::vector<Mat> S_;
  double lambda_ = 0;        ///< options_.lambda at the scale the model works in
  double report_scale_ = 1;  ///< objective and test MSE of the scaled problem -> the user's scale
  mutable double last_objective_ = 0;  ///< objective of the last record(), at the model's scale
};

/// The result of the one-line fit().
template <class Scalar>
struct FitResult {
  Status status = Status::NotComputed;
  StopReason stop_reason = StopReason::NotStarted;
  int iterations = 0;
  Matrix<Scalar> A, B;
  std::vector<Matrix<Scalar>> cores;
  std::vector<IterationRecord> history;
  std::vector<std::string> warnings;
};

/// One-liner: fit CoLoRA to a problem and return the factors and history.
template <class Problem>
FitResult<typename Problem::Scalar> fit(const Problem& problem, const SolverOptions& options) {
  Solver<typename Problem::Scalar> s(options);
  s.compute(problem);
  return {s.info(), s.stop_reason(), s.iterations(), s.A(), s.B(), s.cores(), s.history(), s.warnings()};
}

/// Adapting a new task: given fitted shared A (r x p) and B (q x r,
/// orthonormal columns for a full core), fit the personal core from n_new
/// samples (X: n x p, Y: n x q, W0 q x p or empty) by the S-step with ridge.
/// A task with fewer than r samples gets the minimum-norm core when
/// ridge = 0. Throws std::invalid_argument on mismatched shapes.
template <class Scalar>
Matrix<Scalar> adapt_core(const Matrix<Scalar>& A, const Matrix<Scalar>& B, const Matrix<Scalar>& W0,
                          const Matrix<Scalar>& X, const Matrix<Scalar>& Y, double ridge = 0.0,
                          CoreKind core = CoreKind::Full) {
  const char* w = "colora::adapt_core";
  detail::require(A.rows() == B.cols(), w, "A has ", A.rows(), " rows but B has ", B.cols(), " columns");
  detail::require(X.cols() == A.cols(), w, "X has ", X.cols(), " columns but A has p = ", A.cols());
  detail::require(Y.cols() == B.rows(), w, "Y has ", Y.cols(), " columns but B has q = ", B.rows());
  detail::require(X.rows() == Y.rows(), w, "X has ", X.rows(), " rows but Y has ", Y.rows());
  detail::require(X.rows() > 0, w, "the new task has 0 samples");
  detail::require(ridge >= 0 && std::isfinite(ridge), w, "ridge must be finite and >= 0, got ", ridge);
  RegressionProblem<Scalar> pb;
  pb.tasks.push_back({X, Y, {}, {}});
  pb.W0 = W0;
  pb.validate(w);
  detail::RegressionModel<Scalar> model(pb, 1);
  Matrix<Scalar> S;
  model.solve_core(0, A, B, Scalar(ridge), core, S);
  return S;
}

/// Held-out mean squared error of factored estimates W_i = W_0 + B S_i A:
/// sum_i ||test residual_i||^2 / (number of held-out entries). NaN when the
/// problem has no test split.
template <class Problem>
double test_mse(const Problem& problem, const Matrix<typename Problem::Scalar>& A,
                const Matrix<typename Problem::Scalar>& B, const std::vector<Matrix<typename Problem::Scalar>>& cores,
                int num_threads = 0) {
  using Scalar = typename Problem::Scalar;
  using Model = std::conditional_t<std::is_same<Problem, RegressionProblem<Scalar>>::value,
                                   detail::RegressionModel<Scalar>, detail::SensingModel<Scalar>>;
  detail::require(Index(cores.size()) == problem.num_tasks(), "colora::test_mse", "got ", cores.size(),
                  " cores for ", problem.num_tasks(), " tasks");
  const Model model(problem, num_threads);
  double s = 0, c = 0;
  for (Index i = 0; i < problem.num_tasks(); ++i) {
    Index cnt = 0;
    s += model.test_sq_error(i, A, B, cores[size_t(i)], cnt);
    c += double(cnt);
  }
  return c > 0 ? s / c : std::numeric_limits<double>::quiet_NaN();
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
                                                 : detail::concat("negligible (largest |x| = ", xi,
                                                                  " against ", x_max, " in the largest task)"),
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
      warnings_.push_back("the fitted cores exceed the range of the scalar type at the data's scale (outputs are "
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
bool Solver<Scalar>::s_step(const Model& model, const std::vector<Scalar>& w) {
  const Index k = model.tasks();
  std::vector<char> ok(size_t(k), 1);
  detail::parallel_for_tasks(k, options_.num_threads, [&](Index i) {
    ok[size_t(i)] = model.solve_core(i, A_, B_, Scalar(lambda_) / w[size_t(i)], options_.core, S_[size_t(i)]);
  });
  return std::all_of(ok.begin(), ok.end(), [](char c) { return c != 0; });
}

template <class Scalar>
template <class Model>
double Solver<Scalar>::objective(const Model& model, const std::vector<Scalar>& w) const {
  const Index k = model.tasks();
  std::vector<double> li(static_cast<size_t>(k));
  detail::parallel_for_tasks(k, options_.num_threads,
                             [&](Index i) { li[size_t(i)] = double(w[size_t(i)]) * model.loss(i, A_, B_, S_[size_t(i)]); });
  double f = 0;
  for (Index i = 0; i < k; ++i) f += li[size_t(i)] + lambda_ * double(S_[size_t(i)].squaredNorm());
  return f;
}

template <class Scalar>
template <class Model>
IterationRecord Solver<Scalar>::record(const Model& model, const std::vector<Scalar>& w,
                                       const GroundTruth<Scalar>* truth, bool has_test, int iter,
                                       double seconds) const {
  IterationRecord rec;
  rec.iteration = iter;
  rec.seconds = seconds;
  last_objective_ = objective(model, w);
  rec.objective = last_objective_ * report_scale_;
  if (truth && options_.track_truth) {
    const RecoveryMetrics m = recovery_metrics(*truth, A_, B_, S_);
    rec.dist_a = m.dist_a;
    rec.dist_b = m.dist_b;
    rec.mean_rel_err = m.mean_rel_err;
    rec.median_rel_err = m.median_rel_err;
    rec.max_rel_err = m.max_rel_err;
  }
  if (has_test) {
    const Index k = model.tasks();
    std::vector<double> se(static_cast<size_t>(k));
    std::vector<Index> cnt(static_cast<size_t>(k));
    detail::parallel_for_tasks(k, options_.num_threads, [&](Index i) {
      se[size_t(i)] = model.test_sq_error(i, A_, B_, S_[size_t(i)], cnt[size_t(i)]);
    });
    double s = 0, c = 0;
    for (Index i = 0; i < k; ++i) {
      s += se[size_t(i)];
      c += double(cnt[size_t(i)]);
    }
    rec.test_mse = c > 0 ? s / c * report_scale_ : std::numeric_limits<double>::quiet_NaN();
  }
  return rec;
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
  detail::require(!wide || options_.core == CoreKind::Full, where, "rank r = ", r, " exceeds the output width q = ",
                  q, ": only full cores are supported then (a diagonal core would not reach every head)");

  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };

  status_ = Status::NotComputed;
  stop_reason_ = StopReason::NotStarted;
  iterations_ = 0;
  history_.clear();
  std::vector<Scalar> w(static_cast<size_t>(k));
  for (Index i = 0; i < k; ++i) {
    w[size_t(i)] = options_.weighting == TaskWeighting::PerSample ? Scalar(1) : Scalar(1) / Scalar(model.samples(i));
    if (model.samples(i) < r && options_.lambda == 0.0)
      warnings_.push_back(detail::concat("task ", i, ": n_i = ", model.samples(i), " < r = ", r,
                                         ": its core is underdetermined; the minimum-norm core is used (set lambda > 0 "
                                         "for a ridge)"));
  }
  const bool full = options_.core == CoreKind::Full;

  // --- initialization -------------------------------------------------------
  if (options_.init == InitKind::Spectral) {
    const Mat AA = detail::ordered_sum(k, options_.num_threads, Mat(Mat::Zero(p, p)), [&](Index i, Mat& acc) {
      const Mat M = model.moment(i);
      acc.noalias() += M * M.transpose();
    });
    A_ = top_eigenvectors<Scalar>(AA, r).transpose();
    if (wide) {  // r > q: B is fixed to [I_q 0] (personal-head model), no q x q moment needed
      B_ = Mat::Identity(q, r);
    } else {
      const Mat BB = detail::ordered_sum(k, options_.num_threads, Mat(Mat::Zero(q, q)), [&](Index i, Mat& acc) {
        const Mat M = model.moment(i);
        acc.noalias() += M.transpose() * M;
      });
      B_ = top_eigenvectors<Scalar>(BB, r);
    }
  } else {
    Rng rng(options_.seed, 0x5EED1A17ULL);
    A_ = haar_orthonormal<Scalar>(rng, p, r).transpose();
    B_ = wide ? Mat(Mat::Identity(q, r)) : haar_orthonormal<Scalar>(rng, q, r);
  }
  S_.assign(size_t(k), Mat::Zero(r, r));
  bool ok = s_step(model, w) && A_.allFinite() && B_.allFinite();
  IterationRecord rec = record(model, w, truth, has_test, 0, elapsed());
  history_.push_back(rec);
  if (!ok || !std::isfinite(last_objective_)) {
    // No good state yet: return the zero adapter (W_i = W_0) on the initial
    // basis, or on canonical orthonormal factors where that is not finite.
    if (!A_.allFinite()) A_ = Mat::Identity(r, p);
    if (!B_.allFinite()) B_ = Mat::Identity(q, r);
    for (auto& S : S_) S.setZero();
    status_ = Status::NumericalIssue;
    stop_reason_ = ok ? StopReason::NonFiniteValue : StopReason::SingularSystem;
    return;
  }
  if (options_.callback && !options_.callback(rec)) {
    status_ = Status::Success;
    stop_reason_ = StopReason::CallbackRequested;
    return;
  }

  const double cg_tol = options_.cg_tolerance > 0 ? options_.cg_tolerance
                                                  : 100.0 * double(Eigen::NumTraits<Scalar>::epsilon());
  double f_prev = last_objective_;
  const double floor_eps = 1000.0 * double(Eigen::NumTraits<Scalar>::epsilon());
  // The objective of the zero adapter: the scale "rounding level" refers to.
  double f_scale = 0;
  for (Index i = 0; i < k; ++i) f_scale += double(w[size_t(i)]) * model.loss(i, A_, B_, Mat::Zero(r, r));
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

    // --- B-step (skipped when q < r: B = [I_q 0] stays fixed) ---
    if (!wide) {
      const detail::BNormal<Scalar> ne = detail::ordered_sum(
          k, options_.num_threads, model.b_zero(r),
          [&](Index i, detail::BNormal<Scalar>& acc) { acc += model.b_normal(i, A_, S_[size_t(i)], w[size_t(i)]); });
      Mat Bn;
      if (!model.b_from_normal(ne, Bn) || !Bn.allFinite()) {
        fail(StopReason::SingularSystem);
        break;
      }
      if (full) {
        const ThinQR<Scalar> qr = thin_qr(Bn);
        B_ = qr.Q;
        for (auto& S : S_) S = qr.R * S;
      } else {
        Vector<Scalar> nrm = Bn.colwise().norm().transpose();
        for (Index j = 0; j < r; ++j)
          if (!(nrm(j) > Scalar(0))) nrm(j) = Scalar(1);
        B_ = Bn * nrm.cwiseInverse().asDiagonal();
        for (auto& S : S_) S = nrm.asDiagonal() * S;
      }
    }

    // --- A-step ---
    Mat G = A_.transpose();
    detail::AStepStats ast;
    {
      const auto sys = model.a_system(B_, S_, w);
      switch (options_.a_step) {
        case AStepSolver::Exact: ast = detail::a_step_exact(sys, G); break;
        case AStepSolver::Cg: ast = detail::a_step_cg(sys, G, options_.cg_max_products, cg_tol, options_.cg_reduction); break;
        case AStepSolver::Gd: ast = detail::a_step_gd(sys, G, options_.gd_step); break;
      }
    }
    if (!ast.ok || !G.allFinite()) {
      fail(StopReason::SingularSystem);
      break;
    }
    if (full) {
      const ThinQR<Scalar> qr = thin_qr(G);
      A_ = qr.Q.transpose();
      for (auto& S : S_) S = S * qr.R.transpose();
    } else {
      Vector<Scalar> nrm = G.colwise().norm().transpose();
      for (Index j = 0; j < r; ++j)
        if (!(nrm(j) > Scalar(0))) nrm(j) = Scalar(1);
      A_ = (G * nrm.cwiseInverse().asDiagonal()).transpose();
      for (auto& S : S_) S = S * nrm.asDiagonal();
    }

    // --- S-step ---
    if (!s_step(model, w)) {
      fail(StopReason::SingularSystem);
      break;
    }

    rec = record(model, w, truth, has_test, it, elapsed());
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
    if (std::abs(f_prev - f) <= options_.tolerance * std::abs(f_prev) ||
        f <= f_scale * floor_eps * floor_eps) {
      status_ = Status::Success;
      stop_reason_ = StopReason::ToleranceReached;
      break;
    }
    f_prev = f;
  }
}

}  // namespace colora
