// Global baselines (docs/baselines.md): one model for every task.
//
//   global       one W for all tasks: pooled (weighted) least squares, closed
//                form. This is FedAvg's fixed point for a linear model.
//                Implemented as `local` on the pooled problem (rows of task i
//                scaled by sqrt(w_i)).
//   global-lora  one B A for all tasks (FedAvg-LoRA): CoLoRA with the
//                constraint S_i = S for every i, i.e. the CoLoRA solver with
//                k = 1 on the pooled problem.
#pragma once

#include "colora/baselines/local.hpp"

namespace colora {

/// global: min_W sum_i w_i L_i(W_0 + W) + lambda ||W||_F^2, closed form.
/// (M1) and (M2). Ignores options.rank.
template <class Problem>
BaselineResult<typename Problem::Scalar> fit_global(const Problem& pb, const BaselineOptions& o) {
  using Scalar = typename Problem::Scalar;
  const char* where = "colora::fit_global";
  pb.validate(where);
  o.validate(false);
  const auto t0 = std::chrono::steady_clock::now();
  const auto w = detail::task_weights(pb, o.weighting);
  const Problem pool = detail::pooled(pb, w);
  BaselineOptions po = o;
  po.weighting = TaskWeighting::PerSample;  // the weights are in the rows already
  po.callback = nullptr;
  po.track_truth = false;
  const BaselineResult<Scalar> one = fit_local(pool, po);
  BaselineResult<Scalar> res;
  res.method = "global";
  auto& e = res.estimate;
  const Matrix<Scalar> W = one.estimate.U[0];
  e.U.assign(size_t(pb.num_tasks()), W);
  e.V.assign(1, one.estimate.v(0));  // shared by every task
  e.dense = true;
  e.W0 = pb.W0;
  e.shared = {{"W", W}};
  e.trainable_parameters = W.size();
  if (pb.total_samples() < pb.input_dim() && o.lambda == 0.0)
    res.warnings.push_back("the pooled sample count is below p: the minimum-norm W is used");
  detail::finish_closed_form(pb, res, one.status == Status::Success,
                             estimate_loss(pb, e, w, o.num_threads) + o.lambda * double(W.squaredNorm()), t0, o);
  return res;
}

/// global-lora: W_i = W_0 + B S A for every task (one rank-r adapter,
/// FedAvg-LoRA), by CoLoRA alternating minimization on the pooled problem.
/// History, callback and stopping are the solver's; the records are
/// evaluated on the original tasks (truth errors, held-out MSE).
template <class Problem>
BaselineResult<typename Problem::Scalar> fit_global_lora(const Problem& pb, const BaselineOptions& o) {
  using Scalar = typename Problem::Scalar;
  using Mat = Matrix<Scalar>;
  const char* where = "colora::fit_global_lora";
  pb.validate(where);
  o.validate();
  detail::check_rank(pb, o.rank, where);
  const auto t0 = std::chrono::steady_clock::now();
  const Index k = pb.num_tasks();
  const auto w = detail::task_weights(pb, o.weighting);
  const Problem pool = detail::pooled(pb, w);
  SolverOptions so = o;
  so.weighting = TaskWeighting::PerSample;
  so.track_truth = false;
  BaselineResult<Scalar> res;
  res.method = "global-lora";
  Solver<Scalar> solver(so);
  auto estimate_now = [&] {
    return detail::colora_form_estimate<Scalar>(solver.A(), solver.B(), std::vector<Mat>(size_t(k), solver.core(0)),
                                                pb.W0);
  };
  solver.options().callback = [&](const IterationRecord& rec) {
    IterationRecord mine = detail::record_estimate(pb, estimate_now(), rec.objective, rec.iteration,
                                                   detail::seconds_since(t0), o);
    mine.a_step_products = rec.a_step_products;
    res.history.push_back(mine);
    return o.callback ? o.callback(mine) : true;
  };
  solver.compute(pool);
  res.status = solver.info();
  res.stop_reason = solver.stop_reason();
  res.iterations = solver.iterations();
  res.warnings = solver.warnings();
  res.estimate = estimate_now();
  res.estimate.shared = {{"A", solver.A()}, {"B", solver.B()}, {"S", solver.core(0)}};
  res.estimate.personal.clear();
  res.estimate.trainable_parameters = solver.A().size() + solver.B().size() + solver.core(0).size();
  if (res.history.empty()) {
    // The solver failed before its first callback: record the state it kept.
    res.history.push_back(detail::record_estimate(pb, res.estimate,
                                                  estimate_loss(pb, res.estimate, w, o.num_threads) +
                                                      o.lambda * double(solver.core(0).squaredNorm()),
                                                  res.iterations, detail::seconds_since(t0), o));
  }
  return res;
}

}  // namespace colora
