// Parameter-free and normalisation layers, the MLP block, token embedding
// and mean pooling (docs/nn.md). Batch-major: one row per example (or per
// token for sequence layers: example b owns rows b*T .. b*T+T-1).
//
// Every layer has the same shape of interface:
//   struct Cache;
//   void forward(const Matrix& X, int task, Cache&, Matrix& Y) const;
//   void backward(const Matrix& dY, int task, const Cache&, Grads&, Matrix* dX) const;
//   template <class F> void visit(F&& f);    // f(Param&) for each parameter
#pragma once

#include <unsupported/Eigen/SpecialFunctions>

#include <cmath>
#include <string>

#include "colora/nn/adapter.hpp"

namespace colora {
namespace nn {

enum class Activation { Gelu, Relu };

inline const char* to_string(Activation a) noexcept { return a == Activation::Gelu ? "gelu" : "relu"; }
inline Activation parse_activation(const std::string& s) {
  if (s == "gelu") return Activation::Gelu;
  if (s == "relu") return Activation::Relu;
  detail::invalid("colora::nn::parse_activation", "unknown activation '", s, "' (expected gelu or relu)");
}

/// Element-wise GELU (exact, x Phi(x)) or ReLU. GELU runs as whole-array
/// expressions (Eigen's erf, vectorized for float; exp vectorized for both),
/// and the forward keeps Phi(x) for the backward, which then needs only exp.
template <class S>
class ActivationLayer {
 public:
  using Scalar = S;
  struct Cache {
    const Matrix<S>* x = nullptr;
    Matrix<S> cdf;  ///< Phi(x) (GELU)
  };
  explicit ActivationLayer(Activation kind = Activation::Gelu) : kind_(kind) {}
  Activation kind() const noexcept { return kind_; }

  void forward(const Matrix<S>& X, int, Cache& c, Matrix<S>& Y) const {
    c.x = &X;
    if (kind_ == Activation::Relu) {
      Y = X.cwiseMax(S(0));
    } else {
      const S inv_sqrt2 = S(0.70710678118654752440);
      c.cdf.resize(X.rows(), X.cols());
      c.cdf.array() = S(0.5) * (S(1) + (X.array() * inv_sqrt2).erf());
      Y.resize(X.rows(), X.cols());
      Y.array() = X.array() * c.cdf.array();
    }
  }
  void backward(const Matrix<S>& dY, int, const Cache& c, Grads<S>&, Matrix<S>* dX) const {
    if (!dX) return;
    const Matrix<S>& X = *c.x;
    detail::require(dY.rows() == X.rows() && dY.cols() == X.cols(), "colora::nn::ActivationLayer::backward", "dY is ",
                    dY.rows(), " x ", dY.cols(), ", expected ", X.rows(), " x ", X.cols());
    if (kind_ == Activation::Relu) {
      *dX = dY.binaryExpr(X, [](S d, S x) { return x > S(0) ? d : S(0); });
    } else {
      const S inv_sqrt2pi = S(0.39894228040143267794);
      dX->resize(X.rows(), X.cols());
      dX->array() = dY.array() * (c.cdf.array() + X.array() * (inv_sqrt2pi * (S(-0.5) * X.array().square()).exp()));
    }
  }
  template <class F>
  void visit(F&&) {}

 private:
  Activation kind_ = Activation::Gelu;
};

/// LayerNorm over the features of each row: y = (x - mean) / sqrt(var + eps) * gamma + beta.
/// Two-pass (centred) variance, so it stays accurate for |x| ~ 1e4.
template <class S>
class LayerNorm {
 public:
  using Scalar = S;
  struct Cache {
    Matrix<S> xhat;  ///< normalised input
    Vector<S> rstd;  ///< 1 / sqrt(var + eps) per row
  };
  LayerNorm() = default;
  /// gamma = 1, beta = 0; Frozen unless `trainable` (then Shared).
  LayerNorm(const std::string& name, Index dim, bool trainable = false, double eps = 1e-5) : eps_(eps) {
    detail::require(dim >= 1, "colora::nn::LayerNorm", "layer '", name, "': dim = ", dim, " must be >= 1");
    detail::require(eps > 0, "colora::nn::LayerNorm", "layer '", name, "': eps = ", eps, " must be > 0");
    const ParamRole role = trainable ? ParamRole::Shared : ParamRole::Frozen;
    gamma.name = name + ".gamma";
    gamma.value = Matrix<S>::Ones(1, dim);
    gamma.role = role;
    beta.name = name + ".beta";
    beta.value = Matrix<S>::Zero(1, dim);
    beta.role = role;
  }
  Index dim() const noexcept { return gamma.value.cols(); }

  void forward(const Matrix<S>& X, int, Cache& c, Matrix<S>& Y) const {
    detail::require(X.cols() == dim(), "colora::nn::LayerNorm::forward", "layer '", gamma.name, "': input has ",
                    X.cols(), " columns, expected ", dim());
    const Vector<S> mean = X.rowwise().mean();
    c.xhat = X.colwise() - mean;
    const Vector<S> var = c.xhat.rowwise().squaredNorm() / S(X.cols());
    c.rstd = (var.array() + S(eps_)).rsqrt().matrix();
    c.xhat = c.rstd.asDiagonal() * c.xhat;
    Y = (c.xhat.array().rowwise() * gamma.value.row(0).array()).rowwise() + beta.value.row(0).array();
  }
  void backward(const Matrix<S>& dY, int, const Cache& c, Grads<S>& g, Matrix<S>* dX) const {
    detail::require(dY.rows() == c.xhat.rows() && dY.cols() == dim(), "colora::nn::LayerNorm::backward", "layer '",
                    gamma.name, "': dY is ", dY.rows(), " x ", dY.cols(), ", expected ", c.xhat.rows(), " x ", dim());
    if (g.wants(gamma)) {
      g.add(gamma, dY.cwiseProduct(c.xhat).colwise().sum());
      g.add(beta, dY.colwise().sum());
    }
    if (!dX) return;
    const Matrix<S> dxhat = dY.array().rowwise() * gamma.value.row(0).array();
    const S invd = S(1) / S(dim());
    const Vector<S> m1 = dxhat.rowwise().sum() * invd;
    const Vector<S> m2 = dxhat.cwiseProduct(c.xhat).rowwise().sum() * invd;
    Matrix<S> t = dxhat.colwise() - m1;
    t.noalias() -= m2.asDiagonal() * c.xhat;
    *dX = c.rstd.asDiagonal() * t;
  }
  template <class F>
  void visit(F&& f) {
    f(gamma);
    f(beta);
  }

  Param<S> gamma, beta;  ///< 1 x dim each

 private:
  double eps_ = 1e-5;
};

/// MLP block: Linear(d -> h), activation, Linear(h -> d_out).
template <class S>
class MlpBlock {
 public:
  using Scalar = S;
  struct Cache {
    typename Linear<S>::Cache c1, c2;
    typename ActivationLayer<S>::Cache ca;
    Matrix<S> z, h;  ///< pre- and post-activation hidden
  };
  MlpBlock() = default;
  MlpBlock(const std::string& name, Index in, Index hidden, Index out, int num_tasks, const AdapterSpec& a_in,
           const AdapterSpec& a_out, Activation act, Rng rng, bool base_trainable = false)
      : fc_in(name + ".in", in, hidden, num_tasks, a_in, rng.substream(1), base_trainable),
        act_(act),
        fc_out(name + ".out", hidden, out, num_tasks, a_out, rng.substream(2), base_trainable) {}

  void forward(const Matrix<S>& X, int task, Cache& c, Matrix<S>& Y) const {
    fc_in.forward(X, task, c.c1, c.z);
    act_.forward(c.z, task, c.ca, c.h);
    fc_out.forward(c.h, task, c.c2, Y);
  }
  void backward(const Matrix<S>& dY, int task, const Cache& c, Grads<S>& g, Matrix<S>* dX) const {
    Matrix<S> dh, dz;
    fc_out.backward(dY, task, c.c2, g, &dh);
    act_.backward(dh, task, c.ca, g, &dz);
    fc_in.backward(dz, task, c.c1, g, dX);
  }
  template <class F>
  void visit(F&& f) {
    fc_in.visit(f);
    fc_out.visit(f);
  }

  Linear<S> fc_in;
  ActivationLayer<S> act_;
  Linear<S> fc_out;
};

/// Token embedding: input is an n x 1 matrix of token ids (0 <= id < vocab,
/// stored as Scalar), output row t = E[id_t] (+ P[t mod T] when a positional
/// table of length T is used). No gradient flows to the ids.
template <class S>
class TokenEmbedding {
 public:
  using Scalar = S;
  struct Cache {
    const Matrix<S>* ids = nullptr;
  };
  TokenEmbedding() = default;
  /// E ~ N(0, 1), P ~ N(0, 1) if seq_len > 0; Frozen unless `trainable`.
  TokenEmbedding(const std::string& name, Index vocab, Index dim, Index seq_len, Rng rng, bool trainable = false) {
    detail::require(vocab >= 1 && dim >= 1 && seq_len >= 0, "colora::nn::TokenEmbedding", "layer '", name,
                    "': vocab = ", vocab, ", dim = ", dim, ", seq_len = ", seq_len, " (need vocab, dim >= 1)");
    const ParamRole role = trainable ? ParamRole::Shared : ParamRole::Frozen;
    Rng r0 = rng.substream(1), r1 = rng.substream(2);
    E.name = name + ".E";
    E.value = r0.normal_matrix<S>(vocab, dim);
    E.role = role;
    P.name = name + ".P";
    P.value = r1.normal_matrix<S>(seq_len, dim);
    P.role = role;
  }
  Index vocab() const noexcept { return E.value.rows(); }
  Index dim() const noexcept { return E.value.cols(); }

  void forward(const Matrix<S>& ids, int, Cache& c, Matrix<S>& Y) const {
    const char* where = "colora::nn::TokenEmbedding::forward";
    detail::require(ids.cols() == 1, where, "ids must be an n x 1 matrix, got ", ids.rows(), " x ", ids.cols());
    const Index T = P.value.rows();
    detail::require(T == 0 || ids.rows() % T == 0, where, "ids has ", ids.rows(), " rows, not a multiple of seq_len ",
                    T);
    c.ids = &ids;
    Y.resize(ids.rows(), dim());
    for (Index t = 0; t < ids.rows(); ++t) {
      const Index id = token(ids(t, 0), where);
      Y.row(t) = E.value.row(id);
      if (T > 0) Y.row(t) += P.value.row(t % T);
    }
  }
  void backward(const Matrix<S>& dY, int, const Cache& c, Grads<S>& g, Matrix<S>* dX) const {
    if (dX) dX->setZero(c.ids->rows(), 1);
    if (!g.wants(E)) return;
    const Index T = P.value.rows();
    Matrix<S> gE = Matrix<S>::Zero(vocab(), dim());
    Matrix<S> gP = Matrix<S>::Zero(T, dim());
    for (Index t = 0; t < dY.rows(); ++t) {
      gE.row(token((*c.ids)(t, 0), "colora::nn::TokenEmbedding::backward")) += dY.row(t);
      if (T > 0) gP.row(t % T) += dY.row(t);
    }
    g.add(E, gE);
    g.add(P, gP);
  }
  template <class F>
  void visit(F&& f) {
    f(E);
    f(P);
  }

  Param<S> E, P;

 private:
  Index token(S v, const char* where) const {
    const Index id = static_cast<Index>(std::llround(static_cast<double>(v)));
    detail::require(std::isfinite(double(v)) && double(id) == double(v) && id >= 0 && id < vocab(), where, "token id ",
                    double(v), " is not an integer in [0, vocab = ", vocab(), ")");
    return id;
  }
};

/// Mean over the T rows of each example: (B*T) x d -> B x d.
template <class S>
class MeanPool {
 public:
  using Scalar = S;
  struct Cache {
    Index rows = 0;
  };
  explicit MeanPool(Index seq_len = 1) : T_(seq_len) {
    detail::require(seq_len >= 1, "colora::nn::MeanPool", "seq_len = ", seq_len, " must be >= 1");
  }
  Index seq_len() const noexcept { return T_; }

  void forward(const Matrix<S>& X, int, Cache& c, Matrix<S>& Y) const {
    detail::require(X.rows() % T_ == 0, "colora::nn::MeanPool::forward", "input has ", X.rows(),
                    " rows, not a multiple of seq_len ", T_);
    c.rows = X.rows();
    const Index B = X.rows() / T_;
    Y.resize(B, X.cols());
    const S inv = S(1) / S(T_);
    for (Index b = 0; b < B; ++b) Y.row(b) = X.middleRows(b * T_, T_).colwise().sum() * inv;
  }
  void backward(const Matrix<S>& dY, int, const Cache& c, Grads<S>&, Matrix<S>* dX) const {
    if (!dX) return;
    detail::require(dY.rows() * T_ == c.rows, "colora::nn::MeanPool::backward", "dY has ", dY.rows(),
                    " rows, expected ", c.rows / T_);
    dX->resize(c.rows, dY.cols());
    const S inv = S(1) / S(T_);
    for (Index b = 0; b < dY.rows(); ++b) dX->middleRows(b * T_, T_).rowwise() = dY.row(b) * inv;
  }
  template <class F>
  void visit(F&&) {}

 private:
  Index T_ = 1;
};

}  // namespace nn
}  // namespace colora
