// Configuration macros, OpenMP glue and basic Eigen type aliases.
// Every configuration macro of the library is defined (or read) here;
// docs/building.md lists them in one table.
#pragma once

#include <Eigen/Core>
#include <cstdint>

// ---------------------------------------------------------------------------
// OpenMP. colora parallelises over tasks with its own pragmas, each carrying a
// num_threads() clause taken from the caller's options; it never changes
// the global OpenMP thread count. Defining COLORA_NO_OPENMP (or compiling without
// -fopenmp) turns every pragma into nothing and the library runs serially with
// bit-identical results.
#if defined(_OPENMP) && !defined(COLORA_NO_OPENMP)
#define COLORA_HAS_OPENMP 1
#include <omp.h>
#else
#define COLORA_HAS_OPENMP 0
#endif

#define COLORA_STRINGIFY_(x) #x
#if COLORA_HAS_OPENMP
/// COLORA_OMP(parallel for num_threads(n) schedule(static)) expands to
/// `#pragma omp parallel for ...` when OpenMP is on, to nothing otherwise.
#define COLORA_OMP(args) _Pragma(COLORA_STRINGIFY_(omp args))
#else
#define COLORA_OMP(args)
#endif

namespace colora {

using Index = Eigen::Index;

template <class Scalar>
using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
template <class Scalar>
using Vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;
template <class Scalar>
using RowVector = Eigen::Matrix<Scalar, 1, Eigen::Dynamic>;

/// The SIMD instruction sets Eigen was compiled to use in this translation
/// unit (e.g. "AVX512, FMA, AVX2, AVX, SSE4.2, ..."; "SSE, SSE2" for the
/// baseline x86-64 target). Code built with colora::optimize (-march=native)
/// uses the host's widest vector units.
inline const char* simd_instruction_sets() { return Eigen::SimdInstructionSetsInUse(); }

namespace detail {

/// Number of threads a parallel region should use for `requested` (0 = all
/// the OpenMP runtime offers) and `work_items` independent items.
inline int resolve_threads(int requested, Index work_items) {
#if COLORA_HAS_OPENMP
  int n = requested > 0 ? requested : omp_get_max_threads();
#else
  int n = 1;
  (void)requested;
#endif
  if (work_items < n) n = static_cast<int>(work_items > 0 ? work_items : 1);
  return n < 1 ? 1 : n;
}

}  // namespace detail
}  // namespace colora
