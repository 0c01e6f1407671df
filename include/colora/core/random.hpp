// The project's random number generator: Philox4x32-10 (Salmon et al.,
// "Parallel random numbers: as easy as 1, 2, 3", SC'11), counter-based.
//
// A generator is addressed by (seed, stream). Its i-th block of four 32-bit
// words is Philox(key = seed, counter = (i, stream)), so any stream can be
// produced independently of every other — on any thread, in any order — and a
// problem generated from one seed is the same bit for bit on every machine and
// for every thread count. There is no global generator anywhere in colora.
//
// Derived quantities:
//   uniform():  53 random bits -> (k + 0.5) / 2^53, strictly inside (0, 1);
//   normal():   Box–Muller on two uniforms, both outputs used in turn;
//   fill_normal(M): entries in column-major order.
#pragma once

#include <cmath>
#include <cstdint>

#include "colora/core/config.hpp"

namespace colora {

class Rng {
 public:
  /// Stream `stream` of seed `seed`.
  explicit Rng(std::uint64_t seed = 0, std::uint64_t stream = 0) noexcept : seed_(seed), stream_(stream) {}

  std::uint64_t seed() const noexcept { return seed_; }
  std::uint64_t stream() const noexcept { return stream_; }

  /// An independent generator for sub-stream `id` of this stream. Stream ids
  /// are mixed (SplitMix64) so nested derivations do not collide in practice.
  Rng substream(std::uint64_t id) const noexcept { return Rng(seed_, mix(stream_ ^ mix(id + 0x9E3779B97F4A7C15ULL))); }

  /// The raw Philox4x32-10 block for a counter and key (for tests against
  /// the published known-answer vectors).
  static void philox_block(const std::uint32_t ctr_in[4], const std::uint32_t key_in[2],
                           std::uint32_t out[4]) noexcept {
    std::uint32_t c[4] = {ctr_in[0], ctr_in[1], ctr_in[2], ctr_in[3]};
    std::uint32_t k0 = key_in[0], k1 = key_in[1];
    for (int round = 0; round < 10; ++round) {
      const std::uint64_t p0 = std::uint64_t(0xD2511F53u) * c[0];
      const std::uint64_t p1 = std::uint64_t(0xCD9E8D57u) * c[2];
      const std::uint32_t hi0 = std::uint32_t(p0 >> 32), lo0 = std::uint32_t(p0);
      const std::uint32_t hi1 = std::uint32_t(p1 >> 32), lo1 = std::uint32_t(p1);
      c[0] = hi1 ^ c[1] ^ k0;
      c[1] = lo1;
      c[2] = hi0 ^ c[3] ^ k1;
      c[3] = lo0;
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    out[0] = c[0];
    out[1] = c[1];
    out[2] = c[2];
    out[3] = c[3];
  }

  std::uint32_t next_u32() noexcept {
    if (pos_ == 4) refill();
    return buf_[pos_++];
  }

  std::uint64_t next_u64() noexcept {
    const std::uint64_t hi = next_u32();
    return (hi << 32) | next_u32();
  }

  /// Uniform on the open interval (0, 1).
  double uniform() noexcept { return (double(next_u64() >> 11) + 0.5) * 0x1.0p-53; }

  /// Uniform on (lo, hi).
  double uniform(double lo, double hi) noexcept { return lo + (hi - lo) * uniform(); }

  /// Uniform integer in [0, n), n >= 1 (rejection, no modulo bias).
  std::uint64_t below(std::uint64_t n) noexcept {
    if (n <= 1) return 0;
    const std::uint64_t limit = ~std::uint64_t(0) - (~std::uint64_t(0) % n);
    std::uint64_t x;
    do x = next_u64();
    while (x >= limit);
    return x % n;
  }

  /// Standard normal (Box–Muller).
  double normal() noexcept {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double u1 = uniform(), u2 = uniform();
    const double radius = std::sqrt(-2.0 * std::log(u1));
    const double angle = 6.283185307179586476925286766559 * u2;
    spare_ = radius * std::sin(angle);
    has_spare_ = true;
    return radius * std::cos(angle);
  }

  /// Fill with iid N(0, stddev^2), column-major order.
  template <class Derived>
  void fill_normal(Eigen::DenseBase<Derived>& m, double stddev = 1.0) noexcept {
    using S = typename Derived::Scalar;
    for (Index j = 0; j < m.cols(); ++j)
      for (Index i = 0; i < m.rows(); ++i) m(i, j) = static_cast<S>(stddev * normal());
  }

  /// A rows x cols matrix of iid N(0, stddev^2).
  template <class Scalar>
  Matrix<Scalar> normal_matrix(Index rows, Index cols, double stddev = 1.0) {
    Matrix<Scalar> m(rows, cols);
    fill_normal(m, stddev);
    return m;
  }

 private:
  static std::uint64_t mix(std::uint64_t z) noexcept {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }

  void refill() noexcept {
    const std::uint32_t ctr[4] = {std::uint32_t(block_), std::uint32_t(block_ >> 32), std::uint32_t(stream_),
                                  std::uint32_t(stream_ >> 32)};
    const std::uint32_t key[2] = {std::uint32_t(seed_), std::uint32_t(seed_ >> 32)};
    philox_block(ctr, key, buf_);
    ++block_;
    pos_ = 0;
  }

  std::uint64_t seed_;
  std::uint64_t stream_;
  std::uint64_t block_ = 0;
  std::uint32_t buf_[4] = {0, 0, 0, 0};
  int pos_ = 4;
  bool has_spare_ = false;
  double spare_ = 0.0;
};

}  // namespace colora
