// The baselines of spec section 7 as first-class solvers, and one entry
// point that runs any method by name (docs/baselines.md):
//
//   auto res = colora::fit_baseline("fedrep", problem, options);   // BaselineResult
//   res.status, res.stop_reason, res.history, res.estimate (U_i, V_i, A, B, named factors)
//   colora::estimate_metrics(*problem.truth, res.estimate);        // gauge-free errors
//   colora::estimate_test_mse(problem, res.estimate);
//
// Names: colora, oracle, local, local-lora, global, global-lora, fedrep,
// fedrep-gd, ffa, gd-gd, mom. Every method accepts RegressionProblem (M1) and
// SensingProblem (M2).
#pragma once

#include <string>
#include <vector>

#include "colora/baselines/estimate.hpp"
#include "colora/baselines/fedrep.hpp"
#include "colora/baselines/ffa_mom.hpp"
#include "colora/baselines/gd_gd.hpp"
#include "colora/baselines/global.hpp"
#include "colora/baselines/local.hpp"
#include "colora/regression/oracle.hpp"

namespace colora {

/// Every method fit_baseline() knows, in a fixed order.
inline const std::vector<std::string>& baseline_names() {
  static const std::vector<std::string> names = {"colora", "oracle",      "local",  "local-lora",
                                                 "global", "global-lora", "fedrep", "fedrep-gd",
                                                 "ffa",    "gd-gd",       "mom"};
  return names;
}

/// CoLoRA itself through the generic interface (the Solver; history as the solver's).
template <class Problem>
BaselineResult<typename Problem::Scalar> fit_colora(const Problem& pb, const BaselineOptions& o) {
  o.validate();
  auto f = fit(pb, static_cast<const SolverOptions&>(o));
  BaselineResult<typename Problem::Scalar> res;
  res.method = "colora";
  res.status = f.status;
  res.stop_reason = f.stop_reason;
  res.iterations = f.iterations;
  res.history = std::move(f.history);
  res.warnings = std::move(f.warnings);
  res.estimate = detail::colora_form_estimate(f.A, f.B, f.cores, pb.W0);
  return res;
}

/// The oracle (regression/oracle.hpp) through the generic interface: S_i by
/// least squares with the true A*, B*. Throws if the problem has no truth.
template <class Problem>
BaselineResult<typename Problem::Scalar> fit_oracle_baseline(const Problem& pb, const BaselineOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  auto f = fit_oracle(pb, o.lambda, o.core, o.num_threads);
  BaselineResult<typename Problem::Scalar> res;
  res.method = "oracle";
  res.estimate = detail::colora_form_estimate(f.A, f.B, f.cores, pb.W0);
  res.estimate.trainable_parameters = 0;
  for (const auto& s : f.cores) res.estimate.trainable_parameters += s.size();
  const auto w = detail::task_weights(pb, o.weighting);
  double reg = 0;
  for (const auto& s : f.cores) reg += o.lambda * double(s.squaredNorm());
  detail::finish_closed_form(pb, res, f.status == Status::Success,
                             estimate_loss(pb, res.estimate, w, o.num_threads) + reg, t0, o);
  return res;
}

/// Runs the method called `name` (see baseline_names()). Throws
/// std::invalid_argument for an unknown name or bad input/options.
template <class Problem>
BaselineResult<typename Problem::Scalar> fit_baseline(const std::string& name, const Problem& pb,
                                                      const BaselineOptions& o) {
  if (name == "colora") return fit_colora(pb, o);
  if (name == "oracle") return fit_oracle_baseline(pb, o);
  if (name == "local") return fit_local(pb, o);
  if (name == "local-lora") return fit_local_lora(pb, o);
  if (name == "global") return fit_global(pb, o);
  if (name == "global-lora") return fit_global_lora(pb, o);
  if (name == "fedrep") return fit_fedrep(pb, o, FedRepVariant::AltMin);
  if (name == "fedrep-gd") return fit_fedrep(pb, o, FedRepVariant::AltGD);
  if (name == "ffa") return fit_ffa(pb, o);
  if (name == "gd-gd") return fit_gd_gd(pb, o);
  if (name == "mom") return fit_mom(pb, o);
  std::string all;
  for (const auto& n : baseline_names()) all += " " + n;
  detail::invalid("colora::fit_baseline", "unknown method '", name, "' (known:", all, ")");
}

}  // namespace colora
