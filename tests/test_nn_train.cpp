// colora::nn training: optimizers, the multi-task trainer (determinism over
// thread counts, schedules, early stopping, numerical issues), checkpoints.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <iostream>
#include <limits>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "test_files.hpp"
#include "test_support.hpp"

using colora::AdapterKind;
using colora::CoreKind;
using colora::Index;
using colora::Matrix;
using colora::Rng;
namespace nn = colora::nn;

namespace {

/// A planted teacher: the student's own frozen base plus a random update
/// B* S_i* A* on every Linear, per task (the student's adapters start at 0).
template <class S>
std::vector<nn::TaskData<S>> planted_mlp_data(const nn::MlpSpec& spec, Index n, Rng rng) {
  nn::MlpModel<S> teacher(spec);
  for (auto& l : teacher.layers) {
    if (!l.has_adapter()) continue;
    if (l.B.value.size()) rng.fill_normal(l.B.value, 0.7);
    for (auto& b : l.Bs) rng.fill_normal(b.value, 0.7);
    for (auto& s : l.Ss) s.value.array() += S(0.5) * rng.normal_matrix<S>(s.value.rows(), s.value.cols()).array();
  }
  std::vector<nn::TaskData<S>> data(spec.num_tasks);
  for (int i = 0; i < spec.num_tasks; ++i) {
    data[i].X = rng.normal_matrix<S>(n, spec.in);
    data[i].Y = teacher.predict(data[i].X, i);
    data[i].X_val = rng.normal_matrix<S>(n / 2, spec.in);
    data[i].Y_val = teacher.predict(data[i].X_val, i);
  }
  return data;
}

nn::MlpSpec small_mlp(AdapterKind kind, int tasks = 3) {
  nn::MlpSpec s;
  s.in = 6;
  s.hidden = {8};
  s.out = 2;
  s.num_tasks = tasks;
  s.adapter = nn::AdapterSpec{kind, 2, 0.0, CoreKind::Full};
  s.seed = 5;
  return s;
}

template <class Model>
std::vector<Matrix<typename Model::Scalar>> values_of(Model& m) {
  std::vector<Matrix<typename Model::Scalar>> v;
  m.visit([&](auto& p) { v.push_back(p.value); });
  return v;
}

template <class S>
bool bitwise_equal(const std::vector<Matrix<S>>& a, const std::vector<Matrix<S>>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].rows() != b[i].rows() || a[i].cols() != b[i].cols() || !(a[i].array() == b[i].array()).all()) return false;
  return true;
}

std::string temp_path(const std::string& name) {
  return "colora_test_nn_" + name + "_" + std::to_string(colora_test::seed()) + ".ckpt";
}

/// A double trainer checkpoint's payload taken apart in the layout of Trainer::save_checkpoint, to
/// write files that pass the checksum (nn::write_checkpoint_file recomputes it) but carry a bad field.
struct CkptImage {
  struct Record {
    std::int64_t iteration = 0;
    double train_loss = 0, val_loss = 0;
    std::vector<double> task_loss, task_accuracy;
  };
  std::string tag, fp;
  std::uint64_t frozen = 0;
  std::int64_t iter = 0, bad = 0, best_iter = 0;
  double last = 0, best_val = 0;
  std::vector<std::int64_t> counters, t;
  std::vector<Matrix<double>> values, m, v, best;
  std::vector<Record> hist;

  CkptImage(const std::string& payload, int tasks, int trainable) {
    nn::BinaryReader r(payload, "image");
    tag = r.str();
    fp = r.str();
    frozen = r.u64();
    iter = r.i64();
    last = r.f64();
    bad = r.i64();
    best_val = r.f64();
    best_iter = r.i64();
    counters.resize(tasks);
    for (auto& c : counters) c = r.i64();
    values.resize(trainable);
    for (auto& x : values) x = r.mat<double>();
    t.resize(r.u64());
    m.resize(t.size());
    v.resize(t.size());
    for (std::size_t id = 0; id < t.size(); ++id) {
      t[id] = r.i64();
      m[id] = r.mat<double>();
      v[id] = r.mat<double>();
    }
    best.resize(r.u64());
    for (auto& b : best) b = r.mat<double>();
    hist.resize(r.u64());
    for (auto& h : hist) {
      h.iteration = r.i64();
      h.train_loss = r.f64();
      h.val_loss = r.f64();
      h.task_loss.resize(r.u64());
      for (auto& x : h.task_loss) x = r.f64();
      h.task_accuracy.resize(r.u64());
      for (auto& x : h.task_accuracy) x = r.f64();
    }
    REQUIRE(r.at_end());
  }
  std::string payload() const {
    nn::BinaryWriter w;
    w.str(tag);
    w.str(fp);
    w.u64(frozen);
    w.i64(iter);
    w.f64(last);
    w.i64(bad);
    w.f64(best_val);
    w.i64(best_iter);
    for (auto c : counters) w.i64(c);
    for (auto& x : values) w.mat(x);
    w.u64(t.size());
    for (std::size_t id = 0; id < t.size(); ++id) {
      w.i64(t[id]);
      w.mat(m[id]);
      w.mat(v[id]);
    }
    w.u64(best.size());
    for (auto& b : best) w.mat(b);
    w.u64(hist.size());
    for (auto& h : hist) {
      w.i64(h.iteration);
      w.f64(h.train_loss);
      w.f64(h.val_loss);
      w.u64(h.task_loss.size());
      for (double x : h.task_loss) w.f64(x);
      w.u64(h.task_accuracy.size());
      for (double x : h.task_accuracy) w.f64(x);
    }
    return w.bytes();
  }
};

/// The message of the std::runtime_error that loading `path` throws ("" if it loads).
template <class T>
std::string load_error(T& trainer, const std::string& path) {
  try {
    trainer.load_checkpoint(path);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE_TEMPLATE("training decreases the loss on a planted teacher (every adapter kind)", S, COLORA_TEST_SCALARS) {
  auto rng = colora_test::rng_for("planted training");
  for (AdapterKind kind :
       {AdapterKind::Lora, AdapterKind::Colora, AdapterKind::GlobalLora, AdapterKind::Ffa, AdapterKind::Fedsa}) {
    CAPTURE(colora::to_string(kind));
    const nn::MlpSpec spec = small_mlp(kind);
    auto data = planted_mlp_data<S>(spec, 64, rng.substream(int(kind)));
    nn::MlpModel<S> model(spec);
    nn::TrainerOptions o;
    o.max_iterations = 60;
    o.batch_size = 16;
    o.eval_every = 60;
    o.optimizer.shared.lr = o.optimizer.personal.lr = 0.02;
    nn::Trainer<nn::MlpModel<S>> tr(model, data, o);
    const double before = tr.evaluate().val_loss;
    const auto res = tr.run();
    CHECK(res.status == colora::Status::Success);
    CHECK(res.iterations == 60);
    REQUIRE(res.history.size() == 1);
    CHECK(res.history.back().val_loss < 0.5 * before);
  }
}

TEST_CASE("colora recovers a planted per-task update well (joint and alternating)") {
  auto rng = colora_test::rng_for("colora recovery");
  for (nn::Schedule sch : {nn::Schedule::Joint, nn::Schedule::Alternating}) {
    CAPTURE(nn::to_string(sch));
    nn::MlpSpec spec = small_mlp(AdapterKind::Colora, 4);
    spec.hidden = {};  // a single adapted Linear: the planted update is exactly representable
    auto data = planted_mlp_data<double>(spec, 80, rng);
    nn::MlpModel<double> model(spec);
    nn::TrainerOptions o;
    o.schedule = sch;
    o.max_iterations = 400;
    o.tau = 2;
    o.batch_size = 0;
    o.eval_every = 100;
    o.optimizer.shared.lr = 0.02;
    o.optimizer.personal.lr = 0.02;
    nn::Trainer<nn::MlpModel<double>> tr(model, data, o);
    const double before = tr.evaluate().val_loss;
    const auto res = tr.run();
    CHECK(res.history.back().val_loss < 1e-3 * before);
  }
}

TEST_CASE("one and two threads give bitwise identical parameters after 20 steps") {
  auto rng = colora_test::rng_for("threads determinism");
  for (nn::Schedule sch : {nn::Schedule::Joint, nn::Schedule::Alternating}) {
    const nn::MlpSpec spec = small_mlp(AdapterKind::Colora, 4);
    auto data = planted_mlp_data<double>(spec, 40, rng);
    std::vector<std::vector<Matrix<double>>> out;
    for (int threads : {1, 2}) {
      nn::MlpModel<double> model(spec);
      nn::TrainerOptions o;
      o.schedule = sch;
      o.max_iterations = 20;
      o.batch_size = 8;
      o.num_threads = threads;
      o.optimizer.clip_norm = 1.0;
      nn::Trainer<nn::MlpModel<double>> tr(model, data, o);
      tr.run();
      out.push_back(values_of(model));
    }
    CHECK(bitwise_equal(out[0], out[1]));
  }
  // And a transformer with 3 tasks.
  nn::TransformerSpec ts;
  ts.d_in = 3;
  ts.seq_len = 4;
  ts.d_model = 8;
  ts.heads = 2;
  ts.num_tasks = 3;
  ts.adapters = nn::adapters_qv_mlp(nn::AdapterSpec{AdapterKind::Colora, 2});
  std::vector<nn::TaskData<double>> data(3);
  for (auto& d : data) {
    d.X = rng.normal_matrix<double>(10 * 4, 3);
    d.Y = rng.normal_matrix<double>(10, 1);
  }
  std::vector<std::vector<Matrix<double>>> out;
  for (int threads : {1, 2}) {
    nn::TransformerModel<double> model(ts);
    nn::TrainerOptions o;
    o.max_iterations = 20;
    o.batch_size = 4;
    o.num_threads = threads;
    nn::Trainer<nn::TransformerModel<double>> tr(model, data, o);
    tr.run();
    out.push_back(values_of(model));
  }
  CHECK(bitwise_equal(out[0], out[1]));
}

TEST_CASE_TEMPLATE("save, resume and continue equals training straight through", S, COLORA_TEST_SCALARS) {
  auto rng = colora_test::rng_for("resume bitwise");
  for (nn::OptimizerKind ok : {nn::OptimizerKind::AdamW, nn::OptimizerKind::Sgd}) {
    const nn::MlpSpec spec = small_mlp(AdapterKind::Colora);
    auto data = planted_mlp_data<S>(spec, 40, rng);
    nn::TrainerOptions o;
    o.schedule = nn::Schedule::Alternating;
    o.tau = 2;
    o.max_iterations = 20;
    o.batch_size = 7;
    o.eval_every = 3;
    o.patience = 50;
    o.optimizer.kind = ok;
    nn::MlpModel<S> straight(spec);
    nn::Trainer<nn::MlpModel<S>> t1(straight, data, o);
    const auto r1 = t1.run();

    const std::string path = temp_path("resume");
    {
      nn::MlpModel<S> half(spec);
      nn::TrainerOptions oh = o;
      oh.max_iterations = 10;
      nn::Trainer<nn::MlpModel<S>> t2(half, data, oh);
      t2.run();
      t2.save_checkpoint(path);
    }
    nn::MlpModel<S> resumed(spec);
    nn::Trainer<nn::MlpModel<S>> t3(resumed, data, o);
    t3.load_checkpoint(path);
    CHECK(t3.iteration() == 10);
    const auto r3 = t3.run();
    CHECK(bitwise_equal(values_of(straight), values_of(resumed)));
    CHECK(r3.iterations == r1.iterations);
    REQUIRE(r3.history.size() == r1.history.size());
    CHECK(r3.history.back().val_loss == r1.history.back().val_loss);
    CHECK(r3.final_eval.val_loss == r1.final_eval.val_loss);
    CHECK(r3.best_iteration == r1.best_iteration);
    std::remove(path.c_str());
  }
}

TEST_CASE("a truncated, corrupt or mismatched checkpoint is refused with the reason") {
  auto rng = colora_test::rng_for("checkpoint refusal");
  const nn::MlpSpec spec = small_mlp(AdapterKind::Colora);
  auto data = planted_mlp_data<double>(spec, 20, rng);
  nn::MlpModel<double> model(spec);
  nn::TrainerOptions o;
  o.max_iterations = 3;
  nn::Trainer<nn::MlpModel<double>> tr(model, data, o);
  tr.run();
  const std::string path = temp_path("refuse"), bad = temp_path("refuse_bad");
  tr.save_checkpoint(path);
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  REQUIRE(bytes.size() > 100);
  const auto before = values_of(model);
  auto write = [&](const std::string& b) { colora::io::write_text_atomically(bad, b); };

  write(bytes.substr(0, bytes.size() - 17));
  CHECK_THROWS_WITH_AS(tr.load_checkpoint(bad), doctest::Contains("truncated"), std::runtime_error);
  write(bytes.substr(0, 10));
  CHECK_THROWS_WITH_AS(tr.load_checkpoint(bad), doctest::Contains("truncated"), std::runtime_error);
  std::string flipped = bytes;
  flipped[bytes.size() / 2] ^= 0x40;
  write(flipped);
  CHECK_THROWS_WITH_AS(tr.load_checkpoint(bad), doctest::Contains("checksum"), std::runtime_error);
  std::string ver = bytes;
  ver[8] = 9;
  write(ver);
  CHECK_THROWS_WITH_AS(tr.load_checkpoint(bad), doctest::Contains("format version 9"), std::runtime_error);
  CHECK_THROWS_WITH_AS(tr.load_checkpoint(temp_path("does_not_exist")), doctest::Contains("cannot open"),
                       std::runtime_error);
  CHECK(bitwise_equal(before, values_of(model)));  // failed loads change nothing

  // Another architecture: a different rank.
  nn::MlpSpec other = spec;
  other.adapter.core = CoreKind::Diagonal;
  nn::MlpModel<double> m2(other);
  nn::Trainer<nn::MlpModel<double>> t2(m2, data, o);
  CHECK_THROWS_WITH_AS(t2.load_checkpoint(path), doctest::Contains("another architecture"), std::invalid_argument);
  // Same architecture, different frozen base.
  nn::MlpSpec seed2 = spec;
  seed2.seed = 99;
  nn::MlpModel<double> m3(seed2);
  nn::Trainer<nn::MlpModel<double>> t3(m3, data, o);
  CHECK_THROWS_WITH_AS(t3.load_checkpoint(path), doctest::Contains("frozen (base) weights"), std::invalid_argument);
  // float model, same layout: the fingerprint includes the scalar size.
  nn::MlpModel<float> mf(spec);
  std::vector<nn::TaskData<float>> fdata(data.size());
  for (std::size_t i = 0; i < data.size(); ++i) {
    fdata[i].X = data[i].X.cast<float>();
    fdata[i].Y = data[i].Y.cast<float>();
  }
  nn::Trainer<nn::MlpModel<float>> tf(mf, fdata, o);
  CHECK_THROWS_WITH_AS(tf.load_checkpoint(path), doctest::Contains("another architecture"), std::invalid_argument);
  std::remove(path.c_str());
  std::remove(bad.c_str());
}

TEST_CASE("a checkpoint with a valid checksum but a hostile field is refused naming it, changing nothing") {
  // Security: the checksum can be recomputed by anyone, so every count, counter, shape and value is checked.
  auto rng = colora_test::rng_for("checkpoint hostile fields");
  const int k = 3;
  const nn::MlpSpec spec = small_mlp(AdapterKind::Colora, k);
  auto data = planted_mlp_data<double>(spec, 20, rng);
  using T = nn::Trainer<nn::MlpModel<double>>;
  nn::TrainerOptions o;
  o.max_iterations = 6;
  o.batch_size = 5;
  o.eval_every = 2;
  o.patience = 10;  // keeps a best-state snapshot
  const std::string path = temp_path("hostile"), bad = temp_path("hostile_bad");
  {
    nn::MlpModel<double> src(spec);
    T ts(src, data, o);
    ts.run();
    ts.save_checkpoint(path);
  }
  nn::MlpModel<double> model(spec);
  const auto params = nn::param_list(model);
  int trainable = 0, first_trainable = -1, first_frozen = -1;
  for (auto* p : params) {
    if (p->trainable() && first_trainable < 0) first_trainable = p->id;
    if (!p->trainable() && first_frozen < 0) first_frozen = p->id;
    trainable += p->trainable() ? 1 : 0;
  }
  REQUIRE(first_trainable >= 0);
  REQUIRE(first_frozen >= 0);
  const std::string tname = "parameter '" + params[first_trainable]->name + "'";
  const std::string good = nn::read_checkpoint_file(path);
  const CkptImage img(good, k, trainable);
  REQUIRE(img.payload() == good);  // the image mirrors save_checkpoint's layout exactly
  REQUIRE(img.iter == 6);
  REQUIRE(img.t.size() == params.size());
  REQUIRE(img.best.size() == std::size_t(trainable));
  REQUIRE(img.hist.size() == 3);

  nn::TrainerOptions ot = o;
  ot.max_iterations = 8;
  T tr(model, data, ot);
  for (int s = 0; s < 2; ++s) REQUIRE(tr.step());
  const auto before = values_of(model);
  const std::int64_t big = std::numeric_limits<std::int64_t>::max();

  struct Case {
    std::string finding;
    std::function<void(CkptImage&)> edit;
    std::string field;  // the message must contain it
  };
  const std::vector<Case> cases = {
      {"negative minibatch counter", [](CkptImage& c) { c.counters[1] = -5; },
       "task 1's minibatch counter -5 is out of range [0, 9007199254740992]"},
      {"minibatch counter at INT64_MAX", [&](CkptImage& c) { c.counters[0] = big; },
       "task 0's minibatch counter 9223372036854775807 is out of range"},
      {"first moment of the wrong shape", [&](CkptImage& c) { c.m[first_trainable] = Matrix<double>::Ones(1, 1); },
       "first moment of " + tname + " is 1 x 1"},
      {"second moment of the wrong shape",
       [&](CkptImage& c) { c.v[first_trainable] = Matrix<double>::Ones(params[first_trainable]->value.cols(), 1); },
       "second moment of " + tname + " is"},
      {"moment of a frozen parameter", [&](CkptImage& c) { c.m[first_frozen] = params[first_frozen]->value; },
       "first moment of frozen parameter '" + params[first_frozen]->name + "'"},
      {"negative second moment", [&](CkptImage& c) { c.v[first_trainable](0, 0) = -1; },
       "second moment of " + tname + " has the entry -1"},
      {"non-finite first moment",
       [&](CkptImage& c) { c.m[first_trainable](0, 0) = std::numeric_limits<double>::infinity(); },
       "first moment of " + tname + " has the entry inf"},
      {"non-finite parameter", [](CkptImage& c) { c.values[0](0, 0) = std::nan(""); }, tname + " has the entry nan"},
      {"best-state snapshot of the wrong shape", [](CkptImage& c) { c.best[0] = Matrix<double>::Zero(0, 0); },
       "best-state snapshot of " + tname + " is 0 x 0"},
      {"step count at INT64_MAX", [&](CkptImage& c) { c.t[first_trainable] = big; },
       "step count of " + tname + " 9223372036854775807 is out of range"},
      {"negative step count", [&](CkptImage& c) { c.t[first_trainable] = -1; }, "step count of " + tname + " -1"},
      {"step count of a frozen parameter", [&](CkptImage& c) { c.t[first_frozen] = 3; },
       "step count of frozen parameter '" + params[first_frozen]->name + "' 3 is out of range [0, 0]"},
      {"iteration truncated to int", [](CkptImage& c) { c.iter = (std::int64_t(1) << 32) + 6; },
       "iteration 4294967302 is out of range [0, 2147483647]"},
      {"negative iteration", [](CkptImage& c) { c.iter = -3; }, "iteration -3 is out of range"},
      {"negative bad_evals", [](CkptImage& c) { c.bad = -1; }, "bad_evals -1 is out of range [0, 6]"},
      {"bad_evals past the iteration", [](CkptImage& c) { c.bad = std::int64_t(1) << 40; }, "bad_evals 1099511627776"},
      {"best_iteration below -1", [](CkptImage& c) { c.best_iter = -2; }, "best_iteration -2 is out of range [-1, 6]"},
      {"best_iteration past the iteration", [](CkptImage& c) { c.best_iter = 7; }, "best_iteration 7"},
      {"NaN best validation loss", [](CkptImage& c) { c.best_val = std::nan(""); }, "best validation loss nan"},
      {"history record with too many task losses", [](CkptImage& c) { c.hist[0].task_loss.push_back(1.0); },
       "history record 0 has 4 task losses"},
      {"history record with one task accuracy", [](CkptImage& c) { c.hist[1].task_accuracy = {0.5}; },
       "history record 1 has 1 task accuracies"},
      {"history iteration past the iteration", [](CkptImage& c) { c.hist[2].iteration = 1000; },
       "history record 2's iteration 1000 is out of range [0, 6]"},
      {"negative history iteration", [](CkptImage& c) { c.hist[0].iteration = -1; }, "history record 0's iteration -1"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.finding);
    CkptImage b = img;
    c.edit(b);
    nn::write_checkpoint_file(bad, b.payload());
    const std::string msg = load_error(tr, bad);
    CHECK_MESSAGE(msg.find(c.field) != std::string::npos, "message: " << msg);
    CHECK(msg.find("checkpoint '" + bad + "'") != std::string::npos);
    CHECK(bitwise_equal(before, values_of(model)));  // a failed load changes nothing
    CHECK(tr.iteration() == 2);
  }
  {
    // A history length the file cannot hold (the old bound, payload size, let ~100 bytes of memory per
    // payload byte be allocated): refused from the bytes that remain, before allocating.
    CkptImage b = img;
    b.hist.clear();
    std::string p = b.payload();
    p.resize(p.size() - 8);
    nn::BinaryWriter w;
    w.u64(good.size() - 1);
    for (int i = 0; i < 50; ++i) w.f64(0.0);
    p += w.bytes();
    nn::write_checkpoint_file(bad, p);
    const std::string msg = load_error(tr, bad);
    CHECK_MESSAGE(msg.find("history count " + std::to_string(good.size() - 1) + " does not fit") != std::string::npos,
                  "message: " << msg);
    CHECK(bitwise_equal(before, values_of(model)));
  }
  // The trainer still trains from where it was, and the genuine file still loads and resumes.
  const auto res = tr.run();
  CHECK(res.status == colora::Status::MaxIterations);  // patience > 0 and not triggered
  CHECK(tr.info() == colora::Status::MaxIterations);
  CHECK(res.iterations == 8);
  CHECK(!bitwise_equal(before, values_of(model)));
  bool finite = true;
  model.visit([&](auto& p) { finite = finite && p.value.allFinite(); });
  CHECK(finite);
  nn::MlpModel<double> again(spec);
  T t2(again, data, ot);
  t2.load_checkpoint(path);
  CHECK(t2.iteration() == 6);
  CHECK(t2.run().iterations == 8);
  std::remove(path.c_str());
  std::remove(bad.c_str());
}

TEST_CASE("trainer: step() refuses to count past INT_MAX iterations") {
  // A checkpoint may hold any iteration up to INT_MAX; step() must not overflow it.
  auto rng = colora_test::rng_for("step at int max");
  const nn::MlpSpec spec = small_mlp(AdapterKind::Colora, 2);
  auto data = planted_mlp_data<double>(spec, 10, rng);
  nn::MlpModel<double> model(spec);
  nn::TrainerOptions o;
  o.max_iterations = 1;
  using T = nn::Trainer<nn::MlpModel<double>>;
  T tr(model, data, o);
  tr.run();
  const std::string path = temp_path("int_max"), edited = temp_path("int_max_edited");
  tr.save_checkpoint(path);
  int trainable = 0;
  model.visit([&](auto& p) { trainable += p.trainable() ? 1 : 0; });
  CkptImage img(nn::read_checkpoint_file(path), 2, trainable);
  img.iter = std::numeric_limits<int>::max();
  nn::write_checkpoint_file(edited, img.payload());
  tr.load_checkpoint(edited);
  CHECK(tr.iteration() == std::numeric_limits<int>::max());
  CHECK(tr.run().iterations == std::numeric_limits<int>::max());  // already past options().iterations
  CHECK_THROWS_WITH_AS(tr.step(), doctest::Contains("iteration 2147483647"), std::invalid_argument);
  std::remove(path.c_str());
  std::remove(edited.c_str());
}

TEST_CASE("trainer: bad data and options are std::invalid_argument naming the field") {
  auto rng = colora_test::rng_for("trainer bad input");
  const nn::MlpSpec spec = small_mlp(AdapterKind::Colora);
  nn::MlpModel<double> model(spec);
  auto data = planted_mlp_data<double>(spec, 10, rng);
  nn::TrainerOptions o;
  using T = nn::Trainer<nn::MlpModel<double>>;
  {
    auto d = data;
    d.pop_back();
    CHECK_THROWS_WITH_AS(T(model, d, o), doctest::Contains("data has 2 tasks"), std::invalid_argument);
  }
  {
    auto d = data;
    d[1].X = Matrix<double>::Zero(10, 5);
    CHECK_THROWS_WITH_AS(T(model, d, o), doctest::Contains("task 1: X has 5 columns"), std::invalid_argument);
  }
  {
    auto d = data;
    d[2].Y = Matrix<double>::Zero(9, 2);
    CHECK_THROWS_WITH_AS(T(model, d, o), doctest::Contains("task 2: Y has 9 rows"), std::invalid_argument);
  }
  {
    auto d = data;
    d[0].X(3, 3) = std::nan("");
    CHECK_THROWS_WITH_AS(T(model, d, o), doctest::Contains("non-finite"), std::invalid_argument);
  }
  {
    nn::TrainerOptions b = o;
    b.tau = 0;
    CHECK_THROWS_WITH_AS(T(model, data, b), doctest::Contains("tau = 0"), std::invalid_argument);
    b = o;
    b.optimizer.personal.lr = -1;
    CHECK_THROWS_WITH_AS(b.validate(), doctest::Contains("optimizer.personal.lr = -1"), std::invalid_argument);
    b = o;
    b.optimizer.clip_norm = -2;
    CHECK_THROWS_WITH_AS(b.validate(), doctest::Contains("clip_norm = -2"), std::invalid_argument);
  }
  {
    nn::MlpModel<double> frozen(small_mlp(AdapterKind::None));
    CHECK_THROWS_WITH_AS(T(frozen, data, o), doctest::Contains("no trainable parameter"), std::invalid_argument);
  }
  {
    nn::TrainerOptions c = o;
    c.loss = nn::LossKind::CrossEntropy;
    CHECK_THROWS_WITH_AS(T(model, data, c), doctest::Contains("class id"), std::invalid_argument);
  }
}

TEST_CASE("a diverging run stops with NumericalIssue and keeps finite parameters") {
  auto rng = colora_test::rng_for("divergence");
  const nn::MlpSpec spec = small_mlp(AdapterKind::GlobalLora);
  auto data = planted_mlp_data<double>(spec, 20, rng);
  nn::MlpModel<double> model(spec);
  nn::TrainerOptions o;
  o.max_iterations = 200;
  o.optimizer.kind = nn::OptimizerKind::Sgd;
  o.optimizer.shared.lr = 1e12;
  nn::Trainer<nn::MlpModel<double>> tr(model, data, o);
  const auto res = tr.run();
  CHECK(res.status == colora::Status::NumericalIssue);
  CHECK(tr.info() == colora::Status::NumericalIssue);
  CHECK(res.reason == colora::StopReason::NonFiniteValue);
  CHECK(res.iterations < 200);
  bool finite = true;
  model.visit([&](auto& p) { finite = finite && p.value.allFinite(); });
  CHECK(finite);
}

TEST_CASE("early stopping, callbacks and classification") {
  auto rng = colora_test::rng_for("early stopping");
  // A classifier: 3 classes from the sign pattern of a planted projection, per task rotated.
  const int k = 2;
  auto model = nn::make_mlp_classifier<double>(4, {8}, 3, k, nn::AdapterSpec{AdapterKind::Colora, 2}, 3);
  std::vector<nn::TaskData<double>> data(k);
  for (int i = 0; i < k; ++i) {
    const Matrix<double> W = rng.normal_matrix<double>(4, 3);
    auto make = [&](Index n, Matrix<double>& X, Matrix<double>& Y) {
      X = rng.normal_matrix<double>(n, 4);
      Y.resize(n, 1);
      const Matrix<double> Z = X * W;
      for (Index r = 0; r < n; ++r) {
        Index j;
        Z.row(r).maxCoeff(&j);
        Y(r, 0) = double(j);
      }
    };
    make(60, data[i].X, data[i].Y);
    make(30, data[i].X_val, data[i].Y_val);
  }
  nn::TrainerOptions o;
  o.loss = nn::LossKind::CrossEntropy;
  o.max_iterations = 400;
  o.eval_every = 5;
  o.patience = 6;
  o.min_delta = 1e-4;
  o.batch_size = 0;
  o.optimizer.shared.lr = o.optimizer.personal.lr = 0.03;
  nn::Trainer<decltype(model)> tr(model, data, o);
  const auto initial = tr.evaluate();
  int calls = 0;
  tr.set_callback([&](const nn::EvalRecord& r) {
    ++calls;
    CHECK(r.task_accuracy.size() == std::size_t(k));
    return true;
  });
  const auto res = tr.run();
  CHECK(calls == int(res.history.size()));
  CHECK(res.reason == colora::StopReason::ToleranceReached);
  CHECK(res.iterations < 400);
  // Restored to the best evaluated state.
  const auto now = tr.evaluate();
  CHECK(now.val_loss == doctest::Approx(res.best_val_loss).epsilon(1e-12));
  CHECK(res.best_val_loss < 0.9 * initial.val_loss);
  double acc0 = 0, acc1 = 0;
  for (int i = 0; i < k; ++i) {
    acc0 += initial.task_accuracy[i] / k;
    acc1 += now.task_accuracy[i] / k;
  }
  MESSAGE("validation accuracy " << acc0 << " -> " << acc1 << " after " << res.iterations << " iterations");
  CHECK(acc1 > acc0 + 0.15);

  // A callback returning false stops at once.
  auto m2 = nn::make_mlp_classifier<double>(4, {8}, 3, k, nn::AdapterSpec{AdapterKind::Colora, 2}, 3);
  o.patience = 0;
  nn::Trainer<decltype(m2)> t2(m2, data, o);
  t2.set_callback([](const nn::EvalRecord& r) { return r.iteration < 10; });
  const auto r2 = t2.run();
  CHECK(r2.reason == colora::StopReason::CallbackRequested);
  CHECK(r2.iterations == 10);
}

// ---------------------------------------------------------------- training policy (training_policy.hpp, selection.hpp)

namespace {

/// A callback object that records every evaluation and the parameters at it (the start included).
template <class S>
struct Recorder {
  std::vector<int> iterations;
  std::vector<double> losses;
  std::vector<std::vector<Matrix<S>>> values;
  template <class T>
  void begin_training(T& t, const nn::EvalRecord& start) {
    *this = Recorder{};
    add(t, start);
  }
  template <class T>
  bool on_evaluation(T& t, const nn::EvalRecord& r) {
    add(t, r);
    return false;
  }
  template <class T>
  void add(T& t, const nn::EvalRecord& r) {
    iterations.push_back(r.iteration);
    losses.push_back(r.val_loss);
    values.push_back(t.trainable_values());
  }
};

/// Index of the first strict minimum.
std::size_t first_argmin(const std::vector<double>& v) {
  return std::size_t(std::min_element(v.begin(), v.end()) - v.begin());
}

/// Index of the evaluation at which EarlyStopAtMinLoss(patience, min_delta) stops on `losses`
/// (losses[0] is the start), or losses.size() if it does not: the reference rule, written out.
std::size_t expected_stop(const std::vector<double>& losses, int patience, double min_delta) {
  double best = losses[0];
  int bad = 0;
  for (std::size_t e = 1; e < losses.size(); ++e) {
    if (losses[e] < best - min_delta) {
      best = losses[e];
      bad = 0;
    } else if (++bad >= patience) {
      return e;
    }
  }
  return losses.size();
}

/// Small data on which a fast learning rate over-fits: the validation loss falls, then rises.
template <class S>
std::vector<nn::TaskData<S>> overfitting_data(Rng rng) {
  std::vector<nn::TaskData<S>> d(2);
  const Matrix<S> W = rng.normal_matrix<S>(2, 6);
  for (auto& t : d) {
    t.X = rng.normal_matrix<S>(8, 6);
    t.Y = t.X * W.transpose() + S(0.8) * rng.normal_matrix<S>(8, 2);
    t.X_val = rng.normal_matrix<S>(20, 6);
    t.Y_val = t.X_val * W.transpose() + S(0.8) * rng.normal_matrix<S>(20, 2);
  }
  return d;
}

nn::TrainerOptions policy_options() {
  nn::TrainerOptions o;
  o.max_iterations = 150;
  o.eval_every = 5;
  o.batch_size = 0;
  o.num_threads = 1;
  o.optimizer.shared.lr = o.optimizer.personal.lr = 0.05;
  return o;
}

}  // namespace

TEST_CASE("EarlyStopAtMinLoss stops at the evaluation its rule names (constructed loss sequences)") {
  struct NoTrainer {};
  NoTrainer t;
  auto rec = [](int it, double loss) {
    nn::EvalRecord r;
    r.iteration = it;
    r.val_loss = loss;
    return r;
  };
  const std::vector<double> losses = {1.0, 0.9, 0.95, 0.8, 0.85, 0.86, 0.79, 0.9, 0.91, 0.92, 0.5};
  for (int patience : {1, 2, 3, 4})
    for (double min_delta : {0.0, 0.02, 0.06}) {
      CAPTURE(patience);
      CAPTURE(min_delta);
      nn::EarlyStopAtMinLoss es(patience, min_delta);
      es.begin_training(t, rec(0, losses[0]));
      std::size_t stopped = losses.size();
      for (std::size_t e = 1; e < losses.size(); ++e)
        if (es.on_evaluation(t, rec(int(10 * e), losses[e]))) {
          stopped = e;
          break;
        }
      CHECK(stopped == expected_stop(losses, patience, min_delta));
      CHECK(es.stopped_at() == (stopped < losses.size() ? int(10 * stopped) : -1));
    }
  // By hand: patience 3, min_delta 0 stops at the third evaluation after 0.79 (0.92, iteration 90).
  nn::EarlyStopAtMinLoss es3(3);
  es3.begin_training(t, rec(0, 1.0));
  std::vector<bool> stops;
  for (std::size_t e = 1; e < losses.size(); ++e) stops.push_back(es3.on_evaluation(t, rec(int(10 * e), losses[e])));
  CHECK(stops == std::vector<bool>{false, false, false, false, false, false, false, false, true, true});
  CHECK(es3.stopped_at() == 90);
  // Without the start as reference, the first evaluation always improves; patience 0 never stops.
  nn::EarlyStopAtMinLoss fresh(1, 0.0, /*include_start=*/false);
  fresh.begin_training(t, rec(0, 0.1));
  CHECK_FALSE(fresh.on_evaluation(t, rec(5, 0.5)));
  CHECK(fresh.on_evaluation(t, rec(10, 0.6)));
  nn::EarlyStopAtMinLoss never(0);
  never.begin_training(t, rec(0, 0.1));
  for (int e = 1; e < 50; ++e) CHECK_FALSE(never.on_evaluation(t, rec(e, 1.0 + e)));
  CHECK_THROWS_WITH_AS(nn::EarlyStopAtMinLoss(-1), doctest::Contains("patience = -1"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(nn::EarlyStopAtMinLoss(2, -0.5), doctest::Contains("min_delta = -0.5"), std::invalid_argument);
}

TEST_CASE_TEMPLATE("EarlyStopAtMinLoss stops a real run at the right evaluation", S, COLORA_TEST_SCALARS) {
  const nn::MlpSpec spec = small_mlp(AdapterKind::Colora, 2);
  const auto data = overfitting_data<S>(colora_test::rng_for("early stop run"));
  const nn::TrainerOptions o = policy_options();
  // The whole loss sequence first (no stopping), then runs with early stopping.
  nn::MlpModel<S> m0(spec);
  nn::Trainer<nn::MlpModel<S>> t0(m0, data, o);
  Recorder<S> all;
  CHECK(t0.info() == colora::Status::NotComputed);
  t0.run(all);
  CHECK(t0.info() == colora::Status::Success);
  REQUIRE(all.losses.size() == 31);
  for (int patience : {1, 3, 5}) {
    CAPTURE(patience);
    const std::size_t e = expected_stop(all.losses, patience, 0.0);
    nn::MlpModel<S> m(spec);
    nn::Trainer<nn::MlpModel<S>> t(m, data, o);
    nn::EarlyStopAtMinLoss es(patience);
    Recorder<S> seen;
    const nn::TrainResult res = t.run(seen, es);
    if (e < all.losses.size()) {
      CHECK(res.reason == colora::StopReason::CallbackRequested);
      CHECK(res.iterations == all.iterations[e]);
      CHECK(es.stopped_at() == all.iterations[e]);
    } else {
      CHECK(res.reason == colora::StopReason::MaxIterations);
      CHECK(res.iterations == o.max_iterations);
    }
    CHECK(t.info() == colora::Status::Success);
    // The run is the same run up to the stop: every loss seen is the straight run's.
    REQUIRE(seen.losses.size() == std::min(e + 1, all.losses.size()));
    for (std::size_t j = 0; j < seen.losses.size(); ++j) CHECK(seen.losses[j] == all.losses[j]);
  }
}

TEST_CASE_TEMPLATE("StoreBest restores the parameters of the minimum-validation evaluation, bit for bit", S,
                   COLORA_TEST_SCALARS) {
  const nn::MlpSpec spec = small_mlp(AdapterKind::Colora, 2);
  auto data = overfitting_data<S>(colora_test::rng_for("store best"));
  const nn::TrainerOptions o = policy_options();
  {
    nn::MlpModel<S> m(spec);
    nn::Trainer<nn::MlpModel<S>> t(m, data, o);
    Recorder<S> rec;
    nn::StoreBest<S> best;
    const nn::TrainResult res = t.run(rec, best);
    const std::size_t arg = first_argmin(rec.losses);
    MESSAGE("minimum validation loss at evaluation " << arg << " of " << rec.losses.size());
    REQUIRE(arg > 0);                      // training helps first ...
    REQUIRE(arg + 1 < rec.losses.size());  // ... then over-fits: the minimum is inside the run
    CHECK(best.best_iteration() == rec.iterations[arg]);
    CHECK(best.best_loss() == rec.losses[arg]);
    CHECK(bitwise_equal(t.trainable_values(), rec.values[arg]));
    CHECK(bitwise_equal(best.best_values(), rec.values[arg]));
    CHECK(res.final_eval.val_loss == rec.losses[arg]);  // final_eval is of the restored parameters
    CHECK(!bitwise_equal(rec.values.back(), rec.values[arg]));
    // restore = false: the model keeps the last parameters, the best are still available.
    nn::MlpModel<S> m2(spec);
    nn::Trainer<nn::MlpModel<S>> t2(m2, data, o);
    nn::StoreBest<S> kept(/*include_start=*/true, /*restore=*/false);
    t2.run(kept);
    CHECK(bitwise_equal(t2.trainable_values(), rec.values.back()));
    CHECK(bitwise_equal(kept.best_values(), rec.values[arg]));
  }
  {
    // Validation targets = the untrained model's outputs: the start (iteration 0) is best and is restored.
    const nn::MlpModel<S> m0(spec);
    for (int i = 0; i < 2; ++i) data[std::size_t(i)].Y_val = m0.predict(data[std::size_t(i)].X_val, i);
    nn::MlpModel<S> m(spec);
    nn::Trainer<nn::MlpModel<S>> t(m, data, o);
    const auto start = t.trainable_values();
    nn::StoreBest<S> best;
    t.run(best);
    CHECK(best.best_iteration() == 0);
    CHECK(bitwise_equal(t.trainable_values(), start));
    // Without the start as a candidate the best is an evaluated iterate.
    nn::MlpModel<S> m2(spec);
    nn::Trainer<nn::MlpModel<S>> t2(m2, data, o);
    nn::StoreBest<S> later(/*include_start=*/false);
    t2.run(later);
    CHECK(later.best_iteration() >= o.eval_every);
  }
  {
    nn::MlpModel<S> m(spec);
    nn::Trainer<nn::MlpModel<S>> t(m, data, o);
    auto v = t.trainable_values();
    v.pop_back();
    CHECK_THROWS_AS(t.set_trainable_values(v), std::invalid_argument);
    v = t.trainable_values();
    v[0] = Matrix<S>::Zero(v[0].rows() + 1, v[0].cols());
    CHECK_THROWS_WITH_AS(t.set_trainable_values(v), doctest::Contains("value 0 does not fit"), std::invalid_argument);
  }
}

TEST_CASE_TEMPLATE("validation split: disjoint, complete, sized as documented, deterministic for the Rng", S,
                   COLORA_TEST_SCALARS) {
  CHECK(nn::validation_count(1, 0.2) == 0);
  CHECK(nn::validation_count(2, 0.2) == 1);
  CHECK(nn::validation_count(5, 0.2) == 1);
  CHECK(nn::validation_count(10, 0.2) == 2);
  CHECK(nn::validation_count(20, 0.2) == 4);
  CHECK(nn::validation_count(10, 0.0) == 0);
  CHECK(nn::validation_count(10, 0.99) == 9);
  const Rng rng = colora_test::rng_for("validation split");
  for (Index n : {1, 2, 5, 10, 37}) {
    CAPTURE(n);
    const nn::TrainValSplit s = nn::split_train_val(n, 0.2, rng.substream(std::uint64_t(n)));
    CHECK(Index(s.val.size()) == nn::validation_count(n, 0.2));
    std::vector<Index> all = s.train;
    all.insert(all.end(), s.val.begin(), s.val.end());
    std::sort(all.begin(), all.end());
    REQUIRE(Index(all.size()) == n);
    for (Index i = 0; i < n; ++i) CHECK(all[std::size_t(i)] == i);  // disjoint and complete
    const nn::TrainValSplit again = nn::split_train_val(n, 0.2, rng.substream(std::uint64_t(n)));
    CHECK(again.train == s.train);
    CHECK(again.val == s.val);
  }
  // Whole tasks: examples of T = 2 rows stay together; X_val / Y_val are the held-out examples.
  std::vector<nn::TaskData<S>> data(3);
  for (std::size_t i = 0; i < data.size(); ++i) {
    const Index n = Index(5 + 5 * i);
    data[i].X.resize(2 * n, 1);
    data[i].Y.resize(n, 1);
    for (Index e = 0; e < n; ++e) {
      data[i].X(2 * e, 0) = S(e);
      data[i].X(2 * e + 1, 0) = S(1000 + e);
      data[i].Y(e, 0) = S(e);
    }
  }
  const auto split = nn::split_validation(data, 0.2, 2, rng.substream(99));
  const auto split2 = nn::split_validation(data, 0.2, 2, rng.substream(99));
  bool other_stream_differs = false;
  for (std::size_t i = 0; i < data.size(); ++i) {
    CAPTURE(i);
    const auto& t = split[i];
    const Index n = data[i].Y.rows();
    CHECK(t.Y_val.rows() == nn::validation_count(n, 0.2));
    CHECK(t.Y.rows() + t.Y_val.rows() == n);
    REQUIRE(t.X.rows() == 2 * t.Y.rows());
    REQUIRE(t.X_val.rows() == 2 * t.Y_val.rows());
    std::vector<Index> ids;
    for (Index e = 0; e < t.Y.rows(); ++e) ids.push_back(Index(t.Y(e, 0)));
    for (Index e = 0; e < t.Y_val.rows(); ++e) ids.push_back(Index(t.Y_val(e, 0)));
    for (Index e = 0; e < t.Y.rows(); ++e) CHECK(t.X(2 * e + 1, 0) == S(1000) + t.Y(e, 0));
    for (Index e = 0; e < t.Y_val.rows(); ++e) CHECK(t.X_val(2 * e, 0) == t.Y_val(e, 0));
    std::sort(ids.begin(), ids.end());
    for (Index e = 0; e < n; ++e) CHECK(ids[std::size_t(e)] == e);
    // The split of task i is split_train_val with the task's substream.
    const nn::TrainValSplit sp = nn::split_train_val(n, 0.2, rng.substream(99).substream(i));
    for (std::size_t j = 0; j < sp.val.size(); ++j) CHECK(t.Y_val(Index(j), 0) == S(sp.val[j]));
    CHECK(split2[i].Y_val == t.Y_val);
    CHECK(split2[i].X == t.X);
    other_stream_differs |= nn::split_validation(data, 0.2, 2, rng.substream(100))[i].Y_val != t.Y_val;
  }
  CHECK(other_stream_differs);
}

TEST_CASE_TEMPLATE("fit_selected picks the candidate of lowest validation loss, then refits", S, COLORA_TEST_SCALARS) {
  const nn::MlpSpec spec = small_mlp(AdapterKind::Colora, 2);
  auto data = overfitting_data<S>(colora_test::rng_for("candidate selection"));
  for (auto& t : data) {  // the selection carves its validation data from X, Y
    t.X_val.resize(0, 0);
    t.Y_val.resize(0, 0);
  }
  nn::TrainerOptions o;
  o.batch_size = 0;
  o.num_threads = 1;
  nn::SelectionOptions sel;
  sel.lrs = {1e-4, 0.01, 0.05};
  sel.personal_ratios = {1.0, 0.1};
  sel.max_iterations = 60;
  sel.eval_every = 5;
  sel.val_fraction = 0.25;
  const Rng split_rng = colora_test::rng_for("candidate selection split");
  auto make = [&] { return nn::MlpModel<S>(spec); };
  // Reference: every candidate trained on the same split with StoreBest.
  const auto fit = nn::split_validation(data, sel.val_fraction, 1, split_rng);
  std::vector<double> best_loss;
  std::vector<int> best_it;
  std::vector<std::vector<Matrix<S>>> best_values;
  for (double lr : sel.lrs)
    for (double ratio : sel.personal_ratios) {
      nn::TrainerOptions c = o;
      c.max_iterations = sel.max_iterations;
      c.eval_every = sel.eval_every;
      c.optimizer.shared.lr = lr;
      c.optimizer.personal.lr = lr * ratio;
      nn::MlpModel<S> m = make();
      nn::Trainer<nn::MlpModel<S>> t(m, fit, c);
      nn::StoreBest<S> keep;
      t.run(keep);
      best_loss.push_back(keep.best_loss());
      best_it.push_back(keep.best_iteration());
      best_values.push_back(keep.best_values());
    }
  const std::size_t arg = first_argmin(best_loss);
  const double worst = *std::max_element(best_loss.begin(), best_loss.end());
  REQUIRE(best_loss[arg] < worst);  // the candidates differ
  nn::Selection chosen;
  sel.refit = false;
  nn::MlpModel<S> kept = nn::fit_selected<nn::MlpModel<S>>(make, data, o, sel, split_rng, chosen);
  CHECK(chosen.lr == sel.lrs[arg / 2]);
  CHECK(chosen.personal_ratio == sel.personal_ratios[arg % 2]);
  CHECK(chosen.iteration == best_it[arg]);
  CHECK(chosen.val_loss == best_loss[arg]);
  CHECK_FALSE(chosen.numerical_issue);
  CHECK(bitwise_equal(nn::Trainer<nn::MlpModel<S>>(kept, fit, o).trainable_values(), best_values[arg]));
  // Refit: a fresh model trained on all examples with the chosen rates for the chosen iterations.
  sel.refit = true;
  nn::Selection again;
  nn::MlpModel<S> refit = nn::fit_selected<nn::MlpModel<S>>(make, data, o, sel, split_rng, again);
  CHECK(again.lr == chosen.lr);
  CHECK(again.iteration == chosen.iteration);
  nn::MlpModel<S> by_hand = make();
  nn::TrainerOptions r = o;
  r.max_iterations = chosen.iteration;
  r.eval_every = 0;
  r.optimizer.shared.lr = chosen.lr;
  r.optimizer.personal.lr = chosen.lr * chosen.personal_ratio;
  nn::Trainer<nn::MlpModel<S>>(by_hand, data, r).run();
  CHECK(bitwise_equal(values_of(refit), values_of(by_hand)));
  // No validation data (val_fraction 0): the first candidate, the whole budget, all examples.
  sel.val_fraction = 0;
  nn::Selection none;
  nn::fit_selected<nn::MlpModel<S>>(make, data, o, sel, split_rng, none);
  CHECK(none.lr == sel.lrs[0]);
  CHECK(none.iteration == sel.max_iterations);
  sel.lrs.clear();
  CHECK_THROWS_WITH_AS(nn::fit_selected<nn::MlpModel<S>>(make, data, o, sel, split_rng, none),
                       doctest::Contains("no learning rate"), std::invalid_argument);
}

namespace {

/// The lines of this file between the lines holding `begin` and `end`, without their first
/// `indent` characters: a code example that docs/nn.md must show verbatim.
std::string example_from_this_file(const std::string& begin, const std::string& end, std::size_t indent) {
  const std::string out = colora_test::example_from_file(__FILE__, begin, end, indent);
  REQUIRE_MESSAGE(!out.empty(), "cannot read the example from " << __FILE__);
  return out;
}

std::string docs_nn_md() {
  const std::string doc = colora_test::docs_page(__FILE__, "nn.md");
  REQUIRE_MESSAGE(!doc.empty(), "cannot read docs/nn.md next to " << __FILE__);
  return doc;
}

}  // namespace

TEST_CASE("docs/nn.md, Training policy: the example compiles, runs, and is the one the page shows") {
  std::ostringstream captured;
  std::streambuf* old = std::cout.rdbuf(captured.rdbuf());
  {
    // clang-format off
    // docs/nn.md training-policy example begin
    // 3 users, 40 examples each of a shared linear map plus noise (your data goes here).
    colora::Rng rng(42);
    const colora::Matrix<double> W = rng.normal_matrix<double>(2, 6);
    std::vector<nn::TaskData<double>> data(3);
    for (auto& t : data) {
      t.X = rng.normal_matrix<double>(40, 6);
      t.Y = t.X * W.transpose() + 0.3 * rng.normal_matrix<double>(40, 2);
    }
    nn::MlpSpec spec;
    spec.in = 6;
    spec.hidden = {16};
    spec.out = 2;
    spec.num_tasks = 3;
    spec.adapter = nn::AdapterSpec{colora::AdapterKind::Colora, 2};

    // Hold out 20 % of each task's own examples as X_val / Y_val (deterministic for the Rng).
    const auto split = nn::split_validation(data, 0.2, /*rows_per_example=*/1, colora::Rng(7));

    // Train with callback objects: stop after 5 evaluations without improvement,
    // and put back the parameters of the lowest validation loss when the run ends.
    nn::MlpModel<double> model(spec);
    nn::TrainerOptions opt;
    opt.max_iterations = 500;
    opt.eval_every = 10;
    opt.batch_size = 0;
    nn::Trainer<nn::MlpModel<double>> trainer(model, split, opt);
    nn::EarlyStopAtMinLoss stop(/*patience=*/5, /*min_delta=*/1e-4);
    nn::StoreBest<double> best;
    trainer.run(stop, best);
    std::cout << colora::to_string(trainer.info()) << ": best validation loss " << best.best_loss()
              << " at iteration " << best.best_iteration() << "\n";

    // Or let the library pick the learning rates on the split, then refit on all the examples.
    nn::SelectionOptions sel;
    sel.lrs = {3e-3, 1e-2, 3e-2};
    sel.personal_ratios = {1.0, 0.1};
    sel.max_iterations = 300;
    sel.refit = true;
    nn::Selection chosen;
    auto make = [&] { return nn::MlpModel<double>(spec); };
    nn::MlpModel<double> fitted = nn::fit_selected<nn::MlpModel<double>>(make, data, opt, sel, colora::Rng(7), chosen);
    std::cout << "lr " << chosen.lr << ", personal x" << chosen.personal_ratio << ", "
              << chosen.iteration << " iterations\n";
    // docs/nn.md training-policy example end
    // clang-format on
    std::cout.rdbuf(old);
    MESSAGE(captured.str());
    CHECK(trainer.info() == colora::Status::Success);
    CHECK(best.best_iteration() > 0);
    CHECK(chosen.iteration > 0);
    CHECK(fitted.predict(data[0].X, 0).allFinite());
  }
  std::cout.rdbuf(old);
  // The page shows it as the body of a complete program's main(), indented by 2
  // (tests/doc_snippets compiles and runs that program too).
  const std::string example = example_from_this_file("// docs/nn.md training-policy example begin",
                                                     "// docs/nn.md training-policy example end", 2);
  REQUIRE(example.size() > 500);
  CHECK_MESSAGE(docs_nn_md().find("int main() {\n" + example + "}\n```") != std::string::npos,
                "docs/nn.md must show this example verbatim:\n"
                    << example);
}
