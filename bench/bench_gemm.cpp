// The machine's reference rate: Eigen GEMM, double and float, n = 1024.
#include "gemm_reference.hpp"

BENCHMARK_TEMPLATE(BM_EigenGemm, double)->Arg(1024)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_EigenGemm, float)->Arg(1024)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
