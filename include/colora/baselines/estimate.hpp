// What every baseline (docs/baselines.md) shares: the options, a generic
// multi-task estimate, the result struct, and the uniform diagnostics.
//
// Every method's estimate is stored as per-task factors
//     W_i - W_0 = U_i V_i^T      U_i (q x r_i), V_i (p x r_i)
// (for the full-rank methods local and global: U_i = W_i - W_0, V_i = I_p,
// flagged `dense`), plus the shared A (r x p) and B (q x r) when the method
// has them (empty otherwise: their subspace distances are then NaN), plus
// the method's own named parameters (A, B, S_i; H_i; W_i; ...) for writing.
// Errors are computed gauge-free from (U_i, V_i) exactly as
// recovery_metrics() does for CoLoRA, so every method is measured the same way.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "colora/core/errors.hpp"
#include "colora/regression/recovery_metrics.hpp"
#include "colora/regression/problem_views.hpp"
#include "colora/regression/solver.hpp"

namespace colora {

/// The CoLoRA solver options plus the few knobs only baselines have.
/// Implicitly constructible from SolverOptions (the extra fields keep their
/// defaults), so `fit_baseline(name, problem, solver_options)` works.
struct BaselineOptions : SolverOptions {
  /// fedrep / fedrep-gd: fraction of tasks that take part in each round, in
  /// (0, 1]; ceil(participation k) tasks are drawn per round.
  double participation = 1.0;
  /// gd-gd: step size eta in units of 1 / L_block (see gd_gd.hpp).
  double gd_gd_step = 0.5;

  BaselineOptions() = default;
  BaselineOptions(const SolverOptions& s) : SolverOptions(s) {}  // NOLINT: implicit on purpose

  /// Throws std::invalid_argument naming the field. `needs_rank` = false for
  /// the full-rank methods (local, global), which ignore `rank`.
  void validate(bool needs_rank = true) const {
    const char* w = "colora::BaselineOptions";
    if (needs_rank) {
      SolverOptions::validate();
    } else {
      SolverOptions copy = *this;
      copy.rank = 1;
      copy.validate();
    }
    detail::require(std::isfinite(participation) && participation > 0 && participation <= 1, w,
                    "participation must be in (0, 1], got ", participation);
    detail::require(std::isfinite(gd_gd_step) && gd_gd_step > 0, w, "gd_gd_step must be > 0, got ", gd_gd_step);
  }
};

/// A named shared parameter of a method (e.g. "A", "B", "W").
template <class Scalar>
struct NamedFactor {
  std::string name;
  Matrix<Scalar> value;
};

/// A named family of personal parameters, one matrix per task (e.g. "S", "H", "W").
template <class Scalar>
struct PersonalFactors {
  std::string name;
  std::vector<Matrix<Scalar>> values;
};

/// A multi-task estimate in the generic factored form W_i = W_0 + U_i V_i^T.
template <class Scalar>
struct MultiTaskEstimate {
  std::vector<Matrix<Scalar>> U;  ///< q x r_i per task
  /// p x r_i per task (I_p when dense), or one entry that every task shares
  /// (the shared row factor A^T of the CoLoRA-form methods: k copies of it
  /// would cost as much as U itself). Read it through v(i).
  std::vector<Matrix<Scalar>> V;
  bool dense = false;                             ///< V_i = I_p: U_i is the full q x p W_i - W_0
  Matrix<Scalar> A;                               ///< shared r x p row factor, empty when the method has none
  Matrix<Scalar> B;                               ///< shared q x r column factor, empty when the method has none
  Matrix<Scalar> W0;                              ///< frozen base (empty = zero)
  std::vector<NamedFactor<Scalar>> shared;        ///< the method's own shared parameters
  std::vector<PersonalFactors<Scalar>> personal;  ///< the method's own personal parameters
  Index trainable_parameters = 0;                 ///< parameters the method fits (frozen ones excluded)

  Index num_tasks() const { return Index(U.size()); }
  /// V_i: V[i], or V[0] when one V is shared by every task.
  const Matrix<Scalar>& v(Index i) const { return V.size() == 1 ? V.front() : V[size_t(i)]; }
  /// W_i - W_0 (q x p, dense).
  Matrix<Scalar> delta(Index i) const { return dense ? U[size_t(i)] : Matrix<Scalar>(U[size_t(i)] * v(i).transpose()); }
  /// W_i (q x p, dense).
  Matrix<Scalar> weight(Index i) const {
    Matrix<Scalar> W = delta(i);
    if (W0.size()) W += W0;
    return W;
  }
  /// Predictions X W_i^T (n x q) for inputs X (n x p).
  Matrix<Scalar> predict(Index i, const Matrix<Scalar>& X) const {
    Matrix<Scalar> Y = dense ? Matrix<Scalar>(X * U[size_t(i)].transpose())
                             : Matrix<Scalar>((X * v(i)) * U[size_t(i)].transpose());
    if (W0.size()) Y.noalias() += X * W0.transpose();
    return Y;
  }
  template <class T>
  MultiTaskEstimate<T> cast() const {
    MultiTaskEstimate<T> o;
    for (const auto& u : U) o.U.push_back(u.template cast<T>());
    for (const auto& m : V) o.V.push_back(m.template cast<T>());
    o.dense = dense;
    o.A = A.template cast<T>();
    o.B = B.template cast<T>();
    o.W0 = W0.template cast<T>();
    for (const auto& f : shared) o.shared.push_back({f.name, f.value.template cast<T>()});
    for (const auto& f : personal) {
      PersonalFactors<T> pf{f.name, {}};
      for (const auto& m : f.values) pf.values.push_back(m.template cast<T>());
      o.personal.push_back(std::move(pf));
    }
    o.trainable_parameters = trainable_parameters;
    return o;
  }
};

/// What every baseline returns: the report every fit gives (FitReport:
/// status, stop reason, iterations, history, warnings), the method's name
/// and its estimate.
template <class Scalar>
struct BaselineResult : FitReport {
  std::string method;
  MultiTaskEstimate<Scalar> estimate;
};

namespace detail {

template <class Scalar>
constexpr bool is_regression(const RegressionProblem<Scalar>*) {
  return true;
}
template <class Scalar>
constexpr bool is_regression(const SensingProblem<Scalar>*) {
  return false;
}

/// w_i = 1 or 1/n_i.
template <class Problem>
std::vector<typename Problem::Scalar> task_weights(const Problem& pb, TaskWeighting weighting) {
  using Scalar = typename Problem::Scalar;
  std::vector<Scalar> w(size_t(pb.num_tasks()));
  for (Index i = 0; i < pb.num_tasks(); ++i)
    w[size_t(i)] = weighting == TaskWeighting::PerSample ? Scalar(1) : Scalar(1) / Scalar(pb.samples(i));
  return w;
}

/// r in [1, min(p, q)] for the methods whose factors need r <= q; with
/// `wide_ok` (colora-form methods, heads) only r <= p is needed.
template <class Problem>
void check_rank(const Problem& pb, Index r, const char* where, bool wide_ok = false) {
  if (wide_ok) {
    require(r >= 1 && r <= pb.input_dim(), where, "rank r = ", r, " must be in [1, p = ", pb.input_dim(), "]");
    return;
  }
  const Index m = std::min(pb.input_dim(), pb.output_dim());
  require(r >= 1 && r <= m, where, "rank r = ", r, " must be in [1, min(p, q) = ", m,
          "] (this method needs r <= q; the methods whose registry entry allows a wide rank take r > q)");
}

/// Training loss ||target_i - A_i(U V^T)||^2 of one task.
template <class Scalar>
double task_loss(const RegressionProblem<Scalar>& pb, Index i, const Matrix<Scalar>& U, const Matrix<Scalar>& V,
                 bool dense) {
  const auto& t = pb.tasks[size_t(i)];
  Matrix<Scalar> pred = dense ? Matrix<Scalar>(t.X * U.transpose()) : Matrix<Scalar>((t.X * V) * U.transpose());
  if (pb.W0.size()) pred.noalias() += t.X * pb.W0.transpose();
  return double((t.Y - pred).squaredNorm());
}
template <class Scalar>
double task_loss(const SensingProblem<Scalar>& pb, Index i, const Matrix<Scalar>& U, const Matrix<Scalar>& V,
                 bool dense) {
  const auto& t = pb.tasks[size_t(i)];
  Matrix<Scalar> W = dense ? U : Matrix<Scalar>(U * V.transpose());
  if (pb.W0.size()) W += pb.W0;
  return double((t.y - t.M * Eigen::Map<const Vector<Scalar>>(W.data(), W.size())).squaredNorm());
}

/// Held-out squared error of one task (count = number of held-out entries).
template <class Scalar>
double task_test_se(const RegressionProblem<Scalar>& pb, Index i, const Matrix<Scalar>& U, const Matrix<Scalar>& V,
                    bool dense, Index& count) {
  const auto& t = pb.tasks[size_t(i)];
  count = t.X_test.rows() * t.Y_test.cols();
  if (count == 0) return 0.0;
  Matrix<Scalar> pred = dense ? Matrix<Scalar>(t.X_test * U.transpose())
                              : Matrix<Scalar>((t.X_test * V) * U.transpose());
  if (pb.W0.size()) pred.noalias() += t.X_test * pb.W0.transpose();
  return double((t.Y_test - pred).squaredNorm());
}
template <class Scalar>
double task_test_se(const SensingProblem<Scalar>& pb, Index i, const Matrix<Scalar>& U, const Matrix<Scalar>& V,
                    bool dense, Index& count) {
  const auto& t = pb.tasks[size_t(i)];
  count = t.M_test.rows();
  if (count == 0) return 0.0;
  Matrix<Scalar> W = dense ? U : Matrix<Scalar>(U * V.transpose());
  if (pb.W0.size()) W += pb.W0;
  return double((t.y_test - t.M_test * Eigen::Map<const Vector<Scalar>>(W.data(), W.size())).squaredNorm());
}

/// ||U V^T - B_i* S_i* A_i*||_F and ||B_i* S_i* A_i*||_F.
template <class Scalar>
std::pair<double, double> task_error(const GroundTruth<Scalar>& truth, Index i, const Matrix<Scalar>& U,
                                     const Matrix<Scalar>& V, bool dense) {
  const Matrix<Scalar> U2 = truth.B[size_t(i)] * truth.S[size_t(i)];
  const Matrix<Scalar> V2 = truth.A[size_t(i)].transpose();
  double err;
  if (dense)
    err = (U.template cast<double>() - U2.template cast<double>() * V2.template cast<double>().transpose()).norm();
  else
    err = factored_difference_norm<Scalar>(U, V, U2, V2);
  const Matrix<double> U2d = U2.template cast<double>(), V2d = V2.template cast<double>();
  const double ref = std::sqrt(std::max(0.0, ((U2d.transpose() * U2d).cwiseProduct(V2d.transpose() * V2d)).sum()));
  return {err, ref};
}

/// Fills the per-task and summary error fields of `m` from per-task errors.
inline void summarise_errors(const std::vector<std::pair<double, double>>& e, RecoveryMetrics& m) {
  const size_t k = e.size();
  m.rel_err.resize(k);
  m.sq_err.resize(k);
  double sum = 0, sum_sq = 0, mx = 0;
  for (size_t i = 0; i < k; ++i) {
    m.sq_err[i] = e[i].first * e[i].first;
    m.rel_err[i] = e[i].second > 0 ? e[i].first / e[i].second : e[i].first;
    sum += m.rel_err[i];
    sum_sq += m.sq_err[i];
    mx = std::max(mx, m.rel_err[i]);
  }
  m.mean_rel_err = k ? sum / double(k) : std::numeric_limits<double>::quiet_NaN();
  m.mean_sq_err = k ? sum_sq / double(k) : std::numeric_limits<double>::quiet_NaN();
  m.max_rel_err = k ? mx : std::numeric_limits<double>::quiet_NaN();
  m.median_rel_err = median_of(m.rel_err);
}

/// The estimate of a CoLoRA-form fit (A, B, S_i): U_i = B S_i, V_i = A^T
/// (one V shared by every task). Pass the cores as an rvalue when the caller
/// is done with them: they become the estimate's personal "S" without a copy.
template <class Scalar>
MultiTaskEstimate<Scalar> colora_form_estimate(const Matrix<Scalar>& A, const Matrix<Scalar>& B,
                                               std::vector<Matrix<Scalar>> S, const Matrix<Scalar>& W0) {
  MultiTaskEstimate<Scalar> e;
  e.U.reserve(S.size());
  for (const auto& s : S) e.U.push_back(B * s);
  e.V.assign(1, A.transpose());
  e.A = A;
  e.B = B;
  e.W0 = W0;
  e.shared = {{"A", A}, {"B", B}};
  Index n = A.size() + B.size();
  for (const auto& s : S) n += s.size();
  e.trainable_parameters = n;
  e.personal.push_back({"S", std::move(S)});
  return e;
}

/// Seconds since t0.
inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace detail

/// sum_i w_i L_i(estimate) (without any ridge term).
template <class Problem>
double estimate_loss(const Problem& pb, const MultiTaskEstimate<typename Problem::Scalar>& e,
                     const std::vector<typename Problem::Scalar>& w, int num_threads = 0) {
  const Index k = pb.num_tasks();
  std::vector<double> li(static_cast<size_t>(k));
  detail::parallel_for_tasks(k, num_threads, [&](Index i) {
    li[size_t(i)] = double(w[size_t(i)]) * detail::task_loss(pb, i, e.U[size_t(i)], e.v(i), e.dense);
  });
  double f = 0;
  for (double v : li) f += v;
  return f;
}

/// Held-out MSE of an estimate (NaN without a test split).
template <class Problem>
double estimate_test_mse(const Problem& pb, const MultiTaskEstimate<typename Problem::Scalar>& e, int num_threads = 0) {
  detail::require(e.num_tasks() == pb.num_tasks(), "colora::estimate_test_mse", "estimate has ", e.num_tasks(),
                  " tasks but the problem has ", pb.num_tasks());
  const Index k = pb.num_tasks();
  std::vector<double> se(static_cast<size_t>(k));
  std::vector<Index> cnt(static_cast<size_t>(k));
  detail::parallel_for_tasks(k, num_threads, [&](Index i) {
    se[size_t(i)] = detail::task_test_se(pb, i, e.U[size_t(i)], e.v(i), e.dense, cnt[size_t(i)]);
  });
  double s = 0, c = 0;
  for (Index i = 0; i < k; ++i) {
    s += se[size_t(i)];
    c += double(cnt[size_t(i)]);
  }
  return c > 0 ? s / c : std::numeric_limits<double>::quiet_NaN();
}

/// Gauge-free errors of any method's estimate against the planted truth:
/// subspace distances of the shared A, B (NaN when the method has none) and
/// per-task relative errors ||U_i V_i^T - B_i* S_i* A_i*||_F / ||B_i* S_i* A_i*||_F.
template <class Scalar>
RecoveryMetrics estimate_metrics(const GroundTruth<Scalar>& truth, const MultiTaskEstimate<Scalar>& e,
                                 int num_threads = 0) {
  detail::require(e.num_tasks() == truth.num_tasks(), "colora::estimate_metrics", "estimate has ", e.num_tasks(),
                  " tasks but the truth has ", truth.num_tasks());
  RecoveryMetrics m;
  if (e.A.size() && e.A.cols() == truth.A_shared.cols()) {
    const auto d = row_space_distance(e.A, truth.A_shared);
    m.dist_a = d.spectral;
    m.dist_a_frob = d.frobenius;
  }
  if (e.B.size() && e.B.rows() == truth.B_shared.rows()) {
    const auto d = subspace_distance(e.B, truth.B_shared);
    m.dist_b = d.spectral;
    m.dist_b_frob = d.frobenius;
  }
  const Index k = e.num_tasks();
  std::vector<std::pair<double, double>> err(static_cast<size_t>(k));
  detail::parallel_for_tasks(k, num_threads, [&](Index i) {
    err[size_t(i)] = detail::task_error(truth, i, e.U[size_t(i)], e.v(i), e.dense);
  });
  detail::summarise_errors(err, m);
  return m;
}

namespace detail {

/// One history record of an estimate: objective as given, truth errors (when
/// tracked and known) and held-out MSE (when there is a test split).
template <class Problem>
IterationRecord record_estimate(const Problem& pb, const MultiTaskEstimate<typename Problem::Scalar>& e,
                                double objective, int iter, double seconds, const SolverOptions& o) {
  IterationRecord rec;
  rec.iteration = iter;
  rec.seconds = seconds;
  rec.objective = objective;
  if (pb.truth && o.track_truth) {
    const RecoveryMetrics m = estimate_metrics(*pb.truth, e, o.num_threads);
    rec.dist_a = m.dist_a;
    rec.dist_b = m.dist_b;
    rec.mean_rel_err = m.mean_rel_err;
    rec.median_rel_err = m.median_rel_err;
    rec.max_rel_err = m.max_rel_err;
  }
  if (pb.has_test()) rec.test_mse = estimate_test_mse(pb, e, o.num_threads);
  return rec;
}

/// Fills a closed-form result: status from `ok`, one history record.
template <class Problem>
void finish_closed_form(const Problem& pb, BaselineResult<typename Problem::Scalar>& res, bool ok, double objective,
                        std::chrono::steady_clock::time_point t0, const SolverOptions& o) {
  res.status = ok ? Status::Success : Status::NumericalIssue;
  res.stop_reason = ok ? StopReason::ClosedForm : StopReason::SingularSystem;
  res.iterations = 0;
  res.history.push_back(record_estimate(pb, res.estimate, objective, 0, seconds_since(t0), o));
  if (o.callback) o.callback(res.history.back());
}

}  // namespace detail
}  // namespace colora
