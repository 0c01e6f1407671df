// The GRIP constant a Gaussian design is predicted to have, from the task
// count, the smallest sample count, the widths and the rank: a
// high-probability bound (Davidson-Szarek for (M1), Gordon's theorem for
// (M2)), not a certificate for given data. The bound and where it comes from:
// docs/theory.md, "Predicted delta for Gaussian designs".
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>

#include "colora/core/config.hpp"
#include "colora/core/errors.hpp"
#include "colora/regression/data.hpp"

namespace colora {

/// Which measurement model a prediction is for.
enum class MeasurementModel { Regression, Sensing };

/// The GRIP constant a Gaussian design is predicted to have (docs/theory.md).
struct GripPrediction {
  double delta = std::numeric_limits<double>::quiet_NaN();    ///< 2 eps + eps^2
  double epsilon = std::numeric_limits<double>::quiet_NaN();  ///< deviation of the singular values from 1
  double width = std::numeric_limits<double>::quiet_NaN();    ///< Gaussian width bound of the restricted set
  double t = std::numeric_limits<double>::quiet_NaN();        ///< sqrt(2 log(2k / (1 - confidence)))
  double confidence = 0.0;
};

/// Predicted GRIP delta for a Gaussian design with iid N(0,1) entries
/// (X_i rows for M1, M_ij for M2), k tasks, smallest per-task sample count
/// n_min, widths p, q and model rank r (s = min(2r, p, q)). With probability at
/// least `confidence` over the design the true delta is at most this value.
/// This is a prediction for Gaussian designs, not a certificate for given data.
///   M1: eps = (sqrt(p) + t) / sqrt(n_min)                       (Davidson-Szarek)
///   M2: eps = (sqrt(s)(sqrt(p) + sqrt(q)) + t) / sqrt(n_min) + 1/n_min   (Gordon)
///   t = sqrt(2 log(2k / (1 - confidence))),  delta = 2 eps + eps^2.
inline GripPrediction predict_grip_delta(MeasurementModel model, Index k, Index n_min, Index p, Index q, Index r,
                                         double confidence = 0.95) {
  const char* where = "colora::predict_grip_delta";
  detail::require(k >= 1, where, "k must be >= 1, got ", k);
  detail::require(n_min >= 1, where, "n_min must be >= 1, got ", n_min);
  detail::require(p >= 1, where, "p must be >= 1, got ", p);
  detail::require(q >= 1, where, "q must be >= 1, got ", q);
  detail::require(r >= 1, where, "r must be >= 1, got ", r);
  detail::require(confidence > 0.0 && confidence < 1.0, where, "confidence must be in (0, 1), got ", confidence);
  GripPrediction out;
  out.confidence = confidence;
  out.t = std::sqrt(2.0 * std::log(2.0 * double(k) / (1.0 - confidence)));
  const double n = double(n_min);
  if (model == MeasurementModel::Regression) {
    out.width = std::sqrt(double(p));
    out.epsilon = (out.width + out.t) / std::sqrt(n);
  } else {
    const double s = double(std::min<Index>(2 * r, std::min(p, q)));
    out.width = std::sqrt(s) * (std::sqrt(double(p)) + std::sqrt(double(q)));
    out.epsilon = (out.width + out.t) / std::sqrt(n) + 1.0 / n;
  }
  out.delta = 2.0 * out.epsilon + out.epsilon * out.epsilon;
  return out;
}

/// Convenience overloads reading k, min n_i, p, q from a problem.
template <class Scalar>
GripPrediction predict_grip_delta(const RegressionProblem<Scalar>& pb, Index r, double confidence = 0.95) {
  detail::require(pb.num_tasks() >= 1, "colora::predict_grip_delta", "the problem has k = 0 tasks");
  Index n_min = pb.samples(0);
  for (Index i = 1; i < pb.num_tasks(); ++i) n_min = std::min(n_min, pb.samples(i));
  return predict_grip_delta(MeasurementModel::Regression, pb.num_tasks(), n_min, pb.input_dim(), pb.output_dim(), r,
                            confidence);
}
template <class Scalar>
GripPrediction predict_grip_delta(const SensingProblem<Scalar>& pb, Index r, double confidence = 0.95) {
  detail::require(pb.num_tasks() >= 1, "colora::predict_grip_delta", "the problem has k = 0 tasks");
  Index n_min = pb.samples(0);
  for (Index i = 1; i < pb.num_tasks(); ++i) n_min = std::min(n_min, pb.samples(i));
  return predict_grip_delta(MeasurementModel::Sensing, pb.num_tasks(), n_min, pb.input_dim(), pb.output_dim(), r,
                            confidence);
}

}  // namespace colora
