// One CoLoRA iteration (B-step, A-step, S-step, objective) for each A-step
// solver at (k, n_i, p, q, r) = (100, 64, 256, 256, 8) and at 4x k n_i
// (k = 400), next to the GEMM reference in the same run.
//
// Time per solver iteration is measured between solver callbacks (manual
// timing, wall clock, every thread count): the solver runs 6 iterations from
// a random start and the last 5 are timed, so initialization is not
// included. The context block prints the load average at the start: the
// wall-clock rows mean something only on an otherwise idle machine.
//
// FLOP/s counts the dense products one iteration performs (per task, n = n_i);
// X_i A^T and R_i B are formed once each and shared (regression_model.hpp):
//   S-step    Z = X A^T (2npr), Z^T Z, Z^T P (4nr^2); P = R B from the A-step
//   B-step    Q = Z S^T (2nr^2), Q^T Q (2nr^2), Q^T R (2nrq)
//   A-step    rhs: P = R B (2nqr), X^T (P S) (2npr + 2nr^2); each operator
//             product X^T ((X G) C_i) (4npr + 2nr^2)
//   objective (Z S^T) B^T (2nr^2 + 2nrq)
// i.e. n r (4p + 6q + 4p c) + n r^2 (12 + 2c) with c = operator products per
// A-step; the exact A-step adds the dense system: k r(r+1)/2 p^2 for the
// assembly (2 flops each) and (pr)^3/3 for the Cholesky factorization.
#include <map>

#include <colora/regression/generator.hpp>
#include <colora/regression/solver.hpp>

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
    stamps.push_back(rec.seconds);
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
  const double per_task = n * r * (4 * p + 6 * q + 4 * p * c) + n * r * r * (12 + 2 * c);
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

// Where an iteration's time goes: each step of the kernel (altmin.hpp) alone,
// at the same size, from the spectral start with fitted cores. Each step pays
// for the shared products it forms inside an iteration and reuses the others
// as the solver does (regression_model.hpp): the S-step forms X_i A^T (A
// alternates between A and -A so it is never cached), the A-step setup forms
// R_i B (B alternates likewise), the B-step and the objective reuse X_i A^T.
enum KernelStep { kSStep, kBStep, kASystem, kAProduct, kAStepCg, kObjective, kMetrics };
const char* const kStepNames[] = {"S-step (fit_cores)",      "B-step (b_step + regauge_b)", "A-step setup (rhs, C_i)",
                                  "A-step operator product", "A-step cg (setup + solve)",   "objective",
                                  "recovery metrics"};

void BM_KernelStep(benchmark::State& state) {
  namespace altmin = colora::altmin;
  using Mat = colora::Matrix<double>;
  const auto step = static_cast<KernelStep>(state.range(0));
  const int threads = int(state.range(1));
  const auto& pb = problem(100);
  const colora::RegressionModel<double> model(pb, threads);
  Mat A, B;
  altmin::initialize(model, colora::InitKind::Spectral, 8, 1, A, B);
  const auto w = altmin::task_weights(model, colora::TaskWeighting::PerSample);
  const auto ridge = altmin::core_ridges(w, 0.0);
  std::vector<Mat> S;
  altmin::fit_cores(model, A, B, ridge, colora::CoreKind::Full, S);
  const auto sys = model.a_system(B, S, w);
  const Mat G0 = A.transpose();
  const Mat A_flip = -A, B_flip = -B;
  bool flip = false;
  for (auto _ : state) {
    flip = !flip;
    switch (step) {
      case kSStep: {
        std::vector<Mat> S2;
        altmin::fit_cores(model, flip ? A_flip : A, B, ridge, colora::CoreKind::Full, S2);
        benchmark::DoNotOptimize(S2.data());
        break;
      }
      case kBStep: {
        Mat Bn, B2;
        std::vector<Mat> S2 = S;
        altmin::b_step(model, A, S2, w, Bn);
        altmin::regauge_b(Bn, colora::CoreKind::Full, B2, S2);
        benchmark::DoNotOptimize(B2.data());
        break;
      }
      case kASystem: {
        const auto sys2 = model.a_system(flip ? B_flip : B, S, w);
        benchmark::DoNotOptimize(sys2.rhs().data());
        break;
      }
      case kAProduct: {
        const Mat H = sys.apply(G0);
        benchmark::DoNotOptimize(H.data());
        break;
      }
      case kAStepCg: {
        Mat G = G0;
        altmin::a_step(model, flip ? B_flip : B, S, w, altmin::AStepControl{}, G);
        benchmark::DoNotOptimize(G.data());
        break;
      }
      case kObjective:  // X_i A^T is cached after the first call, as after an S-step
        benchmark::DoNotOptimize(altmin::objective(model, A, B, S, w, 0.0));
        break;
      case kMetrics: {
        const auto m = colora::recovery_metrics(*pb.truth, A, B, S, threads);
        benchmark::DoNotOptimize(m.dist_a);
        break;
      }
    }
  }
  state.SetLabel(std::string(kStepNames[step]) + " threads=" + std::to_string(threads));
}

}  // namespace

BENCHMARK_TEMPLATE(BM_EigenGemm, double)->Arg(1024)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ColoraIteration)
    ->ArgsProduct({{int(colora::AStepSolver::Exact), int(colora::AStepSolver::Cg), int(colora::AStepSolver::Gd)},
                   {100, 400},
                   {1, 2}})
    ->UseManualTime()
    ->Iterations(3)
    ->Unit(benchmark::kMillisecond);

BENCHMARK(BM_KernelStep)
    ->ArgsProduct({{kSStep, kBStep, kASystem, kAProduct, kAStepCg, kObjective, kMetrics}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
