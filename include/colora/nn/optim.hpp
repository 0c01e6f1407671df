// Optimizers over the flat parameter list (docs/nn.md): SGD with momentum and
// AdamW (decoupled weight decay), with separate hyper-parameters for the
// shared and the personal parameters, and clipping by global gradient norm.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "colora/nn/param.hpp"

namespace colora {
namespace nn {

enum class OptimizerKind { Sgd, AdamW };

inline const char* to_string(OptimizerKind k) noexcept { return k == OptimizerKind::Sgd ? "sgd" : "adamw"; }
inline OptimizerKind parse_optimizer_kind(const std::string& s) {
  if (s == "sgd") return OptimizerKind::Sgd;
  if (s == "adamw") return OptimizerKind::AdamW;
  detail::invalid("colora::nn::parse_optimizer_kind", "unknown optimizer '", s, "' (expected sgd or adamw)");
}

/// Hyper-parameters of one parameter group.
struct OptimizerHyper {
  double lr = 1e-2;           ///< learning rate
  double momentum = 0.9;      ///< SGD momentum (0 = plain SGD)
  double beta1 = 0.9;         ///< AdamW first-moment decay
  double beta2 = 0.999;       ///< AdamW second-moment decay
  double eps = 1e-8;          ///< AdamW denominator guard
  double weight_decay = 0.0;  ///< decoupled (AdamW) / L2 added to the gradient (SGD)

  void validate(const char* where, const char* group) const {
    auto bad = [&](const char* field, double v) {
      detail::invalid(where, "optimizer.", group, ".", field, " = ", v, " is out of range");
    };
    if (!(std::isfinite(lr) && lr >= 0)) bad("lr", lr);
    if (!(momentum >= 0 && momentum < 1)) bad("momentum", momentum);
    if (!(beta1 >= 0 && beta1 < 1)) bad("beta1", beta1);
    if (!(beta2 >= 0 && beta2 < 1)) bad("beta2", beta2);
    if (!(eps > 0 && std::isfinite(eps))) bad("eps", eps);
    if (!(weight_decay >= 0 && std::isfinite(weight_decay))) bad("weight_decay", weight_decay);
  }
};

struct OptimizerOptions {
  OptimizerKind kind = OptimizerKind::AdamW;
  OptimizerHyper shared;    ///< for ParamRole::Shared parameters
  OptimizerHyper personal;  ///< for ParamRole::Personal parameters
  double clip_norm = 0.0;   ///< clip each update's gradient to this global norm (0 = off)

  void validate(const char* where = "colora::nn::OptimizerOptions::validate") const {
    shared.validate(where, "shared");
    personal.validate(where, "personal");
    detail::require(clip_norm >= 0 && std::isfinite(clip_norm), where, "optimizer.clip_norm = ", clip_norm,
                    " must be finite and >= 0");
  }
};

/// Optimizer state per parameter id (moments and step count).
template <class S>
class Optimizer {
 public:
  explicit Optimizer(OptimizerOptions opts = {}) : opts_(opts) { opts_.validate("colora::nn::Optimizer"); }

  const OptimizerOptions& options() const noexcept { return opts_; }
  void set_options(const OptimizerOptions& o) {
    o.validate("colora::nn::Optimizer::set_options");
    opts_ = o;
  }

  /// One update of the parameters `ids` (all of one group: shared, or the
  /// personal ones of one task) with gradients grads[id]. The gradients are
  /// clipped in place to clip_norm (global norm over `ids`). Returns the
  /// gradient norm before clipping.
  double step(const std::vector<Param<S>*>& params, const std::vector<int>& ids, std::vector<Matrix<S>>& grads) {
    reserve(params.size());
    double sq = 0;
    for (int id : ids) sq += double(grads[id].squaredNorm());
    const double norm = std::sqrt(sq);
    if (opts_.clip_norm > 0 && norm > opts_.clip_norm) {
      const S f = S(opts_.clip_norm / norm);
      for (int id : ids) grads[id] *= f;
    }
    for (int id : ids) {
      Param<S>& p = *params[id];
      const OptimizerHyper& h = p.role == ParamRole::Personal ? opts_.personal : opts_.shared;
      const Matrix<S>& g = grads[id];
      Matrix<S>& m = m_[id];
      if (m.size() == 0) m = Matrix<S>::Zero(g.rows(), g.cols());
      const std::int64_t t = ++t_[id];
      if (opts_.kind == OptimizerKind::Sgd) {
        if (h.weight_decay > 0)
          m = S(h.momentum) * m + g + S(h.weight_decay) * p.value;
        else
          m = S(h.momentum) * m + g;
        p.value -= S(h.lr) * m;
      } else {
        Matrix<S>& v = v_[id];
        if (v.size() == 0) v = Matrix<S>::Zero(g.rows(), g.cols());
        m = S(h.beta1) * m + S(1 - h.beta1) * g;
        v = (S(h.beta2) * v.array() + S(1 - h.beta2) * g.array().square()).matrix();
        const S c1 = S(1.0 / (1.0 - std::pow(h.beta1, double(t))));
        const S c2 = S(1.0 / (1.0 - std::pow(h.beta2, double(t))));
        if (h.weight_decay > 0) p.value *= S(1.0 - h.lr * h.weight_decay);
        p.value.array() -= S(h.lr) * (m.array() * c1) / ((v.array() * c2).sqrt() + S(h.eps));
      }
    }
    return norm;
  }

  /// Sizes the per-parameter state for `n` parameters (no-op if already sized).
  void reserve(std::size_t n) {
    if (m_.size() != n) {
      m_.resize(n);
      v_.resize(n);
      t_.resize(n, 0);
    }
  }

  /// State access for checkpoints.
  std::vector<Matrix<S>>& first_moments() noexcept { return m_; }
  std::vector<Matrix<S>>& second_moments() noexcept { return v_; }
  std::vector<std::int64_t>& step_counts() noexcept { return t_; }
  void reset() {
    m_.clear();
    v_.clear();
    t_.clear();
  }

 private:
  OptimizerOptions opts_;
  std::vector<Matrix<S>> m_, v_;
  std::vector<std::int64_t> t_;
};

}  // namespace nn
}  // namespace colora
