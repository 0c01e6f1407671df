// (M1) multi-output regression as a measurement model for the solver:
// A_i(W) = X_i W^T, target R_i = Y_i - X_i W_0^T. See measurement_model.hpp.
//
// Costs per task (n = n_i): S-step O(n p r + n q r); B-step O(n r q);
// A-step operator product O(n p r) (two n x p x r GEMMs); loss O(n (p + q) r).
//
// Products with the data go through detail/thin_products.hpp (kernels that
// read X_i in place instead of packing it for r columns of work).
//
// The thin products X_i A^T and target_i B are formed once per factor and
// shared by the steps that use them (prepare_a / prepare_b, called by the
// kernel before each pass over tasks): per iteration the solver forms X_i A^T
// once (S-step; the next B-step and the objective reuse it) and target_i B
// once (A-step right-hand side; the S-step reuses it). The cache holds
// 2 n_i r numbers per task; B = I_q (fedrep's heads) uses the targets
// themselves, with no copy. The values are the same products computed the
// same way, so results do not depend on whether they were cached.
#pragma once

#include <cstring>
#include <vector>

#include "colora/core/linalg.hpp"
#include "colora/detail/parallel.hpp"
#include "colora/detail/thin_products.hpp"
#include "colora/regression/data.hpp"
#include "colora/regression/measurement_model.hpp"

namespace colora {

template <class Scalar_>
class RegressionModel {
 public:
  using Scalar = Scalar_;
  using Mat = Matrix<Scalar>;
  using Problem = RegressionProblem<Scalar>;

  RegressionModel(const Problem& pb, int num_threads) : pb_(pb), threads_(num_threads) {
    const Index k = pb.num_tasks();
    if (pb.W0.size() != 0) {
      residual_.resize(size_t(k));
      detail::parallel_for_tasks(k, threads_, [&](Index i) {
        const auto& t = pb.tasks[size_t(i)];
        residual_[size_t(i)] = t.Y - t.X * pb.W0.transpose();
      });
    }
    // Column second moments per task, and pooled: the D of the A-step preconditioner.
    col_sq_.resize(size_t(k));
    detail::parallel_for_tasks(k, threads_, [&](Index i) {
      col_sq_[size_t(i)] = pb.tasks[size_t(i)].X.colwise().squaredNorm().transpose();
    });
    col_scale_ = detail::ordered_sum(k, threads_, Vector<Scalar>(Vector<Scalar>::Zero(pb.input_dim())),
                                     [&](Index i, Vector<Scalar>& acc) { acc += col_sq_[size_t(i)]; });
  }

  Index tasks() const { return pb_.num_tasks(); }
  Index input_dim() const { return pb_.input_dim(); }
  Index output_dim() const { return pb_.output_dim(); }
  Index samples(Index i) const { return pb_.samples(i); }
  int threads() const { return threads_; }
  const Mat& X(Index i) const { return pb_.tasks[size_t(i)].X; }
  const Mat& target(Index i) const { return residual_.empty() ? pb_.tasks[size_t(i)].Y : residual_[size_t(i)]; }

  Mat moment(Index i) const { return X(i).transpose() * target(i) / Scalar(samples(i)); }

  /// Adds M_i M_i^T (p x p) to mmt and, when mtm is given, M_i^T M_i (q x q)
  /// to it, M_i = moment(i): the spectral initialization's sums. When n_i is
  /// small against p and q they are formed through n_i x n_i Grams,
  ///   M M^T = X^T (R R^T) X / n^2,  M^T M = R^T (X X^T) R / n^2,
  /// which costs O(n^2 (p + q) + n (p^2 + q^2)) instead of
  /// O(n p q + p^2 q + p q^2) [choice: whichever form needs fewer flops].
  void add_moment_grams(Index i, Mat& mmt, Mat* mtm) const {
    const Mat& x = X(i);
    const Mat& t = target(i);
    const double n = double(samples(i)), p = double(input_dim()), q = double(output_dim());
    const Scalar inv_n2 = Scalar(1) / (Scalar(samples(i)) * Scalar(samples(i)));
    const double direct = 2 * n * p * q + 2 * p * p * q + (mtm ? 2 * p * q * q : 0.0);
    const double grams = 2 * n * n * q + 2 * n * n * p + 2 * n * p * p + (mtm ? 2 * n * n * p + 2 * n * q * q : 0.0);
    if (grams < direct) {
      const Mat tt = t * t.transpose();  // n x n
      mmt.noalias() += inv_n2 * (x.transpose() * (tt * x));
      if (mtm) {
        const Mat xx = x * x.transpose();
        mtm->noalias() += inv_n2 * (t.transpose() * (xx * t));
      }
      return;
    }
    const Mat M = moment(i);
    mmt.noalias() += M * M.transpose();
    if (mtm) mtm->noalias() += M.transpose() * M;
  }

  /// Forms X_i A^T for every task unless already formed for this A (see the
  /// header). Not thread-safe against a concurrent kernel call on the same model.
  void prepare_a(const Mat& A) const {
    if (xa_.matches(A)) return;
    xa_.key = A;
    xa_.values.resize(size_t(tasks()));
    xa_.valid = false;
    const Mat At = A.transpose();
    detail::parallel_for_tasks(tasks(), threads_, [&](Index i) { detail::thin_xg(X(i), At, xa_.values[size_t(i)]); });
    xa_.valid = true;
  }
  /// Forms target_i B for every task unless already formed for this B; with
  /// B = I_q the targets are used as they are.
  void prepare_b(const Mat& B) const {
    if (tb_.matches(B)) return;
    tb_.key = B;
    tb_.valid = false;
    tb_.identity = B.rows() == B.cols() && B.isIdentity(0);
    if (tb_.identity) {
      tb_.values.clear();
    } else {
      tb_.values.resize(size_t(tasks()));
      detail::parallel_for_tasks(tasks(), threads_,
                                 [&](Index i) { detail::thin_xg(target(i), B, tb_.values[size_t(i)]); });
    }
    tb_.valid = true;
  }
  /// X_i A^T: the cached product when prepare_a(A) formed it, else computed into scratch.
  const Mat& xa(Index i, const Mat& A, Mat& scratch) const {
    if (xa_.matches(A)) return xa_.values[size_t(i)];
    detail::thin_xg(X(i), Mat(A.transpose()), scratch);
    return scratch;
  }
  /// target_i B: the cached product when prepare_b(B) formed it, else computed into scratch.
  const Mat& tb(Index i, const Mat& B, Mat& scratch) const {
    if (tb_.matches(B)) return tb_.identity ? target(i) : tb_.values[size_t(i)];
    detail::thin_xg(target(i), B, scratch);
    return scratch;
  }

  /// S-step: min_S ||R - X A^T S^T B^T||^2 + ridge ||S||^2, S of size
  /// B.cols() x r. For a full core B must have orthonormal columns (the
  /// solver's gauge, or B = I_q for heads), so the problem is
  /// ||R B - Z S^T||^2 with Z = X A^T. For a diagonal core B is general.
  bool solve_core(Index i, const Mat& A, const Mat& B, Scalar ridge, CoreKind core, Mat& S) const {
    const Index r = A.rows();
    Mat z_scratch, p_scratch;
    const Mat& Z = xa(i, A, z_scratch);
    const Mat& P = tb(i, B, p_scratch);
    Mat G = Z.transpose() * Z;
    if (core == CoreKind::Full) {
      G.diagonal().array() += ridge;
      Mat St;
      const bool ok = solve_spd<Scalar>(G, Z.transpose() * P, St);
      S = St.transpose();
      return ok;
    }
    // Diagonal: Z diag(s) B^T = sum_j s_j z_j b_j^T.
    G = G.cwiseProduct(B.transpose() * B);
    G.diagonal().array() += ridge;
    const Vector<Scalar> rhs = (Z.transpose() * P).diagonal();
    Mat s;
    const bool ok = solve_spd<Scalar>(G, rhs, s);
    S = Mat::Zero(r, r);
    S.diagonal() = s.col(0);
    return ok;
  }

  BNormal<Scalar> b_normal(Index i, const Mat& A, const Mat& S, Scalar w) const {
    Mat z_scratch;
    const Mat Q = xa(i, A, z_scratch) * S.transpose();  // n x r
    BNormal<Scalar> out;
    out.gram.noalias() = w * (Q.transpose() * Q);
    Mat rt = Mat::Zero(output_dim(), Q.cols());  // target^T Q (q x r), read in place
    detail::thin_xt_add(target(i), Q, rt);
    out.rhs.noalias() = w * rt.transpose();
    return out;
  }

  BNormal<Scalar> b_zero(Index r) const { return BNormal<Scalar>{Mat::Zero(r, r), Mat::Zero(r, output_dim())}; }

  bool b_from_normal(const BNormal<Scalar>& ne, Mat& B) const {
    Mat Bt;
    const bool ok = solve_spd<Scalar>(ne.gram, ne.rhs, Bt);
    B = Bt.transpose();
    return ok;
  }

  /// The A-step quadratic: H(G) = sum_i w_i X_i^T X_i G C_i with
  /// C_i = S_i^T B^T B S_i, rhs = sum_i w_i X_i^T R_i B S_i. Tasks with
  /// w_i = 0 are skipped (and left out of the preconditioner's d).
  class ASystem {
   public:
    ASystem(const RegressionModel& m, const Mat& B, const std::vector<Mat>& S, const std::vector<Scalar>& w,
            int threads)
        : m_(m), threads_(threads), w_(w) {
      const Index k = m.tasks(), p = m.input_dim(), r = S.front().cols();
      const Mat BtB = B.transpose() * B;
      C_.resize(size_t(k));
      C_bar_ = Mat::Zero(r, r);
      bool all = true;
      for (Index i = 0; i < k; ++i) {
        if (w[size_t(i)] == Scalar(0)) {
          all = false;
          continue;
        }
        C_[size_t(i)] = w[size_t(i)] * (S[size_t(i)].transpose() * BtB * S[size_t(i)]);
        C_bar_ += Scalar(m.samples(i)) * C_[size_t(i)];
      }
      m.prepare_b(B);
      rhs_ = detail::ordered_sum(k, threads_, Mat(Mat::Zero(p, r)), [&](Index i, Mat& acc) {
        if (w[size_t(i)] == Scalar(0)) return;
        Mat scratch;
        detail::thin_xt_add(m.X(i), Mat(m.tb(i, B, scratch) * (w[size_t(i)] * S[size_t(i)])), acc);
      });
      Scalar total_n = 0;
      for (Index i = 0; i < k; ++i)
        if (w[size_t(i)] != Scalar(0)) total_n += Scalar(m.samples(i));
      if (all) {
        d_ = m.col_scale_ / total_n;
      } else {
        d_ = detail::ordered_sum(k, threads_, Vector<Scalar>(Vector<Scalar>::Zero(p)),
                                 [&](Index i, Vector<Scalar>& acc) {
                                   if (w[size_t(i)] != Scalar(0)) acc += m.col_sq_[size_t(i)];
                                 });
        if (total_n > 0) d_ /= total_n;
      }
    }
    const Mat& rhs() const { return rhs_; }
    Mat apply(const Mat& G) const {
      return detail::ordered_sum(m_.tasks(), threads_, Mat(Mat::Zero(G.rows(), G.cols())), [&](Index i, Mat& acc) {
        if (w_[size_t(i)] == Scalar(0)) return;
        Mat XG;
        detail::thin_xg(m_.X(i), G, XG);
        detail::thin_xt_add(m_.X(i), Mat(XG * C_[size_t(i)]), acc);
      });
    }
    /// H ~ C_bar (x) diag(d): exact when X_i^T X_i = n_i diag(d) for all i.
    const Mat& c_bar() const { return C_bar_; }
    const Vector<Scalar>& d() const { return d_; }
    /// Dense pr x pr matrix of H (vec column-major): block (a, b) = sum_i C_i(a, b) X_i^T X_i.
    Mat dense_gram() const {
      const Index k = m_.tasks(), p = m_.input_dim(), r = C_bar_.rows();
      const auto& grams = m_.input_grams();
      Mat H(p * r, p * r);
      const Index blocks = r * (r + 1) / 2;
      detail::parallel_for(blocks, threads_, [&](Index blk) {
        Index a = 0, rem = blk;
        while (rem >= r - a) {
          rem -= r - a;
          ++a;
        }
        const Index b = a + rem;
        Mat acc = Mat::Zero(p, p);
        for (Index i = 0; i < k; ++i)
          if (w_[size_t(i)] != Scalar(0)) acc += C_[size_t(i)](a, b) * grams[size_t(i)];
        H.block(a * p, b * p, p, p) = acc;
        if (a != b) H.block(b * p, a * p, p, p) = acc;
      });
      return H;
    }

   private:
    const RegressionModel& m_;
    int threads_;
    const std::vector<Scalar>& w_;
    std::vector<Mat> C_;
    Mat C_bar_, rhs_;
    Vector<Scalar> d_;
  };

  ASystem a_system(const Mat& B, const std::vector<Mat>& S, const std::vector<Scalar>& w) const {
    return ASystem(*this, B, S, w, threads_);
  }

  /// X_i^T X_i for every task, computed on first use (exact A-step only).
  const std::vector<Mat>& input_grams() const {
    if (grams_.empty()) {
      std::vector<Mat> g(static_cast<size_t>(tasks()));
      detail::parallel_for_tasks(tasks(), threads_, [&](Index i) { g[size_t(i)].noalias() = X(i).transpose() * X(i); });
      grams_ = std::move(g);
    }
    return grams_;
  }

  double loss(Index i, const Mat& A, const Mat& B, const Mat& S) const {
    Mat z_scratch;
    return detail::thin_residual_sq_norm(target(i), Mat(xa(i, A, z_scratch) * S.transpose()), Mat(B.transpose()));
  }

  double test_sq_error(Index i, const Mat& A, const Mat& B, const Mat& S, Index& count) const {
    const auto& t = pb_.tasks[size_t(i)];
    count = t.X_test.rows() * t.Y_test.cols();
    if (count == 0) return 0.0;
    Mat pred = ((t.X_test * A.transpose()) * S.transpose()) * B.transpose();
    if (pb_.W0.size()) pred.noalias() += t.X_test * pb_.W0.transpose();
    return double((t.Y_test - pred).squaredNorm());
  }

 private:
  const Problem& pb_;
  int threads_;
  std::vector<Mat> residual_;
  std::vector<Vector<Scalar>> col_sq_;
  Vector<Scalar> col_scale_;
  mutable std::vector<Mat> grams_;
  /// Per-task products for one factor, valid for the factor stored in key.
  struct ProductCache {
    Mat key;
    std::vector<Mat> values;
    bool valid = false, identity = false;
    bool matches(const Mat& f) const {
      return valid && key.rows() == f.rows() && key.cols() == f.cols() &&
             (f.size() == 0 || std::memcmp(key.data(), f.data(), sizeof(Scalar) * size_t(f.size())) == 0);
    }
  };
  mutable ProductCache xa_, tb_;
};

}  // namespace colora
