// Deterministic parallel reductions over tasks.
//
// Tasks are split into a fixed number of contiguous chunks that does NOT
// depend on the thread count; each chunk accumulates its tasks in order, the
// chunks run in parallel, and the chunk sums are added in chunk order. The
// floating-point result is therefore identical for every thread count.
#pragma once

#include <vector>

#include "colora/core/config.hpp"

namespace colora {
namespace detail {

/// Number of chunks used for k tasks (fixed, independent of threads).
inline Index reduction_chunks(Index k, Index max_chunks = 32) { return k < max_chunks ? k : max_chunks; }

/// total = sum over tasks i in [0, k) of the contribution that add(i, acc)
/// adds into acc; `zero` is the additive identity (with the right shape).
template <class Acc, class AddTask>
Acc ordered_sum(Index k, int num_threads, const Acc& zero, AddTask&& add, Index max_chunks = 32) {
  const Index chunks = reduction_chunks(k, max_chunks);
  if (chunks <= 1) {
    Acc acc = zero;
    for (Index i = 0; i < k; ++i) add(i, acc);
    return acc;
  }
  std::vector<Acc> partial(static_cast<size_t>(chunks), zero);
  const int nt = resolve_threads(num_threads, chunks);
  (void)nt;
  COLORA_OMP(parallel for num_threads(nt) schedule(static))
  for (Index c = 0; c < chunks; ++c) {
    const Index lo = c * k / chunks, hi = (c + 1) * k / chunks;
    for (Index i = lo; i < hi; ++i) add(i, partial[static_cast<size_t>(c)]);
  }
  Acc total = partial[0];
  for (Index c = 1; c < chunks; ++c) total += partial[static_cast<size_t>(c)];
  return total;
}

/// Runs f(i) for i in [0, k) in parallel (independent per-task work).
template <class F>
void parallel_for_tasks(Index k, int num_threads, F&& f) {
  const int nt = resolve_threads(num_threads, k);
  (void)nt;
  COLORA_OMP(parallel for num_threads(nt) schedule(dynamic, 1))
  for (Index i = 0; i < k; ++i) f(i);
}

}  // namespace detail
}  // namespace colora
