// The measurement-model concept the CoLoRA solver is written against.
//
// A measurement model wraps one problem type (RegressionProblem for (M1),
// SensingProblem for (M2)) and provides the per-task least-squares pieces of
// each alternating step. The solver (solver.hpp) owns the loop, the gauge
// fixing, the stopping rule, the history and the diagnostics, once for both.
//
//   Index tasks(), input_dim() (p), output_dim() (q), samples(i)
//   Matrix moment(i)                      p x q, E = (W_i* - W_0)^T: spectral init
//   bool solve_core(i, A, B, ridge, CoreKind, S&)     S-step for task i
//   BNormal b_normal(i, A, S, w)                      task i's weighted B-step normal equations
//   bool b_from_normal(const BNormal&, B&)            solve them: B (q x r), not yet orthonormal
//   ASystem a_system(B, S, w, threads)                the A-step quadratic in G = A^T (p x r)
//   double loss(i, A, B, S)                           ||target_i - A_i(B S A)||^2
//   double test_sq_error(i, A, B, S, Index& count)    held-out squared error (count entries)
//
// ASystem: rhs() (p x r); apply(G) (p x r, summed over tasks in fixed order);
// dense_gram() (pr x pr, for the exact A-step); precondition(R) (the
// Kronecker approximation H ~ C_bar (x) D, see a_step.hpp).
#pragma once

#include "colora/core/adapter.hpp"
#include "colora/core/config.hpp"

namespace colora {
namespace detail {

/// Weighted normal equations of the B-step, summed over tasks.
/// (M1): gram is r x r and rhs r x q (the system is I_q (x) gram: one r x r
/// solve for all q columns). (M2): gram is qr x qr and rhs qr x 1.
template <class Scalar>
struct BNormal {
  Matrix<Scalar> gram;
  Matrix<Scalar> rhs;
  BNormal& operator+=(const BNormal& o) {
    gram += o.gram;
    rhs += o.rhs;
    return *this;
  }
};

}  // namespace detail
}  // namespace colora
