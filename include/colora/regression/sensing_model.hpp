// (M2) matrix sensing as a measurement model for the solver:
// A_i(W)_j = <M_ij, W>, target y_ij - <M_ij, W_0>. See measurement_model.hpp.
//
// Each step builds the task's feature matrix explicitly (one row per
// measurement): S-step features vec(B^T M_ij A^T) (r^2), B-step features
// vec(M_ij A^T S^T) (q r), A-step features vec(M_ij^T B S) (p r). The cost per
// task and step is O(m_i q p r): this path is meant for the theory-sized
// problems matrix sensing is studied on, not for large layers.
#pragma once

#include <vector>

#include "colora/core/linalg.hpp"
#include "colora/detail/parallel.hpp"
#include "colora/regression/data.hpp"
#include "colora/regression/measurement_model.hpp"

namespace colora {

template <class Scalar_>
class SensingModel {
 public:
  using Scalar = Scalar_;
  using Mat = Matrix<Scalar>;
  using Vec = Vector<Scalar>;
  using Problem = SensingProblem<Scalar>;

  SensingModel(const Problem& pb, int num_threads) : pb_(pb), threads_(num_threads) {
    const Index k = pb.num_tasks();
    target_.resize(size_t(k));
    detail::parallel_for_tasks(k, threads_, [&](Index i) {
      const auto& t = pb.tasks[size_t(i)];
      target_[size_t(i)] = t.y;
      if (pb.W0.size()) target_[size_t(i)] -= t.M * Eigen::Map<const Vec>(pb.W0.data(), pb.W0.size());
    });
  }

  Index tasks() const { return pb_.num_tasks(); }
  Index input_dim() const { return pb_.p; }
  Index output_dim() const { return pb_.q; }
  Index samples(Index i) const { return pb_.samples(i); }
  int threads() const { return threads_; }
  /// Task i's targets y_i - M_i vec(W_0).
  const Vec& target(Index i) const { return target_[size_t(i)]; }

  /// (sum_j y_j M_j / m)^T, p x q.
  Mat moment(Index i) const {
    const Vec v = pb_.tasks[size_t(i)].M.transpose() * target_[size_t(i)] / Scalar(samples(i));
    return Eigen::Map<const Mat>(v.data(), pb_.q, pb_.p).transpose();
  }

  /// Adds M_i M_i^T (and M_i^T M_i when mtm is given) of M_i = moment(i).
  void add_moment_grams(Index i, Mat& mmt, Mat* mtm) const {
    const Mat M = moment(i);
    mmt.noalias() += M * M.transpose();
    if (mtm) mtm->noalias() += M.transpose() * M;
  }
  /// No per-factor products to share in (M2): every step works per measurement.
  void prepare_a(const Mat&) const {}
  void prepare_b(const Mat&) const {}

  /// The q x p matrix of measurement j of task i.
  Eigen::Map<const Mat, 0, Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>> measurement(Index i, Index j) const {
    const Mat& M = pb_.tasks[size_t(i)].M;
    // Row j of a column-major m x (qp) matrix: stride M.rows() between entries.
    return {M.data() + j, pb_.q, pb_.p, Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>(M.rows() * pb_.q, M.rows())};
  }

  /// S-step of task i; S is B.cols() x r (r x r for CoLoRA, q x r heads for B = I_q).
  bool solve_core(Index i, const Mat& A, const Mat& B, Scalar ridge, CoreKind core, Mat& S) const {
    const Index m = samples(i), r = A.rows(), c = B.cols();
    const Index d = core == CoreKind::Full ? c * r : r;
    Mat F(m, d);
    for (Index j = 0; j < m; ++j) {
      const Mat T = B.transpose() * measurement(i, j) * A.transpose();  // c x r
      if (core == CoreKind::Full)
        F.row(j) = Eigen::Map<const Vec>(T.data(), c * r).transpose();
      else
        F.row(j) = T.diagonal().transpose();
    }
    Mat G = F.transpose() * F;
    G.diagonal().array() += ridge;
    Mat s;
    const bool ok = solve_spd<Scalar>(G, F.transpose() * target_[size_t(i)], s);
    if (core == CoreKind::Full) {
      S = Eigen::Map<const Mat>(s.data(), c, r);
    } else {
      S = Mat::Zero(r, r);
      S.diagonal() = s.col(0);
    }
    return ok;
  }

  BNormal<Scalar> b_normal(Index i, const Mat& A, const Mat& S, Scalar w) const {
    const Index m = samples(i), q = pb_.q, r = A.rows();
    const Mat AtSt = A.transpose() * S.transpose();  // p x r
    Mat K(m, q * r);
    for (Index j = 0; j < m; ++j) {
      const Mat T = measurement(i, j) * AtSt;  // q x r
      K.row(j) = Eigen::Map<const Vec>(T.data(), q * r).transpose();
    }
    BNormal<Scalar> out;
    out.gram.noalias() = w * (K.transpose() * K);
    out.rhs.noalias() = w * (K.transpose() * target_[size_t(i)]);
    return out;
  }

  BNormal<Scalar> b_zero(Index r) const {
    return BNormal<Scalar>{Mat::Zero(pb_.q * r, pb_.q * r), Mat::Zero(pb_.q * r, 1)};
  }

  bool b_from_normal(const BNormal<Scalar>& ne, Mat& B) const {
    Mat b;
    const bool ok = solve_spd<Scalar>(ne.gram, ne.rhs, b);
    B = Eigen::Map<const Mat>(b.data(), pb_.q, ne.gram.rows() / pb_.q);
    return ok;
  }

  class ASystem {
   public:
    ASystem(const SensingModel& m, const Mat& B, const std::vector<Mat>& S, const std::vector<Scalar>& w, int threads)
        : m_(m), threads_(threads), w_(w) {
      const Index k = m.tasks(), p = m.input_dim(), r = S.front().cols();
      const Mat BtB = B.transpose() * B;
      features_.resize(size_t(k));
      detail::parallel_for_tasks(k, threads_, [&](Index i) {
        if (w[size_t(i)] == Scalar(0)) return;  // not taking part
        const Mat BS = B * S[size_t(i)];        // q x r
        Mat F(m.samples(i), p * r);
        for (Index j = 0; j < m.samples(i); ++j) {
          const Mat T = m.measurement(i, j).transpose() * BS;  // p x r
          F.row(j) = Eigen::Map<const Vec>(T.data(), p * r).transpose();
        }
        features_[size_t(i)] = std::move(F);
      });
      C_bar_ = Mat::Zero(r, r);
      for (Index i = 0; i < k; ++i)
        if (w[size_t(i)] != Scalar(0))
          C_bar_ += w[size_t(i)] * Scalar(m.samples(i)) * (S[size_t(i)].transpose() * BtB * S[size_t(i)]);
      const Vec rv = detail::ordered_sum(k, threads_, Vec(Vec::Zero(p * r)), [&](Index i, Vec& acc) {
        if (w_[size_t(i)] == Scalar(0)) return;
        acc.noalias() += w_[size_t(i)] * (features_[size_t(i)].transpose() * m.target_[size_t(i)]);
      });
      rhs_ = Eigen::Map<const Mat>(rv.data(), p, r);
      d_ = Vec::Ones(p);
    }
    const Mat& rhs() const { return rhs_; }
    Mat apply(const Mat& G) const {
      const Eigen::Map<const Vec> g(G.data(), G.size());
      const Vec v = detail::ordered_sum(m_.tasks(), threads_, Vec(Vec::Zero(G.size())), [&](Index i, Vec& acc) {
        if (w_[size_t(i)] == Scalar(0)) return;
        acc.noalias() += w_[size_t(i)] * (features_[size_t(i)].transpose() * (features_[size_t(i)] * g));
      });
      return Eigen::Map<const Mat>(v.data(), G.rows(), G.cols());
    }
    const Mat& c_bar() const { return C_bar_; }
    const Vec& d() const { return d_; }
    Mat dense_gram() const {
      const Index n = rhs_.size();
      return detail::ordered_sum(
          m_.tasks(), threads_, Mat(Mat::Zero(n, n)),
          [&](Index i, Mat& acc) {
            if (w_[size_t(i)] == Scalar(0)) return;
            acc.noalias() += w_[size_t(i)] * (features_[size_t(i)].transpose() * features_[size_t(i)]);
          },
          4);
    }

   private:
    const SensingModel& m_;
    int threads_;
    const std::vector<Scalar>& w_;
    std::vector<Mat> features_;
    Mat C_bar_, rhs_;
    Vec d_;
  };

  ASystem a_system(const Mat& B, const std::vector<Mat>& S, const std::vector<Scalar>& w) const {
    return ASystem(*this, B, S, w, threads_);
  }

  double loss(Index i, const Mat& A, const Mat& B, const Mat& S) const {
    const Mat W = B * S * A;
    return double(
        (target_[size_t(i)] - pb_.tasks[size_t(i)].M * Eigen::Map<const Vec>(W.data(), W.size())).squaredNorm());
  }

  double test_sq_error(Index i, const Mat& A, const Mat& B, const Mat& S, Index& count) const {
    const auto& t = pb_.tasks[size_t(i)];
    count = t.M_test.rows();
    if (count == 0) return 0.0;
    Mat W = B * S * A;
    if (pb_.W0.size()) W += pb_.W0;
    return double((t.y_test - t.M_test * Eigen::Map<const Vec>(W.data(), W.size())).squaredNorm());
  }

 private:
  const Problem& pb_;
  int threads_;
  std::vector<Vec> target_;
};

}  // namespace colora
