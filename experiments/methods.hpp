// What every experiment subcommand shares: the planted-problem flags, the
// solver flags, and running one named method on a problem with the same
// diagnostics for all methods.
#pragma once

#include <colora/baselines/baselines.hpp>
#include <colora/diagnostics/oracle_floor.hpp>
#include <colora/io/csv.hpp>
#include <colora/regression/generator.hpp>
#include <colora/regression/oracle.hpp>
#include <colora/regression/solver.hpp>

#include <chrono>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "cli.hpp"

namespace colora {
namespace exp {

/// The flags of the planted problem (spec section 3).
inline GeneratorOptions read_generator_flags(cli::Args& args, const GeneratorOptions& defaults) {
  GeneratorOptions g = defaults;
  g.tasks = args.integer("tasks", defaults.tasks, "number of tasks k", 1, 1000000);
  g.p = args.integer("p", defaults.p, "input width p", 1, 100000);
  g.q = args.integer("q", defaults.q, "output width q", 1, 100000);
  g.rank = args.integer("rank", defaults.rank, "rank r", 1, 10000);
  std::string def_samples;
  for (auto n : defaults.samples) def_samples += (def_samples.empty() ? "" : ",") + std::to_string(n);
  const auto samples = args.integers("samples", def_samples, "samples per task: one value, or one per task", 1,
                                     100000000);
  g.samples.assign(samples.begin(), samples.end());
  g.test_samples = args.integer("test-samples", defaults.test_samples, "held-out samples per task", 0, 100000000);
  g.sigma = args.real("sigma", defaults.sigma, "noise standard deviation", 0, 1e6);
  g.kappa = args.real("kappa", defaults.kappa, "condition number of each core S_i*", 1, 1e12);
  g.tau = args.real("tau", defaults.tau, "core diversity (0 = equal cores)", 0, 1e6);
  g.theta_a = args.real("theta-a", defaults.theta_a, "angle of A_i* from A* (radians)", 0, 1.5707963267948966);
  g.theta_b = args.real("theta-b", defaults.theta_b, "angle of B_i* from B* (radians)", 0, 1.5707963267948966);
  g.input_condition = args.real("input-condition", defaults.input_condition, "condition number of Sigma", 1, 1e12);
  g.random_base = args.flag("random-base", "random frozen base W_0 (default zero)");
  return g;
}

/// The solver flags shared by the methods.
inline SolverOptions read_solver_flags(cli::Args& args, Index rank) {
  SolverOptions o;
  o.rank = rank;
  o.a_step = parse_a_step_solver(args.choice("a-step", "cg", {"exact", "cg", "gd"}, "A-step solver"));
  o.core = parse_core_kind(args.choice("core", "full", {"full", "diagonal"}, "personal core"));
  o.init = parse_init_kind(args.choice("init", "spectral", {"spectral", "random"}, "initialization"));
  o.weighting = args.choice("weighting", "per-sample", {"per-sample", "per-task"}, "task weights w_i = 1 or 1/n_i") ==
                        "per-sample"
                    ? TaskWeighting::PerSample
                    : TaskWeighting::PerTask;
  o.lambda = args.real("lambda", 0.0, "ridge on the cores", 0, 1e12);
  o.max_iterations = int(args.integer("iters", 50, "maximum iterations", 0, 1000000));
  o.tolerance = args.real("tol", 1e-10, "relative objective change to stop at", 0, 1);
  return o;
}

/// The baseline-only flags (fedrep participation, gd-gd step) on top of the
/// solver flags.
inline BaselineOptions read_baseline_flags(cli::Args& args, const SolverOptions& solver) {
  BaselineOptions o(solver);
  o.participation = args.real("participation", 1.0, "fedrep: fraction of tasks per round, in (0, 1]", 1e-12, 1);
  o.gd_gd_step = args.real("gd-gd-step", 0.5, "gd-gd: step size in units of 1/L_block", 1e-12, 1e6);
  return o;
}

/// One method's run on one problem, with the diagnostics every method gets.
struct MethodOutcome {
  std::string method;
  Status status = Status::NotComputed;
  StopReason stop_reason = StopReason::NotStarted;
  int iterations = 0;
  double seconds = 0;
  RecoveryMetrics metrics;  ///< NaN fields when the problem has no truth or the method has no such factor
  double test_mse = std::numeric_limits<double>::quiet_NaN();
  std::vector<IterationRecord> history;
  // Added with the baselines (issue 4):
  /// The method's estimate in generic form (W_i - W_0 = U_i V_i^T) and its own
  /// named factors (estimate.shared: e.g. A, B or W; estimate.personal: e.g.
  /// S_<i>, H_<i>, W_<i>) for writing.
  MultiTaskEstimate<double> estimate;
  Index parameters = 0;               ///< trainable parameters of the method
  std::vector<std::string> warnings;  ///< notes from the fit (e.g. underdetermined tasks)
};

inline const std::vector<std::string>& known_methods() {
  return baseline_names();
}

/// Expands "all" and checks every name.
inline std::vector<std::string> parse_methods(const std::vector<std::string>& names) {
  std::vector<std::string> out;
  for (const auto& n : names) {
    if (n == "all") {
      for (const auto& m : known_methods()) out.push_back(m);
      continue;
    }
    bool ok = false;
    for (const auto& m : known_methods()) ok = ok || n == m;
    if (!ok) {
      std::string all;
      for (const auto& m : known_methods()) all += " " + m;
      throw cli::UsageError("unknown method '" + n + "' (known:" + all + ", all)");
    }
    out.push_back(n);
  }
  if (out.empty()) throw cli::UsageError("--methods needs at least one method");
  return out;
}

/// Runs `method` (one of known_methods()) with the baseline options.
template <class Problem>
MethodOutcome run_method(const std::string& method, const Problem& pb, const BaselineOptions& options) {
  bool known = false;
  for (const auto& m : known_methods()) known = known || m == method;
  if (!known) throw cli::UsageError("unknown method '" + method + "'");
  MethodOutcome out;
  out.method = method;
  const auto t0 = std::chrono::steady_clock::now();
  BaselineResult<typename Problem::Scalar> res = fit_baseline(method, pb, options);
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  out.status = res.status;
  out.stop_reason = res.stop_reason;
  out.iterations = res.iterations;
  out.history = std::move(res.history);
  out.warnings = std::move(res.warnings);
  if (pb.truth) out.metrics = estimate_metrics(*pb.truth, res.estimate, options.num_threads);
  out.test_mse = estimate_test_mse(pb, res.estimate, options.num_threads);
  out.parameters = res.estimate.trainable_parameters;
  out.estimate = res.estimate.template cast<double>();
  if (out.history.empty()) {  // safety: every method should give at least one record
    IterationRecord rec;
    rec.seconds = out.seconds;
    rec.objective = std::numeric_limits<double>::quiet_NaN();
    rec.dist_a = out.metrics.dist_a;
    rec.dist_b = out.metrics.dist_b;
    rec.mean_rel_err = out.metrics.mean_rel_err;
    rec.median_rel_err = out.metrics.median_rel_err;
    rec.max_rel_err = out.metrics.max_rel_err;
    rec.test_mse = out.test_mse;
    out.history.push_back(rec);
  }
  return out;
}

/// The same with the solver options only (baseline knobs at their defaults).
template <class Problem>
MethodOutcome run_method(const std::string& method, const Problem& pb, const SolverOptions& options) {
  return run_method(method, pb, BaselineOptions(options));
}

}  // namespace exp
}  // namespace colora
