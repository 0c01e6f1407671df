// The network experiments (experiments/nn_common.hpp, nn-teacher, nn-digits):
// the digits loader on the shipped data and on broken files, the bilinear
// rotation (exact quarter turns, interior of a constant image), the split
// permutation, the adapter subspace distances, the per-task validation split
// and the model selection every method goes through (best-validation iterate,
// learning-rate choice, refit), and both subcommands run once
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

using colora_test::count_lines;

void check_usage_error(const std::string& args, const std::string& dir, const std::string& mentions) {
  colora_test::check_usage_error(COLORA_CLI_PATH, args, dir, mentions);
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
    for (int c = 0; c < 8; ++c)
      CHECK(q[std::size_t(r * 8 + c)] == img[std::size_t(c * 8 + (7 - r))]);  // counter-clockwise
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
                   COLORA_TEST_SCALARS) {
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

TEST_CASE("split_train_val: disjoint, covering, documented sizes, deterministic for a seed") {
  using colora::exp::split_train_val;
  using colora::exp::validation_count;
  // Sizes [choice]: round(0.2 n), at least 1 and at most n - 1 when n >= 2; none for n < 2 or fraction 0.
  CHECK(validation_count(1, 0.2) == 0);
  CHECK(validation_count(2, 0.2) == 1);
  CHECK(validation_count(5, 0.2) == 1);
  CHECK(validation_count(10, 0.2) == 2);
  CHECK(validation_count(20, 0.2) == 4);
  CHECK(validation_count(40, 0.2) == 8);
  CHECK(validation_count(2, 0.9) == 1);
  CHECK(validation_count(10, 0.0) == 0);
  const colora::Rng rng = colora_test::rng_for("split_train_val");
  for (Index n : {1, 2, 5, 10, 37}) {
    CAPTURE(n);
    const auto s = split_train_val(n, 0.2, rng.substream(std::uint64_t(n)));
    CHECK(Index(s.val.size()) == validation_count(n, 0.2));
    CHECK(Index(s.train.size() + s.val.size()) == n);
    std::vector<Index> all = s.train;
    all.insert(all.end(), s.val.begin(), s.val.end());
    std::sort(all.begin(), all.end());
    for (Index i = 0; i < n; ++i) CHECK(all[std::size_t(i)] == i);  // disjoint and covering
    CHECK(std::is_sorted(s.train.begin(), s.train.end()));
    const auto again = split_train_val(n, 0.2, rng.substream(std::uint64_t(n)));
    CHECK(again.train == s.train);
    CHECK(again.val == s.val);
  }
  // Another stream holds out other examples (for some of a few draws).
  bool differs = false;
  for (std::uint64_t j = 0; j < 8; ++j)
    differs |= split_train_val(37, 0.2, rng.substream(100 + j)).val != split_train_val(37, 0.2, rng.substream(37)).val;
  CHECK(differs);
  // take_examples keeps whole examples (T rows each) and their targets.
  Matrix<double> X(6, 2), Y(3, 1), Xo, Yo;
  for (Index i = 0; i < 6; ++i) X.row(i) << double(i), double(10 + i);
  Y << 0, 1, 2;
  colora::exp::take_examples(X, Y, 2, {2, 0}, Xo, Yo);
  REQUIRE(Xo.rows() == 4);
  CHECK(Xo(0, 0) == 4.0);
  CHECK(Xo(1, 0) == 5.0);
  CHECK(Xo(2, 0) == 0.0);
  CHECK(Yo(0, 0) == 2.0);
  CHECK(Yo(1, 0) == 0.0);
}

namespace {

namespace nn = colora::nn;

nn::MlpModel<double> tiny_mlp(colora::AdapterKind kind) {
  nn::MlpSpec s;
  s.in = 3;
  s.hidden = {5};
  s.out = 2;
  s.num_tasks = 2;
  s.adapter = nn::AdapterSpec{kind, 2};
  s.seed = 11;
  return nn::MlpModel<double>(s);
}

/// Two tasks of a planted linear map with noise (validation targets shifted
/// by `val_shift`).
std::vector<nn::TaskData<double>> tiny_tasks(colora::Rng rng, Index n, double val_shift) {
  std::vector<nn::TaskData<double>> d(2);
  const Matrix<double> W = rng.normal_matrix<double>(2, 3);
  for (auto& t : d) {
    t.X = rng.normal_matrix<double>(n, 3);
    t.Y = t.X * W.transpose() + 0.3 * rng.normal_matrix<double>(n, 2);
    t.X_val = rng.normal_matrix<double>(4, 3);
    t.Y_val = t.X_val * W.transpose() + 0.3 * rng.normal_matrix<double>(4, 2);
    t.Y_val.array() += val_shift;
  }
  return d;
}

}  // namespace

TEST_CASE("train_keep_best: the model ends at the best-validation iterate, iteration 0 included") {
  using colora::AdapterKind;
  colora::Rng rng = colora_test::rng_for("train_keep_best");
  nn::TrainerOptions o;
  o.max_iterations = 60;
  o.eval_every = 5;
  o.batch_size = 0;
  o.optimizer.shared.lr = 0.05;
  o.optimizer.personal.lr = 0.05;
  o.num_threads = 1;
  for (int untrained_best : {0, 1}) {
    CAPTURE(untrained_best);
    auto data = tiny_tasks(rng, 8, 0.0);
    if (untrained_best) {  // validation targets = the untrained model's outputs: any training can only hurt
      const nn::MlpModel<double> m0 = tiny_mlp(AdapterKind::Colora);
      for (int i = 0; i < 2; ++i) data[std::size_t(i)].Y_val = m0.predict(data[std::size_t(i)].X_val, i);
    }
    // Reference: the same training, recording every validation loss.
    nn::MlpModel<double> ref = tiny_mlp(AdapterKind::Colora);
    std::vector<double> losses;
    std::vector<int> iters;
    {
      nn::Trainer<nn::MlpModel<double>> t(ref, data, o);
      losses.push_back(t.evaluate().val_loss);
      iters.push_back(0);
      t.set_callback([&](const nn::EvalRecord& r) {
        losses.push_back(r.val_loss);
        iters.push_back(r.iteration);
        return true;
      });
      t.run();
    }
    const std::size_t arg = std::size_t(std::min_element(losses.begin(), losses.end()) - losses.begin());
    nn::MlpModel<double> m = tiny_mlp(AdapterKind::Colora);
    const nn::MlpModel<double> init = m;
    bool issue = false;
    const auto best = colora::exp::train_keep_best(m, data, o, issue);
    CHECK_FALSE(issue);
    CHECK(best.first == iters[arg]);
    CHECK(best.second == losses[arg]);
    nn::Trainer<nn::MlpModel<double>> check(m, data, o);
    CHECK(check.evaluate().val_loss == doctest::Approx(losses[arg]).epsilon(1e-12));
    if (!untrained_best) CHECK(best.first > 0);  // training helps on fresh data from the same map
    if (untrained_best) {
      // The untrained state (validation loss 0) is best and is restored.
      CHECK(best.first == 0);
      CHECK(m.layers[0].B.value == init.layers[0].B.value);
      CHECK(m.layers[0].Ss[0].value == init.layers[0].Ss[0].value);
    }
    // Patience: with patience 1 the run stops at the first non-improving evaluation but still
    // returns the best iterate seen so far.
    nn::TrainerOptions op = o;
    op.patience = 1;
    nn::MlpModel<double> mp = tiny_mlp(AdapterKind::Colora);
    const auto bp = colora::exp::train_keep_best(mp, data, op, issue);
    std::size_t stop = 1;
    auto first = losses.begin();
    while (stop < losses.size() && losses[stop] < *std::min_element(first, first + long(stop))) ++stop;
    const std::size_t argp = std::size_t(std::min_element(first, first + long(stop)) - first);
    CHECK(bp.first == iters[argp]);
    CHECK(bp.second == losses[argp]);
  }
}

/// Selection options and trainer options of the fit_selected tests (full batch, one thread).
colora::exp::NnSelectionOptions tiny_selection(int iters) {
  colora::exp::NnSelectionOptions sel;
  sel.lrs = {0.003, 0.05};
  sel.max_iterations = iters;
  sel.eval_every = 5;
  sel.patience = 0;
  sel.val_fraction = 0.2;
  return sel;
}
nn::TrainerOptions tiny_trainer_options() {
  nn::TrainerOptions o;
  o.batch_size = 0;
  o.num_threads = 1;
  return o;
}
/// The validation split fit_selected makes (2 tasks of 10 examples, 2 held out each), rebuilt by hand.
std::vector<nn::TaskData<double>> split_by_hand(const std::vector<nn::TaskData<double>>& data,
                                                const colora::Rng& split) {
  std::vector<nn::TaskData<double>> fit(2);
  for (std::size_t i = 0; i < 2; ++i) {
    const auto sp = colora::exp::split_train_val(10, 0.2, split.substream(i));
    REQUIRE(sp.val.size() == 2);
    colora::exp::take_examples(data[i].X, data[i].Y, 1, sp.train, fit[i].X, fit[i].Y);
    colora::exp::take_examples(data[i].X, data[i].Y, 1, sp.val, fit[i].X_val, fit[i].Y_val);
  }
  return fit;
}

/// What fit_selected should choose, by brute force: every (learning rate,
/// personal scale) trained with train_keep_best; the strictly lowest
/// validation loss wins, learning rates outermost.
struct ReferenceChoice {
  double lr = 0, ratio = 0, val_loss = 1e300;
  int iteration = -1;
};
template <class Make>
ReferenceChoice reference_selection(const Make& make, const std::vector<nn::TaskData<double>>& fit,
                                    const nn::TrainerOptions& o, const colora::exp::NnSelectionOptions& sel) {
  ReferenceChoice best;
  for (double lr : sel.lrs)
    for (double ratio : sel.personal_ratios) {
      nn::TrainerOptions oo = o;
      oo.max_iterations = sel.max_iterations;
      oo.eval_every = sel.eval_every;
      oo.optimizer.shared.lr = lr;
      oo.optimizer.personal.lr = lr * ratio;
      nn::MlpModel<double> r = make();
      bool issue = false;
      const auto b = colora::exp::train_keep_best(r, fit, oo, issue);
      if (b.second < best.val_loss) best = {lr, ratio, b.second, b.first};
    }
  return best;
}

TEST_CASE("fit_selected: picks the learning rate and iterate of lowest validation loss on a split of the train data") {
  using colora::AdapterKind;
  colora::Rng rng = colora_test::rng_for("fit_selected");
  auto data = tiny_tasks(rng, 10, 0.0);
  for (auto& t : data) {  // fit_selected must carve its validation from X, Y alone
    t.X_val.resize(0, 0);
    t.Y_val.resize(0, 0);
  }
  colora::exp::NnSelectionOptions sel = tiny_selection(40);
  const nn::TrainerOptions o = tiny_trainer_options();
  const colora::Rng split = rng.substream(9);
  auto make = [] { return tiny_mlp(AdapterKind::Lora); };
  colora::exp::NnSelection chosen;
  nn::MlpModel<double> m = colora::exp::fit_selected<nn::MlpModel<double>>(make, data, o, sel, split, chosen);
  // Reference: the same split by hand, each learning rate trained with train_keep_best.
  const std::vector<nn::TaskData<double>> fit = split_by_hand(data, split);
  const ReferenceChoice ref = reference_selection(make, fit, o, sel);
  const double best = ref.val_loss;
  CHECK(chosen.lr == ref.lr);
  CHECK(chosen.iteration == ref.iteration);
  CHECK(chosen.val_loss == best);
  nn::TrainerOptions ev = o;
  nn::Trainer<nn::MlpModel<double>> check(m, fit, ev);
  CHECK(check.evaluate().val_loss == doctest::Approx(best).epsilon(1e-12));
  // Deterministic.
  colora::exp::NnSelection again;
  nn::MlpModel<double> m2 = colora::exp::fit_selected<nn::MlpModel<double>>(make, data, o, sel, split, again);
  CHECK(again.iteration == chosen.iteration);
  CHECK(m2.layers[0].Bs[0].value == m.layers[0].Bs[0].value);
  // refit: retrained on all 10 examples for the selected iterations with the selected rate.
  sel.refit = true;
  colora::exp::NnSelection rf;
  nn::MlpModel<double> m3 = colora::exp::fit_selected<nn::MlpModel<double>>(make, data, o, sel, split, rf);
  CHECK(rf.iteration == chosen.iteration);
  nn::MlpModel<double> m4 = make();
  if (rf.iteration > 0) {
    nn::TrainerOptions oo = o;
    oo.max_iterations = rf.iteration;
    oo.eval_every = 0;
    oo.optimizer.shared.lr = oo.optimizer.personal.lr = rf.lr;
    nn::Trainer<nn::MlpModel<double>>(m4, data, oo).run();
  }
  CHECK(m3.layers[0].Bs[1].value == m4.layers[0].Bs[1].value);
}

TEST_CASE(
    "fit_selected: personal learning-rate scales are candidates too; a model without personal parameters ignores "
    "them") {
  using colora::AdapterKind;
  colora::Rng rng = colora_test::rng_for("fit_selected personal scale");
  auto data = tiny_tasks(rng, 10, 0.0);
  colora::exp::NnSelectionOptions sel = tiny_selection(30);
  sel.personal_ratios = {1.0, 0.1};
  const nn::TrainerOptions o = tiny_trainer_options();
  const colora::Rng split = rng.substream(3);
  const std::vector<nn::TaskData<double>> fit = split_by_hand(data, split);
  // colora (shared A, B; personal cores): all four (lr, scale) pairs compete, lr outermost, ties keep the earlier.
  auto make = [] { return tiny_mlp(AdapterKind::Colora); };
  colora::exp::NnSelection chosen;
  colora::exp::fit_selected<nn::MlpModel<double>>(make, data, o, sel, split, chosen);
  const ReferenceChoice ref = reference_selection(make, fit, o, sel);
  CHECK(chosen.lr == ref.lr);
  CHECK(chosen.personal_ratio == ref.ratio);
  CHECK(chosen.iteration == ref.iteration);
  CHECK(chosen.val_loss == ref.val_loss);
  // global LoRA has nothing personal: the scale is not a candidate (NaN) and the
  // choice equals the one made with a single scale.
  auto make_global = [] { return tiny_mlp(AdapterKind::GlobalLora); };
  colora::exp::NnSelection g2, g1;
  const nn::MlpModel<double> m2 = colora::exp::fit_selected<nn::MlpModel<double>>(make_global, data, o, sel, split, g2);
  sel.personal_ratios = {1.0};
  const nn::MlpModel<double> m1 = colora::exp::fit_selected<nn::MlpModel<double>>(make_global, data, o, sel, split, g1);
  CHECK(std::isnan(g2.personal_ratio));
  CHECK(g2.lr == g1.lr);
  CHECK(g2.iteration == g1.iteration);
  CHECK(g2.val_loss == g1.val_loss);
  CHECK(m2.layers[0].B.value == m1.layers[0].B.value);
  sel.personal_ratios.clear();
  CHECK_THROWS_AS(colora::exp::fit_selected<nn::MlpModel<double>>(make, data, o, sel, split, g1),
                  std::invalid_argument);
}

TEST_CASE("run_points: a point repeated in several sweeps is computed once and its results copied") {
  const std::vector<std::pair<int, double>> keys = {{5, 0.0}, {10, 0.0}, {10, 0.5}, {5, 0.0}, {10, 0.5}};
  const long trials = 3;
  std::vector<int> calls(keys.size() * trials, 0);
  std::vector<double> results;
  colora::exp::run_points(keys, trials, 2, "test", results, [&](long pi, long t) {
    ++calls[std::size_t(pi * trials + t)];  // distinct slots: no race
    return double(keys[std::size_t(pi)].first) + keys[std::size_t(pi)].second + 100.0 * double(t);
  });
  REQUIRE(results.size() == keys.size() * trials);
  for (long pi = 0; pi < long(keys.size()); ++pi)
    for (long t = 0; t < trials; ++t) {
      const std::size_t run = std::size_t(pi * trials + t);
      CHECK(results[run] == double(keys[std::size_t(pi)].first) + keys[std::size_t(pi)].second + 100.0 * double(t));
      CHECK(calls[run] == (pi < 3 ? 1 : 0));  // points 3 and 4 repeat points 0 and 2
    }
}

TEST_CASE("colora nn-teacher: tiny run writes every (sweep, value, method, metric) row; threads do not matter") {
  const std::string dir = scratch("nn_teacher");
  const std::string flags =
      " --p 6 --hidden 8 --q 4 --rank 2 --k 2 --n 8 --samples 6,12 --theta 0,0.5 --tasks 2,3"
      " --test-samples 16 --iters 8 --trials 2" +
      seed_flag();
  const Run r1 = run_cli("nn-teacher" + flags + " --threads 1 --out " + dir + "/t1", dir);
  REQUIRE(r1.code == 0);
  const Run r2 = run_cli("nn-teacher" + flags + " --threads 2 --out " + dir + "/t2", dir);
  REQUIRE(r2.code == 0);
  const std::string csv = read_text(dir + "/t1/nn_teacher.csv");
  CHECK(csv == read_text(dir + "/t2/nn_teacher.csv"));
  const auto lines = lines_of(csv);
  REQUIRE(!lines.empty());
  CHECK(lines[0] == "sweep,value,method,metric,trials,mean,ci_low,ci_high,task_sd");
  // 6 points x (6 methods x 3 metrics + 5 paired gaps + 5 trained methods x 3 selection rows).
  CHECK(lines.size() == 1 + 6 * (6 * 3 + 5 + 5 * 3));
  // theta = 0 and tasks = 2 are the same point (k = 2, n = 8, theta 0): computed once, identical rows.
  std::vector<std::string> theta0, tasks2;
  for (const auto& l : lines) {
    if (l.rfind("theta,0,", 0) == 0) theta0.push_back(l.substr(8));
    if (l.rfind("tasks,2,", 0) == 0) tasks2.push_back(l.substr(8));
  }
  CHECK(theta0.size() == 6 * 3 + 5 + 5 * 3);
  CHECK(theta0 == tasks2);
  // The selected personal scale is one of the default candidates {1, 0.1}: its mean over trials lies in [0.1, 1].
  const std::string key = "samples,6,colora,selected_personal_lr_scale,2,";
  const std::size_t at = csv.find(key);
  REQUIRE(at != std::string::npos);
  const double scale = std::stod(csv.substr(at + key.size()));
  CHECK(scale >= 0.1 - 1e-12);
  CHECK(scale <= 1.0 + 1e-12);
  CHECK(csv.find("samples,6,global-lora,colora_minus_method_test_loss,2,") != std::string::npos);
  CHECK(csv.find("samples,12,lora,selected_iterations,2,") != std::string::npos);
  CHECK(csv.find("samples,6,colora,test_loss,2,") != std::string::npos);
  CHECK(csv.find("theta,0.5,global-lora,dist_A,2,") != std::string::npos);
  CHECK(csv.find("tasks,3,fedsa,dist_B,2,") != std::string::npos);
  CHECK(r1.out.find("wrote") != std::string::npos);

  const Run tf = run_cli(
      "nn-teacher --arch transformer --p 4 --d-model 8 --heads 2 --hidden 8 --q 2 --seq-len 3 --k 2"
      " --n 4 --samples 4 --theta none --tasks none --test-samples 6 --iters 3 --trials 1"
      " --methods none,colora --export-peft " + dir + "/peft --out " +
          dir + "/tf" + seed_flag(),
      dir);
  REQUIRE(tf.code == 0);
  CHECK(lines_of(read_text(dir + "/tf/nn_teacher.csv")).size() == 1 + 1 * (2 * 3 + 1 + 1 * 3));
  // --export-peft: every user's CoLoRA adapter as a PEFT directory, one module per adapted Linear.
  for (int user = 0; user < 2; ++user) {
    const auto a = colora::nn::read_peft_adapter<float>(dir + "/peft/colora/user_" + std::to_string(user));
    CHECK(a.config.r == 2);
    REQUIRE(!a.modules.empty());
    CHECK(a.find("tf.block0.attn.q") != nullptr);
  }
  CHECK(fs::exists(dir + "/peft/colora/colora_shared.safetensors"));
  CHECK(fs::exists(dir + "/peft/colora/colora_cores.safetensors"));
  check_usage_error("nn-teacher --export-peft --out " + dir + "/x", dir, "--export-peft");

  check_usage_error("nn-teacher --arch cnn --out " + dir + "/x", dir, "--arch");
  check_usage_error("nn-teacher --theta 2 --out " + dir + "/x", dir, "--theta");
  check_usage_error("nn-teacher --methods colora,bogus --out " + dir + "/x", dir, "bogus");
  check_usage_error("nn-teacher --bogus 1 --out " + dir + "/x", dir, "--bogus");
  check_usage_error("nn-teacher --rank 5 --p 8 --q 4 --out " + dir + "/x", dir, "--rank");
  check_usage_error("nn-teacher --val-fraction 0.95 --out " + dir + "/x", dir, "--val-fraction");
  check_usage_error("nn-teacher --lr 0.01,x --out " + dir + "/x", dir, "--lr");
}

TEST_CASE("colora nn-digits: tiny run writes accuracy, loss and paired-gap rows; threads do not matter") {
  const std::string dir = scratch("nn_digits");
  const std::string flags =
      " --users 3 --samples 3,6 --angle-spread 0,40 --n 4 --iters 6 --pretrain-iters 10"
      " --trials 2 --test-per-user 20 --hidden 12 --rank 2 --lr 0.01,0.03 --eval-every 2"
      " --refit yes" +
      seed_flag();
  const Run r1 = run_cli("nn-digits" + flags + " --threads 1 --out " + dir + "/t1", dir);
  REQUIRE(r1.code == 0);
  const Run r2 = run_cli("nn-digits" + flags + " --threads 2 --out " + dir + "/t2", dir);
  REQUIRE(r2.code == 0);
  const std::string csv = read_text(dir + "/t1/nn_digits.csv");
  CHECK(csv == read_text(dir + "/t2/nn_digits.csv"));
  const auto lines = lines_of(csv);
  REQUIRE(!lines.empty());
  CHECK(lines[0] == "sweep,value,method,metric,trials,mean,ci_low,ci_high,user_sd");
  // 4 points x (7 methods x 2 metrics + 6 paired gaps + 6 trained methods x 3 selection rows).
  CHECK(lines.size() == 1 + 4 * (7 * 2 + 6 + 6 * 3));
  CHECK(csv.find("samples,3,global-lora,selected_personal_lr_scale,0,nan,") != std::string::npos);
  CHECK(csv.find("angle_spread,0,colora,selected_lr,2,") != std::string::npos);
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

  // A skipped sweep leaves no empty panel: one panel (accuracy against samples) when the spread sweep is skipped.
  const Run one = run_cli(
      "nn-digits --users 3 --samples 3 --angle-spread none --iters 2 --pretrain-iters 5 --trials 1"
      " --test-per-user 10 --hidden 8 --rank 2 --methods none,colora --out " +
          dir + "/one" + seed_flag(),
      dir);
  REQUIRE(one.code == 0);
  if (std::filesystem::exists(dir + "/one/nn_digits.png.gp"))  // written only when gnuplot is installed
    CHECK(read_text(dir + "/one/nn_digits.png.gp").find("set multiplot layout 1,1 ") != std::string::npos);

  const Run missing = run_cli("nn-digits --data /nonexistent/digits.csv --out " + dir + "/m", dir);
  CHECK(missing.code == 1);
  CHECK(missing.err.find("--data") != std::string::npos);
  check_usage_error("nn-digits --users 2000 --out " + dir + "/x", dir, "users");
  check_usage_error("nn-digits --samples 0 --out " + dir + "/x", dir, "--samples");
  check_usage_error("nn-digits --methods colora,bogus --out " + dir + "/x", dir, "bogus");
  check_usage_error("nn-digits --rank 11 --out " + dir + "/x", dir, "--rank");
  check_usage_error("nn-digits --refit maybe --out " + dir + "/x", dir, "--refit");

  // More training (and test) images per user than a user's pool holds: a usage error naming the flags and the
  // numbers (1797 images, 719 in the base, 1078 / 8 users = 134 per user), never a negative count of test images.
  const Run many = run_cli("nn-digits --samples 5,200 --out " + dir + "/x", dir);
  CHECK(many.code == 2);
  CHECK(colora_test::count_lines(many.err) == 1);
  CHECK(many.err.find("--samples 200") != std::string::npos);
  CHECK(many.err.find("134") != std::string::npos);
  CHECK(many.err.find("-66") == std::string::npos);
  check_usage_error("nn-digits --samples 40 --test-per-user 100 --out " + dir + "/x", dir, "--test-per-user 100");
  check_usage_error("nn-digits --samples none --n 134 --out " + dir + "/x", dir, "--n 134");
  check_usage_error("nn-digits --users 1000 --out " + dir + "/x", dir, "--users 1000");
  CHECK(!std::filesystem::exists(dir + "/x"));
}
