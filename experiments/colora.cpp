// The colora command-line program: `colora <subcommand> [--flags]`.
// Errors in the command line or in the values given: one line on stderr and
// exit code 2. Other failures (I/O): one line and exit code 1.
#include <cstdio>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

#include "commands.hpp"

int main(int argc, char** argv) {
  using namespace colora;
  size_t n = 0;
  const cmd::Command* table = cmd::commands(n);
  auto usage = [&](FILE* f) {
    std::fprintf(f, "usage: colora <command> [flags]   (colora <command> --help for its flags)\n\ncommands:\n");
    for (size_t i = 0; i < n; ++i) std::fprintf(f, "  %-12s %s\n", table[i].name, table[i].summary);
  };
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  // `colora --version` is `colora version`.
  const std::string name = std::strcmp(argv[1], "--version") == 0 ? std::string("version") : std::string(argv[1]);
  if (name == "--help" || name == "-h" || name == "help") {
    usage(stdout);
    return 0;
  }
  for (size_t i = 0; i < n; ++i) {
    if (name != table[i].name) continue;
    try {
      cli::Args args(name, table[i].summary, argc, argv, 2);
      return table[i].run(args);
    } catch (const cli::UsageError& e) {
      std::fprintf(stderr, "colora %s: error: %s\n", name.c_str(), e.what());
      return 2;
    } catch (const std::invalid_argument& e) {
      std::fprintf(stderr, "colora %s: error: %s\n", name.c_str(), e.what());
      return 2;
    } catch (const std::bad_alloc&) {
      std::fprintf(stderr,
                   "colora %s: failed: out of memory (std::bad_alloc): the run needs more memory than this machine "
                   "gives it; make the problem smaller (--tasks, --samples, --test-samples, --p, --q) or run fewer "
                   "--threads\n",
                   name.c_str());
      return 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "colora %s: failed: %s\n", name.c_str(), e.what());
      return 1;
    }
  }
  std::fprintf(stderr, "colora: error: unknown command '%s' (colora --help lists them)\n", name.c_str());
  return 2;
}
