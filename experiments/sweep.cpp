// colora sweep: vary one knob of the planted problem (theta-a, theta-b, tau,
// samples, tasks, sigma) and compare every method's final held-out MSE and
// mean per-task relative error, mean and 95 % Student-t interval over trials.
//
// Runs are the (value, trial) pairs; they run in parallel (OpenMP, one run
// per thread, every method inside a run single-threaded). The problem of
// trial t is generated from exp::trial_seed(seed, t), the same for every
// value, so sweep.csv is byte-identical for any --threads.
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

const std::vector<std::string>& sweep_knobs() {
  static const std::vector<std::string> k = {"theta-a", "theta-b", "tau", "samples", "tasks", "sigma"};
  return k;
}

std::string default_values(const std::string& knob) {
  if (knob == "theta-a" || knob == "theta-b") return "0,0.05,0.1,0.2,0.4,0.8";
  if (knob == "tau") return "0,0.1,0.3,1,3";
  if (knob == "samples") return "5,10,20,40,80";
  if (knob == "tasks") return "5,10,20,40,80";
  return "0.01,0.03,0.1,0.3,1";  // sigma
}

/// The generator options with `knob` set to `value` (checked).
GeneratorOptions with_value(GeneratorOptions g, const std::string& knob, double value) {
  auto as_count = [&](const char* what) {
    if (!(value >= 1 && value <= 1e8 && value == std::floor(value)))
      throw cli::UsageError("--values: " + cli::Args::format(value) + " is not a valid " + what +
                            " (a positive integer)");
    return Index(value);
  };
  if (knob == "theta-a")
    g.theta_a = value;
  else if (knob == "theta-b")
    g.theta_b = value;
  else if (knob == "tau")
    g.tau = value;
  else if (knob == "sigma")
    g.sigma = value;
  else if (knob == "samples")
    g.samples = {as_count("number of samples")};
  else if (knob == "tasks") {
    g.tasks = as_count("number of tasks");
    if (g.samples.size() > 1) throw cli::UsageError("--vary tasks needs a single --samples value");
  }
  try {
    g.validate();
  } catch (const std::invalid_argument& e) {
    throw cli::UsageError("--vary " + knob + " --values " + cli::Args::format(value) + ": " + e.what());
  }
  return g;
}

const char* const kMetrics[2] = {"test_mse", "mean_rel_err"};

}  // namespace

int sweep(cli::Args& args) {
  const std::string knob = args.choice("vary", "tau", sweep_knobs(), "the knob to vary");
  const auto values = args.reals("values", default_values(knob), "values of the knob (comma separated)");
  const long trials = long(args.integer("trials", 5, "trials (independent problems) per value", 1, 1000000));
  GeneratorOptions defaults;
  defaults.tasks = 20;
  defaults.p = 30;
  defaults.q = 30;
  defaults.rank = 3;
  defaults.samples = {20};
  defaults.test_samples = 100;
  defaults.sigma = 0.1;
  GeneratorOptions g = exp::read_generator_flags(args, defaults);
  BaselineOptions opts = exp::read_baseline_flags(args, exp::read_solver_flags(args, g.rank));
  const auto seed = std::uint64_t(
      args.integer("seed", 1, "seed; trial t uses a problem seed derived from (seed, t)", 0));
  const int threads = int(args.integer("threads", 0, "threads over the runs (0 = all)", 0, 1024));
  const auto method_names = args.list("methods", "all", "methods to run (comma separated, or all)");
  const std::string out_dir = args.str("out", "results/sweep", "output directory");
  if (args.finish()) return 0;
  const auto methods = exp::methods_for_rank(exp::parse_methods(method_names), method_names, g.p, g.q, opts.rank,
                                             "sweep");
  g.validate();

  std::vector<GeneratorOptions> configs;
  for (double v : values) configs.push_back(with_value(g, knob, v));
  std::filesystem::create_directories(out_dir);

  const long nv = long(values.size()), nm = long(methods.size()), runs = nv * trials;
  // results[(run * nm + m) * 2 + metric]; run = value_index * trials + trial.
  std::vector<double> results(size_t(runs * nm * 2), std::numeric_limits<double>::quiet_NaN());
  char banner[160];
  std::snprintf(banner, sizeof banner, "%ld values x %ld trials x %ld methods", nv, trials, nm);
  exp::run_trials(
      "sweep", banner, runs, threads, methods, opts, "left out of the means",
      [&](long run) {
        GeneratorOptions gi = configs[size_t(run / trials)];
        gi.seed = exp::trial_seed(seed, run % trials);
        return gi;
      },
      [&](long run, long m, const exp::MethodOutcome& r) {
        results[size_t((run * nm + m) * 2 + 0)] = r.test_mse;
        results[size_t((run * nm + m) * 2 + 1)] = r.metrics.mean_rel_err;
      });

  io::CsvTable table({"method", "value", "metric", "trial_count", "mean", "ci_low", "ci_high"});
  // summary[m][vi][metric]
  std::vector<exp::MeanInterval> summary(size_t(nm * nv * 2));
  for (long m = 0; m < nm; ++m)
    for (long vi = 0; vi < nv; ++vi)
      for (int metric = 0; metric < 2; ++metric) {
        std::vector<double> xs;
        for (long t = 0; t < trials; ++t) xs.push_back(results[size_t(((vi * trials + t) * nm + m) * 2 + metric)]);
        const exp::MeanInterval ci = exp::mean_interval(xs);
        summary[size_t((m * nv + vi) * 2 + metric)] = ci;
        table.row() << methods[size_t(m)] << values[size_t(vi)] << kMetrics[metric] << ci.count << ci.mean << ci.low
                    << ci.high;
      }
  table.write(out_dir + "/sweep.csv");

  std::printf(
      "colora sweep: vary %s (the value below replaces its flag), k=%lld p=%lld q=%lld r=%lld n_i=%lld "
      "sigma=%g tau=%g theta_a=%g theta_b=%g, %ld trials, seed=%llu\n",
      knob.c_str(), (long long)g.tasks, (long long)g.p, (long long)g.q, (long long)g.rank, (long long)g.samples_of(0),
      g.sigma, g.tau, g.theta_a, g.theta_b, trials, (unsigned long long)seed);
  std::printf("%-12s %10s %24s %24s\n", "method", knob.c_str(), "test_mse (95% CI)", "mean_rel_err (95% CI)");
  for (long m = 0; m < nm; ++m)
    for (long vi = 0; vi < nv; ++vi) {
      const auto& a = summary[size_t((m * nv + vi) * 2 + 0)];
      const auto& b = summary[size_t((m * nv + vi) * 2 + 1)];
      std::printf("%-12s %10g %10.3e [%9.2e,%9.2e] %10.3e [%9.2e,%9.2e]\n", methods[size_t(m)].c_str(),
                  values[size_t(vi)], a.mean, a.low, a.high, b.mean, b.low, b.high);
    }

  // Plot: two panels, x = the knob, y log scale, one line with 95 % bars per method.
  const bool log_x = (knob == "samples" || knob == "tasks" || knob == "sigma") &&
                     *std::min_element(values.begin(), values.end()) > 0;
  std::string script = "set multiplot layout 1,2 title 'colora sweep: vary " + knob + " (k=" + std::to_string(g.tasks) +
                       ", p=" + std::to_string(g.p) + ", q=" + std::to_string(g.q) + ", r=" + std::to_string(g.rank) +
                       ", n_i=" + std::to_string(g.samples_of(0)) + ", sigma=" + cli::Args::format(g.sigma) +
                       ", tau=" + cli::Args::format(g.tau) + ", " + std::to_string(trials) +
                       " trials, 95% t-intervals)"
                       "' noenhanced\nset logscale y\nset format y '10^{%L}'\nset grid\nset xlabel '" +
                       knob + "' noenhanced\nset offsets graph 0.03, graph 0.03, 0, 0\n";
  // Twelve distinguishable colours (gnuplot's default cycle repeats after 8).
  const char* const colours[12] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
                                   "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#000000", "#aec7e8"};
  for (int c = 0; c < 12; ++c)
    script += "set linetype " + std::to_string(c + 1) + " lc rgb '" + colours[c] + "' pt " + std::to_string(c % 7 + 1) +
              "\n";
  if (log_x) script += "set logscale x\n";
  for (long m = 0; m < nm; ++m)
    for (int metric = 0; metric < 2; ++metric) {
      script += "$d" + std::to_string(m) + "_" + std::to_string(metric) + " << EOD\n";
      for (long vi = 0; vi < nv; ++vi) {
        const auto& ci = summary[size_t((m * nv + vi) * 2 + metric)];
        if (!(ci.mean > 0)) continue;  // log scale: nothing to draw
        // Bars below zero (or missing with one trial) are drawn down to 1 % of the mean.
        const double lo = ci.count >= 2 ? std::max(ci.low, ci.mean * 1e-2) : ci.mean;
        const double hi = ci.count >= 2 ? ci.high : ci.mean;
        script += io::CsvTable::number(values[size_t(vi)]) + " " + io::CsvTable::number(ci.mean) + " " +
                  io::CsvTable::number(lo) + " " + io::CsvTable::number(hi) + "\n";
      }
      script += "EOD\n";
    }
  for (int metric = 0; metric < 2; ++metric) {
    script += std::string("set ylabel '") + (metric == 0 ? "held-out test MSE" : "mean per-task relative error") +
              "'\nset title '" + kMetrics[metric] + "' noenhanced\n" +
              (metric == 0 ? "unset key\n" : "set key outside right top noenhanced\n") + "plot ";
    for (long m = 0; m < nm; ++m)
      script += std::string(m ? ", " : "") + "$d" + std::to_string(m) + "_" + std::to_string(metric) +
                " using 1:2:3:4 with yerrorlines lt " + std::to_string(m % 12 + 1) + " ps 0.7 lw 2 title '" +
                methods[size_t(m)] + "'";
    script += "\n";
  }
  script += "unset multiplot\n";
  plot::render_png(out_dir + "/sweep.png", script, 1400, 600);
  std::printf("wrote %s/sweep.csv, %s/sweep.png\n", out_dir.c_str(), out_dir.c_str());
  return 0;
}

}  // namespace cmd
}  // namespace colora
