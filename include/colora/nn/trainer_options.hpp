// Options, data and results of the multi-task trainer (colora/nn/trainer.hpp,
// docs/nn.md): what a Trainer is given and what it reports. Separate from the
// trainer so that checkpoints (colora/nn/checkpoint.hpp) and the training
// policy (colora/nn/training_policy.hpp) can name them.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "colora/core/config.hpp"
#include "colora/core/errors.hpp"
#include "colora/core/status.hpp"
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
  int max_iterations = 100;  ///< iteration budget in total (a resumed run continues up to this count)
  Index batch_size = 32;     ///< examples per task per step; 0 = full batch
  int tau = 1;               ///< alternating: personal steps per iteration
  int shared_steps = 1;      ///< alternating: shared steps per iteration
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
    detail::require(max_iterations >= 0, w, "max_iterations = ", max_iterations, " must be >= 0");
    detail::require(batch_size >= 0, w, "batch_size = ", batch_size, " must be >= 0");
    detail::require(tau >= 1, w, "tau = ", tau, " must be >= 1");
    detail::require(shared_steps >= 1, w, "shared_steps = ", shared_steps, " must be >= 1");
    detail::require(eval_every >= 0, w, "eval_every = ", eval_every, " must be >= 0");
    detail::require(patience >= 0, w, "patience = ", patience, " must be >= 0");
    detail::require(patience == 0 || eval_every > 0, w, "patience = ", patience, " needs evaluations: eval_every = 0");
    detail::require(min_delta >= 0 && std::isfinite(min_delta), w, "min_delta = ", min_delta,
                    " must be finite and >= 0");
    detail::require(num_threads >= 0, w, "num_threads = ", num_threads, " must be >= 0");
    optimizer.validate(w);
  }
};

/// One evaluation: losses on the validation data (or training data).
struct EvalRecord {
  int iteration = 0;
  double train_loss = 0;              ///< mean over tasks of the last minibatch losses
  double val_loss = 0;                ///< mean over tasks of the per-task evaluation loss
  std::vector<double> task_loss;      ///< per task
  std::vector<double> task_accuracy;  ///< per task (CrossEntropy only, else empty)
};

struct TrainResult {
  Status status = Status::NotComputed;
  StopReason reason = StopReason::NotStarted;  ///< early stopping reports ToleranceReached
  int iterations = 0;                          ///< iterations done in total (including before a resume)
  int best_iteration = -1;                     ///< iteration of the lowest evaluation loss
  double best_val_loss = std::numeric_limits<double>::infinity();
  std::vector<EvalRecord> history;  ///< every eval_every-th evaluation (restored on resume)
  EvalRecord final_eval;            ///< evaluation of the state run() returns (not in history)
};

}  // namespace nn
}  // namespace colora
