// The colora program (experiments/): every subcommand (recovery, sweep,
// phase, fit, adapt) on a tiny problem, the
// documented CSV columns, exit code 2 for bad flags and values, identical
// CSVs for --threads 1 and 2, `fit` on a planted directory, and the
// generate -> fit --rank auto -> predict -> adapt --model round trip.
//
// Runs the built program (COLORA_CLI_PATH, set by tests/CMakeLists.txt) with
// std::system, output redirected into a scratch directory under the current
// working directory.
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cli_support.hpp"
#include "test_support.hpp"

#ifndef COLORA_CLI_PATH
#error "COLORA_CLI_PATH must name the colora program (set in tests/CMakeLists.txt)"
#endif

namespace fs = std::filesystem;

namespace {

/// A fresh directory for one test.
std::string scratch(const std::string& name) { return colora_test::scratch_dir("colora_test_experiments", name); }

using colora_test::read_text;
using colora_test::seed_flag;
using Run = colora_test::CliRun;

Run run_cli(const std::string& args, const std::string& dir) {
  return colora_test::run_program(COLORA_CLI_PATH, args, dir);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

/// The lines of a CSV file (no trailing empty line).
std::vector<std::string> csv_lines(const std::string& path) {
  std::vector<std::string> lines = split(read_text(path), '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  return lines;
}

using colora_test::count_lines;

void check_usage_error(const std::string& args, const std::string& dir, const std::string& mentions) {
  colora_test::check_usage_error(COLORA_CLI_PATH, args, dir, mentions);
}

const char* const kTinyProblem = " --tasks 4 --p 8 --q 8 --rank 2 --samples 12 --test-samples 10 --iters 15";

}  // namespace

TEST_CASE("colora --version and colora version print the version and the SIMD instruction sets") {
  const std::string dir = scratch("version");
  for (const char* args : {"--version", "version"}) {
    INFO(args);
    const Run r = run_cli(args, dir);
    CHECK(r.code == 0);
    CHECK(r.out.find("colora ") == 0);
    CHECK(r.out.find("SIMD: ") != std::string::npos);
#if defined(__x86_64__)
    CHECK(r.out.find("SSE2") != std::string::npos);  // every x86-64 build has at least SSE2
#endif
  }
}

TEST_CASE("colora recovery: tiny problem writes summary.csv and history.csv with the documented columns") {
  const std::string dir = scratch("recovery");
  const Run r = run_cli(std::string("recovery") + kTinyProblem + seed_flag() + " --out " + dir + "/out", dir);
  REQUIRE(r.code == 0);
  const auto summary = csv_lines(dir + "/out/summary.csv");
  // The default is --methods all: the header, then colora, oracle and the 9 baselines.
  REQUIRE(summary.size() == 12);
  CHECK(summary[0] ==
        "method,final_dist_a,final_dist_b,mean_rel_err,median_rel_err,max_rel_err,test_mse,oracle_mse,iterations,"
        "seconds");
  const auto history = csv_lines(dir + "/out/history.csv");
  REQUIRE(history.size() >= 3);
  CHECK(history[0] == "method,iter,seconds,objective,dist_a,dist_b,mean_rel_err,test_mse");
  // colora's estimate is close to the truth on this well-posed problem (sigma = 0.1).
  const auto colora_row = split(summary[1], ',');
  REQUIRE(colora_row.size() == 10);
  CHECK(colora_row[0] == "colora");
  CHECK(std::stod(colora_row[1]) < 0.2);
}

namespace {
/// `s` as one word for /bin/sh (the test harness runs the program through a shell).
std::string shell_word(const std::string& s) {
  std::string r = "'";
  for (char c : s) r += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return r + "'";
}
bool gnuplot_installed() { return std::system("command -v gnuplot >/dev/null 2>&1") == 0; }
}  // namespace

TEST_CASE("colora recovery and adapt: hostile --out paths are plain file names (no shell, quoted in gnuplot)") {
  const std::string dir = scratch("hostile_out");
  const std::vector<std::string> pwned = {"PWNED", "PWNED2", "PWNED3", "PWNED4"};
  auto check_no_pwned = [&](const std::string& where) {
    for (const auto& p : pwned) {
      CAPTURE(where);
      CAPTURE(p);
      CHECK(!fs::exists(fs::path(where) / p));
    }
  };
  // Absolute: quotes, spaces, $(...), ;...;, backquotes, double quotes and line breaks in the directory names (an
  // even and an odd number of single quotes: the first breaks out of "sh -c 'gnuplot <path>'", the second of
  // gnuplot's '...').
  const std::string hostile = "a b'$(touch PWNED);touch PWNED2;`touch PWNED3`'c \"dq\"";
  const std::string hostile2 = "it's a $(touch PWNED) ;touch PWNED2; `touch PWNED3` x';touch PWNED;'\nnew\rline";
  // Relative and starting with '<': gnuplot would read "<cmd" as a pipe from a shell command.
  const std::string relative = "<touch PWNED4;true ";
  const std::string cwd = fs::current_path().string();
  fs::remove_all(relative);
  struct Case {
    std::string out, command, csv, png;
  };
  const std::vector<Case> cases = {{dir + "/" + hostile, "recovery" + std::string(kTinyProblem), "summary.csv",
                                    "recovery.png"},
                                   {dir + "/" + hostile2,
                                    "adapt --new-tasks 3 --new-samples 2,4 --trials 1" + std::string(kTinyProblem),
                                    "adapt.csv", "adapt.png"},
                                   {relative, "recovery" + std::string(kTinyProblem), "history.csv", "recovery.png"}};
  for (const Case& c : cases) {
    CAPTURE(c.out);
    const Run r = run_cli(c.command + seed_flag() + " --out " + shell_word(c.out), dir);
    INFO(r.err);
    CHECK(r.code == 0);
    CHECK(csv_lines(c.out + "/" + c.csv).size() >= 2);
    if (gnuplot_installed())  // .ci/setup installs it
      CHECK((fs::is_regular_file(c.out + "/" + c.png) && fs::file_size(c.out + "/" + c.png) > 1000));
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(c.out, ec)) {
      CAPTURE(e.path().string());
      CHECK(e.path().filename().string().find(".tmp") == std::string::npos);  // no temporaries left
    }
    check_no_pwned(cwd);
    check_no_pwned(dir);
    check_no_pwned(c.out);
    check_no_pwned("/");
  }
  for (const auto& p : pwned) fs::remove(fs::path(cwd) / p);
  fs::remove_all(relative);
}

TEST_CASE("colora recovery with q < r (FedRep's scalar outputs): heads, participation, dist-a plot") {
  const std::string dir = scratch("recovery_wide");
  const Run r = run_cli(
      "recovery --tasks 40 --p 10 --q 1 --rank 2 --samples 8 --test-samples 10 --sigma 0 "
      "--iters 200 --participation 0.5 --plot dist-a --threads 1" +
          seed_flag() + " --out " + dir + "/out",
      dir);
  REQUIRE(r.code == 0);
  // "all" keeps the methods that support r > q and says which it skipped.
  for (const char* m : {"local-lora", "global-lora", "ffa", "gd-gd"})
    CHECK(r.err.find(std::string("skipping ") + m) != std::string::npos);
  const auto summary = csv_lines(dir + "/out/summary.csv");
  REQUIRE(summary.size() == 8);  // header + colora, oracle, local, global, fedrep, fedrep-gd, mom
  double colora_err = -1, fedrep_err = -1;
  for (const auto& line : summary) {
    const auto row = split(line, ',');
    if (row[0] == "colora") colora_err = std::stod(row[3]);
    if (row[0] == "fedrep") fedrep_err = std::stod(row[3]);
    if (row[0] == "fedrep") CHECK(std::stoi(row[8]) == 200);  // participation 0.5: no early stop
  }
  CHECK(colora_err >= 0);
  CHECK(colora_err < 1e-6);  // noiseless: the planted heads are recovered
  CHECK(fedrep_err < 1e-6);  // fedrep, with half the tasks per round, too
  // A method that needs r <= q, named explicitly, is a usage error.
  check_usage_error("recovery --p 10 --q 1 --rank 2 --methods ffa --out " + dir + "/bad", dir, "r <= q");
  check_usage_error("recovery --plot nosuch --out " + dir + "/bad", dir, "--plot");
}

TEST_CASE("colora sweep: documented columns, one row per method x value x metric, identical for 1 and 2 threads") {
  const std::string dir = scratch("sweep");
  const std::string common = std::string("sweep --vary tau --values 0,1 --trials 3 --methods colora,oracle") +
                             kTinyProblem + seed_flag();
  const Run r1 = run_cli(common + " --threads 1 --out " + dir + "/t1", dir);
  REQUIRE(r1.code == 0);
  const Run r2 = run_cli(common + " --threads 2 --out " + dir + "/t2", dir);
  REQUIRE(r2.code == 0);
  const std::string csv1 = read_text(dir + "/t1/sweep.csv"), csv2 = read_text(dir + "/t2/sweep.csv");
  CHECK(csv1 == csv2);
  const auto lines = csv_lines(dir + "/t1/sweep.csv");
  REQUIRE(lines.size() == 1 + 2 * 2 * 2);
  CHECK(lines[0] == "method,value,metric,trial_count,mean,ci_low,ci_high");
  for (size_t i = 1; i < lines.size(); ++i) {
    CAPTURE(lines[i]);
    const auto c = split(lines[i], ',');
    REQUIRE(c.size() == 7);
    CHECK((c[0] == "colora" || c[0] == "oracle"));
    CHECK((c[1] == "0" || c[1] == "1"));
    CHECK((c[2] == "test_mse" || c[2] == "mean_rel_err"));
    CHECK(c[3] == "3");
    const double mean = std::stod(c[4]), lo = std::stod(c[5]), hi = std::stod(c[6]);
    CHECK(mean > 0);
    CHECK(lo <= mean);
    CHECK(mean <= hi);
  }
  // The trial seeds do not depend on --values: the value-1 rows are the same
  // when the sweep has only that value.
  const Run r3 = run_cli(std::string("sweep --vary tau --values 1 --trials 3 --methods colora,oracle") + kTinyProblem +
                             seed_flag() + " --threads 2 --out " + dir + "/only1",
                         dir);
  REQUIRE(r3.code == 0);
  const auto only = csv_lines(dir + "/only1/sweep.csv");
  REQUIRE(only.size() == 1 + 2 * 2);
  for (size_t i = 1; i < only.size(); ++i) {
    bool found = false;
    for (const auto& l : lines) found = found || l == only[i];
    CHECK_MESSAGE(found, only[i]);
  }
}

TEST_CASE("colora phase: documented columns, Clopper-Pearson bounds, identical for 1 and 2 threads") {
  const std::string dir = scratch("phase");
  const std::string common = "phase --samples 1,8 --tasks 1,8 --trials 3 --p 8 --q 8 --rank 2 --iters 100" +
                             seed_flag();
  const Run r1 = run_cli(common + " --threads 1 --out " + dir + "/t1", dir);
  REQUIRE(r1.code == 0);
  const Run r2 = run_cli(common + " --threads 2 --out " + dir + "/t2", dir);
  REQUIRE(r2.code == 0);
  CHECK(read_text(dir + "/t1/phase.csv") == read_text(dir + "/t2/phase.csv"));
  const auto lines = csv_lines(dir + "/t1/phase.csv");
  REQUIRE(lines.size() == 1 + 4);
  CHECK(lines[0] == "method,samples,tasks,trials,successes,probability,ci_low,ci_high");
  for (size_t i = 1; i < lines.size(); ++i) {
    CAPTURE(lines[i]);
    const auto c = split(lines[i], ',');
    REQUIRE(c.size() == 8);
    CHECK(c[0] == "colora");
    CHECK(c[3] == "3");
    const int s = std::stoi(c[4]);
    CHECK(s >= 0);
    CHECK(s <= 3);
    const double prob = std::stod(c[5]), lo = std::stod(c[6]), hi = std::stod(c[7]);
    CHECK(prob == doctest::Approx(s / 3.0));
    CHECK(lo >= 0);
    CHECK(lo <= prob);
    CHECK(prob <= hi);
    CHECK(hi <= 1);
    // Clopper-Pearson for 3 trials: s = 0 gives [0, 1 - 0.025^(1/3)], s = 3 gives [0.025^(1/3), 1].
    if (s == 0) CHECK(hi == doctest::Approx(1 - std::cbrt(0.025)).epsilon(1e-9));
    if (s == 3) CHECK(lo == doctest::Approx(std::cbrt(0.025)).epsilon(1e-9));
    // One sample per task from one task cannot determine A (p = 8 > 1); 8 tasks
    // with 8 noiseless samples each (64 >> (p + q) r) always can.
    if (c[1] == "1" && c[2] == "1") CHECK(s == 0);
    if (c[1] == "8" && c[2] == "8") CHECK(s == 3);
  }
}

TEST_CASE("colora adapt: tiny problem writes adapt.csv with the documented columns") {
  const std::string dir = scratch("adapt");
  const Run r = run_cli(std::string("adapt --new-tasks 3 --new-samples 2,4,8 --trials 2") + kTinyProblem + seed_flag() +
                            " --out " + dir + "/out",
                        dir);
  INFO(r.err);
  REQUIRE(r.code == 0);
  const auto lines = csv_lines(dir + "/out/adapt.csv");
  REQUIRE(lines.size() >= 2);
  CHECK(lines[0] == "method,n_new,trial_count,mean_test_mse,ci_low,ci_high");
  for (size_t i = 1; i < lines.size(); ++i) {
    CAPTURE(lines[i]);
    const auto c = split(lines[i], ',');
    REQUIRE(c.size() == 6);
    CHECK((c[1] == "2" || c[1] == "4" || c[1] == "8"));
    CHECK(std::stod(c[3]) > 0);
  }
}

namespace {

/// A planted noiseless problem written with io::save_regression_directory.
colora::RegressionProblem<double> planted_directory(const std::string& path, bool noiseless) {
  colora::GeneratorOptions g;
  g.tasks = 6;
  g.p = 10;
  g.q = 7;
  g.rank = 2;
  g.samples = {15};
  g.test_samples = 5;
  g.sigma = noiseless ? 0.0 : 0.1;
  g.seed = colora_test::rng_for("fit planted directory").next_u64();
  const auto pb = colora::generate_regression<double>(g);
  colora::io::save_regression_directory(path, pb);
  return pb;
}

}  // namespace

TEST_CASE("colora fit: recovers a planted noiseless problem from a directory and writes A, B, S_i, report.csv") {
  const std::string dir = scratch("fit");
  const auto pb = planted_directory(dir + "/data", true);
  const Run r = run_cli("fit --data " + dir + "/data --method colora --rank 2 --iters 200 --threads 1 --out " + dir +
                            "/out",
                        dir);
  INFO(r.err);
  REQUIRE(r.code == 0);
  const auto A = colora::io::read_npy<double>(dir + "/out/A.npy");
  const auto B = colora::io::read_npy<double>(dir + "/out/B.npy");
  REQUIRE(A.rows() == 2);
  REQUIRE(A.cols() == 10);
  REQUIRE(B.rows() == 7);
  REQUIRE(B.cols() == 2);
  CHECK(colora::row_space_distance(A, pb.truth->A_shared).spectral < 1e-6);
  CHECK(colora::subspace_distance(B, pb.truth->B_shared).spectral < 1e-6);
  // The personal cores reproduce every task's W_i* - W_0.
  for (colora::Index i = 0; i < 6; ++i) {
    const auto S = colora::io::read_npy<double>(dir + "/out/S_" + std::to_string(i) + ".npy");
    REQUIRE(S.rows() == 2);
    REQUIRE(S.cols() == 2);
    const colora::Matrix<double> D = pb.truth->delta(i);
    CHECK((B * S * A - D).norm() <= 1e-6 * D.norm());
  }
  const auto report = csv_lines(dir + "/out/report.csv");
  REQUIRE(report.size() == 1 + 6);
  CHECK(report[0] == "task,samples,train_mse,test_mse");
  for (size_t i = 1; i < report.size(); ++i) {
    const auto c = split(report[i], ',');
    REQUIRE(c.size() == 4);
    CHECK(c[0] == std::to_string(i - 1));
    CHECK(c[1] == "15");
    CHECK(std::stod(c[2]) < 1e-12);  // noiseless: the fit is exact
    CHECK(std::stod(c[3]) < 1e-12);
  }
  const auto summary = csv_lines(dir + "/out/summary.csv");
  REQUIRE(summary.size() == 2);
  CHECK(summary[0] == "method,tasks,p,q,rank,objective,iterations,status,stop_reason,train_mse,test_mse,seconds,rho_objective_gap,rho_objective_gap_low,rho_objective_gap_high,rank_selection");
}

TEST_CASE("colora fit --format safetensors: the factors in one file and every task as a PEFT adapter of W_i - W_0") {
  const std::string dir = scratch("fit_safetensors");
  const auto pb = planted_directory(dir + "/data", true);
  const std::string base = "fit --data " + dir + "/data --rank 2 --iters 200 --threads 1 --out " + dir;
  const Run r = run_cli(base + "/out --method colora --format safetensors", dir);
  INFO(r.err);
  REQUIRE(r.code == 0);
  const colora::io::Safetensors f = colora::io::read_safetensors(dir + "/out/factors.safetensors");
  const auto A = f.matrix<double>("A");
  const auto B = f.matrix<double>("B");
  CHECK(colora::row_space_distance(A, pb.truth->A_shared).spectral < 1e-6);
  for (colora::Index i = 0; i < 6; ++i) {
    const auto S = f.matrix<double>("S_" + std::to_string(i));
    const auto peft = colora::nn::read_peft_adapter<double>(dir + "/out/peft/task_" + std::to_string(i));
    REQUIRE(peft.modules.size() == 1);
    const auto& m = peft.modules[0];
    CHECK(m.module == "linear");
    CHECK(peft.config.scaling("linear") == 1.0);
    // lora_A = A and lora_B = B S_i: the planted update W_i* - W_0 (noiseless, so exactly recovered).
    CHECK(m.A == A);
    CHECK((m.B - B * S).norm() <= 1e-14 * (B * S).norm());
    const colora::Matrix<double> D = pb.truth->delta(i);
    CHECK((m.B * m.A - D).norm() <= 1e-6 * D.norm());
  }
  // A full-rank method exports an exact pair of rank min(p, q).
  const Run loc = run_cli(base + "/local --method local --format safetensors", dir);
  REQUIRE(loc.code == 0);
  const auto peft = colora::nn::read_peft_adapter<double>(dir + "/local/peft/task_3");
  CHECK(peft.config.r == 7);
  CHECK((peft.modules[0].B * peft.modules[0].A - pb.truth->delta(3)).norm() <= 1e-6 * pb.truth->delta(3).norm());
  check_usage_error(base + "/bad --format csv", dir, "--format");
}

TEST_CASE("colora fit: a directory with a missing Y file fails naming the file") {
  const std::string dir = scratch("fit_missing");
  planted_directory(dir + "/data", false);
  fs::remove(dir + "/data/Y_3.npy");
  const Run r = run_cli("fit --data " + dir + "/data --rank 2 --out " + dir + "/out", dir);
  CHECK(r.code != 0);
  CHECK(r.code == 1);  // a data problem, not a command-line problem
  CHECK(r.err.find("Y_3.npy") != std::string::npos);
  CHECK(count_lines(r.err) == 1);
  CHECK_FALSE(fs::exists(dir + "/out/A.npy"));
}

TEST_CASE("colora subcommands: bad flags and bad values exit with code 2 and one line") {
  const std::string dir = scratch("usage");
  planted_directory(dir + "/data", false);
  const std::string data = " --data " + dir + "/data --out " + dir + "/out";
  for (const char* cmd : {"recovery", "sweep", "phase", "fit", "adapt"}) {
    check_usage_error(std::string(cmd) + " --no-such-flag 1", dir, "unknown flag --no-such-flag");
    check_usage_error(std::string(cmd) + " --threads many", dir, "--threads");
    check_usage_error(std::string(cmd) +
                          (std::string(cmd) == "fit" ? " --rank 2 --method nosuch" + data : " --methods nosuch"),
                      dir, "'nosuch'");
  }
  check_usage_error("recovery --rank 100 --out " + dir + "/out", dir, "rank");
  check_usage_error("sweep --vary colour", dir, "--vary");
  check_usage_error("sweep --vary tau --values -1", dir, "tau");
  check_usage_error("sweep --vary samples --values 2.5", dir, "2.5");
  check_usage_error("sweep --vary theta-b --values 2", dir, "theta");
  check_usage_error("sweep --trials 0", dir, "--trials");
  check_usage_error("phase --samples 0,4", dir, "--samples");
  check_usage_error("phase --tasks 2,x", dir, "--tasks");
  check_usage_error("phase --rank 9 --p 8", dir, "rank");
  check_usage_error("fit --rank 2", dir, "--data");
  check_usage_error("fit" + data, dir, "--rank");
  check_usage_error("fit --rank 11" + data, dir, "rank");                    // > p = 10
  check_usage_error("fit --rank 9 --method ffa" + data, dir, "r <= q = 7");  // > q for a method that needs r <= q
  check_usage_error("fit --rank 2 --iters -3" + data, dir, "--iters");
  check_usage_error("adapt --new-samples 0", dir, "--new-samples");
  // --help prints the flags and exits 0 for every subcommand.
  for (const char* cmd : {"recovery", "sweep", "phase", "fit", "adapt"}) {
    CAPTURE(cmd);
    const Run r = run_cli(std::string(cmd) + " --help", dir);
    CHECK(r.code == 0);
    CHECK(r.out.find("--threads") != std::string::npos);
    CHECK(r.out.find("--seed") != std::string::npos);
  }
}

// --- your own data: generate -> fit --rank auto -> predict -> adapt --model (docs/experiments.md) ---

namespace {

std::vector<std::string> cells(const std::string& row) { return split(row, ','); }

}  // namespace

TEST_CASE("colora generate -> fit --rank auto -> predict -> adapt --model: a planted problem round trip") {
  const std::string dir = colora_test::scratch_dir("colora_test_user_workflow", "round_trip");
  const std::string seed = std::to_string(colora_test::rng_for("user workflow round trip").next_u64() % 100000);
  MESSAGE("problem seed " << seed);
  const colora_test::CliRun gen = run_cli("generate --out " + dir + "/data --tasks 30 --p 12 --q 10 --rank 3 "
                                          "--samples 20 --test-samples 20 --sigma 0.05 --new-tasks 5 --seed " + seed,
                                          dir);
  INFO(gen.err);
  REQUIRE(gen.code == 0);
  REQUIRE(fs::exists(dir + "/data/X_29.npy"));
  REQUIRE(fs::exists(dir + "/data_new/Y_test_4.npy"));

  // fit --rank auto: the CV curve, the planted rank, the model directory.
  const colora_test::CliRun fit = run_cli("fit --data " + dir + "/data --rank auto --rank-grid 1,2,3,4,5,6 "
                                          "--threads 1 --iters 100 --out " + dir + "/fit",
                                          dir);
  INFO(fit.err);
  REQUIRE(fit.code == 0);
  const auto cv = csv_lines(dir + "/fit/rank_cv.csv");
  REQUIRE(cv.size() == 7);
  CHECK(cv[0] == "rank,cv_mse,cv_se,folds,failed_fits,chosen");
  CHECK(cells(cv[3])[0] == "3");
  CHECK(cells(cv[3])[5] == "1");
  const auto summary = csv_lines(dir + "/fit/summary.csv");
  REQUIRE(summary.size() == 2);
  CHECK(cells(summary[1])[4] == "3");
  CHECK(cells(summary[1]).back() == "cv-5-fold-one-se");
  REQUIRE(fs::exists(dir + "/fit/model/model.json"));

  // predict: the model's W_i applied to the inputs, equal to B S_i A from the factor files.
  const colora_test::CliRun pred =
      run_cli("predict --model " + dir + "/fit --data " + dir + "/data --out " + dir + "/pred", dir);
  INFO(pred.err);
  REQUIRE(pred.code == 0);
  const auto A = colora::io::read_npy<double>(dir + "/fit/A.npy");
  const auto B = colora::io::read_npy<double>(dir + "/fit/B.npy");
  for (colora::Index i : {0, 17, 29}) {
    CAPTURE(i);
    const auto X = colora::io::read_npy<double>(dir + "/data/X_" + std::to_string(i) + ".npy");
    const auto S = colora::io::read_npy<double>(dir + "/fit/S_" + std::to_string(i) + ".npy");
    const auto P = colora::io::read_npy<double>(dir + "/pred/pred_" + std::to_string(i) + ".npy");
    const colora::Matrix<double> ref = X * (B * S * A).transpose();
    REQUIRE(P.rows() == 20);
    REQUIRE(P.cols() == 10);
    CHECK((P - ref).norm() <= 1e-12 * ref.norm());
  }
  CHECK(csv_lines(dir + "/pred/report.csv").size() == 31);

  // adapt: five new tasks of the same shared truth, 20 samples each, against the fitted A, B.
  const colora_test::CliRun ad =
      run_cli("adapt --model " + dir + "/fit --data " + dir + "/data_new --out " + dir + "/adapted", dir);
  INFO(ad.err);
  REQUIRE(ad.code == 0);
  const auto rep = csv_lines(dir + "/adapted/report.csv");
  REQUIRE(rep.size() == 6);
  CHECK(rep[0] == "task,samples,train_mse,test_mse,ridge");
  const auto At = colora::io::read_npy<double>(dir + "/data_new/truth/A.npy");
  const auto Bt = colora::io::read_npy<double>(dir + "/data_new/truth/B.npy");
  for (colora::Index j = 0; j < 5; ++j) {
    CAPTURE(j);
    const auto c = cells(rep[size_t(j) + 1]);
    // sigma^2 = 2.5e-3: the new task's test MSE sits near the noise floor
    // (r^2 = 9 core entries from 20 x 10 observations) ...
    CHECK(std::stod(c[3]) < 2 * 2.5e-3);
    // ... and its update B S_j A is the planted one.
    const auto S = colora::io::read_npy<double>(dir + "/adapted/S_" + std::to_string(j) + ".npy");
    const auto St = colora::io::read_npy<double>(dir + "/data_new/truth/S_" + std::to_string(j) + ".npy");
    const auto Bq = colora::io::read_npy<double>(dir + "/adapted/model/B.npy");
    const colora::Matrix<double> D = Bt * St * At, E = Bq * S * A;
    CHECK((E - D).norm() < 0.1 * D.norm());
  }
  // The adapted tasks form a model directory of their own.
  const colora_test::CliRun pred_new =
      run_cli("predict --model " + dir + "/adapted --data " + dir + "/data_new --out " + dir + "/pred_new", dir);
  INFO(pred_new.err);
  CHECK(pred_new.code == 0);
}

TEST_CASE("colora predict and adapt --model refuse mismatched directories with a clear message") {
  const std::string dir = colora_test::scratch_dir("colora_test_user_workflow", "mismatch");
  REQUIRE(run_cli("generate --out " + dir + "/data --tasks 4 --p 8 --q 6 --rank 2 --samples 10 --test-samples 0 "
                  "--new-tasks 2",
                  dir)
              .code == 0);
  REQUIRE(run_cli("generate --out " + dir + "/wide --tasks 4 --p 9 --q 6 --rank 2 --samples 10 --test-samples 0",
                  dir)
              .code == 0);
  REQUIRE(run_cli("fit --data " + dir + "/data --rank 2 --threads 1 --out " + dir + "/fit", dir).code == 0);
  REQUIRE(run_cli("fit --data " + dir + "/data --method local --threads 1 --out " + dir + "/local", dir).code == 0);

  auto fails = [&](const std::string& args, int code, const std::string& mentions) {
    CAPTURE(args);
    const colora_test::CliRun r = run_cli(args, dir);
    CHECK(r.code == code);
    CHECK(colora_test::count_lines(r.err) == 1);
    CHECK_MESSAGE(r.err.find(mentions) != std::string::npos, r.err);
  };
  // p = 9 inputs against a p = 8 model: the file and both widths named.
  fails("predict --model " + dir + "/fit --data " + dir + "/wide --out " + dir + "/o", 1, "X_0.npy");
  fails("adapt --model " + dir + "/fit --data " + dir + "/wide --out " + dir + "/o", 1, "p = 9");
  // A directory without inputs; more tasks in the data than in the model (fitted on the 2 new tasks).
  fails("predict --model " + dir + "/fit --data " + dir + "/fit/model --out " + dir + "/o", 1, "no X_<i>.npy");
  REQUIRE(run_cli("fit --data " + dir + "/data_new --rank 2 --threads 1 --out " + dir + "/fit2", dir).code == 0);
  fails("predict --model " + dir + "/fit2 --data " + dir + "/data --out " + dir + "/o", 1, "X_2.npy exists");
  // A full-rank model has no shared part to adapt on.
  fails("adapt --model " + dir + "/local --data " + dir + "/data_new --out " + dir + "/o", 2, "no shared factor");
  // No manifest, a manifest of another format version, a file of the wrong shape.
  fails("predict --model " + dir + "/data --data " + dir + "/data --out " + dir + "/o", 1, "model.json is missing");
  {
    std::ifstream in(dir + "/fit/model/model.json");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto at = text.find("\"format_version\": 1");
    REQUIRE(at != std::string::npos);
    text.replace(at, 19, "\"format_version\": 2");
    std::ofstream(dir + "/fit/model/model.json") << text;
    fails("predict --model " + dir + "/fit --data " + dir + "/data --out " + dir + "/o", 1, "format_version 2");
    text.replace(at, 19, "\"format_version\": 1");
    std::ofstream(dir + "/fit/model/model.json") << text;
  }
  colora::io::write_npy(dir + "/fit/model/U_3.npy", colora::Matrix<double>::Zero(6, 3).eval());
  fails("predict --model " + dir + "/fit --data " + dir + "/data --out " + dir + "/o", 1, "U_3.npy");
  // Command-line errors: exit 2.
  fails("fit --data " + dir + "/data --rank abc --out " + dir + "/o", 2, "abc");
  fails("fit --data " + dir + "/data --rank auto --method local --out " + dir + "/o", 2, "full-rank");
  fails("fit --data " + dir + "/data --rank auto --rank-grid 9,10 --out " + dir + "/o", 2, "--rank-grid");
  fails("predict --data " + dir + "/data", 2, "--model");
  fails("adapt --model " + dir + "/fit", 2, "--data");
}
