// What every experiment subcommand shares: the planted-problem flags, the
// solver flags, and running one named method on a problem with the same
// diagnostics for all methods.
#pragma once

#include <colora/baselines/estimate.hpp>
#include <colora/diagnostics/guarantee_report.hpp>
#include <colora/diagnostics/oracle_floor.hpp>
#include <colora/io/csv.hpp>
#include <colora/regression/generator.hpp>
#include <colora/regression/oracle.hpp>
#include <colora/regression/solver.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cmath>
#include <limits>
#include <new>
#include <string>
#include <vector>

#include <unistd.h>

#include "cli.hpp"
#include "stats.hpp"

namespace colora {
namespace exp {

/// The reference planted problem of `recovery` and `adapt` (README's main
/// job): k = 100, p = q = 64, r = 4, n_i = 24 (< p: no task can be learned
/// alone), 200 test samples per task, sigma = 0.1; the rest at the generator's
/// defaults.
inline GeneratorOptions reference_problem() {
  GeneratorOptions g;
  g.tasks = 100;
  g.p = 64;
  g.q = 64;
  g.rank = 4;
  g.samples = {24};
  g.test_samples = 200;
  g.sigma = 0.1;
  return g;
}

/// The memory the experiments may use, in bytes: the machine's physical
/// memory unless --max-memory (GiB) says otherwise (read_generator_flags).
inline double& memory_limit_bytes() {
  static double limit = [] {
    const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
    return pages > 0 && page > 0 ? double(pages) * double(page) : std::numeric_limits<double>::infinity();
  }();
  return limit;
}

/// A lower bound of the bytes one planted problem needs: its training and
/// test data (X and Y in double), the truth, and the solver's largest
/// per-problem work arrays (the p x p and q x q moments of the spectral
/// initialization, the p r x p r system of the exact A-step when asked for).
/// (M2, `sensing`: one q x p measurement matrix and one value per sample.)
inline double problem_bytes(const GeneratorOptions& g, bool exact_a_step = false, bool sensing = false) {
  double rows = 0;
  for (Index i = 0; i < g.tasks; ++i) rows += double(g.samples_of(i)) + double(g.test_samples);
  const double p = double(g.p), q = double(g.q), r = double(g.rank), k = double(g.tasks);
  double values = rows * (sensing ? p * q + 1 : p + q) + k * (r * r + (p + q) * r) + p * q + p * p + q * q;
  if (exact_a_step) values += (p * r) * (p * r);
  return 8.0 * values;
}

/// Refuses (a usage error, exit 2) a run whose data alone would exceed the
/// memory limit, naming the flags that set its size; `copies` problems live at
/// once (parallel trials).
inline void check_memory(const GeneratorOptions& g, double copies = 1, bool exact = false, bool sensing = false) {
  const double need = problem_bytes(g, exact, sensing) * copies, limit = memory_limit_bytes();
  if (need <= limit) return;
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "the problem needs at least %.3g GiB (--tasks %lld, --samples %lld + --test-samples %lld per task, "
                "--p %lld, --q %lld%s), more than the %.3g GiB allowed (the machine's memory, or --max-memory)",
                need / 1073741824.0, (long long)g.tasks, (long long)g.samples_of(0), (long long)g.test_samples,
                (long long)g.p, (long long)g.q, copies > 1 ? ", times the parallel trials" : "", limit / 1073741824.0);
  throw cli::UsageError(buf);
}

/// The flags of the planted problem (docs/solver.md, "The generator"). With `with_grid` false
/// --tasks and --samples are left out (phase: they are the grid axes).
inline GeneratorOptions read_generator_flags(cli::Args& args, const GeneratorOptions& defaults, bool with_grid = true) {
  GeneratorOptions g = defaults;
  if (with_grid) g.tasks = args.integer("tasks", defaults.tasks, "number of tasks k", 1, 1000000);
  g.p = args.integer("p", defaults.p, "input width p", 1, 100000);
  g.q = args.integer("q", defaults.q, "output width q", 1, 100000);
  g.rank = args.integer("rank", defaults.rank, "rank r", 1, 10000);
  if (with_grid) {
    std::string def_samples;
    for (auto n : defaults.samples) def_samples += (def_samples.empty() ? "" : ",") + std::to_string(n);
    const auto samples = args.integers("samples", def_samples, "samples per task: one value, or one per task", 1,
                                       100000000);
    g.samples.assign(samples.begin(), samples.end());
  }
  g.test_samples = args.integer("test-samples", defaults.test_samples, "held-out samples per task", 0, 100000000);
  g.sigma = args.real("sigma", defaults.sigma, "noise standard deviation", 0, 1e6);
  g.kappa = args.real("kappa", defaults.kappa, "condition number of each core S_i*", 1, 1e12);
  g.tau = args.real("tau", defaults.tau, "core diversity (0 = equal cores)", 0, 1e6);
  g.theta_a = args.real("theta-a", defaults.theta_a, "angle of A_i* from A* (radians)", 0, 1.5707963267948966);
  g.theta_b = args.real("theta-b", defaults.theta_b, "angle of B_i* from B* (radians)", 0, 1.5707963267948966);
  g.input_condition = args.real("input-condition", defaults.input_condition, "condition number of Sigma", 1, 1e12);
  g.random_base = args.flag("random-base", "random frozen base W_0 (default zero)");
  const double max_gib = args.real("max-memory", 0,
                                   "refuse problems needing more GiB than this (0 = the machine's memory)", 0, 1e9);
  if (max_gib > 0) memory_limit_bytes() = max_gib * 1073741824.0;
  return g;
}

/// The ridge of a new task's least-squares fit on features Z (n x d) that
/// `alpha` means relative to: alpha times the mean eigenvalue of Z^T Z,
/// alpha ||Z||_F^2 / d (colora adapt's --ridge; docs/baselines.md).
inline double relative_ridge(const Matrix<double>& Z, double alpha) {
  return Z.cols() > 0 ? alpha * Z.squaredNorm() / double(Z.cols()) : 0.0;
}

/// The solver flags shared by the methods.
inline SolverOptions read_solver_flags(cli::Args& args, Index rank) {
  SolverOptions o;
  o.rank = rank;
  o.a_step = parse_a_step_solver(args.choice("a-step", "cg", enum_choices<AStepSolver>(), "A-step solver"));
  o.core = parse_core_kind(args.choice("core", "full", enum_choices<CoreKind>(), "personal core"));
  o.init = parse_init_kind(args.choice("init", "spectral", enum_choices<InitKind>(), "initialization"));
  o.weighting = parse_task_weighting(
      args.choice("weighting", "per-sample", enum_choices<TaskWeighting>(), "task weights w_i = 1 or 1/n_i"));
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

/// colora::baseline_names(): every method the subcommands can run.
const std::vector<std::string>& known_methods();

/// Whether the method runs with r > q (personal-head regime): colora-form
/// methods (B = [I_q 0]), heads, and the rank-free ones.
/// (From the registry's traits, in methods.cpp.)
const std::vector<std::string>& wide_rank_methods();
/// Whether the method uses --rank (false for the full-rank local and global).
bool method_needs_rank(const std::string& method);
inline bool supports_wide_rank(const std::string& method) {
  const auto& m = wide_rank_methods();
  return std::find(m.begin(), m.end(), method) != m.end();
}

/// Checks `--rank` r against the widths: r <= p always; with r > q (the
/// personal-head regime, e.g. FedRep's scalar outputs) only the methods of
/// supports_wide_rank() can run: when the list came from "all" the others are
/// dropped with a note on stderr, a method named explicitly is a usage error.
inline std::vector<std::string> methods_for_rank(const std::vector<std::string>& methods,
                                                 const std::vector<std::string>& names, Index p, Index q, Index r,
                                                 const char* command) {
  if (r > p)
    throw cli::UsageError("flag --rank: " + std::to_string(r) + " exceeds the input width p = " + std::to_string(p));
  if (r <= q) return methods;
  const bool from_all = std::find(names.begin(), names.end(), "all") != names.end();
  std::vector<std::string> kept;
  for (const auto& m : methods) {
    if (supports_wide_rank(m)) {
      kept.push_back(m);
    } else if (from_all) {
      std::fprintf(stderr, "%s: skipping %s (it needs r <= q; here q = %lld < r = %lld)\n", command, m.c_str(),
                   (long long)q, (long long)r);
    } else {
      std::string wide;
      for (const auto& w : wide_rank_methods()) wide += (wide.empty() ? "" : ", ") + w;
      throw cli::UsageError("method " + m + " needs --rank r <= q = " + std::to_string(q) + ", got " +
                            std::to_string(r) + " (with r > q use " + wide + ")");
    }
  }
  if (kept.empty()) throw cli::UsageError("no method of --methods supports r > q");
  return kept;
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
/// Defined once, in methods.cpp: every baseline is instantiated in that one
/// translation unit instead of in every subcommand (compile time).
MethodOutcome run_method(const std::string& method, const RegressionProblem<double>& pb,
                         const BaselineOptions& options);
MethodOutcome run_method(const std::string& method, const SensingProblem<double>& pb, const BaselineOptions& options);

/// The same with the solver options only (baseline knobs at their defaults).
template <class Problem>
MethodOutcome run_method(const std::string& method, const Problem& pb, const SolverOptions& options) {
  return run_method(method, pb, BaselineOptions(options));
}

/// Runs every method of `methods` on `runs` planted problems (run j uses
/// problem_of(j)), the runs in parallel over `threads` (dynamic schedule,
/// everything inside single-threaded, so results do not depend on the thread
/// count), and calls record(run, method_index, outcome) for every method run
/// that returned. A method that throws on some run is reported on stderr
/// ("<command>: warning: <method> failed in F of R runs (<consequence>): <first
/// message>") and not recorded for that run. Before any work it refuses (usage
/// error) runs whose problems would not fit in memory, then prints
/// "<command>: <banner>".
template <class ProblemOf, class Record>
void run_trials(const char* command, const std::string& banner, long runs, int threads,
                const std::vector<std::string>& methods, const BaselineOptions& options, const char* consequence,
                ProblemOf problem_of, Record record) {
  const long nm = long(methods.size());
  std::vector<std::string> errors(size_t(runs * nm));
  {  // memory: the largest problem, once per thread that may hold one
    GeneratorOptions largest = problem_of(0);
    for (long run = 1; run < runs; ++run) {
      const GeneratorOptions gi = problem_of(run);
      if (problem_bytes(gi) > problem_bytes(largest)) largest = gi;
    }
    check_memory(largest, double(detail::resolve_threads(threads, runs)), options.a_step == AStepSolver::Exact);
  }
  std::fprintf(stderr, "%s: %s\n", command, banner.c_str());
  Progress progress(command, runs);
  detail::parallel_for(runs, threads, [&](Index run_index) {
    const long run = long(run_index);
    GeneratorOptions gi = problem_of(run);
    gi.num_threads = 1;
    BaselineOptions oi = options;
    oi.num_threads = 1;
    oi.seed = gi.seed;
    try {
      const auto pb = generate_regression<double>(gi);
      for (long m = 0; m < nm; ++m) {
        try {
          record(run, m, run_method(methods[size_t(m)], pb, oi));
        } catch (const std::bad_alloc&) {
          throw;  // out of memory stops the command (below), it is not a method's failure
        } catch (const std::exception& e) {
          errors[size_t(run * nm + m)] = e.what();
        }
      }
    } catch (const std::bad_alloc&) {
      throw;
    } catch (const std::exception& e) {
      for (long m = 0; m < nm; ++m) errors[size_t(run * nm + m)] = e.what();
    }
    progress.tick();
  });
  for (long m = 0; m < nm; ++m) {
    long failed = 0;
    std::string first;
    for (long run = 0; run < runs; ++run)
      if (!errors[size_t(run * nm + m)].empty()) {
        if (!failed) first = errors[size_t(run * nm + m)];
        ++failed;
      }
    if (failed)
      std::fprintf(stderr, "%s: warning: %s failed in %ld of %ld runs (%s): %s\n", command, methods[size_t(m)].c_str(),
                   failed, runs, consequence, first.c_str());
  }
}

}  // namespace exp
struct RankSelectionOptions;
struct RankSelection;
namespace exp {

/// colora::select_rank (colora/baselines/rank_selection.hpp) for `method`;
/// defined in methods.cpp with the baselines it runs.
RankSelection select_rank(const std::string& method, const RegressionProblem<double>& pb,
                          const BaselineOptions& options, const RankSelectionOptions& cv);

/// The guarantee report (docs/theory.md) of a finished colora run, for both
/// measurement models; defined in methods.cpp for the same reason.
GuaranteeReport colora_guarantee_report(const RegressionProblem<double>& pb, Index rank,
                                        const std::vector<IterationRecord>& history, const RecoveryMetrics& metrics,
                                        const GuaranteeReportOptions& options);
GuaranteeReport colora_guarantee_report(const SensingProblem<double>& pb, Index rank,
                                        const std::vector<IterationRecord>& history, const RecoveryMetrics& metrics,
                                        const GuaranteeReportOptions& options);

}  // namespace exp
}  // namespace colora
