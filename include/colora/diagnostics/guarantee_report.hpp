// Guarantee report of one run (docs/theory.md, "Guarantee report"): the
// measured counterpart of the "guarantee check" of the alternating-minimization
// literature,
//     rho < 1  and  the error floor within a small factor of the oracle floor,
// next to the quantities such guarantees are stated in: the GRIP constant
// (attained / exact, and the Gaussian prediction), sample counts against the
// degrees of freedom, task diversity nu and task similarity (principal angles).
//
// Choices [choice], documented in docs/theory.md:
//  * delta_hat: (M1) the exact closed form regression_grip_exact (cheap:
//    extreme eigenvalues of X_i^T X_i / n_i); (M2) grip_estimate, a certified
//    lower bound (search).
//  * rho: fit_contraction_rate on the history of max(dist_a, dist_b).
//  * floor: final mean_i ||B S_i A - B_i* S_i* A_i*||_F^2 against the oracle
//    floor mean_i E||S_hat_i - S_i*||_F^2 of the least-squares core with A*, B*
//    known: (M1, Sigma = I) sigma^2 r^2 / (n_i - r - 1); (M2, Gaussian M_ij)
//    sigma^2 r^2 / (m_i - r^2 - 1). Diagonal cores: (M1) sigma^2 r / (n_i - 2),
//    (M2) sigma^2 r / (m_i - r - 1); why: docs/theory.md, "Oracle floors".
//    The formula does not apply (NaN) when some n_i is too small for the mean
//    to exist, or (M1) Sigma != I. A rounding term
//    (1000 eps(Scalar))^2 mean_i ||Delta_i*||_F^2 is added to the reference
//    so that noiseless runs (oracle floor 0) get a finite ratio.
//  * verdict: Holds when rho's upper confidence bound < 1 and the floor ratio
//    <= floor_factor (3); Fails when either is measured false;
//    Undetermined when a piece is missing (no linear phase, formula N/A).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "colora/core/adapter.hpp"
#include "colora/core/errors.hpp"
#include "colora/diagnostics/convergence_rate.hpp"
#include "colora/diagnostics/grip.hpp"
#include "colora/diagnostics/oracle_floor.hpp"
#include "colora/regression/recovery_metrics.hpp"
#include "colora/diagnostics/task_structure.hpp"
#include "colora/regression/data.hpp"
#include "colora/regression/solver.hpp"

namespace colora {

/// Options of guarantee_report().
struct GuaranteeReportOptions {
  double confidence = 0.95;        ///< level of the rho interval and of the predicted delta
  double floor_factor = 3.0;       ///< the verdict's "small factor" of the oracle floor
  bool compute_grip = true;        ///< false: skip delta_hat (NaN)
  GripOptions grip;                ///< (M2) search options; rank is taken from the run
  RateFitOptions rate;             ///< contraction-rate fit (its confidence is overridden)
  CoreKind core = CoreKind::Full;  ///< the run's core kind (dof and oracle floor)
  int num_threads = 0;             ///< threads of the GRIP computations (0 = all)

  void validate(const char* where = "colora::GuaranteeReportOptions") const {
    detail::require(confidence > 0.0 && confidence < 1.0, where, "confidence must be in (0, 1), got ", confidence);
    detail::require(std::isfinite(floor_factor) && floor_factor >= 1.0, where, "floor_factor must be >= 1, got ",
                    floor_factor);
    detail::require(num_threads >= 0, where, "num_threads must be >= 0, got ", num_threads);
  }
};

/// Outcome of the guarantee check.
enum class Verdict { Holds, Fails, Undetermined };

inline const char* to_string(Verdict v) noexcept {
  switch (v) {
    case Verdict::Holds: return "holds";
    case Verdict::Fails: return "fails";
    case Verdict::Undetermined: return "undetermined";
  }
  return "?";
}

/// One line of the report: a quantity, its value and (when it has one) a
/// confidence interval. Written as CSV `quantity,value,ci_low,ci_high`.
struct ReportRow {
  std::string quantity;
  double value = std::numeric_limits<double>::quiet_NaN();
  double ci_low = std::numeric_limits<double>::quiet_NaN();
  double ci_high = std::numeric_limits<double>::quiet_NaN();
};

/// What guarantee_report() returns. Unavailable numbers are NaN.
struct GuaranteeReport {
  static constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  MeasurementModel model = MeasurementModel::Regression;
  Index k = 0, p = 0, q = 0, r = 0;
  Index n_min = 0, n_max = 0;
  Index total_samples = 0;       ///< sum_i n_i (rows for M1, measurements for M2)
  Index total_observations = 0;  ///< numbers observed: sum_i n_i q (M1), sum_i m_i (M2)
  Index dof = 0;                 ///< (p + q) r + k r^2 (k r for diagonal cores)
  double observations_per_dof = nan;

  // GRIP
  std::string delta_method;  ///< "exact" (M1 closed form), "search-lower-bound" (M2), "none"
  double delta_hat = nan;
  double grip_lambda_max = nan, grip_lambda_min = nan;
  double delta_predicted = nan;  ///< Gaussian-design prediction at `confidence`

  // rate
  RateFit rate;  ///< on max(dist_a, dist_b) per iteration
  Index history_length = 0;

  // floor
  double final_distance = nan;     ///< max(dist_a, dist_b) of the final estimate
  double final_mean_sq_err = nan;  ///< mean_i ||B S_i A - Delta_i*||_F^2
  double final_mean_rel_err = nan;
  double oracle_floor = nan;    ///< mean_i oracle floor (formula); NaN when it does not apply
  double rounding_floor = 0.0;  ///< (1000 eps)^2 mean_i ||Delta_i*||_F^2
  double floor_ratio = nan;     ///< final_mean_sq_err / (oracle_floor + rounding_floor)

  // task structure
  double diversity = nan;
  double mean_theta_a = nan, max_theta_a = nan, mean_theta_b = nan, max_theta_b = nan;

  // verdict
  double floor_factor = 3.0;
  bool rate_ok = false, floor_ok = false;
  Verdict verdict = Verdict::Undetermined;
  std::string verdict_text;  ///< one line, e.g. "holds: rho = 0.41 [0.38, 0.44] < 1, floor 1.3x oracle <= 3x"

  /// The report as rows (quantity, value, ci_low, ci_high), in a fixed order.
  std::vector<ReportRow> rows() const {
    std::vector<ReportRow> out;
    auto add = [&](const char* name, double v, double lo = nan, double hi = nan) { out.push_back({name, v, lo, hi}); };
    add("model_sensing", model == MeasurementModel::Sensing ? 1.0 : 0.0);
    add("k", double(k));
    add("p", double(p));
    add("q", double(q));
    add("r", double(r));
    add("n_min", double(n_min));
    add("n_max", double(n_max));
    add("total_samples", double(total_samples));
    add("total_observations", double(total_observations));
    add("dof", double(dof));
    add("observations_per_dof", observations_per_dof);
    add(model == MeasurementModel::Regression ? "delta_hat_exact" : "delta_hat_lower_bound", delta_hat);
    add("grip_lambda_max", grip_lambda_max);
    add("grip_lambda_min", grip_lambda_min);
    add("delta_predicted", delta_predicted);
    add("rho", rate.rho, rate.rho_lower, rate.rho_upper);
    add("rho_theil_sen", rate.rho_theil_sen);
    add("rate_window_begin", double(rate.window_begin));
    add("rate_window_end", double(rate.window_end));
    add("dist_floor", rate.floor);
    add("final_distance", final_distance);
    add("final_mean_sq_err", final_mean_sq_err);
    add("final_mean_rel_err", final_mean_rel_err);
    add("oracle_floor", oracle_floor);
    add("floor_ratio", floor_ratio);
    add("diversity", diversity);
    add("theta_a_mean", mean_theta_a);
    add("theta_a_max", max_theta_a);
    add("theta_b_mean", mean_theta_b);
    add("theta_b_max", max_theta_b);
    add("rate_ok", rate_ok ? 1.0 : 0.0);
    add("floor_ok", floor_ok ? 1.0 : 0.0);
    add("verdict_holds", verdict == Verdict::Holds ? 1.0 : verdict == Verdict::Fails ? 0.0 : nan);
    return out;
  }
};

namespace detail {

/// Personal parameters per task: r^2 (full core), r (diagonal), q r (q < r: a head).
inline Index report_oracle_dim(Index q, Index r, CoreKind core) {
  return q < r ? q * r : core == CoreKind::Diagonal ? r : r * r;
}

/// Mean over tasks of the oracle core floor (NaN when it does not apply).
template <class Problem>
double report_oracle_floor(const Problem& pb, MeasurementModel model, double sigma, Index r, CoreKind core,
                           bool identity_inputs) {
  if (!identity_inputs) return std::numeric_limits<double>::quiet_NaN();
  const Index q = pb.output_dim();
  const Index d = report_oracle_dim(q, r, core);
  double sum = 0.0;
  for (Index i = 0; i < pb.num_tasks(); ++i) {
    const Index n = pb.samples(i);
    if (model == MeasurementModel::Regression) {
      // Full core: oracle_core_floor. Diagonal core: column j of R_i B* is
      // (X_i a_j*) s_j + noise, r independent 1-d fits: sigma^2 r / (n - 2).
      if (core == CoreKind::Full) {
        if (n <= r + 1) return std::numeric_limits<double>::quiet_NaN();
        sum += q < r ? oracle_head_floor(sigma, long(q), long(r), long(n)) : oracle_core_floor(sigma, long(r), long(n));
      } else {
        if (n <= 2) return std::numeric_limits<double>::quiet_NaN();
        sum += sigma * sigma * double(r) / double(n - 2);
      }
    } else {
      if (n <= d + 1) return std::numeric_limits<double>::quiet_NaN();
      sum += sigma * sigma * double(d) / double(n - d - 1);
    }
  }
  return sum / double(pb.num_tasks());
}

}  // namespace detail

/// Builds the report of one run of rank `rank`: `pb` must carry its truth;
/// `history` is the run's history (dist_a, dist_b per iteration, truth
/// tracking on); `final_metrics` the errors of the final estimate
/// (recovery_metrics, or estimate_metrics for a baseline's estimate).
template <class Problem>
GuaranteeReport guarantee_report(const Problem& pb, Index rank, const std::vector<IterationRecord>& history,
                                 const RecoveryMetrics& final_metrics, const GuaranteeReportOptions& opt = {}) {
  using Scalar = typename Problem::Scalar;
  const char* where = "colora::guarantee_report";
  opt.validate(where);
  pb.validate(where);
  detail::require(pb.truth.has_value(), where, "the problem carries no ground truth");
  detail::require(rank >= 1 && rank <= pb.input_dim(), where, "rank must be in [1, p = ", pb.input_dim(), "], got ",
                  rank);
  constexpr bool is_regression = std::is_same<Problem, RegressionProblem<Scalar>>::value;
  const MeasurementModel model = is_regression ? MeasurementModel::Regression : MeasurementModel::Sensing;
  const auto& truth = *pb.truth;

  GuaranteeReport rep;
  rep.model = model;
  rep.k = pb.num_tasks();
  rep.p = pb.input_dim();
  rep.q = pb.output_dim();
  rep.r = rank;
  rep.n_min = pb.samples(0);
  rep.n_max = pb.samples(0);
  for (Index i = 0; i < rep.k; ++i) {
    rep.n_min = std::min(rep.n_min, pb.samples(i));
    rep.n_max = std::max(rep.n_max, pb.samples(i));
  }
  rep.total_samples = pb.total_samples();
  rep.total_observations = is_regression ? rep.total_samples * rep.q : rep.total_samples;
  rep.dof = colora_degrees_of_freedom(rep.p, rep.q, rep.r, rep.k, opt.core);
  rep.observations_per_dof = double(rep.total_observations) / double(rep.dof);

  // GRIP.
  rep.delta_method = "none";
  if (opt.compute_grip) {
    if constexpr (is_regression) {
      const GripExact ex = regression_grip_exact(pb, opt.num_threads);
      rep.delta_method = "exact";
      rep.delta_hat = ex.delta;
      rep.grip_lambda_max = ex.lambda_max;
      rep.grip_lambda_min = ex.lambda_min;
    } else {
      GripOptions g = opt.grip;
      g.rank = rep.r;
      g.num_threads = opt.num_threads;
      const GripResult<Scalar> res = grip_estimate(pb, g);
      rep.delta_method = "search-lower-bound";
      rep.delta_hat = res.delta_hat;
      rep.grip_lambda_max = res.lambda_max;
      rep.grip_lambda_min = res.lambda_min;
    }
  }
  rep.delta_predicted = predict_grip_delta(pb, rep.r, opt.confidence).delta;

  // Rate on max(dist_a, dist_b).
  std::vector<double> dist;
  dist.reserve(history.size());
  bool finite = true;
  for (const auto& h : history) {
    const double d = std::max(h.dist_a, h.dist_b);
    if (!std::isfinite(d) || !std::isfinite(h.dist_a) || !std::isfinite(h.dist_b)) finite = false;
    dist.push_back(d);
  }
  rep.history_length = Index(history.size());
  if (finite && !dist.empty()) {
    RateFitOptions ro = opt.rate;
    ro.confidence = opt.confidence;
    rep.rate = fit_contraction_rate(dist, ro);
  }

  // Floor.
  const RecoveryMetrics& m = final_metrics;
  rep.final_distance = std::max(m.dist_a, m.dist_b);
  rep.final_mean_sq_err = m.mean_sq_err;
  rep.final_mean_rel_err = m.mean_rel_err;
  bool identity_inputs = true;
  if constexpr (is_regression) identity_inputs = truth.input_scales.size() == 0;
  rep.oracle_floor = detail::report_oracle_floor(pb, model, truth.sigma, rep.r, opt.core, identity_inputs);
  double signal = 0.0;
  for (Index i = 0; i < rep.k; ++i) signal += double(truth.delta(i).template cast<double>().squaredNorm());
  signal /= double(rep.k);
  const double eps = double(std::numeric_limits<Scalar>::epsilon());
  rep.rounding_floor = (1000.0 * eps) * (1000.0 * eps) * signal;
  if (std::isfinite(rep.oracle_floor) && rep.oracle_floor + rep.rounding_floor > 0.0)
    rep.floor_ratio = rep.final_mean_sq_err / (rep.oracle_floor + rep.rounding_floor);

  // Task structure.
  const TaskStructure ts = task_structure(truth, rep.total_samples, opt.core);
  rep.diversity = ts.diversity;
  rep.mean_theta_a = ts.mean_theta_A;
  rep.max_theta_a = ts.max_theta_A;
  rep.mean_theta_b = ts.mean_theta_B;
  rep.max_theta_b = ts.max_theta_B;

  // Verdict: measured, never assumed.
  rep.floor_factor = opt.floor_factor;
  const bool rate_known = rep.rate.status == RateFitStatus::Fitted && std::isfinite(rep.rate.rho_upper);
  const bool floor_known = std::isfinite(rep.floor_ratio);
  rep.rate_ok = rate_known && rep.rate.rho_upper < 1.0;
  rep.floor_ok = floor_known && rep.floor_ratio <= opt.floor_factor;
  if ((rate_known && !rep.rate_ok) || (floor_known && !rep.floor_ok))
    rep.verdict = Verdict::Fails;
  else if (rate_known && floor_known)
    rep.verdict = Verdict::Holds;
  else
    rep.verdict = Verdict::Undetermined;
  auto fmt = [](double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3g", v);
    return std::string(buf);
  };
  std::string rate_part = rate_known ? "rho = " + fmt(rep.rate.rho) + " [" + fmt(rep.rate.rho_lower) + ", " +
                                           fmt(rep.rate.rho_upper) + "]" + (rep.rate_ok ? " < 1" : " not < 1")
                                     : std::string("rho not measured (") + to_string(rep.rate.status) +
                                           " linear phase, " + std::to_string(rep.history_length) + " iterations)";
  std::string floor_part = floor_known ? "floor " + fmt(rep.floor_ratio) + "x oracle" +
                                             (rep.floor_ok ? " <= " : " > ") + fmt(opt.floor_factor) + "x"
                                       : std::string("oracle floor formula does not apply");
  rep.verdict_text = std::string(to_string(rep.verdict)) + ": " + rate_part + ", " + floor_part;
  return rep;
}

/// The same from a final estimate A (r x p), B (q x r), cores (r x r each).
template <class Problem>
GuaranteeReport guarantee_report(const Problem& pb, const std::vector<IterationRecord>& history,
                                 const Matrix<typename Problem::Scalar>& A, const Matrix<typename Problem::Scalar>& B,
                                 const std::vector<Matrix<typename Problem::Scalar>>& cores,
                                 const GuaranteeReportOptions& opt = {}) {
  const char* where = "colora::guarantee_report";
  detail::require(pb.truth.has_value(), where, "the problem carries no ground truth");
  detail::require(Index(cores.size()) == pb.num_tasks(), where, "got ", cores.size(), " cores for ", pb.num_tasks(),
                  " tasks");
  detail::require(A.rows() >= 1 && B.cols() == A.rows(), where, "A is ", A.rows(), " x ", A.cols(), " and B is ",
                  B.rows(), " x ", B.cols(), ": need r >= 1 and B.cols() == A.rows()");
  return guarantee_report(pb, A.rows(), history, recovery_metrics(*pb.truth, A, B, cores), opt);
}

/// The same from a fitted Solver (its history, A, B and cores).
template <class Problem>
GuaranteeReport guarantee_report(const Problem& pb, const Solver<typename Problem::Scalar>& solver,
                                 GuaranteeReportOptions opt = {}) {
  opt.core = solver.options().core;
  return guarantee_report(pb, solver.history(), solver.A(), solver.B(), solver.cores(), opt);
}

}  // namespace colora
