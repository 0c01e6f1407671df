// colora nn-teacher: a planted teacher network (docs/nn-experiments.md).
//
// A random frozen "foundation" network (MLP or one transformer block) is the
// base W_0 of every layer. Task i's teacher adds planted updates
// B_i* S_i* A_i* to the adapted projections, with the similarity knobs of the
// linear generator (docs/solver.md, "The generator": theta_a, theta_b rotate the shared
// subspaces, tau spreads the cores, kappa their condition number). Every
// adapter kind is trained from the same frozen base with the multi-task
// trainer under the same selection rule (nn::fit_selected: a validation
// split of each task's own training examples picks the learning rates and the
// iteration, then a refit on all of them); reported: per-task test loss and
// the distance of the learned adapter subspaces to the teacher's shared A*,
// B*, against samples per task, against theta (theta_a = theta_b) and against
// the number of tasks.
//
// Runs are the (sweep point, trial) pairs, in parallel (OpenMP, one run per
// thread, the trainer single-threaded inside): nn_teacher.csv is identical for
// any --threads.
#include <colora/core/config.hpp>
#include <colora/core/errors.hpp>
#include <colora/io/csv.hpp>
#include <colora/regression/generator.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "commands.hpp"
#include "nn_common.hpp"
#include "plot.hpp"
#include "stats.hpp"

namespace colora {
namespace cmd {

namespace {

struct TeacherConfig {
  bool transformer = false;
  Index p = 16, hidden = 32, q = 8, seq_len = 4, d_model = 16, heads = 2;
  Index rank = 2;
  double theta_a = 0, theta_b = 0, tau = 1, kappa = 2, strength = 1, sigma = 0.1;
  int tasks = 8;
  Index samples = 20, test_samples = 200;
};

struct TrainConfig {
  nn::SelectionOptions sel;  /// iterations, learning rates, validation split, refit
  double alpha = 0;
  CoreKind core = CoreKind::Full;
  nn::Schedule schedule = nn::Schedule::Joint;
  Index batch = 0;
};

nn::MlpModel<double> build(const TeacherConfig& c, const nn::AdapterSpec& a, std::uint64_t seed,
                           const nn::MlpModel<double>*) {
  nn::MlpSpec s;
  s.in = c.p;
  s.hidden = {c.hidden};
  s.out = c.q;
  s.num_tasks = c.tasks;
  s.adapter = a;
  s.seed = seed;
  return nn::MlpModel<double>(s);
}
nn::TransformerModel<double> build(const TeacherConfig& c, const nn::AdapterSpec& a, std::uint64_t seed,
                                   const nn::TransformerModel<double>*) {
  nn::TransformerSpec s;
  s.d_in = c.p;
  s.seq_len = c.seq_len;
  s.d_model = c.d_model;
  s.heads = c.heads;
  s.d_ff = c.hidden;
  s.layers = 1;
  s.d_out = c.q;
  s.num_tasks = c.tasks;
  s.adapters = nn::adapters_qv_mlp(a);
  s.seed = seed;
  return nn::TransformerModel<double>(s);
}

/// The projections that carry the planted updates and the students' adapters.
std::vector<nn::Linear<double>*> adapted(nn::MlpModel<double>& m) {
  std::vector<nn::Linear<double>*> out;
  for (auto& l : m.layers) out.push_back(&l);
  return out;
}
std::vector<nn::Linear<double>*> adapted(nn::TransformerModel<double>& m) {
  auto& b = m.blocks[0];
  return {&b.attn.q, &b.attn.v, &b.mlp.fc_in, &b.mlp.fc_out};
}

/// One (config, trial): the teacher, the data, every method. Per method the
/// metrics [test_loss per task, dist_A, dist_B] and the selection made.
template <class Model>
std::vector<exp::NnOutcome> run_one(const TeacherConfig& c, const TrainConfig& tc,
                                    const std::vector<AdapterKind>& kinds, std::uint64_t trial_seed,
                                    const std::string& export_dir = "") {
  const Model* tag = nullptr;
  const Rng root(trial_seed, 0x7EAC4E);
  const std::uint64_t base_seed = root.substream(0).next_u64();
  const Index r = c.rank;
  // The teacher: the foundation with a personal (LoRA-shaped) update per task.
  Model teacher = build(c, nn::AdapterSpec{AdapterKind::Lora, r}, base_seed, tag);
  auto tl = adapted(teacher);
  std::vector<Matrix<double>> A_star, B_star;
  for (std::size_t li = 0; li < tl.size(); ++li) {
    nn::Linear<double>& L = *tl[li];
    Rng lr = root.substream(100 + li);
    A_star.push_back(haar_orthonormal<double>(lr, L.in(), r).transpose());
    B_star.push_back(haar_orthonormal<double>(lr, L.out(), r));
    const Matrix<double> s_bar = lr.normal_matrix<double>(r, r);
    const Matrix<double> At = A_star.back().transpose();
    for (int i = 0; i < c.tasks; ++i) {  // task i's draws do not depend on the number of tasks
      const Rng t = lr.substream(1 + std::uint64_t(i));
      const Matrix<double> S = detail::planted_core<double>(s_bar, c.tau, c.kappa, t.substream(0));
      const Matrix<double> Bi = detail::rotate_subspace<double>(B_star.back(), c.theta_b, t.substream(1));
      const Matrix<double> Ai = detail::rotate_subspace<double>(At, c.theta_a, t.substream(2)).transpose();
      L.As[std::size_t(i)].value = Ai;
      L.Bs[std::size_t(i)].value = c.strength * (Bi * S);
    }
  }
  const Index T = teacher.rows_per_example();
  std::vector<nn::TaskData<double>> data(std::size_t(c.tasks)), test(std::size_t(c.tasks));
  for (int i = 0; i < c.tasks; ++i) {
    Rng dr = root.substream(1000 + std::uint64_t(i));
    Rng er = root.substream(500000 + std::uint64_t(i));
    auto& d = data[std::size_t(i)];
    d.X = dr.normal_matrix<double>(c.samples * T, c.p);
    d.Y = teacher.predict(d.X, i) + c.sigma * dr.normal_matrix<double>(c.samples, c.q);
    auto& e = test[std::size_t(i)];  // held out: never seen by training or selection
    e.X = er.normal_matrix<double>(c.test_samples * T, c.p);
    e.Y = teacher.predict(e.X, i) + c.sigma * er.normal_matrix<double>(c.test_samples, c.q);
  }

  nn::TrainerOptions o;
  o.schedule = tc.schedule;
  o.batch_size = tc.batch;
  o.loss = nn::LossKind::Mse;
  o.num_threads = 1;
  o.seed = trial_seed;
  std::vector<std::string> names;
  for (AdapterKind k : kinds) names.push_back(to_string(k));
  auto make = [&](const std::string& method) {
    Model student = build(c, nn::AdapterSpec{parse_adapter_kind(method), r, tc.alpha, tc.core}, base_seed, tag);
    auto sl = adapted(student);
    for (std::size_t li = 0; li < sl.size(); ++li)
      if (!(sl[li]->W0.value == tl[li]->W0.value))
        throw std::logic_error("nn-teacher: the student's frozen base differs from the teacher's");
    return student;
  };
  auto evaluate = [&](Model& student, const std::string& method) {
    if (!export_dir.empty() && method != "none") exp::export_peft_method(student, export_dir, method);
    exp::UnitMetrics m(3);
    for (int i = 0; i < c.tasks; ++i)
      m[0].push_back(nn::loss_value(nn::LossKind::Mse, student.predict(test[std::size_t(i)].X, i),
                                    test[std::size_t(i)].Y, static_cast<Matrix<double>*>(nullptr)));
    std::vector<double> da, db;
    auto sl = adapted(student);
    for (std::size_t li = 0; li < sl.size(); ++li) {
      const auto d = exp::adapter_distances(*sl[li], A_star[li], B_star[li]);
      da.push_back(d.first);
      db.push_back(d.second);
    }
    m[1].push_back(exp::finite_mean(da));
    m[2].push_back(exp::finite_mean(db));
    return m;
  };
  return exp::run_methods<Model>("nn-teacher", names, make, data, o, tc.sel, root.substream(7), evaluate);
}

struct Point {
  std::string sweep;
  double value;
  TeacherConfig cfg;
};

std::vector<std::string> sweep_list(cli::Args& args, const std::string& name, const std::string& def,
                                    const std::string& help) {
  auto v = args.list(name, def, help + "; 'none' skips this sweep");
  if (v.size() == 1 && v[0] == "none") v.clear();
  return v;
}

const char* const kMetrics[3] = {"test_loss", "dist_A", "dist_B"};

}  // namespace

int nn_teacher(cli::Args& args) {
  TeacherConfig c;
  const std::string arch = args.choice("arch", "mlp", {"mlp", "transformer"}, "foundation network");
  c.transformer = arch == "transformer";
  c.p = Index(args.integer("p", 16, "input width", 1, 4096));
  c.hidden = Index(args.integer("hidden", 32, "MLP hidden width (transformer: MLP width of the block)", 1, 4096));
  c.q = Index(args.integer("q", 8, "outputs", 1, 4096));
  c.seq_len = Index(args.integer("seq-len", 4, "transformer: tokens per example", 1, 1024));
  c.d_model = Index(args.integer("d-model", 16, "transformer: model width", 1, 4096));
  c.heads = Index(args.integer("heads", 2, "transformer: attention heads (must divide --d-model)", 1, 256));
  c.rank = Index(args.integer("rank", 2, "rank r of the planted updates and of every adapter", 1, 1024));
  c.tau = args.real("tau", 1.0, "core diversity tau (docs/solver.md, The generator)", 0, 1e6);
  c.kappa = args.real("kappa", 2.0, "condition number kappa of the planted cores", 1, 1e12);
  c.theta_a = args.real("theta-a", 0.0, "reference principal angle of A_i* to A* (radians, 0..pi/2)", 0,
                        1.5707963267948966);
  c.theta_b = args.real("theta-b", 0.0, "reference principal angle of B_i* to B* (radians, 0..pi/2)", 0,
                        1.5707963267948966);
  c.strength = args.real("strength", 1.0, "scale of the planted updates (largest singular value)", 0, 1e6);
  c.sigma = args.real("sigma", 0.1, "output noise standard deviation", 0, 1e6);
  c.tasks = int(
      args.integer("k", 8, "reference number of tasks (held fixed in the samples and theta sweeps)", 1, 100000));
  c.samples = Index(
      args.integer("n", 20, "reference samples per task (held fixed in the theta and tasks sweeps)", 1, 100000000));
  c.test_samples = Index(args.integer("test-samples", 200, "held-out test examples per task", 1, 100000000));
  const auto samples_list = sweep_list(args, "samples", "5,10,20,40,80", "samples per task to sweep");
  const auto theta_list = sweep_list(args, "theta", "0,0.1,0.3,0.6,1.2", "theta_a = theta_b values to sweep (radians)");
  const auto tasks_list = sweep_list(args, "tasks", "2,4,8,16,32", "numbers of tasks to sweep");
  TrainConfig tc;
  tc.sel = exp::parse_selection(args, 300, "0.01", "yes", 0);
  tc.core = parse_core_kind(
      args.choice("core", "full", {"full", "diagonal"}, "colora: personal core S_i full r x r or diagonal"));
  tc.alpha = args.real("alpha", 0.0, "adapter scale alpha (update scaled by alpha/r; 0 means alpha = r)", 0, 1e6);
  tc.schedule = nn::parse_schedule(args.choice("schedule", "joint", {"joint", "alternating"}, "trainer schedule"));
  tc.batch = Index(args.integer("batch", 0, "minibatch size per task (0 = full batch)", 0, 100000000));
  const long trials = long(args.integer("trials", 10, "trials (independent teachers and data) per point", 1, 1000000));
  const auto seed = std::uint64_t(args.integer("seed", 1, "seed; trial t uses a seed derived from (seed, t)", 0));
  const int threads = int(args.integer("threads", 0, "threads over the runs (0 = all)", 0, 1024));
  std::vector<std::string> known;
  for (AdapterKind k : exp::all_adapter_kinds()) known.push_back(to_string(k));
  const auto methods =
      exp::parse_method_list(args.list("methods", "all", "adapter kinds to train (comma separated, or all)"), known);
  const std::string out_dir = args.str("out", "results/nn-teacher", "output directory");
  const std::string export_dir = exp::export_peft_flag(args);
  if (args.finish()) return 0;

  std::vector<AdapterKind> kinds;
  for (const auto& m : methods) kinds.push_back(parse_adapter_kind(m));
  if (c.transformer && c.d_model % c.heads != 0)
    throw cli::UsageError("--heads " + std::to_string(c.heads) + " does not divide --d-model " +
                          std::to_string(c.d_model));
  const double half_pi = 1.5707963267948966;
  std::vector<Point> points;
  for (const auto& s : samples_list) {
    Point pt{"samples", exp::parse_sweep_value("samples", s, 1, 1e8, true), c};
    pt.cfg.samples = Index(pt.value);
    points.push_back(pt);
  }
  for (const auto& s : theta_list) {
    Point pt{"theta", exp::parse_sweep_value("theta", s, 0, half_pi, false), c};
    pt.cfg.theta_a = pt.cfg.theta_b = pt.value;
    points.push_back(pt);
  }
  for (const auto& s : tasks_list) {
    Point pt{"tasks", exp::parse_sweep_value("tasks", s, 1, 1e5, true), c};
    pt.cfg.tasks = int(pt.value);
    points.push_back(pt);
  }
  if (points.empty()) throw cli::UsageError("every sweep is 'none': nothing to run");
  // Shapes the rotation and the adapters need (checked before any work).
  {
    std::vector<std::pair<Index, Index>> shapes;  // (in, out) of the adapted projections
    if (c.transformer)
      shapes = {{c.d_model, c.d_model}, {c.d_model, c.hidden}, {c.hidden, c.d_model}};
    else
      shapes = {{c.p, c.hidden}, {c.hidden, c.q}};
    for (const auto& pt : points)
      for (const auto& s : shapes) {
        if (c.rank > std::min(s.first, s.second))
          throw cli::UsageError("--rank " + std::to_string(c.rank) + " exceeds a projection's width (" +
                                std::to_string(s.first) + " -> " + std::to_string(s.second) + ")");
        if ((pt.cfg.theta_a > 0 && s.first < 2 * c.rank) || (pt.cfg.theta_b > 0 && s.second < 2 * c.rank))
          throw cli::UsageError("theta > 0 needs every adapted projection at least 2 * rank wide (" +
                                std::to_string(s.first) + " -> " + std::to_string(s.second) + ", rank " +
                                std::to_string(c.rank) + ")");
      }
  }
  std::filesystem::create_directories(out_dir);

  const long np = long(points.size()), nm = long(kinds.size());
  std::vector<std::vector<exp::NnOutcome>> results;
  std::fprintf(stderr, "nn-teacher: %s, %ld points x %ld trials x %ld methods\n", arch.c_str(), np, trials, nm);
  std::vector<std::tuple<Index, double, double, int>> keys;  // what a run depends on besides the trial
  for (const auto& pt : points) keys.emplace_back(pt.cfg.samples, pt.cfg.theta_a, pt.cfg.theta_b, pt.cfg.tasks);
  // --export-peft: the students of trial 0 at the reference configuration (a
  // sweep point when one has it, else one extra run).
  const auto ref_key = std::make_tuple(c.samples, c.theta_a, c.theta_b, c.tasks);
  const long ref_point = long(std::find(keys.begin(), keys.end(), ref_key) - keys.begin());
  auto run = [&](const TeacherConfig& cfg, long t, const std::string& exp_dir) {
    const std::uint64_t ts = exp::trial_seed(seed, t);
    return c.transformer ? run_one<nn::TransformerModel<double>>(cfg, tc, kinds, ts, exp_dir)
                         : run_one<nn::MlpModel<double>>(cfg, tc, kinds, ts, exp_dir);
  };
  exp::run_points(keys, trials, threads, "nn-teacher", results, [&](long pi, long t) {
    return run(points[std::size_t(pi)].cfg, t, pi == ref_point && t == 0 ? export_dir : std::string());
  });
  if (!export_dir.empty() && ref_point == long(keys.size())) (void)run(c, 0, export_dir);

  // summary[(pi * nm + m) * 3 + metric], task_sd[pi * nm + m]; sel_iter: mean selected iterations over trials
  std::vector<exp::MeanInterval> summary(std::size_t(np * nm * 3));
  std::vector<double> task_sd(std::size_t(np * nm));
  std::vector<exp::MeanInterval> sel_iter(std::size_t(np * nm)), gap(std::size_t(np * nm));
  const long ci_colora = long(std::find(kinds.begin(), kinds.end(), AdapterKind::Colora) - kinds.begin());
  const bool have_colora = ci_colora < nm;
  io::CsvTable table({"sweep", "value", "method", "metric", "trials", "mean", "ci_low", "ci_high", "task_sd"});
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (long pi = 0; pi < np; ++pi)
    for (long m = 0; m < nm; ++m) {
      const std::size_t k = std::size_t(pi * nm + m);
      for (long metric = 0; metric < 3; ++metric) {
        std::vector<std::vector<double>> per_trial;
        for (long t = 0; t < trials; ++t)
          per_trial.push_back(results[std::size_t(pi * trials + t)][std::size_t(m)].metrics[std::size_t(metric)]);
        const exp::TrialSummary ts = exp::summarize_trials(per_trial);
        summary[k * 3 + std::size_t(metric)] = ts.ci;
        if (metric == 0) task_sd[k] = ts.unit_sd;
        table.row() << points[std::size_t(pi)].sweep << points[std::size_t(pi)].value << methods[std::size_t(m)]
                    << kMetrics[metric] << ts.ci.count << ts.ci.mean << ts.ci.low << ts.ci.high
                    << (metric == 0 ? ts.unit_sd : nan);
      }
      if (have_colora && m != ci_colora) {  // paired per-trial difference of the mean test loss
        std::vector<std::vector<double>> a, b;
        for (long t = 0; t < trials; ++t) {
          a.push_back(results[std::size_t(pi * trials + t)][std::size_t(ci_colora)].metrics[0]);
          b.push_back(results[std::size_t(pi * trials + t)][std::size_t(m)].metrics[0]);
        }
        gap[k] = exp::paired_difference(a, b);
        table.row() << points[std::size_t(pi)].sweep << points[std::size_t(pi)].value << methods[std::size_t(m)]
                    << "colora_minus_method_test_loss" << gap[k].count << gap[k].mean << gap[k].low << gap[k].high
                    << nan;
      }
      if (kinds[std::size_t(m)] == AdapterKind::None) continue;
      std::vector<nn::Selection> chosen;
      for (long t = 0; t < trials; ++t)
        chosen.push_back(results[std::size_t(pi * trials + t)][std::size_t(m)].selection);
      const exp::SelectionSummary ss = exp::summarize_selection(chosen);
      sel_iter[k] = ss.iterations;
      exp::selection_rows(table, points[std::size_t(pi)].sweep, points[std::size_t(pi)].value, methods[std::size_t(m)],
                          ss);
    }
  table.write(out_dir + "/nn_teacher.csv");

  std::printf(
      "colora nn-teacher: arch=%s p=%lld hidden=%lld q=%lld r=%lld tau=%g kappa=%g strength=%g sigma=%g "
      "(noise floor %.3g), reference k=%d n=%lld theta_a=%g theta_b=%g; %s; %ld trials, seed=%llu\n",
      arch.c_str(), (long long)c.p, (long long)c.hidden, (long long)c.q, (long long)c.rank, c.tau, c.kappa, c.strength,
      c.sigma, c.sigma * c.sigma, c.tasks, (long long)c.samples, c.theta_a, c.theta_b,
      exp::describe_selection(tc.sel).c_str(), trials, (unsigned long long)seed);
  std::printf("%-8s %7s %-12s %30s %9s %8s %8s %8s %30s\n", "sweep", "value", "method", "test_loss mean [95% CI]",
              "task_sd", "dist_A", "dist_B", "sel_iter", "colora - method [95% CI]");
  for (long pi = 0; pi < np; ++pi)
    for (long m = 0; m < nm; ++m) {
      const auto& a = summary[std::size_t((pi * nm + m) * 3)];
      std::printf("%-8s %7g %-12s %10.4g [%8.4g,%8.4g] %9.3g %8.3f %8.3f %8.1f", points[std::size_t(pi)].sweep.c_str(),
                  points[std::size_t(pi)].value, methods[std::size_t(m)].c_str(), a.mean, a.low, a.high,
                  task_sd[std::size_t(pi * nm + m)], summary[std::size_t((pi * nm + m) * 3 + 1)].mean,
                  summary[std::size_t((pi * nm + m) * 3 + 2)].mean, sel_iter[std::size_t(pi * nm + m)].mean);
      if (have_colora && m != ci_colora)
        std::printf(" %+9.4f [%+9.4f,%+9.4f]", gap[std::size_t(pi * nm + m)].mean, gap[std::size_t(pi * nm + m)].low,
                    gap[std::size_t(pi * nm + m)].high);
      std::printf("\n");
    }

  // Plot: one column per sweep; top row test loss (log y), bottom row the
  // subspace distance (mean of dist_A and dist_B where defined).
  std::vector<std::string> sweeps;
  for (const auto& pt : points)
    if (std::find(sweeps.begin(), sweeps.end(), pt.sweep) == sweeps.end()) sweeps.push_back(pt.sweep);
  const int ns = int(sweeps.size());
  std::string script = "set multiplot layout 2," + std::to_string(ns) + " title 'colora nn-teacher (" + arch +
                       ", r=" + std::to_string(c.rank) + ", tau=" + cli::Args::format(c.tau) +
                       ", reference k=" + std::to_string(c.tasks) + ", n=" + std::to_string(c.samples) +
                       ", theta=" + cli::Args::format(c.theta_a) + "; " + std::to_string(trials) +
                       " trials, 95% t-intervals)'\nset grid\nset key top right font ',8'\n"
                       "set offsets graph 0.03, graph 0.03, 0, 0\n";
  auto block = [&](long pi, long m, int row) {
    std::string s;
    const auto& ci = summary[std::size_t((pi * nm + m) * 3)];
    if (row == 0) {
      if (!(ci.mean > 0)) return s;
      const double lo = ci.count >= 2 ? std::max(ci.low, ci.mean * 1e-2) : ci.mean;
      const double hi = ci.count >= 2 ? ci.high : ci.mean;
      return io::CsvTable::number(points[std::size_t(pi)].value) + " " + io::CsvTable::number(ci.mean) + " " +
             io::CsvTable::number(lo) + " " + io::CsvTable::number(hi) + "\n";
    }
    const double d = exp::finite_mean(
        {summary[std::size_t((pi * nm + m) * 3 + 1)].mean, summary[std::size_t((pi * nm + m) * 3 + 2)].mean});
    if (!std::isfinite(d)) return s;
    return io::CsvTable::number(points[std::size_t(pi)].value) + " " + io::CsvTable::number(d) + "\n";
  };
  for (int row = 0; row < 2; ++row)
    for (int si = 0; si < ns; ++si) {
      const std::string& sw = sweeps[std::size_t(si)];
      const std::string xl = sw == "samples" ? "samples per task"
                             : sw == "theta" ? "theta_a = theta_b (rad)"
                                             : "tasks k";
      script += "set xlabel '" + xl + "'\n";
      script += sw == "theta" ? "unset logscale x\n" : "set logscale x 2\n";
      if (row == 0)
        script += "set logscale y\nset ylabel 'per-task test MSE'\nset yrange [*:*]\n";
      else
        script += "unset logscale y\nset ylabel 'subspace distance to A*, B*'\nset yrange [0:1.05]\n";
      std::string plots;
      for (long m = 0; m < nm; ++m) {
        std::string d;
        for (long pi = 0; pi < np; ++pi)
          if (points[std::size_t(pi)].sweep == sw) d += block(pi, m, row);
        if (d.empty()) continue;
        const std::string name = "$t" + std::to_string(row) + "_" + std::to_string(si) + "_" + std::to_string(m);
        script += name + " << EOD\n" + d + "EOD\n";
        plots += std::string(plots.empty() ? "plot " : ", ") + name +
                 (row == 0 ? " using 1:2:3:4 with yerrorlines" : " using 1:2 with linespoints") + " lc " +
                 std::to_string(m + 1) + " pt 7 ps 0.6 lw 2 title '" + methods[std::size_t(m)] + "'";
      }
      script += (plots.empty() ? "set multiplot next" : plots) + "\n";
    }
  script += "unset multiplot\n";
  plot::render_png(out_dir + "/nn_teacher.png", script, 420 * ns + 100, 800);
  std::printf("wrote %s/nn_teacher.csv, %s/nn_teacher.png\n", out_dir.c_str(), out_dir.c_str());
  return 0;
}

}  // namespace cmd
}  // namespace colora
