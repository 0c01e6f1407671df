// Baselines side by side: one iteration of fedrep (AltMin, cg A-step), of
// fedrep-gd and of the CoLoRA solver at the size of issue 4/5,
// (k, n_i, p, q, r) = (100, 64, 256, 256, 8), default options; and the
// machine's reference rate, Eigen GEMM 1024, in the same binary. Figures in
// docs/performance.md ("Baselines").
//
// BM_Iteration times the iterations themselves (manual time): each benchmark
// iteration runs a fit of kRounds rounds and reports (history.back().seconds -
// history.front().seconds) / kRounds, i.e. the wall time of one round after
// initialization, read from the solvers' own per-iteration clock (the same for
// every method). BM_Fit times whole fits (initialization included).
#include <benchmark/benchmark.h>

#include "gemm_reference.hpp"

#include <colora/colora.hpp>

namespace {

template <class Scalar>
const colora::RegressionProblem<Scalar>& problem() {
  static const colora::RegressionProblem<Scalar> pb = [] {
    colora::GeneratorOptions g;
    g.tasks = 100;
    g.samples = {64};
    g.p = 256;
    g.q = 256;
    g.rank = 8;
    g.test_samples = 0;  // time the fit only
    g.sigma = 0.1;
    g.seed = 20261129;
    return colora::generate_regression<Scalar>(g);
  }();
  return pb;
}

colora::BaselineOptions options(int iterations, int threads) {
  colora::BaselineOptions o;
  o.rank = 8;
  o.max_iterations = iterations;
  o.tolerance = 0;
  o.num_threads = threads;
  o.track_truth = false;
  return o;
}

template <class Scalar>
void BM_Method(benchmark::State& state, const char* method) {
  const auto& pb = problem<Scalar>();
  const auto o = options(int(state.range(0)), int(state.range(1)));
  for (auto _ : state) {
    auto res = colora::fit_baseline(method, pb, o);
    benchmark::DoNotOptimize(res.estimate.U.data());
  }
}

constexpr int kRounds = 3;

/// One round (iteration) of `method`, initialization excluded. Args: {threads}.
template <class Scalar>
void BM_Iteration(benchmark::State& state, const char* method) {
  const auto& pb = problem<Scalar>();
  const auto o = options(kRounds, int(state.range(0)));
  for (auto _ : state) {
    auto res = colora::fit_baseline(method, pb, o);
    if (res.history.size() != size_t(kRounds + 1)) {
      state.SkipWithError("the fit stopped before kRounds rounds");
      break;
    }
    state.SetIterationTime((res.history.back().seconds - res.history.front().seconds) / kRounds);
    benchmark::DoNotOptimize(res.estimate.U.data());
  }
}

void BM_ColoraIteration(benchmark::State& s) { BM_Iteration<double>(s, "colora"); }
void BM_FedrepIteration(benchmark::State& s) { BM_Iteration<double>(s, "fedrep"); }
void BM_FedrepGdIteration(benchmark::State& s) { BM_Iteration<double>(s, "fedrep-gd"); }
void BM_ColoraIterationFloat(benchmark::State& s) { BM_Iteration<float>(s, "colora"); }
void BM_FedrepIterationFloat(benchmark::State& s) { BM_Iteration<float>(s, "fedrep"); }

// Args: {threads}
BENCHMARK(BM_ColoraIteration)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseManualTime();
BENCHMARK(BM_FedrepIteration)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseManualTime();
BENCHMARK(BM_FedrepGdIteration)->Arg(1)->Unit(benchmark::kMillisecond)->UseManualTime();
BENCHMARK(BM_ColoraIterationFloat)->Arg(1)->Unit(benchmark::kMillisecond)->UseManualTime();
BENCHMARK(BM_FedrepIterationFloat)->Arg(1)->Unit(benchmark::kMillisecond)->UseManualTime();

void BM_Colora(benchmark::State& s) { BM_Method<double>(s, "colora"); }
void BM_Fedrep(benchmark::State& s) { BM_Method<double>(s, "fedrep"); }
void BM_FedrepGd(benchmark::State& s) { BM_Method<double>(s, "fedrep-gd"); }
void BM_ColoraFloat(benchmark::State& s) { BM_Method<float>(s, "colora"); }
void BM_FedrepFloat(benchmark::State& s) { BM_Method<float>(s, "fedrep"); }

// Args: {max_iterations, threads}
BENCHMARK(BM_Colora)
    ->Args({0, 1})
    ->Args({1, 1})
    ->Args({0, 2})
    ->Args({1, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_Fedrep)
    ->Args({0, 1})
    ->Args({1, 1})
    ->Args({0, 2})
    ->Args({1, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_FedrepGd)->Args({0, 1})->Args({1, 1})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ColoraFloat)->Args({0, 1})->Args({1, 1})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_FedrepFloat)->Args({0, 1})->Args({1, 1})->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_TEMPLATE(BM_EigenGemm, double)->Arg(1024)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_EigenGemm, float)->Arg(1024)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
