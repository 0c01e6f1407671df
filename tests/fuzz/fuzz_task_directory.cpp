// Fuzz target: the task-directory loader (io/task_directory.hpp). An input is
// a little archive of files, each entry
//   u8 name id | u32 length (little-endian) | length bytes
// (name id modulo the list below; a short tail ends the archive). The files
// are written into a private scratch directory, which is then loaded as
// double and as float. Seeds: directories written by
// io::save_regression_directory, packed the same way.
#include <colora/io/task_directory.hpp>
#include <colora/regression/generator.hpp>

#include <filesystem>

#include "fuzz_support.hpp"

namespace {

const char* const kNames[] = {"X_0.npy", "Y_0.npy",      "X_1.npy",      "Y_1.npy",      "X_2.npy",
                              "Y_2.npy", "X_test_0.npy", "Y_test_0.npy", "X_test_1.npy", "Y_test_1.npy",
                              "W0.npy",  "X_10.npy",     "Y_10.npy",     "X_01.npy",     "notes.txt"};
constexpr std::size_t kNumNames = sizeof(kNames) / sizeof(kNames[0]);

std::string task_dir() { return colora_fuzz::scratch_dir() + "/tasks"; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace fs = std::filesystem;
  const std::string dir = task_dir();
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::size_t pos = 0;
  while (size - pos >= 5) {
    const std::size_t id = data[pos] % kNumNames;
    std::uint32_t len = std::uint32_t(data[pos + 1]) | std::uint32_t(data[pos + 2]) << 8 |
                        std::uint32_t(data[pos + 3]) << 16 | std::uint32_t(data[pos + 4]) << 24;
    pos += 5;
    if (len > size - pos) len = std::uint32_t(size - pos);
    colora_fuzz::write_bytes(dir + "/" + kNames[id], data + pos, len);
    pos += len;
  }
  try {
    const auto pb = colora::io::load_regression_directory<double>(dir);
    (void)pb.total_samples();
  } catch (const std::exception&) {
  }
  try {
    const auto pb = colora::io::load_regression_directory<float>(dir);
    (void)pb.total_samples();
  } catch (const std::exception&) {
  }
  return 0;
}

void colora_fuzz_write_seeds(const std::string& dir) {
  namespace fs = std::filesystem;
  int n = 0;
  for (int variant = 0; variant < 3; ++variant) {
    colora::GeneratorOptions g;
    g.tasks = 2 + variant;
    g.p = 3;
    g.q = 2;
    g.rank = 1;
    g.samples = {4};
    g.test_samples = variant == 1 ? 0 : 2;
    g.random_base = variant == 2;
    g.seed = std::uint64_t(11 + variant);
    const std::string src = colora_fuzz::scratch_dir() + "/seed_source";
    fs::remove_all(src);
    colora::io::save_regression_directory(src, colora::generate_regression<double>(g));
    std::string archive;
    for (std::size_t id = 0; id < kNumNames; ++id) {
      const fs::path f = fs::path(src) / kNames[id];
      if (!fs::exists(f)) continue;
      const std::string bytes = colora_fuzz::read_bytes(f.string());
      archive += char(id);
      for (int b = 0; b < 4; ++b) archive += char((bytes.size() >> (8 * b)) & 0xff);
      archive += bytes;
    }
    colora_fuzz::save_seed(dir, "seed_" + std::to_string(n++), archive);
    fs::remove_all(src);
  }
}
