// Collaborative multi-task trainer for the networks of colora::nn
// (docs/nn.md). Per iteration every task draws its own minibatch and runs
// forward/backward on its own buffers (OpenMP over tasks); the gradients of
// the shared parameters are then summed over tasks in task order 0..k-1, so
// the result is bitwise identical for any thread count.
//
// Schedules: Joint (one step on shared and personal parameters together) and
// Alternating (tau personal steps, then shared_steps shared steps, as in the
// linear solver, docs/solver.md and docs/nn.md).
//
// Training policy: the options' patience / restore_best, a function callback
// (set_callback), and callback objects passed to run() (EarlyStopAtMinLoss,
// StoreBest, or your own: colora/nn/training_policy.hpp). Checkpoints are
// serialized by colora/nn/checkpoint.hpp.
#pragma once

#include <cmath>
#include <cstdint>
#include <exception>
#include <functional>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "colora/core/random.hpp"
#include "colora/core/status.hpp"
#include "colora/detail/parallel.hpp"
#include "colora/nn/checkpoint.hpp"
#include "colora/nn/loss.hpp"
#include "colora/nn/optim.hpp"
#include "colora/nn/trainer_options.hpp"
#include "colora/nn/training_policy.hpp"

namespace colora {
namespace nn {

template <class Model>
class Trainer {
 public:
  using Scalar = typename Model::Scalar;
  using S = Scalar;
  /// Called after each evaluation; return false to stop (CallbackRequested).
  using Callback = std::function<bool(const EvalRecord&)>;

  /// `model` must outlive the trainer; `data` has one entry per task.
  Trainer(Model& model, std::vector<TaskData<S>> data, TrainerOptions opts = {})
      : model_(model), data_(std::move(data)), opts_(opts), opt_(opts.optimizer) {
    const char* w = "colora::nn::Trainer";
    opts_.validate();
    const int k = model.num_tasks();
    detail::require(int(data_.size()) == k, w, "data has ", data_.size(), " tasks, the model has num_tasks = ", k);
    for (int i = 0; i < k; ++i) {
      check_split(i, data_[i].X, data_[i].Y, "X", "Y");
      if (data_[i].X_val.size() > 0 || data_[i].Y_val.size() > 0)
        check_split(i, data_[i].X_val, data_[i].Y_val, "X_val", "Y_val");
    }
    params_ = param_list(model_);
    personal_ids_.resize(k);
    for (auto* p : params_) {
      if (p->role == ParamRole::Shared) shared_ids_.push_back(p->id);
      if (p->role == ParamRole::Personal) {
        detail::require(p->task >= 0 && p->task < k, w, "parameter '", p->name, "' has task ", p->task);
        personal_ids_[p->task].push_back(p->id);
      }
    }
    for (auto& v : personal_ids_) has_personal_ |= !v.empty();
    detail::require(!shared_ids_.empty() || has_personal_, w,
                    "the model has no trainable parameter (every adapter is none and the base is frozen)");
    work_.resize(k);
    counters_.assign(k, 0);
    shared_sum_.resize(params_.size());
    threads_ = detail::resolve_threads(opts_.num_threads, k);
  }

  void set_callback(Callback cb) { callback_ = std::move(cb); }
  const TrainerOptions& options() const noexcept { return opts_; }
  int iteration() const noexcept { return iter_; }
  const TrainResult& result() const noexcept { return result_; }
  Model& model() noexcept { return model_; }
  /// Status of the last run() (TrainResult::status, docs/nn.md): Success, MaxIterations or
  /// NumericalIssue; NotComputed before the first run() and after load_checkpoint.
  Status info() const noexcept { return result_.status; }

  /// Copies of the trainable parameters (param_list order), e.g. to keep a state.
  std::vector<Matrix<S>> trainable_values() const {
    std::vector<Matrix<S>> v;
    for (auto* p : params_)
      if (p->trainable()) v.push_back(p->value);
    return v;
  }
  /// Puts back values taken by trainable_values() (same count and shapes, else std::invalid_argument).
  void set_trainable_values(const std::vector<Matrix<S>>& v) {
    std::size_t j = 0;
    for (auto* p : params_)
      if (p->trainable() && (j >= v.size() || v[j].rows() != p->value.rows() || v[j++].cols() != p->value.cols()))
        detail::invalid("colora::nn::Trainer::set_trainable_values", "value ", j, " does not fit parameter '", p->name,
                        "'");
    detail::require(j == v.size(), "colora::nn::Trainer::set_trainable_values", v.size(), " values, ", j,
                    " trainable parameters");
    restore(v);
  }

  /// Trains until options().max_iterations iterations in total, early stopping,
  /// a callback, or a non-finite loss/gradient (NumericalIssue; the
  /// parameters are those of the last good step). `cbs`: callback objects
  /// (training_policy.hpp), taken by reference.
  template <class... Callbacks>
  TrainResult run(Callbacks&&... cbs) {
    using Pol = Policies<Trainer, std::remove_reference_t<Callbacks>...>;
    if constexpr (Pol::kNeedsStart) Pol::begin(*this, evaluate(), cbs...);
    result_.status = Status::Success;
    result_.reason = StopReason::MaxIterations;
    bool stopped = false;
    while (iter_ < opts_.max_iterations) {
      if (!one_iteration()) {
        result_.status = Status::NumericalIssue;
        result_.reason = StopReason::NonFiniteValue;
        stopped = true;
        break;
      }
      ++iter_;
      if (!(opts_.eval_every > 0 && iter_ % opts_.eval_every == 0)) continue;
      EvalRecord rec = evaluate();
      rec.iteration = iter_;
      rec.train_loss = last_train_loss_;
      result_.history.push_back(rec);
      if (!std::isfinite(rec.val_loss)) {
        result_.status = Status::NumericalIssue;
        result_.reason = StopReason::NonFiniteValue;
        stopped = true;
        break;
      }
      if (rec.val_loss < result_.best_val_loss - opts_.min_delta) {
        result_.best_val_loss = rec.val_loss;
        result_.best_iteration = iter_;
        bad_evals_ = 0;
        if (opts_.patience > 0 && opts_.restore_best) best_ = trainable_values();
      } else {
        ++bad_evals_;
      }
      const bool policy_stop = Pol::evaluation(*this, rec, cbs...);
      if ((callback_ && !callback_(rec)) || policy_stop) {
        result_.reason = StopReason::CallbackRequested;
        stopped = true;
        break;
      }
      if (opts_.patience > 0 && bad_evals_ >= opts_.patience) {
        result_.reason = StopReason::ToleranceReached;
        if (opts_.restore_best && !best_.empty()) restore(best_);
        stopped = true;
        break;
      }
    }
    if (!stopped && opts_.patience > 0) result_.status = Status::MaxIterations;
    result_.iterations = iter_;
    Pol::end(*this, result_, cbs...);
    result_.final_eval = evaluate();
    return result_;
  }

  /// One iteration (no evaluation, no early stopping): for benchmarks and
  /// custom loops. Returns false, changing nothing, on a non-finite loss or
  /// gradient.
  bool step() {
    detail::require(iter_ < std::numeric_limits<int>::max(), "colora::nn::Trainer::step", "iteration ", iter_,
                    " is the last an int can count");
    if (!one_iteration()) return false;
    ++iter_;
    result_.iterations = iter_;
    return true;
  }

  /// Per-task loss (and accuracy for CrossEntropy) on the validation data,
  /// or on the training data of tasks without validation data.
  EvalRecord evaluate() {
    const int k = model_.num_tasks();
    EvalRecord rec;
    rec.iteration = iter_;
    rec.train_loss = last_train_loss_;
    rec.task_loss.assign(k, 0.0);
    if (opts_.loss == LossKind::CrossEntropy) rec.task_accuracy.assign(k, 0.0);
    run_tasks([&](int i) {
      const TaskData<S>& d = data_[i];
      const bool val = d.X_val.size() > 0;
      Work& wk = work_[i];
      model_.forward(val ? d.X_val : d.X, i, wk.cache, wk.out);
      rec.task_loss[i] = loss_value(opts_.loss, wk.out, val ? d.Y_val : d.Y, static_cast<Matrix<S>*>(nullptr));
      if (opts_.loss == LossKind::CrossEntropy) rec.task_accuracy[i] = accuracy(wk.out, val ? d.Y_val : d.Y);
    });
    double s = 0;
    for (double v : rec.task_loss) s += v;
    rec.val_loss = s / k;
    return rec;
  }

  /// Saves the trainable parameters, the optimizer state, the minibatch
  /// counters, the early-stopping state and the history (atomic write;
  /// format: checkpoint.hpp).
  void save_checkpoint(const std::string& path) {
    TrainerState<S> s;
    s.iteration = iter_;
    s.last_train_loss = last_train_loss_;
    s.bad_evals = bad_evals_;
    s.best_val_loss = result_.best_val_loss;
    s.best_iteration = result_.best_iteration;
    s.counters = counters_;
    s.values = trainable_values();
    s.steps = opt_.step_counts();
    s.first = opt_.first_moments();
    s.second = opt_.second_moments();
    s.best = best_;
    s.history = result_.history;
    write_checkpoint_file(path, encode_trainer_state(s, fingerprint(model_), frozen_hash(model_)));
  }

  /// Restores a checkpoint written by save_checkpoint for the same
  /// architecture (std::invalid_argument otherwise) and base weights; a
  /// truncated, corrupt or inconsistent file is std::runtime_error naming the
  /// file and the field. The payload is treated as hostile: every count, shape
  /// and value is checked (decode_trainer_state) before it is used. On any
  /// error the trainer and the model are left unchanged.
  void load_checkpoint(const std::string& path) {
    TrainerState<S> s = decode_trainer_state<S>(read_checkpoint_file(path), path, params_, counters_.size(),
                                                fingerprint(model_), frozen_hash(model_),
                                                "colora::nn::Trainer::load_checkpoint");
    restore(s.values);
    opt_.first_moments() = std::move(s.first);
    opt_.second_moments() = std::move(s.second);
    opt_.step_counts() = std::move(s.steps);
    iter_ = int(s.iteration);
    last_train_loss_ = s.last_train_loss;
    bad_evals_ = int(s.bad_evals);
    counters_ = std::move(s.counters);
    best_ = std::move(s.best);
    result_ = TrainResult{};
    result_.best_val_loss = s.best_val_loss;
    result_.best_iteration = int(s.best_iteration);
    result_.iterations = iter_;
    result_.history = std::move(s.history);
  }

  /// Largest minibatch counter and optimizer step count a checkpoint may hold (checkpoint.hpp).
  static constexpr std::int64_t kMaxLoadedCount = kCheckpointMaxCount;

 private:
  struct Work {
    typename Model::Cache cache;
    Grads<S> grads;
    Matrix<S> Xb, Yb, out, dout;
    double loss = 0;
    std::vector<Index> perm;
    std::int64_t perm_epoch = -1;
  };

  void check_split(int i, const Matrix<S>& X, const Matrix<S>& Y, const char* xn, const char* yn) const {
    const char* w = "colora::nn::Trainer";
    const Index T = model_.rows_per_example();
    detail::require(X.rows() >= T && X.rows() % T == 0, w, "task ", i, ": ", xn, " has ", X.rows(),
                    " rows, expected a positive multiple of rows_per_example = ", T);
    detail::require(X.cols() == model_.input_cols(), w, "task ", i, ": ", xn, " has ", X.cols(),
                    " columns, the model expects ", model_.input_cols());
    detail::require(Y.rows() == X.rows() / T, w, "task ", i, ": ", yn, " has ", Y.rows(), " rows, ", xn, " holds ",
                    X.rows() / T, " examples");
    detail::require_finite(X, w, detail::concat("task ", i, ": ", xn));
    detail::require_finite(Y, w, detail::concat("task ", i, ": ", yn));
    if (opts_.loss == LossKind::CrossEntropy)
      check_labels(Y, model_.output_cols(), w, detail::concat("task ", i, ": ", yn));
    else
      detail::require(Y.cols() == model_.output_cols(), w, "task ", i, ": ", yn, " has ", Y.cols(),
                      " columns, the model has ", model_.output_cols(), " outputs");
  }

  /// Runs f(task) for every task, in parallel; rethrows the first exception (by task).
  template <class F>
  void run_tasks(F&& f) {
    detail::parallel_for(
        model_.num_tasks(), threads_, [&](Index i) { f(int(i)); }, /*static_schedule=*/true);
  }

  void next_batch(int i) {
    const TaskData<S>& d = data_[i];
    Work& wk = work_[i];
    const Index T = model_.rows_per_example(), n = d.X.rows() / T;
    const Index bs = opts_.batch_size == 0 || opts_.batch_size >= n ? n : opts_.batch_size;
    const std::int64_t per_epoch = (n + bs - 1) / bs;
    const std::int64_t c = counters_[i]++;
    const std::int64_t epoch = c / per_epoch, pos = c % per_epoch;
    if (bs == n) {
      wk.Xb = d.X;
      wk.Yb = d.Y;
      return;
    }
    if (wk.perm_epoch != epoch) {
      wk.perm.resize(n);
      for (Index e = 0; e < n; ++e) wk.perm[e] = e;
      Rng rng = Rng(opts_.seed, 0x6261746368ULL).substream(std::uint64_t(i)).substream(std::uint64_t(epoch));
      for (Index e = n - 1; e > 0; --e) std::swap(wk.perm[e], wk.perm[Index(rng.below(std::uint64_t(e + 1)))]);
      wk.perm_epoch = epoch;
    }
    const Index b0 = pos * bs, b1 = std::min(n, b0 + bs);
    wk.Xb.resize((b1 - b0) * T, d.X.cols());
    wk.Yb.resize(b1 - b0, d.Y.cols());
    for (Index e = b0; e < b1; ++e) {
      wk.Xb.middleRows((e - b0) * T, T) = d.X.middleRows(wk.perm[e] * T, T);
      wk.Yb.row(e - b0) = d.Y.row(wk.perm[e]);
    }
  }

  /// Forward/backward of every task on its next minibatch; false on a
  /// non-finite loss or gradient (nothing is updated then).
  bool compute(bool shared, bool personal) {
    const std::size_t np = params_.size();
    run_tasks([&](int i) {
      Work& wk = work_[i];
      next_batch(i);
      wk.grads.begin(np, shared, personal);
      model_.forward(wk.Xb, i, wk.cache, wk.out);
      wk.loss = loss_value(opts_.loss, wk.out, wk.Yb, &wk.dout);
      model_.backward(wk.dout, i, wk.cache, wk.grads, nullptr);
    });
    double s = 0;
    for (auto& wk : work_) {
      if (!std::isfinite(wk.loss)) return false;
      for (std::size_t id = 0; id < np; ++id)
        if (wk.grads.touched[id] && !wk.grads.g[id].allFinite()) return false;
      s += wk.loss;
    }
    last_train_loss_ = s / double(work_.size());
    return true;
  }

  /// Applies the optimizer; if an update produces a non-finite parameter,
  /// every parameter and the optimizer state are rolled back and false is returned.
  bool apply(bool shared, bool personal) {
    std::vector<int> upd;
    if (personal)
      for (std::size_t i = 0; i < work_.size(); ++i)
        for (int id : personal_ids_[i])
          if (work_[i].grads.touched[id]) upd.push_back(id);
    if (shared)
      for (int id : shared_ids_)
        for (auto& wk : work_)
          if (wk.grads.touched[id]) {
            upd.push_back(id);
            break;
          }
    opt_.reserve(params_.size());
    backup_.resize(upd.size());
    for (std::size_t j = 0; j < upd.size(); ++j) {
      const int id = upd[j];
      backup_[j].value = params_[id]->value;
      backup_[j].m = opt_.first_moments()[id];
      backup_[j].v = opt_.second_moments()[id];
      backup_[j].t = opt_.step_counts()[id];
    }
    update(shared, personal);
    bool finite = true;
    for (int id : upd) finite = finite && params_[id]->value.allFinite();
    if (finite) return true;
    for (std::size_t j = 0; j < upd.size(); ++j) {
      const int id = upd[j];
      params_[id]->value = backup_[j].value;
      opt_.first_moments()[id] = backup_[j].m;
      opt_.second_moments()[id] = backup_[j].v;
      opt_.step_counts()[id] = backup_[j].t;
    }
    return false;
  }

  void update(bool shared, bool personal) {
    if (personal)
      for (std::size_t i = 0; i < work_.size(); ++i) {
        std::vector<int> ids;
        for (int id : personal_ids_[i])
          if (work_[i].grads.touched[id]) ids.push_back(id);
        if (!ids.empty()) opt_.step(params_, ids, work_[i].grads.g);
      }
    if (shared && !shared_ids_.empty()) {
      std::vector<int> ids;
      for (int id : shared_ids_) {
        bool any = false;
        for (auto& wk : work_) any |= bool(wk.grads.touched[id]);
        if (any) ids.push_back(id);
      }
      detail::parallel_for(
          Index(ids.size()), opts_.num_threads,
          [&](Index j) {
            const int id = ids[size_t(j)];
            bool first = true;
            for (auto& wk : work_) {  // fixed task order: bitwise identical for any thread count
              if (!wk.grads.touched[id]) continue;
              if (first)
                shared_sum_[id] = wk.grads.g[id];
              else
                shared_sum_[id] += wk.grads.g[id];
              first = false;
            }
          },
          /*static_schedule=*/true);
      if (!ids.empty()) opt_.step(params_, ids, shared_sum_);
    }
  }

  bool one_iteration() {
    if (opts_.schedule == Schedule::Joint) {
      return compute(true, true) && apply(true, true);
    }
    if (has_personal_)
      for (int s = 0; s < opts_.tau; ++s)
        if (!(compute(false, true) && apply(false, true))) return false;
    if (!shared_ids_.empty())
      for (int s = 0; s < opts_.shared_steps; ++s)
        if (!(compute(true, false) && apply(true, false))) return false;
    return true;
  }

  void restore(const std::vector<Matrix<S>>& in) {
    std::size_t j = 0;
    for (auto* p : params_)
      if (p->trainable()) p->value = in[j++];
  }

  Model& model_;
  std::vector<TaskData<S>> data_;
  TrainerOptions opts_;
  Optimizer<S> opt_;
  Callback callback_;
  std::vector<Param<S>*> params_;
  std::vector<int> shared_ids_;
  std::vector<std::vector<int>> personal_ids_;
  bool has_personal_ = false;
  std::vector<Work> work_;
  std::vector<std::int64_t> counters_;
  std::vector<Matrix<S>> shared_sum_;
  std::vector<Matrix<S>> best_;
  struct Backup {
    Matrix<S> value, m, v;
    std::int64_t t = 0;
  };
  std::vector<Backup> backup_;
  int threads_ = 1;
  int iter_ = 0;
  int bad_evals_ = 0;
  double last_train_loss_ = std::numeric_limits<double>::quiet_NaN();
  TrainResult result_;
};

}  // namespace nn
}  // namespace colora
