// Replays fuzz inputs without libFuzzer (any compiler, any sanitizer):
//   replay_<name> [--seeds DIR] [FILE | DIR]...
// --seeds writes the target's seed corpus into DIR first; then every FILE and
// every regular file of every DIR is run once through LLVMFuzzerTestOneInput.
// A crash or sanitizer report fails the run; a refused input is fine.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "fuzz_support.hpp"

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  std::vector<std::string> inputs;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--seeds" && i + 1 < argc) {
      colora_fuzz_write_seeds(argv[++i]);
      continue;
    }
    std::error_code ec;
    if (fs::is_directory(a, ec)) {
      std::vector<std::string> files;
      for (const auto& e : fs::directory_iterator(a))
        if (e.is_regular_file()) files.push_back(e.path().string());
      std::sort(files.begin(), files.end());
      inputs.insert(inputs.end(), files.begin(), files.end());
    } else if (fs::is_regular_file(a, ec)) {
      inputs.push_back(a);
    } else {
      std::fprintf(stderr, "replay: '%s' is neither a file nor a directory\n", a.c_str());
      return 2;
    }
  }
  if (inputs.empty()) {
    std::fprintf(stderr, "replay: no input to run\n");
    return 2;
  }
  for (const auto& f : inputs) {
    const std::string bytes = colora_fuzz::read_bytes(f);
    LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
  }
  std::printf("replay: %zu inputs ran without a crash\n", inputs.size());
  return 0;
}
