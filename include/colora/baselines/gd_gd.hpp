// gd-gd (docs/baselines.md): the CoLoRA parameters (B, A, S_i) fitted by plain
// joint gradient descent on the CoLoRA objective
//     f = sum_i w_i ||target_i - A_i(B S_i A)||^2 + lambda sum_i ||S_i||_F^2,
// without re-gauging (no QR). It is the solver's model with the alternating
// exact steps replaced by simultaneous gradient steps.
//
// Initialization: the solver's (spectral or random init + S-step, i.e. the
// solver with max_iterations = 0).
// Step sizes [choice]: one step per block, eta / L_block, with eta =
// options.gd_gd_step (default 0.5) and the block Lipschitz constants of the
// population (Kronecker) approximation X_i^T X_i ~ n_i c I, evaluated once at
// the initialization:
//     L_{S_i} = 2 c w_i n_i ||A||_2^2 ||B||_2^2
//     L_B     = 2 c lambda_max(sum_i w_i n_i S_i A A^T S_i^T)
//     L_A     = 2 c lambda_max(sum_i w_i n_i S_i^T B^T B S_i)
// with c = the largest pooled input column mean square ((M1); c = 1 for (M2),
// where E <M, W>^2 = ||W||_F^2), plus lambda for L_{S_i}. Safeguard [choice]:
// if a step would increase f, eta is halved and the step retried (at most 40
// times; if no decrease is possible the run stops as converged). So the
// objective never increases.
#pragma once

#include <Eigen/Eigenvalues>

#include "colora/baselines/estimate.hpp"

namespace colora {
namespace detail {

template <class Scalar>
struct GdGradient {
  Matrix<Scalar> gA, gB;  ///< r x p, q x r
  double loss = 0;        ///< sum_i w_i L_i
  GdGradient& operator+=(const GdGradient& o) {
    gA += o.gA;
    gB += o.gB;
    loss += o.loss;
    return *this;
  }
};

/// Adds task i's weighted loss and gradients; writes gS (r x r, without ridge).
template <class Scalar>
void gd_task(const RegressionModel<Scalar>& m, Index i, const Matrix<Scalar>& A, const Matrix<Scalar>& B,
             const Matrix<Scalar>& S, Scalar w, GdGradient<Scalar>& acc, Matrix<Scalar>& gS) {
  using Mat = Matrix<Scalar>;
  const Mat Z = m.X(i) * A.transpose();                             // n x r
  const Mat E = m.target(i) - (Z * S.transpose()) * B.transpose();  // n x q
  const Mat EZ = E.transpose() * Z;                                 // q x r
  const Mat EB = E * B;                                             // n x r
  acc.loss += double(w) * double(E.squaredNorm());
  acc.gB.noalias() -= (Scalar(2) * w) * (EZ * S.transpose());
  acc.gA.noalias() -= (Scalar(2) * w) * ((EB * S).transpose() * m.X(i));
  gS = (Scalar(-2) * w) * (B.transpose() * EZ);
}

template <class Scalar>
void gd_task(const SensingModel<Scalar>& m, Index i, const Matrix<Scalar>& A, const Matrix<Scalar>& B,
             const Matrix<Scalar>& S, Scalar w, GdGradient<Scalar>& acc, Matrix<Scalar>& gS,
             const SensingProblem<Scalar>& pb, const Vector<Scalar>& target) {
  using Mat = Matrix<Scalar>;
  const Mat W = B * S * A;
  const auto& M = pb.tasks[size_t(i)].M;
  const Vector<Scalar> e = target - M * Eigen::Map<const Vector<Scalar>>(W.data(), W.size());
  const Vector<Scalar> g = M.transpose() * e;
  const Eigen::Map<const Mat> Gm(g.data(), m.output_dim(), m.input_dim());  // q x p
  acc.loss += double(w) * double(e.squaredNorm());
  const Mat GAt = Gm * A.transpose();  // q x r
  acc.gB.noalias() -= (Scalar(2) * w) * (GAt * S.transpose());
  acc.gA.noalias() -= (Scalar(2) * w) * (S.transpose() * (B.transpose() * Gm));
  gS = (Scalar(-2) * w) * (B.transpose() * GAt);
}

}  // namespace detail

/// gd-gd: joint gradient descent on (B, A, S_i). (M1) and (M2).
template <class Problem>
BaselineResult<typename Problem::Scalar> fit_gd_gd(const Problem& pb, const BaselineOptions& o) {
  using Scalar = typename Problem::Scalar;
  using Mat = Matrix<Scalar>;
  const char* where = "colora::fit_gd_gd";
  pb.validate(where);
  o.validate();
  detail::check_rank(pb, o.rank, where);
  const auto t0 = std::chrono::steady_clock::now();
  const Index k = pb.num_tasks(), p = pb.input_dim(), q = pb.output_dim(), r = o.rank;
  const auto w = detail::task_weights(pb, o.weighting);
  const measurement_model_t<Problem> model(pb, o.num_threads);
  constexpr bool m1 = std::is_same<Problem, RegressionProblem<Scalar>>::value;

  BaselineResult<Scalar> res;
  res.method = "gd-gd";
  Mat A, B;
  std::vector<Mat> S;
  // The solver's starting point: the kernel's initialization and S-step.
  const bool init_ok = altmin::initialize(model, o.init, r, o.seed, A, B);
  const bool cores_ok = altmin::fit_cores(model, A, B, altmin::core_ridges(w, o.lambda), o.core, S) &&
                        std::all_of(S.begin(), S.end(), [](const Mat& s) { return s.allFinite(); });
  res.warnings = altmin::core_warnings(model, r, o.lambda);
  if (!init_ok || !cores_ok) {  // e.g. moments beyond the scalar's range: no starting point, the zero adapter
    A = Mat::Identity(r, p);
    B = Mat::Identity(q, r);
    for (auto& s : S) s = Mat::Zero(r, r);
    res.status = Status::NumericalIssue;
    res.stop_reason = init_ok ? StopReason::SingularSystem : StopReason::NonFiniteValue;
    res.estimate = detail::colora_form_estimate<Scalar>(A, B, S, pb.W0);
    res.history.push_back(detail::record_estimate(pb, res.estimate, std::numeric_limits<double>::quiet_NaN(), 0,
                                                  detail::seconds_since(t0), o));
    return res;
  }
  std::vector<Vector<Scalar>> targets;
  if constexpr (!m1) {
    targets.resize(static_cast<size_t>(k));
    for (Index i = 0; i < k; ++i) targets[size_t(i)] = detail::sensing_target(pb, i);
  }
  double c = 1.0;
  if constexpr (m1) {
    const Vector<Scalar> cs = detail::ordered_sum(k, o.num_threads, Vector<Scalar>(Vector<Scalar>::Zero(p)),
                                                  [&](Index i, Vector<Scalar>& acc) {
                                                    acc += pb.tasks[size_t(i)].X.colwise().squaredNorm().transpose();
                                                  });
    c = double(cs.maxCoeff()) / double(pb.total_samples());
  }

  std::vector<Mat> gS(static_cast<size_t>(k));
  auto evaluate = [&](const Mat& Ac, const Mat& Bc, const std::vector<Mat>& Sc, bool grads) {
    detail::GdGradient<Scalar> zero{Mat::Zero(r, p), Mat::Zero(q, r), 0.0};
    std::vector<Mat> gs_local(static_cast<size_t>(k));
    auto g = detail::ordered_sum(k, o.num_threads, zero, [&](Index i, detail::GdGradient<Scalar>& acc) {
      if constexpr (m1)
        detail::gd_task(model, i, Ac, Bc, Sc[size_t(i)], w[size_t(i)], acc, gs_local[size_t(i)]);
      else
        detail::gd_task(model, i, Ac, Bc, Sc[size_t(i)], w[size_t(i)], acc, gs_local[size_t(i)], pb,
                        targets[size_t(i)]);
    });
    for (Index i = 0; i < k; ++i) g.loss += o.lambda * double(Sc[size_t(i)].squaredNorm());
    if (grads) {
      for (Index i = 0; i < k; ++i) gs_local[size_t(i)] += Scalar(2 * o.lambda) * Sc[size_t(i)];
      gS = std::move(gs_local);
    }
    return g;
  };
  auto record = [&](double f, int it) {
    res.estimate = detail::colora_form_estimate<Scalar>(A, B, S, pb.W0);
    return detail::record_estimate(pb, res.estimate, f, it, detail::seconds_since(t0), o);
  };

  // Block Lipschitz constants at the initialization.
  auto lmax = [](const Mat& M) {
    if (!M.allFinite()) return std::numeric_limits<double>::quiet_NaN();
    return M.size() ? double(Eigen::SelfAdjointEigenSolver<Mat>(M, Eigen::EigenvaluesOnly).eigenvalues().maxCoeff())
                    : 0.0;
  };
  const double a2 = lmax(A * A.transpose()), b2 = lmax(B.transpose() * B);
  Mat CB = Mat::Zero(r, r), CA = Mat::Zero(r, r);
  const Mat AAt = A * A.transpose(), BtB = B.transpose() * B;
  for (Index i = 0; i < k; ++i) {
    const Scalar wn = w[size_t(i)] * Scalar(pb.samples(i));
    CB += wn * (S[size_t(i)] * AAt * S[size_t(i)].transpose());
    CA += wn * (S[size_t(i)].transpose() * BtB * S[size_t(i)]);
  }
  const double LB = std::max(2 * c * lmax(CB), 1e-300), LA = std::max(2 * c * lmax(CA), 1e-300);
  std::vector<double> LS(static_cast<size_t>(k));
  for (Index i = 0; i < k; ++i)
    LS[size_t(i)] = std::max(2 * c * double(w[size_t(i)]) * double(pb.samples(i)) * a2 * b2 + 2 * o.lambda, 1e-300);

  auto cur = evaluate(A, B, S, true);
  res.history.push_back(record(cur.loss, 0));
  if (!std::isfinite(cur.loss)) {
    res.status = Status::NumericalIssue;
    res.stop_reason = StopReason::NonFiniteValue;
    return res;
  }
  res.status = Status::MaxIterations;
  res.stop_reason = StopReason::MaxIterations;
  if (o.callback && !o.callback(res.history.back())) {
    res.status = Status::Success;
    res.stop_reason = StopReason::CallbackRequested;
    return res;
  }
  const double floor_eps = 16.0 * double(Eigen::NumTraits<Scalar>::epsilon());
  double f_scale = 0;
  for (Index i = 0; i < k; ++i) f_scale += double(w[size_t(i)]) * model.loss(i, A, B, Mat::Zero(r, r));
  double eta = o.gd_gd_step;
  for (int it = 1; it <= o.max_iterations; ++it) {
    const detail::GdGradient<Scalar> g = cur;
    const std::vector<Mat> gS_now = gS;
    bool accepted = false;
    Mat An, Bn;
    std::vector<Mat> Sn(static_cast<size_t>(k));
    detail::GdGradient<Scalar> next;
    for (int halving = 0; halving <= 40; ++halving) {
      An = A - Scalar(eta / LA) * g.gA;
      Bn = B - Scalar(eta / LB) * g.gB;
      for (Index i = 0; i < k; ++i) Sn[size_t(i)] = S[size_t(i)] - Scalar(eta / LS[size_t(i)]) * gS_now[size_t(i)];
      next = evaluate(An, Bn, Sn, true);
      if (std::isfinite(next.loss) && next.loss <= g.loss) {
        accepted = true;
        break;
      }
      eta *= 0.5;
    }
    if (!accepted) {  // no decrease possible at rounding level: a stationary point
      gS = gS_now;
      res.status = Status::Success;
      res.stop_reason = StopReason::ToleranceReached;
      break;
    }
    A = std::move(An);
    B = std::move(Bn);
    S = std::move(Sn);
    cur = next;
    res.history.push_back(record(cur.loss, it));
    res.iterations = it;
    if (o.callback && !o.callback(res.history.back())) {
      res.status = Status::Success;
      res.stop_reason = StopReason::CallbackRequested;
      break;
    }
    if (std::abs(g.loss - cur.loss) <= o.tolerance * std::abs(g.loss) || cur.loss <= f_scale * floor_eps * floor_eps) {
      res.status = Status::Success;
      res.stop_reason = StopReason::ToleranceReached;
      break;
    }
  }
  res.estimate = detail::colora_form_estimate<Scalar>(A, B, S, pb.W0);
  return res;
}

}  // namespace colora
