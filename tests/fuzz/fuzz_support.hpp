// Shared pieces of the fuzz targets (docs/reliability.md).
//
// Every target tests/fuzz/fuzz_<name>.cpp defines
//   extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);
//   void colora_fuzz_write_seeds(const std::string& dir);  // seeds made by the library itself
// and is built twice:
//   * with clang's libFuzzer + ASan + UBSan (CMake option COLORA_FUZZ, preset `fuzz`):
//     `fuzz_<name> -colora_seeds=DIR` writes the seed corpus and exits; any other
//     command line is libFuzzer's own;
//   * with the ordinary compiler and replay_main.cpp (every test build): the
//     ctest entry `fuzz_replay_<name>` writes the seeds and runs every seed and
//     every kept regression input (tests/fuzz/regressions/<name>/) once.
// A rejected input must end in a std::exception (caught here as "refused");
// anything else (a crash, a sanitizer report, a hang) is a finding.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include <unistd.h>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);
void colora_fuzz_write_seeds(const std::string& dir);

namespace colora_fuzz {

/// A scratch directory private to this process (created on first use,
/// removed at a normal exit). The name is kept in a never-destroyed string so
/// that the exit handler can still read it.
inline const std::string& scratch_dir() {
  static const std::string* dir = [] {
    std::error_code ec;
    std::filesystem::path base = std::filesystem::temp_directory_path(ec);
    if (ec) base = ".";
    const std::filesystem::path d = base / ("colora_fuzz_" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return new std::string(d.string());
  }();
  static const bool registered = [] {
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(*dir, ignored);
    });
    return true;
  }();
  (void)registered;
  return *dir;
}

/// Writes bytes to path (overwriting); throws if it cannot.
inline void write_bytes(const std::string& path, const void* data, std::size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (size > 0) out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  out.close();
  if (!out) throw std::runtime_error("colora fuzz: cannot write '" + path + "'");
}

/// Writes one seed input dir/name.
inline void save_seed(const std::string& dir, const std::string& name, const std::string& bytes) {
  std::filesystem::create_directories(dir);
  write_bytes((std::filesystem::path(dir) / name).string(), bytes.data(), bytes.size());
}

/// Reads a whole file (seeds are written by the library into files first).
inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace colora_fuzz

#ifdef COLORA_LIBFUZZER
#include <cstdlib>
#include <cstring>
/// libFuzzer calls this before it parses its own flags: `-colora_seeds=DIR`
/// writes the seed corpus into DIR and exits.
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  const char* flag = "-colora_seeds=";
  for (int i = 1; i < *argc; ++i)
    if (std::strncmp((*argv)[i], flag, std::strlen(flag)) == 0) {
      colora_fuzz_write_seeds((*argv)[i] + std::strlen(flag));
      std::exit(0);
    }
  return 0;
}
#endif
