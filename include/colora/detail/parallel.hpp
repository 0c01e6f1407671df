// Parallel loops over tasks: deterministic, and exception-safe.
//
// Every OpenMP region of the library goes through parallel_for below, so an
// exception thrown by one iteration (std::bad_alloc, a std::invalid_argument
// naming a task, ...) never escapes the region (which would call
// std::terminate): it is caught, iterations above the failing index are
// skipped, and after the region the exception of the LOWEST failing index is
// rethrown on the calling thread. Every iteration below that index still
// runs, so which exception the caller sees does not depend on the thread
// count or the schedule.
//
// Reductions: tasks are split into a fixed number of contiguous chunks that
// does NOT depend on the thread count; each chunk accumulates its tasks in
// order, the chunks run in parallel, and the chunk sums are added in chunk
// order. The floating-point result is therefore identical for every thread
// count.
#pragma once

#include <atomic>
#include <exception>
#include <limits>
#include <mutex>
#include <utility>
#include <vector>

#include "colora/core/config.hpp"

namespace colora {
namespace detail {

/// The first exception (by iteration index) of a parallel loop.
class FirstException {
 public:
  /// True when an iteration below i already failed: i need not run.
  bool skip(Index i) const noexcept { return i > first_.load(std::memory_order_relaxed); }
  /// Records the exception being handled, thrown by iteration i.
  void record(Index i) noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    if (i < first_.load(std::memory_order_relaxed)) {
      first_.store(i, std::memory_order_relaxed);
      error_ = std::current_exception();
    }
  }
  /// Rethrows the recorded exception, if any.
  void rethrow() const {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::atomic<Index> first_{std::numeric_limits<Index>::max()};
  std::exception_ptr error_;
  std::mutex mutex_;
};

/// Runs f(i) for i in [0, n) on up to `num_threads` threads (0 = all OpenMP
/// threads); dynamic schedule, or static when `static_schedule`. Rethrows the
/// exception of the lowest failing i after the loop (see the header).
template <class F>
void parallel_for(Index n, int num_threads, F&& f, bool static_schedule = false) {
  if (n <= 0) return;
  FirstException err;
  auto body = [&](Index i) {
    if (err.skip(i)) return;
    try {
      f(i);
    } catch (...) {
      err.record(i);
    }
  };
  const int nt = resolve_threads(num_threads, n);
  if (nt <= 1) {
    for (Index i = 0; i < n; ++i) body(i);
  } else if (static_schedule) {
    COLORA_OMP(parallel for num_threads(nt) schedule(static))
    for (Index i = 0; i < n; ++i) body(i);
  } else {
    COLORA_OMP(parallel for num_threads(nt) schedule(dynamic, 1))
    for (Index i = 0; i < n; ++i) body(i);
  }
  err.rethrow();
}

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
  parallel_for(
      chunks, num_threads,
      [&](Index c) {
        const Index lo = c * k / chunks, hi = (c + 1) * k / chunks;
        for (Index i = lo; i < hi; ++i) add(i, partial[static_cast<size_t>(c)]);
      },
      /*static_schedule=*/true);
  Acc total = partial[0];
  for (Index c = 1; c < chunks; ++c) total += partial[static_cast<size_t>(c)];
  return total;
}

/// Runs f(i) for i in [0, k) in parallel (independent per-task work).
template <class F>
void parallel_for_tasks(Index k, int num_threads, F&& f) {
  parallel_for(k, num_threads, std::forward<F>(f));
}

}  // namespace detail
}  // namespace colora
