// colora fit: bring your own data. Reads a directory of .npy task files
// (io::load_regression_directory: X_<i>.npy, Y_<i>.npy, optional W0.npy,
// X_test_<i>.npy, Y_test_<i>.npy), fits one method and writes
//   OUT/<name>.npy, OUT/<name>_<i>.npy    the method's estimates (colora: A, B, S_<i>)
//                                         (--format safetensors: OUT/factors.safetensors with the
//                                         same names, and OUT/peft/task_<i>/, task i's update
//                                         W_i - W0 as a PEFT LoRA directory of one layer "linear")
//   OUT/report.csv                        task,samples,train_mse,test_mse
//   OUT/summary.csv                       one line: method, sizes, objective, iterations, status, ...
// Exit codes: 0 the fit converged (status Success); 3 it ran out of
// iterations (MaxIterations: the factors are written, with a warning); 1 it
// failed numerically (NumericalIssue, or a non-finite estimate: no factor is
// written unless --write-failed) or the data are unreadable or inconsistent
// (the message names the file); 2 a bad command line or bad values. The
// fit's warnings are printed on stderr.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include <colora/core/errors.hpp>  // before methods.hpp: core/subspace.hpp uses detail::require
#include <colora/diagnostics/measured_rate.hpp>

#include "commands.hpp"
#include "methods.hpp"
// After methods.hpp (io/csv.hpp): csv.hpp's unqualified detail::require would
// otherwise find colora::io::detail, which task_directory.hpp opens.
#include <colora/io/task_directory.hpp>
#include <colora/nn/peft.hpp>
#include <colora/baselines/rank_selection.hpp>

#include "model_dir.hpp"
#include "plot.hpp"

namespace colora {
namespace cmd {

namespace {

/// rank_cv.csv (rank, cv_mse, cv_se, failed_fits, chosen) and its plot.
void write_rank_cv(const std::string& out_dir, const std::string& method, const RankSelection& sel,
                   const std::string& rule) {
  io::CsvTable t({"rank", "cv_mse", "cv_se", "folds", "failed_fits", "chosen"});
  for (size_t j = 0; j < sel.ranks.size(); ++j)
    t.row() << (long long)sel.ranks[j] << sel.cv_mse[j] << sel.cv_se[j] << (long long)sel.folds
            << (long long)sel.failed_fits[j] << (long long)(sel.ranks[j] == sel.chosen_rank);
  t.write(out_dir + "/rank_cv.csv");
  const std::string csv = plot::quote_path(out_dir + "/rank_cv.csv");
  const std::string script =
      "set datafile separator ','\nset logscale y\nset grid\nset key outside right top\n"
      "set xlabel 'rank r'\nset ylabel 'held-out MSE (mean over folds, +- 1 standard error)'\n"
      "set xrange [0.5:" + std::to_string(sel.ranks.back()) + ".5]\n"
      "set title " + plot::quote(method + ": " + std::to_string(sel.folds) + "-fold cross-validation of the rank, " +
                                 rule + " rule: r = " + std::to_string(sel.chosen_rank)) + "\n"
      "plot " + csv + " using 1:2:3 every ::1 with yerrorlines lw 2 pt 7 lc rgb '#1b9e77' title 'CV error', " +
      csv + " using 1:($6 > 0 ? $2 : 1/0) every ::1 with points pt 6 ps 3 lw 2 lc rgb '#d95f02' title 'chosen rank'\n";
  plot::render_png(out_dir + "/rank_cv.png", script);
}

}  // namespace

int fit(cli::Args& args) {
  const std::string data =
      args.str("data", "", "directory with X_<i>.npy, Y_<i>.npy [, W0.npy, X_test_<i>.npy, Y_test_<i>.npy] (required)");
  const std::string method_name = args.str("method", "colora", "method to fit (one name of colora recovery --methods)");
  const std::string rank_flag =
      args.str("rank", "", "rank r, or auto (K-fold cross-validation over --rank-grid; required, except for local "
                           "and global)");
  const bool rank_auto = rank_flag == "auto";
  long long rank = 0;
  if (!rank_flag.empty() && !rank_auto && !args.help_requested()) {
    size_t used = 0;
    try {
      rank = std::stoll(rank_flag, &used);
    } catch (...) {
      used = 0;
    }
    if (used != rank_flag.size() || rank < 1 || rank > 10000)
      throw cli::UsageError("flag --rank: '" + rank_flag + "' is neither a rank in [1, 10000] nor auto");
  }
  const auto rank_grid = args.integers("rank-grid", "1,2,3,4,5,6,7,8,9,10,11,12",
                                       "--rank auto: candidate ranks (those above min(p, q) are dropped)", 1, 10000);
  const int cv_folds = int(args.integer("cv-folds", 5, "--rank auto: folds K of the cross-validation", 2, 1000));
  const std::string cv_rule =
      args.choice("cv-rule", "one-se", {"one-se", "min"},
                  "--rank auto: the smallest rank within one standard error of the best, or the best");
  BaselineOptions opts = exp::read_baseline_flags(args, exp::read_solver_flags(args, Index(std::max(rank, 1LL))));
  opts.seed = std::uint64_t(args.integer("seed", 1, "seed of random initialization", 0));
  opts.num_threads = int(args.integer("threads", 0, "threads (0 = all)", 0, 1024));
  const std::string out_dir = args.str("out", "results/fit", "output directory");
  const std::string format = args.choice(
      "format", "npy", {"npy", "safetensors"},
      "factor files: npy (one .npy per factor) or safetensors (factors.safetensors and a PEFT LoRA directory "
      "peft/task_<i>/ per task)");
  const bool write_failed = args.flag("write-failed", "write the factors even when the fit failed (with a warning)");
  if (args.finish()) return 0;
  if (data.empty()) throw cli::UsageError("--data DIR is required (see colora fit --help)");
  const auto methods = exp::parse_methods({method_name});
  if (methods.size() != 1) throw cli::UsageError("--method takes one method, got '" + method_name + "'");
  const std::string method = methods[0];
  const bool needs_rank = exp::method_needs_rank(method);  // the full-rank methods (local, global) ignore r
  if (needs_rank && rank < 1 && !rank_auto) throw cli::UsageError("--rank r is required (a positive integer or auto)");
  if (!needs_rank && rank_auto)
    throw cli::UsageError("--rank auto: method " + method + " is full-rank (it has no rank to choose)");
  if (!needs_rank && rank < 1) opts.rank = 1;
  if (method == "oracle")
    throw cli::UsageError("--method oracle needs the planted truth, which a data directory does not have");

  const RegressionProblem<double> pb = io::load_regression_directory<double>(data);
  const Index k = pb.num_tasks(), p = pb.input_dim(), q = pb.output_dim();
  RankSelection selection;
  if (rank_auto) {
    RankSelectionOptions cv;
    const Index max_rank = exp::supports_wide_rank(method) ? p : std::min(p, q);
    for (long long r : rank_grid)
      if (r <= max_rank) cv.ranks.push_back(Index(r));
    if (cv.ranks.empty())
      throw cli::UsageError("flag --rank-grid: every rank exceeds " + std::to_string(max_rank) +
                            " (the largest rank method " + method + " can fit here)");
    cv.folds = cv_folds;
    cv.seed = opts.seed;
    cv.one_standard_error = cv_rule == "one-se";
    std::fprintf(stderr, "fit: --rank auto: %d-fold cross-validation of %s over %zu ranks (%zu fits) ...\n",
                 cv_folds, method.c_str(), cv.ranks.size(), cv.ranks.size() * size_t(cv_folds));
    selection = exp::select_rank(method, pb, opts, cv);
    rank = (long long)selection.chosen_rank;
    opts.rank = selection.chosen_rank;
    std::filesystem::create_directories(out_dir);
    write_rank_cv(out_dir, method, selection, cv_rule);
    if (selection.at_grid_edge)
      std::fprintf(stderr,
                   "fit: warning: --rank auto chose %lld, the largest rank of the grid: the CV error may still fall "
                   "beyond it (extend --rank-grid)\n",
                   rank);
  }
  if (needs_rank) exp::methods_for_rank({method}, {method}, p, q, rank, "fit");
  std::fprintf(stderr, "fit: %s on %s: k=%lld tasks, p=%lld, q=%lld, %lld training samples, rank %lld\n",
               method.c_str(), data.c_str(), (long long)k, (long long)p, (long long)q, (long long)pb.total_samples(),
               rank);

  const exp::MethodOutcome outcome = exp::run_method(method, pb, opts);
  const size_t shown = std::min<size_t>(outcome.warnings.size(), 10);
  for (size_t i = 0; i < shown; ++i) std::fprintf(stderr, "fit: warning: %s\n", outcome.warnings[i].c_str());
  if (outcome.warnings.size() > shown)
    std::fprintf(stderr, "fit: warning: ... and %zu more warnings\n", outcome.warnings.size() - shown);

  // The estimates: the method's own named factors (colora: A, B, S_<i>;
  // fedrep: A, H_<i>; local: W_<i>; ...), as the method reports them.
  const MultiTaskEstimate<double>& est = outcome.estimate;
  std::vector<std::pair<std::string, Matrix<double>>> files;
  for (const auto& f : est.shared) files.push_back({f.name, f.value});
  for (const auto& f : est.personal)
    for (size_t i = 0; i < f.values.size(); ++i) files.push_back({io::indexed_name(f.name, Index(i)), f.values[i]});
  const bool have_estimate = est.num_tasks() == k;
  if (!have_estimate)
    std::fprintf(stderr, "fit: warning: method %s returned no per-task estimate; report.csv has NaN errors\n",
                 method.c_str());
  // A fit we cannot stand behind writes no factors (unless asked to).
  std::string bad_file;
  for (const auto& f : files)
    if (bad_file.empty() && !f.second.allFinite()) bad_file = f.first;
  const bool failed = outcome.status == Status::NumericalIssue || !bad_file.empty();
  if (failed)
    std::fprintf(stderr, "fit: error: %s failed: status %s (%s)%s; %s\n", method.c_str(), to_string(outcome.status),
                 to_string(outcome.stop_reason),
                 bad_file.empty() ? "" : (", " + bad_file + " has non-finite entries").c_str(),
                 write_failed ? "writing the factors anyway (--write-failed)"
                              : "no factor file written (--write-failed writes them anyway); see the warnings above");
  std::filesystem::create_directories(out_dir);
  const bool write_factors = !files.empty() && (!failed || write_failed);
  if (write_factors && format == "npy") io::save_matrices(out_dir, files);
  // The model directory predict and adapt read (model_dir.hpp).
  if (write_factors && have_estimate) exp::write_model(out_dir + "/model", method, needs_rank ? Index(rank) : 0, p, q, est);
  if (write_factors && format == "safetensors") {
    io::write_safetensors<double>(out_dir + "/factors.safetensors", files,
                                  {{"format", "colora"}, {"method", method}, {"tasks", std::to_string(k)}});
    // Task i's update W_i - W0 = U_i V_i^T as one LoRA'd linear layer: lora_A = V_i^T, lora_B = U_i
    // (a dense update: r = min(p, q) with an identity factor, exact).
    for (Index i = 0; have_estimate && i < k; ++i) {
      const bool low_rank = !est.dense && est.U[size_t(i)].cols() >= 1;
      const nn::LoraPair<double> pair =
          low_rank ? nn::LoraPair<double>{"linear", est.v(i).transpose(), est.U[size_t(i)]}
                   : nn::lora_pair_from_dense<double>("linear", est.delta(i));
      nn::write_peft_adapter(out_dir + "/peft/task_" + std::to_string(i), std::vector<nn::LoraPair<double>>{pair});
    }
  }

  io::CsvTable report({"task", "samples", "train_mse", "test_mse"});
  double train_se = 0, train_cnt = 0;
  for (Index i = 0; i < k; ++i) {
    const auto& t = pb.tasks[size_t(i)];
    double tr = std::numeric_limits<double>::quiet_NaN(), te = tr;
    if (have_estimate) {
      const double se = (est.predict(i, t.X) - t.Y).squaredNorm();
      train_se += se;
      train_cnt += double(t.Y.size());
      tr = se / double(t.Y.size());
      if (t.test_samples() > 0) te = (est.predict(i, t.X_test) - t.Y_test).squaredNorm() / double(t.Y_test.size());
    }
    report.row() << (long long)i << (long long)t.samples() << tr << te;
  }
  report.write(out_dir + "/report.csv");

  const double objective = outcome.history.empty() ? std::numeric_limits<double>::quiet_NaN()
                                                   : outcome.history.back().objective;
  const double train_mse = train_cnt > 0 ? train_se / train_cnt : std::numeric_limits<double>::quiet_NaN();
  io::CsvTable summary({"method", "tasks", "p", "q", "rank", "objective", "iterations", "status", "stop_reason",
                        "train_mse", "test_mse", "seconds", "rho_objective_gap", "rho_objective_gap_low",
                        "rho_objective_gap_high", "rank_selection"});
  // No truth here: the rate of the objective gap f_t - f_final (docs/theory.md).
  const RateFit gap = objective_gap_rate(outcome.history);
  summary.row() << method << (long long)k << (long long)p << (long long)q << rank << objective << outcome.iterations
                << to_string(outcome.status) << to_string(outcome.stop_reason) << train_mse << outcome.test_mse
                << outcome.seconds << gap.rho << gap.rho_lower << gap.rho_upper
                << (rank_auto ? "cv-" + std::to_string(cv_folds) + "-fold-" + cv_rule
                              : std::string(needs_rank ? "given" : "none"));
  summary.write(out_dir + "/summary.csv");

  std::printf(
      "colora fit: %s, k=%lld p=%lld q=%lld r=%lld: objective %.6e, %d iterations, %s (%s), train MSE %.4e, "
      "test MSE %.4e\n",
      method.c_str(), (long long)k, (long long)p, (long long)q, rank, objective, outcome.iterations,
      to_string(outcome.status), to_string(outcome.stop_reason), train_mse, outcome.test_mse);
  if (gap.status == RateFitStatus::Fitted)
    std::printf("rate of the objective gap f_t - f_final (no truth to measure a distance): %.4g [%.4g, %.4g] per iteration\n",
                gap.rho, gap.rho_lower, gap.rho_upper);
  else
    std::printf("rate of the objective gap f_t - f_final: not measured (%s linear phase, %d iterations)\n",
                to_string(gap.status), outcome.iterations);
  std::string written;
  if (format == "safetensors") {
    written = ", factors.safetensors, peft/task_<i>/";
  } else {
    for (const auto& f : est.shared) written += ", " + f.name + ".npy";
    for (const auto& f : est.personal) written += ", " + f.name + "_<i>.npy";
  }
  if (rank_auto) {
    std::printf("rank chosen by %d-fold cross-validation (%s rule): %lld (minimum CV error at rank %lld)\n", cv_folds,
                cv_rule.c_str(), rank, (long long)selection.best_rank);
    written += ", rank_cv.csv, rank_cv.png";
  }
  if (write_factors && have_estimate) written += ", model/";
  std::printf("wrote %s/report.csv, summary.csv%s\n", out_dir.c_str(), failed && !write_failed ? "" : written.c_str());
  if (failed) return 1;
  if (outcome.status == Status::MaxIterations) {
    std::fprintf(stderr,
                 "fit: warning: %s stopped after %d iterations without meeting --tol (status MaxIterations); the "
                 "factors are the last iterate (exit code 3; raise --iters to converge)\n",
                 method.c_str(), outcome.iterations);
    return 3;
  }
  return 0;
}

}  // namespace cmd
}  // namespace colora
