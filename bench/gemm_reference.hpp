// The machine's reference rate, registered in every benchmark program so that
// each performance figure is a ratio measured side by side in one run:
// Eigen GEMM C = A B with n x n operands, single-threaded (colora's CMake
// target defines EIGEN_DONT_PARALLELIZE).
#pragma once

#include <benchmark/benchmark.h>

#include <colora/core/random.hpp>

// Every benchmark program prints, in its context block and JSON "context",
// the SIMD instruction sets Eigen uses in this build next to the reference.
inline const bool colora_simd_context_registered = [] {
  benchmark::AddCustomContext("eigen_simd", colora::simd_instruction_sets());
  return true;
}();

template <class Scalar>
void BM_EigenGemm(benchmark::State& state) {
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
