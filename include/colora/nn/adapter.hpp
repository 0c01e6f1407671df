// Linear layer with a frozen base (W_0, b_0) and a low-rank adapter of any
// kind (docs/nn.md):
//   y = W_0 x + b_0 + (alpha / r) B S_i A x        (task i; S_i = I unless colora)
// Batch-major: X is n x p (one example per row), Y = X W_0^T + 1 b_0^T + ...
// The update is applied as ((X A^T) S_i^T) B^T: no q x p matrix is formed.
#pragma once

#include <string>
#include <vector>

#include "colora/core/adapter.hpp"
#include "colora/core/linalg.hpp"
#include "colora/core/random.hpp"
#include "colora/nn/param.hpp"

namespace colora {
namespace nn {

/// Which adapter a Linear carries and its size.
struct AdapterSpec {
  AdapterKind kind = AdapterKind::None;
  Index rank = 4;                  ///< r, 1 <= r <= min(in, out) (unused for None)
  double alpha = 0.0;              ///< scaling alpha / r; alpha <= 0 means alpha = r (scale 1)
  CoreKind core = CoreKind::Full;  ///< colora only: full r x r core or diagonal (r numbers)

  double scale() const noexcept { return alpha > 0 ? alpha / double(rank) : 1.0; }

  void validate(const char* where, const std::string& layer, Index in, Index out) const {
    if (kind == AdapterKind::None) return;
    detail::require(rank >= 1 && rank <= std::min(in, out), where, "layer '", layer, "': AdapterSpec.rank = ", rank,
                    " must be in [1, min(in, out) = ", std::min(in, out), "]");
    detail::require(std::isfinite(alpha), where, "layer '", layer, "': AdapterSpec.alpha = ", alpha, " must be finite");
  }
};

/// Shorthand: AdapterSpec{kind, rank, alpha, core}.
inline AdapterSpec adapter(AdapterKind kind, Index rank = 4, double alpha = 0.0, CoreKind core = CoreKind::Full) {
  return AdapterSpec{kind, rank, alpha, core};
}

template <class S>
class Linear {
 public:
  using Scalar = S;

  /// Activations kept between forward and backward. `x` points at the input
  /// passed to forward, which must stay alive until backward.
  struct Cache {
    const Matrix<S>* x = nullptr;
    Matrix<S> u;  ///< X A^T (n x r)
    Matrix<S> v;  ///< u S^T (n x r), colora only
  };

  Linear() = default;

  /// `in` -> `out` features for `num_tasks` tasks. W_0 ~ N(0, 1/in), b_0 = 0.
  /// Adapter initialization (docs/nn.md): B (or every B_i) = 0 so W = W_0 at
  /// start; A random N(0, 1/in) (lora, global-lora, ffa, fedsa) or with
  /// orthonormal rows (colora); S_i = I. With `base_trainable` W_0 and b_0
  /// are Shared parameters (pre-training) instead of Frozen.
  Linear(const std::string& name, Index in, Index out, int num_tasks, const AdapterSpec& spec, Rng rng,
         bool base_trainable = false)
      : spec_(spec), in_(in), out_(out), tasks_(num_tasks) {
    const char* where = "colora::nn::Linear";
    detail::require(in >= 1 && out >= 1, where, "layer '", name, "': in = ", in, " and out = ", out, " must be >= 1");
    detail::require(num_tasks >= 1, where, "layer '", name, "': num_tasks = ", num_tasks, " must be >= 1");
    spec.validate(where, name, in, out);
    const ParamRole base_role = base_trainable ? ParamRole::Shared : ParamRole::Frozen;
    Rng base_rng = rng.substream(0);
    W0 = make(name + ".W0", base_rng.normal_matrix<S>(out, in, 1.0 / std::sqrt(double(in))), base_role);
    b0 = make(name + ".b0", Matrix<S>::Zero(1, out), base_role);
    const Index r = spec.rank;
    const double sa = 1.0 / std::sqrt(double(in));
    switch (spec.kind) {
      case AdapterKind::None: break;
      case AdapterKind::Lora:
        for (int t = 0; t < num_tasks; ++t) {
          Rng tr = rng.substream(100 + std::uint64_t(t));
          As.push_back(
              make(name + ".A[" + std::to_string(t) + "]", tr.normal_matrix<S>(r, in, sa), ParamRole::Personal, t));
          Bs.push_back(make(name + ".B[" + std::to_string(t) + "]", Matrix<S>::Zero(out, r), ParamRole::Personal, t));
        }
        break;
      case AdapterKind::Colora: {
        Rng ar = rng.substream(1);
        A = make(name + ".A", haar_orthonormal<S>(ar, in, r).transpose(), ParamRole::Shared);
        B = make(name + ".B", Matrix<S>::Zero(out, r), ParamRole::Shared);
        for (int t = 0; t < num_tasks; ++t) {
          Matrix<S> s0 = spec.core == CoreKind::Full ? Matrix<S>(Matrix<S>::Identity(r, r)) : Matrix<S>::Ones(r, 1);
          Ss.push_back(make(name + ".S[" + std::to_string(t) + "]", std::move(s0), ParamRole::Personal, t));
        }
        break;
      }
      case AdapterKind::GlobalLora:
      case AdapterKind::Ffa: {
        Rng ar = rng.substream(1);
        A = make(name + ".A", ar.normal_matrix<S>(r, in, sa),
                 spec.kind == AdapterKind::Ffa ? ParamRole::Frozen : ParamRole::Shared);
        B = make(name + ".B", Matrix<S>::Zero(out, r), ParamRole::Shared);
        break;
      }
      case AdapterKind::Fedsa: {
        Rng ar = rng.substream(1);
        A = make(name + ".A", ar.normal_matrix<S>(r, in, sa), ParamRole::Shared);
        for (int t = 0; t < num_tasks; ++t)
          Bs.push_back(make(name + ".B[" + std::to_string(t) + "]", Matrix<S>::Zero(out, r), ParamRole::Personal, t));
        break;
      }
    }
  }

  Index in() const noexcept { return in_; }
  Index out() const noexcept { return out_; }
  int num_tasks() const noexcept { return tasks_; }
  const AdapterSpec& spec() const noexcept { return spec_; }
  bool has_adapter() const noexcept { return spec_.kind != AdapterKind::None; }

  /// The adapter factors used for `task` (S is nullptr unless colora).
  const Param<S>& A_of(int task) const { return spec_.kind == AdapterKind::Lora ? As[task] : A; }
  const Param<S>& B_of(int task) const {
    return spec_.kind == AdapterKind::Lora || spec_.kind == AdapterKind::Fedsa ? Bs[task] : B;
  }
  const Param<S>* S_of(int task) const { return spec_.kind == AdapterKind::Colora ? &Ss[task] : nullptr; }
  Param<S>& A_of(int task) { return const_cast<Param<S>&>(static_cast<const Linear&>(*this).A_of(task)); }
  Param<S>& B_of(int task) { return const_cast<Param<S>&>(static_cast<const Linear&>(*this).B_of(task)); }

  /// The dense effective weight W_0 + (alpha/r) B S_i A (q x p), for tests
  /// and diagnostics only; training never forms it.
  Matrix<S> effective_weight(int task) const {
    check_task(task, "colora::nn::Linear::effective_weight");
    Matrix<S> W = W0.value;
    if (!has_adapter()) return W;
    const S c = S(spec_.scale());
    const Matrix<S>& a = A_of(task).value;
    const Matrix<S>& b = B_of(task).value;
    if (const Param<S>* s = S_of(task)) {
      if (spec_.core == CoreKind::Full)
        W.noalias() += c * (b * s->value * a);
      else
        W.noalias() += c * (b * s->value.col(0).asDiagonal() * a);
    } else {
      W.noalias() += c * (b * a);
    }
    return W;
  }

  void forward(const Matrix<S>& X, int task, Cache& cache, Matrix<S>& Y) const {
    const char* where = "colora::nn::Linear::forward";
    check_task(task, where);
    detail::require(X.cols() == in_, where, "layer '", W0.name, "': input has ", X.cols(),
                    " columns, expected in = ", in_);
    cache.x = &X;
    Y.noalias() = X * W0.value.transpose();
    Y.rowwise() += b0.value.row(0);
    if (!has_adapter()) return;
    const S c = S(spec_.scale());
    cache.u.noalias() = X * A_of(task).value.transpose();
    if (const Param<S>* s = S_of(task)) {
      if (spec_.core == CoreKind::Full)
        cache.v.noalias() = cache.u * s->value.transpose();
      else
        cache.v.noalias() = cache.u * s->value.col(0).asDiagonal();
      Y.noalias() += c * (cache.v * B_of(task).value.transpose());
    } else {
      Y.noalias() += c * (cache.u * B_of(task).value.transpose());
    }
  }

  /// Accumulates the wanted parameter gradients into `g`; writes dL/dX into
  /// *dX unless dX is nullptr.
  void backward(const Matrix<S>& dY, int task, const Cache& cache, Grads<S>& g, Matrix<S>* dX) const {
    const char* where = "colora::nn::Linear::backward";
    check_task(task, where);
    detail::require(cache.x != nullptr && dY.rows() == cache.x->rows() && dY.cols() == out_, where, "layer '", W0.name,
                    "': dY is ", dY.rows(), " x ", dY.cols(), ", expected ", cache.x ? cache.x->rows() : Index(-1),
                    " x ", out_, " (forward first)");
    const Matrix<S>& X = *cache.x;
    if (g.wants(W0)) {
      g.add(W0, dY.transpose() * X);
      g.add(b0, dY.colwise().sum());
    }
    if (dX) dX->noalias() = dY * W0.value;
    if (!has_adapter()) return;
    const Param<S>& a = A_of(task);
    const Param<S>& b = B_of(task);
    const Param<S>* s = S_of(task);
    const bool wa = g.wants(a), wb = g.wants(b), ws = s && g.wants(*s);
    if (!(wa || wb || ws || dX)) return;
    const S c = S(spec_.scale());
    const Matrix<S>& v = s ? cache.v : cache.u;
    if (wb) g.add(b, c * (dY.transpose() * v));
    if (!(wa || ws || dX)) return;
    Matrix<S> dv;
    dv.noalias() = c * (dY * b.value);  // dL/dv, n x r
    Matrix<S> du_store;
    const Matrix<S>* du = &dv;
    if (s) {
      if (spec_.core == CoreKind::Full) {
        if (ws) g.add(*s, dv.transpose() * cache.u);
        du_store.noalias() = dv * s->value;
      } else {
        if (ws) g.add(*s, dv.cwiseProduct(cache.u).colwise().sum().transpose());
        du_store.noalias() = dv * s->value.col(0).asDiagonal();
      }
      du = &du_store;
    }
    if (wa) g.add(a, du->transpose() * X);
    if (dX) dX->noalias() += *du * a.value;
  }

  template <class F>
  void visit(F&& f) {
    f(W0);
    f(b0);
    if (spec_.kind == AdapterKind::None) return;
    if (spec_.kind != AdapterKind::Lora) f(A);
    if (spec_.kind != AdapterKind::Lora && spec_.kind != AdapterKind::Fedsa) f(B);
    for (auto& p : As) f(p);
    for (auto& p : Bs) f(p);
    for (auto& p : Ss) f(p);
  }

  /// Number of adapter scalars: (shared, personal per task, frozen adapter).
  struct Counts {
    Index shared = 0, personal_per_task = 0, frozen = 0;
  };
  Counts adapter_counts() const {
    Counts n;
    const Index r = spec_.rank, p = in_, q = out_;
    switch (spec_.kind) {
      case AdapterKind::None: break;
      case AdapterKind::Lora: n.personal_per_task = r * (p + q); break;
      case AdapterKind::Colora:
        n.shared = r * (p + q);
        n.personal_per_task = spec_.core == CoreKind::Full ? r * r : r;
        break;
      case AdapterKind::GlobalLora: n.shared = r * (p + q); break;
      case AdapterKind::Ffa:
        n.shared = q * r;
        n.frozen = r * p;
        break;
      case AdapterKind::Fedsa:
        n.shared = r * p;
        n.personal_per_task = q * r;
        break;
    }
    return n;
  }

  Param<S> W0, b0;           ///< base: q x p and 1 x q
  Param<S> A, B;             ///< shared factors (colora, global-lora, ffa, fedsa's A)
  std::vector<Param<S>> As;  ///< personal A_i (lora)
  std::vector<Param<S>> Bs;  ///< personal B_i (lora, fedsa)
  std::vector<Param<S>> Ss;  ///< personal cores S_i (colora): r x r, or r x 1 if diagonal

 private:
  static Param<S> make(std::string name, Matrix<S> value, ParamRole role, int task = -1) {
    Param<S> p;
    p.name = std::move(name);
    p.value = std::move(value);
    p.role = role;
    p.task = role == ParamRole::Personal ? task : -1;
    return p;
  }
  void check_task(int task, const char* where) const {
    detail::require(task >= 0 && task < tasks_, where, "layer '", W0.name, "': task = ", task, " out of range [0, ",
                    tasks_, ")");
  }

  AdapterSpec spec_;
  Index in_ = 0, out_ = 0;
  int tasks_ = 1;
};

}  // namespace nn
}  // namespace colora
