// Losses on a batch of predictions (docs/nn.md): mean squared error and
// softmax cross-entropy (log-sum-exp with the row maximum subtracted).
#pragma once

#include <cmath>
#include <string>

#include "colora/core/config.hpp"
#include "colora/core/errors.hpp"

namespace colora {
namespace nn {

enum class LossKind {
  Mse,          ///< L = (1 / (n q)) sum (yhat - y)^2; targets n x q
  CrossEntropy  ///< L = (1 / n) sum -log softmax(z)_y; targets n x 1 class ids
};

inline const char* to_string(LossKind k) noexcept { return k == LossKind::Mse ? "mse" : "cross-entropy"; }

/// Row-wise softmax, stable for any finite logits.
template <class S>
Matrix<S> softmax_rows(const Matrix<S>& Z) {
  const Vector<S> mx = Z.rowwise().maxCoeff();
  Matrix<S> P = (Z.colwise() - mx).array().exp().matrix();
  const Vector<S> sum = P.rowwise().sum();
  return sum.cwiseInverse().asDiagonal() * P;
}

/// Checks that `labels` (n x 1) holds class ids in [0, classes).
template <class S>
void check_labels(const Matrix<S>& labels, Index classes, const char* where, const std::string& what) {
  detail::require(labels.cols() == 1, where, what, " must be an n x 1 column of class ids, got ", labels.rows(), " x ",
                  labels.cols());
  for (Index i = 0; i < labels.rows(); ++i) {
    const double v = double(labels(i, 0));
    detail::require(std::isfinite(v) && v == std::floor(v) && v >= 0 && v < double(classes), where, what, "(", i,
                    ") = ", v, " is not a class id in [0, ", classes, ")");
  }
}

/// Loss value (accumulated in double); writes dL/dpred into *grad unless nullptr.
template <class S>
double loss_value(LossKind kind, const Matrix<S>& pred, const Matrix<S>& target, Matrix<S>* grad) {
  const char* where = "colora::nn::loss_value";
  const Index n = pred.rows();
  detail::require(n >= 1, where, "empty batch");
  if (kind == LossKind::Mse) {
    detail::require(target.rows() == n && target.cols() == pred.cols(), where, "target is ", target.rows(), " x ",
                    target.cols(), ", prediction is ", n, " x ", pred.cols());
    const Matrix<S> r = pred - target;
    const double inv = 1.0 / (double(n) * double(pred.cols()));
    double sum = 0;
    for (Index j = 0; j < r.cols(); ++j)
      for (Index i = 0; i < n; ++i) sum += double(r(i, j)) * double(r(i, j));
    if (grad) *grad = r * S(2 * inv);
    return sum * inv;
  }
  detail::require(target.rows() == n && target.cols() == 1, where, "class ids are ", target.rows(), " x ",
                  target.cols(), ", expected ", n, " x 1");
  const Index C = pred.cols();
  double sum = 0;
  if (grad) *grad = softmax_rows(pred);
  for (Index i = 0; i < n; ++i) {
    const double yv = double(target(i, 0));
    detail::require(yv >= 0 && yv < double(C) && yv == std::floor(yv), where, "class id ", yv, " at row ", i,
                    " not in [0, ", C, ")");
    const Index y = Index(yv);
    const S mx = pred.row(i).maxCoeff();
    double se = 0;
    for (Index j = 0; j < C; ++j) se += std::exp(double(pred(i, j) - mx));
    sum += std::log(se) - double(pred(i, y) - mx);
    if (grad) (*grad)(i, y) -= S(1);
  }
  if (grad) *grad *= S(1.0 / double(n));
  return sum / double(n);
}

/// Fraction of rows whose arg-max equals the class id (classification only).
template <class S>
double accuracy(const Matrix<S>& logits, const Matrix<S>& labels) {
  Index hit = 0;
  for (Index i = 0; i < logits.rows(); ++i) {
    Index j;
    logits.row(i).maxCoeff(&j);
    hit += (double(j) == double(labels(i, 0)));
  }
  return logits.rows() ? double(hit) / double(logits.rows()) : 0.0;
}

}  // namespace nn
}  // namespace colora
