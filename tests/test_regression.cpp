// The planted-problem generator, the CoLoRA solver and its diagnostics
// (issue 3): recovery of a planted truth, the oracle floor, monotonicity,
// thread-count independence, and clear errors on bad input.
#include <doctest/doctest.h>

#include <Eigen/SVD>

#include <colora/diagnostics/oracle_floor.hpp>
#include <colora/regression/generator.hpp>
#include <colora/regression/oracle.hpp>
#include <colora/regression/solver.hpp>

#include <cmath>
#include <limits>
#include <utility>

#include "test_support.hpp"

using namespace colora;
using colora_test::Tol;

namespace {

GeneratorOptions small_problem(std::uint64_t seed_offset, double sigma = 0.0) {
  GeneratorOptions g;
  g.tasks = 30;
  g.p = 20;
  g.q = 15;
  g.rank = 3;
  g.samples = {30};
  g.test_samples = 20;
  g.sigma = sigma;
  g.kappa = 2.0;
  g.tau = 1.0;
  g.seed = colora_test::seed() + seed_offset;
  return g;
}

template <class Scalar>
void check_recovered(const Solver<Scalar>& s, const GroundTruth<Scalar>& truth, double tol, int max_iterations = 100) {
  const RecoveryMetrics m = recovery_metrics(truth, s.A(), s.B(), s.cores());
  INFO("status " << to_string(s.info()) << ", stop " << to_string(s.stop_reason()) << ", iterations "
                 << s.iterations());
  CHECK(m.dist_a < tol);
  CHECK(m.dist_b < tol);
  CHECK(m.max_rel_err < tol);
  CHECK(s.iterations() <= max_iterations);
}

}  // namespace

TEST_CASE("generator: reproducible from the seed, for any thread count, with the planted structure") {
  GeneratorOptions g = small_problem(1, 0.1);
  g.theta_a = 0.3;
  g.theta_b = 0.2;
  g.kappa = 4.0;
  g.num_threads = 1;
  const auto a = generate_regression<double>(g);
  g.num_threads = 2;
  const auto b = generate_regression<double>(g);
  for (Index i = 0; i < a.num_tasks(); ++i) {
    CHECK(a.tasks[size_t(i)].X == b.tasks[size_t(i)].X);
    CHECK(a.tasks[size_t(i)].Y == b.tasks[size_t(i)].Y);
  }
  const auto& t = *a.truth;
  // Orthonormal factors, principal angles equal to theta, singular values 1..1/kappa.
  CHECK((t.A_shared * t.A_shared.transpose() - Matrix<double>::Identity(3, 3)).norm() < 1e-12);
  CHECK((t.B_shared.transpose() * t.B_shared - Matrix<double>::Identity(3, 3)).norm() < 1e-12);
  for (Index i = 0; i < 3; ++i) {
    const auto ang_a = principal_angles(t.A[size_t(i)].transpose(), t.A_shared.transpose());
    const auto ang_b = principal_angles(t.B[size_t(i)], t.B_shared);
    for (Index j = 0; j < 3; ++j) {
      CHECK(std::abs(ang_a(j) - 0.3) < 1e-6);
      CHECK(std::abs(ang_b(j) - 0.2) < 1e-6);
    }
    Eigen::JacobiSVD<Matrix<double>> svd(t.S[size_t(i)]);
    CHECK(std::abs(svd.singularValues()(0) - 1.0) < 1e-12);
    CHECK(std::abs(svd.singularValues()(2) - 0.25) < 1e-12);
  }
  // tau = 0: every core equal.
  g.tau = 0;
  const auto c = generate_regression<double>(g);
  CHECK((c.truth->S[0] - c.truth->S[5]).norm() < 1e-12);
  // A different seed gives a different problem.
  g.seed += 1;
  CHECK(generate_regression<double>(g).tasks[0].X != c.tasks[0].X);
}

TEST_CASE_TEMPLATE("noiseless (M1): every A-step solver and both initializations recover the truth", Scalar,
                   COLORA_TEST_SCALARS) {
  const auto pb = generate_regression<Scalar>(small_problem(2));
  for (AStepSolver a : {AStepSolver::Exact, AStepSolver::Cg, AStepSolver::Gd}) {
    for (InitKind init : {InitKind::Spectral, InitKind::Random}) {
      CAPTURE(to_string(a));
      CAPTURE(to_string(init));
      SolverOptions o;
      o.rank = 3;
      o.a_step = a;
      o.init = init;
      o.seed = colora_test::seed();
      Solver<Scalar> s(o);
      s.compute(pb);
      CHECK(s.info() != Status::NumericalIssue);
      check_recovered(s, *pb.truth, colora_test::Tol<Scalar>::recovery);
    }
  }
}

TEST_CASE_TEMPLATE("noiseless (M2 matrix sensing): every A-step solver and both initializations recover the truth",
                   Scalar, COLORA_TEST_SCALARS) {
  GeneratorOptions g = small_problem(3);
  g.tasks = 20;
  g.p = 10;
  g.q = 8;
  g.rank = 2;
  g.samples = {40};
  const auto pb = generate_sensing<Scalar>(g);
  for (AStepSolver a : {AStepSolver::Exact, AStepSolver::Cg, AStepSolver::Gd}) {
    for (InitKind init : {InitKind::Spectral, InitKind::Random}) {
      CAPTURE(to_string(a));
      CAPTURE(to_string(init));
      SolverOptions o;
      o.rank = 2;
      o.a_step = a;
      o.init = init;
      o.seed = colora_test::seed();
      Solver<Scalar> s(o);
      s.compute(pb);
      check_recovered(s, *pb.truth, colora_test::Tol<Scalar>::recovery);
    }
  }
}

TEST_CASE("noiseless with a diagonal core and with a random base W0") {
  GeneratorOptions g = small_problem(4);
  g.random_base = true;
  const auto pb = generate_regression<double>(g);
  SolverOptions o;
  o.rank = 3;
  Solver<double> s(o);
  s.compute(pb);
  check_recovered(s, *pb.truth, 1e-8);
  // W_i = W0 + B S_i A reproduces the truth; predict agrees with weight().
  const Matrix<double> W = s.weight(2);
  CHECK((W - (pb.W0 + pb.truth->delta(2))).norm() < 1e-8 * W.norm());
  const auto& X = pb.tasks[2].X_test;
  CHECK((s.predict(2, X) - X * W.transpose()).norm() < 1e-10 * (X * W.transpose()).norm());

  // Diagonal core: planted diagonal cores are recovered up to the gauge.
  RegressionProblem<double> dp = pb;
  dp.W0.resize(0, 0);
  auto& t = *dp.truth;
  Rng rng(colora_test::seed(), 77);
  for (Index i = 0; i < dp.num_tasks(); ++i) {
    Matrix<double> D = Matrix<double>::Zero(3, 3);
    for (Index j = 0; j < 3; ++j) D(j, j) = 0.5 + rng.uniform();
    t.S[size_t(i)] = D;
    t.A[size_t(i)] = t.A_shared;
    t.B[size_t(i)] = t.B_shared;
    auto& task = dp.tasks[size_t(i)];
    task.Y = task.X * t.delta(i).transpose();
    task.Y_test = task.X_test * t.delta(i).transpose();
  }
  // Unit-norm gauge: the block steps converge more slowly than with full cores.
  o.core = CoreKind::Diagonal;
  o.max_iterations = 400;
  Solver<double> sd(o);
  sd.compute(dp);
  check_recovered(sd, t, 1e-8, 400);
  for (Index i = 0; i < dp.num_tasks(); ++i) {
    const Matrix<double>& S = sd.core(i);
    CHECK((S - Matrix<double>(S.diagonal().asDiagonal())).norm() == 0.0);
  }
}

TEST_CASE("noisy: CoLoRA's mean squared per-task error is within 1.5x of the oracle floor sigma^2 r^2/(n-r-1)") {
  GeneratorOptions g;
  g.tasks = 200;
  g.p = 20;
  g.q = 20;
  g.rank = 3;
  g.samples = {2 * 3 + 4};
  g.test_samples = 0;
  g.sigma = 0.1;
  g.seed = colora_test::seed() + 5;
  const auto pb = generate_regression<double>(g);
  SolverOptions o;
  o.rank = 3;
  Solver<double> s(o);
  s.compute(pb);
  const double floor = oracle_core_floor(g.sigma, g.rank, g.samples[0]);
  const double err = recovery_metrics(*pb.truth, s.A(), s.B(), s.cores()).mean_sq_err;
  const auto oracle = fit_oracle(pb);
  const double oracle_err = recovery_metrics(*pb.truth, oracle.A, oracle.B, oracle.cores).mean_sq_err;
  INFO("colora " << err << ", oracle " << oracle_err << ", floor " << floor);
  CHECK(err / floor < 1.5);
  CHECK(err / floor > 1.0 / 1.5);
  CHECK(oracle_err <= err * 1.0001);  // knowing A*, B* never hurts on average here
  CHECK(oracle_err / floor < 1.5);
  CHECK(oracle_err / floor > 1.0 / 1.5);
}

TEST_CASE("the objective never increases for the exact variants with lambda = 0") {
  const auto pb = generate_regression<double>(small_problem(6, 0.3));
  for (AStepSolver a : {AStepSolver::Exact, AStepSolver::Cg}) {
    for (InitKind init : {InitKind::Spectral, InitKind::Random}) {
      CAPTURE(to_string(a));
      CAPTURE(to_string(init));
      SolverOptions o;
      o.rank = 3;
      o.a_step = a;
      o.init = init;
      o.seed = colora_test::seed();
      o.tolerance = 0;
      o.max_iterations = 30;
      Solver<double> s(o);
      s.compute(pb);
      const auto& h = s.history();
      REQUIRE(h.size() > 5);
      for (size_t t = 1; t < h.size(); ++t) CHECK(h[t].objective <= h[t - 1].objective * (1 + 1e-12));
    }
  }
}

TEST_CASE_TEMPLATE("results are bitwise identical with 1 and 2 threads", Scalar, COLORA_TEST_SCALARS) {
  GeneratorOptions g = small_problem(7, 0.1);
  g.samples = {25, 30, 35};
  g.tasks = 3;
  g.samples.assign(30, 0);
  for (Index i = 0; i < 30; ++i) g.samples[size_t(i)] = 20 + i;
  g.tasks = 30;
  const auto pb = generate_regression<Scalar>(g);
  for (AStepSolver a : {AStepSolver::Exact, AStepSolver::Cg, AStepSolver::Gd}) {
    SolverOptions o;
    o.rank = 3;
    o.a_step = a;
    o.max_iterations = 15;
    o.num_threads = 1;
    Solver<Scalar> s1(o);
    s1.compute(pb);
    o.num_threads = 2;
    Solver<Scalar> s2(o);
    s2.compute(pb);
    CAPTURE(to_string(a));
    CHECK(s1.A() == s2.A());
    CHECK(s1.B() == s2.B());
    for (Index i = 0; i < pb.num_tasks(); ++i) CHECK(s1.core(i) == s2.core(i));
    REQUIRE(s1.history().size() == s2.history().size());
    for (size_t t = 0; t < s1.history().size(); ++t) CHECK(s1.history()[t].objective == s2.history()[t].objective);
  }
}

TEST_CASE("q = 1 (scalar output, the FedRep model) recovers the shared A") {
  GeneratorOptions g;
  g.tasks = 200;
  g.p = 20;
  g.q = 1;
  g.rank = 1;
  g.samples = {10};
  g.sigma = 0;
  g.seed = colora_test::seed() + 8;
  const auto pb = generate_regression<double>(g);
  SolverOptions o;
  o.rank = 1;
  Solver<double> s(o);
  s.compute(pb);
  check_recovered(s, *pb.truth, 1e-8);
}

TEST_CASE_TEMPLATE("q < r: the personal-head truth (FedRep's model) is planted and recovered", Scalar,
                   COLORA_TEST_SCALARS) {
  for (const auto& [q, r] : {std::pair<Index, Index>{1, 2}, std::pair<Index, Index>{2, 3}}) {
    CAPTURE(q);
    CAPTURE(r);
    GeneratorOptions g;
    g.tasks = 80;
    g.p = 12;
    g.q = q;
    g.rank = r;
    g.samples = {8};
    g.test_samples = 0;
    g.sigma = 0;
    g.kappa = 3.0;
    g.seed = colora_test::seed() + 21;
    const auto pb = generate_regression<Scalar>(g);
    const auto& t = *pb.truth;
    // B* = [I_q 0]; S_i* = [H_i*; 0] with H_i*'s singular values 1 .. 1/kappa.
    CHECK(t.B_shared == Matrix<Scalar>(Matrix<Scalar>::Identity(q, r)));
    for (Index i = 0; i < g.tasks; ++i) {
      const Matrix<Scalar>& S = t.S[size_t(i)];
      CHECK(S.bottomRows(r - q).norm() == Scalar(0));
      Eigen::JacobiSVD<Matrix<double>> svd(S.topRows(q).template cast<double>());
      CHECK(svd.singularValues()(0) == doctest::Approx(1.0).epsilon(Tol<Scalar>::tight));
      CHECK(svd.singularValues()(q - 1) == doctest::Approx(q == 1 ? 1.0 : 1.0 / 3.0).epsilon(Tol<Scalar>::tight));
    }
    SolverOptions o;
    o.rank = r;
    o.max_iterations = 200;
    Solver<Scalar> s(o);
    s.compute(pb);
    CHECK(s.info() == Status::Success);
    CHECK(s.B() == Matrix<Scalar>(Matrix<Scalar>::Identity(q, r)));  // fixed gauge, no B-step
    const RecoveryMetrics m = recovery_metrics(t, s.A(), s.B(), s.cores());
    CHECK(m.dist_a < Tol<Scalar>::recovery);
    CHECK(m.dist_b == 0.0);  // a wide B spans R^q
    CHECK(m.max_rel_err < Tol<Scalar>::recovery);
    // Only full cores reach every head.
    o.core = CoreKind::Diagonal;
    Solver<Scalar> d(o);
    CHECK_THROWS_WITH_AS(d.compute(pb), doctest::Contains("output width q"), std::invalid_argument);
  }
  // The head's oracle floor replaces the core's in the expected test MSE.
  CHECK(oracle_core_test_mse(0.1, 1, 2, 10) == doctest::Approx(0.01 + 0.01 * 2.0 / 7.0));
  CHECK(oracle_core_test_mse(0.1, 4, 2, 10) == doctest::Approx(0.01 + 0.01 * 4.0 / 7.0 / 4.0));
}

TEST_CASE("tasks with n_i < r are handled (minimum-norm core or ridge) with a warning, not a crash") {
  GeneratorOptions g = small_problem(9, 0.05);
  g.samples.assign(30, 30);
  g.samples[4] = 2;  // fewer samples than r = 3
  const auto pb = generate_regression<double>(g);
  SolverOptions o;
  o.rank = 3;
  Solver<double> s(o);
  s.compute(pb);
  CHECK(s.info() != Status::NumericalIssue);
  REQUIRE(s.warnings().size() == 1);
  CHECK(s.warnings()[0].find("task 4") != std::string::npos);
  CHECK(s.core(4).allFinite());
  o.lambda = 1e-3;
  Solver<double> sr(o);
  sr.compute(pb);
  CHECK(sr.warnings().empty());
  CHECK(sr.core(4).allFinite());
  CHECK(recovery_metrics(*pb.truth, sr.A(), sr.B(), sr.cores()).median_rel_err < 0.1);
}

TEST_CASE("adapt_core fits a new task's core from a few samples given the shared factors") {
  GeneratorOptions g = small_problem(10);
  g.tasks = 31;
  const auto all = generate_regression<double>(g);
  RegressionProblem<double> train = all;
  train.tasks.pop_back();
  auto& truth = *train.truth;
  truth.A.pop_back();
  truth.B.pop_back();
  truth.S.pop_back();
  SolverOptions o;
  o.rank = 3;
  Solver<double> s(o);
  s.compute(train);
  const auto& fresh = all.tasks.back();
  // Noiseless: r = 3 samples pin the core down exactly.
  const Matrix<double> X = fresh.X.topRows(3), Y = fresh.Y.topRows(3);
  const Matrix<double> S = adapt_core<double>(s.A(), s.B(), Matrix<double>(), X, Y);
  const Matrix<double> W = s.B() * S * s.A();
  CHECK((W - all.truth->delta(30)).norm() < 1e-8 * W.norm());
  CHECK_THROWS_WITH_AS(adapt_core<double>(s.A(), s.B(), Matrix<double>(), X.leftCols(5), Y),
                       doctest::Contains("X has 5 columns"), std::invalid_argument);
}

TEST_CASE("a callback can stop the solver early; the partial result stays readable") {
  const auto pb = generate_regression<double>(small_problem(11));
  SolverOptions o;
  o.rank = 3;
  int calls = 0;
  o.callback = [&](const IterationRecord& rec) {
    ++calls;
    return rec.iteration < 2;
  };
  Solver<double> s(o);
  s.compute(pb);
  CHECK(s.stop_reason() == StopReason::CallbackRequested);
  CHECK(s.info() == Status::Success);
  CHECK(s.iterations() == 2);
  CHECK(calls == 3);
  CHECK(s.A().rows() == 3);
}

TEST_CASE("bad input is a std::invalid_argument naming the task and the field") {
  const auto good = generate_regression<double>(small_problem(12));
  SolverOptions o;
  o.rank = 3;
  Solver<double> s(o);
  CHECK_THROWS_AS(s.predict(0, good.tasks[0].X), std::invalid_argument);  // not computed yet

  auto pb = good;
  pb.tasks[2].Y.conservativeResize(pb.tasks[2].Y.rows() - 1, Eigen::NoChange);
  CHECK_THROWS_WITH_AS(s.compute(pb), doctest::Contains("task 2: X has 30 rows but Y has 29 rows"),
                       std::invalid_argument);
  pb = good;
  pb.tasks[3].X.conservativeResize(Eigen::NoChange, 19);
  CHECK_THROWS_WITH_AS(s.compute(pb), doctest::Contains("task 3: X has 19 columns"), std::invalid_argument);
  pb = good;
  pb.tasks[1].Y.conservativeResize(Eigen::NoChange, 14);
  CHECK_THROWS_WITH_AS(s.compute(pb), doctest::Contains("task 1: Y has 14 columns"), std::invalid_argument);
  pb = good;
  pb.tasks[5].X(0, 0) = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH_AS(s.compute(pb), doctest::Contains("task 5: X has a non-finite entry"), std::invalid_argument);
  pb = good;
  pb.tasks[6].Y(1, 1) = std::numeric_limits<double>::infinity();
  CHECK_THROWS_WITH_AS(s.compute(pb), doctest::Contains("task 6: Y has a non-finite entry"), std::invalid_argument);
  pb = good;
  pb.tasks[7].X.resize(0, 20);
  pb.tasks[7].Y.resize(0, 15);
  CHECK_THROWS_WITH_AS(s.compute(pb), doctest::Contains("task 7: has 0 samples"), std::invalid_argument);
  pb = good;
  pb.tasks.clear();
  CHECK_THROWS_WITH_AS(s.compute(pb), doctest::Contains("k = 0 tasks"), std::invalid_argument);

  SolverOptions bad = o;
  bad.rank = 0;
  CHECK_THROWS_WITH_AS(Solver<double>(bad).compute(good), doctest::Contains("rank must be >= 1"),
                       std::invalid_argument);
  bad.rank = 21;  // r > q = 15 is the personal-head regime; r > p = 20 is an error
  CHECK_THROWS_WITH_AS(Solver<double>(bad).compute(good), doctest::Contains("exceeds the input width p = 20"),
                       std::invalid_argument);
  bad = o;
  bad.lambda = -1;
  CHECK_THROWS_WITH_AS(Solver<double>(bad).compute(good), doctest::Contains("lambda"), std::invalid_argument);

  GeneratorOptions g = small_problem(0);
  g.sigma = -0.1;
  CHECK_THROWS_WITH_AS(generate_regression<double>(g), doctest::Contains("sigma must be finite and >= 0, got -0.1"),
                       std::invalid_argument);
  g = small_problem(0);
  g.kappa = 0.5;
  CHECK_THROWS_WITH_AS(generate_regression<double>(g), doctest::Contains("kappa must be >= 1, got 0.5"),
                       std::invalid_argument);
  g = small_problem(0);
  g.samples = {10, 20};
  CHECK_THROWS_WITH_AS(generate_regression<double>(g), doctest::Contains("samples must have 1 or tasks"),
                       std::invalid_argument);
  g = small_problem(0);
  g.theta_b = 0.5;
  g.q = 5;
  CHECK_THROWS_WITH_AS(generate_regression<double>(g), doctest::Contains("theta_b > 0 needs q >= 2 rank"),
                       std::invalid_argument);
  g = small_problem(0);
  g.tasks = 0;
  CHECK_THROWS_WITH_AS(generate_regression<double>(g), doctest::Contains("tasks must be positive"),
                       std::invalid_argument);
}

TEST_CASE("oracle floors: closed forms and their Monte-Carlo agreement for the core oracle") {
  CHECK(oracle_core_floor(0.1, 3, 10) == doctest::Approx(0.01 * 9 / 6.0));
  CHECK(oracle_head_floor(0.1, 20, 3, 10) == doctest::Approx(0.01 * 60 / 6.0));
  CHECK(oracle_free_floor(0.1, 20, 30, 40) == doctest::Approx(0.01 * 600 / 9.0));
  CHECK(std::isinf(oracle_core_floor(0.1, 3, 4)));
  // The oracle's empirical mean squared error over many tasks against the
  // inverse-Wishart mean, within a 99% normal interval of the Monte-Carlo mean.
  GeneratorOptions g;
  g.tasks = 2000;
  g.p = 12;
  g.q = 10;
  g.rank = 2;
  g.samples = {8};
  g.test_samples = 0;
  g.sigma = 0.5;
  g.seed = colora_test::seed() + 13;
  const auto pb = generate_regression<double>(g);
  const auto oracle = fit_oracle(pb);
  const auto m = recovery_metrics(*pb.truth, oracle.A, oracle.B, oracle.cores);
  double mean = 0, var = 0;
  for (double e : m.sq_err) mean += e;
  mean /= double(m.sq_err.size());
  for (double e : m.sq_err) var += (e - mean) * (e - mean);
  var /= double(m.sq_err.size() - 1);
  const double half_width = 2.576 * std::sqrt(var / double(m.sq_err.size()));
  const double floor = oracle_core_floor(g.sigma, g.rank, g.samples[0]);
  INFO("Monte-Carlo " << mean << " +- " << half_width << ", formula " << floor);
  CHECK(std::abs(mean - floor) < half_width);
}
