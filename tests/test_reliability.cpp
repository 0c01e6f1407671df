// Reliability under faults and hostile input (docs/reliability.md):
// exceptions never cross a parallel region, numerical trouble is a status
// with a finite state (never NaN factors, never a silent Success), extreme
// magnitudes are solved exactly, and the colora program refuses what would
// exhaust memory and never writes factors it cannot stand behind.
#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "test_support.hpp"

using colora::Index;
using colora::Matrix;

// --- parallel regions -------------------------------------------------------

TEST_CASE("parallel_for rethrows the exception of the lowest failing index, for any thread count") {
  for (int threads : {1, 2, 0}) {
    CAPTURE(threads);
    std::atomic<int> ran{0};
    try {
      colora::detail::parallel_for(64, threads, [&](Index i) {
        ++ran;
        if (i == 41) throw std::runtime_error("task 41");
        if (i == 17) throw std::invalid_argument("task 17");
        if (i == 50) throw std::bad_alloc();
      });
      FAIL("no exception");
    } catch (const std::invalid_argument& e) {
      CHECK(std::string(e.what()) == "task 17");
    }
    CHECK(ran.load() >= 18);  // every index up to the first failure ran
  }
  // Reductions and per-task loops of the library go through the same path.
  CHECK_THROWS_AS(colora::detail::ordered_sum(100, 2, 0.0,
                                              [](Index i, double& acc) {
                                                if (i == 77) throw std::runtime_error("boom");
                                                acc += double(i);
                                              }),
                  std::runtime_error);
  CHECK(colora::detail::ordered_sum(100, 2, 0.0, [](Index i, double& acc) { acc += double(i); }) == 4950.0);
}

// --- the solver at the ends of the floating-point range ----------------------

namespace {

template <class S>
colora::RegressionProblem<S> noiseless_problem(std::uint64_t seed, Index tasks = 12) {
  colora::GeneratorOptions g;
  g.tasks = tasks;
  g.p = 10;
  g.q = 8;
  g.rank = 2;
  g.samples = {14};
  g.test_samples = 4;
  g.sigma = 0;
  g.seed = seed;
  return colora::generate_regression<S>(g);
}

/// max_i ||B S_i A - c delta_i*|| / ||c delta_i*||: recovery of the truth scaled by c.
template <class S>
double scaled_recovery_error(const colora::Solver<S>& s, const colora::GroundTruth<S>& truth, double c) {
  double worst = 0;
  for (Index i = 0; i < s.num_tasks(); ++i) {
    const Matrix<double> est = (s.B() * s.core(i) * s.A()).template cast<double>();
    const Matrix<double> ref = truth.delta(i).template cast<double>() * c;
    worst = std::max(worst, (est - ref).norm() / ref.norm());
  }
  return worst;
}

}  // namespace

TEST_CASE_TEMPLATE("data near overflow or underflow is rescaled exactly and recovered (no NaN, no silent zero)", S,
                   COLORA_TEST_SCALARS) {
  const int E = std::numeric_limits<S>::max_exponent;  // 1024 double, 128 float
  const auto seed = colora_test::rng_for("extreme magnitudes").next_u64();
  // (input scale, output scale) as powers of two: near overflow, near underflow, mixed.
  // (Every case keeps the answer W_i - W_0 = delta_i* 2^(ey - ex) itself representable.)
  const std::vector<std::pair<int, int>> cases = {{E * 9 / 10, E * 9 / 10},
                                                  {-E * 8 / 10, -E * 8 / 10},
                                                  {E / 2, E * 9 / 10},
                                                  {-E * 7 / 10, -E * 9 / 10}};
  for (const auto& c : cases) {
    CAPTURE(c.first);
    CAPTURE(c.second);
    auto pb = noiseless_problem<S>(seed);
    for (auto& t : pb.tasks) {
      t.X = colora::detail::times_pow2(t.X, c.first);
      t.Y = colora::detail::times_pow2(t.Y, c.second);
      t.X_test = colora::detail::times_pow2(t.X_test, c.first);
      t.Y_test = colora::detail::times_pow2(t.Y_test, c.second);
    }
    colora::SolverOptions o;
    o.rank = 2;
    o.max_iterations = 200;
    colora::Solver<S> s(o);
    s.compute(pb);
    CHECK(s.info() == colora::Status::Success);
    REQUIRE(s.A().allFinite());
    REQUIRE(s.B().allFinite());
    for (const auto& core : s.cores()) REQUIRE(core.allFinite());
    // W_i - W_0 = delta_i* 2^(ey - ex) for the scaled data.
    CHECK(scaled_recovery_error(s, *pb.truth, std::ldexp(1.0, c.second - c.first)) <
          1e3 * colora_test::Tol<S>::recovery);
    bool says_rescaled = false;
    for (const auto& w : s.warnings()) says_rescaled |= w.find("rescaled") != std::string::npos;
    CHECK(says_rescaled);
  }
}

TEST_CASE_TEMPLATE("data in the ordinary range is not copied or rescaled: results are bit-identical", S,
                   COLORA_TEST_SCALARS) {
  const auto pb = noiseless_problem<S>(colora_test::rng_for("ordinary range").next_u64());
  colora::SolverOptions o;
  o.rank = 2;
  colora::Solver<S> a(o), b(o);
  a.compute(pb);
  b.compute(pb);
  CHECK(a.warnings().empty());
  CHECK((a.A().array() == b.A().array()).all());
}

TEST_CASE_TEMPLATE("all-zero inputs on every task are a DegenerateProblem status, one zero task a warning", S,
                   COLORA_TEST_SCALARS) {
  const auto seed = colora_test::rng_for("degenerate").next_u64();
  colora::SolverOptions o;
  o.rank = 2;
  {
    auto pb = noiseless_problem<S>(seed);
    for (auto& t : pb.tasks) t.X.setZero();
    colora::Solver<S> s(o);
    s.compute(pb);
    CHECK(s.info() == colora::Status::NumericalIssue);
    CHECK(s.stop_reason() == colora::StopReason::DegenerateProblem);
    CHECK(s.warnings().size() == pb.tasks.size());
    CHECK(s.A().allFinite());
    CHECK(s.B().allFinite());
    for (const auto& core : s.cores()) CHECK(core.allFinite());
  }
  {
    auto pb = noiseless_problem<S>(seed);
    pb.tasks[3].X.setZero();
    pb.tasks[3].Y.setZero();
    colora::Solver<S> s(o);
    s.compute(pb);
    CHECK(s.info() == colora::Status::Success);
    REQUIRE(s.warnings().size() == 1);
    CHECK(s.warnings()[0].find("task 3") != std::string::npos);
    CHECK(s.core(3).norm() == 0);
  }
}

TEST_CASE("sensing problems (M2) at extreme scale are rescaled too") {
  colora::GeneratorOptions g;
  g.tasks = 10;
  g.p = 6;
  g.q = 5;
  g.rank = 2;
  g.samples = {60};
  g.test_samples = 0;
  g.sigma = 0;
  g.seed = colora_test::rng_for("sensing extreme").next_u64();
  auto pb = colora::generate_sensing<double>(g);
  for (auto& t : pb.tasks) {
    t.M = colora::detail::times_pow2(t.M, 900);
    t.y = colora::detail::times_pow2(t.y, 900);
  }
  colora::SolverOptions o;
  o.rank = 2;
  o.max_iterations = 300;
  colora::Solver<double> s(o);
  s.compute(pb);
  CHECK(s.info() == colora::Status::Success);
  CHECK(scaled_recovery_error(s, *pb.truth, 1.0) < 1e-6);
}

// --- the colora program ----------------------------------------------------

#ifdef COLORA_CLI_PATH
#include "cli_support.hpp"

namespace {

std::string scratch(const std::string& name) { return colora_test::scratch_dir("colora_test_reliability", name); }

colora_test::CliRun run_cli(const std::string& args, const std::string& dir) {
  return colora_test::run_program(COLORA_CLI_PATH, args, dir);
}

/// A planted noiseless directory whose data are scaled by 2^e (inputs and outputs).
void extreme_directory(const std::string& path, int e, Index samples = 14, double sigma = 0) {
  colora::GeneratorOptions g;
  g.tasks = 6;
  g.p = 10;
  g.q = 7;
  g.rank = 2;
  g.samples = {samples};
  g.test_samples = 5;
  g.sigma = sigma;
  g.seed = colora_test::rng_for("extreme directory").next_u64();
  auto pb = colora::generate_regression<double>(g);
  for (auto& t : pb.tasks) {
    t.X = colora::detail::times_pow2(t.X, e);
    t.Y = colora::detail::times_pow2(t.Y, e);
    t.X_test = colora::detail::times_pow2(t.X_test, e);
    t.Y_test = colora::detail::times_pow2(t.Y_test, e);
  }
  colora::io::save_regression_directory(path, pb);
}

}  // namespace

TEST_CASE("colora fit: data near 1e300 fits to finite factors with colora; a failed method writes no factors") {
  const std::string dir = scratch("fit_extreme");
  extreme_directory(dir + "/data", 997);  // ~1e300
  {
    const auto r = run_cli("fit --data " + dir + "/data --method colora --rank 2 --iters 200 --out " + dir + "/c", dir);
    INFO(r.err);
    CHECK(r.code == 0);
    const auto A = colora::io::read_npy<double>(dir + "/c/A.npy");
    const auto S0 = colora::io::read_npy<double>(dir + "/c/S_0.npy");
    CHECK(A.allFinite());
    CHECK(S0.allFinite());
    CHECK(r.err.find("rescaled") != std::string::npos);
  }
  {
    // mom rescales like the solver (its start is the solver's).
    const auto r = run_cli("fit --data " + dir + "/data --method mom --rank 2 --out " + dir + "/m", dir);
    INFO(r.err);
    CHECK(r.code == 0);
    CHECK(colora::io::read_npy<double>(dir + "/m/A.npy").allFinite());
    CHECK(colora::io::read_npy<double>(dir + "/m/S_0.npy").allFinite());
    CHECK(r.err.find("rescaled") != std::string::npos);
  }
  {
    // gd-gd has no rescaling: its gradients overflow. It must fail loudly, not write NaN.
    const auto r = run_cli("fit --data " + dir + "/data --method gd-gd --rank 2 --iters 20 --out " + dir + "/g", dir);
    INFO(r.err);
    if (r.code != 0) {
      CHECK(r.code == 1);
      CHECK(r.err.find("no factor file written") != std::string::npos);
      CHECK(!std::filesystem::exists(dir + "/g/A.npy"));
      CHECK(std::filesystem::exists(dir + "/g/summary.csv"));
    } else {  // if it copes, its factors must be finite
      CHECK(colora::io::read_npy<double>(dir + "/g/A.npy").allFinite());
    }
  }
}

TEST_CASE("colora fit: all-zero inputs fail with exit 1 and no factors; --write-failed writes them with a warning") {
  const std::string dir = scratch("fit_zero");
  extreme_directory(dir + "/data", -2000);  // every entry underflows to exactly 0
  auto r = run_cli("fit --data " + dir + "/data --method colora --rank 2 --out " + dir + "/out", dir);
  INFO(r.err);
  CHECK(r.code == 1);
  CHECK(r.err.find("degenerate-problem") != std::string::npos);
  CHECK(r.err.find("fit: warning: task 0: its inputs are all zero") != std::string::npos);
  CHECK(!std::filesystem::exists(dir + "/out/A.npy"));
  r = run_cli("fit --data " + dir + "/data --method colora --rank 2 --write-failed --out " + dir + "/out2", dir);
  CHECK(r.code == 1);
  CHECK(std::filesystem::exists(dir + "/out2/A.npy"));
}

TEST_CASE("colora fit: prints the solver's warnings and exits 3 when it runs out of iterations") {
  const std::string dir = scratch("fit_warn");
  extreme_directory(dir + "/few", 0, /*samples=*/1);  // n_i = 1 < r = 2
  auto r = run_cli("fit --data " + dir + "/few --method colora --rank 2 --out " + dir + "/o", dir);
  INFO(r.err);
  CHECK(r.code == 0);
  CHECK(r.err.find("fit: warning: task 0: n_i = 1 < r = 2") != std::string::npos);
  extreme_directory(dir + "/noisy", 0, /*samples=*/14, /*sigma=*/0.1);
  r = run_cli("fit --data " + dir + "/noisy --method colora --rank 2 --iters 1 --tol 0 --out " + dir + "/o2", dir);
  CHECK(r.code == 3);
  CHECK(r.err.find("MaxIterations") != std::string::npos);
  CHECK(std::filesystem::exists(dir + "/o2/A.npy"));
}

TEST_CASE("experiments refuse problems larger than memory with one line naming the flags (exit 2)") {
  const std::string dir = scratch("memory");
  using colora_test::check_usage_error;
  check_usage_error(COLORA_CLI_PATH, "recovery --tasks 1000000 --p 100000 --q 100000 --out " + dir, dir, "--tasks");
  check_usage_error(COLORA_CLI_PATH, "recovery --test-samples 100000000 --out " + dir, dir, "--test-samples");
  check_usage_error(COLORA_CLI_PATH, "recovery --max-memory 0.001 --out " + dir, dir, "--max-memory");
  check_usage_error(COLORA_CLI_PATH,
                    "sweep --vary samples --values 10,100000000 --trials 1 --methods colora --out " + dir, dir, "GiB");
  check_usage_error(COLORA_CLI_PATH, "adapt --tasks 100000 --p 100000 --out " + dir, dir, "--p");
}

TEST_CASE("out of memory inside a parallel region is a one-line error, not an abort") {
  const std::string dir = scratch("oom");
  // 1.5 GB of address space, a problem of about 4 GB (the memory check is told 100 GiB are fine).
  const std::string cmd = "ulimit -v 1500000; '" + std::string(COLORA_CLI_PATH) +
                          "' recovery --max-memory 100 --tasks 400 --p 4000 --q 8 --rank 2 --samples 24 "
                          "--test-samples 300 --methods colora --threads 2 --out '" +
                          dir + "' >'" + dir + "/out.txt' 2>'" + dir + "/err.txt'";
  const int status = std::system(cmd.c_str());
  const std::string err = colora_test::read_text(dir + "/err.txt");
  INFO(err);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 1);
  CHECK(err.find("out of memory") != std::string::npos);
}
#endif
