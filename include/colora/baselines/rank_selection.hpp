// Choosing the rank r from the data: K-fold cross-validation over held-out
// samples within each task, and the one-standard-error rule (docs/baselines.md,
// "Choosing the rank").
//
//   colora::RankSelectionOptions cv;              // ranks 1..min(p, q, 12), 5 folds, seed 1
//   colora::RankSelection sel = colora::select_rank("colora", problem, options, cv);
//   sel.chosen_rank;                              // the one-standard-error choice
//   sel.cv_mse[j], sel.cv_se[j];                  // the CV curve at sel.ranks[j]
//
// Folds. Every task's training rows are shuffled by its own random stream
// (Rng(seed).substream(i): the folds do not depend on the thread count or on
// the other tasks) and dealt round-robin into K folds, so each task lends
// about n_i / K rows to every fold and every row is held out exactly once. A
// task with a single sample is never held out (it must keep one training
// row). The problem's own test split is never used.
//
// CV error. For fold f and rank r the method is fitted on the rows outside f
// (every task at once: the shared part is learned from all tasks, as in the
// real fit) and scored on the rows in f: cv_f(r) = held-out squared error /
// held-out entries (pooled over tasks). cv_mse(r) is the mean over the K
// folds and cv_se(r) its standard error (standard deviation over folds /
// sqrt(K)).
//
// Choice [choice]: the one-standard-error rule (Hastie, Tibshirani and
// Friedman, The Elements of Statistical Learning, 2nd ed., section 7.10): the
// SMALLEST rank whose cv_mse is at most cv_mse(r_min) + cv_se(r_min), where
// r_min minimizes cv_mse. Extra rank costs parameters in every task's core and
// in both shared factors; the rule takes it only when the data ask for more
// than the folds' noise. `one_standard_error = false` takes r_min itself.
//
// A fit that fails (status NumericalIssue or non-finite predictions) makes
// that rank's CV error +inf (never chosen); `failed_fits` counts them.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "colora/baselines/baselines.hpp"
#include "colora/core/errors.hpp"
#include "colora/core/random.hpp"
#include "colora/detail/parallel.hpp"

namespace colora {

/// The grid, the folds and the rule of select_rank().
struct RankSelectionOptions {
  /// Candidate ranks, each in [1, min(p, q)] (or [1, p] for the methods that
  /// allow r > q); empty = 1 .. min(p, q, 12).
  std::vector<Index> ranks;
  int folds = 5;            ///< K >= 2
  std::uint64_t seed = 1;   ///< of the fold assignment (not of the fits: BaselineOptions::seed)
  bool one_standard_error = true;  ///< false: the rank of minimum CV error

  /// Throws std::invalid_argument naming the field.
  void validate() const {
    const char* w = "colora::RankSelectionOptions";
    detail::require(folds >= 2, w, "folds must be >= 2, got ", folds);
    for (size_t j = 0; j < ranks.size(); ++j)
      detail::require(ranks[j] >= 1, w, "ranks[", j, "] must be >= 1, got ", ranks[j]);
  }
};

/// The CV curve and the choice.
struct RankSelection {
  std::vector<Index> ranks;    ///< the grid, ascending, without repeats
  std::vector<double> cv_mse;  ///< mean held-out MSE over the folds (+inf if a fit failed)
  std::vector<double> cv_se;   ///< its standard error over the folds
  std::vector<int> failed_fits;  ///< folds whose fit failed, per rank
  Index best_rank = 0;         ///< minimizes cv_mse
  Index chosen_rank = 0;       ///< the rule's choice (best_rank without the one-SE rule)
  int folds = 0;
  /// True when the choice is the largest rank of the grid: the curve may
  /// still fall beyond it (extend the grid).
  bool at_grid_edge = false;
};

namespace detail {

/// fold[i][j] = the fold of row j of task i (see the header comment).
template <class Scalar>
std::vector<std::vector<int>> assign_folds(const RegressionProblem<Scalar>& pb, int folds, std::uint64_t seed) {
  std::vector<std::vector<int>> fold(static_cast<size_t>(pb.num_tasks()));
  const Rng root(seed);
  for (Index i = 0; i < pb.num_tasks(); ++i) {
    const Index n = pb.samples(i);
    std::vector<int>& f = fold[size_t(i)];
    f.assign(size_t(n), -1);  // -1: always trains
    if (n < 2) continue;
    std::vector<Index> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), Index(0));
    Rng rng = root.substream(std::uint64_t(i));
    for (Index j = n - 1; j > 0; --j) std::swap(order[size_t(j)], order[size_t(rng.below(std::uint64_t(j + 1)))]);
    for (Index j = 0; j < n; ++j) f[size_t(order[size_t(j)])] = int(j % folds);
  }
  return fold;
}

/// Rows of `m` whose fold is (held ? == f : != f).
template <class Scalar>
Matrix<Scalar> fold_rows(const Matrix<Scalar>& m, const std::vector<int>& fold, int f, bool held) {
  Index count = 0;
  for (int v : fold) count += (v == f) == held;
  Matrix<Scalar> out(count, m.cols());
  Index r = 0;
  for (size_t j = 0; j < fold.size(); ++j)
    if ((fold[j] == f) == held) out.row(r++) = m.row(Index(j));
  return out;
}

}  // namespace detail

/// K-fold cross-validation of `method` (a name of baseline_names() that uses
/// a rank) over the rank grid on the training rows of `pb`; see the header
/// comment. The (rank, fold) fits run in parallel over options.num_threads
/// threads, each fit single-threaded, so the result does not depend on the
/// thread count. Throws std::invalid_argument for a method without a rank, a
/// grid rank outside the method's range, or bad options.
template <class Scalar>
RankSelection select_rank(const std::string& method, const RegressionProblem<Scalar>& pb,
                          const BaselineOptions& options, const RankSelectionOptions& cv = {}) {
  const char* w = "colora::select_rank";
  pb.validate(w);
  cv.validate();
  const BaselineTraits* traits = nullptr;
  for (const auto& t : baseline_traits())
    if (method == t.name) traits = &t;
  if (!traits) {
    std::string all;
    for (const auto& n : baseline_names()) all += " " + n;
    detail::invalid(w, "unknown method '", method, "' (known:", all, ")");
  }
  detail::require(traits->needs_rank, w, "method ", method, " has no rank to select (it is full-rank)");
  const Index p = pb.input_dim(), q = pb.output_dim();
  const Index max_rank = traits->allows_wide_rank ? p : std::min(p, q);
  RankSelection out;
  out.folds = cv.folds;
  out.ranks = cv.ranks;
  if (out.ranks.empty())
    for (Index r = 1; r <= std::min<Index>(std::min(p, q), 12); ++r) out.ranks.push_back(r);
  std::sort(out.ranks.begin(), out.ranks.end());
  out.ranks.erase(std::unique(out.ranks.begin(), out.ranks.end()), out.ranks.end());
  for (Index r : out.ranks)
    detail::require(r <= max_rank, w, "rank ", r, " of the grid exceeds ", max_rank, " (method ", method,
                    traits->allows_wide_rank ? " needs r <= p)" : " needs r <= min(p, q))");

  const int K = cv.folds;
  const auto fold = detail::assign_folds(pb, K, cv.seed);
  // The K training and held-out problems (test splits dropped).
  std::vector<RegressionProblem<Scalar>> train(static_cast<size_t>(K)), held(static_cast<size_t>(K));
  for (int f = 0; f < K; ++f) {
    train[size_t(f)].W0 = pb.W0;
    held[size_t(f)].W0 = pb.W0;
    for (Index i = 0; i < pb.num_tasks(); ++i) {
      const auto& t = pb.tasks[size_t(i)];
      const auto& fi = fold[size_t(i)];
      train[size_t(f)].tasks.push_back(
          {detail::fold_rows(t.X, fi, f, false), detail::fold_rows(t.Y, fi, f, false), {}, {}});
      held[size_t(f)].tasks.push_back(
          {detail::fold_rows(t.X, fi, f, true), detail::fold_rows(t.Y, fi, f, true), {}, {}});
    }
  }

  const size_t nr = out.ranks.size();
  std::vector<double> score(nr * size_t(K), 0.0);  // [rank][fold]
  detail::parallel_for(Index(nr) * K, options.num_threads, [&](Index job) {
    const size_t j = size_t(job) / size_t(K);
    const int f = int(job % K);
    BaselineOptions o = options;
    o.rank = out.ranks[j];
    o.num_threads = 1;
    const auto res = fit_baseline(method, train[size_t(f)], o);
    double se = 0, count = 0;
    const auto& h = held[size_t(f)];
    for (Index i = 0; i < h.num_tasks(); ++i) {
      const auto& t = h.tasks[size_t(i)];
      if (t.X.rows() == 0) continue;
      se += double((res.estimate.predict(i, t.X) - t.Y).squaredNorm());
      count += double(t.Y.size());
    }
    const bool ok = res.status != Status::NumericalIssue && std::isfinite(se) && count > 0;
    score[j * size_t(K) + size_t(f)] = ok ? se / count : std::numeric_limits<double>::infinity();
  });

  out.cv_mse.assign(nr, 0.0);
  out.cv_se.assign(nr, 0.0);
  out.failed_fits.assign(nr, 0);
  size_t best = 0;
  for (size_t j = 0; j < nr; ++j) {
    double sum = 0, sq = 0;
    for (int f = 0; f < K; ++f) {
      const double s = score[j * size_t(K) + size_t(f)];
      if (!std::isfinite(s)) ++out.failed_fits[j];
      sum += s;
    }
    const double mean = sum / K;
    if (std::isfinite(mean))
      for (int f = 0; f < K; ++f) sq += (score[j * size_t(K) + size_t(f)] - mean) * (score[j * size_t(K) + size_t(f)] - mean);
    out.cv_mse[j] = mean;
    out.cv_se[j] = std::isfinite(mean) ? std::sqrt(sq / (K - 1) / K) : std::numeric_limits<double>::infinity();
    if (out.cv_mse[j] < out.cv_mse[best]) best = j;
  }
  detail::require(std::isfinite(out.cv_mse[best]), w, "every fit of ", method,
                  " failed on some fold at every rank of the grid (see failed_fits)");
  out.best_rank = out.ranks[best];
  size_t chosen = best;
  if (cv.one_standard_error)
    for (size_t j = 0; j < best; ++j)
      if (out.cv_mse[j] <= out.cv_mse[best] + out.cv_se[best]) {
        chosen = j;
        break;
      }
  out.chosen_rank = out.ranks[chosen];
  out.at_grid_edge = chosen + 1 == nr && nr > 1;
  return out;
}

}  // namespace colora
