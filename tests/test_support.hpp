// Shared test helpers: the run's seed, tolerances per scalar type.
#pragma once

#include <colora/colora.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace colora_test {

/// The seed of this test run: COLORA_SEED if set, else a fixed default.
/// test_main.cpp prints it at start so any failure can be replayed.
inline std::uint64_t seed() {
  static const std::uint64_t s = [] {
    const char* env = std::getenv("COLORA_SEED");
    return env && *env ? std::strtoull(env, nullptr, 10) : std::uint64_t(20261129);
  }();
  return s;
}

/// A generator for one test: the run's seed, a stream per test name.
inline colora::Rng rng_for(const std::string& test_name) {
  std::uint64_t h = 1469598103934665603ULL;  // FNV-1a of the name
  for (unsigned char c : test_name) h = (h ^ c) * 1099511628211ULL;
  return colora::Rng(seed(), h);
}

/// The scalar types of every TEST_CASE_TEMPLATE: double and float, or double
/// only when the build sets COLORA_TEST_DOUBLE_ONLY (the sanitized CI run;
/// CMake option COLORA_TEST_FLOAT=OFF).
#ifdef COLORA_TEST_DOUBLE_ONLY
#define COLORA_TEST_SCALARS double
#else
#define COLORA_TEST_SCALARS double, float
#endif

/// Tolerances per scalar type (ensmallen's Tolerances, Eigen's test_precision).
template <class Scalar>
struct Tol;
template <>
struct Tol<double> {
  static constexpr double tight = 1e-12;    ///< rounding-level identities
  static constexpr double recovery = 1e-8;  ///< noiseless planted recovery
  static constexpr double loose = 1e-6;
};
template <>
struct Tol<float> {
  static constexpr double tight = 1e-5;
  static constexpr double recovery = 1e-3;
  static constexpr double loose = 1e-2;
};

}  // namespace colora_test
