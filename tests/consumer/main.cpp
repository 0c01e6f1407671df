// Built against an installed colora via find_package(colora CONFIG REQUIRED).
#include <colora/colora.hpp>

#include <cstdio>

int main() {
  const colora::Version v = colora::version();
  if (v.major != COLORA_VERSION_MAJOR) return 1;
  // Something that needs Eigen and the library proper, not only the headers.
  colora::Rng rng(42);
  const auto Q = colora::haar_orthonormal<double>(rng, 6, 3);
  const double err = (Q.transpose() * Q - Eigen::MatrixXd::Identity(3, 3)).norm();
  std::printf("consumer: colora %s, ||Q^T Q - I|| = %.2e\n", colora::version_string(), err);
  return err < 1e-12 ? 0 : 1;
}
