// The alternating-minimization kernel: the steps every CoLoRA-form method is
// built from (docs/solver.md, "The kernel").
//
//   minimize over B, A, {S_i}:  sum_i w_i ||target_i - A_i(B S_i A)||^2 + sum_i ridge_i ||S_i||_F^2
//
//   altmin::initialize   starting A (r x p) and B (q x r): spectral | random
//   altmin::fit_cores    the S-step: every task's core for fixed A, B
//   altmin::b_step       the B-step: the weighted normal equations over tasks, solved
//   altmin::a_step       the A-step: exact | cg | gd on the quadratic in G = A^T
//   altmin::regauge_b    B <- Q of B's thin QR, S_i <- R S_i (or unit columns)
//   altmin::regauge_a    A <- Q^T of G's thin QR, S_i <- S_i R^T (or unit rows)
//   altmin::iterate      one iteration: B-step, A-step, S-step (with the re-gauges)
//   altmin::objective    sum_i w_i L_i + lambda sum_i ||S_i||^2
//
// Every function takes a measurement model (RegressionModel for (M1),
// SensingModel for (M2), or your own: measurement_model.hpp states the
// concept) and sums over tasks in task order, so results do not depend on the
// thread count. The users of the kernel:
//   Solver (solver.hpp)       initialize, then B-step, A-step, S-step per iteration
//   fedrep (fedrep.hpp)       B = I_q fixed, S_i = the q x r head H_i: fit_cores, a_step, regauge_a
//   mom, gd-gd                initialize + fit_cores
//   fit_oracle, adapt_core    fit_cores with the given A, B
// The S_i are B.cols() x r: r x r for CoLoRA, q x r heads when B = I_q.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "colora/core/adapter.hpp"
#include "colora/core/enum_names.hpp"
#include "colora/core/errors.hpp"
#include "colora/core/linalg.hpp"
#include "colora/core/random.hpp"
#include "colora/detail/parallel.hpp"
#include "colora/regression/a_step.hpp"
#include "colora/regression/regression_model.hpp"
#include "colora/regression/sensing_model.hpp"

namespace colora {

enum class InitKind { Spectral, Random };
/// w_i = 1 (every sample counts the same) or 1/n_i (every task counts the same).
enum class TaskWeighting { PerSample, PerTask };

template <>
struct EnumNames<InitKind> {
  static constexpr const char* what = "initialization";
  static constexpr EnumName<InitKind> table[] = {{InitKind::Spectral, "spectral"}, {InitKind::Random, "random"}};
};
template <>
struct EnumNames<TaskWeighting> {
  static constexpr const char* what = "task weighting";
  static constexpr EnumName<TaskWeighting> table[] = {{TaskWeighting::PerSample, "per-sample"},
                                                      {TaskWeighting::PerTask, "per-task"}};
};
inline InitKind parse_init_kind(const std::string& s) { return parse_enum<InitKind>(s, "colora::parse_init_kind"); }
inline TaskWeighting parse_task_weighting(const std::string& s) {
  return parse_enum<TaskWeighting>(s, "colora::parse_task_weighting");
}
inline const char* to_string(InitKind k) noexcept { return enum_name(k); }
inline const char* to_string(TaskWeighting w) noexcept { return enum_name(w); }

/// The measurement model of a problem type: RegressionModel for
/// RegressionProblem, SensingModel for SensingProblem.
template <class Problem>
using measurement_model_t =
    std::conditional_t<std::is_same<Problem, RegressionProblem<typename Problem::Scalar>>::value,
                       RegressionModel<typename Problem::Scalar>, SensingModel<typename Problem::Scalar>>;

namespace altmin {

/// Stream id of the random initialization (with the user's seed): the same
/// draw for the solver and every method that starts where it starts.
constexpr std::uint64_t kInitStream = 0x5EED1A17ULL;

/// How the A-step solves its quadratic (a_step.hpp states the three solvers).
struct AStepControl {
  AStepSolver solver = AStepSolver::Cg;
  int cg_max_products = 50;  ///< per A-step
  double cg_tolerance = 0;   ///< relative residual; 0 = 100 eps(Scalar)
  double cg_reduction = 1e-2;
  double gd_step = 1.0;  ///< eta in units of 1/L
};

/// w_i = 1 or 1/n_i for every task of the model.
template <class Model>
std::vector<typename Model::Scalar> task_weights(const Model& model, TaskWeighting weighting) {
  using Scalar = typename Model::Scalar;
  std::vector<Scalar> w(static_cast<size_t>(model.tasks()));
  for (Index i = 0; i < model.tasks(); ++i)
    w[size_t(i)] = weighting == TaskWeighting::PerSample ? Scalar(1) : Scalar(1) / Scalar(model.samples(i));
  return w;
}

/// The S-step ridges lambda / w_i (lambda is per task in the objective,
/// which weighs the losses by w_i).
template <class Scalar>
std::vector<Scalar> core_ridges(const std::vector<Scalar>& w, double lambda) {
  std::vector<Scalar> ridge(w.size());
  for (size_t i = 0; i < w.size(); ++i) ridge[i] = Scalar(lambda) / w[i];
  return ridge;
}

/// One warning per task with fewer samples than the rank and no ridge: its
/// core is underdetermined and fit_cores gives the minimum-norm one.
template <class Model>
std::vector<std::string> core_warnings(const Model& model, Index r, double lambda) {
  std::vector<std::string> out;
  if (lambda != 0.0) return out;
  for (Index i = 0; i < model.tasks(); ++i)
    if (model.samples(i) < r)
      out.push_back(detail::concat("task ", i, ": n_i = ", model.samples(i), " < r = ", r,
                                   ": its core is underdetermined; the minimum-norm core is used (set lambda > 0 "
                                   "for a ridge)"));
  return out;
}

/// Starting shared factors with orthonormal rows (A, r x p) and columns (B, q x r).
/// Spectral: A's rows are the top-r eigenvectors of sum_i M_i M_i^T and B's
/// columns those of sum_i M_i^T M_i, with M_i = model.moment(i) (p x q).
/// Random: Haar-distributed, A first then B, from Rng(seed, kInitStream).
/// When q < r, or with `learn_b` = false, B is the fixed [I_q 0] (q x r) and
/// no q x q moment is formed. Requires 1 <= r <= p. Returns false when a
/// factor is not finite (moments that overflow the scalar type; the Solver
/// rescales such data first, data_scale.hpp).
template <class Model>
bool initialize(const Model& model, InitKind init, Index r, std::uint64_t seed, Matrix<typename Model::Scalar>& A,
                Matrix<typename Model::Scalar>& B, bool learn_b = true) {
  using Scalar = typename Model::Scalar;
  using Mat = Matrix<Scalar>;
  const Index k = model.tasks(), p = model.input_dim(), q = model.output_dim();
  detail::require(r >= 1 && r <= p, "colora::altmin::initialize", "rank r = ", r, " must be in [1, p = ", p, "]");
  const bool fixed_b = !learn_b || q < r;
  if (init == InitKind::Spectral) {
    // Both sums in one pass over the tasks (model.add_moment_grams).
    struct Sums {
      Mat mmt, mtm;
      Sums& operator+=(const Sums& o) {
        mmt += o.mmt;
        if (mtm.size()) mtm += o.mtm;
        return *this;
      }
    };
    const Sums zero{Mat::Zero(p, p), fixed_b ? Mat() : Mat(Mat::Zero(q, q))};
    const Sums sums = detail::ordered_sum(k, model.threads(), zero, [&](Index i, Sums& acc) {
      model.add_moment_grams(i, acc.mmt, fixed_b ? nullptr : &acc.mtm);
    });
    A = top_eigenvectors<Scalar>(sums.mmt, r).transpose();
    B = fixed_b ? Mat(Mat::Identity(q, r)) : top_eigenvectors<Scalar>(sums.mtm, r);
  } else {
    Rng rng(seed, kInitStream);
    A = haar_orthonormal<Scalar>(rng, p, r).transpose();
    B = fixed_b ? Mat(Mat::Identity(q, r)) : haar_orthonormal<Scalar>(rng, q, r);
  }
  return A.allFinite() && B.allFinite();
}

/// The S-step: for every task (only the flagged ones when `only` is given)
///   S_i = argmin_S ||target_i - A_i(B S A)||^2 + ridge[i] ||S||_F^2,
/// S_i of size B.cols() x r (diagonal for CoreKind::Diagonal). A full core
/// needs B with orthonormal columns (the gauge of the solver, or B = I_q);
/// fewer samples than unknowns and ridge 0 give the minimum-norm core.
/// `S` is resized to the number of tasks. Returns false if a task's system
/// was singular or not finite (its core is then whatever the solve gave).
template <class Model>
bool fit_cores(const Model& model, const Matrix<typename Model::Scalar>& A, const Matrix<typename Model::Scalar>& B,
               const std::vector<typename Model::Scalar>& ridge, CoreKind core,
               std::vector<Matrix<typename Model::Scalar>>& S, const std::vector<char>* only = nullptr) {
  const Index k = model.tasks();
  detail::require(Index(ridge.size()) == k, "colora::altmin::fit_cores", "got ", ridge.size(), " ridges for ", k,
                  " tasks");
  S.resize(size_t(k));
  if (!only) {  // a partial pass (fedrep's participants) forms its products per task
    model.prepare_a(A);
    model.prepare_b(B);
  }
  std::vector<char> ok(size_t(k), 1);
  detail::parallel_for_tasks(k, model.threads(), [&](Index i) {
    if (only && !(*only)[size_t(i)]) return;
    ok[size_t(i)] = model.solve_core(i, A, B, ridge[size_t(i)], core, S[size_t(i)]);
  });
  return std::all_of(ok.begin(), ok.end(), [](char c) { return c != 0; });
}

/// The B-step: Bn = argmin_B sum_i w_i ||target_i - A_i(B S_i A)||^2 (q x r,
/// not yet re-gauged; regauge_b does that). Returns false if the normal
/// equations are singular or the result is not finite.
template <class Model>
bool b_step(const Model& model, const Matrix<typename Model::Scalar>& A,
            const std::vector<Matrix<typename Model::Scalar>>& S, const std::vector<typename Model::Scalar>& w,
            Matrix<typename Model::Scalar>& Bn) {
  using Scalar = typename Model::Scalar;
  model.prepare_a(A);
  const BNormal<Scalar> ne = detail::ordered_sum(model.tasks(), model.threads(), model.b_zero(A.rows()),
                                                 [&](Index i, BNormal<Scalar>& acc) {
                                                   acc += model.b_normal(i, A, S[size_t(i)], w[size_t(i)]);
                                                 });
  return model.b_from_normal(ne, Bn) && Bn.allFinite();
}

/// The A-step on min_G sum_i w_i ||target_i - A_i(B S_i G^T)||^2, G = A^T
/// (p x r), from the G given (the warm start of cg and gd). Tasks with
/// w_i = 0 take no part (fedrep's partial participation). The result is not
/// yet re-gauged (regauge_a). stats.ok is false on a singular or non-finite system.
template <class Model>
AStepStats a_step(const Model& model, const Matrix<typename Model::Scalar>& B,
                  const std::vector<Matrix<typename Model::Scalar>>& S, const std::vector<typename Model::Scalar>& w,
                  const AStepControl& control, Matrix<typename Model::Scalar>& G) {
  using Scalar = typename Model::Scalar;
  const auto sys = model.a_system(B, S, w);
  AStepStats st;
  switch (control.solver) {
    case AStepSolver::Exact: st = detail::a_step_exact(sys, G); break;
    case AStepSolver::Cg: {
      const double tol = control.cg_tolerance > 0 ? control.cg_tolerance
                                                  : 100.0 * double(Eigen::NumTraits<Scalar>::epsilon());
      st = detail::a_step_cg(sys, G, control.cg_max_products, tol, control.cg_reduction);
      break;
    }
    case AStepSolver::Gd: st = detail::a_step_gd(sys, G, control.gd_step); break;
  }
  st.ok = st.ok && G.allFinite();
  return st;
}

/// Re-gauging after the B-step (B S_i unchanged). Full core: Bn = Q R,
/// B <- Q, S_i <- R S_i. Diagonal core: B <- Bn with unit columns, S_i <-
/// diag(norms) S_i, which keeps S_i diagonal [choice].
template <class Scalar>
void regauge_b(const Matrix<Scalar>& Bn, CoreKind core, Matrix<Scalar>& B, std::vector<Matrix<Scalar>>& S) {
  if (core == CoreKind::Full) {
    const ThinQR<Scalar> qr = thin_qr(Bn);
    B = qr.Q;
    for (auto& s : S) s = qr.R * s;
    return;
  }
  Vector<Scalar> nrm = Bn.colwise().norm().transpose();
  for (Index j = 0; j < nrm.size(); ++j)
    if (!(nrm(j) > Scalar(0))) nrm(j) = Scalar(1);
  B = Bn * nrm.cwiseInverse().asDiagonal();
  for (auto& s : S) s = nrm.asDiagonal() * s;
}

/// Re-gauging after the A-step (S_i A unchanged). Full core: G = Q R,
/// A <- Q^T, S_i <- S_i R^T. Diagonal core: unit rows of A, S_i <- S_i diag(norms).
template <class Scalar>
void regauge_a(const Matrix<Scalar>& G, CoreKind core, Matrix<Scalar>& A, std::vector<Matrix<Scalar>>& S) {
  if (core == CoreKind::Full) {
    const ThinQR<Scalar> qr = thin_qr(G);
    A = qr.Q.transpose();
    for (auto& s : S) s = s * qr.R.transpose();
    return;
  }
  Vector<Scalar> nrm = G.colwise().norm().transpose();
  for (Index j = 0; j < nrm.size(); ++j)
    if (!(nrm(j) > Scalar(0))) nrm(j) = Scalar(1);
  A = (G * nrm.cwiseInverse().asDiagonal()).transpose();
  for (auto& s : S) s = s * nrm.asDiagonal();
}

/// One iteration of CoLoRA's alternating minimization from (A, B, S), S
/// fitted for (A, B): the B-step and its re-gauge (skipped with `fixed_b`,
/// q < r), the A-step from the warm start A^T and its re-gauge, the S-step.
/// The Solver's iteration and the diagnostics' map of the iteration
/// (diagnostics/predicted_rate.hpp) are this function. False when a solve failed
/// (the factors are then as the failing step left them); `ast` receives the
/// A-step's statistics.
template <class Model>
bool iterate(const Model& model, const std::vector<typename Model::Scalar>& w,
             const std::vector<typename Model::Scalar>& ridge, CoreKind core, const AStepControl& control, bool fixed_b,
             Matrix<typename Model::Scalar>& A, Matrix<typename Model::Scalar>& B,
             std::vector<Matrix<typename Model::Scalar>>& S, AStepStats& ast) {
  using Mat = Matrix<typename Model::Scalar>;
  if (!fixed_b) {
    Mat Bn;
    if (!b_step(model, A, S, w, Bn)) return false;
    regauge_b(Bn, core, B, S);
  }
  Mat G = A.transpose();
  ast = a_step(model, B, S, w, control, G);
  if (!ast.ok) return false;
  regauge_a(G, core, A, S);
  return fit_cores(model, A, B, ridge, core, S);
}

/// sum_i w_i ||target_i - A_i(B S_i A)||^2 + lambda sum_i ||S_i||_F^2,
/// summed in task order.
template <class Model>
double objective(const Model& model, const Matrix<typename Model::Scalar>& A, const Matrix<typename Model::Scalar>& B,
                 const std::vector<Matrix<typename Model::Scalar>>& S, const std::vector<typename Model::Scalar>& w,
                 double lambda) {
  const Index k = model.tasks();
  model.prepare_a(A);
  std::vector<double> li(static_cast<size_t>(k));
  detail::parallel_for_tasks(k, model.threads(), [&](Index i) {
    li[size_t(i)] = double(w[size_t(i)]) * model.loss(i, A, B, S[size_t(i)]);
  });
  double f = 0;
  for (Index i = 0; i < k; ++i) f += li[size_t(i)] + lambda * double(S[size_t(i)].squaredNorm());
  return f;
}

/// Held-out squared error summed over tasks and the number of held-out
/// entries (0 without a test split), in task order.
template <class Model>
std::pair<double, double> test_error(const Model& model, const Matrix<typename Model::Scalar>& A,
                                     const Matrix<typename Model::Scalar>& B,
                                     const std::vector<Matrix<typename Model::Scalar>>& S) {
  const Index k = model.tasks();
  std::vector<double> se(static_cast<size_t>(k));
  std::vector<Index> cnt(static_cast<size_t>(k));
  detail::parallel_for_tasks(k, model.threads(), [&](Index i) {
    se[size_t(i)] = model.test_sq_error(i, A, B, S[size_t(i)], cnt[size_t(i)]);
  });
  double s = 0, c = 0;
  for (Index i = 0; i < k; ++i) {
    s += se[size_t(i)];
    c += double(cnt[size_t(i)]);
  }
  return {s, c};
}

}  // namespace altmin
}  // namespace colora
