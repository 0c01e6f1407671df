// Views of a multi-task problem that several methods fit through: one task
// alone, all tasks pooled into one, (M2)'s targets, and ridge least squares
// with its minimum-norm limit. local fits every task alone, global the
// pooled problem (baselines/local.hpp, global.hpp).
#pragma once

#include <cmath>
#include <vector>

#include "colora/core/linalg.hpp"
#include "colora/regression/data.hpp"

namespace colora {
namespace detail {

/// Targets of (M2): y_i - M_i vec(W_0).
template <class Scalar>
Vector<Scalar> sensing_target(const SensingProblem<Scalar>& pb, Index i) {
  const auto& t = pb.tasks[size_t(i)];
  Vector<Scalar> y = t.y;
  if (pb.W0.size()) y.noalias() -= t.M * Eigen::Map<const Vector<Scalar>>(pb.W0.data(), pb.W0.size());
  return y;
}

/// Ridge least squares min_Z ||F Z - T||^2 + ridge ||Z||^2 (F n x d, T n x c),
/// in primal form when n >= d and in kernel form Z = F^T (F F^T + ridge)^{-1} T
/// when n < d, which with ridge = 0 is the minimum-norm solution.
template <class Scalar>
bool ridge_least_squares(const Matrix<Scalar>& F, const Matrix<Scalar>& T, Scalar ridge, Matrix<Scalar>& Z) {
  if (F.rows() >= F.cols()) {
    Matrix<Scalar> G = F.transpose() * F;
    G.diagonal().array() += ridge;
    return solve_spd<Scalar>(G, F.transpose() * T, Z);
  }
  Matrix<Scalar> K = F * F.transpose();
  K.diagonal().array() += ridge;
  Matrix<Scalar> alpha;
  const bool ok = solve_spd<Scalar>(K, T, alpha);
  Z = F.transpose() * alpha;
  return ok && Z.allFinite();
}

/// A single-task problem holding task i's training data (no test split, no truth).
template <class Scalar>
RegressionProblem<Scalar> single_task(const RegressionProblem<Scalar>& pb, Index i) {
  RegressionProblem<Scalar> out;
  out.tasks.push_back({pb.tasks[size_t(i)].X, pb.tasks[size_t(i)].Y, {}, {}});
  out.W0 = pb.W0;
  return out;
}
template <class Scalar>
SensingProblem<Scalar> single_task(const SensingProblem<Scalar>& pb, Index i) {
  SensingProblem<Scalar> out;
  out.tasks.push_back({pb.tasks[size_t(i)].M, pb.tasks[size_t(i)].y, {}, {}});
  out.p = pb.p;
  out.q = pb.q;
  out.W0 = pb.W0;
  return out;
}

/// All tasks stacked into one, rows of task i scaled by sqrt(w_i): the
/// pooled least-squares problem whose loss is sum_i w_i L_i.
template <class Scalar>
RegressionProblem<Scalar> pooled(const RegressionProblem<Scalar>& pb, const std::vector<Scalar>& w) {
  Index n = pb.total_samples();
  RegressionTask<Scalar> t;
  t.X.resize(n, pb.input_dim());
  t.Y.resize(n, pb.output_dim());
  Index row = 0;
  for (Index i = 0; i < pb.num_tasks(); ++i) {
    const auto& s = pb.tasks[size_t(i)];
    const Scalar c = std::sqrt(w[size_t(i)]);
    t.X.middleRows(row, s.samples()) = c * s.X;
    t.Y.middleRows(row, s.samples()) = c * s.Y;
    row += s.samples();
  }
  RegressionProblem<Scalar> out;
  out.tasks.push_back(std::move(t));
  out.W0 = pb.W0;
  return out;
}
template <class Scalar>
SensingProblem<Scalar> pooled(const SensingProblem<Scalar>& pb, const std::vector<Scalar>& w) {
  Index n = pb.total_samples();
  SensingTask<Scalar> t;
  t.M.resize(n, pb.p * pb.q);
  t.y.resize(n);
  Index row = 0;
  for (Index i = 0; i < pb.num_tasks(); ++i) {
    const auto& s = pb.tasks[size_t(i)];
    const Scalar c = std::sqrt(w[size_t(i)]);
    t.M.middleRows(row, s.samples()) = c * s.M;
    t.y.segment(row, s.samples()) = c * s.y;
    row += s.samples();
  }
  SensingProblem<Scalar> out;
  out.tasks.push_back(std::move(t));
  out.p = pb.p;
  out.q = pb.q;
  out.W0 = pb.W0;
  return out;
}

}  // namespace detail
}  // namespace colora
