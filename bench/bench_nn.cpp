// Training-step throughput of colora::nn with CoLoRA adapters, k = 8 tasks:
// forward + backward + AdamW update of an MLP (width 256, batch 64 per task)
// and of a transformer block model (d_model 128, 4 heads, T = 32, batch 16
// per task), next to the Eigen GEMM 1024 reference rate measured in the same
// run (docs/performance.md, section Networks).
//
// FLOP/s counts the dense matrix products actually performed (base and
// adapter products, attention scores and mixing, forward and backward);
// element-wise work (activations, LayerNorm, softmax, optimizer) is not counted.
#include <benchmark/benchmark.h>

#include "gemm_reference.hpp"

#include <colora/nn/nn.hpp>

namespace nn = colora::nn;
using colora::Index;

namespace {

constexpr int kTasks = 8;
constexpr Index kRank = 8;

/// Flops of one Linear (n rows, p -> q) with an adapter of rank r (0 = none),
/// forward and backward (joint schedule: every gradient is computed).
double linear_flops(double n, double p, double q, double r, bool core, bool need_dx) {
  double f = 2 * n * p * q;         // X W0^T
  if (need_dx) f += 2 * n * q * p;  // dY W0
  if (r > 0) {
    f += 2 * n * p * r + 2 * n * r * q;  // u = X A^T, (v) B^T
    f += 2 * n * q * r + 2 * n * q * r;  // gB = dY^T v, dv = dY B
    f += 2 * n * r * p;                  // gA = du^T X
    if (core) f += 2 * n * r * r * 3;    // v = u S^T, gS = dv^T u, du = dv S
    if (need_dx) f += 2 * n * r * p;     // du A
  }
  return f;
}

template <class S>
std::vector<nn::TaskData<S>> random_data(Index examples, Index rows_per_example, Index in, Index out) {
  colora::Rng rng(7);
  std::vector<nn::TaskData<S>> d(kTasks);
  for (auto& t : d) {
    t.X = rng.normal_matrix<S>(examples * rows_per_example, in);
    t.Y = rng.normal_matrix<S>(examples, out);
  }
  return d;
}

nn::TrainerOptions step_options(Index batch, int threads) {
  nn::TrainerOptions o;
  o.batch_size = batch;
  o.num_threads = threads;
  o.max_iterations = 1 << 30;
  o.optimizer.shared.lr = o.optimizer.personal.lr = 1e-4;
  return o;
}

template <class S>
void BM_MlpStep(benchmark::State& state) {
  const Index width = 256, batch = 64;
  const int threads = int(state.range(0));
  nn::MlpSpec spec;
  spec.in = width;
  spec.hidden = {width, width};
  spec.out = width;
  spec.num_tasks = kTasks;
  spec.adapter = nn::AdapterSpec{colora::AdapterKind::Colora, kRank};
  nn::MlpModel<S> model(spec);
  nn::Trainer<nn::MlpModel<S>> tr(model, random_data<S>(4 * batch, 1, width, width), step_options(batch, threads));
  for (auto _ : state) {
    if (!tr.step()) state.SkipWithError("non-finite step");
    benchmark::ClobberMemory();
  }
  double flops = 0;
  for (int l = 0; l < 3; ++l) flops += linear_flops(batch, width, width, kRank, true, l > 0);
  flops *= kTasks;
  state.SetItemsProcessed(state.iterations() * kTasks * batch);
  state.counters["FLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
}

template <class S>
void BM_TransformerStep(benchmark::State& state) {
  const Index d = 128, heads = 4, T = 32, batch = 16, dff = 4 * d;
  const int threads = int(state.range(0));
  nn::TransformerSpec spec;
  spec.d_in = d;
  spec.seq_len = T;
  spec.d_model = d;
  spec.heads = heads;
  spec.d_ff = dff;
  spec.d_out = 1;
  spec.num_tasks = kTasks;
  spec.adapters = nn::adapters_qv_mlp(nn::AdapterSpec{colora::AdapterKind::Colora, kRank});
  nn::TransformerModel<S> model(spec);
  nn::Trainer<nn::TransformerModel<S>> tr(model, random_data<S>(4 * batch, T, d, 1), step_options(batch, threads));
  for (auto _ : state) {
    if (!tr.step()) state.SkipWithError("non-finite step");
    benchmark::ClobberMemory();
  }
  const double n = double(batch * T);
  double flops = linear_flops(n, d, d, 0, false, false);                      // input projection
  flops += linear_flops(n, d, d, kRank, true, true) * 2;                      // q, v
  flops += linear_flops(n, d, d, 0, false, true) * 2;                         // k, o
  flops += linear_flops(n, d, dff, kRank, true, true);                        // MLP in
  flops += linear_flops(n, dff, d, kRank, true, true);                        // MLP out
  flops += 12.0 * double(batch * heads) * double(T * T) * double(d / heads);  // attention, fwd + bwd
  flops += linear_flops(batch, d, 1, 0, false, true);                         // head
  flops *= kTasks;
  state.SetItemsProcessed(state.iterations() * kTasks * batch * T);
  state.counters["FLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK_TEMPLATE(BM_EigenGemm, double)->Arg(1024)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_EigenGemm, float)->Arg(1024)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_MlpStep, double)->ArgName("threads")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_MlpStep, float)->ArgName("threads")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_TransformerStep, double)->ArgName("threads")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_TransformerStep, float)->ArgName("threads")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
