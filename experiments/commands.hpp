// The subcommands of the colora program. Each lives in its own .cpp file,
// declares its flags through cli::Args, and returns the process exit code.
#pragma once

#include "cli.hpp"

namespace colora {
namespace cmd {

struct Command {
  const char* name;
  const char* summary;
  int (*run)(cli::Args&);
};

int version(cli::Args& args);

/// Every subcommand, in the order `colora --help` lists them.
inline const Command* commands(size_t& count) {
  static const Command table[] = {
      {"version", "print the library version and build configuration", &version},
  };
  count = sizeof(table) / sizeof(table[0]);
  return table;
}

}  // namespace cmd
}  // namespace colora
