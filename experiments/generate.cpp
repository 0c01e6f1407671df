// colora generate: a planted problem written as a data directory, for trying
// colora fit / predict / adapt on data whose truth is known.
//
//   colora generate --out data/planted --tasks 100 --rank 4 --new-tasks 20
//
// Writes OUT/X_<i>.npy, Y_<i>.npy, X_test_<i>.npy, Y_test_<i>.npy (and W0.npy
// with --random-base): the layout colora fit reads; OUT/truth/A.npy (A*,
// r x p), OUT/truth/B.npy (B*, q x r), OUT/truth/S_<i>.npy (S_i*) and
// OUT/truth/rank.txt. With --new-tasks m the problem has k + m tasks drawn from
// the same shared truth, and the last m go to --new-out (default OUT_new), in
// the same layout (their truth in OUT_new/truth): new tasks for colora adapt.
#include <cstdio>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <colora/io/atomic_file.hpp>

#include "commands.hpp"
#include "methods.hpp"
#include <colora/io/task_directory.hpp>

namespace colora {
namespace cmd {

namespace {

void write_part(const std::string& dir, const RegressionProblem<double>& full, Index first, Index count) {
  RegressionProblem<double> part;
  part.W0 = full.W0;
  std::vector<std::pair<std::string, Matrix<double>>> truth;
  const auto& t = *full.truth;
  truth.push_back({"A", t.A_shared});
  truth.push_back({"B", t.B_shared});
  for (Index i = 0; i < count; ++i) {
    part.tasks.push_back(full.tasks[size_t(first + i)]);
    truth.push_back({io::indexed_name("S", i), t.S[size_t(first + i)]});
  }
  io::save_regression_directory(dir, part);
  io::save_matrices(dir + "/truth", truth);
  io::write_text_atomically(dir + "/truth/rank.txt", std::to_string(t.rank()) + "\n");
}

}  // namespace

int generate(cli::Args& args) {
  GeneratorOptions g = exp::read_generator_flags(args, exp::reference_problem());
  g.seed = std::uint64_t(args.integer("seed", 1, "seed of the problem", 0));
  g.num_threads = int(args.integer("threads", 0, "threads (0 = all)", 0, 1024));
  const Index new_tasks =
      Index(args.integer("new-tasks", 0, "extra tasks from the same shared truth, written to --new-out", 0, 1000000));
  const std::string out_dir = args.str("out", "", "output data directory (required)");
  std::string new_out = args.str("new-out", "", "directory of the --new-tasks (default: OUT_new)");
  if (args.finish()) return 0;
  if (out_dir.empty()) throw cli::UsageError("--out DIR is required");
  if (new_out.empty()) new_out = out_dir + "_new";
  GeneratorOptions all = g;
  all.tasks = g.tasks + new_tasks;
  all.samples.clear();
  for (Index i = 0; i < all.tasks; ++i) all.samples.push_back(g.samples_of(i < g.tasks ? i : g.tasks - 1));
  all.validate();
  exp::check_memory(all);
  const RegressionProblem<double> pb = generate_regression<double>(all);
  write_part(out_dir, pb, 0, g.tasks);
  if (new_tasks > 0) write_part(new_out, pb, g.tasks, new_tasks);
  std::printf("colora generate: k=%lld tasks (+%lld new) p=%lld q=%lld r=%lld n_i=%lld sigma=%g seed=%llu\n",
              (long long)g.tasks, (long long)new_tasks, (long long)g.p, (long long)g.q, (long long)g.rank,
              (long long)g.samples_of(0), g.sigma, (unsigned long long)g.seed);
  std::printf("wrote %s (X_<i>.npy, Y_<i>.npy, X_test_<i>.npy, Y_test_<i>.npy, truth/)%s\n", out_dir.c_str(),
              new_tasks > 0 ? (", " + new_out).c_str() : "");
  return 0;
}

}  // namespace cmd
}  // namespace colora
