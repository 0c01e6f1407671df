// Core vocabulary: RNG, linear-algebra helpers, atomic files, errors.
#include <doctest/doctest.h>

#include <colora/detail/thin_products.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "test_support.hpp"

using colora::Index;
using colora::Matrix;

TEST_CASE("Philox4x32-10 matches the Random123 known-answer vectors") {
  struct Kat {
    std::uint32_t ctr[4], key[2], out[4];
  };
  const Kat kats[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
      {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
       {0xffffffffu, 0xffffffffu},
       {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
      {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
       {0xa4093822u, 0x299f31d0u},
       {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
  };
  for (const auto& k : kats) {
    std::uint32_t out[4];
    colora::Rng::philox_block(k.ctr, k.key, out);
    for (int j = 0; j < 4; ++j) CHECK(out[j] == k.out[j]);
  }
}

TEST_CASE("Rng streams are reproducible and independent of the order of use") {
  const auto s = colora_test::seed();
  colora::Rng a(s, 7), b(s, 7), c(s, 8);
  for (int i = 0; i < 100; ++i) {
    const auto x = a.next_u64();
    CHECK(x == b.next_u64());
  }
  // A different stream gives different numbers.
  colora::Rng a2(s, 7);
  int equal = 0;
  for (int i = 0; i < 100; ++i) equal += a2.next_u64() == c.next_u64();
  CHECK(equal == 0);
  // Substreams do not depend on what the parent drew before.
  colora::Rng p1(s, 3), p2(s, 3);
  for (int i = 0; i < 17; ++i) p2.next_u32();
  CHECK(p1.substream(5).next_u64() == p2.substream(5).next_u64());
  CHECK(p1.substream(5).next_u64() != p1.substream(6).next_u64());
}

TEST_CASE("Rng uniform and normal have the right moments") {
  auto rng = colora_test::rng_for("moments");
  const int n = 200000;
  double su = 0, sn = 0, sn2 = 0, sn4 = 0;
  double umin = 1, umax = 0;
  for (int i = 0; i < n; ++i) {
    const double u = rng.uniform();
    su += u;
    umin = std::min(umin, u);
    umax = std::max(umax, u);
    const double z = rng.normal();
    sn += z;
    sn2 += z * z;
    sn4 += z * z * z * z;
  }
  CHECK(umin > 0.0);
  CHECK(umax < 1.0);
  // Means within 5 standard errors.
  CHECK(std::abs(su / n - 0.5) < 5 * std::sqrt(1.0 / 12 / n));
  CHECK(std::abs(sn / n) < 5 * std::sqrt(1.0 / n));
  CHECK(std::abs(sn2 / n - 1.0) < 5 * std::sqrt(2.0 / n));
  CHECK(std::abs(sn4 / n - 3.0) < 5 * std::sqrt(96.0 / n));
  for (std::uint64_t m : {1ULL, 2ULL, 7ULL, 1000ULL}) {
    for (int i = 0; i < 50; ++i) CHECK(rng.below(m) < m);
  }
}

TEST_CASE_TEMPLATE("thin_qr and haar_orthonormal give orthonormal factors", Scalar, COLORA_TEST_SCALARS) {
  auto rng = colora_test::rng_for("thin_qr");
  const Matrix<Scalar> M = rng.normal_matrix<Scalar>(9, 4);
  const auto qr = colora::thin_qr(M);
  const double tol = colora_test::Tol<Scalar>::tight * 10;
  CHECK((qr.Q * qr.R - M).norm() <= tol * M.norm());
  CHECK((qr.Q.transpose() * qr.Q - Matrix<Scalar>::Identity(4, 4)).norm() <= tol);
  for (Index j = 0; j < 4; ++j) CHECK(qr.R(j, j) >= Scalar(0));
  const auto H = colora::haar_orthonormal<Scalar>(rng, 12, 3);
  CHECK((H.transpose() * H - Matrix<Scalar>::Identity(3, 3)).norm() <= tol);
  // A wide matrix has no thin QR: a clear error, not an out-of-range read.
  CHECK_THROWS_WITH_AS(colora::thin_qr(Matrix<Scalar>(rng.normal_matrix<Scalar>(2, 5))),
                       doctest::Contains("rows >= cols, got 2 x 5"), std::invalid_argument);
  // column_basis: the thin Q when tall, the identity of R^rows when wide.
  CHECK(colora::column_basis(M).isApprox(qr.Q));
  CHECK(colora::column_basis(Matrix<Scalar>(rng.normal_matrix<Scalar>(2, 5))) == Matrix<Scalar>::Identity(2, 2));
}

TEST_CASE_TEMPLATE("solve_spd agrees with a dense solve and survives a singular system", Scalar, COLORA_TEST_SCALARS) {
  auto rng = colora_test::rng_for("solve_spd");
  const Matrix<Scalar> F = rng.normal_matrix<Scalar>(10, 5);
  const Matrix<Scalar> G = F.transpose() * F;
  const Matrix<Scalar> B = rng.normal_matrix<Scalar>(5, 2);
  Matrix<Scalar> X;
  REQUIRE(colora::solve_spd(G, B, X));
  CHECK((G * X - B).norm() <= 100 * colora_test::Tol<Scalar>::tight * B.norm() * 10);
  // Rank-deficient: falls back to the pseudo-inverse, stays finite.
  Matrix<Scalar> Gs = G;
  Gs.row(4).setZero();
  Gs.col(4).setZero();
  REQUIRE(colora::solve_spd(Gs, B, X));
  CHECK(X.allFinite());
}

TEST_CASE("top_eigenvectors returns the dominant subspace, largest first") {
  Matrix<double> D = Matrix<double>::Zero(4, 4);
  D.diagonal() << 1.0, 5.0, 3.0, 0.5;
  const auto V = colora::top_eigenvectors(D, 2);
  CHECK(std::abs(std::abs(V(1, 0)) - 1.0) < 1e-12);
  CHECK(std::abs(std::abs(V(2, 1)) - 1.0) < 1e-12);
}

TEST_CASE("write_file_atomically writes whole files and leaves the target alone on failure") {
  const std::string path = "colora_atomic_test.txt";
  colora::io::write_text_atomically(path, "first\n");
  {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    CHECK(ss.str() == "first\n");
  }
  CHECK_THROWS_AS(colora::io::write_file_atomically(path,
                                                    [](std::ostream& os) {
                                                      os << "partial";
                                                      throw std::runtime_error("writer failed");
                                                    }),
                  std::runtime_error);
  {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    CHECK(ss.str() == "first\n");  // untouched
  }
  CHECK_THROWS_AS(colora::io::write_text_atomically("/nonexistent-dir/x.txt", "x"), std::runtime_error);
  std::remove(path.c_str());
}

TEST_CASE("adapter and core kinds round-trip through their names; bad names throw") {
  for (auto k : {colora::AdapterKind::None, colora::AdapterKind::Lora, colora::AdapterKind::Colora,
                 colora::AdapterKind::GlobalLora, colora::AdapterKind::Ffa, colora::AdapterKind::Fedsa})
    CHECK(colora::parse_adapter_kind(colora::to_string(k)) == k);
  CHECK(colora::parse_core_kind("diagonal") == colora::CoreKind::Diagonal);
  CHECK_THROWS_WITH_AS(colora::parse_adapter_kind("lorra"), doctest::Contains("lorra"), std::invalid_argument);
  CHECK_THROWS_AS(colora::parse_core_kind("dense"), std::invalid_argument);
}

TEST_CASE("require_finite names the field and the position") {
  Matrix<double> M = Matrix<double>::Zero(2, 3);
  M(1, 2) = std::nan("");
  CHECK_THROWS_WITH_AS(colora::detail::require_finite(M, "where", "task 4: X"),
                       doctest::Contains("task 4: X has a non-finite entry"), std::invalid_argument);
}

TEST_CASE("version macros agree with the accessor") {
  CHECK(colora::version().major == COLORA_VERSION_MAJOR);
  CHECK(std::string(colora::version_string()).find('.') != std::string::npos);
}

// The thin-product kernels (detail/thin_products.hpp) against Eigen's dense
// products over shapes that hit every path: rows below, at and above one and
// two SIMD packets, column counts below and above the 8-column groups, p below
// the column block of thin_xt_add. A kernel's error is rounding only:
// ||kernel - Eigen|| <= c eps ||X|| ||G|| (both sum the same p products in
// different orders).
TEST_CASE_TEMPLATE("thin products: X G, X^T T and ||T - Q G||^2 equal Eigen's dense products", S, COLORA_TEST_SCALARS) {
  auto rng = colora_test::rng_for("thin products");
  const double eps = double(Eigen::NumTraits<S>::epsilon());
  for (Index n : {1, 3, 7, 8, 15, 16, 17, 33, 64, 100})
    for (Index p : {1, 5, 8, 13, 64})
      for (Index r : {1, 2, 7, 8, 9, 16, 17, 24}) {
        CAPTURE(n);
        CAPTURE(p);
        CAPTURE(r);
        const Matrix<S> X = rng.normal_matrix<S>(n, p), G = rng.normal_matrix<S>(p, r);
        const Matrix<S> T = rng.normal_matrix<S>(n, r), acc0 = rng.normal_matrix<S>(p, r);
        const double tol = 8 * eps * double(std::sqrt(double(std::max(n, p)))) * (X.norm() + 1) *
                           (std::max(G.norm(), T.norm()) + 1);
        Matrix<S> out;
        colora::detail::thin_xg(X, G, out);
        REQUIRE(out.rows() == n);
        REQUIRE(out.cols() == r);
        CHECK(double((out - X * G).norm()) <= tol);
        Matrix<S> acc = acc0;
        colora::detail::thin_xt_add(X, T, acc);
        CHECK(double((acc - acc0 - X.transpose() * T).norm()) <= tol + 8 * eps * double(acc0.norm()));
        // ||T2 - Q G2||^2 with T2 n x p, Q = T (n x r), G2 = r x p.
        const Matrix<S> G2 = rng.normal_matrix<S>(r, p), T2 = rng.normal_matrix<S>(n, p);
        const double ref = double((T2 - T * G2).squaredNorm());
        CHECK(std::fabs(colora::detail::thin_residual_sq_norm(T2, T, G2) - ref) <= 64 * eps * (ref + tol));
      }
}
