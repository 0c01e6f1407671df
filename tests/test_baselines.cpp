// The baselines (include/colora/baselines, docs/baselines.md): each recovers
// the planted truth of its own model noiselessly, the iterative ones behave
// as documented (monotone objective, linear convergence, participation),
// results do not depend on the thread count, bad input names the field;
// select_rank (cross-validation of the rank) picks the planted rank.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "test_support.hpp"

using colora::Index;
using colora::Matrix;
using colora_test::Tol;

namespace {

colora::GeneratorOptions small_options(Index k, Index p, Index q, Index r, Index n, std::uint64_t seed) {
  colora::GeneratorOptions g;
  g.tasks = k;
  g.p = p;
  g.q = q;
  g.rank = r;
  g.samples = {n};
  g.test_samples = 20;
  g.sigma = 0.0;
  g.seed = seed;
  g.num_threads = 1;
  return g;
}

colora::BaselineOptions base_options(Index r, int iters) {
  colora::BaselineOptions o;
  o.rank = r;
  o.max_iterations = iters;
  o.tolerance = 0.0;
  o.num_threads = 1;
  return o;
}

template <class Problem>
colora::RecoveryMetrics metrics_of(const Problem& pb, const colora::BaselineResult<typename Problem::Scalar>& res) {
  return colora::estimate_metrics(*pb.truth, res.estimate);
}

template <class Scalar>
bool objective_non_increasing(const std::vector<colora::IterationRecord>& h) {
  for (size_t t = 1; t < h.size(); ++t)
    if (h[t].objective > h[t - 1].objective * (1 + 64 * double(Eigen::NumTraits<Scalar>::epsilon())) + 1e-30)
      return false;
  return true;
}

}  // namespace

TEST_CASE_TEMPLATE("global recovers the common model when all cores are equal (tau = 0)", Scalar, COLORA_TEST_SCALARS) {
  auto g = small_options(6, 8, 6, 2, 10, colora_test::rng_for("global tau0").next_u64());
  g.tau = 0.0;
  const auto pb = colora::generate_regression<Scalar>(g);
  const auto res = colora::fit_global(pb, base_options(2, 1));
  CHECK(res.status == colora::Status::Success);
  CHECK(res.stop_reason == colora::StopReason::ClosedForm);
  REQUIRE(res.history.size() == 1);
  const auto m = metrics_of(pb, res);
  CHECK(m.max_rel_err < Tol<Scalar>::recovery);
  CHECK(std::isnan(m.dist_a));  // global has no shared A
  CHECK(res.estimate.shared.size() == 1);
  CHECK(res.estimate.shared[0].name == "W");
  // (M2) as well.
  auto gs = small_options(4, 4, 3, 1, 10, g.seed + 1);
  gs.tau = 0.0;
  const auto sp = colora::generate_sensing<Scalar>(gs);
  const auto rs = colora::fit_global(sp, base_options(1, 1));
  CHECK(metrics_of(sp, rs).max_rel_err < Tol<Scalar>::recovery);
}

TEST_CASE_TEMPLATE("local recovers every task with n_i > p; minimum-norm below", Scalar, COLORA_TEST_SCALARS) {
  const auto g = small_options(3, 6, 4, 2, 12, colora_test::rng_for("local").next_u64());
  const auto pb = colora::generate_regression<Scalar>(g);
  const auto res = colora::fit_local(pb, base_options(2, 1));
  CHECK(res.status == colora::Status::Success);
  CHECK(metrics_of(pb, res).max_rel_err < Tol<Scalar>::recovery);
  CHECK(res.estimate.personal.at(0).name == "W");
  // (M2) with m_i > q p.
  const auto gs = small_options(2, 3, 3, 1, 15, g.seed + 1);
  const auto sp = colora::generate_sensing<Scalar>(gs);
  CHECK(metrics_of(sp, colora::fit_local(sp, base_options(1, 1))).max_rel_err < Tol<Scalar>::recovery);
  // n_i < p: the minimum-norm solution interpolates the data and lies in the row space of X_i.
  const auto gu = small_options(2, 10, 3, 1, 4, g.seed + 2);
  const auto pu = colora::generate_regression<Scalar>(gu);
  const auto ru = colora::fit_local(pu, base_options(1, 1));
  CHECK(!ru.warnings.empty());
  for (Index i = 0; i < 2; ++i) {
    const auto& t = pu.tasks[size_t(i)];
    const Matrix<Scalar> W = ru.estimate.weight(i);
    CHECK(double((t.X * W.transpose() - t.Y).norm()) < Tol<Scalar>::recovery * (1 + double(t.Y.norm())) * 10);
    // W^T = X^T alpha: the part orthogonal to the row space of X is zero.
    const Matrix<Scalar> Qx = colora::thin_qr(Matrix<Scalar>(t.X.transpose())).Q;
    const Matrix<Scalar> Wt = W.transpose();
    CHECK(double((Wt - Qx * (Qx.transpose() * Wt)).norm()) < Tol<Scalar>::recovery * 10 * (1 + double(W.norm())));
  }
}

TEST_CASE_TEMPLATE("global-lora recovers the common low-rank model (tau = 0)", Scalar, COLORA_TEST_SCALARS) {
  auto g = small_options(10, 12, 10, 2, 8, colora_test::rng_for("global-lora").next_u64());
  g.tau = 0.0;
  const auto pb = colora::generate_regression<Scalar>(g);
  const auto res = colora::fit_global_lora(pb, base_options(2, 100));
  CHECK(res.status != colora::Status::NumericalIssue);
  const auto m = metrics_of(pb, res);
  CHECK(m.max_rel_err < Tol<Scalar>::recovery);
  CHECK(m.dist_a < Tol<Scalar>::recovery);
  CHECK(m.dist_b < Tol<Scalar>::recovery);
  REQUIRE(res.history.size() >= 2);
  CHECK(res.history.back().mean_rel_err < Tol<Scalar>::recovery);  // records are evaluated on the original tasks
}

TEST_CASE_TEMPLATE("local-lora recovers every task's rank-r model with enough samples", Scalar, COLORA_TEST_SCALARS) {
  const auto g = small_options(3, 10, 8, 2, 30, colora_test::rng_for("local-lora").next_u64());
  const auto pb = colora::generate_regression<Scalar>(g);
  const auto res = colora::fit_local_lora(pb, base_options(2, 100));
  CHECK(res.status != colora::Status::NumericalIssue);
  CHECK(metrics_of(pb, res).max_rel_err < Tol<Scalar>::recovery);
  REQUIRE(res.estimate.personal.size() == 3);  // A_i, B_i, S_i
  REQUIRE(!res.history.empty());
  CHECK(res.history.back().max_rel_err < Tol<Scalar>::recovery);
  CHECK(std::isnan(res.history.back().dist_a));
}

TEST_CASE_TEMPLATE("fedrep (AltMin) recovers the shared A when only B varies (theta_B > 0, theta_A = 0)", Scalar,
                   COLORA_TEST_SCALARS) {
  auto g = small_options(30, 16, 8, 2, 12, colora_test::rng_for("fedrep altmin").next_u64());
  g.theta_b = 0.6;
  const auto pb = colora::generate_regression<Scalar>(g);
  auto o = base_options(2, 200);
  o.a_step = colora::AStepSolver::Exact;
  const auto res = colora::fit_fedrep(pb, o);
  CHECK(res.status != colora::Status::NumericalIssue);
  const auto m = metrics_of(pb, res);
  CHECK(m.dist_a < Tol<Scalar>::recovery);
  CHECK(m.max_rel_err < Tol<Scalar>::recovery);
  CHECK(std::isnan(m.dist_b));
  CHECK(objective_non_increasing<Scalar>(res.history));
  CHECK(res.estimate.personal.at(0).name == "H");
  // cg A-step reaches the same point.
  o.a_step = colora::AStepSolver::Cg;
  CHECK(metrics_of(pb, colora::fit_fedrep(pb, o)).max_rel_err < Tol<Scalar>::recovery);
}

TEST_CASE("fedrep-gd (AltGD) converges linearly on q = 1 (FedRep's setting)") {
  using Scalar = double;
  const Index k = 40, p = 12, r = 3, n = 10;
  colora::Rng rng = colora_test::rng_for("fedrep altgd q1");
  colora::RegressionProblem<Scalar> pb;
  colora::GroundTruth<Scalar> truth;
  truth.A_shared = colora::haar_orthonormal<Scalar>(rng, p, r).transpose();
  truth.B_shared = Matrix<Scalar>::Ones(1, r);
  for (Index i = 0; i < k; ++i) {
    const Matrix<Scalar> h = rng.normal_matrix<Scalar>(1, r);
    colora::RegressionTask<Scalar> t;
    t.X = rng.normal_matrix<Scalar>(n, p);
    t.Y = t.X * (h * truth.A_shared).transpose();
    pb.tasks.push_back(t);
    truth.A.push_back(truth.A_shared);
    truth.B.push_back(h);
    truth.S.push_back(Matrix<Scalar>::Identity(r, r));
  }
  pb.truth = truth;
  auto o = base_options(r, 300);
  const auto res = colora::fit_fedrep(pb, o, colora::FedRepVariant::AltGD);
  REQUIRE(res.history.size() > 30);
  const auto m = metrics_of(pb, res);
  CHECK(m.dist_a < 1e-8);
  CHECK(m.max_rel_err < 1e-8);
  // Linear: every 10 rounds shrink dist_a by a fixed factor while above rounding level.
  int blocks = 0;
  for (size_t t = 10; t + 10 < res.history.size(); t += 10) {
    if (res.history[t + 10].dist_a < 1e-11) break;
    CHECK(res.history[t + 10].dist_a < 0.5 * res.history[t].dist_a);
    ++blocks;
  }
  CHECK(blocks >= 2);
  // A rank above q is allowed for fedrep (a free head), above p is not.
  o.rank = p + 1;
  CHECK_THROWS_WITH_AS(colora::fit_fedrep(pb, o), doctest::Contains("rank"), std::invalid_argument);
}

TEST_CASE_TEMPLATE("fedrep with partial participation still converges", Scalar, COLORA_TEST_SCALARS) {
  auto g = small_options(30, 16, 8, 2, 12, colora_test::rng_for("fedrep participation").next_u64());
  g.theta_b = 0.6;
  const auto pb = colora::generate_regression<Scalar>(g);
  auto o = base_options(2, 300);
  o.participation = 0.4;
  const auto res = colora::fit_fedrep(pb, o);
  CHECK(res.status != colora::Status::NumericalIssue);
  const auto m = metrics_of(pb, res);
  CHECK(m.dist_a < Tol<Scalar>::recovery);
  CHECK(m.max_rel_err < Tol<Scalar>::recovery);
}

TEST_CASE_TEMPLATE("q < r (FedRep's scalar outputs): colora and fedrep coincide and recover the planted heads", Scalar,
                   COLORA_TEST_SCALARS) {
  auto g = small_options(60, 12, 1, 2, 6, colora_test::rng_for("fedrep wide").next_u64());
  const auto pb = colora::generate_regression<Scalar>(g);
  auto o = base_options(2, 300);
  const auto col = colora::fit_baseline("colora", pb, o);
  const auto rep = colora::fit_baseline("fedrep", pb, o);
  const auto mc = metrics_of(pb, col), mr = metrics_of(pb, rep);
  CHECK(mc.dist_a < Tol<Scalar>::recovery);
  CHECK(mr.dist_a < Tol<Scalar>::recovery);
  CHECK(mc.max_rel_err < Tol<Scalar>::recovery);
  CHECK(mr.max_rel_err < Tol<Scalar>::recovery);
  // The oracle and mom accept r > q; the methods whose factors need r <= q say so.
  CHECK(metrics_of(pb, colora::fit_baseline("oracle", pb, o)).max_rel_err < Tol<Scalar>::recovery);
  CHECK(colora::fit_baseline("mom", pb, o).status != colora::Status::NumericalIssue);
  // The registry's allows_wide_rank says which: every method it excludes refuses r > q.
  int refused = 0;
  for (const auto& t : colora::baseline_traits())
    if (!t.allows_wide_rank) {
      ++refused;
      CHECK_THROWS_WITH_AS(colora::fit_baseline(t.name, pb, o), doctest::Contains("needs r <= q"),
                           std::invalid_argument);
    }
  CHECK(refused == 4);  // local-lora, global-lora, ffa, gd-gd
  // With noise both reach the head oracle's floor sigma^2 q r / (n - r - 1) on average.
  g.sigma = 0.1;
  g.samples = {12};
  g.tasks = 400;
  const auto noisy = colora::generate_regression<Scalar>(g);
  const auto mn = metrics_of(noisy, colora::fit_baseline("colora", noisy, o));
  const double floor = colora::oracle_head_floor(0.1, 1, 2, 12);
  CHECK(mn.mean_sq_err > floor / 1.5);
  CHECK(mn.mean_sq_err < floor * 1.5);
}

TEST_CASE("fedrep with partial participation runs its rounds (no early stop on an unchanged objective)") {
  // One participant per round out of 10: a round can repeat the previous
  // task and leave the objective unchanged; that is not convergence.
  auto g = small_options(10, 10, 1, 2, 5, colora_test::rng_for("fedrep partial rounds").next_u64());
  const auto pb = colora::generate_regression<double>(g);
  auto o = base_options(2, 40);
  o.participation = 0.1;
  o.tolerance = 0.5;  // would stop after a couple of rounds with full participation
  const auto res = colora::fit_fedrep(pb, o, colora::FedRepVariant::AltGD);
  CHECK(res.iterations == 40);
  CHECK(res.stop_reason == colora::StopReason::MaxIterations);
}

TEST_CASE("fedrep with participation: 1 and 2 threads give bitwise identical results") {
  auto g = small_options(24, 14, 8, 2, 12, colora_test::rng_for("fedrep threads").next_u64());
  g.theta_b = 0.5;
  g.sigma = 0.05;
  const auto pb = colora::generate_regression<double>(g);
  auto o = base_options(2, 15);
  o.participation = 0.5;
  o.num_threads = 1;
  const auto r1 = colora::fit_fedrep(pb, o);
  o.num_threads = 2;
  const auto r2 = colora::fit_fedrep(pb, o);
  CHECK(r1.estimate.A == r2.estimate.A);
  for (Index i = 0; i < pb.num_tasks(); ++i) CHECK(r1.estimate.U[size_t(i)] == r2.estimate.U[size_t(i)]);
  REQUIRE(r1.history.size() == r2.history.size());
  for (size_t t = 0; t < r1.history.size(); ++t) CHECK(r1.history[t].objective == r2.history[t].objective);
  // Participants: ceil(0.5 k), deterministic per round, different across rounds.
  const auto a = colora::detail::participants(24, 0.5, 7, 1), b = colora::detail::participants(24, 0.5, 7, 2);
  CHECK(std::count(a.begin(), a.end(), 1) == 12);
  CHECK(a == colora::detail::participants(24, 0.5, 7, 1));
  CHECK(a != b);
  const auto c = colora::detail::participants(10, 0.31, 7, 1);
  CHECK(std::count(c.begin(), c.end(), 1) == 4);
}

TEST_CASE_TEMPLATE("ffa recovers B on its own model (A frozen at its seeded random draw)", Scalar,
                   COLORA_TEST_SCALARS) {
  const Index k = 5, p = 10, q = 7, r = 2, n = 6;
  const std::uint64_t seed = 99;
  colora::Rng rng = colora_test::rng_for("ffa");
  const Matrix<Scalar> A = colora::ffa_frozen_A<Scalar>(p, r, seed);
  const Matrix<Scalar> Bstar = rng.normal_matrix<Scalar>(q, r);
  const auto qr = colora::thin_qr(Bstar);
  colora::RegressionProblem<Scalar> pb;
  colora::GroundTruth<Scalar> truth;
  truth.A_shared = A;
  truth.B_shared = qr.Q;
  for (Index i = 0; i < k; ++i) {
    colora::RegressionTask<Scalar> t;
    t.X = rng.normal_matrix<Scalar>(n, p);
    t.Y = t.X * (Bstar * A).transpose();
    pb.tasks.push_back(t);
    truth.A.push_back(A);
    truth.B.push_back(qr.Q);
    truth.S.push_back(qr.R);
  }
  pb.truth = truth;
  auto o = base_options(r, 1);
  o.seed = seed;
  const auto res = colora::fit_ffa(pb, o);
  CHECK(res.status == colora::Status::Success);
  const auto m = metrics_of(pb, res);
  CHECK(m.max_rel_err < Tol<Scalar>::recovery);
  CHECK(m.dist_b < Tol<Scalar>::recovery);
  CHECK(double((res.estimate.B - Bstar).norm()) < Tol<Scalar>::recovery * double(Bstar.norm()));
  CHECK(res.estimate.trainable_parameters == q * r);
  // A different seed freezes a different A and cannot fit this model.
  o.seed = seed + 1;
  CHECK(metrics_of(pb, colora::fit_ffa(pb, o)).max_rel_err > 1e-2);
}

TEST_CASE("mom: the one-shot spectral error decays as the total sample count grows") {
  auto g = small_options(20, 16, 16, 2, 10, colora_test::rng_for("mom").next_u64());
  g.sigma = 0.1;
  const auto o = base_options(2, 0);
  const auto small = colora::generate_regression<double>(g);
  g.samples = {160};
  const auto large = colora::generate_regression<double>(g);
  const auto rs = colora::fit_mom(small, o), rl = colora::fit_mom(large, o);
  CHECK(rs.stop_reason == colora::StopReason::ClosedForm);
  const auto ms = metrics_of(small, rs), ml = metrics_of(large, rl);
  INFO("dist_a " << ms.dist_a << " -> " << ml.dist_a << ", err " << ms.mean_rel_err << " -> " << ml.mean_rel_err);
  CHECK(ml.dist_a < 0.5 * ms.dist_a);
  CHECK(ml.mean_rel_err < 0.5 * ms.mean_rel_err);
}

TEST_CASE_TEMPLATE("gd-gd decreases the objective monotonically and gets close to the truth", Scalar,
                   COLORA_TEST_SCALARS) {
  const auto g = small_options(20, 12, 10, 2, 20, colora_test::rng_for("gd-gd").next_u64());
  const auto pb = colora::generate_regression<Scalar>(g);
  const auto res = colora::fit_gd_gd(pb, base_options(2, 400));
  CHECK(res.status != colora::Status::NumericalIssue);
  CHECK(objective_non_increasing<Scalar>(res.history));
  const auto m0 = res.history.front().mean_rel_err, m1 = metrics_of(pb, res).mean_rel_err;
  INFO("gd-gd error " << m0 << " -> " << m1);
  CHECK(m1 < 1e-2 * m0);
  CHECK(m1 < (std::is_same<Scalar, double>::value ? 1e-4 : 1e-2));
}

TEST_CASE("every method runs on (M2) sensing and on (M1) through fit_baseline, with uniform diagnostics") {
  auto g = small_options(6, 5, 4, 1, 40, colora_test::rng_for("all methods").next_u64());
  g.sigma = 0.01;
  const auto sp = colora::generate_sensing<double>(g);
  const auto rp = colora::generate_regression<double>(g);
  auto o = base_options(1, 20);
  for (const auto& name : colora::baseline_names()) {
    CAPTURE(name);
    const auto rs = colora::fit_baseline(name, sp, o);
    CHECK(rs.method == name);
    CHECK(rs.status != colora::Status::NumericalIssue);
    CHECK(rs.status != colora::Status::NotComputed);
    REQUIRE(!rs.history.empty());
    CHECK(std::isfinite(rs.history.back().test_mse));
    CHECK(std::isfinite(metrics_of(sp, rs).mean_rel_err));
    const auto rr = colora::fit_baseline(name, rp, o);
    CHECK(rr.status != colora::Status::NumericalIssue);
    CHECK(std::isfinite(colora::estimate_test_mse(rp, rr.estimate)));
    CHECK(rr.estimate.trainable_parameters > 0);
  }
  // The generic metrics agree with the solver's own for CoLoRA.
  const auto f = colora::fit(rp, static_cast<const colora::SolverOptions&>(o));
  const auto a = colora::recovery_metrics(*rp.truth, f.A, f.B, f.cores);
  const auto b = metrics_of(rp, colora::fit_baseline("colora", rp, o));
  CHECK(a.mean_rel_err == doctest::Approx(b.mean_rel_err).epsilon(1e-12));
  CHECK(a.dist_a == doctest::Approx(b.dist_a).epsilon(1e-12));
  CHECK_THROWS_WITH_AS(colora::fit_baseline("fedavg", rp, o), doctest::Contains("fedavg"), std::invalid_argument);
}

TEST_CASE("bad input names the field") {
  const auto g = small_options(4, 5, 4, 1, 10, colora_test::rng_for("bad input").next_u64());
  const auto pb = colora::generate_regression<double>(g);
  auto o = base_options(5, 5);  // rank 5 > q = 4: only the methods with a q x r head/core accept it
  for (const char* name : {"local-lora", "global-lora", "ffa", "gd-gd"}) {
    CAPTURE(name);
    CHECK_THROWS_WITH_AS(colora::fit_baseline(name, pb, o), doctest::Contains("rank"), std::invalid_argument);
  }
  o.rank = 6;  // > p = 5: nobody
  for (const char* name : {"colora", "fedrep", "mom", "local-lora", "global-lora", "ffa", "gd-gd"}) {
    CAPTURE(name);
    CHECK_THROWS_WITH_AS(colora::fit_baseline(name, pb, o), doctest::Contains("rank"), std::invalid_argument);
  }
  o.rank = 1;
  for (double f : {0.0, -0.5, 1.5}) {
    o.participation = f;
    CHECK_THROWS_WITH_AS(colora::fit_fedrep(pb, o), doctest::Contains("participation"), std::invalid_argument);
  }
  o.participation = 1.0;
  o.gd_gd_step = 0.0;
  CHECK_THROWS_WITH_AS(colora::fit_gd_gd(pb, o), doctest::Contains("gd_gd_step"), std::invalid_argument);
  o.gd_gd_step = 0.5;
  o.lambda = -1;
  CHECK_THROWS_WITH_AS(colora::fit_local(pb, o), doctest::Contains("lambda"), std::invalid_argument);
}

TEST_CASE("fedrep's round: the representation step uses the participants' heads refit on the current representation") {
  // Round 2 by hand from round 1's state: with one participant per round,
  // the participant of round 2 refits its head on A_1 before the A-step (its
  // last head was fitted to A_0). The old order (stale heads) gives another A_2.
  auto g = small_options(10, 8, 3, 2, 12, colora_test::rng_for("fedrep round order").next_u64());
  g.sigma = 0.05;
  const auto pb = colora::generate_regression<double>(g);
  auto o = base_options(2, 1);
  o.participation = 0.1;
  o.a_step = colora::AStepSolver::Gd;
  // A participation seed whose rounds 1 and 2 draw different tasks.
  while (colora::detail::participants(pb.num_tasks(), o.participation, o.seed, 1) ==
         colora::detail::participants(pb.num_tasks(), o.participation, o.seed, 2))
    ++o.seed;
  const auto r1 = colora::fit_fedrep(pb, o, colora::FedRepVariant::AltGD);
  o.max_iterations = 2;
  const auto r2 = colora::fit_fedrep(pb, o, colora::FedRepVariant::AltGD);
  const auto on = colora::detail::participants(pb.num_tasks(), o.participation, o.seed, 2);
  std::vector<double> w_on(size_t(pb.num_tasks()), 0.0);
  for (Index i = 0; i < pb.num_tasks(); ++i) w_on[size_t(i)] = on[size_t(i)] ? 1.0 : 0.0;
  const colora::RegressionModel<double> model(pb, 1);
  const Matrix<double> I = Matrix<double>::Identity(3, 3);
  Matrix<double> A1 = r1.estimate.A;
  std::vector<Matrix<double>> H;  // fresh heads on A_1 (only the participant's enters the A-step)
  REQUIRE(colora::altmin::fit_cores(model, A1, I, std::vector<double>(size_t(pb.num_tasks()), 0.0),
                                    colora::CoreKind::Full, H));
  colora::altmin::AStepControl control;
  control.solver = colora::AStepSolver::Gd;
  Matrix<double> G = A1.transpose();
  REQUIRE(colora::altmin::a_step(model, I, H, w_on, control, G).ok);
  Matrix<double> A2;
  colora::altmin::regauge_a(G, colora::CoreKind::Full, A2, H);
  CHECK((A2 - r2.estimate.A).norm() < 1e-12);
}

namespace {

/// FedRep's linear simulation (Collins et al. 2021, the authors' code): d
/// inputs, rank-k representation B* (orthonormal), unit-norm heads, m
/// Gaussian samples per client, scalar outputs with noise sd 1e-3. Returns the
/// mean and sample sd over `seeds` runs of the representation distance
/// ||(I - P*) A_hat^T||_2 after `rounds` rounds of fedrep-gd at the given participation.
std::pair<double, double> fedrep_linear_simulation(Index clients, int rounds, double participation, int seeds,
                                                   std::uint64_t seed) {
  const Index d = 10, k = 2, m = 5;
  std::vector<double> dist;
  for (int s = 0; s < seeds; ++s) {
    colora::Rng rng = colora::Rng(seed, 0xFED).substream(std::uint64_t(s));
    const Matrix<double> Bstar = colora::haar_orthonormal<double>(rng, d, k);  // d x k
    colora::RegressionProblem<double> pb;
    for (Index i = 0; i < clients; ++i) {
      Matrix<double> w = rng.normal_matrix<double>(k, 1);
      w /= w.norm();
      const Matrix<double> X = rng.normal_matrix<double>(m, d);
      const Matrix<double> Y = X * Bstar * w + 1e-3 * rng.normal_matrix<double>(m, 1);
      pb.tasks.push_back({X, Y, {}, {}});
    }
    colora::BaselineOptions o;
    o.rank = k;
    o.max_iterations = rounds;
    o.participation = participation;
    o.num_threads = 1;
    o.seed = seed + std::uint64_t(s);
    const auto res = colora::fit_fedrep(pb, o, colora::FedRepVariant::AltGD);
    REQUIRE(res.status != colora::Status::NumericalIssue);
    dist.push_back(colora::row_space_distance(res.estimate.A, Matrix<double>(Bstar.transpose())).spectral);
  }
  double mean = 0, var = 0;
  for (double v : dist) mean += v / double(dist.size());
  for (double v : dist) var += (v - mean) * (v - mean) / double(dist.size() - 1);
  return {mean, std::sqrt(var)};
}

}  // namespace

TEST_CASE("fedrep-gd with 10% participation matches FedRep's linear simulation (fresh heads each round)") {
  // The authors' figures (10 seeds, d = 10, k = 2, m = 5, 200 rounds, 10%
  // participation): representation distance 5.8e-3 at 100 clients and 9.1e-3
  // at 1000. The representation step must use heads refit on the current
  // representation; with the heads of each client's previous round the
  // distance was 0.073 +- 0.067 at 100 clients.
  const std::uint64_t seed = colora_test::rng_for("fedrep linear simulation").next_u64();
  INFO("seed ", seed, " (COLORA_SEED overrides)");
  const auto n10 = fedrep_linear_simulation(10, 200, 0.1, 10, seed);
  const auto n100 = fedrep_linear_simulation(100, 200, 0.1, 10, seed);
  const auto n1000 = fedrep_linear_simulation(1000, 200, 0.1, 10, seed);
  MESSAGE("fedrep-gd representation distance (mean +- sd over 10 seeds): n = 10: ", n10.first, " +- ", n10.second,
          "; n = 100: ", n100.first, " +- ", n100.second, "; n = 1000: ", n1000.first, " +- ", n1000.second);
  CHECK(n100.first < 1.5 * 5.8e-3);
  CHECK(n1000.first < 1.5 * 9.1e-3);
  // With one participant per round the stale-head order did not learn the
  // representation (mean 0.91 +- 0.12 over 10 seeds, docs/baselines.md); fresh heads do.
  CHECK(n10.first < 0.5);
}

// --- choosing the rank (colora/baselines/rank_selection.hpp, docs/baselines.md) ---

namespace {

template <class Scalar>
colora::RegressionProblem<Scalar> rank_problem(colora::Index k, colora::Index n, double sigma, const std::string& name) {
  colora::GeneratorOptions g;
  g.tasks = k;
  g.p = 12;
  g.q = 10;
  g.rank = 3;
  g.samples = {n};
  g.test_samples = 0;
  g.sigma = sigma;
  g.seed = colora_test::rng_for(name).next_u64();
  return colora::generate_regression<Scalar>(g);
}

colora::BaselineOptions rank_fit_options() {
  colora::BaselineOptions o;
  o.max_iterations = 60;
  o.num_threads = 1;
  return o;
}

}  // namespace

TEST_CASE("select_rank: folds hold every training row out exactly once, single-sample tasks never") {
  auto pb = rank_problem<double>(5, 13, 0.1, "select_rank folds");
  pb.tasks[2].X = pb.tasks[2].X.topRows(1).eval();
  pb.tasks[2].Y = pb.tasks[2].Y.topRows(1).eval();
  const auto fold = colora::detail::assign_folds(pb, 4, 7);
  REQUIRE(fold.size() == 5);
  for (colora::Index i = 0; i < 5; ++i) {
    CAPTURE(i);
    std::vector<int> per_fold(4, 0);
    for (int f : fold[size_t(i)]) {
      if (i == 2) {
        CHECK(f == -1);
        continue;
      }
      REQUIRE(f >= 0);
      REQUIRE(f < 4);
      ++per_fold[size_t(f)];
    }
    if (i != 2) {  // 13 rows in 4 folds: 4, 3, 3, 3 in some order
      CHECK(*std::max_element(per_fold.begin(), per_fold.end()) == 4);
      CHECK(*std::min_element(per_fold.begin(), per_fold.end()) == 3);
    }
  }
  // Another seed deals another order; the same seed the same one.
  CHECK(colora::detail::assign_folds(pb, 4, 7) == fold);
  CHECK(colora::detail::assign_folds(pb, 4, 8) != fold);
}

TEST_CASE_TEMPLATE("select_rank: 5-fold CV with the one-SE rule picks the planted rank", Scalar, COLORA_TEST_SCALARS) {
  const auto pb = rank_problem<Scalar>(20, 20, 0.05, "select_rank planted");
  colora::RankSelectionOptions cv;
  cv.ranks = {1, 2, 3, 4, 5, 6};
  const colora::RankSelection sel = colora::select_rank("colora", pb, rank_fit_options(), cv);
  REQUIRE(sel.ranks.size() == 6);
  CHECK(sel.chosen_rank == 3);
  CHECK_FALSE(sel.at_grid_edge);
  // Below the planted rank the held-out error is far above the noise floor
  // (sigma^2 = 2.5e-3); at the planted rank it is near it.
  CHECK(sel.cv_mse[1] > 10 * sel.cv_mse[2]);
  CHECK(sel.cv_mse[2] < 2 * 0.05 * 0.05);
  for (size_t j = 0; j < 6; ++j) {
    CHECK(sel.failed_fits[j] == 0);
    CHECK(sel.cv_se[j] >= 0);
  }
  // The minimum-error rule can only pick a rank at or above the one-SE choice.
  cv.one_standard_error = false;
  CHECK(colora::select_rank("colora", pb, rank_fit_options(), cv).chosen_rank >= sel.chosen_rank);
}

TEST_CASE("select_rank: the same curve for 1 and 2 threads; FedRep's heads too") {
  const auto pb = rank_problem<double>(12, 16, 0.05, "select_rank threads");
  colora::RankSelectionOptions cv;
  cv.ranks = {2, 3, 4};
  cv.folds = 3;
  auto o = rank_fit_options();
  const auto one = colora::select_rank("colora", pb, o, cv);
  o.num_threads = 2;
  const auto two = colora::select_rank("colora", pb, o, cv);
  CHECK(one.cv_mse == two.cv_mse);
  CHECK(one.cv_se == two.cv_se);
  CHECK(one.chosen_rank == 3);
  CHECK(colora::select_rank("fedrep", pb, o, cv).chosen_rank == 3);
}

TEST_CASE("select_rank: bad options and methods without a rank are refused, naming the field") {
  const auto pb = rank_problem<double>(4, 10, 0.1, "select_rank errors");
  colora::RankSelectionOptions cv;
  cv.folds = 1;
  CHECK_THROWS_WITH_AS(colora::select_rank("colora", pb, rank_fit_options(), cv), doctest::Contains("folds"),
                       std::invalid_argument);
  cv.folds = 3;
  CHECK_THROWS_WITH_AS(colora::select_rank("local", pb, rank_fit_options(), cv), doctest::Contains("full-rank"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(colora::select_rank("nosuch", pb, rank_fit_options(), cv), doctest::Contains("nosuch"),
                       std::invalid_argument);
  cv.ranks = {2, 11};  // ffa needs r <= min(p, q) = 10
  CHECK_THROWS_WITH_AS(colora::select_rank("ffa", pb, rank_fit_options(), cv), doctest::Contains("11"),
                       std::invalid_argument);
  cv.ranks = {0};
  CHECK_THROWS_WITH_AS(colora::select_rank("colora", pb, rank_fit_options(), cv), doctest::Contains("ranks[0]"),
                       std::invalid_argument);
}
