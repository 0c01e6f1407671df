// Exact rescaling of problems whose values are too large or too small for
// the solver's sums of squares (docs/solver.md, "Extreme magnitudes").
//
// Data near the ends of the floating-point range (|x| ~ 1e300, or 1e-200 in
// double) makes X^T X overflow to Inf or underflow to 0. The solver then
// works on a copy scaled by powers of two, X' = X 2^-ex and Y' = Y 2^-ey
// (exact: only exponents change), whose largest entries lie in [1/2, 1), and
// maps the result back:
//   W' = W 2^(ex-ey)  =>  A, B unchanged, S_i = S_i' 2^(ey-ex), W0' = W0 2^(ex-ey),
//   objective f = f' 2^(2 ey), lambda' = lambda 2^(-2 ex).
// Problems already inside the safe range [2^(-E/4), 2^(E/4)] (E = the
// scalar's largest exponent: about 1e-77..1e77 in double, 2e-10..4e9 in
// float) are used as they are, without a copy, so results are bit-identical.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <utility>

#include <vector>

#include "colora/detail/parallel.hpp"
#include "colora/regression/data.hpp"

namespace colora {
namespace detail {

/// The powers of two by which inputs (ex) and outputs (ey) are divided.
struct DataScale {
  int ex = 0, ey = 0;
  bool identity() const noexcept { return ex == 0 && ey == 0; }
};

template <class Derived>
double max_abs(const Eigen::MatrixBase<Derived>& m) {
  return m.size() == 0 ? 0.0 : double(m.cwiseAbs().maxCoeff());
}

/// Largest |entry| of task i's training inputs (X_i or M_i), of all its
/// inputs and of all its outputs (Y_i or y_i), test split included.
struct TaskMagnitudes {
  double train_input = 0, input = 0, output = 0;
};
template <class Scalar>
TaskMagnitudes task_magnitudes(const RegressionProblem<Scalar>& pb, Index i) {
  const auto& t = pb.tasks[size_t(i)];
  const double x = max_abs(t.X);
  return {x, std::max(x, max_abs(t.X_test)), std::max(max_abs(t.Y), max_abs(t.Y_test))};
}
template <class Scalar>
TaskMagnitudes task_magnitudes(const SensingProblem<Scalar>& pb, Index i) {
  const auto& t = pb.tasks[size_t(i)];
  const double x = max_abs(t.M);
  return {x, std::max(x, max_abs(t.M_test)), std::max(max_abs(t.y), max_abs(t.y_test))};
}

/// task_magnitudes of every task (one pass over the data).
template <class Problem>
std::vector<TaskMagnitudes> all_task_magnitudes(const Problem& pb, int num_threads) {
  std::vector<TaskMagnitudes> m(size_t(pb.num_tasks()));
  parallel_for_tasks(pb.num_tasks(), num_threads, [&](Index i) { m[size_t(i)] = task_magnitudes(pb, i); });
  return m;
}

/// The scale the solver applies to data with these magnitudes (identity
/// inside the safe range of Scalar).
template <class Scalar>
DataScale choose_data_scale(const std::vector<TaskMagnitudes>& mags) {
  const int E = std::numeric_limits<Scalar>::max_exponent;
  const double lo = std::ldexp(1.0, -E / 4), hi = std::ldexp(1.0, E / 4);
  double mx = 0, my = 0;
  for (const TaskMagnitudes& m : mags) {
    mx = std::max(mx, m.input);
    my = std::max(my, m.output);
  }
  auto exponent = [&](double m) {
    if (m == 0 || (m >= lo && m <= hi)) return 0;
    int e = 0;
    std::frexp(m, &e);  // m = f 2^e, f in [1/2, 1)
    return e;
  };
  DataScale s;
  s.ex = exponent(mx);
  s.ey = exponent(my);
  // One side out of range is enough to rescale both, so the scaled model
  // W' = W 2^(ex-ey) stays moderate.
  if (!s.identity()) {
    int e = 0;
    if (s.ex == 0 && mx > 0) std::frexp(mx, &e), s.ex = e;
    if (s.ey == 0 && my > 0) std::frexp(my, &e), s.ey = e;
  }
  return s;
}

/// m 2^e, exactly (ldexp per entry: no overflow of an intermediate factor).
template <class Derived>
typename Derived::PlainObject times_pow2(const Eigen::MatrixBase<Derived>& m, int e) {
  using S = typename Derived::Scalar;
  return m.unaryExpr([e](S v) { return S(std::ldexp(v, e)); });
}

template <class Scalar>
void scale_truth(std::optional<GroundTruth<Scalar>>& truth, const DataScale& s) {
  if (!truth) return;
  for (auto& S : truth->S) S = times_pow2(S, s.ex - s.ey);
  truth->sigma = std::ldexp(truth->sigma, -s.ey);
}

template <class Scalar>
RegressionProblem<Scalar> scaled_problem(const RegressionProblem<Scalar>& pb, const DataScale& s) {
  RegressionProblem<Scalar> out;
  out.tasks.reserve(pb.tasks.size());
  for (const auto& t : pb.tasks)
    out.tasks.push_back(
        {times_pow2(t.X, -s.ex), times_pow2(t.Y, -s.ey), times_pow2(t.X_test, -s.ex), times_pow2(t.Y_test, -s.ey)});
  out.W0 = times_pow2(pb.W0, s.ex - s.ey);
  out.truth = pb.truth;
  scale_truth(out.truth, s);
  return out;
}

template <class Scalar>
SensingProblem<Scalar> scaled_problem(const SensingProblem<Scalar>& pb, const DataScale& s) {
  SensingProblem<Scalar> out;
  out.p = pb.p;
  out.q = pb.q;
  out.tasks.reserve(pb.tasks.size());
  for (const auto& t : pb.tasks)
    out.tasks.push_back(
        {times_pow2(t.M, -s.ex), times_pow2(t.y, -s.ey), times_pow2(t.M_test, -s.ex), times_pow2(t.y_test, -s.ey)});
  out.W0 = times_pow2(pb.W0, s.ex - s.ey);
  out.truth = pb.truth;
  scale_truth(out.truth, s);
  return out;
}

}  // namespace detail
}  // namespace colora
