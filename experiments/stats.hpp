// Confidence intervals for the experiment summaries (sweep, phase).
//
//   mean_interval:    mean of the finite values and the two-sided Student t
//                     interval  mean +- t_{1-a/2, n-1} s / sqrt(n)
//                     (s the sample standard deviation, n >= 2).
//   positive_interval: for positive quantities, the same on the log scale
//                     (geometric mean, interval exp(mean(log) +- ...) > 0).
//   clopper_pearson:  exact binomial interval for s successes in n trials,
//                     [Beta^{-1}(a/2; s, n-s+1), Beta^{-1}(1-a/2; s+1, n-s)],
//                     with 0 and 1 at the ends (s = 0 or s = n).
// Both use Boost.Math quantiles; level is the coverage (0.95 = 95 %).
//
// Also the bookkeeping of repeated trials: the seed of trial t (independent
// of the thread count and of the order trials run in) and a progress line on
// stderr for runs longer than a few seconds.
#pragma once

#include <colora/core/random.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <mutex>

#include <boost/math/distributions/beta.hpp>
#include <boost/math/distributions/students_t.hpp>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace colora {
namespace exp {

struct MeanInterval {
  long count = 0;  ///< number of finite values the mean is over
  double mean = std::numeric_limits<double>::quiet_NaN();
  double low = std::numeric_limits<double>::quiet_NaN();   ///< NaN when count < 2
  double high = std::numeric_limits<double>::quiet_NaN();  ///< NaN when count < 2
};

/// Mean and Student-t interval of the finite entries of `values` (NaN and Inf
/// entries, e.g. from a failed run, are left out and not counted).
inline MeanInterval mean_interval(const std::vector<double>& values, double level = 0.95) {
  if (!(level > 0 && level < 1))
    throw std::invalid_argument("colora::exp::mean_interval: level must be in (0, 1), got " + std::to_string(level));
  MeanInterval out;
  double sum = 0;
  for (double v : values)
    if (std::isfinite(v)) {
      sum += v;
      ++out.count;
    }
  if (out.count == 0) return out;
  out.mean = sum / double(out.count);
  if (out.count < 2) return out;
  double ss = 0;
  for (double v : values)
    if (std::isfinite(v)) ss += (v - out.mean) * (v - out.mean);
  const double sd = std::sqrt(ss / double(out.count - 1));
  const boost::math::students_t dist(double(out.count - 1));
  const double t = boost::math::quantile(dist, 0.5 + level / 2);
  const double half = t * sd / std::sqrt(double(out.count));
  out.low = out.mean - half;
  out.high = out.mean + half;
  return out;
}

/// For a positive quantity (an error, a ratio): the geometric mean of the
/// finite positive entries and the Student-t interval computed on their logs,
/// mapped back by exp, so it never reaches zero or below; a skewed sample
/// (one failed trial among good ones) widens it upward, not into negatives.
/// Non-positive entries are left out like non-finite ones.
inline MeanInterval positive_interval(const std::vector<double>& values, double level = 0.95) {
  std::vector<double> logs;
  for (double v : values)
    if (std::isfinite(v) && v > 0) logs.push_back(std::log(v));
  MeanInterval m = mean_interval(logs, level);
  m.mean = std::exp(m.mean);
  m.low = std::exp(m.low);
  m.high = std::exp(m.high);
  return m;
}

struct ProportionInterval {
  double probability = std::numeric_limits<double>::quiet_NaN();  ///< successes / trials
  double low = std::numeric_limits<double>::quiet_NaN();
  double high = std::numeric_limits<double>::quiet_NaN();
};

/// Clopper-Pearson (exact) interval for `successes` out of `trials`.
inline ProportionInterval clopper_pearson(long successes, long trials, double level = 0.95) {
  if (trials < 1 || successes < 0 || successes > trials)
    throw std::invalid_argument("colora::exp::clopper_pearson: need 0 <= successes <= trials, trials >= 1, got " +
                                std::to_string(successes) + " of " + std::to_string(trials));
  if (!(level > 0 && level < 1))
    throw std::invalid_argument("colora::exp::clopper_pearson: level must be in (0, 1), got " + std::to_string(level));
  const double alpha = 1 - level;
  ProportionInterval out;
  out.probability = double(successes) / double(trials);
  out.low = successes == 0
                ? 0.0
                : boost::math::quantile(boost::math::beta_distribution<double>(double(successes),
                                                                               double(trials - successes + 1)),
                                        alpha / 2);
  out.high = successes == trials
                 ? 1.0
                 : boost::math::quantile(boost::math::beta_distribution<double>(double(successes + 1),
                                                                                double(trials - successes)),
                                         1 - alpha / 2);
  return out;
}

/// The problem seed of trial `trial` of an experiment run with --seed `seed`:
/// the first 64 bits of Rng(seed, stream 0x7121A1).substream(trial). Every
/// grid point / swept value uses the same trial seeds (common random numbers),
/// so differences between values are not blurred by independent draws.
inline std::uint64_t trial_seed(std::uint64_t seed, long trial) {
  Rng r = Rng(seed, 0x7121A1ULL).substream(std::uint64_t(trial));
  return r.next_u64();
}

/// "sweep: 12/40 runs done (3.1 s)" on stderr, at most every 2 seconds and
/// once at the end when the whole run took more than 2 seconds. Thread-safe.
class Progress {
 public:
  Progress(std::string name, long total) : name_(std::move(name)), total_(total), start_(Clock::now()), last_(start_) {}

  void tick() {
    std::lock_guard<std::mutex> lock(mutex_);
    ++done_;
    const auto now = Clock::now();
    const double since_last = std::chrono::duration<double>(now - last_).count();
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    if (since_last >= 2.0 || (done_ == total_ && elapsed >= 2.0)) {
      std::fprintf(stderr, "%s: %ld/%ld runs done (%.1f s)\n", name_.c_str(), done_, total_, elapsed);
      last_ = now;
    }
  }

 private:
  using Clock = std::chrono::steady_clock;
  std::string name_;
  long total_, done_ = 0;
  Clock::time_point start_, last_;
  std::mutex mutex_;
};

}  // namespace exp
}  // namespace colora
