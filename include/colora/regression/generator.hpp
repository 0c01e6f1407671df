// Planted heterogeneous multi-task problems with a task-similarity knob
// (docs/solver.md, "The generator"), for both measurement models.
//
//   W_i* = W_0 + B_i* S_i* A_i*
//   B*, A*      Haar-uniform orthonormal (q x r columns, r x p rows)
//   S_i*        s_bar + tau G_i (s_bar, G_i iid N(0,1) r x r), then its
//               singular values replaced by the geometric spread
//               1, kappa^{-1/(r-1)}, ..., 1/kappa  [choice: geometric spacing]
//   B_i*        B* cos(theta_B) + P_i sin(theta_B), P_i a random orthonormal
//               q x r basis orthogonal to B*: every principal angle between
//               B_i* and B* equals theta_B (needs q >= 2r when theta_B > 0)
//   A_i*        likewise with theta_A on the row space (needs p >= 2r)
//   q < r       personal-head truth (FedRep's model; e.g. scalar outputs q = 1
//               with r = 2) [choice]: B* = B_i* = [I_q 0] (q x r, orthonormal
//               rows) and S_i* = [H_i*; 0] with the q x r head H_i* = the top
//               q rows of s_bar + tau G_i, its q singular values replaced by
//               the geometric spread 1 .. 1/kappa. Then W_i* - W_0 = H_i* A_i*.
//   X_i rows    iid N(0, Sigma), Sigma = diag(c_j^2), c_j = cond^{-j/(2(p-1))},
//               so Sigma has condition number `input_condition` [choice: diagonal]
//   W_0         zero, or iid N(0, 1/p) entries when random_base
//   (M1) Y_i = X_i W_i*^T + sigma E_i;  (M2) y_ij = <M_ij, W_i*> + sigma e_ij,
//        M_ij iid N(0,1) entries so that E <M, W>^2 = ||W||_F^2.
//
// Stream layout (docs/solver.md): root = Rng(seed, 0);
//   root.substream(0)            shared: A* (as p x r), B*, s_bar, W_0, in that order
//   root.substream(1 + i)        task i, with sub-streams
//       .substream(0) G_i   .substream(1) P_i (B)   .substream(2) P_i (A)
//       .substream(3) training inputs then noise    .substream(4) test inputs then noise
// Tasks are generated in parallel; every task reads only its own streams, so
// the problem is bit-for-bit the same for any thread count.
#pragma once

#include <Eigen/SVD>
#include <cmath>
#include <cstdint>
#include <vector>

#include "colora/core/linalg.hpp"
#include "colora/detail/parallel.hpp"
#include "colora/regression/data.hpp"

namespace colora {

struct GeneratorOptions {
  Index tasks = 20;                ///< k
  Index p = 30;                    ///< input width
  Index q = 30;                    ///< output width
  Index rank = 3;                  ///< r
  std::vector<Index> samples{60};  ///< n_i: one value for all tasks, or one per task
  Index test_samples = 100;        ///< held-out samples per task (0 = none)
  double sigma = 0.1;              ///< noise standard deviation
  double kappa = 2.0;              ///< condition number of every core S_i*
  double tau = 1.0;                ///< core diversity (0 = all cores equal)
  double theta_a = 0.0;            ///< principal angle of A_i* from A* (radians)
  double theta_b = 0.0;            ///< principal angle of B_i* from B* (radians)
  double input_condition = 1.0;    ///< condition number of Sigma (1 = identity)
  bool random_base = false;        ///< W_0 random (else zero)
  std::uint64_t seed = 1;
  int num_threads = 0;  ///< 0 = all OpenMP threads

  Index samples_of(Index i) const { return samples.size() == 1 ? samples[0] : samples[size_t(i)]; }

  void validate() const {
    const char* w = "colora::GeneratorOptions";
    detail::require(tasks > 0, w, "tasks must be positive, got ", tasks);
    detail::require(p > 0, w, "p must be positive, got ", p);
    detail::require(q > 0, w, "q must be positive, got ", q);
    // q < r is allowed: the personal-head truth W_i* = W_0 + H_i* A_i* (see above).
    detail::require(rank > 0 && rank <= p, w, "rank must be in [1, p = ", p, "], got ", rank);
    detail::require(samples.size() == 1 || Index(samples.size()) == tasks, w, "samples must have 1 or tasks = ", tasks,
                    " entries, got ", samples.size());
    for (size_t i = 0; i < samples.size(); ++i)
      detail::require(samples[i] > 0, w, "task ", samples.size() == 1 ? std::string("(all)") : std::to_string(i),
                      ": samples must be positive, got ", samples[i]);
    detail::require(test_samples >= 0, w, "test_samples must be >= 0, got ", test_samples);
    detail::require(std::isfinite(sigma) && sigma >= 0, w, "sigma must be finite and >= 0, got ", sigma);
    detail::require(std::isfinite(kappa) && kappa >= 1, w, "kappa must be >= 1, got ", kappa);
    detail::require(std::isfinite(tau) && tau >= 0, w, "tau must be finite and >= 0, got ", tau);
    detail::require(std::isfinite(input_condition) && input_condition >= 1, w, "input_condition must be >= 1, got ",
                    input_condition);
    const double half_pi = 1.5707963267948966;
    detail::require(theta_a >= 0 && theta_a <= half_pi, w, "theta_a must be in [0, pi/2], got ", theta_a);
    detail::require(theta_b >= 0 && theta_b <= half_pi, w, "theta_b must be in [0, pi/2], got ", theta_b);
    detail::require(theta_a == 0 || p >= 2 * rank, w, "theta_a > 0 needs p >= 2 rank, got p = ", p, ", rank = ", rank);
    detail::require(theta_b == 0 || q >= 2 * rank, w, "theta_b > 0 needs q >= 2 rank, got q = ", q, ", rank = ", rank);
  }
};

namespace detail {

/// U cos(theta) + P sin(theta), P orthonormal and orthogonal to span(U).
template <class Scalar>
Matrix<Scalar> rotate_subspace(const Matrix<Scalar>& U, double theta, Rng rng) {
  if (theta == 0.0) return U;
  Matrix<Scalar> G = rng.normal_matrix<Scalar>(U.rows(), U.cols());
  G -= U * (U.transpose() * G);
  G -= U * (U.transpose() * G);  // re-orthogonalise (twice is enough)
  const Matrix<Scalar> P = thin_qr(G).Q;
  return U * Scalar(std::cos(theta)) + P * Scalar(std::sin(theta));
}

/// s_bar + tau G with its singular values replaced by the geometric spread.
/// With rows < r (personal-head truth, q < r) only the top `rows` rows are
/// kept (rows singular values) and the rest of the r x r core is zero.
template <class Scalar>
Matrix<Scalar> planted_core(const Matrix<Scalar>& s_bar, double tau, double kappa, Rng rng, Index rows = -1) {
  const Index r = s_bar.rows();
  const Index h = rows < 0 ? r : std::min(rows, r);
  const Matrix<double> full = s_bar.template cast<double>() + tau * rng.normal_matrix<double>(r, r);
  const Matrix<double> S = full.topRows(h);
  Eigen::JacobiSVD<Matrix<double>> svd(S, Eigen::ComputeThinU | Eigen::ComputeThinV);
  Vector<double> sv(h);
  for (Index j = 0; j < h; ++j) sv(j) = h == 1 ? 1.0 : std::pow(kappa, -double(j) / double(h - 1));
  Matrix<Scalar> out = Matrix<Scalar>::Zero(r, r);
  out.topRows(h) = (svd.matrixU() * sv.asDiagonal() * svd.matrixV().transpose()).template cast<Scalar>();
  return out;
}

template <class Scalar>
void generate_truth(const GeneratorOptions& o, GroundTruth<Scalar>& truth, Matrix<Scalar>& W0) {
  const Rng root(o.seed, 0);
  Rng shared = root.substream(0);
  truth.A_shared = haar_orthonormal<Scalar>(shared, o.p, o.rank).transpose();
  const bool head = o.q < o.rank;  // personal-head truth: B* = [I_q 0]
  truth.B_shared = head ? Matrix<Scalar>(Matrix<Scalar>::Identity(o.q, o.rank))
                        : haar_orthonormal<Scalar>(shared, o.q, o.rank);
  const Matrix<Scalar> s_bar = shared.normal_matrix<Scalar>(o.rank, o.rank);
  W0 = o.random_base ? shared.normal_matrix<Scalar>(o.q, o.p, 1.0 / std::sqrt(double(o.p))) : Matrix<Scalar>();
  truth.sigma = o.sigma;
  truth.S.resize(size_t(o.tasks));
  if (o.input_condition != 1.0) {
    truth.input_scales.resize(o.p);
    for (Index j = 0; j < o.p; ++j)
      truth.input_scales(j) = Scalar(o.p == 1 ? 1.0
                                              : std::pow(o.input_condition, -double(j) / (2.0 * double(o.p - 1))));
  }
  const Matrix<Scalar> At = truth.A_shared.transpose();
  // theta = 0: every task's A_i* (B_i*) is A* (B*) itself; the tasks share
  // one stored copy instead of k (TaskMatrices).
  if (o.theta_b == 0.0)
    truth.B.assign(size_t(o.tasks), truth.B_shared);
  else
    truth.B.resize(size_t(o.tasks));
  if (o.theta_a == 0.0)
    truth.A.assign(size_t(o.tasks), truth.A_shared);
  else
    truth.A.resize(size_t(o.tasks));
  parallel_for_tasks(o.tasks, o.num_threads, [&](Index i) {
    const Rng t = root.substream(1 + std::uint64_t(i));
    truth.S[size_t(i)] = planted_core<Scalar>(s_bar, o.tau, o.kappa, t.substream(0), std::min(o.q, o.rank));
    if (o.theta_b != 0.0) truth.B[size_t(i)] = rotate_subspace<Scalar>(truth.B_shared, o.theta_b, t.substream(1));
    if (o.theta_a != 0.0) truth.A[size_t(i)] = rotate_subspace<Scalar>(At, o.theta_a, t.substream(2)).transpose();
  });
}

template <class Scalar>
Matrix<Scalar> gaussian_inputs(Rng& rng, Index n, const GroundTruth<Scalar>& truth, Index p) {
  Matrix<Scalar> X = rng.normal_matrix<Scalar>(n, p);
  if (truth.input_scales.size() != 0) X = X * truth.input_scales.asDiagonal();
  return X;
}

}  // namespace detail

/// (M1) A planted multi-output regression problem.
template <class Scalar>
RegressionProblem<Scalar> generate_regression(const GeneratorOptions& o) {
  o.validate();
  RegressionProblem<Scalar> pb;
  GroundTruth<Scalar> truth;
  detail::generate_truth(o, truth, pb.W0);
  pb.tasks.resize(size_t(o.tasks));
  const Rng root(o.seed, 0);
  detail::parallel_for_tasks(o.tasks, o.num_threads, [&](Index i) {
    const Rng t = root.substream(1 + std::uint64_t(i));
    auto& task = pb.tasks[size_t(i)];
    // Y = X (W0 + B S A)^T + sigma E, applied in factored form.
    auto make = [&](Rng rng, Index n, Matrix<Scalar>& X, Matrix<Scalar>& Y) {
      X = detail::gaussian_inputs(rng, n, truth, o.p);
      const GroundTruth<Scalar>& tr = truth;  // const access: never unshares A_i*, B_i*
      Y = ((X * tr.A[size_t(i)].transpose()) * tr.S[size_t(i)].transpose()) * tr.B[size_t(i)].transpose();
      if (pb.W0.size()) Y.noalias() += X * pb.W0.transpose();
      if (o.sigma > 0) Y += rng.normal_matrix<Scalar>(n, o.q, o.sigma);
    };
    make(t.substream(3), o.samples_of(i), task.X, task.Y);
    if (o.test_samples > 0) make(t.substream(4), o.test_samples, task.X_test, task.Y_test);
  });
  pb.truth = std::move(truth);
  return pb;
}

/// (M2) A planted matrix-sensing problem (m_i = samples_of(i) measurements).
template <class Scalar>
SensingProblem<Scalar> generate_sensing(const GeneratorOptions& o) {
  o.validate();
  detail::require(o.input_condition == 1.0, "colora::generate_sensing",
                  "input_condition applies to regression only, got ", o.input_condition);
  SensingProblem<Scalar> pb;
  pb.p = o.p;
  pb.q = o.q;
  GroundTruth<Scalar> truth;
  detail::generate_truth(o, truth, pb.W0);
  pb.tasks.resize(size_t(o.tasks));
  const Rng root(o.seed, 0);
  detail::parallel_for_tasks(o.tasks, o.num_threads, [&](Index i) {
    const Rng t = root.substream(1 + std::uint64_t(i));
    Matrix<Scalar> W = truth.delta(i);
    if (pb.W0.size()) W += pb.W0;
    const Eigen::Map<const Vector<Scalar>> w(W.data(), W.size());
    auto& task = pb.tasks[size_t(i)];
    auto make = [&](Rng rng, Index m, Matrix<Scalar>& M, Vector<Scalar>& y) {
      M = rng.normal_matrix<Scalar>(m, o.p * o.q);
      y = M * w;
      if (o.sigma > 0) y += rng.normal_matrix<Scalar>(m, 1, o.sigma);
    };
    make(t.substream(3), o.samples_of(i), task.M, task.y);
    if (o.test_samples > 0) make(t.substream(4), o.test_samples, task.M_test, task.y_test);
  });
  pb.truth = std::move(truth);
  return pb;
}

}  // namespace colora
