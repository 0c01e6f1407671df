// Empirical contraction rate of an iterative method (docs/theory.md,
// "Contraction rate").
//
// Input: a history dist_0 .. dist_T (e.g. the subspace distance per
// iteration). Output: the rate rho of the linear phase dist_t ~ c rho^t, a
// confidence interval for it, the noise floor reached and the iteration at
// which it was reached.
//
// Method [choice]:
//  1. Phase detection by a two-segment least-squares fit of y_t = log dist_t:
//     a straight line on [b, tau) followed by a constant (the floor) on
//     [tau, T], tau chosen to minimize the total residual sum of squares
//     (O(T) with running sums). tau = T + 1 (no floor) is a candidate; a floor
//     needs at least `min_floor_points` points. Exact zeros are a floor of 0
//     reached at the first zero (log is not taken of them).
//  2. rho = exp(slope) of the ordinary least-squares line on the linear
//     window, with a Student-t confidence interval for the slope
//     (slope +- t_{1-a/2, L-2} * se, se^2 = RSS / (L - 2) / Sxx), mapped
//     through exp. The Theil-Sen slope (median of pairwise slopes) on the
//     same window is reported next to it as a robustness check.
//  3. floor = median of dist over the floor segment; onset = tau.
#pragma once

#include <algorithm>
#include <boost/math/distributions/students_t.hpp>
#include <cmath>
#include <limits>
#include <vector>

#include "colora/core/errors.hpp"

namespace colora {

/// Outcome of fit_contraction_rate().
enum class RateFitStatus {
  Fitted,    ///< a linear phase of >= 3 points was found; rho and its interval are set
  TooShort,  ///< fewer than 3 usable points in the linear phase; rho set only with 2 points, no interval
  Constant   ///< the history is constant: rho = 1, no linear phase
};

inline const char* to_string(RateFitStatus s) noexcept {
  switch (s) {
    case RateFitStatus::Fitted: return "fitted";
    case RateFitStatus::TooShort: return "too-short";
    case RateFitStatus::Constant: return "constant";
  }
  return "?";
}

struct RateFitOptions {
  double confidence = 0.95;           ///< level of the interval for rho
  Index skip_initial = 0;             ///< iterations ignored at the start (a transient)
  Index min_floor_points = 3;         ///< a floor must hold for at least this many iterations
  Index theil_sen_max_points = 1000;  ///< Theil-Sen on at most this many (evenly subsampled) points

  void validate(const char* where = "colora::RateFitOptions") const {
    detail::require(confidence > 0.0 && confidence < 1.0, where, "confidence must be in (0, 1), got ", confidence);
    detail::require(skip_initial >= 0, where, "skip_initial must be >= 0, got ", skip_initial);
    detail::require(min_floor_points >= 1, where, "min_floor_points must be >= 1, got ", min_floor_points);
    detail::require(theil_sen_max_points >= 2, where, "theil_sen_max_points must be >= 2, got ", theil_sen_max_points);
  }
};

struct RateFit {
  static constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  RateFitStatus status = RateFitStatus::TooShort;
  double rho = nan;        ///< exp(OLS slope of log dist on t) over the linear window
  double rho_lower = nan;  ///< confidence interval for rho (Student t)
  double rho_upper = nan;
  double rho_theil_sen = nan;  ///< exp(Theil-Sen slope) over the same window
  double log_intercept = nan;  ///< fitted log dist at t = 0
  double residual_std = nan;   ///< standard deviation of the log residuals (L - 2 dof)
  Index window_begin = 0;      ///< linear window [window_begin, window_end)
  Index window_end = 0;
  bool floor_reached = false;   ///< a floor segment was detected
  double floor = nan;           ///< median of dist over the floor segment (NaN if none)
  Index floor_onset = -1;       ///< first iteration of the floor segment (-1 if none)
  double final_distance = nan;  ///< dist_T
};

namespace detail {

inline double rate_fit_median(std::vector<double> v) {
  if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
  const size_t h = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + std::ptrdiff_t(h), v.end());
  const double hi = v[h];
  if (v.size() % 2 == 1) return hi;
  const double lo = *std::max_element(v.begin(), v.begin() + std::ptrdiff_t(h));
  return 0.5 * (lo + hi);
}

}  // namespace detail

/// Fit the contraction rate of `dist` (dist[t] for t = 0..T). Entries must
/// be finite and >= 0 (std::invalid_argument otherwise). Never throws for
/// short, constant or zero-containing histories: see RateFit::status.
inline RateFit fit_contraction_rate(const std::vector<double>& dist, const RateFitOptions& opt = {}) {
  const char* where = "colora::fit_contraction_rate";
  opt.validate(where);
  for (size_t t = 0; t < dist.size(); ++t)
    detail::require(std::isfinite(dist[t]) && dist[t] >= 0.0, where, "dist[", t, "] must be finite and >= 0, got ",
                    dist[t]);
  RateFit out;
  const Index N = Index(dist.size());
  if (N > 0) out.final_distance = dist.back();
  const Index b = opt.skip_initial;
  if (N - b < 2) {
    out.window_begin = out.window_end = std::min(b, N);
    return out;
  }
  // Constant history.
  {
    const auto mm = std::minmax_element(dist.begin() + b, dist.end());
    if (*mm.second - *mm.first <= 1e-14 * *mm.second) {
      out.status = RateFitStatus::Constant;
      out.rho = out.rho_lower = out.rho_upper = out.rho_theil_sen = 1.0;
      out.floor_reached = true;
      out.floor = dist[size_t(b)];
      out.floor_onset = b;
      out.window_begin = out.window_end = b;
      return out;
    }
  }
  // Exact zeros: the floor is 0, reached at the first zero.
  Index tz = N;
  for (Index t = b; t < N; ++t)
    if (dist[size_t(t)] == 0.0) {
      tz = t;
      break;
    }
  std::vector<double> y(size_t(tz - b));
  for (Index t = b; t < tz; ++t) y[size_t(t - b)] = std::log(dist[size_t(t)]);
  const Index n = tz - b;

  Index tau = tz;  // end of the linear window (absolute)
  if (tz < N) {
    out.floor_reached = true;
    out.floor_onset = tz;
    out.floor = detail::rate_fit_median(std::vector<double>(dist.begin() + tz, dist.end()));
  } else if (n >= 2 + opt.min_floor_points) {
    // Prefix sums over local index u = t - b.
    std::vector<double> S1(size_t(n) + 1, 0.0), Sy(size_t(n) + 1, 0.0), Syy(size_t(n) + 1, 0.0),
        Sty(size_t(n) + 1, 0.0), St(size_t(n) + 1, 0.0), Stt(size_t(n) + 1, 0.0);
    for (Index u = 0; u < n; ++u) {
      const double tt = double(u), yy = y[size_t(u)];
      S1[size_t(u) + 1] = S1[size_t(u)] + 1.0;
      St[size_t(u) + 1] = St[size_t(u)] + tt;
      Stt[size_t(u) + 1] = Stt[size_t(u)] + tt * tt;
      Sy[size_t(u) + 1] = Sy[size_t(u)] + yy;
      Syy[size_t(u) + 1] = Syy[size_t(u)] + yy * yy;
      Sty[size_t(u) + 1] = Sty[size_t(u)] + tt * yy;
    }
    auto rss_const = [&](Index a, Index e) {
      const double c = S1[size_t(e)] - S1[size_t(a)], sy = Sy[size_t(e)] - Sy[size_t(a)];
      return std::max(0.0, (Syy[size_t(e)] - Syy[size_t(a)]) - sy * sy / c);
    };
    auto rss_line = [&](Index a, Index e) {
      const double c = S1[size_t(e)] - S1[size_t(a)];
      const double st = St[size_t(e)] - St[size_t(a)], sy = Sy[size_t(e)] - Sy[size_t(a)];
      const double sxx = (Stt[size_t(e)] - Stt[size_t(a)]) - st * st / c;
      const double sxy = (Sty[size_t(e)] - Sty[size_t(a)]) - st * sy / c;
      const double syy = (Syy[size_t(e)] - Syy[size_t(a)]) - sy * sy / c;
      return std::max(0.0, syy - (sxx > 0 ? sxy * sxy / sxx : 0.0));
    };
    // Candidates: no floor, then floors starting at u = n - min_floor .. 2.
    // A tie keeps the later onset (the longer linear window).
    Index best_u = n;
    double best = rss_line(0, n);
    const double scale = std::max(1.0, rss_const(0, n));
    for (Index u = n - opt.min_floor_points; u >= 2; --u) {
      const double r = rss_line(0, u) + rss_const(u, n);
      if (r < best - 1e-13 * scale) {
        best = r;
        best_u = u;
      }
    }
    if (best_u < n) {
      tau = b + best_u;
      out.floor_reached = true;
      out.floor_onset = tau;
      out.floor = detail::rate_fit_median(std::vector<double>(dist.begin() + tau, dist.end()));
    }
  }

  out.window_begin = b;
  out.window_end = tau;
  const Index L = tau - b;
  if (L < 2) return out;  // TooShort, no rate
  // Ordinary least squares on the window.
  double tm = 0, ym = 0;
  for (Index u = 0; u < L; ++u) {
    tm += double(b + u);
    ym += y[size_t(u)];
  }
  tm /= double(L);
  ym /= double(L);
  double sxx = 0, sxy = 0;
  for (Index u = 0; u < L; ++u) {
    const double dt = double(b + u) - tm;
    sxx += dt * dt;
    sxy += dt * (y[size_t(u)] - ym);
  }
  const double slope = sxy / sxx;
  out.log_intercept = ym - slope * tm;
  out.rho = std::exp(slope);
  // Theil-Sen on (at most theil_sen_max_points evenly spaced) window points.
  {
    const Index m = std::min(L, opt.theil_sen_max_points);
    std::vector<Index> idx(static_cast<size_t>(m));
    for (Index j = 0; j < m; ++j) idx[size_t(j)] = m == L ? j : Index((double(j) * double(L - 1)) / double(m - 1));
    std::vector<double> slopes;
    slopes.reserve(size_t(m) * size_t(m - 1) / 2);
    for (Index a = 0; a < m; ++a)
      for (Index c = a + 1; c < m; ++c)
        slopes.push_back((y[size_t(idx[size_t(c)])] - y[size_t(idx[size_t(a)])]) /
                         double(idx[size_t(c)] - idx[size_t(a)]));
    out.rho_theil_sen = std::exp(detail::rate_fit_median(std::move(slopes)));
  }
  if (L < 3) return out;  // TooShort: two points give a rate but no interval
  double rss = 0;
  for (Index u = 0; u < L; ++u) {
    const double e = y[size_t(u)] - (out.log_intercept + slope * double(b + u));
    rss += e * e;
  }
  const double dof = double(L - 2);
  out.residual_std = std::sqrt(rss / dof);
  const double se = std::sqrt(rss / dof / sxx);
  const boost::math::students_t dist_t(dof);
  const double tq = boost::math::quantile(dist_t, 0.5 + 0.5 * opt.confidence);
  out.rho_lower = std::exp(slope - tq * se);
  out.rho_upper = std::exp(slope + tq * se);
  out.status = RateFitStatus::Fitted;
  return out;
}

}  // namespace colora
