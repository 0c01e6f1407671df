// Theory diagnostics: the GRIP estimator on a (M1) Gaussian design at the
// size of issue 5, (k, n_i, p, q, r) = (100, 64, 256, 256, 8), default
// options; and the exact (M1) closed form on the same design for comparison.
// Figures are recorded in docs/performance.md ("Theory diagnostics").
#include <benchmark/benchmark.h>

#include <colora/colora.hpp>

namespace {

template <class Scalar>
colora::RegressionProblem<Scalar> gaussian_design(colora::Index k, colora::Index n, colora::Index p, colora::Index q) {
  colora::Rng rng(20261129, 5);
  colora::RegressionProblem<Scalar> pb;
  pb.tasks.resize(size_t(k));
  for (auto& t : pb.tasks) {
    t.X = rng.normal_matrix<Scalar>(n, p);
    t.Y = colora::Matrix<Scalar>::Zero(n, q);
  }
  return pb;
}

template <class Scalar>
void BM_GripEstimateM1(benchmark::State& state) {
  const auto pb = gaussian_design<Scalar>(100, 64, 256, 256);
  colora::GripOptions opt;
  opt.rank = 8;
  opt.num_threads = int(state.range(0));
  colora::GripResult<Scalar> res;
  for (auto _ : state) {
    res = colora::grip_estimate(pb, opt);
    benchmark::DoNotOptimize(res.delta_hat);
  }
  state.counters["delta_hat"] = res.delta_hat;
  state.counters["lambda_max"] = res.lambda_max;
  state.counters["lambda_min"] = res.lambda_min;
  state.counters["iterations"] = res.iterations;
  state.counters["op_applications"] = double(res.operator_applications);
  state.counters["predicted_delta95"] = colora::predict_grip_delta(pb, opt.rank, 0.95).delta;
}
BENCHMARK_TEMPLATE(BM_GripEstimateM1, double)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_TEMPLATE(BM_GripEstimateM1, float)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

template <class Scalar>
void BM_GripExactM1(benchmark::State& state) {
  const auto pb = gaussian_design<Scalar>(100, 64, 256, 256);
  colora::GripExact ex;
  for (auto _ : state) {
    ex = colora::regression_grip_exact(pb, int(state.range(0)));
    benchmark::DoNotOptimize(ex.delta);
  }
  state.counters["delta"] = ex.delta;
  state.counters["lambda_max"] = ex.lambda_max;
}
BENCHMARK_TEMPLATE(BM_GripExactM1, double)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

// (M2) matrix sensing, Gaussian M_ij: (k, m_i, p, q, r) = (10, m, 16, 16, 2).
void BM_GripEstimateM2(benchmark::State& state) {
  const colora::Index k = 10, m = state.range(0), p = 16, q = 16;
  colora::Rng rng(20261129, 6);
  colora::SensingProblem<double> pb;
  pb.p = p;
  pb.q = q;
  pb.tasks.resize(size_t(k));
  for (auto& t : pb.tasks) {
    t.M = rng.normal_matrix<double>(m, p * q);
    t.y = colora::Vector<double>::Zero(m);
  }
  colora::GripOptions opt;
  opt.rank = 2;
  opt.num_threads = 1;
  colora::GripResult<double> res;
  for (auto _ : state) {
    res = colora::grip_estimate(pb, opt);
    benchmark::DoNotOptimize(res.delta_hat);
  }
  state.counters["delta_hat"] = res.delta_hat;
  state.counters["sampled_dev"] = res.sampled_deviation;
  state.counters["predicted_delta95"] = colora::predict_grip_delta(pb, opt.rank, 0.95).delta;
}
BENCHMARK(BM_GripEstimateM2)->Arg(500)->Arg(2000)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
