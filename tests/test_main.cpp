// The doctest main shared by every test executable: prints the seed first.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "test_support.hpp"

int main(int argc, char** argv) {
  std::printf("colora %s tests: seed = %llu (override with COLORA_SEED=<n>), OpenMP %s\n", colora::version_string(),
              static_cast<unsigned long long>(colora_test::seed()), COLORA_HAS_OPENMP ? "on" : "off");
  doctest::Context context;
  context.applyCommandLine(argc, argv);
  return context.run();
}
