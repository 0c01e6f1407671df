// colora phase: the probability of exact recovery on a grid of samples per
// task n_i x number of tasks k, noiseless by default, with Clopper-Pearson
// 95 % intervals, and a heat map.
//
// A run succeeds when every subspace factor the method estimates is within
// --threshold of the truth: max(dist_a, dist_b) < threshold over the finite
// ones of the two (colora: both; a method with one shared factor: that one);
// a method with no shared factor succeeds when max_rel_err < threshold.
//
// Runs are the (cell, trial) pairs, in parallel (OpenMP, one run per thread,
// methods single-threaded inside). Trial t of every cell uses the problem
// seed exp::trial_seed(seed, t), so phase.csv is byte-identical for any
// --threads.
#include <colora/core/config.hpp>
#include <colora/core/errors.hpp>  // before methods.hpp: core/subspace.hpp uses detail::require

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "commands.hpp"
#include "methods.hpp"
#include "plot.hpp"
#include "stats.hpp"

namespace colora {
namespace cmd {

namespace {

bool recovered(const exp::MethodOutcome& r, double threshold) {
  const double da = r.metrics.dist_a, db = r.metrics.dist_b;
  if (std::isnan(da) && std::isnan(db))  // no shared factor: the per-task estimates themselves
    return std::isfinite(r.metrics.max_rel_err) && r.metrics.max_rel_err < threshold;
  return (std::isnan(da) || da < threshold) && (std::isnan(db) || db < threshold);
}

}  // namespace

int phase(cli::Args& args) {
  const auto samples = args.integers("samples", "2,3,4,6,8,12", "grid: samples per task n_i (comma separated)", 1,
                                     100000000);
  const auto tasks = args.integers("tasks", "2,4,8,16,32", "grid: number of tasks k (comma separated)", 1, 1000000);
  const long trials = long(args.integer("trials", 10, "trials (independent problems) per grid cell", 1, 1000000));
  GeneratorOptions defaults;
  defaults.p = 20;
  defaults.q = 20;
  defaults.rank = 2;
  defaults.test_samples = 0;
  defaults.sigma = 0.0;
  GeneratorOptions g = exp::read_generator_flags(args, defaults, /*with_grid=*/false);
  BaselineOptions opts = exp::read_baseline_flags(args, exp::read_solver_flags(args, g.rank));
  const double threshold = args.real("threshold", 1e-6, "success: max(dist_a, dist_b) below this", 0, 1e6);
  const auto seed = std::uint64_t(
      args.integer("seed", 1, "seed; trial t uses a problem seed derived from (seed, t)", 0));
  const int threads = int(args.integer("threads", 0, "threads over the runs (0 = all)", 0, 1024));
  const auto method_names = args.list("methods", "colora", "methods to run (comma separated, or all)");
  const std::string out_dir = args.str("out", "results/phase", "output directory");
  if (args.finish()) return 0;
  const auto methods = exp::methods_for_rank(exp::parse_methods(method_names), method_names, g.p, g.q, opts.rank,
                                             "phase");
  for (const auto& m : methods)
    if (m == "oracle")
      throw cli::UsageError("--methods: the oracle is given the true subspaces, so it always 'recovers' them");
  g.tasks = tasks[0];
  g.samples = {Index(samples[0])};
  g.validate();

  const long ns = long(samples.size()), nk = long(tasks.size()), nm = long(methods.size());
  const long cells = ns * nk, runs = cells * trials;
  // success[(run * nm + m)], run = (ki * ns + si) * trials + t; a failed method run stays 0 (no success).
  std::vector<int> success(size_t(runs * nm), 0);
  std::filesystem::create_directories(out_dir);
  char banner[160];
  std::snprintf(banner, sizeof banner, "%ld x %ld cells x %ld trials x %ld methods", ns, nk, trials, nm);
  exp::run_trials(
      "phase", banner, runs, threads, methods, opts, "counted as not recovered",
      [&](long run) {
        const long cell = run / trials;
        GeneratorOptions gi = g;
        gi.tasks = Index(tasks[size_t(cell / ns)]);
        gi.samples = {Index(samples[size_t(cell % ns)])};
        gi.seed = exp::trial_seed(seed, run % trials);
        return gi;
      },
      [&](long run, long m, const exp::MethodOutcome& r) {
        success[size_t(run * nm + m)] = recovered(r, threshold) ? 1 : 0;
      });

  io::CsvTable table({"method", "samples", "tasks", "trials", "successes", "probability", "ci_low", "ci_high"});
  std::vector<double> prob(size_t(nm * cells));
  for (long m = 0; m < nm; ++m)
    for (long ki = 0; ki < nk; ++ki)
      for (long si = 0; si < ns; ++si) {
        const long cell = ki * ns + si;
        long s = 0;
        for (long t = 0; t < trials; ++t) s += success[size_t((cell * trials + t) * nm + m)];
        const exp::ProportionInterval ci = exp::clopper_pearson(s, trials);
        prob[size_t(m * cells + cell)] = ci.probability;
        table.row() << methods[size_t(m)] << samples[size_t(si)] << tasks[size_t(ki)] << trials << s << ci.probability
                    << ci.low << ci.high;
      }
  table.write(out_dir + "/phase.csv");

  std::printf(
      "colora phase: p=%lld q=%lld r=%lld sigma=%g tau=%g kappa=%g, %ld trials per cell, success = max(dist_a, "
      "dist_b) < %g, seed=%llu\n",
      (long long)g.p, (long long)g.q, (long long)g.rank, g.sigma, g.tau, g.kappa, trials, threshold,
      (unsigned long long)seed);
  for (long m = 0; m < nm; ++m) {
    std::printf("%s: probability of exact recovery (rows: tasks k, columns: samples n_i)\n%8s",
                methods[size_t(m)].c_str(), "k \\ n_i");
    for (long si = 0; si < ns; ++si) std::printf(" %6lld", samples[size_t(si)]);
    std::printf("\n");
    for (long ki = nk - 1; ki >= 0; --ki) {
      std::printf("%8lld", tasks[size_t(ki)]);
      for (long si = 0; si < ns; ++si) std::printf(" %6.2f", prob[size_t(m * cells + ki * ns + si)]);
      std::printf("\n");
    }
  }

  // Heat map per method: cells at grid positions (the lists need not be evenly spaced).
  std::string script =
      "set palette defined (0 '#f7fbff', 0.5 '#6baed6', 1 '#08306b')\nset cbrange [0:1]\n"
      "set cblabel 'P(exact recovery)'\nset xlabel 'samples per task n_i' noenhanced\nset ylabel 'tasks k'\n"
      "set xrange [-0.5:" +
      std::to_string(ns) + "-0.5]\nset yrange [-0.5:" + std::to_string(nk) +
      "-0.5]\nset size ratio -1\nunset key\nset xtics (";
  for (long si = 0; si < ns; ++si)
    script += std::string(si ? ", " : "") + "'" + std::to_string(samples[size_t(si)]) + "' " + std::to_string(si);
  script += ")\nset ytics (";
  for (long ki = 0; ki < nk; ++ki)
    script += std::string(ki ? ", " : "") + "'" + std::to_string(tasks[size_t(ki)]) + "' " + std::to_string(ki);
  script += ")\n";
  if (nm > 1) script += "set multiplot layout 1," + std::to_string(nm) + "\n";
  for (long m = 0; m < nm; ++m) {
    script += "$d" + std::to_string(m) + " << EOD\n";
    for (long ki = 0; ki < nk; ++ki)
      for (long si = 0; si < ns; ++si)
        script += std::to_string(si) + " " + std::to_string(ki) + " " +
                  io::CsvTable::number(prob[size_t(m * cells + ki * ns + si)]) + "\n";
    script += "EOD\n";
    script += "set title '" + methods[size_t(m)] + ": P(max(dist_a, dist_b) < " + cli::Args::format(threshold) +
              "), p=" + std::to_string(g.p) + ", q=" + std::to_string(g.q) + ", r=" + std::to_string(g.rank) +
              ", sigma=" + cli::Args::format(g.sigma) + ", " + std::to_string(trials) + " trials/cell' noenhanced\n";
    const std::string d = "$d" + std::to_string(m);
    script += "plot " + d + " using 1:2:3 with image, " + d +
              " using 1:2:($3 <= 0.6 ? sprintf('%.2f', $3) : '') with labels tc rgb 'black' font ',9', " + d +
              " using 1:2:($3 > 0.6 ? sprintf('%.2f', $3) : '') with labels tc rgb 'white' font ',9'\n";
  }
  if (nm > 1) script += "unset multiplot\n";
  plot::render_png(out_dir + "/phase.png", script, 700 * int(nm), 600);
  std::printf("wrote %s/phase.csv, %s/phase.png\n", out_dir.c_str(), out_dir.c_str());
  return 0;
}

}  // namespace cmd
}  // namespace colora
