// The one translation unit that instantiates every baseline for the
// experiment program (the subcommands only see the declarations in
// methods.hpp), so the program compiles the solvers once, not once per
// subcommand.
#include "methods.hpp"

#include <colora/baselines/baselines.hpp>
#include <colora/baselines/rank_selection.hpp>

#include <type_traits>
#include <utility>

namespace colora {
namespace exp {

const std::vector<std::string>& known_methods() { return baseline_names(); }

const std::vector<std::string>& wide_rank_methods() {
  static const std::vector<std::string> m = [] {
    std::vector<std::string> out;
    for (const auto& t : baseline_traits())
      if (t.allows_wide_rank) out.emplace_back(t.name);
    return out;
  }();
  return m;
}

RankSelection select_rank(const std::string& method, const RegressionProblem<double>& pb,
                          const BaselineOptions& options, const RankSelectionOptions& cv) {
  return colora::select_rank(method, pb, options, cv);
}

bool method_needs_rank(const std::string& method) {
  for (const auto& t : baseline_traits())
    if (method == t.name) return t.needs_rank;
  return true;
}

namespace {

template <class Problem>
MethodOutcome run_method_impl(const std::string& method, const Problem& pb, const BaselineOptions& options) {
  bool known = false;
  for (const auto& m : known_methods()) known = known || m == method;
  if (!known) throw cli::UsageError("unknown method '" + method + "'");
  MethodOutcome out;
  out.method = method;
  const auto t0 = std::chrono::steady_clock::now();
  BaselineResult<typename Problem::Scalar> res = fit_baseline(method, pb, options);
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  out.status = res.status;
  out.stop_reason = res.stop_reason;
  out.iterations = res.iterations;
  out.history = std::move(res.history);
  out.warnings = std::move(res.warnings);
  if (pb.truth) out.metrics = estimate_metrics(*pb.truth, res.estimate, options.num_threads);
  out.test_mse = estimate_test_mse(pb, res.estimate, options.num_threads);
  out.parameters = res.estimate.trainable_parameters;
  // The estimate is as large as the cores and U_i (k small matrices): moved,
  // not copied, when it already is in double.
  if constexpr (std::is_same<typename Problem::Scalar, double>::value)
    out.estimate = std::move(res.estimate);
  else
    out.estimate = res.estimate.template cast<double>();
  if (out.history.empty()) {  // safety: every method should give at least one record
    IterationRecord rec;
    rec.seconds = out.seconds;
    rec.objective = std::numeric_limits<double>::quiet_NaN();
    rec.dist_a = out.metrics.dist_a;
    rec.dist_b = out.metrics.dist_b;
    rec.mean_rel_err = out.metrics.mean_rel_err;
    rec.median_rel_err = out.metrics.median_rel_err;
    rec.max_rel_err = out.metrics.max_rel_err;
    rec.test_mse = out.test_mse;
    out.history.push_back(rec);
  }
  return out;
}

}  // namespace

MethodOutcome run_method(const std::string& method, const RegressionProblem<double>& pb,
                         const BaselineOptions& options) {
  return run_method_impl(method, pb, options);
}

MethodOutcome run_method(const std::string& method, const SensingProblem<double>& pb, const BaselineOptions& options) {
  return run_method_impl(method, pb, options);
}

GuaranteeReport colora_guarantee_report(const RegressionProblem<double>& pb, Index rank,
                                        const std::vector<IterationRecord>& history, const RecoveryMetrics& metrics,
                                        const GuaranteeReportOptions& options) {
  return guarantee_report(pb, rank, history, metrics, options);
}

GuaranteeReport colora_guarantee_report(const SensingProblem<double>& pb, Index rank,
                                        const std::vector<IterationRecord>& history, const RecoveryMetrics& metrics,
                                        const GuaranteeReportOptions& options) {
  return guarantee_report(pb, rank, history, metrics, options);
}

}  // namespace exp
}  // namespace colora
