// Thin products over one task's data: X (n x p, column-major) times a p x r
// matrix, and X^T times an n x r matrix, with r small (the rank).
//
// General GEMM code (Eigen's included) copies ("packs") X into a blocked
// layout before every product; with only r columns of work after it, the
// copy costs about as much as the arithmetic. These kernels read X in place:
//
//   thin_xg      out = X G        rows of X in blocks of two SIMD packets; for
//                                 every column j of X, r broadcasts of G(j, c)
//                                 and 2r fused multiply-adds into registers;
//   thin_xt_add  acc += X^T T     T transposed once into r x n (padded to whole
//                                 packets); for every row i, the packets of
//                                 T(i, :) times broadcasts of X(i, j) for a
//                                 block of columns j, accumulated in registers;
//   thin_residual_sq_norm  ||T - Q G||^2 with the product formed 8 columns at
//                                 a time in cache (the objective's residual).
//
// Both are written with Eigen's packet primitives, so they use whatever SIMD
// instruction set Eigen was compiled for (SSE2 .. AVX-512; a scalar loop when
// vectorization is off). The summation order is fixed by the shapes, never by
// the thread count. Columns of G (of T) are taken 8 at a time, so any r works.
#pragma once

#include <algorithm>

#include "colora/core/config.hpp"

namespace colora {
namespace detail {

template <class Scalar>
struct ThinPacket {
  using type = typename Eigen::internal::packet_traits<Scalar>::type;
  static constexpr int size = Eigen::internal::unpacket_traits<type>::size;
};

/// out(:, 0 .. R) = X G(:, 0 .. R); R <= 8. X is walked in panels of
/// kPanel columns (contiguous memory); the next panel is prefetched in order
/// while the current one is used, so X streams from memory sequentially even
/// though each row block visits the panel's columns with stride n.
template <int R, class Scalar>
void thin_xg_block(const Scalar* X, Index n, Index p, const Scalar* G, Index ldg, Scalar* out, Index ldo) {
  namespace ei = Eigen::internal;
  using Packet = typename ThinPacket<Scalar>::type;
  constexpr Index ps = ThinPacket<Scalar>::size;
  constexpr Index kPanel = 16;
  constexpr Index kLine = 64 / Index(sizeof(Scalar));
  for (Index j0 = 0; j0 < p; j0 += kPanel) {
    const Index j1 = std::min(p, j0 + kPanel);
    const Index next_end = std::min(p, j1 + kPanel) * n;
    for (Index e = j1 * n; e < next_end; e += kLine) ei::prefetch(X + e);
    const bool first = j0 == 0;
    Index i0 = 0;
    for (; i0 + 2 * ps <= n; i0 += 2 * ps) {
      Packet a0[R], a1[R];
      for (int c = 0; c < R; ++c) {
        a0[c] = first ? ei::pset1<Packet>(Scalar(0)) : ei::ploadu<Packet>(out + i0 + c * ldo);
        a1[c] = first ? ei::pset1<Packet>(Scalar(0)) : ei::ploadu<Packet>(out + i0 + ps + c * ldo);
      }
      const Scalar* x = X + j0 * n + i0;
      for (Index j = j0; j < j1; ++j, x += n) {
        const Packet x0 = ei::ploadu<Packet>(x), x1 = ei::ploadu<Packet>(x + ps);
        for (int c = 0; c < R; ++c) {
          const Packet g = ei::pset1<Packet>(G[j + c * ldg]);
          a0[c] = ei::pmadd(x0, g, a0[c]);
          a1[c] = ei::pmadd(x1, g, a1[c]);
        }
      }
      for (int c = 0; c < R; ++c) {
        ei::pstoreu(out + i0 + c * ldo, a0[c]);
        ei::pstoreu(out + i0 + ps + c * ldo, a1[c]);
      }
    }
    for (; i0 + ps <= n; i0 += ps) {
      Packet a0[R];
      for (int c = 0; c < R; ++c) a0[c] = first ? ei::pset1<Packet>(Scalar(0)) : ei::ploadu<Packet>(out + i0 + c * ldo);
      const Scalar* x = X + j0 * n + i0;
      for (Index j = j0; j < j1; ++j, x += n) {
        const Packet x0 = ei::ploadu<Packet>(x);
        for (int c = 0; c < R; ++c) a0[c] = ei::pmadd(x0, ei::pset1<Packet>(G[j + c * ldg]), a0[c]);
      }
      for (int c = 0; c < R; ++c) ei::pstoreu(out + i0 + c * ldo, a0[c]);
    }
    for (; i0 < n; ++i0) {
      Scalar s[R];
      for (int c = 0; c < R; ++c) s[c] = first ? Scalar(0) : out[i0 + c * ldo];
      for (Index j = j0; j < j1; ++j) {
        const Scalar xv = X[i0 + j * n];
        for (int c = 0; c < R; ++c) s[c] += xv * G[j + c * ldg];
      }
      for (int c = 0; c < R; ++c) out[i0 + c * ldo] = s[c];
    }
  }
}

/// out(:, 0 .. w) = X G(:, 0 .. w) for w <= 8 columns of G (leading dimension ldg).
template <class Scalar>
void thin_xg_columns(const Scalar* X, Index n, Index p, const Scalar* G, Index ldg, Scalar* out, Index ldo, Index w) {
  switch (w) {
    case 1: thin_xg_block<1>(X, n, p, G, ldg, out, ldo); break;
    case 2: thin_xg_block<2>(X, n, p, G, ldg, out, ldo); break;
    case 3: thin_xg_block<3>(X, n, p, G, ldg, out, ldo); break;
    case 4: thin_xg_block<4>(X, n, p, G, ldg, out, ldo); break;
    case 5: thin_xg_block<5>(X, n, p, G, ldg, out, ldo); break;
    case 6: thin_xg_block<6>(X, n, p, G, ldg, out, ldo); break;
    case 7: thin_xg_block<7>(X, n, p, G, ldg, out, ldo); break;
    default: thin_xg_block<8>(X, n, p, G, ldg, out, ldo); break;
  }
}

/// out = X G: X n x p, G p x r, out resized to n x r.
template <class Scalar>
void thin_xg(const Matrix<Scalar>& X, const Matrix<Scalar>& G, Matrix<Scalar>& out) {
  const Index n = X.rows(), p = X.cols(), r = G.cols();
  out.resize(n, r);
  for (Index c0 = 0; c0 < r; c0 += 8)
    thin_xg_columns(X.data(), n, p, G.data() + c0 * p, p, out.data() + c0 * n, n, std::min<Index>(8, r - c0));
}

/// ||T - Q G||_F^2 for T n x q, Q n x r (r small), G r x q, without forming
/// the n x q product: 8 columns at a time into a block that stays in cache.
template <class Scalar>
double thin_residual_sq_norm(const Matrix<Scalar>& T, const Matrix<Scalar>& Q, const Matrix<Scalar>& G) {
  const Index n = T.rows(), q = T.cols(), r = Q.cols();
  Matrix<Scalar> block(n, 8);
  double total = 0;
  for (Index c0 = 0; c0 < q; c0 += 8) {
    const Index w = std::min<Index>(8, q - c0);
    thin_xg_columns(Q.data(), n, r, G.data() + c0 * r, r, block.data(), n, w);
    total += double((T.middleCols(c0, w) - block.leftCols(w)).squaredNorm());
  }
  return total;
}

/// acc(:, c0 .. c0 + NP ps) += X^T T for the packed, transposed Tt (NP ps x n,
/// column i = T(i, c0 ..), zero-padded); the r_used real columns are added.
template <int NP, class Scalar>
void thin_xt_block(const Scalar* X, Index n, Index p, const Scalar* Tt, Scalar* acc, Index lda, Index r_used) {
  namespace ei = Eigen::internal;
  using Packet = typename ThinPacket<Scalar>::type;
  constexpr Index ps = ThinPacket<Scalar>::size;
  constexpr int JB = NP == 1 ? 8 : 4;  // columns of X per block: JB * NP accumulators
  alignas(64) Scalar buf[NP * ps];
  Index j0 = 0;
  for (; j0 + JB <= p; j0 += JB) {
    Packet a[JB][NP];
    for (int jj = 0; jj < JB; ++jj)
      for (int q = 0; q < NP; ++q) a[jj][q] = ei::pset1<Packet>(Scalar(0));
    const Scalar* x = X + j0 * n;
    for (Index i = 0; i < n; ++i) {
      Packet t[NP];
      for (int q = 0; q < NP; ++q) t[q] = ei::ploadu<Packet>(Tt + i * NP * ps + q * ps);
      for (int jj = 0; jj < JB; ++jj) {
        const Packet b = ei::pset1<Packet>(x[i + jj * n]);
        for (int q = 0; q < NP; ++q) a[jj][q] = ei::pmadd(t[q], b, a[jj][q]);
      }
    }
    for (int jj = 0; jj < JB; ++jj) {
      for (int q = 0; q < NP; ++q) ei::pstoreu(buf + q * ps, a[jj][q]);
      for (Index c = 0; c < r_used; ++c) acc[(j0 + jj) + c * lda] += buf[c];
    }
  }
  for (; j0 < p; ++j0) {
    const Scalar* x = X + j0 * n;
    for (Index c = 0; c < r_used; ++c) {
      Scalar s = 0;
      for (Index i = 0; i < n; ++i) s += x[i] * Tt[i * NP * ps + c];
      acc[j0 + c * lda] += s;
    }
  }
}

/// acc += X^T T: X n x p, T n x r, acc p x r.
template <class Scalar>
void thin_xt_add(const Matrix<Scalar>& X, const Matrix<Scalar>& T, Matrix<Scalar>& acc) {
  constexpr Index ps = ThinPacket<Scalar>::size;
  const Index n = X.rows(), p = X.cols(), r = T.cols();
  // Columns of T in groups of at most two packets (and at most 16 columns).
  const Index group = std::max<Index>(ps, std::min<Index>(2 * ps, 16));
  Matrix<Scalar> Tt;
  for (Index c0 = 0; c0 < r; c0 += group) {
    const Index used = std::min(group, r - c0);
    const int np = int((used + ps - 1) / ps);
    Tt.setZero(np * ps, n);
    Tt.topRows(used) = T.middleCols(c0, used).transpose();
    Scalar* a = acc.data() + c0 * p;
    if (np == 1)
      thin_xt_block<1>(X.data(), n, p, Tt.data(), a, p, used);
    else
      thin_xt_block<2>(X.data(), n, p, Tt.data(), a, p, used);
  }
}

}  // namespace detail
}  // namespace colora
