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
int recovery(cli::Args& args);
int theory(cli::Args& args);
int sweep(cli::Args& args);
int phase(cli::Args& args);
int fit(cli::Args& args);
int adapt(cli::Args& args);
int adapt_model(cli::Args& args);  ///< colora adapt --model DIR --data DIR
int predict(cli::Args& args);
int generate(cli::Args& args);
int nn_teacher(cli::Args& args);
int nn_digits(cli::Args& args);

/// Every subcommand, in the order `colora --help` lists them.
inline const Command* commands(size_t& count) {
  static const Command table[] = {
      {"recovery", "planted-truth recovery: every method's error against iteration, next to the oracle", &recovery},
      {"theory",
       "guarantee report of one run (GRIP and tangent GRIP, measured and predicted rates with CIs, floor vs oracle, dof, verdict); --experiment plots",
       &theory},
      {"sweep", "vary one knob of the planted problem: every method's test MSE and error, 95% intervals over trials",
       &sweep},
      {"phase", "probability of exact recovery on a samples x tasks grid (Clopper-Pearson intervals), heat map",
       &phase},
      {"fit", "bring your own data: fit a method to a directory of .npy task files, write the estimates", &fit},
      {"predict", "predictions of a fitted model (colora fit's model/) for new inputs of its tasks", &predict},
      {"adapt",
       "new tasks with few samples on a fitted shared part: test MSE against n_new per method, 95% CIs; with "
       "--model DIR --data DIR: fit your new tasks' cores on a fitted model",
       &adapt},
      {"generate", "write a planted problem as a data directory for colora fit (and its truth)", &generate},
      {"nn-teacher",
       "networks: a planted teacher per task on a frozen base; every adapter's test loss and subspace distance",
       &nn_teacher},
      {"nn-digits",
       "networks: rotated handwritten digits per user on a pre-trained frozen MLP; per-user accuracy, 95% CIs",
       &nn_digits},
      {"version", "print the library version and build configuration", &version},
  };
  count = sizeof(table) / sizeof(table[0]);
  return table;
}

}  // namespace cmd
}  // namespace colora
