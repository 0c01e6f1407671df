// Ready-made networks for collaborative training (docs/nn.md): an MLP
// (regressor or classifier) and a transformer-block model that pools a
// sequence into one prediction per example. Both satisfy the model interface
// the trainer, the checkpoint and the gradient check use:
//   Scalar, Cache, num_tasks(), rows_per_example(), input_cols(), output_cols(),
//   forward(X, task, cache, Y), backward(dY, task, cache, grads, dX), visit(f).
#pragma once

#include <string>
#include <vector>

#include "colora/nn/loss.hpp"
#include "colora/nn/transformer.hpp"

namespace colora {
namespace nn {

/// An MLP: Linear, activation, ..., Linear (no activation after the last).
struct MlpSpec {
  Index in = 1;               ///< input features p
  std::vector<Index> hidden;  ///< hidden widths (may be empty: one Linear)
  Index out = 1;              ///< outputs (classes for a classifier)
  int num_tasks = 1;          ///< k
  Activation activation = Activation::Gelu;
  AdapterSpec adapter;          ///< the adapter on every Linear
  bool adapt_head = true;       ///< false: the last Linear has no adapter
  bool base_trainable = false;  ///< true: W_0, b_0 are Shared (pre-training a base)
  std::uint64_t seed = 0;       ///< initialization (colora::Rng(seed, 0x6D6C70))
};

template <class S>
class MlpModel {
 public:
  using Scalar = S;
  struct Cache {
    std::vector<typename Linear<S>::Cache> cl;
    std::vector<typename ActivationLayer<S>::Cache> ca;
    std::vector<Matrix<S>> z, h;
  };

  explicit MlpModel(const MlpSpec& spec) : spec_(spec), act_(spec.activation) {
    const char* where = "colora::nn::MlpModel";
    detail::require(spec.in >= 1 && spec.out >= 1, where, "MlpSpec.in = ", spec.in, ", MlpSpec.out = ", spec.out,
                    " must be >= 1");
    std::vector<Index> widths{spec.in};
    for (Index h : spec.hidden) {
      detail::require(h >= 1, where, "MlpSpec.hidden has width ", h, " (must be >= 1)");
      widths.push_back(h);
    }
    widths.push_back(spec.out);
    Rng rng(spec.seed, 0x6D6C70);
    for (std::size_t l = 0; l + 1 < widths.size(); ++l) {
      const bool last = l + 2 == widths.size();
      const AdapterSpec a = last && !spec.adapt_head ? AdapterSpec{} : spec.adapter;
      layers.emplace_back("mlp.fc" + std::to_string(l), widths[l], widths[l + 1], spec.num_tasks, a, rng.substream(l),
                          spec.base_trainable);
    }
    index_params(*this);
  }

  int num_tasks() const noexcept { return spec_.num_tasks; }
  Index rows_per_example() const noexcept { return 1; }
  Index input_cols() const noexcept { return spec_.in; }
  Index output_cols() const noexcept { return spec_.out; }
  const MlpSpec& spec() const noexcept { return spec_; }

  void forward(const Matrix<S>& X, int task, Cache& c, Matrix<S>& Y) const {
    const std::size_t L = layers.size();
    c.cl.resize(L);
    c.ca.resize(L);
    c.z.resize(L);
    c.h.resize(L);
    const Matrix<S>* in = &X;
    for (std::size_t l = 0; l < L; ++l) {
      if (l + 1 == L) {
        layers[l].forward(*in, task, c.cl[l], Y);
      } else {
        layers[l].forward(*in, task, c.cl[l], c.z[l]);
        act_.forward(c.z[l], task, c.ca[l], c.h[l]);
        in = &c.h[l];
      }
    }
  }
  void backward(const Matrix<S>& dY, int task, const Cache& c, Grads<S>& g, Matrix<S>* dX) const {
    Matrix<S> d, dz;
    for (std::size_t l = layers.size(); l-- > 0;) {
      if (l + 1 < layers.size()) {
        act_.backward(d, task, c.ca[l], g, &dz);
        layers[l].backward(dz, task, c.cl[l], g, l > 0 ? &d : dX);
      } else {
        layers[l].backward(dY, task, c.cl[l], g, l > 0 ? &d : dX);
      }
    }
  }
  /// Prediction for one task (convenience; allocates a cache).
  Matrix<S> predict(const Matrix<S>& X, int task) const {
    Cache c;
    Matrix<S> Y;
    forward(X, task, c, Y);
    return Y;
  }
  template <class F>
  void visit(F&& f) {
    for (auto& l : layers) l.visit(f);
  }

  std::vector<Linear<S>> layers;

 private:
  MlpSpec spec_;
  ActivationLayer<S> act_;
};

/// Transformer model: input projection (or token embedding), `layers` pre-LN
/// blocks, final LayerNorm, mean pooling over the sequence, Linear head.
/// Input (B*T) x d_in (or (B*T) x 1 token ids), output B x d_out.
struct TransformerSpec {
  Index d_in = 1;     ///< features per token (ignored when vocab > 0)
  Index vocab = 0;    ///< > 0: inputs are token ids, embedded (with positions)
  Index seq_len = 8;  ///< T
  Index d_model = 32;
  Index heads = 4;
  Index d_ff = 0;  ///< MLP hidden width; 0 means 4 d_model
  Index layers = 1;
  Index d_out = 1;  ///< outputs (classes for a classifier)
  bool causal = false;
  int num_tasks = 1;
  Activation activation = Activation::Gelu;
  BlockAdapters adapters;     ///< per projection, the same in every block
  AdapterSpec input_adapter;  ///< on the input projection (continuous inputs)
  AdapterSpec head_adapter;   ///< on the output head
  bool base_trainable = false;
  std::uint64_t seed = 0;
};

/// The same adapter on attention q and v and on both MLP projections.
inline BlockAdapters adapters_qv_mlp(const AdapterSpec& a) {
  BlockAdapters b;
  b.attn.q = a;
  b.attn.v = a;
  b.mlp_in = a;
  b.mlp_out = a;
  return b;
}

template <class S>
class TransformerModel {
 public:
  using Scalar = S;
  struct Cache {
    typename Linear<S>::Cache cin, chead;
    typename TokenEmbedding<S>::Cache cemb;
    std::vector<typename TransformerBlock<S>::Cache> cb;
    typename LayerNorm<S>::Cache cf;
    typename MeanPool<S>::Cache cp;
    std::vector<Matrix<S>> x;  ///< x[0] embedded input, x[l+1] after block l
    Matrix<S> f, pooled;
  };

  explicit TransformerModel(const TransformerSpec& spec) : pool(spec.seq_len), spec_(spec) {
    const char* where = "colora::nn::TransformerModel";
    detail::require(spec.layers >= 1 && spec.d_out >= 1 && spec.seq_len >= 1 && (spec.vocab > 0 || spec.d_in >= 1),
                    where, "TransformerSpec: layers = ", spec.layers, ", d_out = ", spec.d_out,
                    ", seq_len = ", spec.seq_len, ", d_in = ", spec.d_in, " (all must be >= 1)");
    Rng rng(spec.seed, 0x74726E);
    const Index dff = spec.d_ff > 0 ? spec.d_ff : 4 * spec.d_model;
    if (spec.vocab > 0)
      embed = TokenEmbedding<S>("tf.embed", spec.vocab, spec.d_model, spec.seq_len, rng.substream(1),
                                spec.base_trainable);
    else
      input = Linear<S>("tf.input", spec.d_in, spec.d_model, spec.num_tasks, spec.input_adapter, rng.substream(1),
                        spec.base_trainable);
    for (Index l = 0; l < spec.layers; ++l)
      blocks.emplace_back("tf.block" + std::to_string(l), spec.d_model, spec.heads, dff, spec.seq_len, spec.causal,
                          spec.num_tasks, spec.adapters, spec.activation, rng.substream(10 + l), spec.base_trainable);
    ln_f = LayerNorm<S>("tf.ln_f", spec.d_model, spec.base_trainable);
    head = Linear<S>("tf.head", spec.d_model, spec.d_out, spec.num_tasks, spec.head_adapter, rng.substream(2),
                     spec.base_trainable);
    index_params(*this);
  }

  int num_tasks() const noexcept { return spec_.num_tasks; }
  Index rows_per_example() const noexcept { return spec_.seq_len; }
  Index input_cols() const noexcept { return spec_.vocab > 0 ? 1 : spec_.d_in; }
  Index output_cols() const noexcept { return spec_.d_out; }
  const TransformerSpec& spec() const noexcept { return spec_; }

  void forward(const Matrix<S>& X, int task, Cache& c, Matrix<S>& Y) const {
    c.x.resize(blocks.size() + 1);
    c.cb.resize(blocks.size());
    if (spec_.vocab > 0)
      embed.forward(X, task, c.cemb, c.x[0]);
    else
      input.forward(X, task, c.cin, c.x[0]);
    for (std::size_t l = 0; l < blocks.size(); ++l) blocks[l].forward(c.x[l], task, c.cb[l], c.x[l + 1]);
    ln_f.forward(c.x.back(), task, c.cf, c.f);
    pool.forward(c.f, task, c.cp, c.pooled);
    head.forward(c.pooled, task, c.chead, Y);
  }
  void backward(const Matrix<S>& dY, int task, const Cache& c, Grads<S>& g, Matrix<S>* dX) const {
    Matrix<S> d1, d2;
    head.backward(dY, task, c.chead, g, &d1);
    pool.backward(d1, task, c.cp, g, &d2);
    ln_f.backward(d2, task, c.cf, g, &d1);
    for (std::size_t l = blocks.size(); l-- > 0;) {
      blocks[l].backward(d1, task, c.cb[l], g, &d2);
      d1.swap(d2);
    }
    if (spec_.vocab > 0)
      embed.backward(d1, task, c.cemb, g, dX);
    else
      input.backward(d1, task, c.cin, g, dX);
  }
  Matrix<S> predict(const Matrix<S>& X, int task) const {
    Cache c;
    Matrix<S> Y;
    forward(X, task, c, Y);
    return Y;
  }
  template <class F>
  void visit(F&& f) {
    if (spec_.vocab > 0)
      embed.visit(f);
    else
      input.visit(f);
    for (auto& b : blocks) b.visit(f);
    ln_f.visit(f);
    head.visit(f);
  }

  Linear<S> input;
  TokenEmbedding<S> embed;
  std::vector<TransformerBlock<S>> blocks;
  LayerNorm<S> ln_f;
  MeanPool<S> pool;
  Linear<S> head;

 private:
  TransformerSpec spec_;
};

/// One-liner: an MLP classifier in -> hidden... -> classes with adapters of
/// kind `a` on every Linear, for `num_tasks` tasks (train with CrossEntropy).
template <class S>
MlpModel<S> make_mlp_classifier(Index in, std::vector<Index> hidden, Index classes, int num_tasks, const AdapterSpec& a,
                                std::uint64_t seed = 0) {
  MlpSpec s;
  s.in = in;
  s.hidden = std::move(hidden);
  s.out = classes;
  s.num_tasks = num_tasks;
  s.adapter = a;
  s.seed = seed;
  return MlpModel<S>(s);
}

/// One-liner: a one-block transformer regressor on (B*T) x d_in sequences
/// with adapter `a` on attention q, v and both MLP projections.
template <class S>
TransformerModel<S> make_transformer_regressor(Index d_in, Index seq_len, Index d_model, Index heads, Index d_out,
                                               int num_tasks, const AdapterSpec& a, std::uint64_t seed = 0) {
  TransformerSpec s;
  s.d_in = d_in;
  s.seq_len = seq_len;
  s.d_model = d_model;
  s.heads = heads;
  s.d_out = d_out;
  s.num_tasks = num_tasks;
  s.adapters = adapters_qv_mlp(a);
  s.seed = seed;
  return TransformerModel<S>(s);
}

}  // namespace nn
}  // namespace colora
