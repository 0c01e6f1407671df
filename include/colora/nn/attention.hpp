// Multi-head self-attention with adapters on any of the q, k, v, o
// projections (docs/nn.md). Input (B*T) x d: example b owns rows b*T..b*T+T-1.
// The projections are one GEMM over all B*T tokens; scores and mixing are
// T x T / T x d_h GEMMs per (example, head).
#pragma once

#include <cmath>
#include <limits>
#include <string>

#include "colora/nn/adapter.hpp"

namespace colora {
namespace nn {

/// Which adapter sits on each projection of the attention.
struct AttentionAdapters {
  AdapterSpec q, k, v, o;
};

template <class S>
class MultiHeadAttention {
 public:
  using Scalar = S;
  struct Cache {
    typename Linear<S>::Cache cq, ck, cv, co;
    Matrix<S> Q, K, V;  ///< (B*T) x d
    Matrix<S> P;        ///< softmax weights, row block ((b*H + h)*T, T) is example b, head h
    Matrix<S> O;        ///< concatenated heads (B*T) x d
  };

  MultiHeadAttention() = default;
  MultiHeadAttention(const std::string& name, Index d_model, Index heads, Index seq_len, bool causal, int num_tasks,
                     const AttentionAdapters& ad, Rng rng, bool base_trainable = false)
      : d_(d_model), H_(heads), T_(seq_len), causal_(causal) {
    const char* where = "colora::nn::MultiHeadAttention";
    detail::require(heads >= 1 && d_model >= 1 && d_model % heads == 0, where, "layer '", name,
                    "': d_model = ", d_model, " must be a positive multiple of heads = ", heads);
    detail::require(seq_len >= 1, where, "layer '", name, "': seq_len = ", seq_len, " must be >= 1");
    q = Linear<S>(name + ".q", d_model, d_model, num_tasks, ad.q, rng.substream(1), base_trainable);
    k = Linear<S>(name + ".k", d_model, d_model, num_tasks, ad.k, rng.substream(2), base_trainable);
    v = Linear<S>(name + ".v", d_model, d_model, num_tasks, ad.v, rng.substream(3), base_trainable);
    o = Linear<S>(name + ".o", d_model, d_model, num_tasks, ad.o, rng.substream(4), base_trainable);
  }

  Index d_model() const noexcept { return d_; }
  Index heads() const noexcept { return H_; }
  Index seq_len() const noexcept { return T_; }
  bool causal() const noexcept { return causal_; }

  void forward(const Matrix<S>& X, int task, Cache& c, Matrix<S>& Y) const {
    detail::require(X.rows() % T_ == 0 && X.cols() == d_, "colora::nn::MultiHeadAttention::forward", "layer '",
                    q.W0.name, "': input is ", X.rows(), " x ", X.cols(), ", expected (B*", T_, ") x ", d_);
    q.forward(X, task, c.cq, c.Q);
    k.forward(X, task, c.ck, c.K);
    v.forward(X, task, c.cv, c.V);
    const Index B = X.rows() / T_, dh = d_ / H_;
    const S inv = S(1) / std::sqrt(S(dh));
    c.P.resize(B * H_ * T_, T_);
    c.O.resize(X.rows(), d_);
    for (Index b = 0; b < B; ++b)
      for (Index h = 0; h < H_; ++h) {
        auto Pb = c.P.middleRows((b * H_ + h) * T_, T_);
        Pb.noalias() = inv * (c.Q.block(b * T_, h * dh, T_, dh) * c.K.block(b * T_, h * dh, T_, dh).transpose());
        softmax_rows_inplace(Pb);
        c.O.block(b * T_, h * dh, T_, dh).noalias() = Pb * c.V.block(b * T_, h * dh, T_, dh);
      }
    o.forward(c.O, task, c.co, Y);
  }

  void backward(const Matrix<S>& dY, int task, const Cache& c, Grads<S>& g, Matrix<S>* dX) const {
    Matrix<S> dO;
    o.backward(dY, task, c.co, g, &dO);
    const Index B = c.Q.rows() / T_, dh = d_ / H_;
    const S inv = S(1) / std::sqrt(S(dh));
    Matrix<S> dQ(c.Q.rows(), d_), dK(c.Q.rows(), d_), dV(c.Q.rows(), d_), dP(T_, T_);
    for (Index b = 0; b < B; ++b)
      for (Index h = 0; h < H_; ++h) {
        const auto Pb = c.P.middleRows((b * H_ + h) * T_, T_);
        const auto dOb = dO.block(b * T_, h * dh, T_, dh);
        dP.noalias() = dOb * c.V.block(b * T_, h * dh, T_, dh).transpose();
        dV.block(b * T_, h * dh, T_, dh).noalias() = Pb.transpose() * dOb;
        // softmax backward: dZ = P .* (dP - rowsum(dP .* P)), times 1/sqrt(d_h)
        const Vector<S> rs = dP.cwiseProduct(Pb).rowwise().sum();
        dP = (Pb.array() * (dP.colwise() - rs).array()) * inv;
        dQ.block(b * T_, h * dh, T_, dh).noalias() = dP * c.K.block(b * T_, h * dh, T_, dh);
        dK.block(b * T_, h * dh, T_, dh).noalias() = dP.transpose() * c.Q.block(b * T_, h * dh, T_, dh);
      }
    if (!dX) {
      q.backward(dQ, task, c.cq, g, nullptr);
      k.backward(dK, task, c.ck, g, nullptr);
      v.backward(dV, task, c.cv, g, nullptr);
      return;
    }
    Matrix<S> tmp;
    q.backward(dQ, task, c.cq, g, dX);
    k.backward(dK, task, c.ck, g, &tmp);
    *dX += tmp;
    v.backward(dV, task, c.cv, g, &tmp);
    *dX += tmp;
  }

  template <class F>
  void visit(F&& f) {
    q.visit(f);
    k.visit(f);
    v.visit(f);
    o.visit(f);
  }

  Linear<S> q, k, v, o;

 private:
  template <class Block>
  void softmax_rows_inplace(Block&& Z) const {
    if (causal_) {
      for (Index i = 0; i < T_; ++i)
        for (Index j = i + 1; j < T_; ++j) Z(i, j) = -std::numeric_limits<S>::infinity();
    }
    const Vector<S> mx = Z.rowwise().maxCoeff();
    Z = (Z.colwise() - mx).array().exp().matrix();
    const Vector<S> sum = Z.rowwise().sum();
    Z = sum.cwiseInverse().asDiagonal() * Z;
  }

  Index d_ = 1, H_ = 1, T_ = 1;
  bool causal_ = false;
};

}  // namespace nn
}  // namespace colora
