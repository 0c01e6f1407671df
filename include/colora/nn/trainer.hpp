// Collaborative multi-task trainer for the networks of colora::nn
// (docs/nn.md). Per iteration every task draws its own minibatch and runs
// forward/backward on its own buffers (OpenMP over tasks); the gradients of
// the shared parameters are then summed over tasks in task order 0..k-1, so
// the result is bitwise identical for any thread count.
//
// Schedules: Joint (one step on shared and personal parameters together) and
// Alternating (tau personal steps, then shared_steps shared steps, as in the
// linear solver, spec section 6 and 9).
#pragma once

#include <cmath>
#include <cstdint>
#include <exception>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "colora/core/random.hpp"
#include "colora/core/status.hpp"
#include "colora/detail/parallel.hpp"
#include "colora/nn/checkpoint.hpp"
#include "colora/nn/loss.hpp"
#include "colora/nn/optim.hpp"

namespace colora {
namespace nn {

/// One task's data. X has rows_per_example() rows per example (T for a
/// sequence model), Y one row per example (targets, or class ids for
/// CrossEntropy). Empty X_val/Y_val: evaluation uses the training data.
template <class S>
struct TaskData {
  Matrix<S> X, Y, X_val, Y_val;
};

enum class Schedule { Joint, Alternating };

inline const char* to_string(Schedule s) noexcept { return s == Schedule::Joint ? "joint" : "alternating"; }
inline Schedule parse_schedule(const std::string& s) {
  if (s == "joint") return Schedule::Joint;
  if (s == "alternating") return Schedule::Alternating;
  detail::invalid("colora::nn::parse_schedule", "unknown schedule '", s, "' (expected joint or alternating)");
}

struct TrainerOptions {
  Schedule schedule = Schedule::Joint;
  int iterations = 100;        ///< total iterations (a resumed run continues up to this count)
  Index batch_size = 32;       ///< examples per task per step; 0 = full batch
  int tau = 1;                 ///< alternating: personal steps per iteration
  int shared_steps = 1;        ///< alternating: shared steps per iteration
  LossKind loss = LossKind::Mse;
  OptimizerOptions optimizer;  ///< kind, shared / personal hyper-parameters, clip_norm
  int eval_every = 10;         ///< evaluate (history, early stopping, callback) every this many iterations; 0 = never
  int patience = 0;            ///< early stopping after this many evaluations without improvement (0 = off)
  double min_delta = 0.0;      ///< an improvement must lower the validation loss by more than this
  bool restore_best = true;    ///< on early stopping, go back to the best evaluated parameters
  int num_threads = 0;         ///< OpenMP threads over tasks (0 = all); results do not depend on it
  std::uint64_t seed = 0;      ///< minibatch order

  void validate() const {
    const char* w = "colora::nn::TrainerOptions::validate";
    detail::require(iterations >= 0, w, "iterations = ", iterations, " must be >= 0");
    detail::require(batch_size >= 0, w, "batch_size = ", batch_size, " must be >= 0");
    detail::require(tau >= 1, w, "tau = ", tau, " must be >= 1");
    detail::require(shared_steps >= 1, w, "shared_steps = ", shared_steps, " must be >= 1");
    detail::require(eval_every >= 0, w, "eval_every = ", eval_every, " must be >= 0");
    detail::require(patience >= 0, w, "patience = ", patience, " must be >= 0");
    detail::require(patience == 0 || eval_every > 0, w, "patience = ", patience,
                    " needs evaluations: eval_every = 0");
    detail::require(min_delta >= 0 && std::isfinite(min_delta), w, "min_delta = ", min_delta,
                    " must be finite and >= 0");
    detail::require(num_threads >= 0, w, "num_threads = ", num_threads, " must be >= 0");
    optimizer.validate(w);
  }
};

/// One evaluation: losses on the validation data (or training data).
struct EvalRecord {
  int iteration = 0;
  double train_loss = 0;                ///< mean over tasks of the last minibatch losses
  double val_loss = 0;                  ///< mean over tasks of the per-task evaluation loss
  std::vector<double> task_loss;        ///< per task
  std::vector<double> task_accuracy;    ///< per task (CrossEntropy only, else empty)
};

struct TrainResult {
  Status status = Status::NotComputed;
  StopReason reason = StopReason::NotStarted;  ///< early stopping reports ToleranceReached
  int iterations = 0;                          ///< iterations done in total (including before a resume)
  int best_iteration = -1;                     ///< iteration of the lowest evaluation loss
  double best_val_loss = std::numeric_limits<double>::infinity();
  std::vector<EvalRecord> history;             ///< every eval_every-th evaluation (restored on resume)
  EvalRecord final_eval;                       ///< evaluation of the state run() returns (not in history)
};

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
      check_split(i, data_[i].X, data_[i].Y, "X", "Y", false);
      if (data_[i].X_val.size() > 0 || data_[i].Y_val.size() > 0)
        check_split(i, data_[i].X_val, data_[i].Y_val, "X_val", "Y_val", true);
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
    has_personal_ = false;
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

  /// Trains until options().iterations iterations in total, early stopping,
  /// the callback, or a non-finite loss/gradient (NumericalIssue; the
  /// parameters are those of the last good step).
  TrainResult run() {
    result_.status = Status::Success;
    result_.reason = StopReason::MaxIterations;
    bool stopped = false;
    while (iter_ < opts_.iterations) {
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
        if (opts_.patience > 0 && opts_.restore_best) snapshot(best_);
      } else {
        ++bad_evals_;
      }
      if (callback_ && !callback_(rec)) {
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
  /// counters, the early-stopping state and the history (atomic write).
  void save_checkpoint(const std::string& path) {
    BinaryWriter w;
    w.str("colora-nn-trainer");
    w.str(fingerprint(model_));
    w.u64(frozen_hash(model_));
    w.i64(iter_);
    w.f64(last_train_loss_);
    w.i64(bad_evals_);
    w.f64(result_.best_val_loss);
    w.i64(result_.best_iteration);
    for (auto c : counters_) w.i64(c);
    for (auto* p : params_)
      if (p->trainable()) w.mat(p->value);
    auto& m = opt_.first_moments();
    auto& v = opt_.second_moments();
    auto& t = opt_.step_counts();
    w.u64(t.size());
    for (std::size_t id = 0; id < t.size(); ++id) {
      w.i64(t[id]);
      w.mat(m[id]);
      w.mat(v[id]);
    }
    w.u64(best_.size());
    for (auto& b : best_) w.mat(b);
    w.u64(result_.history.size());
    for (auto& r : result_.history) {
      w.i64(r.iteration);
      w.f64(r.train_loss);
      w.f64(r.val_loss);
      w.u64(r.task_loss.size());
      for (double x : r.task_loss) w.f64(x);
      w.u64(r.task_accuracy.size());
      for (double x : r.task_accuracy) w.f64(x);
    }
    write_checkpoint_file(path, w.bytes());
  }

  /// Restores a checkpoint written by save_checkpoint for the same
  /// architecture (std::invalid_argument otherwise) and base weights; a
  /// truncated, corrupt or inconsistent file is std::runtime_error naming the
  /// file and the field. The payload is treated as hostile: every count, shape
  /// and value is checked (check_loaded) before it is used. On any error the
  /// trainer and the model are left unchanged.
  void load_checkpoint(const std::string& path) {
    const char* w = "colora::nn::Trainer::load_checkpoint";
    const std::string payload = read_checkpoint_file(path);
    BinaryReader r(payload, path);
    if (r.str() != "colora-nn-trainer") r.fail("is not a trainer checkpoint");
    const std::string fp = r.str(), mine = fingerprint(model_);
    if (fp != mine)
      detail::invalid(w, "checkpoint '", path, "' is for another architecture: file has {", fp, "}, model has {",
                      mine, "}");
    if (r.u64() != frozen_hash(model_))
      detail::invalid(w, "checkpoint '", path,
                      "' was written with different frozen (base) weights than this model's");
    // Parse: counts and shapes are checked here, before anything is allocated.
    Loaded s;
    s.iter = r.i64();
    s.last = r.f64();
    s.bad = r.i64();
    s.best_val = r.f64();
    s.best_iter = r.i64();
    s.counters.resize(counters_.size());
    for (auto& c : s.counters) c = r.i64();
    for (auto* p : params_)
      if (p->trainable()) s.values.push_back(r.mat<S>(p->value.rows(), p->value.cols(), false, label(*p)));
    const std::uint64_t nt = r.count(8 + 2 * 16, "optimizer state");
    if (nt != 0 && nt != params_.size())
      r.fail(detail::concat("optimizer state has ", nt, " parameters, the model has ", params_.size()));
    s.t.resize(nt);
    s.m.resize(nt);
    s.v.resize(nt);
    for (std::size_t id = 0; id < nt; ++id) {  // frozen parameters have no moments
      const Param<S>& p = *params_[id];
      const Index rows = p.trainable() ? p.value.rows() : 0, cols = p.trainable() ? p.value.cols() : 0;
      s.t[id] = r.i64();
      s.m[id] = r.mat<S>(rows, cols, true, "first moment of " + label(p));
      s.v[id] = r.mat<S>(rows, cols, true, "second moment of " + label(p));
    }
    const std::uint64_t nb = r.count(16, "best-state snapshot");
    if (nb != 0 && nb != s.values.size())
      r.fail(detail::concat("best-state snapshot has ", nb, " matrices, the model has ", s.values.size(),
                            " trainable parameters"));
    for (auto* p : params_)
      if (p->trainable() && s.best.size() < nb)
        s.best.push_back(r.mat<S>(p->value.rows(), p->value.cols(), false, "best-state snapshot of " + label(*p)));
    const std::uint64_t k = counters_.size();
    s.hist.resize(r.count(40 + 8 * k, "history"));  // a record holds k task losses
    s.hist_iter.resize(s.hist.size());
    for (std::size_t e = 0; e < s.hist.size(); ++e) {
      EvalRecord& h = s.hist[e];
      const std::string what = "history record " + std::to_string(e);
      s.hist_iter[e] = r.i64();
      h.train_loss = r.f64();
      h.val_loss = r.f64();
      const std::uint64_t nl = r.count(8, what + " task_loss");
      if (nl != k) r.fail(detail::concat(what, " has ", nl, " task losses, the model has ", k, " tasks"));
      h.task_loss.resize(nl);
      for (auto& x : h.task_loss) x = r.f64();
      const std::uint64_t na = r.count(8, what + " task_accuracy");
      if (na != 0 && na != k)
        r.fail(detail::concat(what, " has ", na, " task accuracies, expected 0 or ", k, " (one per task)"));
      h.task_accuracy.resize(na);
      for (auto& x : h.task_accuracy) x = r.f64();
    }
    if (!r.at_end()) r.fail("has unexpected bytes after the trainer state");
    check_loaded(s, r);
    // Commit.
    std::size_t j = 0;
    for (auto* p : params_)
      if (p->trainable()) p->value = std::move(s.values[j++]);
    opt_.first_moments() = std::move(s.m);
    opt_.second_moments() = std::move(s.v);
    opt_.step_counts() = std::move(s.t);
    iter_ = int(s.iter);
    last_train_loss_ = s.last;
    bad_evals_ = int(s.bad);
    counters_ = std::move(s.counters);
    best_ = std::move(s.best);
    for (std::size_t e = 0; e < s.hist.size(); ++e) s.hist[e].iteration = int(s.hist_iter[e]);
    result_ = TrainResult{};
    result_.best_val_loss = s.best_val;
    result_.best_iteration = int(s.best_iter);
    result_.iterations = iter_;
    result_.history = std::move(s.hist);
  }

  /// Largest minibatch counter and optimizer step count a checkpoint may hold:
  /// exact in a double, and 2^63 - 2^53 increments away from overflowing.
  static constexpr std::int64_t kMaxLoadedCount = std::int64_t(1) << 53;

 private:
  struct Work {
    typename Model::Cache cache;
    Grads<S> grads;
    Matrix<S> Xb, Yb, out, dout;
    double loss = 0;
    std::vector<Index> perm;
    std::int64_t perm_epoch = -1;
  };

  /// The state a checkpoint holds, parsed (counts and shapes checked) but not yet validated or committed.
  struct Loaded {
    std::int64_t iter = 0, bad = 0, best_iter = -1;
    double last = 0, best_val = 0;
    std::vector<std::int64_t> counters, t, hist_iter;
    std::vector<Matrix<S>> values, m, v, best;
    std::vector<EvalRecord> hist;
  };

  static std::string label(const Param<S>& p) {
    return (p.trainable() ? "parameter '" : "frozen parameter '") + p.name + "'";
  }

  /// Checks the parsed state as a whole (every value against its range and
  /// the other fields) before load_checkpoint commits it; r.fail names the field.
  void check_loaded(const Loaded& s, const BinaryReader& r) const {
    auto range = [&](std::int64_t x, std::int64_t lo, std::int64_t hi, const std::string& what) {
      if (x < lo || x > hi) r.fail(detail::concat(what, " ", x, " is out of range [", lo, ", ", hi, "]"));
    };
    // Finite entries; second moments may also be +inf (AdamW reaches it when a squared gradient overflows).
    auto entries = [&](const Matrix<S>& m, const std::string& what, bool second_moment) {
      for (Index c = 0; c < m.cols(); ++c)
        for (Index i = 0; i < m.rows(); ++i) {
          const double x = double(m(i, c));
          if (second_moment ? !(x >= 0) : !std::isfinite(x))
            r.fail(detail::concat(what, " has the entry ", x, " at (", i, ", ", c, "), expected ",
                                  second_moment ? "a value >= 0" : "a finite value"));
        }
    };
    range(s.iter, 0, std::numeric_limits<int>::max(), "iteration");
    range(s.bad, 0, s.iter, "bad_evals");
    range(s.best_iter, -1, s.iter, "best_iteration");
    if (!(s.best_val > -std::numeric_limits<double>::infinity()))
      r.fail(detail::concat("best validation loss ", s.best_val, " is not a loss (expected finite or +inf)"));
    for (std::size_t i = 0; i < s.counters.size(); ++i)
      range(s.counters[i], 0, kMaxLoadedCount, "task " + std::to_string(i) + "'s minibatch counter");
    std::size_t j = 0;
    for (auto* p : params_)
      if (p->trainable()) {
        entries(s.values[j], label(*p), false);
        if (j < s.best.size()) entries(s.best[j], "best-state snapshot of " + label(*p), false);
        ++j;
      }
    for (std::size_t id = 0; id < s.t.size(); ++id) {
      const Param<S>& p = *params_[id];
      range(s.t[id], 0, p.trainable() ? kMaxLoadedCount : 0, "step count of " + label(p));
      entries(s.m[id], "first moment of " + label(p), false);
      entries(s.v[id], "second moment of " + label(p), true);
    }
    for (std::size_t e = 0; e < s.hist_iter.size(); ++e)
      range(s.hist_iter[e], 0, s.iter, "history record " + std::to_string(e) + "'s iteration");
  }

  void check_split(int i, const Matrix<S>& X, const Matrix<S>& Y, const char* xn, const char* yn, bool val) const {
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
    (void)val;
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
      detail::parallel_for(Index(ids.size()), opts_.num_threads, [&](Index j) {
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
      }, /*static_schedule=*/true);
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

  void snapshot(std::vector<Matrix<S>>& out) const {
    out.clear();
    for (auto* p : params_)
      if (p->trainable()) out.push_back(p->value);
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
