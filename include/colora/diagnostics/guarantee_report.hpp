// Guarantee report of one run (docs/theory.md, "Guarantee report"). One file
// of about 490 lines on purpose: the report, its rows, the one function that
// fills them and the verdict are read together; the pieces it combines live
// in their own headers (grip, tangent_grip, measured_rate, predicted_rate,
// convergence_rate, oracle_floor, task_structure). The
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
//  * rho_measured: fit_contraction_rate on the run's history of
//    max(dist_a, dist_b); rho_measured_noiseless: the same solver from the
//    same start on the noiseless twin, to its fixed point (measured_rate.hpp);
//    rho_predicted: the spectral radius of the iteration map's Jacobian at
//    the twin's fixed point (predicted_rate.hpp).
//  * floor: final mean_i ||B S_i A - B_i* S_i* A_i*||_F^2 against the oracle
//    floor mean_i E||S_hat_i - S_i*||_F^2 of the least-squares core with A*, B*
//    known: (M1, Sigma = I) sigma^2 r^2 / (n_i - r - 1); (M2, Gaussian M_ij)
//    sigma^2 r^2 / (m_i - r^2 - 1). Diagonal cores: (M1) sigma^2 r / (n_i - 2),
//    (M2) sigma^2 r / (m_i - r - 1); why: docs/theory.md, "Oracle floors".
//    The formula does not apply (NaN) when some n_i is too small for the mean
//    to exist, or (M1) Sigma != I. A rounding term
//    (1000 eps(Scalar))^2 mean_i ||Delta_i*||_F^2 is added to the reference
//    so that noiseless runs (oracle floor 0) get a finite ratio.
//  * verdict: the rate used is the noisy run's when its linear phase is
//    resolvable and its interval decides (below 1, or not below 1), else the
//    twin's. The rate holds when its upper confidence
//    bound is < 1 and its interval reaches the prediction's interval or
//    lies below it (lower bound <= rho_predicted's upper bound; < 1 alone
//    when no prediction is available). Holds when the rate holds and the
//    floor ratio <= floor_factor (3); Fails when either is measured false;
//    Undetermined when a piece is missing (no linear phase even on the
//    twin: >= 3 iterations before the floor are needed; formula N/A).
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
#include "colora/diagnostics/measured_rate.hpp"
#include "colora/diagnostics/predicted_rate.hpp"
#include "colora/diagnostics/tangent_grip.hpp"
#include "colora/regression/recovery_metrics.hpp"
#include "colora/diagnostics/task_structure.hpp"
#include "colora/regression/data.hpp"
#include "colora/regression/solver.hpp"

namespace colora {

/// Options of guarantee_report().
struct GuaranteeReportOptions {
  double confidence = 0.95;        ///< level of the rho interval and of the predicted delta
  double floor_factor = 3.0;       ///< the verdict's "small factor" of the oracle floor
  bool compute_grip = true;        ///< false: skip delta_hat and delta_tangent (NaN)
  bool compute_tangent_grip = true;  ///< (M1) the tangent-space constant delta_tangent (tangent_grip.hpp)
  TangentGripOptions tangent;        ///< its options (num_threads is taken from here too)
  GripOptions grip;                ///< (M2) search options; rank is taken from the run
  RateFitOptions rate;             ///< contraction-rate fit (its confidence is overridden)
  CoreKind core = CoreKind::Full;  ///< the run's core kind (dof and oracle floor)
  int num_threads = 0;             ///< threads of the GRIP computations (0 = all)
  /// The run's solver settings (rank, init, seed, A-step, weighting, lambda):
  /// the noiseless twin and the predicted rate re-run them. With
  /// solver.rank == 0 (the default) the report's rank argument, `core` and
  /// `num_threads` are used with the solver's default settings.
  SolverOptions solver;
  bool rate_check = true;  ///< run the noiseless twin and predict the rate (measured_rate.hpp, predicted_rate.hpp)
  TwinOptions twin;        ///< the twin run and the fit of its rate (its confidence is overridden)
  LinearizationOptions linearization;

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
  /// (M1) the GRIP constant restricted to the tangent space at the truth:
  /// informative when n_i < p (delta_hat is then >= 1); bracket [low, high].
  double delta_tangent = nan, delta_tangent_low = nan, delta_tangent_high = nan;
  double tangent_lambda_min = nan, tangent_lambda_max = nan;
  /// (M1) the same over the shared tangent directions (dS_i = 0), whose mass
  /// is spread across tasks: the constant that falls below 1 as the total
  /// sample count grows while every n_i < p [choice] (docs/theory.md).
  double delta_shared = nan, delta_shared_low = nan, delta_shared_high = nan;
  std::string tangent_note;  ///< why delta_tangent is NaN, or a note on it

  // rate
  RateFit rate;  ///< rho_measured: on the run's max(dist_a, dist_b) per iteration
  Index history_length = 0;
  RateFit rate_noiseless;          ///< rho_measured_noiseless: the twin's distance to its fixed point
  bool twin_ok = false;            ///< the twin ran (false: not asked, or numerical trouble: twin_reason)
  std::string twin_reason;
  int twin_iterations = 0;
  bool twin_converged = false;
  double twin_limit_distance = nan;  ///< max(dist_a, dist_b) of the twin's fixed point to the truth
  PredictedRate predicted;           ///< rho_predicted at the twin's fixed point
  std::string rate_source = "none";  ///< the rate the verdict uses: "run", "noiseless twin" or "none"
  RateFit rate_used;                 ///< that rate

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
    add("delta_tangent", delta_tangent, delta_tangent_low, delta_tangent_high);
    add("tangent_lambda_min", tangent_lambda_min);
    add("tangent_lambda_max", tangent_lambda_max);
    add("delta_shared", delta_shared, delta_shared_low, delta_shared_high);
    add("rho_measured", rate.rho, rate.rho_lower, rate.rho_upper);
    add("rho_theil_sen", rate.rho_theil_sen);
    add("rate_window_begin", double(rate.window_begin));
    add("rate_window_end", double(rate.window_end));
    add("dist_floor", rate.floor);
    add("rho_measured_noiseless", rate_noiseless.rho, rate_noiseless.rho_lower, rate_noiseless.rho_upper);
    add("noiseless_window_begin", twin_ok ? double(rate_noiseless.window_begin) : nan);
    add("noiseless_window_end", twin_ok ? double(rate_noiseless.window_end) : nan);
    add("noiseless_iterations", twin_ok ? double(twin_iterations) : nan);
    add("noiseless_limit_distance", twin_limit_distance);
    add("rho_predicted", predicted.rho, predicted.rho_lower, predicted.rho_upper);
    add("rho_predicted_half_step", predicted.rho_half_step);
    add("rate_from_noiseless_twin", rate_source == "noiseless twin" ? 1.0 : rate_source == "run" ? 0.0 : nan);
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
      if (opt.compute_tangent_grip) {
        TangentGripOptions tg = opt.tangent;
        if (tg.num_threads == 0) tg.num_threads = opt.num_threads;
        const TangentGrip t = regression_tangent_grip(pb, tg);
        rep.tangent_note = t.reason;
        if (t.valid) {
          rep.delta_tangent = t.delta;
          rep.delta_tangent_low = t.delta_low;
          rep.delta_tangent_high = t.delta_high;
          rep.tangent_lambda_min = t.lambda_min;
          rep.tangent_lambda_max = t.lambda_max;
          rep.delta_shared = t.shared_delta;
          rep.delta_shared_low = t.shared_delta_low;
          rep.delta_shared_high = t.shared_delta_high;
        }
      }
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

  // The noiseless twin (measured rate where no floor hides it) and the
  // predicted rate at its fixed point.
  if (opt.rate_check) {
    SolverOptions so = opt.solver;
    if (so.rank == 0) {
      so.rank = rank;
      so.core = opt.core;
      so.num_threads = opt.num_threads;
    }
    so.callback = nullptr;
    detail::require(so.rank == rank, where, "options.solver.rank = ", so.rank, " but the report is for rank ", rank);
    TwinOptions to = opt.twin;
    to.rate.confidence = opt.confidence;
    const Problem twin = noiseless_twin(pb);  // built once: the twin run and the linearization share it
    const TwinRun<Scalar> tw = run_noiseless_twin(pb, twin, so, to);
    rep.twin_ok = tw.ok;
    rep.twin_reason = tw.reason;
    rep.twin_iterations = tw.iterations;
    rep.twin_converged = tw.converged;
    if (tw.ok) {
      rep.rate_noiseless = tw.rate;
      rep.twin_limit_distance = tw.limit_distance_to_truth;
      rep.predicted = predicted_contraction_rate(twin, so, tw.A, tw.B, opt.linearization);
    } else {
      rep.predicted.reason = "the noiseless twin did not run: " + tw.reason;
    }
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
  auto fitted = [](const RateFit& f) { return f.status == RateFitStatus::Fitted && std::isfinite(f.rho_upper); };
  // The run's rate decides when its interval does (it lies below 1, or not
  // below 1); an interval that straddles 1 (a short linear phase) defers to
  // the twin when the twin has a rate.
  const bool run_decides = fitted(rep.rate) && (rep.rate.rho_upper < 1.0 || rep.rate.rho_lower >= 1.0);
  const bool twin_fitted = rep.twin_ok && fitted(rep.rate_noiseless);
  if (run_decides || (fitted(rep.rate) && !twin_fitted)) {
    rep.rate_source = "run";
    rep.rate_used = rep.rate;
  } else if (twin_fitted) {
    rep.rate_source = "noiseless twin";
    rep.rate_used = rep.rate_noiseless;
  }
  const bool rate_known = rep.rate_source != "none";
  const bool predicted = rep.predicted.valid && std::isfinite(rep.predicted.rho_upper);
  const bool floor_known = std::isfinite(rep.floor_ratio);
  const RateFit& ru = rep.rate_used;
  const bool below_one = rate_known && ru.rho_upper < 1.0;
  const bool as_predicted = !predicted || (rate_known && ru.rho_lower <= rep.predicted.rho_upper);
  rep.rate_ok = below_one && as_predicted;
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
  auto interval = [&](double v, double lo, double hi) { return fmt(v) + " [" + fmt(lo) + ", " + fmt(hi) + "]"; };
  std::string rate_part;
  if (rate_known) {
    rate_part = "rho = " + interval(ru.rho, ru.rho_lower, ru.rho_upper) + " (" + rep.rate_source;
    if (rep.rate_source == "noiseless twin" && fitted(rep.rate))
      rate_part += "; the run's interval " + interval(rep.rate.rho, rep.rate.rho_lower, rep.rate.rho_upper) +
                   " straddles 1";
    rate_part += ")";
    if (!below_one)
      rate_part += " not < 1";
    else if (!predicted)
      rate_part += " < 1 (no prediction: " + rep.predicted.reason + ")";
    else
      rate_part += (as_predicted ? std::string(" <= predicted ") : std::string(" above predicted ")) +
                   interval(rep.predicted.rho, rep.predicted.rho_lower, rep.predicted.rho_upper);
  } else {
    rate_part = "rho not measured (the run's linear phase: " + std::string(to_string(rep.rate.status)) + ", " +
                std::to_string(rep.rate.window_end - rep.rate.window_begin) + " points";
    if (opt.rate_check)
      rate_part += rep.twin_ok ? "; the noiseless twin's: " + std::string(to_string(rep.rate_noiseless.status)) +
                                     ", " +
                                     std::to_string(rep.rate_noiseless.window_end - rep.rate_noiseless.window_begin) +
                                     " points"
                               : "; the noiseless twin failed: " + rep.twin_reason;
    rate_part += "; a rate needs >= 3 iterations before the floor)";
  }
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
  opt.solver = solver.options();
  return guarantee_report(pb, solver.history(), solver.A(), solver.B(), solver.cores(), opt);
}

}  // namespace colora
