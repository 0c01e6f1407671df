// Theory diagnostics: GRIP estimator (both measurement models), predicted
// delta for Gaussian designs, contraction-rate fit, task structure.
#include <doctest/doctest.h>

#include <cmath>
#include <iterator>
#include <type_traits>
#include <limits>
#include <vector>

#include "test_support.hpp"

using colora::Index;
using colora::Matrix;

namespace {

template <class Scalar>
colora::RegressionProblem<Scalar> gaussian_regression(colora::Rng& rng, Index k, Index n, Index p, Index q) {
  colora::RegressionProblem<Scalar> pb;
  pb.tasks.resize(size_t(k));
  for (auto& t : pb.tasks) {
    t.X = rng.normal_matrix<Scalar>(n, p);
    t.Y = Matrix<Scalar>::Zero(n, q);
  }
  return pb;
}

/// X_i = sqrt(n_i) Q_i with orthonormal columns: X_i^T X_i = n_i I exactly (to rounding).
template <class Scalar>
colora::RegressionProblem<Scalar> isometric_regression(colora::Rng& rng, const std::vector<Index>& n, Index p,
                                                       Index q) {
  colora::RegressionProblem<Scalar> pb;
  pb.tasks.resize(n.size());
  for (size_t i = 0; i < n.size(); ++i) {
    pb.tasks[i].X = colora::haar_orthonormal<Scalar>(rng, n[i], p) * Scalar(std::sqrt(double(n[i])));
    pb.tasks[i].Y = Matrix<Scalar>::Zero(n[i], q);
  }
  return pb;
}

template <class Scalar>
colora::SensingProblem<Scalar> gaussian_sensing(colora::Rng& rng, Index k, Index m, Index p, Index q) {
  colora::SensingProblem<Scalar> pb;
  pb.p = p;
  pb.q = q;
  pb.tasks.resize(size_t(k));
  for (auto& t : pb.tasks) {
    t.M = rng.normal_matrix<Scalar>(m, p * q);
    t.y = colora::Vector<Scalar>::Zero(m);
  }
  return pb;
}

/// Naive reference ratio: forms every D_i densely and every measurement.
template <class Scalar>
double dense_ratio(const colora::RegressionProblem<Scalar>& pb, const std::vector<Matrix<Scalar>>& D) {
  double num = 0, den = 0;
  for (size_t i = 0; i < pb.tasks.size(); ++i) {
    const Matrix<double> X = pb.tasks[i].X.template cast<double>();
    const Matrix<double> Di = D[i].template cast<double>();
    num += (X * Di.transpose()).squaredNorm() / double(X.rows());
    den += Di.squaredNorm();
  }
  return num / den;
}

template <class Scalar>
double dense_ratio(const colora::SensingProblem<Scalar>& pb, const std::vector<Matrix<Scalar>>& D) {
  double num = 0, den = 0;
  for (size_t i = 0; i < pb.tasks.size(); ++i) {
    const auto& M = pb.tasks[i].M;
    double s = 0;
    for (Index j = 0; j < M.rows(); ++j) {
      Matrix<double> Mj(pb.q, pb.p);  // vec column-major: entry (a, b) at a + q b
      for (Index b = 0; b < pb.p; ++b)
        for (Index a = 0; a < pb.q; ++a) Mj(a, b) = double(M(j, a + pb.q * b));
      const double v = (Mj.array() * D[i].template cast<double>().array()).sum();
      s += v * v;
    }
    num += s / double(M.rows());
    den += D[i].template cast<double>().squaredNorm();
  }
  return num / den;
}

template <class Scalar>
std::vector<Matrix<Scalar>> dense_direction(const colora::GripDirection<Scalar>& d) {
  std::vector<Matrix<Scalar>> D;
  for (size_t i = 0; i < d.C.size(); ++i) D.push_back(d.D(Index(i)));
  return D;
}

/// Random directions of S_s: spread over all tasks, and all mass on one task.
template <class Scalar, class Problem>
double max_random_deviation(const Problem& pb, Index s, colora::Rng& rng, int count) {
  const Index k = pb.num_tasks(), p = pb.input_dim(), q = pb.output_dim();
  double dev = 0;
  for (int c = 0; c < count; ++c) {
    const Matrix<Scalar> U = colora::haar_orthonormal<Scalar>(rng, q, s);
    const Matrix<Scalar> V = colora::haar_orthonormal<Scalar>(rng, p, s);
    std::vector<Matrix<Scalar>> D(static_cast<size_t>(k));
    const Index single = c % 2 == 0 ? -1 : Index(rng.below(std::uint64_t(k)));
    for (Index i = 0; i < k; ++i) {
      const Matrix<Scalar> C = (single < 0 || single == i) ? rng.normal_matrix<Scalar>(s, s)
                                                           : Matrix<Scalar>::Zero(s, s);
      D[size_t(i)] = U * C * V.transpose();
    }
    dev = std::max(dev, std::abs(dense_ratio(pb, D) - 1.0));
  }
  return dev;
}

bool bitwise_equal(const Matrix<double>& a, const Matrix<double>& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() && std::equal(a.data(), a.data() + a.size(), b.data());
}
template <class Scalar>
bool same_result(const colora::GripResult<Scalar>& a, const colora::GripResult<Scalar>& b) {
  auto dir_eq = [](const colora::GripDirection<Scalar>& x, const colora::GripDirection<Scalar>& y) {
    if (x.task != y.task || x.C.size() != y.C.size() || !(x.ratio == y.ratio)) return false;
    if (!bitwise_equal(x.U.template cast<double>(), y.U.template cast<double>())) return false;
    if (!bitwise_equal(x.V.template cast<double>(), y.V.template cast<double>())) return false;
    for (size_t i = 0; i < x.C.size(); ++i)
      if (!bitwise_equal(x.C[i].template cast<double>(), y.C[i].template cast<double>())) return false;
    return true;
  };
  return a.delta_hat == b.delta_hat && a.lambda_max == b.lambda_max && a.lambda_min == b.lambda_min &&
         a.sampled_deviation == b.sampled_deviation && a.iterations == b.iterations &&
         a.operator_applications == b.operator_applications && dir_eq(a.max_direction, b.max_direction) &&
         dir_eq(a.min_direction, b.min_direction);
}

}  // namespace

// ---------------------------------------------------------------------------
// GRIP, (M1)

TEST_CASE_TEMPLATE("GRIP (M1): delta_hat is 0 for designs with X_i^T X_i = n_i I", Scalar, COLORA_TEST_SCALARS) {
  auto rng = colora_test::rng_for("grip m1 isometric");
  const auto pb = isometric_regression<Scalar>(rng, {12, 16, 9, 20}, 8, 6);
  colora::GripOptions opt;
  opt.rank = 2;
  opt.seed = 3;
  opt.tolerance = 0.0;
  const auto res = colora::grip_estimate(pb, opt);
  CHECK(res.status == colora::Status::Success);
  CHECK(res.subspace_rank == 4);
  const double tol = 50 * colora_test::Tol<Scalar>::tight;
  CHECK(res.delta_hat <= tol);
  CHECK(std::abs(res.lambda_max - 1.0) <= tol);
  CHECK(std::abs(res.lambda_min - 1.0) <= tol);
  const auto ex = colora::regression_grip_exact(pb);
  CHECK(ex.delta <= tol);
}

TEST_CASE_TEMPLATE("GRIP (M1): a scaled column makes delta grow to the exact value", Scalar, COLORA_TEST_SCALARS) {
  auto rng = colora_test::rng_for("grip m1 scaled column");
  auto pb = isometric_regression<Scalar>(rng, {12, 16, 9, 20}, 8, 6);
  colora::GripOptions opt;
  opt.rank = 1;
  opt.seed = 5;
  opt.tolerance = 0.0;  // run every iteration: the value is compared at rounding level
  const double base = colora::grip_estimate(pb, opt).delta_hat;
  // Sigma_2 = diag(4, 1, ..., 1) and Sigma_3 = diag(1, ..., 1, 0.25): exact lambda_max = 4, lambda_min = 0.25.
  pb.tasks[2].X.col(0) *= Scalar(2);
  pb.tasks[3].X.col(7) *= Scalar(0.5);
  const auto res = colora::grip_estimate(pb, opt);
  const double tol = 1e3 * colora_test::Tol<Scalar>::tight;
  CHECK(res.delta_hat > base + 1.0);
  CHECK(res.lambda_max == doctest::Approx(4.0).epsilon(tol));
  CHECK(res.lambda_min == doctest::Approx(0.25).epsilon(tol));
  CHECK(res.delta_hat == doctest::Approx(3.0).epsilon(tol));
  CHECK(res.max_direction.task == 2);
  CHECK(res.min_direction.task == 3);
  const auto ex = colora::regression_grip_exact(pb);
  CHECK(ex.delta == doctest::Approx(3.0).epsilon(tol));
  CHECK(ex.argmax_task == 2);
  CHECK(ex.argmin_task == 3);
}

TEST_CASE_TEMPLATE("GRIP (M1): reported extremes are attained by their directions and beat random ones", Scalar,
                   COLORA_TEST_SCALARS) {
  auto rng = colora_test::rng_for("grip m1 certified");
  for (Index n : {Index(30), Index(7)}) {  // n_i > p and n_i < p
    CAPTURE(n);
    const auto pb = gaussian_regression<Scalar>(rng, 5, n, 10, 7);
    colora::GripOptions opt;
    opt.rank = 2;
    opt.seed = 11;
    opt.max_iterations = 60;
    opt.tolerance = 0.0;
    const auto res = colora::grip_estimate(pb, opt);
    REQUIRE(res.status == colora::Status::Success);
    const double tol = 1e2 * colora_test::Tol<Scalar>::tight;
    // Certified: the naive dense ratio of the returned directions is the reported value.
    CHECK(dense_ratio(pb, dense_direction(res.max_direction)) == doctest::Approx(res.lambda_max).epsilon(tol));
    CHECK(dense_ratio(pb, dense_direction(res.min_direction)) == doctest::Approx(res.lambda_min).epsilon(tol));
    // Directions are feasible: orthonormal U, V of width s.
    CHECK((res.max_direction.U.transpose() * res.max_direction.U - Matrix<Scalar>::Identity(4, 4)).norm() <= tol);
    CHECK((res.max_direction.V.transpose() * res.max_direction.V - Matrix<Scalar>::Identity(4, 4)).norm() <= tol);
    // Never below what random directions attain (spread and single-task).
    auto rng2 = colora_test::rng_for("grip m1 random directions");
    const double random_dev = max_random_deviation<Scalar>(pb, 4, rng2, 40);
    CHECK(res.delta_hat >= random_dev);
    CHECK(res.delta_hat >= res.sampled_deviation);
    // And close to the exact (M1) answer, which it can never exceed.
    const auto ex = colora::regression_grip_exact(pb);
    CHECK(res.lambda_max <= ex.lambda_max * (1 + tol));
    CHECK(res.lambda_min >= ex.lambda_min - tol);
    CHECK(res.lambda_max >= 0.999 * ex.lambda_max);
    CHECK(res.delta_hat >= 0.99 * ex.delta);
    CHECK(res.delta_hat <= ex.delta + tol);
  }
}

TEST_CASE("GRIP: 1 and 2 threads give bitwise identical results") {
  auto rng = colora_test::rng_for("grip threads");
  colora::GripOptions opt;
  opt.rank = 2;
  opt.seed = 2;
  opt.max_iterations = 10;
  {
    const auto pb = gaussian_regression<double>(rng, 7, 15, 12, 9);
    opt.num_threads = 1;
    const auto a = colora::grip_estimate(pb, opt);
    opt.num_threads = 2;
    const auto b = colora::grip_estimate(pb, opt);
    CHECK(same_result(a, b));
  }
  {
    const auto pb = gaussian_sensing<double>(rng, 5, 40, 5, 4);
    opt.num_threads = 1;
    const auto a = colora::grip_estimate(pb, opt);
    opt.num_threads = 2;
    const auto b = colora::grip_estimate(pb, opt);
    CHECK(same_result(a, b));
  }
}

TEST_CASE("GRIP: bad options and shapes name the field") {
  auto rng = colora_test::rng_for("grip errors");
  const auto pb = gaussian_regression<double>(rng, 2, 5, 4, 3);
  colora::GripOptions opt;
  opt.rank = 0;
  CHECK_THROWS_WITH_AS(colora::grip_estimate(pb, opt), doctest::Contains("rank"), std::invalid_argument);
  opt.rank = 1;
  opt.restarts = 0;
  CHECK_THROWS_WITH_AS(colora::grip_estimate(pb, opt), doctest::Contains("restarts"), std::invalid_argument);
  opt.restarts = 1;
  auto bad = pb;
  bad.tasks[1].X(0, 0) = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH_AS(colora::grip_estimate(bad, opt), doctest::Contains("task 1"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(colora::predict_grip_delta(colora::MeasurementModel::Sensing, 3, 10, 4, 4, 1, 1.5),
                       doctest::Contains("confidence"), std::invalid_argument);
}

// ---------------------------------------------------------------------------
// GRIP, (M2)

TEST_CASE_TEMPLATE("GRIP (M2): certified, above random directions, shrinking with m, below the prediction", Scalar,
                   COLORA_TEST_SCALARS) {
  const Index k = 3, p = 5, q = 4, r = 1;
  colora::GripOptions opt;
  opt.rank = r;
  opt.max_iterations = 25;
  double mean_small = 0, mean_large = 0;
  for (int seed = 0; seed < 2; ++seed) {
    auto rng = colora_test::rng_for("grip m2 seed " + std::to_string(seed));
    opt.seed = std::uint64_t(seed);
    for (Index m : {Index(30), Index(300)}) {
      CAPTURE(m);
      const auto pb = gaussian_sensing<Scalar>(rng, k, m, p, q);
      const auto res = colora::grip_estimate(pb, opt);
      REQUIRE(res.status == colora::Status::Success);
      const double tol = 1e2 * colora_test::Tol<Scalar>::tight;
      CHECK(dense_ratio(pb, dense_direction(res.max_direction)) == doctest::Approx(res.lambda_max).epsilon(tol));
      CHECK(dense_ratio(pb, dense_direction(res.min_direction)) == doctest::Approx(res.lambda_min).epsilon(tol));
      auto rng2 = colora_test::rng_for("grip m2 random directions");
      CHECK(res.delta_hat >= max_random_deviation<Scalar>(pb, 2, rng2, 30));
      // The alternating search beats the spread random samples clearly.
      CHECK(res.delta_hat > res.sampled_deviation);
      // A Gaussian design stays below its 99% prediction (a conservative bound).
      const auto pred = colora::predict_grip_delta(pb, r, 0.99);
      CHECK(res.delta_hat <= pred.delta);
      (m == 30 ? mean_small : mean_large) += res.delta_hat / 2;
    }
  }
  CHECK(mean_large < 0.6 * mean_small);
}

TEST_CASE("GRIP (M2): fewer measurements than core entries give lambda_min = 0") {
  // m < s^2 measurements cannot be injective on the s x s cores: lambda_min = 0.
  auto rng = colora_test::rng_for("grip m2 underdetermined");
  const auto pb = gaussian_sensing<double>(rng, 2, 3, 4, 4);
  colora::GripOptions opt;
  opt.rank = 1;  // s = 2, s^2 = 4 > m = 3
  const auto res = colora::grip_estimate(pb, opt);
  CHECK(res.lambda_min <= 1e-10);
  CHECK(res.delta_hat >= 1.0 - 1e-10);
}

// ---------------------------------------------------------------------------
// Predicted delta

TEST_CASE("predict_grip_delta follows its formula and its monotonicity") {
  using colora::MeasurementModel;
  const auto a = colora::predict_grip_delta(MeasurementModel::Regression, 10, 400, 16, 8, 2, 0.95);
  const double t = std::sqrt(2.0 * std::log(2.0 * 10 / 0.05));
  const double eps = (4.0 + t) / 20.0;
  CHECK(a.t == doctest::Approx(t));
  CHECK(a.epsilon == doctest::Approx(eps));
  CHECK(a.delta == doctest::Approx(2 * eps + eps * eps));
  const auto b = colora::predict_grip_delta(MeasurementModel::Sensing, 10, 400, 16, 9, 2, 0.95);
  const double eps2 = (2.0 * (4.0 + 3.0) + t) / 20.0 + 1.0 / 400;
  CHECK(b.epsilon == doctest::Approx(eps2));
  // More samples: smaller; more tasks, width or confidence: larger.
  CHECK(colora::predict_grip_delta(MeasurementModel::Sensing, 10, 800, 16, 9, 2).delta < b.delta);
  CHECK(colora::predict_grip_delta(MeasurementModel::Sensing, 100, 400, 16, 9, 2).delta > b.delta);
  CHECK(colora::predict_grip_delta(MeasurementModel::Sensing, 10, 400, 16, 9, 4).delta > b.delta);
  CHECK(colora::predict_grip_delta(MeasurementModel::Sensing, 10, 400, 16, 9, 2, 0.999).delta > b.delta);
}

TEST_CASE("predict_grip_delta (M1) bounds the exact delta of Gaussian designs") {
  auto rng = colora_test::rng_for("grip prediction m1");
  for (Index n : {Index(40), Index(400)}) {
    const auto pb = gaussian_regression<double>(rng, 6, n, 10, 3);
    const auto ex = colora::regression_grip_exact(pb);
    const auto pred = colora::predict_grip_delta(pb, 1, 0.99);
    CAPTURE(n);
    CHECK(ex.delta <= pred.delta);
    CHECK(ex.delta >= 0.25 * pred.delta);  // and it is of the predicted order
  }
}

// ---------------------------------------------------------------------------
// Contraction rate

TEST_CASE("fit_contraction_rate recovers rho and the floor onset of max(c rho^t, floor)") {
  for (double rho : {0.5, 0.7, 0.9}) {
    CAPTURE(rho);
    const double c = 3.0, floor = 1e-5;
    std::vector<double> d;
    int onset = -1;
    for (int t = 0; t <= 200; ++t) {
      const double g = c * std::pow(rho, t);
      if (onset < 0 && g <= floor) onset = t;
      d.push_back(std::max(g, floor));
    }
    const auto fit = colora::fit_contraction_rate(d);
    CHECK(fit.status == colora::RateFitStatus::Fitted);
    CHECK(fit.rho == doctest::Approx(rho).epsilon(1e-9));
    CHECK(fit.rho_theil_sen == doctest::Approx(rho).epsilon(1e-9));
    CHECK(fit.rho_lower <= fit.rho);
    CHECK(fit.rho_upper >= fit.rho);
    CHECK(fit.floor_reached);
    CHECK(fit.floor == doctest::Approx(floor));
    CHECK(std::abs(fit.floor_onset - onset) <= 1);
    CHECK(std::exp(fit.log_intercept) == doctest::Approx(c).epsilon(1e-8));
  }
}

TEST_CASE("fit_contraction_rate with small multiplicative noise") {
  auto rng = colora_test::rng_for("rate noise");
  const double rho = 0.8, c = 1.0, floor = 1e-4;
  std::vector<double> d;
  int onset = -1;
  for (int t = 0; t <= 120; ++t) {
    const double g = c * std::pow(rho, t);
    if (onset < 0 && g <= floor) onset = t;
    d.push_back(std::max(g, floor) * std::exp(0.01 * rng.normal()));
  }
  const auto fit = colora::fit_contraction_rate(d, {0.99});
  CHECK(fit.status == colora::RateFitStatus::Fitted);
  CHECK(std::abs(fit.rho - rho) < 0.005);
  CHECK(std::abs(fit.rho_theil_sen - rho) < 0.005);
  CHECK(fit.rho_upper - fit.rho_lower < 0.01);
  // The Student-t interval is calibrated: over 400 replicates the 95%
  // interval covers the true rho in 95% of them (binomial sd ~ 1.1%).
  int covered = 0;
  const int reps = 400;
  for (int rep = 0; rep < reps; ++rep) {
    std::vector<double> e;
    for (int t = 0; t <= 60; ++t) e.push_back(std::max(c * std::pow(rho, t), floor) * std::exp(0.01 * rng.normal()));
    const auto f = colora::fit_contraction_rate(e);
    covered += f.rho_lower <= rho && rho <= f.rho_upper;
  }
  CHECK(double(covered) / reps > 0.90);
  CHECK(double(covered) / reps < 0.99);
  CHECK(fit.floor == doctest::Approx(floor).epsilon(0.01));
  CHECK(std::abs(fit.floor_onset - onset) <= 1);
  CHECK(fit.residual_std == doctest::Approx(0.01).epsilon(0.3));
}

TEST_CASE("fit_contraction_rate: no floor, exact zeros, constant, short histories, bad input") {
  {  // pure geometric: no floor
    std::vector<double> d;
    for (int t = 0; t < 30; ++t) d.push_back(2.0 * std::pow(0.6, t));
    const auto fit = colora::fit_contraction_rate(d);
    CHECK(fit.status == colora::RateFitStatus::Fitted);
    CHECK_FALSE(fit.floor_reached);
    CHECK(fit.floor_onset == -1);
    CHECK(std::isnan(fit.floor));
    CHECK(fit.window_end == 30);
    CHECK(fit.rho == doctest::Approx(0.6).epsilon(1e-10));
  }
  {  // exact zeros from t = 6
    std::vector<double> d = {1, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0, 0, 0, 0};
    const auto fit = colora::fit_contraction_rate(d);
    CHECK(fit.status == colora::RateFitStatus::Fitted);
    CHECK(fit.rho == doctest::Approx(0.5));
    CHECK(fit.floor_reached);
    CHECK(fit.floor == 0.0);
    CHECK(fit.floor_onset == 6);
  }
  {  // constant, and all zero
    const auto fit = colora::fit_contraction_rate({0.3, 0.3, 0.3, 0.3});
    CHECK(fit.status == colora::RateFitStatus::Constant);
    CHECK(fit.rho == 1.0);
    CHECK(fit.floor == 0.3);
    const auto z = colora::fit_contraction_rate({0.0, 0.0, 0.0});
    CHECK(z.status == colora::RateFitStatus::Constant);
    CHECK(z.floor == 0.0);
  }
  {  // too short
    CHECK(colora::fit_contraction_rate({}).status == colora::RateFitStatus::TooShort);
    CHECK(colora::fit_contraction_rate({1.0}).status == colora::RateFitStatus::TooShort);
    const auto two = colora::fit_contraction_rate({1.0, 0.5});
    CHECK(two.status == colora::RateFitStatus::TooShort);
    CHECK(two.rho == doctest::Approx(0.5));
    CHECK(std::isnan(two.rho_lower));
    const auto zero_after_one = colora::fit_contraction_rate({1.0, 0.0, 0.0, 0.0});
    CHECK(zero_after_one.status == colora::RateFitStatus::TooShort);
    CHECK(zero_after_one.floor_onset == 1);
  }
  CHECK_THROWS_WITH_AS(colora::fit_contraction_rate({1.0, -0.5}), doctest::Contains("dist[1]"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(colora::fit_contraction_rate({1.0, std::nan("")}), doctest::Contains("dist[1]"),
                       std::invalid_argument);
  colora::RateFitOptions bad;
  bad.confidence = 1.0;
  CHECK_THROWS_WITH_AS(colora::fit_contraction_rate({1.0, 0.5, 0.2}, bad), doctest::Contains("confidence"),
                       std::invalid_argument);
}

// ---------------------------------------------------------------------------
// Task structure

namespace {

/// B rotated by angle theta toward an orthonormal direction orthogonal to B.
template <class Scalar>
Matrix<Scalar> rotated(const Matrix<Scalar>& B, const Matrix<Scalar>& Bperp, double theta) {
  return B * Scalar(std::cos(theta)) + Bperp * Scalar(std::sin(theta));
}

template <class Scalar>
colora::GroundTruth<Scalar> planted_truth(colora::Rng& rng, Index k, Index p, Index q, Index r, double thetaB,
                                          double thetaA) {
  colora::GroundTruth<Scalar> g;
  const Matrix<Scalar> Bfull = colora::haar_orthonormal<Scalar>(rng, q, 2 * r);
  const Matrix<Scalar> Afull = colora::haar_orthonormal<Scalar>(rng, p, 2 * r);
  g.B_shared = Bfull.leftCols(r);
  g.A_shared = Afull.leftCols(r).transpose();
  for (Index i = 0; i < k; ++i) {
    g.B.push_back(rotated<Scalar>(g.B_shared, Bfull.rightCols(r), thetaB * double(i + 1) / double(k)));
    g.A.push_back(rotated<Scalar>(g.A_shared.transpose(), Afull.rightCols(r), thetaA).transpose());
    g.S.push_back(colora::haar_orthonormal<Scalar>(rng, r, r));  // S S^T = I
  }
  return g;
}

}  // namespace

TEST_CASE_TEMPLATE("task_structure: diversity 1 for balanced cores, 0 for rank-1 cores, exact angles", Scalar,
                   COLORA_TEST_SCALARS) {
  auto rng = colora_test::rng_for("task structure");
  const Index k = 4, p = 9, q = 7, r = 3;
  auto g = planted_truth<Scalar>(rng, k, p, q, r, 0.6, 0.3);
  const double tol = 1e2 * colora_test::Tol<Scalar>::tight;
  const auto ts = colora::task_structure(g, 1000);
  CHECK(ts.diversity == doctest::Approx(1.0).epsilon(tol));
  REQUIRE(ts.tasks.size() == size_t(k));
  for (Index i = 0; i < k; ++i) {
    const double tb = 0.6 * double(i + 1) / double(k);
    CHECK(ts.tasks[size_t(i)].theta_B == doctest::Approx(tb).epsilon(1e3 * colora_test::Tol<Scalar>::tight));
    CHECK(ts.tasks[size_t(i)].dist_B.spectral == doctest::Approx(std::sin(tb)).epsilon(tol));
    CHECK(ts.tasks[size_t(i)].dist_B.frobenius == doctest::Approx(std::sqrt(double(r)) * std::sin(tb)).epsilon(tol));
    CHECK(ts.tasks[size_t(i)].theta_A == doctest::Approx(0.3).epsilon(1e3 * colora_test::Tol<Scalar>::tight));
  }
  CHECK(ts.max_theta_B == doctest::Approx(0.6).epsilon(1e3 * colora_test::Tol<Scalar>::tight));
  CHECK(ts.shared_dof == (p + q) * r);
  CHECK(ts.total_dof == (p + q) * r + k * r * r);
  CHECK(ts.samples_per_dof == doctest::Approx(1000.0 / double((p + q) * r + k * r * r)));
  CHECK(colora::task_structure(g, -1, colora::CoreKind::Diagonal).total_dof == (p + q) * r + k * r);

  // Cores rank-1 in one common direction: (1/k) sum S S^T has rank 1.
  const colora::Vector<Scalar> u = colora::haar_orthonormal<Scalar>(rng, r, 1);
  for (Index i = 0; i < k; ++i) {
    const colora::Vector<Scalar> v = rng.normal_matrix<Scalar>(r, 1);
    g.S[size_t(i)] = Scalar(1 + i) * u * v.transpose();
  }
  CHECK(colora::task_structure(g).diversity <= tol);
  // A problem without a truth is a contract violation.
  colora::RegressionProblem<Scalar> pb;
  CHECK_THROWS_WITH_AS(colora::task_structure(pb), doctest::Contains("ground truth"), std::invalid_argument);
  g.S[1] = Matrix<Scalar>::Zero(2, 2);
  CHECK_THROWS_WITH_AS(colora::task_structure(g), doctest::Contains("task 1"), std::invalid_argument);
}

// ---------------------------------------------------------------------------
// Guarantee report (diagnostics/guarantee_report.hpp).

namespace {

colora::GeneratorOptions report_problem(std::uint64_t salt) {
  colora::GeneratorOptions g;
  g.tasks = 8;
  g.p = 12;
  g.q = 12;
  g.rank = 2;
  g.samples = {30};
  g.test_samples = 0;
  g.sigma = 0.0;
  g.seed = colora_test::seed() + salt;
  g.num_threads = 1;
  return g;
}

colora::SolverOptions report_solver(Index rank, int iterations) {
  colora::SolverOptions o;
  o.rank = rank;
  o.a_step = colora::AStepSolver::Exact;
  o.max_iterations = iterations;
  o.tolerance = 0.0;
  o.num_threads = 1;
  return o;
}

}  // namespace

TEST_CASE_TEMPLATE("guarantee_report: noiseless planted problem contracts, counts match the formula", Scalar,
                   COLORA_TEST_SCALARS) {
  const auto g = report_problem(11);
  const auto pb = colora::generate_regression<Scalar>(g);
  colora::Solver<Scalar> s(report_solver(g.rank, 30));
  s.compute(pb);
  const colora::GuaranteeReport rep = colora::guarantee_report(pb, s);
  CHECK(rep.k == g.tasks);
  CHECK(rep.r == g.rank);
  CHECK(rep.n_min == 30);
  CHECK(rep.n_max == 30);
  CHECK(rep.total_samples == g.tasks * 30);
  CHECK(rep.total_observations == g.tasks * 30 * g.q);
  CHECK(rep.dof == (g.p + g.q) * g.rank + g.tasks * g.rank * g.rank);
  CHECK(rep.observations_per_dof == doctest::Approx(double(g.tasks * 30 * g.q) / double(rep.dof)));
  // GRIP (M1): the exact closed form, and n_i >= p so lambda_min > 0.
  CHECK(rep.delta_method == "exact");
  const auto ex = colora::regression_grip_exact(pb, 1);
  CHECK(rep.delta_hat == ex.delta);
  CHECK(rep.grip_lambda_min > 0.0);
  CHECK(rep.delta_predicted == colora::predict_grip_delta(pb, g.rank, 0.95).delta);
  // Rate: a fitted linear phase with rho < 1 and its interval inside (0, 1).
  REQUIRE(rep.rate.status == colora::RateFitStatus::Fitted);
  CHECK(rep.rate.rho < 1.0);
  CHECK(rep.rate.rho_lower > 0.0);
  CHECK(rep.rate.rho_upper < 1.0);
  CHECK(rep.rate.rho_lower <= rep.rate.rho);
  CHECK(rep.rate.rho <= rep.rate.rho_upper);
  CHECK(rep.rate_ok);
  // Floor: oracle floor 0 (sigma = 0), the rounding term keeps the ratio finite.
  CHECK(rep.oracle_floor == 0.0);
  CHECK(rep.rounding_floor > 0.0);
  CHECK(std::isfinite(rep.floor_ratio));
  CHECK(rep.final_mean_rel_err < colora_test::Tol<Scalar>::recovery);
  // Exact model: no angles; diversity in (0, 1].
  CHECK(rep.max_theta_a < 1e-6);  // 0 up to the acos of a rounded cosine (~1e-8)
  CHECK(rep.max_theta_b < 1e-6);
  CHECK(rep.diversity > 0.0);
  CHECK(rep.diversity <= 1.0 + 1e-12);
  // The rows carry the same numbers (CSV of colora theory).
  const auto rows = rep.rows();
  bool found_rho = false;
  for (const auto& row : rows)
    if (row.quantity == "rho_measured") {
      found_rho = true;
      CHECK(row.value == rep.rate.rho);
      CHECK(row.ci_low == rep.rate.rho_lower);
      CHECK(row.ci_high == rep.rate.rho_upper);
    }
  CHECK(found_rho);
}

TEST_CASE("guarantee_report: with noise and many tasks the floor is within a small factor of the oracle") {
  auto g = report_problem(12);
  g.tasks = 60;
  g.sigma = 0.1;
  const auto pb = colora::generate_regression<double>(g);
  colora::Solver<double> s(report_solver(g.rank, 30));
  s.compute(pb);
  const auto rep = colora::guarantee_report(pb, s);
  // Oracle floor: sigma^2 r^2 / (n - r - 1) for every task.
  CHECK(rep.oracle_floor == doctest::Approx(0.01 * 4.0 / 27.0).epsilon(1e-12));
  MESSAGE("floor_ratio = ", rep.floor_ratio, ", rho = ", rep.rate.rho, " [", rep.rate.rho_lower, ", ",
          rep.rate.rho_upper, "], ", rep.verdict_text);
  CHECK(rep.floor_ratio > 0.5);
  CHECK(rep.floor_ratio < 2.0);
  CHECK(rep.floor_ok);
  // The measured ratio agrees with an independent computation of the errors.
  const auto m = colora::recovery_metrics(*pb.truth, s.A(), s.B(), s.cores());
  CHECK(rep.final_mean_sq_err == doctest::Approx(m.mean_sq_err));
}

TEST_CASE("guarantee_report: the oracle formula does not apply for n_i <= r + 1 or Sigma != I") {
  auto g = report_problem(13);
  g.samples = {3};  // r + 1 = 3
  g.tasks = 40;
  g.sigma = 0.1;
  const auto pb = colora::generate_regression<double>(g);
  colora::Solver<double> s(report_solver(g.rank, 5));
  s.compute(pb);
  const auto rep = colora::guarantee_report(pb, s);
  CHECK(std::isnan(rep.oracle_floor));
  CHECK(std::isnan(rep.floor_ratio));
  CHECK(rep.verdict != colora::Verdict::Holds);
  CHECK(rep.grip_lambda_min == 0.0);  // n_i < p: the (M1) GRIP is >= 1
  CHECK(rep.delta_hat >= 1.0);

  auto g2 = report_problem(14);
  g2.input_condition = 4.0;
  g2.sigma = 0.1;
  const auto pb2 = colora::generate_regression<double>(g2);
  colora::Solver<double> s2(report_solver(g2.rank, 5));
  s2.compute(pb2);
  CHECK(std::isnan(colora::guarantee_report(pb2, s2).oracle_floor));
}

TEST_CASE("guarantee_report (M2): search lower bound and the r^2-dimensional oracle floor") {
  auto g = report_problem(15);
  g.tasks = 4;
  g.p = 6;
  g.q = 5;
  g.samples = {60};
  g.sigma = 0.05;
  const auto pb = colora::generate_sensing<double>(g);
  colora::Solver<double> s(report_solver(g.rank, 20));
  s.compute(pb);
  colora::GuaranteeReportOptions ro;
  ro.grip.restarts = 1;
  ro.grip.max_iterations = 5;
  ro.num_threads = 1;
  const auto rep = colora::guarantee_report(pb, s, ro);
  CHECK(rep.model == colora::MeasurementModel::Sensing);
  CHECK(rep.delta_method == "search-lower-bound");
  CHECK(std::isfinite(rep.delta_hat));
  CHECK(rep.grip_lambda_max >= rep.grip_lambda_min);
  CHECK(rep.total_observations == rep.total_samples);
  CHECK(rep.oracle_floor == doctest::Approx(0.05 * 0.05 * 4.0 / (60.0 - 4.0 - 1.0)).epsilon(1e-12));
  CHECK(std::isfinite(rep.floor_ratio));
}

TEST_CASE("guarantee_report: bad input names the function and the field") {
  auto g = report_problem(16);
  auto pb = colora::generate_regression<double>(g);
  colora::Solver<double> s(report_solver(g.rank, 2));
  s.compute(pb);
  colora::GuaranteeReportOptions ro;
  ro.floor_factor = 0.5;
  CHECK_THROWS_WITH_AS(colora::guarantee_report(pb, s, ro), doctest::Contains("floor_factor"), std::invalid_argument);
  pb.truth.reset();
  CHECK_THROWS_WITH_AS(colora::guarantee_report(pb, s), doctest::Contains("colora::guarantee_report"),
                       std::invalid_argument);
}

// ---------------------------------------------------------------------------
// Rate check (diagnostics/measured_rate.hpp, predicted_rate.hpp): the noiseless twin, the predicted
// rate against a dense Jacobian, the verdict on constructed histories.

namespace {

colora::GeneratorOptions rate_problem(std::uint64_t salt) {
  colora::GeneratorOptions g;
  g.tasks = 8;
  g.p = 8;
  g.q = 6;
  g.rank = 2;
  g.samples = {12};
  g.test_samples = 5;
  g.sigma = 0.1;
  g.seed = colora_test::seed() + salt;
  g.num_threads = 1;
  return g;
}

colora::SolverOptions rate_solver(Index rank) {
  colora::SolverOptions o;
  o.rank = rank;
  o.num_threads = 1;
  o.seed = colora_test::seed();
  return o;
}

/// Chart coordinates of (A, B) around (A0, B0), orthonormal, written
/// independently of the library: the components of A's row space and B's
/// column space outside A0's and B0's, in the bases that make A0, B0 the identity.
template <class Scalar>
Eigen::VectorXd chart(const Matrix<Scalar>& A, const Matrix<Scalar>& B, const Eigen::MatrixXd& A0,
                      const Eigen::MatrixXd& B0) {
  const Eigen::MatrixXd Ad = A.template cast<double>(), Bd = B.template cast<double>();
  const Eigen::MatrixXd EA = (Ad * A0.transpose()).inverse() * Ad * (Eigen::MatrixXd::Identity(A0.cols(), A0.cols()) -
                                                                     A0.transpose() * A0);
  const Eigen::MatrixXd EB = (Eigen::MatrixXd::Identity(B0.rows(), B0.rows()) - B0 * B0.transpose()) * Bd *
                             (B0.transpose() * Bd).inverse();
  Eigen::VectorXd v(EA.size() + EB.size());
  v << Eigen::Map<const Eigen::VectorXd>(EA.data(), EA.size()), Eigen::Map<const Eigen::VectorXd>(EB.data(), EB.size());
  return v;
}

}  // namespace

TEST_CASE_TEMPLATE("noiseless_twin: exact targets; the twin run reaches the truth to rounding", Scalar,
                   COLORA_TEST_SCALARS) {
  const auto g = rate_problem(21);
  const auto pb = colora::generate_regression<Scalar>(g);
  const auto twin = colora::noiseless_twin(pb);
  REQUIRE(twin.truth.has_value());
  CHECK(twin.truth->sigma == 0.0);
  for (Index i = 0; i < pb.num_tasks(); ++i) {
    const Matrix<Scalar> W = pb.truth->delta(i);
    const auto& t = twin.tasks[size_t(i)];
    CHECK((t.X - pb.tasks[size_t(i)].X).norm() == 0);
    CHECK(double((t.Y - t.X * W.transpose()).norm()) <= 10 * colora_test::Tol<Scalar>::tight * double(t.Y.norm()));
    CHECK(double((t.Y_test - t.X_test * W.transpose()).norm()) <=
          10 * colora_test::Tol<Scalar>::tight * double(t.Y_test.norm()));
    CHECK((t.Y - pb.tasks[size_t(i)].Y).norm() > 0);  // the noise is gone
  }
  const auto tw = colora::run_noiseless_twin(pb, rate_solver(g.rank));
  REQUIRE(tw.ok);
  CHECK(tw.converged);
  MESSAGE("twin: ", tw.iterations, " iterations, limit at ", tw.limit_distance_to_truth, " from the truth, rho ",
          tw.rate.rho, " [", tw.rate.rho_lower, ", ", tw.rate.rho_upper, "]");
  CHECK(tw.limit_distance_to_truth < colora_test::Tol<Scalar>::recovery);
  CHECK(tw.change.back() <= 100 * double(std::numeric_limits<Scalar>::epsilon()));
  REQUIRE(Index(tw.distance.size()) == tw.iterations);
  // The distance to the limit shrinks: its last value is far below the first.
  CHECK(tw.distance.back() < 1e-3 * tw.distance.front());
  if (std::is_same<Scalar, double>::value) {
    REQUIRE(tw.rate.status == colora::RateFitStatus::Fitted);
    CHECK(tw.rate.rho > 0.0);
    CHECK(tw.rate.rho_upper < 1.0);
  }
}

TEST_CASE_TEMPLATE("predicted_contraction_rate equals the spectral radius of a dense finite-difference Jacobian",
                   Scalar, COLORA_TEST_SCALARS) {
  for (const auto a_step : {colora::AStepSolver::Cg, colora::AStepSolver::Gd}) {
    const std::string a_step_name = colora::to_string(a_step);
    CAPTURE(a_step_name);
    const auto g = rate_problem(22);
    const auto pb = colora::generate_regression<Scalar>(g);
    colora::SolverOptions o = rate_solver(g.rank);
    o.a_step = a_step;
    const auto tw = colora::run_noiseless_twin(pb, o);
    REQUIRE(tw.ok);
    const auto twin = colora::noiseless_twin(pb);
    const colora::PredictedRate pr = colora::predicted_contraction_rate(twin, o, tw.A, tw.B);
    REQUIRE(pr.valid);
    CHECK(pr.dimension == g.rank * (g.p - g.rank) + g.rank * (g.q - g.rank));
    CHECK(pr.step_check);

    // Dense reference: the map evaluated by the kernel's steps, coordinates
    // by chart() above, forward differences with a different step, every
    // direction of an orthonormal basis of the tangent space.
    using Mat = Matrix<Scalar>;
    const Eigen::MatrixXd A0 = tw.A.template cast<double>(), B0 = tw.B.template cast<double>();
    const colora::RegressionModel<Scalar> model(twin, 1);
    const auto w = colora::altmin::task_weights(model, o.weighting);
    const auto ridge = colora::altmin::core_ridges(w, 0.0);
    auto control = o.a_step_control();
    if (a_step == colora::AStepSolver::Cg) control.solver = colora::AStepSolver::Exact;  // what cg approximates
    auto phi = [&](const Eigen::MatrixXd& EA, const Eigen::MatrixXd& EB) {
      Mat A = colora::thin_qr(Eigen::MatrixXd((A0 + EA).transpose())).Q.transpose().template cast<Scalar>();
      Mat B = colora::thin_qr(Eigen::MatrixXd(B0 + EB)).Q.template cast<Scalar>();
      std::vector<Mat> S;
      colora::AStepStats ast;
      REQUIRE(colora::altmin::fit_cores(model, A, B, ridge, o.core, S));
      REQUIRE(colora::altmin::iterate(model, w, ridge, o.core, control, false, A, B, S, ast));
      return chart<Scalar>(A, B, A0, B0);
    };
    const Index p = g.p, q = g.q, r = g.rank;
    // Basis of the tangent space: E_A = F P_A (rows of P_A orthogonal to A0), E_B = P_B G.
    Eigen::JacobiSVD<Eigen::MatrixXd> sa(A0, Eigen::ComputeFullV), sb(B0, Eigen::ComputeFullU);
    const Eigen::MatrixXd PA = sa.matrixV().rightCols(p - r).transpose();  // (p - r) x p
    const Eigen::MatrixXd PB = sb.matrixU().rightCols(q - r);              // q x (q - r)
    const Index d = r * (p - r) + r * (q - r);
    Eigen::MatrixXd basis(r * p + q * r, d);
    Index col = 0;
    for (Index i = 0; i < r; ++i)
      for (Index j = 0; j < p - r; ++j, ++col) {
        Eigen::MatrixXd EA = Eigen::MatrixXd::Zero(r, p);
        EA.row(i) = PA.row(j);
        basis.col(col) << Eigen::Map<Eigen::VectorXd>(EA.data(), EA.size()), Eigen::VectorXd::Zero(q * r);
      }
    for (Index i = 0; i < q - r; ++i)
      for (Index j = 0; j < r; ++j, ++col) {
        Eigen::MatrixXd EB = Eigen::MatrixXd::Zero(q, r);
        EB.col(j) = PB.col(i);
        basis.col(col) << Eigen::VectorXd::Zero(r * p), Eigen::Map<Eigen::VectorXd>(EB.data(), EB.size());
      }
    const double h = std::is_same<Scalar, double>::value ? 1e-7 : 3e-3;
    const Eigen::VectorXd phi0 = phi(Eigen::MatrixXd::Zero(r, p), Eigen::MatrixXd::Zero(q, r));
    CHECK(phi0.norm() < colora_test::Tol<Scalar>::recovery);  // (A0, B0) is a fixed point
    Eigen::MatrixXd J(d, d);
    for (Index c = 0; c < d; ++c) {
      const Eigen::VectorXd e = h * basis.col(c);
      const Eigen::VectorXd f =
          phi(Eigen::Map<const Eigen::MatrixXd>(e.data(), r, p), Eigen::Map<const Eigen::MatrixXd>(e.data() + r * p, q, r));
      J.col(c) = basis.transpose() * ((f - phi0) / h);
    }
    const double rho_dense = Eigen::EigenSolver<Eigen::MatrixXd>(J).eigenvalues().cwiseAbs().maxCoeff();
    MESSAGE("predicted ", pr.rho, " [", pr.rho_lower, ", ", pr.rho_upper, "], half step ", pr.rho_half_step,
            ", dense ", rho_dense, ", ", pr.map_evaluations, " map evaluations");
    CHECK(rho_dense > 0.0);
    CHECK(rho_dense < 1.0);
    const double slack = std::is_same<Scalar, double>::value ? 1e-5 : 2e-2;  // the dense side's differences
    CHECK(rho_dense >= pr.rho_lower - slack);
    CHECK(rho_dense <= pr.rho_upper + slack);
    CHECK(std::abs(pr.rho - rho_dense) <= (std::is_same<Scalar, double>::value ? 1e-4 : 3e-2) * rho_dense);
  }
}

TEST_CASE("predicted rate: the twin's measured rate approaches it from below; diagonal cores are declined") {
  auto g = rate_problem(23);
  g.tasks = 30;
  g.p = g.q = 16;
  g.rank = 3;
  g.samples = {10};
  const auto pb = colora::generate_regression<double>(g);
  colora::SolverOptions o = rate_solver(g.rank);
  const auto tw = colora::run_noiseless_twin(pb, o);
  REQUIRE(tw.ok);
  REQUIRE(tw.rate.status == colora::RateFitStatus::Fitted);
  const auto pr = colora::predicted_contraction_rate(colora::noiseless_twin(pb), o, tw.A, tw.B);
  REQUIRE(pr.valid);
  MESSAGE("measured ", tw.rate.rho, " [", tw.rate.rho_lower, ", ", tw.rate.rho_upper, "], predicted ", pr.rho, " [",
          pr.rho_lower, ", ", pr.rho_upper, "]");
  // The spectral radius bounds the asymptotic rate; the measured tail rate
  // lies within 10 % of it (docs/theory.md: a cluster at the top of the
  // spectrum keeps finite windows slightly below the radius).
  CHECK(tw.rate.rho_lower <= pr.rho_upper);
  CHECK(tw.rate.rho >= 0.9 * pr.rho);
  o.core = colora::CoreKind::Diagonal;
  const auto pd = colora::predicted_contraction_rate(pb, o, tw.A, tw.B);
  CHECK_FALSE(pd.valid);
  CHECK(pd.reason.find("diagonal") != std::string::npos);
  // Bad input: the fixed point's shape.
  CHECK_THROWS_AS(colora::predicted_contraction_rate(pb, rate_solver(g.rank), Matrix<double>(tw.A.transpose()), tw.B),
                  std::invalid_argument);
  colora::RegressionProblem<double> no_truth = pb;
  no_truth.truth.reset();
  CHECK_THROWS_AS(colora::noiseless_twin(no_truth), std::invalid_argument);
}

TEST_CASE("guarantee_report verdict on constructed histories: holds, fails, undetermined") {
  auto g = rate_problem(24);
  g.tasks = 40;
  g.samples = {20};
  const auto pb = colora::generate_regression<double>(g);
  colora::Solver<double> s(rate_solver(g.rank));
  s.compute(pb);
  const auto good = colora::recovery_metrics(*pb.truth, s.A(), s.B(), s.cores());
  auto history = [](double rho, int n) {
    std::vector<colora::IterationRecord> h(size_t(n) + 1);
    for (int t = 0; t <= n; ++t) {
      h[size_t(t)].iteration = t;
      h[size_t(t)].dist_a = h[size_t(t)].dist_b = 0.5 * std::pow(rho, t);
    }
    return h;
  };
  colora::GuaranteeReportOptions ro;
  ro.solver = rate_solver(g.rank);
  // The twin's prediction at this problem, for reference.
  const auto base = colora::guarantee_report(pb, g.rank, history(0.5, 1), good, ro);
  REQUIRE(base.predicted.valid);
  const double pred = base.predicted.rho;
  MESSAGE("predicted rho = ", pred, "; ", base.verdict_text);
  // A 2-point history: the run's rate is not resolvable; the twin decides.
  CHECK(base.rate_source == "noiseless twin");
  CHECK(base.verdict == colora::Verdict::Holds);
  CHECK(base.verdict_text.rfind("holds: ", 0) == 0);
  // A run contracting faster than predicted: holds (at or below the prediction).
  const auto fast = colora::guarantee_report(pb, g.rank, history(0.5 * pred, 8), good, ro);
  CHECK(fast.rate_source == "run");
  CHECK(fast.verdict == colora::Verdict::Holds);
  // Slower than predicted: the rate fails.
  const auto slow = colora::guarantee_report(pb, g.rank, history(std::min(0.95, 0.5 + pred), 12), good, ro);
  CHECK_FALSE(slow.rate_ok);
  CHECK(slow.verdict == colora::Verdict::Fails);
  CHECK(slow.verdict_text.find("above predicted") != std::string::npos);
  // A run whose 3-point interval straddles 1 defers to the twin (and says so).
  {
    std::vector<colora::IterationRecord> h = history(0.5, 2);
    h[1].dist_a = h[1].dist_b = 0.1;  // 0.5, 0.1, 0.125: a noisy phase, wide interval
    const auto wide = colora::guarantee_report(pb, g.rank, h, good, ro);
    REQUIRE(wide.rate.status == colora::RateFitStatus::Fitted);
    CHECK(wide.rate.rho_upper > 1.0);
    CHECK(wide.rate_source == "noiseless twin");
    CHECK(wide.verdict_text.find("straddles 1") != std::string::npos);
    CHECK(wide.verdict == colora::Verdict::Holds);
  }
  // Not contracting at all: fails.
  const auto flat = colora::guarantee_report(pb, g.rank, history(1.2, 8), good, ro);
  CHECK(flat.verdict == colora::Verdict::Fails);
  // A floor far above the oracle's: fails, whatever the rate.
  colora::RecoveryMetrics bad = good;
  bad.mean_sq_err = 100 * base.oracle_floor;
  CHECK(colora::guarantee_report(pb, g.rank, history(0.5 * pred, 8), bad, ro).verdict == colora::Verdict::Fails);
  // No twin and a too-short run: undetermined, saying how many iterations a rate needs.
  ro.rate_check = false;
  const auto und = colora::guarantee_report(pb, g.rank, history(0.5, 1), good, ro);
  CHECK(und.verdict == colora::Verdict::Undetermined);
  CHECK(und.verdict_text.find(">= 3 iterations") != std::string::npos);
  CHECK(std::isnan(und.predicted.rho));
  // Without a prediction, < 1 alone decides.
  CHECK(colora::guarantee_report(pb, g.rank, history(0.9, 12), good, ro).verdict == colora::Verdict::Holds);
}

TEST_CASE("objective_gap_rate: a geometric gap gives its ratio; short histories give no rate") {
  std::vector<colora::IterationRecord> h(12);
  for (size_t t = 0; t < h.size(); ++t) h[t].objective = 2.0 + 3.0 * std::pow(0.4, double(t));
  h.back().objective = 2.0;
  const colora::RateFit f = colora::objective_gap_rate(h);
  REQUIRE(f.status == colora::RateFitStatus::Fitted);
  CHECK(f.rho == doctest::Approx(0.4).epsilon(1e-3));
  h.resize(2);
  CHECK(colora::objective_gap_rate(h).status != colora::RateFitStatus::Fitted);
}

#ifdef COLORA_CLI_PATH
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

TEST_CASE("colora theory: writes theory.csv with its header; exit 2 on a bad flag") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::current_path() / "colora_test_theory_cli";
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto run = [&](const std::string& args) {
    const std::string cmd = std::string("'") + COLORA_CLI_PATH + "' " + args + " >'" + (dir / "out.txt").string() +
                            "' 2>'" + (dir / "err.txt").string() + "'";
    const int status = std::system(cmd.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  CHECK(run("theory --tasks 6 --p 8 --q 8 --rank 2 --samples 20 --iters 10 --threads 1 --seed " +
            std::to_string(colora_test::seed() % 100000) + " --out '" + dir.string() + "'") == 0);
  std::ifstream in(dir / "theory.csv");
  std::string header;
  std::getline(in, header);
  CHECK(header == "quantity,value,ci_low,ci_high");
  std::string line;
  std::vector<std::string> wanted = {"rho_measured,", "rho_measured_noiseless,", "rho_predicted,"};
  std::vector<bool> found(wanted.size(), false);
  while (std::getline(in, line))
    for (size_t j = 0; j < wanted.size(); ++j) found[j] = found[j] || line.rfind(wanted[j], 0) == 0;
  for (size_t j = 0; j < wanted.size(); ++j) {
    CAPTURE(wanted[j]);
    CHECK(found[j]);
  }
  std::ifstream out(dir / "out.txt");
  const std::string text((std::istreambuf_iterator<char>(out)), std::istreambuf_iterator<char>());
  CHECK(text.find("verdict: holds") != std::string::npos);
  CHECK(run("theory --no-such-flag 1") == 2);
  CHECK(run("theory --experiment nonsense") == 2);
}
#endif
