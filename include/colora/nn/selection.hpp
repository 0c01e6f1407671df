// Validation split and candidate selection for the multi-task trainer
// (docs/nn.md, "Training policy"): each task's own training examples are split
// into a fitting part and a validation part (deterministic for a colora::Rng),
// every (learning rate, personal learning-rate scale) candidate is trained on
// the fitting parts with StoreBest (and EarlyStopAtMinLoss with patience), the
// (candidate, iteration) of lowest validation loss is selected, then a fresh
// model is refit on all the examples (or the best-validation parameters are
// kept). Used by `colora nn-teacher` and `colora nn-digits` for every method.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "colora/core/config.hpp"
#include "colora/core/errors.hpp"
#include "colora/core/random.hpp"
#include "colora/core/status.hpp"
#include "colora/nn/trainer.hpp"
#include "colora/nn/training_policy.hpp"

namespace colora {
namespace nn {

/// A random permutation of 0..n-1, a deterministic function of `rng` (Fisher-Yates).
inline std::vector<Index> shuffled_indices(Index n, Rng rng) {
  std::vector<Index> p(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) p[std::size_t(i)] = i;
  for (Index i = n - 1; i > 0; --i) std::swap(p[std::size_t(i)], p[std::size_t(rng.below(std::uint64_t(i + 1)))]);
  return p;
}

/// Number of a task's n training examples held out for validation **[choice]**:
/// round(fraction * n), at least 1 and at most n - 1 when n >= 2 and
/// fraction > 0; 0 (no validation) when n < 2 or fraction <= 0.
inline Index validation_count(Index n, double fraction) {
  if (n < 2 || !(fraction > 0)) return 0;
  const Index v = Index(std::llround(fraction * double(n)));
  return std::min<Index>(std::max<Index>(v, 1), n - 1);
}

/// The examples 0..n-1 of one task split into a fitting part and a validation part: disjoint,
/// together all n, each sorted ascending.
struct TrainValSplit {
  std::vector<Index> train, val;
};
/// Holds out validation_count(n, fraction) examples chosen by `rng` (deterministic for it).
inline TrainValSplit split_train_val(Index n, double fraction, Rng rng) {
  const std::vector<Index> p = shuffled_indices(n, rng);
  const Index nv = validation_count(n, fraction);
  TrainValSplit s;
  s.val.assign(p.begin(), p.begin() + nv);
  s.train.assign(p.begin() + nv, p.end());
  std::sort(s.val.begin(), s.val.end());
  std::sort(s.train.begin(), s.train.end());
  return s;
}

/// The examples `idx` of X (T rows per example) and of Y (one row each) into Xo, Yo.
template <class S>
void take_examples(const Matrix<S>& X, const Matrix<S>& Y, Index T, const std::vector<Index>& idx, Matrix<S>& Xo,
                   Matrix<S>& Yo) {
  Xo.resize(Index(idx.size()) * T, X.cols());
  Yo.resize(Index(idx.size()), Y.cols());
  for (std::size_t j = 0; j < idx.size(); ++j) {
    Xo.middleRows(Index(j) * T, T) = X.middleRows(idx[j] * T, T);
    Yo.row(Index(j)) = Y.row(idx[j]);
  }
}

/// Each task's X, Y (T rows per example) split by split_train_val(n_i, fraction,
/// rng.substream(i)): X, Y of the result hold the fitting part, X_val, Y_val the held-out part
/// (empty for a task with nothing held out). The tasks' own X_val, Y_val are ignored.
template <class S>
std::vector<TaskData<S>> split_validation(const std::vector<TaskData<S>>& data, double fraction, Index T,
                                          const Rng& rng) {
  std::vector<TaskData<S>> out(data.size());
  for (std::size_t i = 0; i < data.size(); ++i) {
    const TrainValSplit sp = split_train_val(data[i].Y.rows(), fraction, rng.substream(std::uint64_t(i)));
    take_examples(data[i].X, data[i].Y, T, sp.train, out[i].X, out[i].Y);
    take_examples(data[i].X, data[i].Y, T, sp.val, out[i].X_val, out[i].Y_val);
  }
  return out;
}

/// The selection rule of fit_selected: candidates, budget, validation split, refit.
struct SelectionOptions {
  std::vector<double> lrs{1e-2};             ///< shared learning rates tried
  std::vector<double> personal_ratios{1.0};  ///< personal learning rate = shared x one of these (tried)
  int max_iterations = 200;                  ///< iteration budget per candidate
  int eval_every = 5;                        ///< validation evaluation every this many iterations
  int patience = 0;                          ///< EarlyStopAtMinLoss per candidate (0 = the whole budget)
  double val_fraction = 0.2;                 ///< share of each task's examples held out (validation_count)
  bool refit = false;                        ///< retrain on all examples for the selected iterations

  void validate() const {
    const char* w = "colora::nn::SelectionOptions::validate";
    detail::require(!lrs.empty(), w, "no learning rate to try");
    detail::require(!personal_ratios.empty(), w, "no personal learning-rate scale to try");
    detail::require(max_iterations >= 0, w, "max_iterations = ", max_iterations, " must be >= 0");
    detail::require(eval_every >= 1, w, "eval_every = ", eval_every, " must be >= 1");
    detail::require(patience >= 0, w, "patience = ", patience, " must be >= 0");
  }
};

/// What fit_selected chose.
struct Selection {
  double lr = std::numeric_limits<double>::quiet_NaN();
  double personal_ratio = std::numeric_limits<double>::quiet_NaN();  ///< NaN if nothing personal is trained
  int iteration = 0;                                                 ///< selected number of iterations (0 = untrained)
  double val_loss = std::numeric_limits<double>::quiet_NaN();
  bool numerical_issue = false;  ///< some training stopped on a non-finite value
};

/// Trains the model `make()` builds on `train` (one entry per task; X and Y only) with the
/// selection rule of `sel`: each task's examples are split (split_validation, val_fraction,
/// `split_rng`); for every learning rate of `lrs` and every personal scale of `personal_ratios`
/// (a model without trainable personal parameters tries the first scale only) a fresh model is
/// trained on the fitting parts for up to `max_iterations`, evaluated on the validation parts at
/// its start and every `eval_every` iterations (StoreBest; EarlyStopAtMinLoss(patience) when
/// patience > 0); the (learning rate, scale, iteration) of lowest validation loss wins (ties:
/// the earlier, learning rates outermost). The start is the untrained model, so a method whose
/// training never helps on validation keeps its initial parameters. With `refit` a fresh model
/// is then trained on all the examples with the selected rates for the selected iterations;
/// otherwise the best-validation parameters are kept. Without validation data (val_fraction 0,
/// or some task with n < 2) the first candidate is trained for max_iterations on all examples.
/// `o` gives loss, schedule, batch size, seed, ...; its budget, learning rates, evaluation and
/// patience are set here. `chosen` receives the choice.
template <class Model, class Make>
Model fit_selected(const Make& make, const std::vector<TaskData<typename Model::Scalar>>& train, TrainerOptions o,
                   const SelectionOptions& sel, const Rng& split_rng, Selection& chosen) {
  using S = typename Model::Scalar;
  sel.validate();
  Model model = make();
  const std::vector<TaskData<S>> fit = split_validation(train, sel.val_fraction, model.rows_per_example(), split_rng);
  bool have_val = sel.val_fraction > 0;
  for (const auto& t : fit) have_val = have_val && t.Y_val.rows() > 0;
  auto set_lr = [&](double lr, double ratio, int iters) {
    o.optimizer.shared.lr = lr;
    o.optimizer.personal.lr = lr * ratio;
    o.max_iterations = iters;
  };
  auto train_on_all = [&](double lr, double ratio, int iters) {  // `model`, all examples, no evaluation
    set_lr(lr, ratio, iters);
    o.eval_every = 0;
    o.patience = 0;
    Trainer<Model> trainer(model, train, o);
    chosen.numerical_issue |= trainer.run().status == Status::NumericalIssue;
  };
  bool has_personal = false;  // the personal scale only matters if something personal is trained
  for (auto* p : param_list(model)) has_personal |= p->trainable() && p->role == ParamRole::Personal;
  chosen = Selection{};
  if (!have_val) {  // nothing to select on: the first candidate, the full budget, all examples
    chosen.lr = sel.lrs[0];
    chosen.iteration = sel.max_iterations;
    if (has_personal) chosen.personal_ratio = sel.personal_ratios[0];
    if (sel.max_iterations > 0) train_on_all(sel.lrs[0], sel.personal_ratios[0], sel.max_iterations);
    return model;
  }
  const std::size_t nratios = has_personal ? sel.personal_ratios.size() : 1;
  std::vector<Matrix<S>> best_vals;
  double best = std::numeric_limits<double>::infinity();
  bool first = true;
  for (std::size_t li = 0; li < sel.lrs.size(); ++li)
    for (std::size_t ri = 0; ri < nratios; ++ri) {
      Model m = make();
      set_lr(sel.lrs[li], sel.personal_ratios[ri], sel.max_iterations);
      TrainerOptions run_o = o;
      run_o.eval_every = sel.eval_every;
      run_o.patience = 0;  // EarlyStopAtMinLoss below (its count starts at the untrained model)
      run_o.restore_best = false;
      Trainer<Model> trainer(m, fit, run_o);
      EarlyStopAtMinLoss stop(sel.patience);
      StoreBest<S> keep;
      chosen.numerical_issue |= trainer.run(stop, keep).status == Status::NumericalIssue;
      if (first || keep.best_loss() < best) {  // ties keep the earlier candidate
        first = false;
        best = keep.best_loss();
        chosen.lr = sel.lrs[li];
        chosen.personal_ratio = has_personal ? sel.personal_ratios[ri] : std::numeric_limits<double>::quiet_NaN();
        chosen.iteration = keep.best_iteration();
        chosen.val_loss = keep.best_loss();
        best_vals = keep.best_values();
      }
    }
  if (!sel.refit) {
    std::size_t j = 0;
    for (auto* p : param_list(model))
      if (p->trainable()) p->value = best_vals[j++];
    return model;
  }
  if (chosen.iteration > 0)
    train_on_all(chosen.lr, has_personal ? chosen.personal_ratio : sel.personal_ratios[0], chosen.iteration);
  return model;
}

}  // namespace nn
}  // namespace colora
