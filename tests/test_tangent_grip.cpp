// Tangent-space GRIP (diagnostics/tangent_grip.hpp): the exact extremes of the
// GRIP ratio over the tangent space T at a point of (M1), checked against a
// dense generalized eigensolver on an explicit basis of T, against the
// specified GRIP constant (T is a subspace of S_2r) and in the scarce regime.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "test_support.hpp"

using colora::Index;
using colora::Matrix;
using Md = colora::Matrix<double>;

namespace {

struct DenseTangent {
  double lambda_min = 0, lambda_max = 0;  // over T
  double shared_min = 0, shared_max = 0;  // over the dB and dA directions (dS = 0)
  Index dimension = 0;                    // dim T (rank of the norm Gram)
};

/// Extremes of the ratio of a form Gram F to a norm Gram N (symmetric, N PSD):
/// Eigen's generalized solver when N is positive definite, else the pencil on
/// the range of N (directions of zero norm are D = 0 and dropped).
void pencil_extremes(const Md& F, const Md& N, bool degenerate, double& lo, double& hi, Index& rank) {
  if (!degenerate) {
    Eigen::GeneralizedSelfAdjointEigenSolver<Md> ge(F, N, Eigen::EigenvaluesOnly);
    REQUIRE(ge.info() == Eigen::Success);
    lo = ge.eigenvalues()(0);
    hi = ge.eigenvalues()(F.rows() - 1);
    rank = F.rows();
    return;
  }
  Eigen::SelfAdjointEigenSolver<Md> en(N);
  const double top = en.eigenvalues().maxCoeff();
  std::vector<Index> keep;
  for (Index j = 0; j < N.rows(); ++j)
    if (en.eigenvalues()(j) > 1e-9 * top) keep.push_back(j);
  Md Wt(N.rows(), Index(keep.size()));
  for (size_t c = 0; c < keep.size(); ++c)
    Wt.col(Index(c)) = en.eigenvectors().col(keep[c]) / std::sqrt(en.eigenvalues()(keep[c]));
  const Md Fw = Wt.transpose() * F * Wt;
  Eigen::SelfAdjointEigenSolver<Md> ef(0.5 * (Fw + Fw.transpose()), Eigen::EigenvaluesOnly);
  lo = ef.eigenvalues()(0);
  hi = ef.eigenvalues()(Fw.rows() - 1);
  rank = Fw.rows();
}

/// The reference: an explicit basis of T at (A, B, S_i) (A r x p, B q x r of
/// full rank, not necessarily orthonormal), gauge-free: dS_i = E_ab per task,
/// dB = b_c e_a^T with b_c in the complement of span(B), dA = e_a a_c^T with
/// a_c in the complement of A's row space. Each basis element is the whole
/// list (D_1..D_k); the Grams of sum_i ||X_i D_i^T||^2 / n_i and of
/// sum_i ||D_i||^2 are formed densely.
template <class Scalar>
DenseTangent dense_tangent(const colora::RegressionProblem<Scalar>& pb, const Md& A, const Md& B,
                           const std::vector<Md>& S, bool degenerate = false) {
  const Index k = pb.num_tasks(), p = pb.input_dim(), q = pb.output_dim(), r = A.rows();
  Eigen::HouseholderQR<Md> qa(A.transpose()), qb(B);
  const Md Qa = qa.householderQ(), Qb = qb.householderQ();
  const Md Aperp = Qa.rightCols(p - r), Bperp = Qb.rightCols(q - r);
  std::vector<std::vector<Md>> basis;
  std::vector<bool> shared;
  const Md I = Md::Identity(r, r);
  for (Index i = 0; i < k; ++i)
    for (Index b = 0; b < r; ++b)
      for (Index a = 0; a < r; ++a) {
        std::vector<Md> D(size_t(k), Md::Zero(q, p));
        D[size_t(i)] = B * (I.col(a) * I.row(b)) * A;
        basis.push_back(D);
        shared.push_back(false);
      }
  for (Index c = 0; c < q - r; ++c)
    for (Index a = 0; a < r; ++a) {
      const Md dB = Bperp.col(c) * I.row(a);
      std::vector<Md> D(static_cast<size_t>(k));
      for (Index i = 0; i < k; ++i) D[size_t(i)] = dB * S[size_t(i)] * A;
      basis.push_back(D);
      shared.push_back(true);
    }
  for (Index c = 0; c < p - r; ++c)
    for (Index a = 0; a < r; ++a) {
      const Md dA = I.col(a) * Aperp.col(c).transpose();
      std::vector<Md> D(static_cast<size_t>(k));
      for (Index i = 0; i < k; ++i) D[size_t(i)] = B * S[size_t(i)] * dA;
      basis.push_back(D);
      shared.push_back(true);
    }
  const Index d = Index(basis.size());
  Index rows_n = 0, rows_f = 0;
  for (Index i = 0; i < k; ++i) {
    rows_n += q * p;
    rows_f += pb.samples(i) * q;
  }
  Md Dn(rows_n, d), Df(rows_f, d);
  for (Index c = 0; c < d; ++c) {
    Index on = 0, of = 0;
    for (Index i = 0; i < k; ++i) {
      const Md& Di = basis[size_t(c)][size_t(i)];
      Dn.col(c).segment(on, q * p) = Eigen::Map<const colora::Vector<double>>(Di.data(), q * p);
      on += q * p;
      const Md X = pb.tasks[size_t(i)].X.template cast<double>();
      const Md Y = X * Di.transpose() / std::sqrt(double(X.rows()));
      Df.col(c).segment(of, Y.size()) = Eigen::Map<const colora::Vector<double>>(Y.data(), Y.size());
      of += Y.size();
    }
  }
  const Md N = Dn.transpose() * Dn, F = Df.transpose() * Df;
  DenseTangent out;
  pencil_extremes(F, N, degenerate, out.lambda_min, out.lambda_max, out.dimension);
  std::vector<Index> idx;
  for (Index c = 0; c < d; ++c)
    if (shared[size_t(c)]) idx.push_back(c);
  Md Ns(Index(idx.size()), Index(idx.size())), Fs(Index(idx.size()), Index(idx.size()));
  for (size_t a = 0; a < idx.size(); ++a)
    for (size_t b = 0; b < idx.size(); ++b) {
      Ns(Index(a), Index(b)) = N(idx[a], idx[b]);
      Fs(Index(a), Index(b)) = F(idx[a], idx[b]);
    }
  if (!idx.empty()) {
    Index rank = 0;
    pencil_extremes(Fs, Ns, degenerate, out.shared_min, out.shared_max, rank);
  } else {
    out.shared_min = out.shared_max = std::numeric_limits<double>::quiet_NaN();
  }
  return out;
}

template <class Scalar>
std::vector<Md> cores_double(const std::vector<Matrix<Scalar>>& S) {
  std::vector<Md> out;
  for (const auto& s : S) out.push_back(s.template cast<double>());
  return out;
}

/// v lies in [lo, hi] up to a rounding allowance relative to max(|v|, 1).
bool in_bracket(double v, double lo, double hi, double rel = 1e-9) {
  const double slack = rel * std::max(std::abs(v), 1.0);
  return v >= lo - slack && v <= hi + slack;
}

/// Extremes over tasks of the eigenvalues of A Sigma_i A^T (the per-task dS directions).
template <class Scalar>
void per_task_extremes(const colora::RegressionProblem<Scalar>& pb, const Md& A, double& lo, double& hi) {
  Eigen::HouseholderQR<Md> qa(A.transpose());
  const Md Qa = Md(qa.householderQ()).leftCols(A.rows());
  lo = std::numeric_limits<double>::infinity();
  hi = -lo;
  for (const auto& t : pb.tasks) {
    const Md Z = t.X.template cast<double>() * Qa;
    Eigen::SelfAdjointEigenSolver<Md> es(Z.transpose() * Z / double(Z.rows()), Eigen::EigenvaluesOnly);
    lo = std::min(lo, es.eigenvalues()(0));
    hi = std::max(hi, es.eigenvalues()(A.rows() - 1));
  }
}

colora::GeneratorOptions small_options(Index k, std::vector<Index> n, Index p, Index q, Index r, std::uint64_t salt) {
  colora::GeneratorOptions o;
  o.tasks = k;
  o.samples = std::move(n);
  o.p = p;
  o.q = q;
  o.rank = r;
  o.test_samples = 0;
  o.sigma = 0.1;
  o.seed = colora_test::seed() + salt;
  return o;
}

}  // namespace

TEST_CASE_TEMPLATE("tangent GRIP (M1): agrees with a dense generalized eigensolver on an explicit basis of T", Scalar,
                   COLORA_TEST_SCALARS) {
  struct Case {
    Index k;
    std::vector<Index> n;
    Index p, q, r;
  };
  const std::vector<Case> cases = {
      {5, {6}, 8, 7, 2},               // scarce: n_i < p
      {5, {6}, 8, 2, 2},               // q == r: no dB block
      {5, {3, 6, 9, 4, 12}, 8, 7, 2},  // unequal n_i
      {3, {20}, 6, 5, 3},              // n_i > p
  };
  std::uint64_t salt = 0;
  for (const auto& c : cases) {
    CAPTURE(c.q);
    CAPTURE(c.n.size());
    const auto pb = colora::generate_regression<Scalar>(small_options(c.k, c.n, c.p, c.q, c.r, ++salt));
    const auto& tr = *pb.truth;
    const auto t = colora::regression_tangent_grip(pb);
    const auto ref = dense_tangent(pb, tr.A_shared.template cast<double>(), tr.B_shared.template cast<double>(),
                                   cores_double(tr.S));
    REQUIRE(t.valid);
    CHECK(t.reason.empty());
    CHECK_FALSE(t.degenerate);
    CHECK(t.dimension == ref.dimension);
    CHECK(t.dimension == c.k * c.r * c.r + (c.p - c.r) * c.r + (c.q - c.r) * c.r);
    CHECK(t.evaluations > 0);
    // The exact extremes lie in the certified brackets...
    CHECK(in_bracket(ref.lambda_min, t.lambda_min_low, t.lambda_min_high));
    CHECK(in_bracket(ref.lambda_max, t.lambda_max_low, t.lambda_max_high));
    // ... which are as narrow as asked (tolerance 1e-6 relative).
    CHECK(t.lambda_min_high - t.lambda_min_low <= 1e-6 * std::abs(t.lambda_min_high) + 1e-12);
    CHECK(t.lambda_max_high - t.lambda_max_low <= 1e-6 * std::abs(t.lambda_max_high) + 1e-12);
    CHECK(t.lambda_min == doctest::Approx(ref.lambda_min).epsilon(1e-6));
    CHECK(t.lambda_max == doctest::Approx(ref.lambda_max).epsilon(1e-6));
    CHECK(t.shared_lambda_min == doctest::Approx(ref.shared_min).epsilon(1e-6));
    CHECK(t.shared_lambda_max == doctest::Approx(ref.shared_max).epsilon(1e-6));
    CHECK(t.delta == doctest::Approx(std::max(ref.lambda_max - 1.0, 1.0 - ref.lambda_min)).epsilon(1e-6));
    CHECK(t.delta_low <= t.delta);
    CHECK(t.delta <= t.delta_high);
    // A tighter tolerance narrows the brackets around the same values.
    colora::TangentGripOptions tight;
    tight.tolerance = 1e-10;
    const auto t2 = colora::regression_tangent_grip(pb, tight);
    CHECK(in_bracket(ref.lambda_min, t2.lambda_min_low, t2.lambda_min_high, 1e-10));
    CHECK(in_bracket(ref.lambda_max, t2.lambda_max_low, t2.lambda_max_high, 1e-10));
  }
}

TEST_CASE_TEMPLATE("tangent GRIP (M1): any factorization of the point gives the same T; degenerate cores", Scalar,
                   COLORA_TEST_SCALARS) {
  auto rng = colora_test::rng_for("tangent grip factorization");
  const auto pb = colora::generate_regression<Scalar>(small_options(6, {7}, 9, 6, 2, 101));
  const auto& tr = *pb.truth;
  const Index r = 2;
  const auto t = colora::regression_tangent_grip(pb);
  REQUIRE(t.valid);

  SUBCASE("non-orthonormal A, B with the cores transformed: B S A is the same point") {
    const Matrix<Scalar> R1 = Matrix<Scalar>::Identity(r, r) + Scalar(0.3) * rng.normal_matrix<Scalar>(r, r);
    const Matrix<Scalar> R2 = Matrix<Scalar>::Identity(r, r) + Scalar(0.3) * rng.normal_matrix<Scalar>(r, r);
    const Matrix<Scalar> A2 = R1 * tr.A_shared, B2 = tr.B_shared * R2;
    std::vector<Matrix<Scalar>> S2;
    for (const auto& s : tr.S) S2.push_back(R2.inverse() * s * R1.inverse());
    const auto t2 = colora::regression_tangent_grip(pb, A2, B2, S2);
    REQUIRE(t2.valid);
    CHECK(t2.dimension == t.dimension);
    // double: the brackets agree to their width; float: the point itself moves by rounding of the transforms.
    const double eps = std::is_same<Scalar, float>::value ? 1e-4 : 2e-6;
    CHECK(t2.lambda_min == doctest::Approx(t.lambda_min).epsilon(eps));
    CHECK(t2.lambda_max == doctest::Approx(t.lambda_max).epsilon(eps));
    CHECK(t2.shared_lambda_min == doctest::Approx(t.shared_lambda_min).epsilon(eps));
    CHECK(t2.shared_lambda_max == doctest::Approx(t.shared_lambda_max).epsilon(eps));
    // The dense reference at the transformed factorization (its own basis of T).
    const auto ref = dense_tangent(pb, A2.template cast<double>(), B2.template cast<double>(), cores_double(S2));
    CHECK(in_bracket(ref.lambda_min, t2.lambda_min_low, t2.lambda_min_high));
    CHECK(in_bracket(ref.lambda_max, t2.lambda_max_low, t2.lambda_max_high));
  }

  SUBCASE("rank-one cores with a common null vector: sum S^T S singular, zero-norm directions dropped") {
    const Matrix<Scalar> b = rng.normal_matrix<Scalar>(r, 1);
    std::vector<Matrix<Scalar>> S1;
    for (Index i = 0; i < pb.num_tasks(); ++i) S1.push_back(rng.normal_matrix<Scalar>(r, 1) * b.transpose());
    const auto t1 = colora::regression_tangent_grip(pb, tr.A_shared, tr.B_shared, S1);
    REQUIRE(t1.valid);
    CHECK(t1.degenerate);
    CHECK(t1.reason.find("degenerate") != std::string::npos);
    const auto ref = dense_tangent(pb, tr.A_shared.template cast<double>(), tr.B_shared.template cast<double>(),
                                   cores_double(S1), /*degenerate=*/true);
    // sum S^T S has rank 1: the dA block keeps (p - r) directions; sum S S^T has rank r.
    CHECK(t1.dimension == 6 * r * r + (9 - r) * 1 + (6 - r) * r);
    CHECK(t1.dimension == ref.dimension);
    CHECK(std::isfinite(t1.lambda_min));
    CHECK(std::isfinite(t1.delta));
    CHECK(in_bracket(ref.lambda_min, t1.lambda_min_low, t1.lambda_min_high, 1e-8));
    CHECK(in_bracket(ref.lambda_max, t1.lambda_max_low, t1.lambda_max_high, 1e-8));
    CHECK(t1.shared_lambda_min == doctest::Approx(ref.shared_min).epsilon(1e-6));
    CHECK(t1.shared_lambda_max == doctest::Approx(ref.shared_max).epsilon(1e-6));
  }

  SUBCASE("zero cores: T is the dS directions alone, exact per-task extremes, no shared directions") {
    const std::vector<Matrix<Scalar>> Z(size_t(pb.num_tasks()), Matrix<Scalar>::Zero(r, r));
    const auto t0 = colora::regression_tangent_grip(pb, tr.A_shared, tr.B_shared, Z);
    REQUIRE(t0.valid);
    CHECK(t0.degenerate);
    CHECK(t0.dimension == 6 * r * r);
    double lo = 0, hi = 0;
    per_task_extremes(pb, tr.A_shared.template cast<double>(), lo, hi);
    CHECK(t0.lambda_min == doctest::Approx(lo).epsilon(1e-9));
    CHECK(t0.lambda_max == doctest::Approx(hi).epsilon(1e-9));
    CHECK(std::isnan(t0.shared_lambda_min));
    CHECK(std::isnan(t0.shared_lambda_max));
  }
}

TEST_CASE_TEMPLATE("tangent GRIP (M1): delta_T never exceeds the specified GRIP constant", Scalar,
                   COLORA_TEST_SCALARS) {
  struct Case {
    Index k, n, p, q, r;
    double input_condition;
  };
  const std::vector<Case> cases = {
      {10, 6, 12, 9, 2, 1.0},    // scarce
      {4, 80, 10, 8, 3, 1.0},    // rich: n_i >> p, delta < 1
      {8, 15, 10, 10, 2, 20.0},  // ill-conditioned inputs
      {30, 12, 24, 20, 3, 1.0},
  };
  const double rel = std::is_same<Scalar, float>::value ? 1e-4 : 1e-9;  // regression_grip_exact runs in Scalar
  std::uint64_t salt = 200;
  for (const auto& c : cases) {
    CAPTURE(c.n);
    CAPTURE(c.p);
    auto o = small_options(c.k, {c.n}, c.p, c.q, c.r, ++salt);
    o.input_condition = c.input_condition;
    const auto pb = colora::generate_regression<Scalar>(o);
    const auto t = colora::regression_tangent_grip(pb);
    const auto ex = colora::regression_grip_exact(pb);
    REQUIRE(t.valid);
    // T is a subspace of S_2r: its extremes lie inside the specified ones.
    CHECK(t.lambda_max_high <= ex.lambda_max * (1 + rel) + rel);
    CHECK(t.lambda_min_low >= ex.lambda_min * (1 - rel) - rel);
    CHECK(t.delta_low <= ex.delta * (1 + rel) + rel);
    CHECK(t.delta <= ex.delta * (1 + rel) + rel);
    // ... and contain those of the per-task directions dS_i (eigenvalues of A Sigma_i A^T).
    double lo = 0, hi = 0;
    per_task_extremes(pb, pb.truth->A_shared.template cast<double>(), lo, hi);
    CHECK(t.lambda_min_low <= lo * (1 + 1e-9) + 1e-12);
    CHECK(t.lambda_max_high >= hi * (1 - 1e-9) - 1e-12);
    // The shared directions are part of T.
    CHECK(t.lambda_min_low <= t.shared_lambda_min * (1 + 1e-6) + 1e-12);
    CHECK(t.lambda_max_high >= t.shared_lambda_max * (1 - 1e-6) - 1e-12);
  }
}

TEST_CASE_TEMPLATE("tangent GRIP (M1): informative in the scarce regime; the shared part improves with k", Scalar,
                   COLORA_TEST_SCALARS) {
  // The default recovery run: (k, n_i, p, q, r) = (100, 24, 64, 64, 4), every n_i < p.
  auto o = small_options(100, {24}, 64, 64, 4, 300);
  const auto pb = colora::generate_regression<Scalar>(o);
  const auto ex = colora::regression_grip_exact(pb);
  const auto t = colora::regression_tangent_grip(pb);
  REQUIRE(t.valid);
  CHECK(ex.delta >= 1.0);        // the specified constant is useless here (lambda_min = 0)
  CHECK(t.lambda_min_low > 0.0);  // T sees no direction the data cannot: 1 - lambda_min_T < 1
  CHECK(t.delta < ex.delta);
  CHECK(std::max(t.shared_lambda_max - 1.0, 1.0 - t.shared_lambda_min) < 1.0);
  // What bounds delta_T from below here: the per-task directions dS_i, whose ratio
  // ranges over the eigenvalues of the r x r matrices A Sigma_i A^T (n_i = 24 samples each).
  double lo = 0, hi = 0;
  per_task_extremes(pb, pb.truth->A_shared.template cast<double>(), lo, hi);
  CHECK(t.delta_high >= std::max(hi - 1.0, 1.0 - lo) - 1e-9);

  // k in {2, 5, 20, 100} at n_i = 24, p = q = 64, r = 4.
  std::vector<colora::TangentGrip> ts;
  for (Index k : {Index(2), Index(5), Index(20), Index(100)}) {
    o.tasks = k;
    ts.push_back(colora::regression_tangent_grip(colora::generate_regression<Scalar>(o)));
    REQUIRE(ts.back().valid);
  }
  // k = 2: k (n_i - r) = 40 < p - r = 60, so T holds directions the data cannot see.
  CHECK(ts[0].lambda_min_high <= 1e-8);
  CHECK(ts[0].delta >= 1.0);
  auto shared_dev = [](const colora::TangentGrip& g) {
    return std::max(g.shared_lambda_max - 1.0, 1.0 - g.shared_lambda_min);
  };
  for (size_t j = 1; j < ts.size(); ++j) {
    CAPTURE(j);
    CHECK(ts[j].lambda_min_low > 0.0);
    // The shared directions see all k n_i samples: their deviation falls with k.
    CHECK(shared_dev(ts[j]) < shared_dev(ts[j - 1]));
    // So does the lower deviation 1 - lambda_min_T (up to small fluctuations).
    CHECK(1.0 - ts[j].lambda_min <= 1.0 - ts[j - 1].lambda_min + 0.1);
  }
  // delta_T falls from k = 2 to 5 to 20; beyond, the largest eigenvalue over k
  // tasks of A Sigma_i A^T grows with k, so delta_T levels off (not monotone).
  CHECK(ts[1].delta <= ts[0].delta + 0.05);
  CHECK(ts[2].delta <= ts[1].delta + 0.05);
  CHECK(ts[3].delta < ts[0].delta);
}

TEST_CASE_TEMPLATE("tangent GRIP (M1): the result does not depend on the thread count", Scalar, COLORA_TEST_SCALARS) {
  const auto pb = colora::generate_regression<Scalar>(small_options(20, {64}, 128, 64, 4, 400));
  colora::TangentGripOptions o1, o2;
  o1.num_threads = 1;
  o2.num_threads = 2;
  const auto a = colora::regression_tangent_grip(pb, o1), b = colora::regression_tangent_grip(pb, o2);
  CHECK(a.lambda_min_low == b.lambda_min_low);
  CHECK(a.lambda_min_high == b.lambda_min_high);
  CHECK(a.lambda_max_low == b.lambda_max_low);
  CHECK(a.lambda_max_high == b.lambda_max_high);
  CHECK(a.shared_lambda_min == b.shared_lambda_min);
  CHECK(a.shared_lambda_max == b.shared_lambda_max);
  CHECK(a.evaluations == b.evaluations);
}

TEST_CASE_TEMPLATE("tangent GRIP (M1): bad input throws, q < r is reported as not valid", Scalar,
                   COLORA_TEST_SCALARS) {
  const auto pb = colora::generate_regression<Scalar>(small_options(4, {6}, 8, 7, 2, 500));
  const auto& tr = *pb.truth;
  auto no_truth = pb;
  no_truth.truth.reset();
  CHECK_THROWS_WITH_AS(colora::regression_tangent_grip(no_truth), doctest::Contains("regression_tangent_grip"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(colora::regression_tangent_grip(no_truth), doctest::Contains("truth"), std::invalid_argument);
  std::vector<Matrix<Scalar>> three(tr.S.begin(), tr.S.begin() + 3);
  CHECK_THROWS_WITH_AS(colora::regression_tangent_grip(pb, tr.A_shared, tr.B_shared, three),
                       doctest::Contains("got 3"), std::invalid_argument);
  auto bad_core = tr.S;
  bad_core[2] = Matrix<Scalar>::Zero(3, 2);
  CHECK_THROWS_WITH_AS(colora::regression_tangent_grip(pb, tr.A_shared, tr.B_shared, bad_core),
                       doctest::Contains("task 2"), std::invalid_argument);
  auto nan_core = tr.S;
  nan_core[1](0, 0) = std::numeric_limits<Scalar>::quiet_NaN();
  CHECK_THROWS_AS(colora::regression_tangent_grip(pb, tr.A_shared, tr.B_shared, nan_core), std::invalid_argument);
  const Matrix<Scalar> A_wide = Matrix<Scalar>::Ones(2, 9);
  CHECK_THROWS_WITH_AS(colora::regression_tangent_grip(pb, A_wide, tr.B_shared, tr.S), doctest::Contains("9"),
                       std::invalid_argument);
  const Matrix<Scalar> B_bad = Matrix<Scalar>::Ones(5, 2);
  CHECK_THROWS_AS(colora::regression_tangent_grip(pb, tr.A_shared, B_bad, tr.S), std::invalid_argument);
  colora::TangentGripOptions bad;
  bad.tolerance = 0.0;
  CHECK_THROWS_WITH_AS(colora::regression_tangent_grip(pb, bad), doctest::Contains("tolerance"),
                       std::invalid_argument);
  bad.tolerance = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_AS(colora::regression_tangent_grip(pb, bad), std::invalid_argument);
  bad = {};
  bad.num_threads = -1;
  CHECK_THROWS_WITH_AS(colora::regression_tangent_grip(pb, bad), doctest::Contains("num_threads"),
                       std::invalid_argument);
  auto broken = pb;
  broken.tasks[1].Y = Matrix<Scalar>::Zero(3, 7);
  CHECK_THROWS_WITH_AS(colora::regression_tangent_grip(broken), doctest::Contains("task 1"), std::invalid_argument);

  // q < r (personal-head truth): no tangent space of (M1); reported, not thrown.
  const auto head = colora::generate_regression<Scalar>(small_options(4, {6}, 8, 1, 2, 501));
  colora::TangentGrip h;
  CHECK_NOTHROW(h = colora::regression_tangent_grip(head));
  CHECK_FALSE(h.valid);
  CHECK(h.reason.find("q = 1 < r = 2") != std::string::npos);
  CHECK(std::isnan(h.delta));
}
