// The doctest main shared by every test executable: prints the seed first.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "test_support.hpp"

int main(int argc, char** argv) {
#ifdef COLORA_TEST_DOUBLE_ONLY
  const char* scalars = "double (COLORA_TEST_FLOAT=OFF)";
#else
  const char* scalars = "double and float";
#endif
  std::printf("colora %s tests: seed = %llu (override with COLORA_SEED=<n>), OpenMP %s, typed tests for %s\n",
              colora::version_string(), static_cast<unsigned long long>(colora_test::seed()),
              COLORA_HAS_OPENMP ? "on" : "off", scalars);
  doctest::Context context;
  context.applyCommandLine(argc, argv);
  return context.run();
}
