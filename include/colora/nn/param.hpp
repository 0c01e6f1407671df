// Parameters and gradient buffers of the network layers (docs/nn.md).
//
// Every layer owns its parameters as `Param<Scalar>` members and enumerates
// them with `visit(f)`. `index_params(model)` numbers them in visit order; the
// number (`id`) addresses the gradient buffer `Grads::g[id]` and the optimizer
// state, so optimizer, trainer, checkpoint and gradient check all work on the
// flat list returned by `param_list(model)`.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "colora/core/config.hpp"
#include "colora/core/errors.hpp"

namespace colora {
namespace nn {

/// Who owns a parameter during collaborative training.
enum class ParamRole {
  Frozen,   ///< never updated (base weights W_0, b_0, FFA's A, ...)
  Shared,   ///< one copy for all tasks; gradients summed over tasks
  Personal  ///< one copy per task (`Param::task`)
};

inline const char* to_string(ParamRole r) noexcept {
  return r == ParamRole::Frozen ? "frozen" : r == ParamRole::Shared ? "shared" : "personal";
}

/// One parameter matrix with its name, role and (for personal ones) task.
template <class Scalar>
struct Param {
  std::string name;
  Matrix<Scalar> value;
  ParamRole role = ParamRole::Frozen;
  int task = -1;  ///< owning task for Personal, -1 otherwise
  int id = -1;    ///< position in the model's parameter list (index_params)

  bool trainable() const noexcept { return role != ParamRole::Frozen; }
};

/// Gradient buffers for one task's forward/backward pass, indexed by Param::id.
/// `begin()` starts a pass: buffers are kept allocated, the first contribution
/// to a buffer in a pass overwrites it, later ones accumulate.
template <class Scalar>
struct Grads {
  std::vector<Matrix<Scalar>> g;
  std::vector<char> touched;
  bool want_shared = true;    ///< compute gradients of Shared parameters
  bool want_personal = true;  ///< compute gradients of Personal parameters

  void begin(std::size_t num_params, bool shared = true, bool personal = true) {
    if (g.size() != num_params) {
      g.assign(num_params, Matrix<Scalar>());
      touched.assign(num_params, 0);
    }
    std::fill(touched.begin(), touched.end(), 0);
    want_shared = shared;
    want_personal = personal;
  }
  bool wants(const Param<Scalar>& p) const noexcept {
    return p.role == ParamRole::Shared ? want_shared : p.role == ParamRole::Personal ? want_personal : false;
  }
  bool has(int id) const noexcept { return id >= 0 && std::size_t(id) < touched.size() && touched[id]; }

  /// g[p.id] (+)= expr; `expr` may be a product (evaluated with noalias).
  template <class Expr>
  void add(const Param<Scalar>& p, const Expr& expr) {
    detail::require(p.id >= 0 && std::size_t(p.id) < g.size(), "colora::nn::Grads::add", "parameter '", p.name,
                    "' has id ", p.id, " outside the buffer (", g.size(),
                    " entries): call index_params(model) and Grads::begin first");
    if (!touched[p.id]) {
      g[p.id].noalias() = expr;
      touched[p.id] = 1;
    } else {
      g[p.id].noalias() += expr;
    }
  }
};

/// Numbers the parameters of `model` in visit order; returns their count.
template <class Model>
int index_params(Model& model) {
  int next = 0;
  model.visit([&](auto& p) { p.id = next++; });
  return next;
}

/// Pointers to every parameter of `model`, position = Param::id.
template <class Model>
std::vector<Param<typename Model::Scalar>*> param_list(Model& model) {
  std::vector<Param<typename Model::Scalar>*> out;
  model.visit([&](auto& p) { out.push_back(&p); });
  for (std::size_t i = 0; i < out.size(); ++i)
    detail::require(out[i]->id == int(i), "colora::nn::param_list", "parameter '", out[i]->name, "' has id ",
                    out[i]->id, " but position ", i, ": call index_params(model) after building it");
  return out;
}

/// Number of trainable scalars (shared + all personal).
template <class Model>
Index count_trainable(Model& model) {
  Index n = 0;
  model.visit([&](auto& p) {
    if (p.trainable()) n += p.value.size();
  });
  return n;
}

/// A text describing the architecture: scalar size, and for every parameter
/// its name, shape, role and task. Two models with equal fingerprints can
/// exchange checkpoints.
template <class Model>
std::string fingerprint(Model& model) {
  std::string s = "scalar=" + std::to_string(sizeof(typename Model::Scalar)) + ";";
  model.visit([&](auto& p) {
    s += p.name + "[" + std::to_string(p.value.rows()) + "x" + std::to_string(p.value.cols()) + "," +
         to_string(p.role) + (p.role == ParamRole::Personal ? "@" + std::to_string(p.task) : std::string()) + "];";
  });
  return s;
}

/// FNV-1a 64-bit over bytes, chained through `h`.
inline std::uint64_t fnv1a(const void* data, std::size_t n, std::uint64_t h = 1469598103934665603ULL) {
  const unsigned char* b = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ULL;
  return h;
}

/// A hash of the values of every frozen parameter (the base model).
template <class Model>
std::uint64_t frozen_hash(Model& model) {
  std::uint64_t h = 1469598103934665603ULL;
  model.visit([&](auto& p) {
    if (!p.trainable()) h = fnv1a(p.value.data(), sizeof(typename Model::Scalar) * p.value.size(), h);
  });
  return h;
}

}  // namespace nn
}  // namespace colora
