#include <colora/core/config.hpp>
#include <colora/version.hpp>

#include <cstdio>

#include "commands.hpp"

namespace colora {
namespace cmd {

int version(cli::Args& args) {
  if (args.finish()) return 0;
  std::printf("colora %s (OpenMP %s, Eigen %d.%d.%d, SIMD: %s)\n", version_string(), COLORA_HAS_OPENMP ? "on" : "off",
              EIGEN_WORLD_VERSION, EIGEN_MAJOR_VERSION, EIGEN_MINOR_VERSION, simd_instruction_sets());
  return 0;
}

}  // namespace cmd
}  // namespace colora
