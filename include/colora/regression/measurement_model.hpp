// The measurement-model concept the alternating-minimization kernel
// (altmin.hpp) is written against; docs/solver.md, "Adding a measurement
// model", walks through it.
//
// A measurement model wraps one problem type (RegressionModel for (M1)
// RegressionProblem, SensingModel for (M2) SensingProblem) and provides the
// per-task least-squares pieces of each alternating step. The kernel owns the
// sums over tasks, the A-step solvers and the gauge; the Solver owns the
// loop, the stopping rule, the history and the diagnostics, once for all models.
//
//   using Scalar
//   Index tasks(), input_dim() (p), output_dim() (q), samples(i), int threads()
//   Matrix moment(i)                      p x q, E = (W_i* - W_0)^T
//   add_moment_grams(i, mmt, mtm*)        adds M_i M_i^T (p x p) and M_i^T M_i (q x q, when
//                                         mtm is not null), M_i = moment(i): spectral init
//   prepare_a(A), prepare_b(B)            the kernel calls these before a pass over all tasks
//                                         with these factors; a model may form shared
//                                         per-task products here (or do nothing)
//   bool solve_core(i, A, B, ridge, CoreKind, S&)     S-step for task i (S: B.cols() x r)
//   BNormal b_normal(i, A, S, w), b_zero(r)           task i's weighted B-step normal equations
//   bool b_from_normal(const BNormal&, B&)            solve them: B (q x r), not yet orthonormal
//   ASystem a_system(B, S, w)                         the A-step quadratic in G = A^T (p x r);
//                                                     tasks with w_i = 0 take no part
//   double loss(i, A, B, S)                           ||target_i - A_i(B S A)||^2
//   double test_sq_error(i, A, B, S, Index& count)    held-out squared error (count entries)
//
// ASystem: rhs() (p x r); apply(G) = H(G) (p x r, summed over tasks in task
// order); dense_gram() (pr x pr, vec column-major, for the exact A-step);
// c_bar() (r x r) and d() (p) of the Kronecker approximation H ~ C_bar (x)
// diag(d) the cg preconditioner and the gd step use (a_step.hpp).
#pragma once

#include "colora/core/adapter.hpp"
#include "colora/core/config.hpp"

namespace colora {

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

}  // namespace colora
