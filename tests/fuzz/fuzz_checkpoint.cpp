// Fuzz target: nn::Trainer::load_checkpoint on hostile files (tests/fuzz/fuzz_support.hpp).
//
// data[0] even: data[1..] is the PAYLOAD, framed by nn::write_checkpoint_file (valid header and
// checksum), so fuzzing explores the payload parser; data[0] odd: data[1..] is the whole file.
// Bit 1 of data[0] picks the schedule the loaded state is resumed with (0 joint, 1 alternating).
// A refused file is any std::exception. A file that loads must also be exact and safe to use:
// saving the loaded state again gives the same payload, and the state is resumed for up to two
// iterations (with evaluation, early stopping and best-state restore), evaluated and stepped.
#include <colora/nn/nn.hpp>

#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include "fuzz_support.hpp"

namespace {

namespace nn = colora::nn;
using Model = nn::MlpModel<double>;
using FuzzTrainer = nn::Trainer<Model>;

/// The fixed model of this target (inputs and seeds): a 2-task classifier MLP 4 -> 5 -> 2 with
/// colora adapters of rank 2.
Model make_model() {
  return nn::make_mlp_classifier<double>(4, {5}, 2, 2, nn::AdapterSpec{colora::AdapterKind::Colora, 2}, 11);
}

/// Tiny fixed data: 4 training and 2 validation examples per task, classes 0/1.
const std::vector<nn::TaskData<double>>& fuzz_data() {
  static const std::vector<nn::TaskData<double>> data = [] {
    std::vector<nn::TaskData<double>> d(2);
    colora::Rng rng(7, 0x636B7074);
    for (int i = 0; i < 2; ++i) {
      d[i].X = rng.normal_matrix<double>(4, 4);
      d[i].Y = (colora::Matrix<double>(4, 1) << 0, 1, 1, 0).finished();
      d[i].X_val = rng.normal_matrix<double>(2, 4);
      d[i].Y_val = (colora::Matrix<double>(2, 1) << double(i), 1).finished();
    }
    return d;
  }();
  return data;
}

/// AdamW, batch_size 2, cross-entropy (so history records carry accuracies); evaluation every
/// iteration with patience 2 when `early_stopping`, so a resumed run uses the loaded best state.
nn::TrainerOptions fuzz_options(int iterations, bool early_stopping, bool alternating) {
  nn::TrainerOptions o;
  o.schedule = alternating ? nn::Schedule::Alternating : nn::Schedule::Joint;
  o.tau = 2;
  o.max_iterations = iterations;
  o.batch_size = 2;
  o.loss = nn::LossKind::CrossEntropy;
  o.optimizer.kind = nn::OptimizerKind::AdamW;
  o.eval_every = early_stopping ? 1 : 0;
  o.patience = early_stopping ? 2 : 0;
  o.num_threads = 1;
  return o;
}

[[noreturn]] void finding(const std::string& what) {
  std::fprintf(stderr, "fuzz_checkpoint finding: %s\n", what.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string path = colora_fuzz::scratch_dir() + "/checkpoint.ckpt";
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0)
    nn::write_checkpoint_file(path, body);
  else
    colora_fuzz::write_bytes(path, body.data(), body.size());
  const bool alternating = (data[0] >> 1) & 1;

  int iteration = 0;
  {
    Model model = make_model();
    FuzzTrainer probe(model, fuzz_data(), fuzz_options(0, true, alternating));
    try {
      probe.load_checkpoint(path);
    } catch (const std::exception&) {
      return 0;  // refused
    }
    iteration = probe.iteration();
    // Loading is exact: the loaded state saves to the very same payload.
    const std::string payload = nn::read_checkpoint_file(path), again = path + ".again";
    probe.save_checkpoint(again);
    if (nn::read_checkpoint_file(again) != payload) finding("the loaded state saves to another payload");
    std::remove(again.c_str());
  }
  // A state that loads is safe to use: resume it for up to two iterations, evaluate, step.
  Model model = make_model();
  FuzzTrainer tr(model, fuzz_data(),
                 fuzz_options(iteration <= INT_MAX - 2 ? iteration + 2 : INT_MAX, true, alternating));
  tr.load_checkpoint(path);
  const nn::TrainResult res = tr.run();
  if (res.iterations < iteration) finding("run() went back in iterations");
  tr.evaluate();
  try {
    tr.step();
  } catch (const std::invalid_argument&) {
    if (tr.iteration() != INT_MAX) throw;  // step() refuses to count past INT_MAX only
  }
  return 0;
}

/// Seeds: real checkpoints of the model after 0, 3 and 7 iterations, with and without
/// early-stopping state and history, in both modes ('\0' + payload, '\1' + whole file).
void colora_fuzz_write_seeds(const std::string& dir) {
  const std::string path = colora_fuzz::scratch_dir() + "/seed.ckpt";
  for (int iterations : {0, 3, 7})
    for (bool es : {false, true}) {
      Model model = make_model();
      nn::TrainerOptions o = fuzz_options(iterations, es, false);
      o.eval_every = es ? 2 : 0;
      o.patience = es ? 3 : 0;
      FuzzTrainer tr(model, fuzz_data(), o);
      tr.run();
      tr.save_checkpoint(path);
      const std::string name = "it" + std::to_string(iterations) + (es ? "_early_stopping" : "_plain");
      colora_fuzz::save_seed(dir, "payload_" + name, std::string(1, '\0') + nn::read_checkpoint_file(path));
      colora_fuzz::save_seed(dir, "file_" + name, std::string(1, '\1') + colora_fuzz::read_bytes(path));
    }
  std::remove(path.c_str());
}
