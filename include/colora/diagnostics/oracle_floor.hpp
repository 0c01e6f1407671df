// Closed-form oracle floors (docs/solver.md, "Diagnostics"): the expected
// squared error of a least-squares fit of the personal parameters when
// everything shared is known, for (M1) with Sigma = I and Gaussian noise of
// standard deviation sigma. Derivation: docs/theory.md, "Oracle floors".
//
//   CoLoRA core S_i (r x r), A, B known:     sigma^2 r^2 / (n - r - 1)
//   personal head H_i (q x r), A known:      sigma^2 q r / (n - r - 1)
//   free per-task W_i (q x p):               sigma^2 q p / (n - p - 1)
//
// Each returns +infinity when the mean does not exist (n <= d + 1).
#pragma once

#include <limits>

namespace colora {

/// E ||S_hat - S*||_F^2 for the least-squares core with A*, B* known.
inline double oracle_core_floor(double sigma, long r, long n) {
  return n > r + 1 ? sigma * sigma * double(r) * double(r) / double(n - r - 1)
                   : std::numeric_limits<double>::infinity();
}

/// E ||H_hat - H*||_F^2 for a personal q x r head with A* known (FedRep, FedSA-LoRA).
inline double oracle_head_floor(double sigma, long q, long r, long n) {
  return n > r + 1 ? sigma * sigma * double(q) * double(r) / double(n - r - 1)
                   : std::numeric_limits<double>::infinity();
}

/// E ||W_hat - W*||_F^2 for a free per-task q x p least-squares fit.
inline double oracle_free_floor(double sigma, long q, long p, long n) {
  return n > p + 1 ? sigma * sigma * double(q) * double(p) / double(n - p - 1)
                   : std::numeric_limits<double>::infinity();
}

/// Expected held-out MSE per output entry of the core oracle (M1, Sigma = I,
/// exact CoLoRA model): sigma^2 + E||S_hat - S*||_F^2 / q (docs/theory.md,
/// "Oracle floors").
/// With q < r the personal part is a q x r head (B = [I_q 0]): the head floor.
inline double oracle_core_test_mse(double sigma, long q, long r, long n) {
  const double floor = q < r ? oracle_head_floor(sigma, q, r, n) : oracle_core_floor(sigma, r, n);
  return sigma * sigma + floor / double(q);
}

}  // namespace colora
