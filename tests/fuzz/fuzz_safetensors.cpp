// Fuzz target: the safetensors reader (io/safetensors.hpp) from memory, and
// the PEFT config parser on the same bytes. A file that reads is written back
// and must read back to the same tensors and metadata. Seeds: files written
// by io::write_safetensors (F32, F64, mixed, 1-D, empty tensors, metadata).
#include <colora/core/random.hpp>
#include <colora/io/safetensors.hpp>
#include <colora/nn/peft.hpp>

#include <cstdlib>
#include <sstream>

#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    std::istringstream in(bytes);
    const colora::io::Safetensors f = colora::io::read_safetensors(in, "fuzz.safetensors");
    std::ostringstream os;
    colora::io::write_safetensors(os, f.tensors, f.metadata);
    std::istringstream again(os.str());
    const colora::io::Safetensors g = colora::io::read_safetensors(again, "rewritten.safetensors");
    if (g.tensors.size() != f.tensors.size() || g.metadata != f.metadata) std::abort();
    for (std::size_t i = 0; i < f.tensors.size(); ++i) {
      const auto &a = f.tensors[i], &b = g.tensors[i];
      if (a.name != b.name || a.dtype != b.dtype || a.shape != b.shape || a.f32.size() != b.f32.size() ||
          a.f64.size() != b.f64.size())
        std::abort();
      const bool same = a.dtype == colora::io::SafetensorsDtype::F32
                            ? (a.f32.size() == 0 ||
                               std::memcmp(a.f32.data(), b.f32.data(), sizeof(float) * std::size_t(a.f32.size())) == 0)
                            : (a.f64.size() == 0 ||
                               std::memcmp(a.f64.data(), b.f64.data(), sizeof(double) * std::size_t(a.f64.size())) == 0);
      if (!same) std::abort();
    }
  } catch (const std::exception&) {
  }
  try {
    (void)colora::nn::detail::parse_peft_config(bytes, "fuzz.json");
  } catch (const std::exception&) {
  }
  return 0;
}

void colora_fuzz_write_seeds(const std::string& dir) {
  namespace io = colora::io;
  colora::Rng rng(7, 0x5afe);
  int n = 0;
  auto save = [&](const std::vector<io::SafetensorsTensor>& ts, const std::map<std::string, std::string>& meta) {
    std::ostringstream os;
    io::write_safetensors(os, ts, meta);
    colora_fuzz::save_seed(dir, "seed_" + std::to_string(n++) + ".safetensors", os.str());
  };
  save({io::safetensors_tensor<float>("base_model.model.linear.lora_A.weight", rng.normal_matrix<float>(2, 5)),
        io::safetensors_tensor<float>("base_model.model.linear.lora_B.weight", rng.normal_matrix<float>(3, 2))},
       {{"format", "pt"}});
  save({io::safetensors_tensor<double>("A", rng.normal_matrix<double>(3, 4)),
        io::safetensors_tensor<float>("v", rng.normal_matrix<float>(4, 1), /*one_d=*/true),
        io::safetensors_tensor<double>("empty", colora::Matrix<double>(0, 3))},
       {{"format", "colora"}, {"k\u00e9y", "v\"al\n"}});
  save({}, {});
  save({io::safetensors_tensor<double>("x", rng.normal_matrix<double>(1, 1))}, {});
  colora_fuzz::save_seed(dir, "seed_config.json",
                         "{\"peft_type\": \"LORA\", \"r\": 2, \"lora_alpha\": 2.0, \"target_modules\": [\"a\"], "
                         "\"bias\": \"none\", \"rank_pattern\": {\"a\": 3}, \"alpha_pattern\": {}, "
                         "\"task_type\": null, \"use_rslora\": false}");
}
