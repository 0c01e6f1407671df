// Per-task baselines (docs/baselines.md): no information is shared.
//
//   local       W_i free per task: ridge least squares, closed form
//               (minimum-norm when n_i < p and lambda = 0).
//   local-lora  W_i = B_i A_i per task, rank r: the CoLoRA solver run on each
//               task alone (k = 1; with one task the core S_i is absorbed
//               into B_i A_i, so this is plain LoRA by alternating
//               minimization), tasks in parallel.
#pragma once

#include "colora/baselines/estimate.hpp"

namespace colora {

/// local: min_{W_i} w_i L_i(W_0 + W_i) + lambda ||W_i||_F^2 for every task, closed form.
/// Works on (M1) and (M2). Ignores options.rank.
template <class Problem>
BaselineResult<typename Problem::Scalar> fit_local(const Problem& pb, const BaselineOptions& o) {
  using Scalar = typename Problem::Scalar;
  using Mat = Matrix<Scalar>;
  const char* where = "colora::fit_local";
  pb.validate(where);
  o.validate(false);
  const auto t0 = std::chrono::steady_clock::now();
  const Index k = pb.num_tasks(), p = pb.input_dim(), q = pb.output_dim();
  const auto w = detail::task_weights(pb, o.weighting);
  BaselineResult<Scalar> res;
  res.method = "local";
  auto& e = res.estimate;
  e.U.assign(size_t(k), Mat());
  e.V.assign(1, Mat::Identity(p, p));  // dense: V_i = I_p, one shared by every task
  e.dense = true;
  e.W0 = pb.W0;
  std::vector<char> ok(size_t(k), 1);
  const Scalar lambda = Scalar(o.lambda);
  detail::parallel_for_tasks(k, o.num_threads, [&](Index i) {
    const Scalar ridge = lambda / w[size_t(i)];
    Mat Z;
    if constexpr (std::is_same<Problem, RegressionProblem<Scalar>>::value) {
      const auto& t = pb.tasks[size_t(i)];
      Mat R = t.Y;
      if (pb.W0.size()) R.noalias() -= t.X * pb.W0.transpose();
      ok[size_t(i)] = detail::ridge_least_squares<Scalar>(t.X, R, ridge, Z);  // p x q = (W_i - W_0)^T
      e.U[size_t(i)] = Z.transpose();
    } else {
      const Mat T = detail::sensing_target(pb, i);
      ok[size_t(i)] = detail::ridge_least_squares<Scalar>(pb.tasks[size_t(i)].M, T, ridge, Z);  // qp x 1
      e.U[size_t(i)] = Eigen::Map<const Mat>(Z.data(), q, p);
    }
    if (!e.U[size_t(i)].allFinite()) ok[size_t(i)] = 0;
  });
  for (Index i = 0; i < k; ++i)
    if (pb.samples(i) < p * (detail::is_regression(&pb) ? 1 : q) && o.lambda == 0.0)
      res.warnings.push_back(
          detail::concat("task ", i, ": n_i = ", pb.samples(i),
                         " is below the number of unknowns per output; the minimum-norm W_i is used"));
  e.personal = {{"W", e.U}};
  e.trainable_parameters = k * p * q;
  double reg = 0;
  for (const auto& u : e.U) reg += o.lambda * double(u.squaredNorm());
  const bool all_ok = std::all_of(ok.begin(), ok.end(), [](char c) { return c != 0; });
  detail::finish_closed_form(pb, res, all_ok, estimate_loss(pb, e, w, o.num_threads) + reg, t0, o);
  return res;
}

/// local-lora: W_i = W_0 + B_i S_i A_i fitted per task by CoLoRA alternating
/// minimization with k = 1 (LoRA; rank r), every task on its own. (M1) and (M2).
///
/// The per-task fits run independently in parallel (each single-threaded);
/// the history is assembled afterwards: record t aggregates every task's
/// state after its iteration min(t, last) (a task that stopped early keeps
/// its final state). Consequently options.callback is called after all
/// fits with the aggregated records, and returning false only truncates the
/// reported history (the estimate is the fitted one).
template <class Problem>
BaselineResult<typename Problem::Scalar> fit_local_lora(const Problem& pb, const BaselineOptions& o) {
  using Scalar = typename Problem::Scalar;
  using Mat = Matrix<Scalar>;
  const char* where = "colora::fit_local_lora";
  pb.validate(where);
  o.validate();
  detail::check_rank(pb, o.rank, where);
  const auto t0 = std::chrono::steady_clock::now();
  const Index k = pb.num_tasks();
  const auto w = detail::task_weights(pb, o.weighting);
  const bool truth = pb.truth.has_value() && o.track_truth;

  struct Trace {
    double objective, err, ref, test_se, seconds;
    Index test_count;
  };
  std::vector<std::vector<Trace>> traces(static_cast<size_t>(k));
  std::vector<Mat> As(static_cast<size_t>(k)), Bs(static_cast<size_t>(k)), Ss(static_cast<size_t>(k));
  std::vector<Status> status(static_cast<size_t>(k));
  std::vector<StopReason> stop(static_cast<size_t>(k));
  std::vector<int> iters(static_cast<size_t>(k));
  std::vector<std::vector<std::string>> warn(static_cast<size_t>(k));
  detail::parallel_for_tasks(k, o.num_threads, [&](Index i) {
    const Problem sub = detail::single_task(pb, i);
    SolverOptions so = o;
    so.num_threads = 1;
    so.track_truth = false;
    Solver<Scalar> solver(so);
    solver.options().callback = [&, i](const IterationRecord& rec) {
      const Mat U = solver.B() * solver.core(0), V = solver.A().transpose();
      Trace tr{rec.objective, std::numeric_limits<double>::quiet_NaN(), 0.0, 0.0, detail::seconds_since(t0), 0};
      if (truth) std::tie(tr.err, tr.ref) = detail::task_error(*pb.truth, i, U, V, false);
      tr.test_se = detail::task_test_se(pb, i, U, V, false, tr.test_count);
      traces[size_t(i)].push_back(tr);
      return true;
    };
    solver.compute(sub);
    As[size_t(i)] = solver.A();
    Bs[size_t(i)] = solver.B();
    Ss[size_t(i)] = solver.core(0);
    status[size_t(i)] = solver.info();
    stop[size_t(i)] = solver.stop_reason();
    iters[size_t(i)] = solver.iterations();
    warn[size_t(i)] = solver.warnings();
  });

  BaselineResult<Scalar> res;
  res.method = "local-lora";
  auto& e = res.estimate;
  e.W0 = pb.W0;
  PersonalFactors<Scalar> fa{"A", {}}, fb{"B", {}}, fs{"S", {}};
  for (Index i = 0; i < k; ++i) {
    e.U.push_back(Bs[size_t(i)] * Ss[size_t(i)]);
    e.V.push_back(As[size_t(i)].transpose());
    fa.values.push_back(As[size_t(i)]);
    fb.values.push_back(Bs[size_t(i)]);
    fs.values.push_back(Ss[size_t(i)]);
    e.trainable_parameters += As[size_t(i)].size() + Bs[size_t(i)].size() + Ss[size_t(i)].size();
    for (const auto& s : warn[size_t(i)]) res.warnings.push_back(detail::concat("task ", i, ": ", s));
  }
  e.personal = {fa, fb, fs};

  // Worst status over tasks; iterations = the longest run.
  res.status = Status::Success;
  res.stop_reason = StopReason::ToleranceReached;
  for (Index i = 0; i < k; ++i) {
    res.iterations = std::max(res.iterations, iters[size_t(i)]);
    if (status[size_t(i)] == Status::NumericalIssue && res.status != Status::NumericalIssue) {
      res.status = Status::NumericalIssue;
      res.stop_reason = stop[size_t(i)];
    } else if (status[size_t(i)] == Status::MaxIterations && res.status == Status::Success) {
      res.status = Status::MaxIterations;
      res.stop_reason = StopReason::MaxIterations;
    }
  }

  size_t len = 0;
  for (const auto& t : traces) len = std::max(len, t.size());
  for (size_t it = 0; it < len; ++it) {
    IterationRecord rec;
    rec.iteration = int(it);
    rec.objective = 0;
    double se = 0, cnt = 0;
    std::vector<std::pair<double, double>> err;
    bool any = false;
    for (Index i = 0; i < k; ++i) {
      const auto& t = traces[size_t(i)];
      if (t.empty()) continue;
      any = true;
      const Trace& tr = t[std::min(it, t.size() - 1)];
      rec.objective += tr.objective;
      rec.seconds = std::max(rec.seconds, tr.seconds);
      se += tr.test_se;
      cnt += double(tr.test_count);
      err.push_back({tr.err, tr.ref});
    }
    if (!any) break;
    if (truth && Index(err.size()) == k) {
      RecoveryMetrics m;
      detail::summarise_errors(err, m);
      rec.mean_rel_err = m.mean_rel_err;
      rec.median_rel_err = m.median_rel_err;
      rec.max_rel_err = m.max_rel_err;
    }
    if (cnt > 0) rec.test_mse = se / cnt;
    res.history.push_back(rec);
    if (o.callback && !o.callback(rec)) {
      res.stop_reason = StopReason::CallbackRequested;
      if (res.status != Status::NumericalIssue) res.status = Status::Success;
      break;
    }
  }
  if (res.history.empty()) {
    double reg = 0;
    for (const auto& s : Ss) reg += o.lambda * double(s.squaredNorm());
    res.history.push_back(
        detail::record_estimate(pb, e, estimate_loss(pb, e, w, o.num_threads) + reg, 0, detail::seconds_since(t0), o));
  }
  return res;
}

}  // namespace colora
