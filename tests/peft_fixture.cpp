// Fixture of the PyTorch check (tests/python/test_peft_torch.py):
//   colora_peft_fixture OUT_DIR [--seed N]
// builds one colora::nn Linear 24 -> 16 with a CoLoRA adapter of rank 4
// (alpha = 8, so colora scales the update by 2) for 3 users, random seeded
// A, B, cores and bias, trains it for a few steps, and writes
//   OUT_DIR/peft_user1/      user 1's PEFT LoRA directory (module "linear", float32)
//   OUT_DIR/base_weight.npy  W0, 16 x 24 float32
//   OUT_DIR/base_bias.npy    b0, (16,) float32
//   OUT_DIR/x.npy            an 8 x 24 float32 input
//   OUT_DIR/y_user1.npy      colora's forward output for user 1, 8 x 16 float32
// Exit code 0, or 2 with a usage line on a bad command line, 1 on failure.
#include <colora/io/npy.hpp>
#include <colora/nn/nn.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  namespace nn = colora::nn;
  using colora::Matrix;
  const char* usage = "usage: colora_peft_fixture OUT_DIR [--seed N]\n";
  if (argc != 2 && argc != 4) {
    std::fputs(usage, stderr);
    return 2;
  }
  std::uint64_t seed = 1;
  if (argc == 4) {
    char* end = nullptr;
    const std::string flag = argv[2];
    seed = std::strtoull(argv[3], &end, 10);
    if (flag != "--seed" || *argv[3] == '\0' || *end != '\0' || *argv[3] == '-') {
      std::fputs(usage, stderr);
      return 2;
    }
  }
  const std::string out = argv[1];
  try {
    nn::MlpSpec spec;
    spec.in = 24;
    spec.out = 16;
    spec.num_tasks = 3;
    spec.adapter = nn::adapter(colora::AdapterKind::Colora, 4, /*alpha=*/8.0);
    spec.seed = seed;
    nn::MlpModel<float> model(spec);
    nn::Linear<float>& L = model.layers[0];
    const colora::Rng rng(seed, 0x9EF7);
    L.b0.value = 0.1f * rng.substream(1).normal_matrix<float>(1, 16);
    L.B.value = 0.3f * rng.substream(2).normal_matrix<float>(16, 4);
    for (int i = 0; i < 3; ++i)
      L.Ss[std::size_t(i)].value =
          Matrix<float>::Identity(4, 4) + 0.5f * rng.substream(10 + std::uint64_t(i)).normal_matrix<float>(4, 4);

    // A few training steps on random regression data, so A moves off its start too.
    std::vector<nn::TaskData<float>> data(3);
    for (int i = 0; i < 3; ++i) {
      colora::Rng d = rng.substream(100 + std::uint64_t(i));
      data[std::size_t(i)].X = d.normal_matrix<float>(20, 24);
      data[std::size_t(i)].Y = d.normal_matrix<float>(20, 16);
    }
    nn::TrainerOptions o;
    o.max_iterations = 5;
    o.eval_every = 0;
    o.batch_size = 0;
    o.num_threads = 1;
    o.seed = seed;
    nn::Trainer<nn::MlpModel<float>> trainer(model, data, o);
    trainer.run();

    auto targets = nn::peft_targets(model);
    targets[0].module = "linear";
    nn::export_peft(targets, 1, out + "/peft_user1");
    const Matrix<float> X = rng.substream(7).normal_matrix<float>(8, 24);
    colora::io::write_npy(out + "/base_weight.npy", L.W0.value);
    colora::io::write_npy(out + "/base_bias.npy", colora::Vector<float>(L.b0.value.row(0).transpose()));
    colora::io::write_npy(out + "/x.npy", X);
    colora::io::write_npy(out + "/y_user1.npy", model.predict(X, 1));
    std::printf("colora_peft_fixture: wrote %s (peft_user1/, base_weight.npy, base_bias.npy, x.npy, y_user1.npy)\n",
                out.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "colora_peft_fixture: failed: %s\n", e.what());
    return 1;
  }
  return 0;
}
