// The network experiments (experiments/nn_common.hpp, nn-teacher, nn-digits):
// the digits loader on the shipped data and on broken files, the bilinear
// rotation (exact quarter turns, interior of a constant image), the split
// permutation, the adapter subspace distances, and both subcommands run once
// at tiny size through the built colora program (documented CSV rows,
// identical CSVs for --threads 1 and 2, exit code 2 for bad flags, a clear
// error for a missing data file).
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "nn_common.hpp"
#include "cli_support.hpp"
#include "test_support.hpp"

#ifndef COLORA_CLI_PATH
#error "COLORA_CLI_PATH must name the colora program (set in tests/CMakeLists.txt)"
#endif
#ifndef COLORA_DATA_DIR
#error "COLORA_DATA_DIR must name the data directory (set in tests/CMakeLists.txt)"
#endif

namespace fs = std::filesystem;
using colora::Index;
using colora::Matrix;

namespace {

/// A fresh directory for one test.
std::string scratch(const std::string& name) { return colora_test::scratch_dir("colora_test_nn_experiments", name); }

using colora_test::read_text;
using colora_test::seed_flag;
using Run = colora_test::CliRun;

Run run_cli(const std::string& args, const std::string& dir) {
  return colora_test::run_program(COLORA_CLI_PATH, args, dir);
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string l;
  while (std::getline(in, l)) out.push_back(l);
  return out;
}

int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

void check_usage_error(const std::string& args, const std::string& dir, const std::string& mentions) {
  CAPTURE(args);
  const Run r = run_cli(args, dir);
  CHECK(r.code == 2);
  CHECK(count_lines(r.err) == 1);
  CHECK(r.err.find(mentions) != std::string::npos);
}

std::vector<double> random_image(colora::Rng& rng) {
  std::vector<double> img(64);
  for (auto& v : img) v = double(rng.below(17));
  return img;
}

}  // namespace

TEST_CASE("digits loader: the shipped data has 1797 images of 64 pixels in 0..16 and every label 0..9") {
  const colora::exp::Digits d = colora::exp::load_digits_csv(std::string(COLORA_DATA_DIR) + "/digits.csv");
  REQUIRE(d.X.rows() == 1797);
  REQUIRE(d.X.cols() == 64);
  REQUIRE(d.labels.size() == 1797);
  CHECK(d.X.minCoeff() == 0.0);
  CHECK(d.X.maxCoeff() == 16.0);
  std::set<int> labels(d.labels.begin(), d.labels.end());
  CHECK(labels.size() == 10);
  CHECK(*labels.begin() == 0);
  CHECK(*labels.rbegin() == 9);
  // First row of the file (checked by hand against the source): label 0.
  CHECK(d.labels[0] == 0);
  CHECK(d.X(0, 2) == 5.0);
  CHECK(d.X(0, 3) == 13.0);
}

TEST_CASE("digits loader: broken files give an error naming the file, the line and the problem") {
  using colora::exp::parse_digits_csv;
  std::string row;
  for (int j = 0; j < 64; ++j) row += "1,";
  auto message = [](const std::string& text) {
    try {
      parse_digits_csv(text, "f.csv");
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const colora::exp::Digits ok = parse_digits_csv(row + "3\n" + row + "4\r\n", "f.csv");
  CHECK(ok.X.rows() == 2);
  CHECK(ok.labels[1] == 4);
  CHECK(message(row + "3\n" + row + "\n").find("line 2") != std::string::npos);
  CHECK(message(row + "3\n1,2\n").find("2 fields, expected 65") != std::string::npos);
  CHECK(message("17," + row.substr(2) + "3\n").find("outside 0..16") != std::string::npos);
  CHECK(message(row + "10\n").find("label 10") != std::string::npos);
  CHECK(message(row + "x\n").find("'x' is not an integer") != std::string::npos);
  CHECK(message("").find("no images") != std::string::npos);
  std::string missing;
  try {
    colora::exp::load_digits_csv("/nonexistent/digits.csv");
  } catch (const std::runtime_error& e) {
    missing = e.what();
  }
  CHECK(missing.find("/nonexistent/digits.csv") != std::string::npos);
  CHECK(missing.find("--data") != std::string::npos);
}

TEST_CASE("rotate_image8: quarter turns are exact pixel permutations, four of them the identity") {
  colora::Rng rng = colora_test::rng_for("rotate_image8 quarter turns");
  const std::vector<double> img = random_image(rng);
  CHECK(colora::exp::rotate_image8(img, 0.0) == img);
  const std::vector<double> q = colora::exp::rotate_image8(img, 90.0);
  for (int r = 0; r < 8; ++r)
    for (int c = 0; c < 8; ++c) CHECK(q[std::size_t(r * 8 + c)] == img[std::size_t(c * 8 + (7 - r))]);  // counter-clockwise
  const std::vector<double> h = colora::exp::rotate_image8(img, 180.0);
  for (int j = 0; j < 64; ++j) CHECK(h[std::size_t(j)] == img[std::size_t(63 - j)]);
  std::vector<double> four = img;
  for (int i = 0; i < 4; ++i) four = colora::exp::rotate_image8(four, 90.0);
  CHECK(four == img);
  CHECK(colora::exp::rotate_image8(img, -90.0) == colora::exp::rotate_image8(img, 270.0));
}

TEST_CASE("rotate_image8: bilinear weights sum to one inside the image, background outside") {
  const std::vector<double> ones(64, 1.0);
  for (double deg : {10.0, 30.0, 45.0, 77.0}) {
    CAPTURE(deg);
    const std::vector<double> r = colora::exp::rotate_image8(ones, deg);
    // Pixels whose source point stays inside [0, 7]^2 (all within radius 3.5 of the centre) are exactly 1.
    for (int rr = 0; rr < 8; ++rr)
      for (int c = 0; c < 8; ++c) {
        const double rad = std::hypot(rr - 3.5, c - 3.5);
        if (rad <= 3.5) CHECK(r[std::size_t(rr * 8 + c)] == doctest::Approx(1.0).epsilon(1e-12));
        CHECK(r[std::size_t(rr * 8 + c)] >= -1e-12);
        CHECK(r[std::size_t(rr * 8 + c)] <= 1.0 + 1e-12);
      }
    // A corner's source lies outside the image: it reads (partly) background.
    CHECK(r[0] < 1.0);
  }
  // A single lit pixel at 45 degrees spreads its mass bilinearly: the total is at most the original.
  std::vector<double> dot(64, 0.0);
  dot[3 * 8 + 3] = 16.0;
  const std::vector<double> r = colora::exp::rotate_image8(dot, 45.0);
  double total = 0;
  for (double v : r) total += v;
  CHECK(total > 0.0);
  CHECK(total <= 16.0 * 4);
}

TEST_CASE("permutation: a deterministic permutation of 0..n-1") {
  const colora::Rng rng = colora_test::rng_for("permutation");
  const std::vector<Index> p = colora::exp::permutation(97, rng);
  CHECK(p == colora::exp::permutation(97, rng));
  std::vector<Index> s = p;
  std::sort(s.begin(), s.end());
  for (Index i = 0; i < 97; ++i) CHECK(s[std::size_t(i)] == i);
  bool moved = false;
  for (Index i = 0; i < 97; ++i) moved |= p[std::size_t(i)] != i;
  CHECK(moved);
}

TEST_CASE_TEMPLATE("adapter_distances: zero for the planted subspaces, one for orthogonal ones, NaN where undefined", S,
                   float, double) {
  namespace nn = colora::nn;
  using colora::AdapterKind;
  colora::Rng rng = colora_test::rng_for("adapter_distances");
  const Index p = 10, q = 8, r = 2;
  const Matrix<double> Q = colora::haar_orthonormal<double>(rng, p, 2 * r);
  const Matrix<double> Qb = colora::haar_orthonormal<double>(rng, q, 2 * r);
  const Matrix<double> A_star = Q.leftCols(r).transpose(), B_star = Qb.leftCols(r);
  const double tol = 10 * colora_test::Tol<S>::loose + (sizeof(S) == 4 ? 1e-3 : 0.0);

  nn::Linear<S> col("c", p, q, 3, nn::AdapterSpec{AdapterKind::Colora, r}, colora::Rng(1, 2));
  // Before training B = 0: its subspace is undefined.
  CHECK(std::isnan(colora::exp::adapter_distances(col, A_star, B_star).second));
  const Matrix<double> G = rng.normal_matrix<double>(r, r);  // a gauge: the same subspaces
  col.A.value = (G * A_star).template cast<S>();
  col.B.value = (B_star * G).template cast<S>();
  auto d = colora::exp::adapter_distances(col, A_star, B_star);
  CHECK(d.first < tol);
  CHECK(d.second < tol);
  col.A.value = Q.rightCols(r).transpose().template cast<S>();  // orthogonal to A*
  d = colora::exp::adapter_distances(col, A_star, B_star);
  CHECK(std::abs(d.first - 1.0) < tol);

  nn::Linear<S> ffa("f", p, q, 3, nn::AdapterSpec{AdapterKind::Ffa, r}, colora::Rng(1, 3));
  ffa.B.value = B_star.template cast<S>();
  d = colora::exp::adapter_distances(ffa, A_star, B_star);
  CHECK(std::isnan(d.first));  // A is frozen random: not learned
  CHECK(d.second < tol);

  nn::Linear<S> lora("l", p, q, 2, nn::AdapterSpec{AdapterKind::Lora, r}, colora::Rng(1, 4));
  lora.As[0].value = A_star.template cast<S>();
  lora.As[1].value = Q.rightCols(r).transpose().template cast<S>();
  lora.Bs[0].value = B_star.template cast<S>();
  lora.Bs[1].value = B_star.template cast<S>();
  d = colora::exp::adapter_distances(lora, A_star, B_star);
  CHECK(std::abs(d.first - 0.5) < tol);  // the mean over tasks of 0 and 1
  CHECK(d.second < tol);

  nn::Linear<S> none("n", p, q, 2, nn::AdapterSpec{}, colora::Rng(1, 5));
  d = colora::exp::adapter_distances(none, A_star, B_star);
  CHECK(std::isnan(d.first));
  CHECK(std::isnan(d.second));
}

TEST_CASE("colora nn-teacher: tiny run writes every (sweep, value, method, metric) row; threads do not matter") {
  const std::string dir = scratch("nn_teacher");
  const std::string flags = " --p 6 --hidden 8 --q 4 --rank 2 --k 2 --n 8 --samples 6,12 --theta 0,0.5 --tasks 2,3"
                            " --test-samples 16 --iters 8 --trials 2" + seed_flag();
  const Run r1 = run_cli("nn-teacher" + flags + " --threads 1 --out " + dir + "/t1", dir);
  REQUIRE(r1.code == 0);
  const Run r2 = run_cli("nn-teacher" + flags + " --threads 2 --out " + dir + "/t2", dir);
  REQUIRE(r2.code == 0);
  const std::string csv = read_text(dir + "/t1/nn_teacher.csv");
  CHECK(csv == read_text(dir + "/t2/nn_teacher.csv"));
  const auto lines = lines_of(csv);
  REQUIRE(!lines.empty());
  CHECK(lines[0] == "sweep,value,method,metric,trials,mean,ci_low,ci_high,task_sd");
  CHECK(lines.size() == 1 + 6 * 6 * 3);  // 6 points x 6 methods x 3 metrics
  CHECK(csv.find("samples,6,colora,test_loss,2,") != std::string::npos);
  CHECK(csv.find("theta,0.5,global-lora,dist_A,2,") != std::string::npos);
  CHECK(csv.find("tasks,3,fedsa,dist_B,2,") != std::string::npos);
  CHECK(r1.out.find("wrote") != std::string::npos);

  const Run tf = run_cli("nn-teacher --arch transformer --p 4 --d-model 8 --heads 2 --hidden 8 --q 2 --seq-len 3 --k 2"
                        " --n 4 --samples 4 --theta none --tasks none --test-samples 6 --iters 3 --trials 1"
                        " --methods none,colora --out " + dir + "/tf" + seed_flag(), dir);
  REQUIRE(tf.code == 0);
  CHECK(lines_of(read_text(dir + "/tf/nn_teacher.csv")).size() == 1 + 1 * 2 * 3);

  check_usage_error("nn-teacher --arch cnn --out " + dir + "/x", dir, "--arch");
  check_usage_error("nn-teacher --theta 2 --out " + dir + "/x", dir, "--theta");
  check_usage_error("nn-teacher --methods colora,bogus --out " + dir + "/x", dir, "bogus");
  check_usage_error("nn-teacher --bogus 1 --out " + dir + "/x", dir, "--bogus");
  check_usage_error("nn-teacher --rank 5 --p 8 --q 4 --out " + dir + "/x", dir, "--rank");
}

TEST_CASE("colora nn-digits: tiny run writes accuracy, loss and paired-gap rows; threads do not matter") {
  const std::string dir = scratch("nn_digits");
  const std::string flags = " --users 3 --samples 3,6 --angle-spread 0,40 --n 4 --iters 6 --pretrain-iters 10"
                            " --trials 2 --test-per-user 20 --hidden 12 --rank 2" + seed_flag();
  const Run r1 = run_cli("nn-digits" + flags + " --threads 1 --out " + dir + "/t1", dir);
  REQUIRE(r1.code == 0);
  const Run r2 = run_cli("nn-digits" + flags + " --threads 2 --out " + dir + "/t2", dir);
  REQUIRE(r2.code == 0);
  const std::string csv = read_text(dir + "/t1/nn_digits.csv");
  CHECK(csv == read_text(dir + "/t2/nn_digits.csv"));
  const auto lines = lines_of(csv);
  REQUIRE(!lines.empty());
  CHECK(lines[0] == "sweep,value,method,metric,trials,mean,ci_low,ci_high,user_sd");
  // 4 points x (7 methods x 2 metrics + 6 paired gaps).
  CHECK(lines.size() == 1 + 4 * (7 * 2 + 6));
  CHECK(csv.find("samples,3,probe,test_accuracy,2,") != std::string::npos);
  CHECK(csv.find("angle_spread,40,lora,colora_minus_method_accuracy,2,") != std::string::npos);
  for (std::size_t i = 1; i < lines.size(); ++i) {
    if (lines[i].find(",test_accuracy,") == std::string::npos) continue;
    // mean accuracy is a probability
    const auto cells = [&] {
      std::vector<std::string> c;
      std::string cur;
      for (char ch : lines[i]) {
        if (ch == ',') {
          c.push_back(cur);
          cur.clear();
        } else {
          cur += ch;
        }
      }
      c.push_back(cur);
      return c;
    }();
    REQUIRE(cells.size() == 9);
    const double mean = std::stod(cells[5]);
    CHECK(mean >= 0.0);
    CHECK(mean <= 1.0);
  }

  const Run missing = run_cli("nn-digits --data /nonexistent/digits.csv --out " + dir + "/m", dir);
  CHECK(missing.code == 1);
  CHECK(missing.err.find("--data") != std::string::npos);
  check_usage_error("nn-digits --users 2000 --out " + dir + "/x", dir, "users");
  check_usage_error("nn-digits --samples 0 --out " + dir + "/x", dir, "--samples");
  check_usage_error("nn-digits --methods colora,bogus --out " + dir + "/x", dir, "bogus");
  check_usage_error("nn-digits --rank 11 --out " + dir + "/x", dir, "--rank");
}
