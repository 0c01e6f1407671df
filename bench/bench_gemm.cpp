// The machine's reference rate: Eigen GEMM, C = A B with n x n operands.
// Every other performance figure of the project is quoted as a fraction of
// this rate, measured in the same run (see docs/performance.md).
#include <benchmark/benchmark.h>

#include <colora/colora.hpp>

template <class Scalar>
static void BM_EigenGemm(benchmark::State& state) {
  const colora::Index n = state.range(0);
  colora::Rng rng(1);
  const colora::Matrix<Scalar> A = rng.normal_matrix<Scalar>(n, n);
  const colora::Matrix<Scalar> B = rng.normal_matrix<Scalar>(n, n);
  colora::Matrix<Scalar> C(n, n);
  for (auto _ : state) {
    C.noalias() = A * B;
    benchmark::DoNotOptimize(C.data());
    benchmark::ClobberMemory();
  }
  const double flops = 2.0 * double(n) * double(n) * double(n);
  state.counters["FLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK_TEMPLATE(BM_EigenGemm, double)->Arg(1024)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_EigenGemm, float)->Arg(1024)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
