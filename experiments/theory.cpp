// colora theory: the guarantee report of one CoLoRA run (docs/theory.md) —
// GRIP delta_hat against its Gaussian prediction, the contraction rate rho
// with its interval, the floor reached against the oracle floor, samples
// against degrees of freedom, diversity and similarity, and the verdict
// "rho < 1 and floor within 3x of the oracle", measured. Writes
// DIR/theory.csv (quantity,value,ci_low,ci_high).
//
// --experiment floor-vs-tasks | rate-vs-samples | rate-vs-similarity |
// error-vs-theta | mom-vs-samples loops over one knob and writes
// DIR/<experiment>.csv and DIR/<experiment>.png (the plots of docs/theory.md,
// "Experiments"); the rate experiments also write
// DIR/<experiment>-agreement.csv (predicted against measured rates).
#include <colora/core/config.hpp>
#include <colora/core/errors.hpp>  // before methods.hpp: core/subspace.hpp uses detail::require
#include <colora/diagnostics/guarantee_report.hpp>

#include <boost/math/distributions/students_t.hpp>

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
#include "theory_report.hpp"

namespace colora {
namespace cmd {

namespace {

struct Run {
  GuaranteeReport report;
  double oracle_mean_rel_err = std::numeric_limits<double>::quiet_NaN();
};

template <class Problem>
Run run_one(const Problem& pb, const SolverOptions& opts, const GuaranteeReportOptions& ro, bool with_oracle) {
  Solver<double> s(opts);
  s.compute(pb);
  Run out;
  out.report = guarantee_report(pb, s, ro);
  if (with_oracle) {
    const auto o = fit_oracle(pb, opts.lambda, opts.core, opts.num_threads);
    out.oracle_mean_rel_err = recovery_metrics(*pb.truth, o.A, o.B, o.cores).mean_rel_err;
  }
  return out;
}

Run run_model(const std::string& model, const GeneratorOptions& g, const SolverOptions& opts,
              const GuaranteeReportOptions& ro, bool with_oracle = false) {
  if (model == "regression") return run_one(generate_regression<double>(g), opts, ro, with_oracle);
  return run_one(generate_sensing<double>(g), opts, ro, with_oracle);
}

/// OLS slope of y on x with a Student-t interval (level 0.95).
struct Slope {
  double slope = std::numeric_limits<double>::quiet_NaN(), low = slope, high = slope, intercept = slope;
};
Slope ols_slope(const std::vector<double>& x, const std::vector<double>& y) {
  Slope s;
  const size_t n = x.size();
  if (n < 2) return s;
  double mx = 0, my = 0;
  for (size_t i = 0; i < n; ++i) {
    mx += x[i];
    my += y[i];
  }
  mx /= double(n);
  my /= double(n);
  double sxx = 0, sxy = 0;
  for (size_t i = 0; i < n; ++i) {
    sxx += (x[i] - mx) * (x[i] - mx);
    sxy += (x[i] - mx) * (y[i] - my);
  }
  s.slope = sxy / sxx;
  s.intercept = my - s.slope * mx;
  if (n < 3) return s;
  double rss = 0;
  for (size_t i = 0; i < n; ++i) {
    const double e = y[i] - s.intercept - s.slope * x[i];
    rss += e * e;
  }
  const double se = std::sqrt(rss / double(n - 2) / sxx);
  const double t = boost::math::quantile(boost::math::students_t(double(n - 2)), 0.975);
  s.low = s.slope - t * se;
  s.high = s.slope + t * se;
  return s;
}

std::string fmt(double v) { return io::CsvTable::number(v); }

std::string default_values(const std::string& experiment) {
  if (experiment == "floor-vs-tasks") return "2,5,10,20,50,100";
  if (experiment == "rate-vs-samples") return "30,40,60,100,200,400";
  if (experiment == "rate-vs-similarity") return "0,0.02,0.05,0.1,0.2,0.3";
  if (experiment == "error-vs-theta") return "0.001,0.003,0.01,0.03,0.1,0.3";
  if (experiment == "mom-vs-samples") return "10,20,40,80,160,320,640";
  return "";
}

}  // namespace

int theory(cli::Args& args) {
  const std::string experiment = args.choice("experiment", "report",
                                             {"report", "floor-vs-tasks", "rate-vs-samples", "rate-vs-similarity",
                                              "error-vs-theta", "mom-vs-samples"},
                                             "one run's report, or a loop over one knob with a plot");
  const std::string model = args.choice("model", experiment == "rate-vs-samples" ? "sensing" : "regression",
                                        {"regression", "sensing"}, "measurement model");
  GeneratorOptions defaults;
  defaults.test_samples = 0;
  if (model == "regression") {
    defaults.tasks = 20;
    defaults.p = 30;
    defaults.q = 30;
    defaults.rank = 3;
    defaults.samples = {10};  // few samples per task: a visible linear phase before the floor
    defaults.sigma = 0.1;
  } else {
    defaults.tasks = 10;
    defaults.p = 10;
    defaults.q = 10;
    defaults.rank = 2;
    defaults.samples = {150};
    defaults.sigma = 0.1;
  }
  if (experiment == "floor-vs-tasks") defaults.samples = {20};
  if (experiment == "rate-vs-samples") defaults.sigma = 0.0;
  if (experiment == "rate-vs-similarity") defaults.sigma = 0.01;
  if (experiment == "error-vs-theta") defaults.sigma = 0.01;
  GeneratorOptions g = exp::read_generator_flags(args, defaults);
  SolverOptions opts = exp::read_solver_flags(args, g.rank);
  g.seed = std::uint64_t(args.integer("seed", 1, "seed of the problem (trial t uses a seed derived from it)", 0));
  opts.seed = g.seed;
  opts.num_threads = int(args.integer("threads", 0, "threads (0 = all)", 0, 1024));
  g.num_threads = opts.num_threads;
  GuaranteeReportOptions ro;
  ro.grip.restarts = int(
      args.integer("grip-restarts", 3, "GRIP search (M2): random starts per task and side", 1, 1000));
  ro.grip.max_iterations = int(
      args.integer("grip-iterations", 30, "GRIP search (M2): iterations per start", 1, 100000));
  ro.floor_factor = args.real("floor-factor", 3.0, "verdict: the floor may be this many times the oracle floor", 1,
                              1e12);
  ro.num_threads = opts.num_threads;
  ro.grip.seed = g.seed;
  ro.core = opts.core;
  const std::string values_text = default_values(experiment);
  const bool rate_experiment = experiment == "rate-vs-samples" || experiment == "rate-vs-similarity";
  const auto values = experiment == "report" ? std::vector<double>{}
                                             : args.reals("values", values_text, "values of the experiment's knob");
  const long trials = experiment == "report" ? 1
                                             : long(args.integer("trials", rate_experiment ? 10 : 2,
                                                                 "trials (independent problems) per value", 1, 100000));
  const std::string out_dir = args.str("out", "results/theory", "output directory");
  if (args.finish()) return 0;
  try {
    g.validate();
  } catch (const std::invalid_argument& e) {
    throw cli::UsageError(e.what());
  }
  exp::methods_for_rank({"colora"}, {"colora"}, g.p, g.q, opts.rank, "theory");
  exp::check_memory(g, 1, opts.a_step == AStepSolver::Exact, model == "sensing");
  std::filesystem::create_directories(out_dir);

  if (experiment == "report") {
    const Run run = run_model(model, g, opts, ro);
    std::printf(
        "colora theory: %s, k=%lld p=%lld q=%lld r=%lld n_i=%lld sigma=%g tau=%g theta_a=%g theta_b=%g seed=%llu\n",
        model.c_str(), (long long)g.tasks, (long long)g.p, (long long)g.q, (long long)g.rank,
        (long long)g.samples_of(0), g.sigma, g.tau, g.theta_a, g.theta_b, (unsigned long long)g.seed);
    exp::print_guarantee_report(run.report);
    exp::write_guarantee_csv(run.report, out_dir + "/theory.csv");
    std::printf("wrote %s/theory.csv\n", out_dir.c_str());
    return 0;
  }

  // Loops.
  io::CsvTable table({"experiment", "value", "trial", "total_samples", "delta_hat", "delta_predicted", "rho", "rho_low",
                      "rho_high", "final_distance", "final_mean_rel_err", "final_mean_sq_err", "oracle_floor",
                      "floor_ratio", "oracle_mean_rel_err", "verdict", "rho_noiseless", "rho_noiseless_low",
                      "rho_noiseless_high", "rho_predicted", "rho_predicted_low", "rho_predicted_high",
                      "predicted_in_measured", "delta_tangent", "delta_tangent_low", "delta_tangent_high",
                      "delta_shared", "delta_shared_low", "delta_shared_high"});
  struct Point {
    double value;
    std::vector<double> x, y, y2, y3;
    std::vector<double> pred, pred_lo, pred_hi;
    std::vector<double> delta_shared, delta_tangent, delta_hat;  // floor-vs-tasks
  };
  long resolvable = 0, inside = 0, at_or_below = 0;  // rate experiments: predicted against the twin's measured rate
  double worst_gap = 0;                             // largest |predicted - measured| / predicted
  std::vector<Point> points;
  std::fprintf(stderr, "theory: %s, %zu values x %ld trials\n", experiment.c_str(), values.size(), trials);
  for (double v : values) {
    Point pt{v, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}};
    for (long t = 0; t < trials; ++t) {
      GeneratorOptions gi = g;
      SolverOptions oi = opts;
      gi.seed = exp::trial_seed(g.seed, t);
      oi.seed = gi.seed;
      auto as_count = [&](double x) {
        if (!(x >= 1 && x == std::floor(x)))
          throw cli::UsageError("--values: " + fmt(x) + " is not a positive integer");
        return Index(x);
      };
      if (experiment == "floor-vs-tasks") gi.tasks = as_count(v);
      if (experiment == "rate-vs-samples" || experiment == "mom-vs-samples") gi.samples = {as_count(v)};
      if (experiment == "error-vs-theta" || experiment == "rate-vs-similarity") gi.theta_a = gi.theta_b = v;
      if (experiment == "mom-vs-samples") oi.max_iterations = 0;
      try {
        gi.validate();
      } catch (const std::invalid_argument& e) {
        throw cli::UsageError(std::string("--values ") + fmt(v) + ": " + e.what());
      }
      exp::check_memory(gi, 1, oi.a_step == AStepSolver::Exact, model == "sensing");
      const Run run = run_model(model, gi, oi, ro, experiment == "error-vs-theta");
      const auto& r = run.report;
      const RateFit& tw = r.rate_noiseless;
      const bool measured = r.twin_ok && tw.status == RateFitStatus::Fitted;
      const bool predicted = r.predicted.valid;
      const bool in = measured && predicted && r.predicted.rho >= tw.rho_lower && r.predicted.rho <= tw.rho_upper;
      if (measured && predicted) {
        ++resolvable;
        inside += in ? 1 : 0;
        at_or_below += tw.rho_lower <= r.predicted.rho_upper ? 1 : 0;
        worst_gap = std::max(worst_gap, std::abs(r.predicted.rho - tw.rho) / r.predicted.rho);
      }
      table.row() << experiment << v << t << r.total_samples << r.delta_hat << r.delta_predicted << r.rate.rho
                  << r.rate.rho_lower << r.rate.rho_upper << r.final_distance << r.final_mean_rel_err
                  << r.final_mean_sq_err << r.oracle_floor << r.floor_ratio << run.oracle_mean_rel_err
                  << to_string(r.verdict) << tw.rho << tw.rho_lower << tw.rho_upper << r.predicted.rho
                  << r.predicted.rho_lower << r.predicted.rho_upper
                  << (measured && predicted ? (in ? 1.0 : 0.0) : std::numeric_limits<double>::quiet_NaN())
                  << r.delta_tangent << r.delta_tangent_low << r.delta_tangent_high << r.delta_shared
                  << r.delta_shared_low << r.delta_shared_high;
      if (experiment == "floor-vs-tasks") {
        pt.y.push_back(r.floor_ratio);
        pt.delta_shared.push_back(r.delta_shared);
        pt.delta_tangent.push_back(r.delta_tangent);
        pt.delta_hat.push_back(r.delta_hat);
      }
      if (rate_experiment) {
        pt.y.push_back(measured ? tw.rho : std::numeric_limits<double>::quiet_NaN());
        pt.y2.push_back(measured ? tw.rho_lower : std::numeric_limits<double>::quiet_NaN());
        pt.y3.push_back(measured ? tw.rho_upper : std::numeric_limits<double>::quiet_NaN());
        pt.pred.push_back(predicted ? r.predicted.rho : std::numeric_limits<double>::quiet_NaN());
        pt.x.push_back(r.rate.status == RateFitStatus::Fitted ? r.rate.rho : std::numeric_limits<double>::quiet_NaN());
      }
      if (experiment == "error-vs-theta") {
        pt.y.push_back(r.final_mean_rel_err);
        pt.y2.push_back(run.oracle_mean_rel_err);
      }
      if (experiment == "mom-vs-samples") {
        pt.x.push_back(double(r.total_samples));
        pt.y.push_back(r.final_distance);
        pt.y2.push_back(r.final_mean_rel_err);
      }
      std::fprintf(stderr, "theory: %s = %s trial %ld: %s\n", experiment.c_str(), fmt(v).c_str(), t,
                   r.verdict_text.c_str());
    }
    points.push_back(pt);
  }
  table.write(out_dir + "/" + experiment + ".csv");

  const std::string problem = "k=" + std::to_string(g.tasks) + ", p=" + std::to_string(g.p) +
                              ", q=" + std::to_string(g.q) + ", r=" + std::to_string(g.rank) +
                              ", n_i=" + std::to_string(g.samples_of(0)) + ", sigma=" + cli::Args::format(g.sigma);
  std::string script = "set grid\nset key top right\n";
  std::string data;
  std::printf("colora theory --experiment %s (%s, %s, %ld trial(s) per value)\n", experiment.c_str(), model.c_str(),
              problem.c_str(), trials);
  if (experiment == "floor-vs-tasks") {
    std::printf("%8s %12s %12s %12s %14s %14s %14s\n", "k", "floor_ratio", "ci_low", "ci_high", "delta_shared",
                "delta_tangent", "delta_hat");
    data = "$d << EOD\n";
    bool tangent_any = false;
    for (const auto& pt : points) {
      const auto ci = exp::positive_interval(pt.y);  // a ratio: geometric mean, interval on the log scale
      const auto dt = exp::mean_interval(pt.delta_shared), dh = exp::mean_interval(pt.delta_hat),
                 dT = exp::mean_interval(pt.delta_tangent);
      std::printf("%8g %12.4g %12.4g %12.4g %14.4g %14.4g %14.4g\n", pt.value, ci.mean, ci.low, ci.high, dt.mean,
                  dT.mean, dh.mean);
      tangent_any = tangent_any || std::isfinite(dt.mean);
      data += fmt(pt.value) + " " + fmt(ci.mean) + " " + fmt(std::isfinite(ci.low) ? ci.low : ci.mean) + " " +
              fmt(std::isfinite(ci.high) ? ci.high : ci.mean) + " " + fmt(dt.mean) + " " + fmt(dh.mean) + " " +
              fmt(dT.mean) + "\n";
    }
    data += "EOD\n";
    const std::string n_text = "n_i=" + std::to_string(g.samples_of(0));
    script += data +
              "set logscale xy\nset xlabel 'number of tasks k'\nset ylabel 'final mean squared error / oracle floor'\n"
              "set title \"colora theory --experiment floor-vs-tasks (" +
              model + ", p=" + std::to_string(g.p) + ", q=" + std::to_string(g.q) + ", r=" + std::to_string(g.rank) +
              ", " + n_text + ", sigma=" + cli::Args::format(g.sigma) +
              ")\"\n" +
              std::string(tangent_any ? "set y2tics\nset logscale y2\nset y2label 'GRIP constants (right axis)'\n"
                             "set key outside bottom center horizontal\n"
                           : "") +
              "plot $d using 1:2:3:4 with yerrorlines pt 7 lw 2 title 'CoLoRA floor ratio (geometric mean, 95% CI over trials)', "
              "1 with lines dt 2 lw 2 title 'oracle floor (ratio 1)', " +
              fmt(ro.floor_factor) + " with lines dt 3 lw 1 title 'verdict threshold'" +
              (tangent_any ? ", $d using 1:5 axes x1y2 with linespoints pt 5 lw 2 title 'delta\\_shared (right)', "
                             "$d using 1:7 axes x1y2 with linespoints pt 9 dt 2 lw 1 title 'delta\\_tangent (right)', "
                             "$d using 1:6 axes x1y2 with linespoints pt 4 dt 4 lw 1 title 'delta\\_hat, specified "
                             "(right)'"
                           : "") +
              "\n";
  } else if (rate_experiment) {
    const bool samples = experiment == "rate-vs-samples";
    const char* knob = samples ? "n_i" : "theta";
    std::printf("%8s %12s %12s %12s %12s %12s\n", knob, "rho_twin", "twin_low", "twin_high", "rho_pred", "rho_run");
    data = "$d << EOD\n";
    const double spread = samples ? 0.02 : 0.0;  // runs of one value side by side (log x: a factor)
    for (const auto& pt : points)
      for (size_t j = 0; j < pt.y.size(); ++j) {
        std::printf("%8g %12.4g %12.4g %12.4g %12.4g %12.4g\n", pt.value, pt.y[j], pt.y2[j], pt.y3[j], pt.pred[j],
                    pt.x[j]);
        const double off = double(j) - 0.5 * double(pt.y.size() - 1);
        const double x = samples ? pt.value * std::exp(spread * off) : pt.value + 0.002 * off;
        data += fmt(x) + " " + fmt(pt.y[j]) + " " + fmt(std::isfinite(pt.y2[j]) ? pt.y2[j] : pt.y[j]) + " " +
                fmt(std::isfinite(pt.y3[j]) ? pt.y3[j] : pt.y[j]) + " " + fmt(pt.pred[j]) + " " + fmt(pt.x[j]) +
                "\n";
      }
    data += "EOD\n";
    std::printf(
        "predicted rate inside the twin's measured interval: %ld of %ld runs with a resolvable linear phase; at or "
        "below the prediction (the verdict's test): %ld; largest |predicted - measured| / predicted = %.3g\n",
        inside, resolvable, at_or_below, worst_gap);
    io::CsvTable agree({"quantity", "value"});
    agree.row() << "runs" << double(values.size()) * double(trials);
    agree.row() << "resolvable" << double(resolvable);
    agree.row() << "predicted_inside_measured_interval" << double(inside);
    agree.row() << "measured_at_or_below_prediction" << double(at_or_below);
    agree.row() << "largest_relative_gap" << worst_gap;
    agree.write(out_dir + "/" + experiment + "-agreement.csv");
    script += data + (samples ? "set logscale x\nset xlabel 'samples per task n_i'\n"
                              : "set xlabel 'theta = theta_A = theta_B (radians)'\n") +
              "set ylabel 'contraction rate per iteration'\nset key top right\n"
              "set title \"colora theory --experiment " +
              experiment + " (" + model + ", " + problem + (samples ? " varied" : "") +
              ", " + std::to_string(trials) +
              " trials)\"\n"
              "plot $d using 1:2:3:4 with yerrorbars pt 7 ps 0.8 lw 1 title 'measured, noiseless twin (95% CI)', "
              "$d using 1:5 with points pt 6 ps 1.4 lw 2 title 'predicted: spectral radius of the Jacobian', "
              "$d using 1:6 with points pt 2 ps 0.8 title 'measured, noisy run (when resolvable)'\n";
  } else if (experiment == "error-vs-theta") {
    std::printf("%8s %14s %14s\n", "theta", "colora_rel_err", "oracle_rel_err");
    data = "$d << EOD\n";
    std::vector<double> lx, ly;
    for (const auto& pt : points) {
      const auto c = exp::mean_interval(pt.y), o = exp::mean_interval(pt.y2);
      std::printf("%8g %14.4g %14.4g\n", pt.value, c.mean, o.mean);
      data += fmt(pt.value) + " " + fmt(c.mean) + " " + fmt(std::isfinite(c.low) ? c.low : c.mean) + " " +
              fmt(std::isfinite(c.high) ? c.high : c.mean) + " " + fmt(o.mean) + "\n";
    }
    data += "EOD\n";
    script += data +
              "set logscale xy\nset key top left\nset xlabel 'theta = theta_A = theta_B (radians)'\n"
              "set ylabel 'final mean per-task relative error'\n"
              "set title \"colora theory --experiment error-vs-theta (" +
              model + ", " + problem +
              ")\"\n"
              "plot $d using 1:2:3:4 with yerrorlines pt 7 lw 2 title 'CoLoRA (mean, 95% CI)', "
              "$d using 1:5 with linespoints pt 5 lw 2 title 'oracle (A*, B* known)'\n";
  } else {  // mom-vs-samples
    std::vector<double> lx, ld, le;
    data = "$d << EOD\n";
    for (const auto& pt : points)
      for (size_t j = 0; j < pt.x.size(); ++j) {
        lx.push_back(std::log(pt.x[j]));
        ld.push_back(std::log(pt.y[j]));
        le.push_back(std::log(pt.y2[j]));
        data += fmt(pt.x[j]) + " " + fmt(pt.y[j]) + " " + fmt(pt.y2[j]) + "\n";
      }
    data += "EOD\n";
    const Slope sd = ols_slope(lx, ld), se = ols_slope(lx, le);
    std::printf(
        "log-log slope against N: subspace distance %.3f [%.3f, %.3f], mean relative error %.3f [%.3f, %.3f] "
        "(95%% t intervals, %zu runs)\n",
        sd.slope, sd.low, sd.high, se.slope, se.low, se.high, lx.size());
    io::CsvTable slopes({"quantity", "value", "ci_low", "ci_high"});
    slopes.row() << "loglog_slope_distance" << sd.slope << sd.low << sd.high;
    slopes.row() << "loglog_slope_mean_rel_err" << se.slope << se.low << se.high;
    slopes.write(out_dir + "/" + experiment + "-slope.csv");
    char sl[160];
    std::snprintf(sl, sizeof sl, "slope %.2f", sd.slope);
    char sl2[160];
    std::snprintf(sl2, sizeof sl2, "slope %.2f", se.slope);
    script += data +
              "set logscale xy\nset xlabel 'total samples N = k n_i'\nset ylabel 'error of the one-shot estimate'\n"
              "set title \"colora theory --experiment mom-vs-samples (" +
              model +
              ", spectral init + S-step, max\\_iterations = 0)\"\n"
              "plot $d using 1:2 with points pt 7 ps 1.2 title 'max(dist_A, dist_B), fit " +
              sl + "', " + "exp(" + fmt(sd.intercept) + ") * x**(" + fmt(sd.slope) +
              ") with lines lw 2 notitle, "
              "$d using 1:3 with points pt 5 ps 1.2 title 'mean relative error, fit " +
              sl2 + "', " + "exp(" + fmt(se.intercept) + ") * x**(" + fmt(se.slope) +
              ") with lines lw 2 dt 2 notitle\n";
  }
  plot::render_png(out_dir + "/" + experiment + ".png", script, 900, 600);
  std::printf("wrote %s/%s.csv, %s/%s.png\n", out_dir.c_str(), experiment.c_str(), out_dir.c_str(), experiment.c_str());
  return 0;
}

}  // namespace cmd
}  // namespace colora
