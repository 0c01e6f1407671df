// colora recovery: does the solver find the planted truth, how fast, and how
// close to the oracle floor? The main job of README's run command.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "commands.hpp"
#include "methods.hpp"
#include "plot.hpp"
#include "theory_report.hpp"

namespace colora {
namespace cmd {

namespace {

template <class Problem>
std::vector<exp::MethodOutcome> run_all(const Problem& pb, const std::vector<std::string>& methods,
                                        const BaselineOptions& opts) {
  std::vector<exp::MethodOutcome> out;
  for (const auto& m : methods) {
    std::fprintf(stderr, "recovery: running %s ...\n", m.c_str());
    out.push_back(exp::run_method(m, pb, opts));
  }
  return out;
}

}  // namespace

int recovery(cli::Args& args) {
  GeneratorOptions g = exp::read_generator_flags(args, exp::reference_problem());
  const std::string model = args.choice("model", "regression", {"regression", "sensing"}, "measurement model");
  BaselineOptions opts = exp::read_baseline_flags(args, exp::read_solver_flags(args, g.rank));
  g.seed = std::uint64_t(args.integer("seed", 1, "seed of the problem and of random initialization", 0));
  opts.seed = g.seed;
  opts.num_threads = int(args.integer("threads", 0, "threads (0 = all)", 0, 1024));
  g.num_threads = opts.num_threads;
  const auto method_names = args.list("methods", "all", "methods to run (comma separated, or all)");
  const std::string out_dir = args.str("out", "results/recovery", "output directory");
  const std::string plot_metric = args.choice("plot", "rel-err", {"rel-err", "dist-a", "dist-b", "test-mse"},
                                              "what recovery.png draws against the iteration");
  if (args.finish()) return 0;
  auto methods = exp::parse_methods(method_names);
  g.validate();
  exp::check_memory(g, 1, opts.a_step == AStepSolver::Exact, model == "sensing");
  methods = exp::methods_for_rank(methods, method_names, g.p, g.q, opts.rank, "recovery");

  std::filesystem::create_directories(out_dir);
  std::vector<exp::MethodOutcome> results;
  // colora's guarantee report (docs/theory.md) needs the planted problem: it
  // is built here, printed after the tables.
  std::optional<GuaranteeReport> report;
  auto run_on = [&](const auto& problem) {
    results = run_all(problem, methods, opts);
    for (const auto& r : results) {
      if (r.method != "colora") continue;
      GuaranteeReportOptions ro;
      ro.num_threads = opts.num_threads;
      ro.grip.seed = g.seed;
      ro.core = opts.core;
      ro.solver = static_cast<const SolverOptions&>(opts);  // the twin and the predicted rate re-run colora's settings
      report = exp::colora_guarantee_report(problem, opts.rank, r.history, r.metrics, ro);
    }
  };
  if (model == "regression")
    run_on(generate_regression<double>(g));
  else
    run_on(generate_sensing<double>(g));

  // Expected held-out MSE of the core oracle (exact model, Sigma = I), averaged over tasks.
  double oracle_mse = 0;
  for (Index i = 0; i < g.tasks; ++i)
    oracle_mse += oracle_core_test_mse(g.sigma, long(g.q), long(g.rank), long(g.samples_of(i)));
  oracle_mse /= double(g.tasks);
  if (model == "sensing") oracle_mse = std::numeric_limits<double>::quiet_NaN();

  io::CsvTable summary({"method", "final_dist_a", "final_dist_b", "mean_rel_err", "median_rel_err", "max_rel_err",
                        "test_mse", "oracle_mse", "iterations", "seconds"});
  io::CsvTable history({"method", "iter", "seconds", "objective", "dist_a", "dist_b", "mean_rel_err", "test_mse"});
  std::printf(
      "colora recovery: %s, k=%lld p=%lld q=%lld r=%lld n_i=%lld sigma=%g tau=%g theta_a=%g theta_b=%g seed=%llu\n",
      model.c_str(), (long long)g.tasks, (long long)g.p, (long long)g.q, (long long)g.rank, (long long)g.samples_of(0),
      g.sigma, g.tau, g.theta_a, g.theta_b, (unsigned long long)g.seed);
  std::printf("%-12s %10s %10s %12s %12s %12s %12s %6s %8s  %s\n", "method", "dist_a", "dist_b", "mean_rel_err",
              "max_rel_err", "test_mse", "oracle_mse", "iters", "seconds", "status");
  for (const auto& r : results) {
    summary.row() << r.method << r.metrics.dist_a << r.metrics.dist_b << r.metrics.mean_rel_err
                  << r.metrics.median_rel_err << r.metrics.max_rel_err << r.test_mse << oracle_mse << r.iterations
                  << r.seconds;
    for (const auto& h : r.history)
      history.row() << r.method << h.iteration << h.seconds << h.objective << h.dist_a << h.dist_b << h.mean_rel_err
                    << h.test_mse;
    std::printf("%-12s %10.3e %10.3e %12.4e %12.4e %12.4e %12.4e %6d %8.3f  %s (%s)\n", r.method.c_str(),
                r.metrics.dist_a, r.metrics.dist_b, r.metrics.mean_rel_err, r.metrics.max_rel_err, r.test_mse,
                oracle_mse, r.iterations, r.seconds, to_string(r.status), to_string(r.stop_reason));
  }
  summary.write(out_dir + "/summary.csv");
  history.write(out_dir + "/history.csv");

  // Plot: the chosen error per iteration, log scale; closed-form methods
  // (the oracle among them) as level lines.
  const int column = plot_metric == "dist-a" ? 5 : plot_metric == "dist-b" ? 6 : plot_metric == "test-mse" ? 8 : 7;
  const char* ylabel = plot_metric == "dist-a"     ? "principal-angle distance of A (sin theta_max)"
                       : plot_metric == "dist-b"   ? "principal-angle distance of B (sin theta_max)"
                       : plot_metric == "test-mse" ? "held-out MSE"
                                                   : "mean per-task relative error";
  auto final_value = [&](const exp::MethodOutcome& r) {
    return column == 5   ? r.metrics.dist_a
           : column == 6 ? r.metrics.dist_b
           : column == 8 ? r.test_mse
                         : r.metrics.mean_rel_err;
  };
  std::string script =
      "set datafile separator ','\nset logscale y\nset format y '10^{%L}'\nset grid\nset key outside right\n"
      "set xlabel 'iteration'\nset ylabel '" +
      std::string(ylabel) +
      "'\n"
      "set title 'colora recovery: k=" +
      std::to_string(g.tasks) + ", p=" + std::to_string(g.p) + ", q=" + std::to_string(g.q) +
      ", r=" + std::to_string(g.rank) + ", n_i=" + std::to_string(g.samples_of(0)) +
      ", sigma=" + cli::Args::format(g.sigma) + "'\n";
  std::string plot_cmd = "plot ";
  bool first = true;
  for (const auto& r : results) {
    const std::string sel = "(strcol(1) eq '" + r.method + "' ? $" + std::to_string(column) + " : 1/0)";
    const double last = final_value(r);
    if (!(last > 0) || !std::isfinite(last)) continue;  // the method has no such quantity (e.g. no shared A)
    if (r.history.size() <= 1) {
      // Closed-form method: a horizontal level line across the iteration range.
      plot_cmd += std::string(first ? "" : ", ") + cli::Args::format(last) + " with lines dt 2 lw 2 title '" +
                  r.method + " (closed form)'";
    } else {
      plot_cmd += std::string(first ? "" : ", ") + plot::quote_path(out_dir + "/history.csv") + " using 2:" + sel +
                  " every ::1 with linespoints pt 7 ps 0.5 lw 2 title '" + r.method + "'";
    }
    first = false;
  }
  if (first)
    std::fprintf(stderr, "recovery: no method has the quantity --plot %s; recovery.png not drawn\n",
                 plot_metric.c_str());
  else
    plot::render_png(out_dir + "/recovery.png", script + plot_cmd + "\n");
  std::printf("wrote %s/summary.csv, %s/history.csv, %s/recovery.png\n", out_dir.c_str(), out_dir.c_str(),
              out_dir.c_str());

  // Guarantee report of the colora run, from its history and final errors.
  if (report) {
    exp::print_guarantee_report(*report);
    exp::write_guarantee_csv(*report, out_dir + "/theory.csv");
    std::printf("wrote %s/theory.csv\n", out_dir.c_str());
  }
  return 0;
}

}  // namespace cmd
}  // namespace colora
