// Fuzz target: the .npy reader (io/npy.hpp), as float and as double, from
// memory. Seeds: files written by io::write_npy in both dtypes and orders.
#include <colora/core/random.hpp>
#include <colora/io/npy.hpp>

#include <sstream>

#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    std::istringstream in(bytes);
    const auto m = colora::io::read_npy<double>(in, "fuzz.npy");
    (void)m.sum();
  } catch (const std::exception&) {
  }
  try {
    std::istringstream in(bytes);
    const auto m = colora::io::read_npy<float>(in, "fuzz.npy");
    (void)m.sum();
  } catch (const std::exception&) {
  }
  return 0;
}

void colora_fuzz_write_seeds(const std::string& dir) {
  using colora::io::NpyOrder;
  colora::Rng rng(7, 0x6e7079);
  int n = 0;
  auto save = [&](const auto& m, NpyOrder order) {
    std::ostringstream os;
    colora::io::write_npy(os, m, order);
    colora_fuzz::save_seed(dir, "seed_" + std::to_string(n++) + ".npy", os.str());
  };
  for (NpyOrder order : {NpyOrder::C, NpyOrder::Fortran}) {
    save(rng.normal_matrix<double>(3, 4), order);
    save(rng.normal_matrix<float>(2, 5), order);
    save(colora::Matrix<double>(0, 3), order);
  }
  save(colora::Vector<double>(rng.normal_matrix<double>(6, 1)), NpyOrder::C);
  save(colora::Vector<float>(rng.normal_matrix<float>(1, 1)), NpyOrder::C);
}
