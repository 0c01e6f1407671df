// colora nn-digits: personalized adaptation of a pre-trained digit classifier
// to users who see rotated images (docs/nn-experiments.md).
//
// The UCI optical digits (data/digits.csv, 1797 images of 8 x 8 pixels) are
// split at random into a base part and a user part. A small MLP classifier is
// pre-trained on the base part (unrotated) and frozen. The user part is cut
// into k disjoint pools; user u sees the images of its pool rotated by its own
// angle (bilinear resampling about the image centre; angles evenly spread over
// --angle-spread degrees around --angle), trains on --samples labeled images
// and is tested on disjoint held-out images of its pool. Methods: the frozen
// base, a personal linear probe (a personal full-rank update of the
// classifier head on frozen features), and every adapter kind on every
// Linear, all with the same training budget and the same selection rule
// (nn::fit_selected: a validation split of each user's own labeled images
// picks the learning rate and the iteration, then a refit on all of them).
//
// Trials differ in the split (base/user, pools) and hence in the base model.
// Runs are the (sweep point, trial) pairs, in parallel (OpenMP, one run per
// thread): nn_digits.csv is identical for any --threads.
#include <colora/core/config.hpp>
#include <colora/core/errors.hpp>
#include <colora/io/csv.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "commands.hpp"
#include "nn_common.hpp"
#include "plot.hpp"
#include "stats.hpp"

namespace colora {
namespace cmd {

namespace {

using Mlp = nn::MlpModel<double>;

struct DigitsConfig {
  int users = 8;
  Index hidden = 32, rank = 4;
  double alpha = 0, angle = 45, base_fraction = 0.4;
  CoreKind core = CoreKind::Full;
  int pretrain_iters = 400;
  nn::SelectionOptions sel;  /// iterations, learning rates, validation split, refit
  Index test_per_user = 0;   ///< resolved before the runs
};

/// One trial's split and frozen base model.
struct TrialBase {
  std::vector<Index> base_idx;
  std::vector<std::vector<Index>> pools;  ///< per user, disjoint
  Mlp base{nn::MlpSpec{}};
  double base_acc_unrotated = 0;  ///< on the user part, unrotated
};

Mlp make_mlp(const DigitsConfig& c, const nn::AdapterSpec& a, int tasks, bool trainable, std::uint64_t seed) {
  nn::MlpSpec s;
  s.in = 64;
  s.hidden = {c.hidden};
  s.out = 10;
  s.num_tasks = tasks;
  s.adapter = a;
  s.base_trainable = trainable;
  s.seed = seed;
  return Mlp(s);
}

/// Rows `idx` of the digits, rotated by `degrees`, scaled to [0, 1].
void make_set(const exp::Digits& d, const std::vector<Index>& idx, std::size_t from, std::size_t to, double degrees,
              Matrix<double>& X, Matrix<double>& Y) {
  X.resize(Index(to - from), 64);
  Y.resize(Index(to - from), 1);
  for (std::size_t j = from; j < to; ++j) {
    const Index i = idx[j];
    double img[64];
    for (int k = 0; k < 64; ++k) img[k] = d.X(i, k);
    const std::vector<double> rot = degrees == 0.0 ? std::vector<double>(img, img + 64)
                                                   : exp::rotate_image8(img, degrees);
    for (int k = 0; k < 64; ++k) X(Index(j - from), k) = rot[std::size_t(k)] / 16.0;
    Y(Index(j - from), 0) = double(d.labels[std::size_t(i)]);
  }
}

TrialBase prepare_trial(const exp::Digits& d, const DigitsConfig& c, std::uint64_t ts) {
  TrialBase tb;
  const Rng root(ts, 0xD161D5);
  const Index N = d.X.rows();
  const std::vector<Index> perm = exp::permutation(N, root.substream(0));
  const Index nb = Index(std::llround(c.base_fraction * double(N)));
  tb.base_idx.assign(perm.begin(), perm.begin() + nb);
  const Index pool = (N - nb) / c.users;
  for (int u = 0; u < c.users; ++u)
    tb.pools.emplace_back(perm.begin() + nb + u * pool, perm.begin() + nb + (u + 1) * pool);
  // Pre-train the base on the (unrotated) base part.
  tb.base = make_mlp(c, nn::AdapterSpec{}, 1, true, root.substream(1).next_u64());
  std::vector<nn::TaskData<double>> data(1);
  make_set(d, tb.base_idx, 0, tb.base_idx.size(), 0.0, data[0].X, data[0].Y);
  nn::TrainerOptions o;
  o.loss = nn::LossKind::CrossEntropy;
  o.max_iterations = c.pretrain_iters;
  o.batch_size = 64;
  o.optimizer.shared.lr = 1e-2;
  o.optimizer.shared.weight_decay = 1e-4;
  o.eval_every = 0;
  o.num_threads = 1;
  o.seed = ts;
  nn::Trainer<Mlp> trainer(tb.base, data, o);
  trainer.run();
  std::vector<Index> all;
  for (const auto& p : tb.pools) all.insert(all.end(), p.begin(), p.end());
  Matrix<double> X, Y;
  make_set(d, all, 0, all.size(), 0.0, X, Y);
  tb.base_acc_unrotated = nn::accuracy(tb.base.predict(X, 0), Y);
  return tb;
}

/// A student for `method` on top of the frozen base: weights copied from it.
Mlp make_student(const DigitsConfig& c, const std::string& method, const Mlp& base, std::uint64_t seed) {
  const bool probe = method == "probe";
  const AdapterKind kind = probe ? AdapterKind::None : parse_adapter_kind(method);
  Mlp m = make_mlp(c, nn::AdapterSpec{kind, c.rank, c.alpha, c.core}, c.users, false, seed);
  if (probe) {
    // A personal full-rank update B_i A_i of the head (rank = min(hidden, 10)):
    // a personal linear classifier on the frozen features, started at the base head.
    const Index h = c.hidden, r = std::min<Index>(h, 10);
    m.layers.back() = nn::Linear<double>("mlp.fc1", h, 10, c.users, nn::AdapterSpec{AdapterKind::Lora, r},
                                         Rng(seed, 0x9B0BE).substream(1));
    nn::index_params(m);
  }
  for (std::size_t l = 0; l < m.layers.size(); ++l) {
    m.layers[l].W0.value = base.layers[l].W0.value;
    m.layers[l].b0.value = base.layers[l].b0.value;
  }
  return m;
}

struct Point {
  std::string sweep;
  double value;
  Index samples;
  double spread;
};

/// Per method: metrics [test accuracy per user, test loss per user] and the selection made.
std::vector<exp::NnOutcome> run_point(const exp::Digits& d, const DigitsConfig& c, const TrialBase& tb, const Point& pt,
                                      const std::vector<std::string>& methods, std::uint64_t ts,
                                      const std::string& export_dir = "") {
  std::vector<nn::TaskData<double>> data(std::size_t(c.users)), test(std::size_t(c.users));
  for (int u = 0; u < c.users; ++u) {
    const double ang = c.users == 1 ? c.angle : c.angle + pt.spread * (double(u) / double(c.users - 1) - 0.5);
    const auto& pool = tb.pools[std::size_t(u)];
    make_set(d, pool, 0, std::size_t(pt.samples), ang, data[std::size_t(u)].X, data[std::size_t(u)].Y);
    make_set(d, pool, pool.size() - std::size_t(c.test_per_user), pool.size(), ang, test[std::size_t(u)].X,
             test[std::size_t(u)].Y);
  }
  nn::TrainerOptions o;
  o.loss = nn::LossKind::CrossEntropy;
  o.batch_size = 0;
  o.num_threads = 1;
  o.seed = ts;
  auto make = [&](const std::string& method) {
    const std::size_t idx = std::size_t(std::find(methods.begin(), methods.end(), method) - methods.begin());
    return make_student(c, method, tb.base, Rng(ts, 0x57D).substream(idx).next_u64());
  };
  auto evaluate = [&](Mlp& m, const std::string& method) {
    if (!export_dir.empty() && method != "none") exp::export_peft_method(m, export_dir, method);
    exp::UnitMetrics r(2);
    for (int u = 0; u < c.users; ++u) {
      const auto& td = test[std::size_t(u)];
      const Matrix<double> z = m.predict(td.X, u);
      r[0].push_back(nn::accuracy(z, td.Y));
      r[1].push_back(nn::loss_value(nn::LossKind::CrossEntropy, z, td.Y, static_cast<Matrix<double>*>(nullptr)));
    }
    return r;
  };
  return exp::run_methods<Mlp>("nn-digits", methods, make, data, o, c.sel, Rng(ts, 0x5E1EC7), evaluate);
}

}  // namespace

int nn_digits(cli::Args& args) {
  DigitsConfig c;
  const std::string data_path = args.str("data", exp::default_digits_path(), "the digits CSV (64 pixels 0..16, label)");
  c.users = int(args.integer("users", 8, "users k (each gets a disjoint pool of the user part)", 1, 10000));
  c.angle = args.real("angle", 45, "common rotation angle (degrees)", -360, 360);
  const auto spreads = args.list("angle-spread", "0,90,180,270,360",
                                 "angle spreads to sweep (degrees; user angles evenly spread over it); 'none' skips");
  const auto samples = args.list("samples", "5,10,20,40", "labeled examples per user to sweep; 'none' skips");
  const long ref_n = long(
      args.integer("n", 10, "reference samples per user (held fixed in the angle-spread sweep)", 1, 1000000));
  const double ref_spread = args.real("spread", 180, "reference angle spread (held fixed in the samples sweep)", 0,
                                      720);
  c.test_per_user = Index(
      args.integer("test-per-user", 0,
                   "held-out test images per user (0 = all images of the pool not usable for training)", 0, 1000000));
  c.base_fraction = args.real("base-fraction", 0.4, "fraction of the images in the base (pre-training) part", 0.01,
                              0.99);
  c.hidden = Index(args.integer("hidden", 32, "hidden width of the MLP 64 -> hidden -> 10", 1, 4096));
  c.pretrain_iters = int(
      args.integer("pretrain-iters", 400, "pre-training iterations (AdamW, minibatch 64)", 1, 100000000));
  c.rank = Index(args.integer("rank", 4, "adapter rank r", 1, 1024));
  c.alpha = args.real("alpha", 0.0, "adapter scale alpha (update scaled by alpha/r; 0 means alpha = r)", 0, 1e6);
  c.sel = exp::parse_selection(args, 200, "0.01", "yes", 0);
  c.core = parse_core_kind(
      args.choice("core", "diagonal", {"full", "diagonal"}, "colora: personal core S_i full r x r or diagonal"));
  const long trials = long(
      args.integer("trials", 10, "trials (random splits, pre-trained bases) per point", 1, 1000000));
  const auto seed = std::uint64_t(args.integer("seed", 1, "seed; trial t uses a seed derived from (seed, t)", 0));
  const int threads = int(args.integer("threads", 0, "threads over the runs (0 = all)", 0, 1024));
  std::vector<std::string> known = {"none", "probe"};
  for (AdapterKind k : exp::all_adapter_kinds())
    if (k != AdapterKind::None) known.push_back(to_string(k));
  const auto methods = exp::parse_method_list(args.list("methods", "all", "methods (comma separated, or all)"), known);
  const std::string out_dir = args.str("out", "results/nn-digits", "output directory");
  const std::string export_dir = exp::export_peft_flag(args);
  if (args.finish()) return 0;

  if (c.rank > std::min<Index>(c.hidden, 10))
    throw cli::UsageError("--rank " + std::to_string(c.rank) + " exceeds min(--hidden, 10) = " +
                          std::to_string(std::min<Index>(c.hidden, 10)) + " (the head is hidden -> 10)");
  std::vector<Point> points;
  if (!(samples.size() == 1 && samples[0] == "none"))
    for (const auto& s : samples) {
      const double v = exp::parse_sweep_value("samples", s, 1, 1e6, true);
      points.push_back({"samples", v, Index(v), ref_spread});
    }
  if (!(spreads.size() == 1 && spreads[0] == "none"))
    for (const auto& s : spreads) {
      const double v = exp::parse_sweep_value("angle-spread", s, 0, 720, false);
      points.push_back({"angle_spread", v, Index(ref_n), v});
    }
  if (points.empty()) throw cli::UsageError("both sweeps are 'none': nothing to run");

  const exp::Digits d = exp::load_digits_csv(data_path);
  const Index N = d.X.rows();
  const Index nb = Index(std::llround(c.base_fraction * double(N)));
  const Index pool = (N - nb) / c.users;
  // Each user's pool must hold the most training images asked for plus the test images (at least one).
  Index max_n = 0;
  std::string max_flag = "--samples";
  for (const auto& p : points)
    if (p.samples > max_n) {
      max_n = p.samples;
      max_flag = p.sweep == "samples" ? "--samples" : "--n";
    }
  const Index want_test = c.test_per_user > 0 ? c.test_per_user : 1;
  if (max_n + want_test > pool) {
    const std::string test = c.test_per_user > 0 ? "--test-per-user " + std::to_string(c.test_per_user) + " test images"
                                                 : "at least 1 test image";
    throw cli::UsageError(max_flag + " " + std::to_string(max_n) + " training and " + test + " per user need " +
                          std::to_string(max_n + want_test) + " images per user, but --users " +
                          std::to_string(c.users) + " share the " + std::to_string(N - nb) + " user images (" +
                          std::to_string(N) + " images, --base-fraction " + cli::Args::format(c.base_fraction) +
                          " for the base): " + std::to_string(pool) + " each (lower " + max_flag +
                          (c.test_per_user > 0 ? ", --test-per-user" : "") + ", --users or --base-fraction)");
  }
  if (c.test_per_user == 0) c.test_per_user = pool - max_n;
  const bool ref_in_sweeps = std::any_of(points.begin(), points.end(), [&](const Point& p) {
    return p.samples == Index(ref_n) && p.spread == ref_spread;
  });
  if (!export_dir.empty() && !ref_in_sweeps && Index(ref_n) + c.test_per_user > pool)
    throw cli::UsageError("--export-peft trains the reference point (--n " + std::to_string(ref_n) + ", --spread " +
                          cli::Args::format(ref_spread) + "), whose " + std::to_string(ref_n) + " images and " +
                          std::to_string(c.test_per_user) + " test images do not fit in a user's pool of " +
                          std::to_string(pool) + " (lower --n or include it in --samples)");
  std::filesystem::create_directories(out_dir);

  const long np = long(points.size()), nm = long(methods.size());
  std::fprintf(stderr,
               "nn-digits: %lld images (%lld base, %lld per user, %lld test per user), %ld points x %ld trials x %ld "
               "methods\n",
               (long long)N, (long long)nb, (long long)pool, (long long)c.test_per_user, np, trials, nm);
  std::vector<TrialBase> bases(static_cast<std::size_t>(trials));
  std::vector<std::vector<exp::NnOutcome>> results;
  {
    exp::Progress progress("nn-digits: pre-training", trials);
    exp::parallel_runs(trials, threads, "pre-training of trial", &progress,
                       [&](long t) { bases[std::size_t(t)] = prepare_trial(d, c, exp::trial_seed(seed, t)); });
  }
  {
    std::vector<std::pair<Index, double>> keys;  // what a run depends on besides the trial
    for (const auto& pt : points) keys.emplace_back(pt.samples, pt.spread);
    // --export-peft: the students of trial 0 at the reference point (--n, --spread),
    // a sweep point when one has it, else one extra run.
    const std::pair<Index, double> ref_key(Index(ref_n), ref_spread);
    const long ref_point = long(std::find(keys.begin(), keys.end(), ref_key) - keys.begin());
    exp::run_points(keys, trials, threads, "nn-digits", results, [&](long pi, long t) {
      return run_point(d, c, bases[std::size_t(t)], points[std::size_t(pi)], methods, exp::trial_seed(seed, t),
                       pi == ref_point && t == 0 ? export_dir : std::string());
    });
    if (!export_dir.empty() && ref_point == long(keys.size()))
      (void)run_point(d, c, bases[0], Point{"reference", 0, Index(ref_n), ref_spread}, methods,
                      exp::trial_seed(seed, 0), export_dir);
  }

  // Summaries: per point and method, the per-trial mean over users, its mean
  // and 95 % t-interval over trials, and the spread (sd) over users averaged
  // over trials. colora_minus: the paired per-trial difference
  // colora - method of the mean accuracy.
  const long ci_colora = long(std::find(methods.begin(), methods.end(), "colora") - methods.begin());
  const bool have_colora = ci_colora < nm;
  std::vector<exp::MeanInterval> acc_ci(std::size_t(np * nm)), gap_ci(std::size_t(np * nm)),
      sel_iter(std::size_t(np * nm));
  std::vector<double> acc_sd(std::size_t(np * nm));
  io::CsvTable table({"sweep", "value", "method", "metric", "trials", "mean", "ci_low", "ci_high", "user_sd"});
  const double nan = std::numeric_limits<double>::quiet_NaN();
  auto per_trial = [&](long pi, long m, int metric) {
    std::vector<std::vector<double>> v;
    for (long t = 0; t < trials; ++t)
      v.push_back(results[std::size_t(pi * trials + t)][std::size_t(m)].metrics[std::size_t(metric)]);
    return v;
  };
  for (long pi = 0; pi < np; ++pi)
    for (long m = 0; m < nm; ++m) {
      const std::size_t k = std::size_t(pi * nm + m);
      const Point& pt = points[std::size_t(pi)];
      const exp::TrialSummary acc = exp::summarize_trials(per_trial(pi, m, 0));
      const exp::TrialSummary loss = exp::summarize_trials(per_trial(pi, m, 1));
      acc_ci[k] = acc.ci;
      acc_sd[k] = acc.unit_sd;
      table.row() << pt.sweep << pt.value << methods[std::size_t(m)] << "test_accuracy" << acc.ci.count << acc.ci.mean
                  << acc.ci.low << acc.ci.high << acc.unit_sd;
      table.row() << pt.sweep << pt.value << methods[std::size_t(m)] << "test_loss" << loss.ci.count << loss.ci.mean
                  << loss.ci.low << loss.ci.high << loss.unit_sd;
      if (have_colora && m != ci_colora) {
        gap_ci[k] = exp::paired_difference(per_trial(pi, ci_colora, 0), per_trial(pi, m, 0));
        table.row() << pt.sweep << pt.value << methods[std::size_t(m)] << "colora_minus_method_accuracy"
                    << gap_ci[k].count << gap_ci[k].mean << gap_ci[k].low << gap_ci[k].high << nan;
      }
      if (methods[std::size_t(m)] != "none") {
        std::vector<nn::Selection> chosen;
        for (long t = 0; t < trials; ++t)
          chosen.push_back(results[std::size_t(pi * trials + t)][std::size_t(m)].selection);
        const exp::SelectionSummary ss = exp::summarize_selection(chosen);
        sel_iter[k] = ss.iterations;
        exp::selection_rows(table, pt.sweep, pt.value, methods[std::size_t(m)], ss);
      }
    }
  table.write(out_dir + "/nn_digits.csv");

  double base_acc = 0;
  for (const auto& b : bases) base_acc += b.base_acc_unrotated;
  base_acc /= double(trials);
  std::printf(
      "colora nn-digits: %d users, angle %g deg, MLP 64-%lld-10, rank %lld, core %s; %s; %lld test images "
      "per user, %ld trials, seed=%llu; base accuracy on unrotated user images %.3f\n",
      c.users, c.angle, (long long)c.hidden, (long long)c.rank, to_string(c.core),
      exp::describe_selection(c.sel).c_str(), (long long)c.test_per_user, trials, (unsigned long long)seed, base_acc);
  std::printf("%-13s %6s %-12s %28s %8s %8s %28s\n", "sweep", "value", "method", "accuracy mean [95% CI]", "user_sd",
              "sel_iter", "colora - method [95% CI]");
  for (long pi = 0; pi < np; ++pi)
    for (long m = 0; m < nm; ++m) {
      const std::size_t k = std::size_t(pi * nm + m);
      std::printf("%-13s %6g %-12s %8.4f [%7.4f,%7.4f] %8.4f", points[std::size_t(pi)].sweep.c_str(),
                  points[std::size_t(pi)].value, methods[std::size_t(m)].c_str(), acc_ci[k].mean, acc_ci[k].low,
                  acc_ci[k].high, acc_sd[k]);
      std::printf(" %8.1f", sel_iter[k].mean);
      if (have_colora && m != ci_colora)
        std::printf(" %+8.4f [%+7.4f,%+7.4f]", gap_ci[k].mean, gap_ci[k].low, gap_ci[k].high);
      std::printf("\n");
    }

  // Plot: accuracy vs samples, accuracy vs spread, colora - method vs spread.
  // One panel per non-empty view (a skipped sweep leaves no empty panel).
  auto panel = [&](const std::string& sweep, int what) {
    std::string s, plots;
    for (long m = 0; m < nm; ++m) {
      if (what == 2 && (!have_colora || m == ci_colora)) continue;
      std::string dat;
      for (long pi = 0; pi < np; ++pi) {
        if (points[std::size_t(pi)].sweep != sweep) continue;
        const auto& ci = what == 2 ? gap_ci[std::size_t(pi * nm + m)] : acc_ci[std::size_t(pi * nm + m)];
        if (!std::isfinite(ci.mean)) continue;
        const double lo = ci.count >= 2 ? ci.low : ci.mean, hi = ci.count >= 2 ? ci.high : ci.mean;
        dat += io::CsvTable::number(points[std::size_t(pi)].value) + " " + io::CsvTable::number(ci.mean) + " " +
               io::CsvTable::number(lo) + " " + io::CsvTable::number(hi) + "\n";
      }
      if (dat.empty()) continue;
      const std::string name = "$d" + std::to_string(what) + "_" + std::to_string(m);
      s += name + " << EOD\n" + dat + "EOD\n";
      plots += std::string(plots.empty() ? "plot " : ", ") + name + " using 1:2:3:4 with yerrorlines lc " +
               std::to_string(m + 1) + " pt 7 ps 0.6 lw 2 title '" +
               (what == 2 ? "colora - " + methods[std::size_t(m)] : methods[std::size_t(m)]) + "'";
    }
    if (plots.empty()) return std::string();
    if (what == 2) plots += ", 0 with lines lc 'black' dt 2 notitle";
    return s + plots + "\n";
  };
  std::vector<std::string> panels;
  auto add_panel = [&](const std::string& setup, const std::string& body) {
    if (!body.empty()) panels.push_back(setup + body);
  };
  add_panel("set logscale x 2\nset xlabel 'labeled images per user (spread " + cli::Args::format(ref_spread) +
                " deg)'\nset ylabel 'mean per-user test accuracy'\n",
            panel("samples", 0));
  const std::string spread_x = "unset logscale x\nset xlabel 'angle spread (deg; " + std::to_string(ref_n) +
                               " images per user)'\n";
  add_panel(spread_x + "set ylabel 'mean per-user test accuracy'\n", panel("angle_spread", 1));
  add_panel(spread_x + "set ylabel 'colora minus method (accuracy, paired)'\n", panel("angle_spread", 2));
  std::string script = "set multiplot layout 1," + std::to_string(std::max<std::size_t>(panels.size(), 1)) +
                       " title 'colora nn-digits (" + std::to_string(c.users) + " users, angle " +
                       cli::Args::format(c.angle) + " deg, rank " + std::to_string(c.rank) + ", " +
                       std::to_string(trials) + " trials, 95% t-intervals; base on unrotated: " +
                       cli::Args::format(std::round(base_acc * 1000) / 1000) +
                       ")'\nset grid\nset key bottom right font ',8'\nset offsets graph 0.03, graph 0.03, 0, 0\n";
  for (const auto& p : panels) script += p;
  script += "unset multiplot\n";
  plot::render_png(out_dir + "/nn_digits.png", script, int(std::max<std::size_t>(panels.size(), 1)) * 500, 520);
  std::printf("wrote %s/nn_digits.csv, %s/nn_digits.png\n", out_dir.c_str(), out_dir.c_str());
  return 0;
}

}  // namespace cmd
}  // namespace colora
