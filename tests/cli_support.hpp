// Helpers for tests that run the built colora program: scratch directories,
// running a command with its output captured, reading files back.
#pragma once

#include <sys/wait.h>

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "test_support.hpp"

namespace colora_test {

/// A fresh, empty directory `<cwd>/<suite>/<name>` for one test.
inline std::string scratch_dir(const std::string& suite, const std::string& name) {
  namespace fs = std::filesystem;
  const fs::path p = fs::current_path() / suite / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

/// The whole content of a file ("" if it cannot be read).
inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

struct CliRun {
  int code = -1;  ///< exit code, -1 if the program did not exit normally
  std::string out, err;
};

/// Runs `<program> <args>` with stdout and stderr captured into files of `dir`.
inline CliRun run_program(const std::string& program, const std::string& args, const std::string& dir) {
  const std::string out = dir + "/stdout.txt", err = dir + "/stderr.txt";
  const std::string cmd = "'" + program + "' " + args + " >'" + out + "' 2>'" + err + "'";
  const int status = std::system(cmd.c_str());
  CliRun r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_text(out);
  r.err = read_text(err);
  return r;
}

/// " --seed <s>" derived from the run's seed (COLORA_SEED).
inline std::string seed_flag() { return " --seed " + std::to_string(seed() % 100000); }

/// Number of newline characters in `s`.
inline int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

/// Bad command lines: exit code 2 and one line on stderr that mentions `mentions`.
inline void check_usage_error(const std::string& program, const std::string& args, const std::string& dir,
                              const std::string& mentions) {
  CAPTURE(args);
  const CliRun r = run_program(program, args, dir);
  CHECK(r.code == 2);
  CHECK(count_lines(r.err) == 1);
  CHECK(r.err.find(mentions) != std::string::npos);
}

}  // namespace colora_test
