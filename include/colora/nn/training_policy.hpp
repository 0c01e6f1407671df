// Training policy as callback objects for nn::Trainer::run (docs/nn.md,
// "Training policy"), in the style of ensmallen's callbacks: an object passed
// to run(cbs...) may have any of three hooks, each called for every object in
// the order given:
//
//   void begin_training(Trainer& t, const EvalRecord& start)
//       before the first iteration of run(); `start` evaluates the parameters
//       run() starts from (computed once, only if some object has this hook)
//   bool on_evaluation(Trainer& t, const EvalRecord& rec)
//       after each evaluation (every eval_every iterations, with a finite
//       validation loss); every object sees it; returning true from any stops
//       the run (reason CallbackRequested, status Success)
//   void end_training(Trainer& t, TrainResult& result)
//       when the run stops for any reason, before result.final_eval
//
// Objects are taken by reference: their state (best iteration, ...) is
// readable after run(). The library's policies: EarlyStopAtMinLoss (patience,
// min_delta) and StoreBest (keeps and restores the parameters of the minimum
// validation loss).
#pragma once

#include <cmath>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "colora/core/config.hpp"
#include "colora/core/errors.hpp"
#include "colora/nn/trainer_options.hpp"

namespace colora {
namespace nn {

/// Stops training after `patience` evaluations in a row without an improvement of the
/// validation loss by more than `min_delta` (patience 0: never stops). With `include_start`
/// (default) the starting parameters' loss is the first reference, so a run whose training never
/// improves on its start stops after `patience` evaluations. Reusable: begin_training resets it.
class EarlyStopAtMinLoss {
 public:
  explicit EarlyStopAtMinLoss(int patience = 10, double min_delta = 0.0, bool include_start = true)
      : patience_(patience), min_delta_(min_delta), include_start_(include_start) {
    const char* w = "colora::nn::EarlyStopAtMinLoss";
    detail::require(patience >= 0, w, "patience = ", patience, " must be >= 0");
    detail::require(min_delta >= 0 && std::isfinite(min_delta), w, "min_delta = ", min_delta,
                    " must be finite and >= 0");
  }
  template <class T>
  void begin_training(T&, const EvalRecord& start) {
    best_ = include_start_ && std::isfinite(start.val_loss) ? start.val_loss : kInf;
    bad_ = 0;
    stopped_at_ = -1;
  }
  template <class T>
  bool on_evaluation(T&, const EvalRecord& rec) {
    if (rec.val_loss < best_ - min_delta_) {
      best_ = rec.val_loss;
      bad_ = 0;
    } else {
      ++bad_;
    }
    if (patience_ > 0 && bad_ >= patience_) stopped_at_ = rec.iteration;
    return stopped_at_ >= 0;
  }
  int patience() const noexcept { return patience_; }
  double best_loss() const noexcept { return best_; }      ///< lowest loss seen (+inf: none)
  int bad_evaluations() const noexcept { return bad_; }    ///< evaluations since the last improvement
  int stopped_at() const noexcept { return stopped_at_; }  ///< iteration it stopped the run at, -1: did not

 private:
  static constexpr double kInf = std::numeric_limits<double>::infinity();
  int patience_;
  double min_delta_;
  bool include_start_;
  double best_ = kInf;
  int bad_ = 0;
  int stopped_at_ = -1;
};

/// Keeps a copy of the trainable parameters at the evaluation of minimum validation loss
/// (strictly lower: ties keep the earlier; with `include_start` (default) the starting parameters
/// are a candidate, evaluated at the start of run()) and, with `restore` (default), puts them back
/// into the model when the run ends, whatever stopped it (budget, early stop, non-finite value).
/// S is the model's scalar. Reusable: begin_training resets it.
template <class S>
class StoreBest {
 public:
  explicit StoreBest(bool include_start = true, bool restore = true)
      : include_start_(include_start), restore_(restore) {}
  template <class T>
  void begin_training(T& t, const EvalRecord& start) {
    best_loss_ = std::numeric_limits<double>::infinity();
    best_iteration_ = -1;
    best_.clear();
    if (!include_start_) return;
    if (std::isfinite(start.val_loss)) best_loss_ = start.val_loss;
    best_iteration_ = start.iteration;
    best_ = t.trainable_values();
  }
  template <class T>
  bool on_evaluation(T& t, const EvalRecord& rec) {
    if (rec.val_loss < best_loss_) {
      best_loss_ = rec.val_loss;
      best_iteration_ = rec.iteration;
      best_ = t.trainable_values();
    }
    return false;
  }
  template <class T, class Result>
  void end_training(T& t, Result&) {
    if (restore_ && !best_.empty()) t.set_trainable_values(best_);
  }
  double best_loss() const noexcept { return best_loss_; }         ///< +inf if no finite loss was seen
  int best_iteration() const noexcept { return best_iteration_; }  ///< -1 if nothing was kept
  /// The kept parameters (Trainer::trainable_values order); empty if nothing was kept.
  const std::vector<Matrix<S>>& best_values() const noexcept { return best_; }

 private:
  bool include_start_, restore_;
  double best_loss_ = std::numeric_limits<double>::infinity();
  int best_iteration_ = -1;
  std::vector<Matrix<S>> best_;
};

namespace policy_detail {

template <class C, class T, class = void>
struct has_begin : std::false_type {};
template <class C, class T>
struct has_begin<
    C, T,
    std::void_t<decltype(std::declval<C&>().begin_training(std::declval<T&>(), std::declval<const EvalRecord&>()))>>
    : std::true_type {};
template <class C, class T, class = void>
struct has_eval : std::false_type {};
template <class C, class T>
struct has_eval<C, T,
                std::void_t<decltype(bool(
                    std::declval<C&>().on_evaluation(std::declval<T&>(), std::declval<const EvalRecord&>())))>>
    : std::true_type {};
template <class C, class T, class = void>
struct has_end : std::false_type {};
template <class C, class T>
struct has_end<C, T,
               std::void_t<decltype(std::declval<C&>().end_training(std::declval<T&>(), std::declval<TrainResult&>()))>>
    : std::true_type {};

template <class C, class T>
void begin(C& c, T& t, const EvalRecord& start) {
  if constexpr (has_begin<C, T>::value) c.begin_training(t, start);
}
template <class C, class T>
bool evaluation(C& c, T& t, const EvalRecord& rec) {
  if constexpr (has_eval<C, T>::value)
    return bool(c.on_evaluation(t, rec));
  else
    return false;
}
template <class C, class T>
void end(C& c, T& t, TrainResult& r) {
  if constexpr (has_end<C, T>::value) c.end_training(t, r);
}

}  // namespace policy_detail

/// Runs the hooks of `cbs` (see the top of this file) for Trainer::run.
template <class T, class... C>
struct Policies {
  static_assert(((policy_detail::has_begin<C, T>::value || policy_detail::has_eval<C, T>::value ||
                  policy_detail::has_end<C, T>::value) &&
                 ...),
                "a callback object passed to Trainer::run has none of begin_training(trainer, EvalRecord), "
                "on_evaluation(trainer, EvalRecord) -> bool, end_training(trainer, TrainResult)");
  static constexpr bool kNeedsStart = (policy_detail::has_begin<C, T>::value || ...);
  static void begin(T& t, const EvalRecord& start, C&... c) { (policy_detail::begin(c, t, start), ...); }
  /// Every object sees the record; true if any asks to stop.
  static bool evaluation(T& t, const EvalRecord& rec, C&... c) {
    bool stop = false;
    ((stop = policy_detail::evaluation(c, t, rec) || stop), ...);
    return stop;
  }
  static void end(T& t, TrainResult& r, C&... c) { (policy_detail::end(c, t, r), ...); }
};

}  // namespace nn
}  // namespace colora
