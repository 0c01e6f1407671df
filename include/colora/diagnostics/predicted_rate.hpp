// Predicted rate of the alternating minimization (docs/theory.md, "Measured
// and predicted rates"): the local contraction factor of the iteration map at
// a fixed point, the spectral radius of its Jacobian on the gauge-free
// tangent directions (Arnoldi on finite-difference Jacobian-vector products).
// The measured rates it is compared with are in measured_rate.hpp.
//
//   predicted_contraction_rate(pb, options, A, B)
//
// Choices [choice], documented in docs/theory.md:
//  * The state of the iteration is the pair of subspaces (row(A), col(B)):
//    the iteration is gauge-equivariant and the cores are a function of
//    (A, B) (S-step). Coordinates near a fixed point (A0, B0), orthonormal:
//      E_A = (A A0^T)^{-1} A (I - A0^T A0)   (r x p),
//      E_B = (I - B0 B0^T) B (B0^T B)^{-1}   (q x r),
//    a chart of the product of Grassmannians, dimension r (p - r) + r (q - r)
//    (r (p - r) when q < r fixes B). The map is linearized in these coordinates.
//  * The A-step is linearized as the exact A-step: cg is the exact step
//    solved approximately, and its stopping rule (a fixed residual
//    reduction) is not a differentiable function of the data, so the map
//    with cg is evaluated with cg run to rounding level. gd is its own
//    (linear) step. Full cores only: with diagonal cores the state is not a
//    pair of subspaces (rotations inside them change the model).
//  * Jacobian-vector products by central differences with step h (default
//    eps(Scalar)^(1/3)); the rate is the largest modulus of the Ritz values
//    of an Arnoldi process (up to m = 60 steps, stopped once the leading
//    Ritz pair's residual is below 1e-4), its interval the Ritz
//    residual plus the rounding level of the differences (about eps / h);
//    the estimate is repeated with h / 2 and `step_check` says whether the
//    two agree within that interval (if not, the interval is widened to
//    cover both).
#pragma once

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "colora/core/errors.hpp"
#include "colora/core/linalg.hpp"
#include "colora/core/random.hpp"
#include "colora/diagnostics/measured_rate.hpp"
#include "colora/regression/altmin.hpp"
#include "colora/regression/solver.hpp"

namespace colora {

/// Options of predicted_contraction_rate().
struct LinearizationOptions {
  int krylov_dimension = 60;    ///< at most this many Arnoldi steps (fewer when the tangent space is smaller)
  double ritz_tolerance = 1e-4;  ///< stop once the leading Ritz pair's residual is below this
  double step = 0.0;          ///< finite-difference step h; 0 = eps(Scalar)^(1/3)
  std::uint64_t seed = 0;     ///< the Arnoldi start vector

  void validate(const char* where = "colora::LinearizationOptions") const {
    detail::require(krylov_dimension >= 1, where, "krylov_dimension must be >= 1, got ", krylov_dimension);
    detail::require(std::isfinite(ritz_tolerance) && ritz_tolerance >= 0, where,
                    "ritz_tolerance must be finite and >= 0, got ", ritz_tolerance);
    detail::require(std::isfinite(step) && step >= 0, where, "step must be finite and >= 0, got ", step);
  }
};

/// What predicted_contraction_rate() returns.
struct PredictedRate {
  static constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  bool valid = false;
  std::string reason;      ///< why not valid
  double rho = nan;        ///< spectral radius estimate at step h
  double rho_lower = nan;  ///< interval (Ritz residual + rounding; widened if the step check failed)
  double rho_upper = nan;
  double rho_half_step = nan;  ///< the same at step h / 2
  bool step_check = false;     ///< |rho(h) - rho(h/2)| <= the half-width of the interval
  double ritz_residual = nan;  ///< ||J y - theta y|| of the leading Ritz pair (unit y), at step h
  double step = nan;           ///< h
  double fixed_point_residual = nan;  ///< ||phi(0)||: how far the point is from a fixed point
  Index dimension = 0;                ///< of the gauge-free tangent space
  int krylov_dimension = 0;           ///< Arnoldi steps taken (per step size)
  int map_evaluations = 0;            ///< iterations of the map evaluated
};

namespace detail {

/// The iteration map in the chart around (A0, B0) (see the header).
template <class Model>
class IterationMap {
 public:
  using Scalar = typename Model::Scalar;
  using Mat = Matrix<Scalar>;

  IterationMap(const Model& model, const SolverOptions& o, const Mat& A0, const Mat& B0)
      : model_(model), set_(model, o) {
    if (set_.control.solver == AStepSolver::Cg) {  // the exact A-step, solved by cg to rounding level
      set_.control.cg_reduction = 0.0;
      set_.control.cg_tolerance = 10.0 * double(std::numeric_limits<Scalar>::epsilon());
      set_.control.cg_max_products = int(std::max<Index>(4 * A0.cols() * A0.rows(), 200));
    }
    A0_ = thin_qr(A0.transpose().template cast<double>().eval()).Q.transpose();
    B0_ = set_.fixed_b ? Matrix<double>(B0.template cast<double>()) : thin_qr(B0.template cast<double>().eval()).Q;
    r_ = A0.rows();
    p_ = A0.cols();
    q_ = B0.rows();
  }

  Index size() const { return r_ * p_ + (set_.fixed_b ? 0 : q_ * r_); }
  Index dimension() const { return r_ * (p_ - r_) + (set_.fixed_b ? 0 : r_ * std::max<Index>(q_ - r_, 0)); }
  int evaluations() const { return evaluations_; }

  /// Removes the components along the gauge (E_A A0^T = 0, B0^T E_B = 0).
  void project(Vector<double>& v) const {
    Eigen::Map<Matrix<double>> EA(v.data(), r_, p_);
    EA -= (EA * A0_.transpose()) * A0_;
    if (!set_.fixed_b) {
      Eigen::Map<Matrix<double>> EB(v.data() + r_ * p_, q_, r_);
      EB -= B0_ * (B0_.transpose() * EB);
    }
  }

  /// phi(v): one iteration from the point with coordinates v; false on failure.
  bool apply(const Vector<double>& v, Vector<double>& out) const {
    ++evaluations_;
    Eigen::Map<const Matrix<double>> EA(v.data(), r_, p_);
    Mat A = thin_qr(Matrix<double>((A0_ + EA).transpose())).Q.transpose().template cast<Scalar>();
    Mat B;
    if (set_.fixed_b) {
      B = B0_.template cast<Scalar>();
    } else {
      Eigen::Map<const Matrix<double>> EB(v.data() + r_ * p_, q_, r_);
      B = thin_qr(Matrix<double>(B0_ + EB)).Q.template cast<Scalar>();
    }
    std::vector<Mat> S;
    AStepStats ast;
    if (!altmin::fit_cores(model_, A, B, set_.ridge, set_.core, S)) return false;
    if (!altmin::iterate(model_, set_.w, set_.ridge, set_.core, set_.control, set_.fixed_b, A, B, S, ast)) return false;
    const Matrix<double> Ad = A.template cast<double>(), Bd = B.template cast<double>();
    out.setZero(size());
    Eigen::Map<Matrix<double>> OA(out.data(), r_, p_);
    const Matrix<double> C = Ad * A0_.transpose();  // r x r
    const Eigen::FullPivLU<Matrix<double>> luA(C);
    if (!luA.isInvertible()) return false;
    OA = luA.solve(Ad - C * A0_);
    if (!set_.fixed_b) {
      Eigen::Map<Matrix<double>> OB(out.data() + r_ * p_, q_, r_);
      const Matrix<double> D = B0_.transpose() * Bd;
      const Eigen::FullPivLU<Matrix<double>> luB(D.transpose());
      if (!luB.isInvertible()) return false;
      OB = luB.solve((Bd - B0_ * D).transpose()).transpose();
    }
    return out.allFinite();
  }

 private:
  const Model& model_;
  IterationSettings<Model> set_;
  Matrix<double> A0_, B0_;
  Index r_ = 0, p_ = 0, q_ = 0;
  mutable int evaluations_ = 0;
};

struct ArnoldiRadius {
  bool ok = false;
  double rho = std::numeric_limits<double>::quiet_NaN();
  double residual = std::numeric_limits<double>::quiet_NaN();
  int steps = 0;
};

/// The largest-modulus Ritz value of the leading j x j block of H and its residual.
/// (A template, like arnoldi_radius, so that only a caller compiles it.)
template <class Real>
ArnoldiRadius leading_ritz(const Matrix<Real>& H, int j) {
  ArnoldiRadius res;
  res.steps = j;
  const Matrix<Real> Hm = H.topLeftCorner(j, j);
  Eigen::EigenSolver<Matrix<Real>> es(Hm);
  if (es.info() != Eigen::Success) return res;
  const auto ev = es.eigenvalues();
  Index best = 0;
  for (Index i = 1; i < ev.size(); ++i)
    if (std::abs(ev(i)) > std::abs(ev(best))) best = i;
  const Eigen::VectorXcd y = es.eigenvectors().col(best);
  res.rho = std::abs(ev(best));
  res.residual = std::abs(H(j, j - 1)) * std::abs(y(j - 1)) / y.norm();
  res.ok = std::isfinite(res.rho) && std::isfinite(res.residual);
  return res;
}

/// Largest-modulus Ritz value of the Jacobian of `map` at 0, by Arnoldi on
/// central-difference products (J v ~ (phi(h v) - phi(-h v)) / 2h), at most
/// m steps, stopped once the Ritz residual is below `tol` (checked every 5 steps).
template <class Map>
ArnoldiRadius arnoldi_radius(const Map& map, double h, int m, double tol, const Vector<double>& start) {
  const Index n = map.size();
  const int steps = int(std::min<Index>(m, std::max<Index>(map.dimension(), 1)));
  Matrix<double> V(n, steps + 1);
  Matrix<double> H = Matrix<double>::Zero(steps + 1, steps);
  V.col(0) = start;
  Vector<double> vp(n), vm(n), fp(n), fm(n), w(n);
  for (int j = 0; j < steps; ++j) {
    vp = h * V.col(j);
    vm = -vp;
    if (!map.apply(vp, fp) || !map.apply(vm, fm)) return {};
    w = (fp - fm) / (2.0 * h);
    map.project(w);
    for (int pass = 0; pass < 2; ++pass)  // modified Gram-Schmidt, twice
      for (int i = 0; i <= j; ++i) {
        const double c = V.col(i).dot(w);
        H(i, j) += c;
        w -= c * V.col(i);
      }
    H(j + 1, j) = w.norm();
    if (!(H(j + 1, j) > 1e-14 * std::max(1.0, H.col(j).norm()))) {  // an invariant subspace: exact
      H(j + 1, j) = 0.0;
      return leading_ritz(H, j + 1);
    }
    V.col(j + 1) = w / H(j + 1, j);
    if (j + 1 == steps) break;
    if ((j + 1) % 5 == 0 && j + 1 >= 10) {
      const ArnoldiRadius a = leading_ritz(H, j + 1);
      if (a.ok && a.residual <= tol) return a;
    }
  }
  return leading_ritz(H, steps);
}

}  // namespace detail

/// The local contraction factor of the solver's iteration (settings `opt`)
/// at the fixed point (A, B) of problem `pb`: the spectral radius of the
/// map's Jacobian on the gauge-free tangent directions (see the header for
/// the chart, the step and the interval). Never throws for numerical
/// trouble (valid = false with a reason).
template <class Problem>
PredictedRate predicted_contraction_rate(const Problem& pb, const SolverOptions& opt,
                                         const Matrix<typename Problem::Scalar>& A,
                                         const Matrix<typename Problem::Scalar>& B,
                                         const LinearizationOptions& lo = {}) {
  using Scalar = typename Problem::Scalar;
  const char* where = "colora::predicted_contraction_rate";
  opt.validate();
  lo.validate(where);
  pb.validate(where);
  detail::require(A.rows() == opt.rank && A.cols() == pb.input_dim(), where, "A must be r x p = ", opt.rank, " x ",
                  pb.input_dim(), ", got ", A.rows(), " x ", A.cols());
  detail::require(B.rows() == pb.output_dim() && B.cols() == opt.rank, where, "B must be q x r = ", pb.output_dim(),
                  " x ", opt.rank, ", got ", B.rows(), " x ", B.cols());
  PredictedRate out;
  if (opt.core != CoreKind::Full) {
    out.reason = "diagonal cores: the state is not a pair of subspaces (see docs/theory.md)";
    return out;
  }
  if (!A.allFinite() || !B.allFinite()) {
    out.reason = "the fixed point is not finite";
    return out;
  }
  using Model = measurement_model_t<Problem>;
  const Model model(pb, opt.num_threads);
  const detail::IterationMap<Model> map(model, opt, A, B);
  out.dimension = map.dimension();
  if (out.dimension == 0) {
    out.valid = true;
    out.rho = out.rho_lower = out.rho_upper = out.rho_half_step = 0.0;
    out.step_check = true;
    out.reason = "the tangent space is {0} (r = p and r = q): the iteration is exact in one step";
    return out;
  }
  const double eps = double(std::numeric_limits<Scalar>::epsilon());
  const double h = lo.step > 0 ? lo.step : std::cbrt(eps);
  out.step = h;
  Vector<double> zero = Vector<double>::Zero(map.size()), phi0;
  if (!map.apply(zero, phi0)) {
    out.reason = "one iteration from the point failed";
    return out;
  }
  out.fixed_point_residual = phi0.norm();
  Rng rng(lo.seed, 0x4A4C494EULL);
  Vector<double> v(map.size());
  for (Index i = 0; i < v.size(); ++i) v(i) = rng.normal();
  map.project(v);
  v /= v.norm();
  const detail::ArnoldiRadius a1 = detail::arnoldi_radius(map, h, lo.krylov_dimension, lo.ritz_tolerance, v);
  const detail::ArnoldiRadius a2 = detail::arnoldi_radius(map, 0.5 * h, lo.krylov_dimension, lo.ritz_tolerance, v);
  out.map_evaluations = map.evaluations();
  out.krylov_dimension = a1.steps;
  if (!a1.ok || !a2.ok) {
    out.reason = "an iteration near the point failed, or the Ritz values did not converge";
    return out;
  }
  out.valid = true;
  out.rho = a1.rho;
  out.rho_half_step = a2.rho;
  out.ritz_residual = a1.residual;
  // Rounding level of a central difference: eps * |phi| / h per unit direction (|phi| ~ 1).
  const double half = a1.residual + 10.0 * eps / h;
  out.step_check = std::abs(a1.rho - a2.rho) <= half;
  const double lo_v = std::min(a1.rho, a2.rho), hi_v = std::max(a1.rho, a2.rho);
  out.rho_lower = std::max(0.0, (out.step_check ? a1.rho : lo_v) - half);
  out.rho_upper = (out.step_check ? a1.rho : hi_v) + half;
  return out;
}
}  // namespace colora
