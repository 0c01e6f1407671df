// colora nn-teacher: a planted teacher network (docs/nn-experiments.md).
//
// A random frozen "foundation" network (MLP or one transformer block) is the
// base W_0 of every layer. Task i's teacher adds planted updates
// B_i* S_i* A_i* to the adapted projections, with the similarity knobs of the
// linear generator (spec section 3: theta_a, theta_b rotate the shared
// subspaces, tau spreads the cores, kappa their condition number). Every
// adapter kind is trained from the same frozen base with the multi-task
// trainer; reported: per-task test loss and the distance of the learned
// adapter subspaces to the teacher's shared A*, B*, against samples per task,
// against theta (theta_a = theta_b) and against the number of tasks.
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
  int iters = 300;
  double lr = 1e-2, personal_lr = 1e-2, alpha = 0;
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

struct MethodResult {
  std::vector<double> task_loss;  ///< per task
  double dist_a = std::numeric_limits<double>::quiet_NaN();
  double dist_b = std::numeric_limits<double>::quiet_NaN();
};

/// One (config, trial): the teacher, the data, every method.
template <class Model>
std::vector<MethodResult> run_one(const TeacherConfig& c, const TrainConfig& tc, const std::vector<AdapterKind>& kinds,
                                  std::uint64_t trial_seed) {
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
  std::vector<nn::TaskData<double>> data(std::size_t(c.tasks));
  for (int i = 0; i < c.tasks; ++i) {
    Rng dr = root.substream(1000 + std::uint64_t(i));
    Rng er = root.substream(500000 + std::uint64_t(i));
    auto& d = data[std::size_t(i)];
    d.X = dr.normal_matrix<double>(c.samples * T, c.p);
    d.Y = teacher.predict(d.X, i) + c.sigma * dr.normal_matrix<double>(c.samples, c.q);
    d.X_val = er.normal_matrix<double>(c.test_samples * T, c.p);
    d.Y_val = teacher.predict(d.X_val, i) + c.sigma * er.normal_matrix<double>(c.test_samples, c.q);
  }

  std::vector<MethodResult> out;
  for (AdapterKind kind : kinds) {
    Model student = build(c, nn::AdapterSpec{kind, r, tc.alpha, tc.core}, base_seed, tag);
    auto sl = adapted(student);
    for (std::size_t li = 0; li < sl.size(); ++li)
      if (!(sl[li]->W0.value == tl[li]->W0.value))
        throw std::logic_error("nn-teacher: the student's frozen base differs from the teacher's");
    if (kind != AdapterKind::None) {
      nn::TrainerOptions o;
      o.schedule = tc.schedule;
      o.iterations = tc.iters;
      o.batch_size = tc.batch;
      o.loss = nn::LossKind::Mse;
      o.optimizer.shared.lr = tc.lr;
      o.optimizer.personal.lr = tc.personal_lr;
      o.eval_every = 0;
      o.num_threads = 1;
      o.seed = trial_seed;
      nn::Trainer<Model> trainer(student, data, o);
      const nn::TrainResult res = trainer.run();
      if (res.status == Status::NumericalIssue)
        std::fprintf(stderr, "nn-teacher: warning: %s stopped on a non-finite value at iteration %d\n",
                     to_string(kind), res.iterations);
    }
    MethodResult m;
    for (int i = 0; i < c.tasks; ++i) {
      const auto& d = data[std::size_t(i)];
      m.task_loss.push_back(nn::loss_value(nn::LossKind::Mse, student.predict(d.X_val, i), d.Y_val,
                                           static_cast<Matrix<double>*>(nullptr)));
    }
    std::vector<double> da, db;
    for (std::size_t li = 0; li < sl.size(); ++li) {
      const auto d = exp::adapter_distances(*sl[li], A_star[li], B_star[li]);
      da.push_back(d.first);
      db.push_back(d.second);
    }
    m.dist_a = exp::finite_mean(da);
    m.dist_b = exp::finite_mean(db);
    out.push_back(std::move(m));
  }
  return out;
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

double parse_value(const std::string& flag, const std::string& s, double lo, double hi, bool integer) {
  std::size_t used = 0;
  double v = 0;
  try {
    v = std::stod(s, &used);
  } catch (...) {
    used = 0;
  }
  if (used != s.size() || s.empty() || !(v >= lo && v <= hi) || (integer && v != std::floor(v)))
    throw cli::UsageError("flag --" + flag + ": '" + s + "' is not " + (integer ? "an integer" : "a number") +
                          " in [" + cli::Args::format(lo) + ", " + cli::Args::format(hi) + "]");
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
  c.tau = args.real("tau", 1.0, "core diversity tau (spec section 3)", 0, 1e6);
  c.kappa = args.real("kappa", 2.0, "condition number kappa of the planted cores", 1, 1e12);
  c.theta_a = args.real("theta-a", 0.0, "reference principal angle of A_i* to A* (radians, 0..pi/2)", 0, 1.5707963267948966);
  c.theta_b = args.real("theta-b", 0.0, "reference principal angle of B_i* to B* (radians, 0..pi/2)", 0, 1.5707963267948966);
  c.strength = args.real("strength", 1.0, "scale of the planted updates (largest singular value)", 0, 1e6);
  c.sigma = args.real("sigma", 0.1, "output noise standard deviation", 0, 1e6);
  c.tasks = int(args.integer("k", 8, "reference number of tasks (held fixed in the samples and theta sweeps)", 1, 100000));
  c.samples = Index(args.integer("n", 20, "reference samples per task (held fixed in the theta and tasks sweeps)", 1, 100000000));
  c.test_samples = Index(args.integer("test-samples", 200, "held-out test examples per task", 1, 100000000));
  const auto samples_list = sweep_list(args, "samples", "5,10,20,40,80", "samples per task to sweep");
  const auto theta_list = sweep_list(args, "theta", "0,0.1,0.3,0.6,1.2", "theta_a = theta_b values to sweep (radians)");
  const auto tasks_list = sweep_list(args, "tasks", "2,4,8,16,32", "numbers of tasks to sweep");
  TrainConfig tc;
  tc.iters = int(args.integer("iters", 300, "training iterations (the same budget for every method)", 0, 100000000));
  tc.lr = args.real("lr", 1e-2, "AdamW learning rate", 0, 1e3);
  const double plr = args.real("personal-lr", 0, "learning rate of the personal parameters of every method (0 = --lr)", 0, 1e3);
  tc.personal_lr = plr > 0 ? plr : tc.lr;
  tc.core = parse_core_kind(args.choice("core", "full", {"full", "diagonal"}, "colora: personal core S_i full r x r or diagonal"));
  tc.alpha = args.real("alpha", 0.0, "adapter scale alpha (update scaled by alpha/r; 0 means alpha = r)", 0, 1e6);
  tc.schedule = nn::parse_schedule(args.choice("schedule", "joint", {"joint", "alternating"}, "trainer schedule"));
  tc.batch = Index(args.integer("batch", 0, "minibatch size per task (0 = full batch)", 0, 100000000));
  const long trials = long(args.integer("trials", 3, "trials (independent teachers and data) per point", 1, 1000000));
  const auto seed = std::uint64_t(args.integer("seed", 1, "seed; trial t uses a seed derived from (seed, t)", 0));
  const int threads = int(args.integer("threads", 0, "threads over the runs (0 = all)", 0, 1024));
  std::vector<std::string> known;
  for (AdapterKind k : exp::all_adapter_kinds()) known.push_back(to_string(k));
  const auto methods = exp::parse_method_list(args.list("methods", "all", "adapter kinds to train (comma separated, or all)"), known);
  const std::string out_dir = args.str("out", "results/nn-teacher", "output directory");
  if (args.finish()) return 0;

  std::vector<AdapterKind> kinds;
  for (const auto& m : methods) kinds.push_back(parse_adapter_kind(m));
  if (c.transformer && c.d_model % c.heads != 0)
    throw cli::UsageError("--heads " + std::to_string(c.heads) + " does not divide --d-model " + std::to_string(c.d_model));
  const double half_pi = 1.5707963267948966;
  std::vector<Point> points;
  for (const auto& s : samples_list) {
    Point pt{"samples", parse_value("samples", s, 1, 1e8, true), c};
    pt.cfg.samples = Index(pt.value);
    points.push_back(pt);
  }
  for (const auto& s : theta_list) {
    Point pt{"theta", parse_value("theta", s, 0, half_pi, false), c};
    pt.cfg.theta_a = pt.cfg.theta_b = pt.value;
    points.push_back(pt);
  }
  for (const auto& s : tasks_list) {
    Point pt{"tasks", parse_value("tasks", s, 1, 1e5, true), c};
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

  const long np = long(points.size()), nm = long(kinds.size()), runs = np * trials;
  std::vector<std::vector<MethodResult>> results(static_cast<std::size_t>(runs));
  std::vector<std::string> errors(static_cast<std::size_t>(runs));
  std::fprintf(stderr, "nn-teacher: %s, %ld points x %ld trials x %ld methods\n", arch.c_str(), np, trials, nm);
  exp::Progress progress("nn-teacher", runs);
  const int nt = detail::resolve_threads(threads, runs);
  (void)nt;
  COLORA_OMP(parallel for num_threads(nt) schedule(dynamic, 1))
  for (long run = 0; run < runs; ++run) {
    const long pi = run / trials, t = run % trials;
    try {
      const std::uint64_t ts = exp::trial_seed(seed, t);
      results[std::size_t(run)] = c.transformer
                                      ? run_one<nn::TransformerModel<double>>(points[std::size_t(pi)].cfg, tc, kinds, ts)
                                      : run_one<nn::MlpModel<double>>(points[std::size_t(pi)].cfg, tc, kinds, ts);
    } catch (const std::exception& e) {
      errors[std::size_t(run)] = e.what();
    }
    progress.tick();
  }
  for (long run = 0; run < runs; ++run)
    if (!errors[std::size_t(run)].empty())
      throw std::runtime_error("run " + std::to_string(run) + " failed: " + errors[std::size_t(run)]);

  // summary[(pi * nm + m) * 3 + metric], task_sd[pi * nm + m]
  std::vector<exp::MeanInterval> summary(std::size_t(np * nm * 3));
  std::vector<double> task_sd(std::size_t(np * nm));
  io::CsvTable table({"sweep", "value", "method", "metric", "trials", "mean", "ci_low", "ci_high", "task_sd"});
  for (long pi = 0; pi < np; ++pi)
    for (long m = 0; m < nm; ++m) {
      std::vector<double> loss, da, db, sds;
      for (long t = 0; t < trials; ++t) {
        const MethodResult& r = results[std::size_t(pi * trials + t)][std::size_t(m)];
        loss.push_back(exp::finite_mean(r.task_loss));
        sds.push_back(exp::sample_sd(r.task_loss));
        da.push_back(r.dist_a);
        db.push_back(r.dist_b);
      }
      const std::vector<double>* vals[3] = {&loss, &da, &db};
      task_sd[std::size_t(pi * nm + m)] = exp::finite_mean(sds);
      for (int metric = 0; metric < 3; ++metric) {
        const exp::MeanInterval ci = exp::mean_interval(*vals[metric]);
        summary[std::size_t((pi * nm + m) * 3 + metric)] = ci;
        table.row() << points[std::size_t(pi)].sweep << points[std::size_t(pi)].value << methods[std::size_t(m)]
                    << kMetrics[metric] << ci.count << ci.mean << ci.low << ci.high
                    << (metric == 0 ? task_sd[std::size_t(pi * nm + m)] : std::numeric_limits<double>::quiet_NaN());
      }
    }
  table.write(out_dir + "/nn_teacher.csv");

  std::printf("colora nn-teacher: arch=%s p=%lld hidden=%lld q=%lld r=%lld tau=%g kappa=%g strength=%g sigma=%g "
              "(noise floor %.3g), reference k=%d n=%lld theta_a=%g theta_b=%g, iters=%d lr=%g, %ld trials, seed=%llu\n",
              arch.c_str(), (long long)c.p, (long long)c.hidden, (long long)c.q, (long long)c.rank, c.tau, c.kappa,
              c.strength, c.sigma, c.sigma * c.sigma, c.tasks, (long long)c.samples, c.theta_a, c.theta_b, tc.iters,
              tc.lr, trials, (unsigned long long)seed);
  std::printf("%-8s %7s %-12s %30s %9s %8s %8s\n", "sweep", "value", "method", "test_loss mean [95% CI]", "task_sd",
              "dist_A", "dist_B");
  for (long pi = 0; pi < np; ++pi)
    for (long m = 0; m < nm; ++m) {
      const auto& a = summary[std::size_t((pi * nm + m) * 3)];
      std::printf("%-8s %7g %-12s %10.4g [%8.4g,%8.4g] %9.3g %8.3f %8.3f\n", points[std::size_t(pi)].sweep.c_str(),
                  points[std::size_t(pi)].value, methods[std::size_t(m)].c_str(), a.mean, a.low, a.high,
                  task_sd[std::size_t(pi * nm + m)], summary[std::size_t((pi * nm + m) * 3 + 1)].mean,
                  summary[std::size_t((pi * nm + m) * 3 + 2)].mean);
    }

  // Plot: one column per sweep; top row test loss (log y), bottom row the
  // subspace distance (mean of dist_A and dist_B where defined).
  std::vector<std::string> sweeps;
  for (const auto& pt : points)
    if (std::find(sweeps.begin(), sweeps.end(), pt.sweep) == sweeps.end()) sweeps.push_back(pt.sweep);
  const int ns = int(sweeps.size());
  std::string script = "set multiplot layout 2," + std::to_string(ns) + " title 'colora nn-teacher (" + arch +
                       ", r=" + std::to_string(c.rank) + ", tau=" + cli::Args::format(c.tau) + ", reference k=" +
                       std::to_string(c.tasks) + ", n=" + std::to_string(c.samples) + ", theta=" +
                       cli::Args::format(c.theta_a) + "; " + std::to_string(trials) +
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
    const double d = exp::finite_mean({summary[std::size_t((pi * nm + m) * 3 + 1)].mean,
                                       summary[std::size_t((pi * nm + m) * 3 + 2)].mean});
    if (!std::isfinite(d)) return s;
    return io::CsvTable::number(points[std::size_t(pi)].value) + " " + io::CsvTable::number(d) + "\n";
  };
  for (int row = 0; row < 2; ++row)
    for (int si = 0; si < ns; ++si) {
      const std::string& sw = sweeps[std::size_t(si)];
      const std::string xl = sw == "samples" ? "samples per task" : sw == "theta" ? "theta_a = theta_b (rad)" : "tasks k";
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
                 (row == 0 ? " using 1:2:3:4 with yerrorlines" : " using 1:2 with linespoints") +
                 " lc " + std::to_string(m + 1) + " pt 7 ps 0.6 lw 2 title '" + methods[std::size_t(m)] + "'";
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
