// colora adapt: how well does a fitted shared part serve NEW tasks that
// bring only a few samples? (issue 4)
//
// One planted problem with k + trials * new_tasks tasks is generated from the
// seed (same shared truth A*, B*, s_bar; every task its own streams). The
// first k tasks are the training tasks; the rest are held out as new tasks,
// each with max(--new-samples) training rows (the first n rows are used for
// n_new = n, so the curves are nested) and its own held-out test set.
//
//   colora : shared A, B fitted on the k tasks; new core S by colora::adapt_core
//   fedrep : shared A fitted on the k tasks (fit_fedrep); new head H by ridge regression
//   local  : W fitted from the new task's n samples alone (ridge regression)
// Every new-task fit uses the relative ridge --ridge (exp::relative_ridge;
// docs/baselines.md, "The new tasks' ridge").
//   global : the pooled W of the k tasks, used as is (nothing to adapt)
//
// Output: DIR/adapt.csv (method,n_new,trial_count,mean_test_mse,ci_low,ci_high;
// Student-t 95% interval over the new tasks of all trials) and DIR/adapt.png.
#include <algorithm>
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

int adapt(cli::Args& args) {
  if (args.given("model")) return adapt_model(args);  // the user's own new tasks (adapt_model.cpp)
  GeneratorOptions g = exp::read_generator_flags(args, exp::reference_problem());
  const Index new_tasks = Index(args.integer("new-tasks", 50, "new (held-out) tasks per trial", 1, 1000000));
  const Index trials = Index(args.integer("trials", 1, "trials: independent sets of new tasks", 1, 100000));
  const auto new_samples_ll = args.integers("new-samples", "1,2,4,6,8,12,16,24,32,64,128",
                                            "samples of a new task (comma separated list)", 1, 100000000);
  const auto method_names = args.list("methods", "colora,fedrep,local,global",
                                      "methods (subset of colora,fedrep,local,global)");
  SolverOptions sopts = exp::read_solver_flags(args, g.rank);
  BaselineOptions opts = exp::read_baseline_flags(args, sopts);
  g.seed = std::uint64_t(args.integer("seed", 1, "seed of the problem and of random initialization", 0));
  opts.seed = g.seed;
  opts.num_threads = int(args.integer("threads", 0, "threads (0 = all)", 0, 1024));
  g.num_threads = opts.num_threads;
  const double ridge = args.real("ridge", 1e-2,
                                 "ridge of the new tasks' fits, relative to the mean eigenvalue of their Gram "
                                 "matrix (X A^T for colora and fedrep, X for local; 0 = least squares)",
                                 0, 1e12);
  const std::string out_dir = args.str("out", "results/adapt", "output directory");
  if (args.finish()) return 0;

  const std::vector<std::string> allowed = {"colora", "fedrep", "local", "global"};
  std::vector<std::string> methods;
  for (const auto& m : method_names) {
    if (std::find(allowed.begin(), allowed.end(), m) == allowed.end())
      throw cli::UsageError("flag --methods: '" + m + "' is not one of colora,fedrep,local,global");
    if (std::find(methods.begin(), methods.end(), m) == methods.end()) methods.push_back(m);
  }
  if (methods.empty()) throw cli::UsageError("flag --methods needs at least one method");
  std::vector<Index> new_samples(new_samples_ll.begin(), new_samples_ll.end());
  std::sort(new_samples.begin(), new_samples.end());
  new_samples.erase(std::unique(new_samples.begin(), new_samples.end()), new_samples.end());
  if (g.test_samples < 1) throw cli::UsageError("flag --test-samples must be >= 1 for adapt (test MSE of new tasks)");
  g.validate();
  methods = exp::methods_for_rank(methods, methods, g.p, g.q, opts.rank, "adapt");
  opts.validate();

  const Index k = g.tasks, n_max = new_samples.back(), units = trials * new_tasks;
  GeneratorOptions all = g;
  all.tasks = k + units;
  all.samples.clear();
  for (Index i = 0; i < k; ++i) all.samples.push_back(g.samples_of(i));
  for (Index j = 0; j < units; ++j) all.samples.push_back(n_max);
  exp::check_memory(all, 1, opts.a_step == AStepSolver::Exact);
  std::fprintf(stderr, "adapt: generating %lld training + %lld new tasks (p=%lld q=%lld r=%lld) ...\n", (long long)k,
               (long long)units, (long long)g.p, (long long)g.q, (long long)g.rank);
  const RegressionProblem<double> full = generate_regression<double>(all);
  RegressionProblem<double> train;
  train.W0 = full.W0;
  for (Index i = 0; i < k; ++i) train.tasks.push_back(full.tasks[size_t(i)]);

  auto has = [&](const char* m) { return std::find(methods.begin(), methods.end(), m) != methods.end(); };
  Matrix<double> A_col, B_col, A_rep, W_glob;
  // The shared parts, fitted on the k training tasks by the same runner as
  // every other subcommand (methods.cpp).
  auto shared_fit = [&](const char* m) {
    std::fprintf(stderr, "adapt: fitting %s on %lld tasks ...\n", m, (long long)k);
    exp::MethodOutcome f = exp::run_method(m, train, opts);
    std::fprintf(stderr, "adapt:   %s (%s) after %d iterations\n", to_string(f.status), to_string(f.stop_reason),
                 f.iterations);
    return f;
  };
  if (has("colora")) {
    const auto f = shared_fit("colora");
    A_col = f.estimate.A;
    B_col = f.estimate.B;
  }
  if (has("fedrep")) A_rep = shared_fit("fedrep").estimate.A;
  if (has("global")) W_glob = shared_fit("global").estimate.shared.at(0).value;

  // mse[m][s][unit]
  const size_t nm = methods.size(), ns = new_samples.size();
  std::vector<std::vector<std::vector<double>>> mse(nm, std::vector<std::vector<double>>(ns, std::vector<double>(
                                                                                                 size_t(units))));
  std::fprintf(stderr, "adapt: adapting %lld new tasks at %zu sample sizes ...\n", (long long)units, ns);
  detail::parallel_for_tasks(units, opts.num_threads, [&](Index j) {
    const auto& t = full.tasks[size_t(k + j)];
    const double test_count = double(t.X_test.rows() * t.Y_test.cols());
    Matrix<double> base_test = Matrix<double>::Zero(t.X_test.rows(), t.Y_test.cols());
    if (full.W0.size()) base_test = t.X_test * full.W0.transpose();
    for (size_t s = 0; s < ns; ++s) {
      const Index n = new_samples[s];
      const Matrix<double> X = t.X.topRows(n), Y = t.Y.topRows(n);
      Matrix<double> R = Y;
      if (full.W0.size()) R.noalias() -= X * full.W0.transpose();
      for (size_t m = 0; m < nm; ++m) {
        Matrix<double> pred;
        if (methods[m] == "colora") {
          const double lambda = exp::relative_ridge(Matrix<double>(X * A_col.transpose()), ridge);
          const Matrix<double> S = adapt_core(A_col, B_col, full.W0, X, Y, lambda, opts.core);
          pred = ((t.X_test * A_col.transpose()) * S.transpose()) * B_col.transpose();
        } else if (methods[m] == "fedrep") {
          Matrix<double> Ht;  // r x q
          const Matrix<double> Z = X * A_rep.transpose();
          detail::ridge_least_squares<double>(Z, R, exp::relative_ridge(Z, ridge), Ht);
          pred = (t.X_test * A_rep.transpose()) * Ht;
        } else if (methods[m] == "local") {
          Matrix<double> Wt;  // p x q
          detail::ridge_least_squares<double>(X, R, exp::relative_ridge(X, ridge), Wt);
          pred = t.X_test * Wt;
        } else {
          pred = t.X_test * W_glob.transpose();
        }
        mse[m][s][size_t(j)] = (t.Y_test - base_test - pred).squaredNorm() / test_count;
      }
    }
  });

  std::filesystem::create_directories(out_dir);
  io::CsvTable table({"method", "n_new", "trial_count", "mean_test_mse", "ci_low", "ci_high"});
  std::printf(
      "colora adapt: k=%lld p=%lld q=%lld r=%lld n_i=%lld sigma=%g tau=%g theta_a=%g theta_b=%g, %lld new "
      "tasks x %lld trials, seed=%llu\n",
      (long long)k, (long long)g.p, (long long)g.q, (long long)g.rank, (long long)g.samples_of(0), g.sigma, g.tau,
      g.theta_a, g.theta_b, (long long)new_tasks, (long long)trials, (unsigned long long)g.seed);
  std::printf("%-8s %6s %6s %14s %14s %14s\n", "method", "n_new", "count", "mean_test_mse", "ci_low", "ci_high");
  for (size_t m = 0; m < nm; ++m)
    for (size_t s = 0; s < ns; ++s) {
      const exp::MeanInterval ci = exp::mean_interval(mse[m][s]);
      table.row() << methods[m] << (long long)new_samples[s] << (long long)ci.count << ci.mean << ci.low << ci.high;
      std::printf("%-8s %6lld %6ld %14.6g %14.6g %14.6g\n", methods[m].c_str(), (long long)new_samples[s], ci.count,
                  ci.mean, ci.low, ci.high);
    }
  table.write(out_dir + "/adapt.csv");

  std::string script =
      "set datafile separator ','\nset logscale y\nset logscale x 2\nset format y '10^{%L}'\nset grid\n"
      "set key top right\nset xlabel 'samples of the new task n_{new}'\nset ylabel 'test MSE of the new task (95% "
      "CI)'\n"
      "set title 'colora adapt: k=" +
      std::to_string(k) + " training tasks, p=" + std::to_string(g.p) + ", q=" + std::to_string(g.q) +
      ", r=" + std::to_string(g.rank) + ", sigma=" + cli::Args::format(g.sigma) + ", " + std::to_string(units) +
      " new tasks'\n";
  std::string plot_cmd = "plot ";
  for (size_t m = 0; m < nm; ++m) {
    const std::string sel = "(strcol(1) eq '" + methods[m] + "' ? $4 : 1/0)";
    plot_cmd += std::string(m ? ", " : "") + plot::quote_path(out_dir + "/adapt.csv") + " using 2:" + sel +
                ":5:6 every ::1 with yerrorlines pt 7 ps 0.6 lw 2 title '" + methods[m] + "'";
  }
  plot::render_png(out_dir + "/adapt.png", script + plot_cmd + "\n");
  std::printf("wrote %s/adapt.csv, %s/adapt.png\n", out_dir.c_str(), out_dir.c_str());
  return 0;
}

}  // namespace cmd
}  // namespace colora
