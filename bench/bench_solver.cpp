// One CoLoRA iteration (B-step, A-step, S-step, objective) for each A-step
// solver at (k, n_i, p, q, r) = (100, 64, 256, 256, 8) and at 4x k n_i
// (k = 400), next to the GEMM reference in the same run.
//
// Time per solver iteration is measured between solver callbacks (manual
// timing): the solver runs 6 iterations from a random start and the last 5
// are timed, so initialization is not included. Single-thread rows use the
// process CPU time (robust on a shared machine, comparable with the GEMM
// row's CPU time); two-thread rows use wall time.
//
// FLOP/s counts the dense products one iteration performs (per task, n = n_i):
//   S-step    Z = X A^T (2npr), P = R B (2nqr), Z^T Z, Z^T P (4nr^2)
//   B-step    Z S^T (2npr + 2nr^2), Q^T Q (2nr^2), Q^T R (2nrq)
//   A-step    rhs: R B (2nqr), X^T (P S) (2npr + 2nr^2); each operator product 4npr
//   objective X A^T (2npr), S^T, B^T (2nr^2 + 2nrq)
// i.e. n r (8p + 8q + 4p c) + O(n r^2) with c = operator products per A-step;
// the exact A-step adds the dense system: k r(r+1)/2 p^2 for the assembly
// (2 flops each) and (pr)^3/3 for the Cholesky factorization.
#include <map>

#include <colora/regression/generator.hpp>
#include <colora/regression/solver.hpp>

#include <time.h>

#include "gemm_reference.hpp"

namespace {

struct Sizes {
  colora::Index k, n, p, q, r;
};

const colora::RegressionProblem<double>& problem(colora::Index k) {
  static std::map<colora::Index, colora::RegressionProblem<double>> cache;
  auto it = cache.find(k);
  if (it == cache.end()) {
    colora::GeneratorOptions g;
    g.tasks = k;
    g.p = 256;
    g.q = 256;
    g.rank = 8;
    g.samples = {64};
    g.test_samples = 0;
    g.sigma = 0.1;
    g.seed = 7;
    it = cache.emplace(k, colora::generate_regression<double>(g)).first;
  }
  return it->second;
}

void BM_ColoraIteration(benchmark::State& state) {
  const auto a_step = static_cast<colora::AStepSolver>(state.range(0));
  const colora::Index k = state.range(1);
  const int threads = int(state.range(2));
  const auto& pb = problem(k);
  colora::SolverOptions o;
  o.rank = 8;
  o.a_step = a_step;
  o.init = colora::InitKind::Random;
  o.seed = 3;
  o.max_iterations = 6;
  o.tolerance = 0;
  o.track_truth = false;
  o.num_threads = threads;
  std::vector<double> stamps;
  o.callback = [&](const colora::IterationRecord& rec) {
    if (threads == 1) {
      timespec ts;
      clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
      stamps.push_back(double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec));
    } else {
      stamps.push_back(rec.seconds);
    }
    return true;
  };
  colora::Solver<double> solver(o);
  double products = 0;
  long timed = 0;
  for (auto _ : state) {
    stamps.clear();
    solver.compute(pb);
    const auto& h = solver.history();
    state.SetIterationTime((stamps[6] - stamps[1]) / 5.0);
    for (int t = 2; t <= 6; ++t) products += h[size_t(t)].a_step_products;
    timed += 5;
  }
  const double c = products / double(timed);
  const double n = 64, p = 256, q = 256, r = 8;
  const double per_task = n * r * (8 * p + 8 * q + 4 * p * c) + 14 * n * r * r;
  double total = per_task * double(k);
  if (a_step == colora::AStepSolver::Exact) {
    // Dense pr x pr system: r(r+1)/2 blocks of k p x p axpys, then Cholesky and two solves.
    const double pr = p * r;
    total += r * (r + 1) / 2 * double(k) * p * p * 2 + pr * pr * pr / 3 + 2 * pr * pr;
  }
  state.counters["FLOP/s"] = benchmark::Counter(total, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["products"] = c;
  state.SetLabel(std::string(colora::to_string(a_step)) + " k=" + std::to_string(k) +
                 " threads=" + std::to_string(threads));
}

}  // namespace

BENCHMARK_TEMPLATE(BM_EigenGemm, double)->Arg(1024)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ColoraIteration)
    ->ArgsProduct({{int(colora::AStepSolver::Exact), int(colora::AStepSolver::Cg), int(colora::AStepSolver::Gd)},
                   {100, 400},
                   {1, 2}})
    ->UseManualTime()
    ->Iterations(3)
    ->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
