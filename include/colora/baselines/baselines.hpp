// The baselines (docs/baselines.md) as first-class solvers, their registry
// (name, traits, fit function) and one entry point that runs any method by name:
//
//   auto res = colora::fit_baseline("fedrep", problem, options);   // BaselineResult
//   res.status, res.stop_reason, res.history, res.estimate (U_i, V_i, A, B, named factors)
//   colora::estimate_metrics(*problem.truth, res.estimate);        // gauge-free errors
//   colora::estimate_test_mse(problem, res.estimate);
//
// Names: baseline_names() (the registry's order). Every method accepts RegressionProblem (M1) and
// SensingProblem (M2).
#pragma once

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "colora/baselines/estimate.hpp"
#include "colora/baselines/fedrep.hpp"
#include "colora/baselines/ffa_mom.hpp"
#include "colora/baselines/gd_gd.hpp"
#include "colora/baselines/global.hpp"
#include "colora/baselines/local.hpp"
#include "colora/regression/oracle.hpp"

namespace colora {

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
  res.estimate = detail::colora_form_estimate(f.A, f.B, std::move(f.cores), pb.W0);
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

/// What the programs need to know about a method besides its fit function.
struct BaselineTraits {
  const char* name;
  bool needs_rank;        ///< false for the full-rank methods (local, global)
  bool allows_wide_rank;  ///< runs with r > q (colora-form with B = [I_q 0], heads, rank-free)
};

/// The traits of every method, in the registry's order (baseline_registry()
/// pairs them with the fit functions). A plain table: code that only needs
/// names and traits (the programs' flag checks) instantiates no solver.
inline const std::vector<BaselineTraits>& baseline_traits() {
  static const std::vector<BaselineTraits> traits = {
      {"colora", true, true},      {"oracle", true, true},  {"local", false, true},     {"local-lora", true, false},
      {"global", false, true},     {"global-lora", true, false}, {"fedrep", true, true}, {"fedrep-gd", true, true},
      {"ffa", true, false},        {"gd-gd", true, false},  {"mom", true, true},
  };
  return traits;
}

/// One method of the registry: its traits and its fit function for a problem type.
template <class Problem>
struct BaselineEntry {
  BaselineTraits traits;
  BaselineResult<typename Problem::Scalar> (*fit)(const Problem&, const BaselineOptions&);
};

/// Every method fit_baseline() knows: baseline_traits() with each method's
/// fit function. Adding a method is one line in each of the two tables (same
/// position) plus the method's own header (docs/baselines.md).
template <class Problem>
const std::vector<BaselineEntry<Problem>>& baseline_registry() {
  using R = BaselineResult<typename Problem::Scalar>;
  using Fit = R (*)(const Problem&, const BaselineOptions&);
  static const std::vector<BaselineEntry<Problem>> registry = [] {
    const std::vector<std::pair<const char*, Fit>> fits = {
        {"colora", &fit_colora<Problem>},
        {"oracle", &fit_oracle_baseline<Problem>},
        {"local", &fit_local<Problem>},
        {"local-lora", &fit_local_lora<Problem>},
        {"global", &fit_global<Problem>},
        {"global-lora", &fit_global_lora<Problem>},
        {"fedrep", [](const Problem& pb, const BaselineOptions& o) -> R { return fit_fedrep(pb, o); }},
        {"fedrep-gd",
         [](const Problem& pb, const BaselineOptions& o) -> R { return fit_fedrep(pb, o, FedRepVariant::AltGD); }},
        {"ffa", &fit_ffa<Problem>},
        {"gd-gd", &fit_gd_gd<Problem>},
        {"mom", &fit_mom<Problem>},
    };
    const auto& traits = baseline_traits();
    if (fits.size() != traits.size()) throw std::logic_error("colora::baseline_registry: traits and fits differ in length");
    std::vector<BaselineEntry<Problem>> r;
    for (size_t j = 0; j < fits.size(); ++j) {
      if (std::string(fits[j].first) != traits[j].name)
        throw std::logic_error(std::string("colora::baseline_registry: fit '") + fits[j].first + "' is at the place of '" +
                               traits[j].name + "' in baseline_traits()");
      r.push_back({traits[j], fits[j].second});
    }
    return r;
  }();
  return registry;
}

/// The names of every method, in the registry's order.
inline const std::vector<std::string>& baseline_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& t : baseline_traits()) n.emplace_back(t.name);
    return n;
  }();
  return names;
}

/// Runs the method called `name` (see baseline_names()). Throws
/// std::invalid_argument for an unknown name or bad input/options.
template <class Problem>
BaselineResult<typename Problem::Scalar> fit_baseline(const std::string& name, const Problem& pb,
                                                      const BaselineOptions& o) {
  for (const auto& e : baseline_registry<Problem>())
    if (name == e.traits.name) return e.fit(pb, o);
  std::string all;
  for (const auto& n : baseline_names()) all += " " + n;
  detail::invalid("colora::fit_baseline", "unknown method '", name, "' (known:", all, ")");
}

}  // namespace colora
