// Pre-LN transformer block (docs/nn.md):
//   h = x + Attn(LN1(x)),   y = h + MLP(LN2(h)).
#pragma once

#include <string>

#include "colora/nn/attention.hpp"
#include "colora/nn/layers.hpp"

namespace colora {
namespace nn {

/// Adapters of a transformer block, one per projection.
struct BlockAdapters {
  AttentionAdapters attn;
  AdapterSpec mlp_in, mlp_out;
};

template <class S>
class TransformerBlock {
 public:
  using Scalar = S;
  struct Cache {
    typename LayerNorm<S>::Cache cl1, cl2;
    typename MultiHeadAttention<S>::Cache ca;
    typename MlpBlock<S>::Cache cm;
    Matrix<S> h1, a, x1, h2, m;
  };
  TransformerBlock() = default;
  TransformerBlock(const std::string& name, Index d_model, Index heads, Index d_ff, Index seq_len, bool causal,
                   int num_tasks, const BlockAdapters& ad, Activation act, Rng rng, bool base_trainable = false)
      : ln1(name + ".ln1", d_model, base_trainable),
        attn(name + ".attn", d_model, heads, seq_len, causal, num_tasks, ad.attn, rng.substream(1), base_trainable),
        ln2(name + ".ln2", d_model, base_trainable),
        mlp(name + ".mlp", d_model, d_ff, d_model, num_tasks, ad.mlp_in, ad.mlp_out, act, rng.substream(2),
            base_trainable) {}

  void forward(const Matrix<S>& X, int task, Cache& c, Matrix<S>& Y) const {
    ln1.forward(X, task, c.cl1, c.h1);
    attn.forward(c.h1, task, c.ca, c.a);
    c.x1 = X + c.a;
    ln2.forward(c.x1, task, c.cl2, c.h2);
    mlp.forward(c.h2, task, c.cm, c.m);
    Y = c.x1 + c.m;
  }
  void backward(const Matrix<S>& dY, int task, const Cache& c, Grads<S>& g, Matrix<S>* dX) const {
    Matrix<S> d1, d2;
    mlp.backward(dY, task, c.cm, g, &d1);
    ln2.backward(d1, task, c.cl2, g, &d2);
    d2 += dY;  // dL/dx1
    attn.backward(d2, task, c.ca, g, &d1);
    if (dX) {
      ln1.backward(d1, task, c.cl1, g, dX);
      *dX += d2;
    } else {
      ln1.backward(d1, task, c.cl1, g, nullptr);
    }
  }
  template <class F>
  void visit(F&& f) {
    ln1.visit(f);
    attn.visit(f);
    ln2.visit(f);
    mlp.visit(f);
  }

  LayerNorm<S> ln1;
  MultiHeadAttention<S> attn;
  LayerNorm<S> ln2;
  MlpBlock<S> mlp;
};

}  // namespace nn
}  // namespace colora
