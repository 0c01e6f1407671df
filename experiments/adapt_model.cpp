// colora adapt --model DIR --data DIR: new tasks from the user's own data on
// the shared part of a fitted model (docs/experiments.md, "Your data: predict
// and adapt").
//
//   colora adapt --model results/fit --data new_tasks --out results/adapted
//
// --data: X_<j>.npy, Y_<j>.npy (+ optional X_test_<j>.npy, Y_test_<j>.npy) of
// the NEW tasks j = 0..m-1 (the layout of colora fit). For every new task the
// personal part is fitted by ridge regression against the model's frozen
// shared factors:
//   colora-form models (A and B: colora, ffa, global-lora, mom, gd-gd)
//       the core S_j = argmin ||Y - X W0^T - X A^T S^T B^T||^2 + lambda_j ||S||^2
//       (colora::adapt_core; B is orthonormalized first, which changes the core's
//       coordinates, not the fitted update B S A);
//   head models (A only: fedrep, fedrep-gd)
//       the head H_j = argmin ||Y - X W0^T - X A^T H^T||^2 + lambda_j ||H||^2.
// lambda_j = ridge * ||X A^T||_F^2 / r: --ridge is relative to the mean
// eigenvalue of the new task's reduced Gram matrix (A^T X^T X A) / r, so it
// means the same at every sample size and scale (default 1e-2: shrinks a
// well-determined core by 1%, and removes the interpolation spike at n_j = r).
// Writes OUT/model (a model directory of the new tasks, for colora predict),
// OUT/S_<j>.npy or OUT/H_<j>.npy, OUT/report.csv (task, samples, train_mse,
// test_mse, ridge). Exit codes: 0 done; 1 unreadable or mismatched files;
// 2 a bad command line or a model without a shared part.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <colora/core/errors.hpp>

#include "commands.hpp"
#include "methods.hpp"
#include "model_dir.hpp"
#include <colora/io/task_directory.hpp>

namespace colora {
namespace cmd {

int adapt_model(cli::Args& args) {
  const std::string model_arg = args.str("model", "", "model directory written by colora fit (required)");
  const std::string data =
      args.str("data", "", "the new tasks: X_<j>.npy, Y_<j>.npy [, X_test_<j>.npy, Y_test_<j>.npy] (required)");
  const double ridge = args.real("ridge", 1e-2,
                                 "ridge, relative to the mean eigenvalue of the new task's reduced Gram "
                                 "(X A^T)^T (X A^T) / r",
                                 0, 1e12);
  const CoreKind core =
      parse_core_kind(args.choice("core", "full", enum_choices<CoreKind>(), "personal core of colora-form models"));
  const std::string out_dir = args.str("out", "results/adapted", "output directory");
  if (args.finish()) return 0;
  if (model_arg.empty()) throw cli::UsageError("--model DIR is required (the --out directory of colora fit)");
  if (data.empty()) throw cli::UsageError("--data DIR is required (the new tasks' X_<j>.npy, Y_<j>.npy)");

  exp::ModelManifest m;
  std::string model_dir;
  const MultiTaskEstimate<double> model = exp::read_model(model_arg, m, model_dir);
  const bool colora_form = m.has_A && m.has_B, head_form = m.has_A && !m.has_B;
  if (!colora_form && !head_form)
    throw cli::UsageError("model " + model_dir + " (method " + m.method +
                          ") has no shared factor to adapt new tasks on; adapt needs a model with a shared A "
                          "(colora, fedrep, ffa, global-lora, mom, gd-gd)");
  const RegressionProblem<double> pb = io::load_regression_directory<double>(data);
  if (pb.input_dim() != m.p || pb.output_dim() != m.q)
    throw std::runtime_error("colora adapt: '" + data + "': the new tasks have p = " + std::to_string(pb.input_dim()) +
                             ", q = " + std::to_string(pb.output_dim()) + " but the model (" + model_dir +
                             ") has p = " + std::to_string(m.p) + ", q = " + std::to_string(m.q));
  if (pb.W0.size() && (model.W0.size() == 0 || !pb.W0.isApprox(model.W0, 0.0)))
    throw std::runtime_error("colora adapt: '" + data + "': W0.npy differs from the model's frozen base (" +
                             model_dir + (model.W0.size() ? "/W0.npy" : ": none") +
                             "); the new tasks must share the base the model was fitted on");
  const Matrix<double>& A = model.A;
  const Index r = A.rows(), k_new = pb.num_tasks();
  // B orthonormalized for the full core (adapt_core's S-step assumes it).
  Matrix<double> Bq = model.B;
  if (colora_form && core == CoreKind::Full) {
    Eigen::HouseholderQR<Matrix<double>> qr(model.B);
    Bq = qr.householderQ() * Matrix<double>::Identity(model.B.rows(), model.B.cols());
  }

  MultiTaskEstimate<double> out;
  out.V.push_back(A.transpose());
  out.A = A;
  if (colora_form) out.B = Bq;
  out.W0 = model.W0;
  std::vector<std::pair<std::string, Matrix<double>>> personal;
  std::filesystem::create_directories(out_dir);
  io::CsvTable report({"task", "samples", "train_mse", "test_mse", "ridge"});
  double test_se = 0, test_count = 0;
  for (Index j = 0; j < k_new; ++j) {
    const auto& t = pb.tasks[size_t(j)];
    const Matrix<double> Z = t.X * A.transpose();  // n x r
    const double lambda = exp::relative_ridge(Z, ridge);
    Matrix<double> U;  // q x r
    if (colora_form) {
      const Matrix<double> S = adapt_core(A, Bq, model.W0, t.X, t.Y, lambda, core);
      personal.push_back({io::indexed_name("S", j), S});
      U = Bq * S;
    } else {
      Matrix<double> R = t.Y;
      if (model.W0.size()) R.noalias() -= t.X * model.W0.transpose();
      Matrix<double> Ht;  // r x q
      if (!detail::ridge_least_squares<double>(Z, R, lambda, Ht))
        throw std::runtime_error("colora adapt: new task " + std::to_string(j) +
                                 ": the head's least-squares system is singular (X_" + std::to_string(j) +
                                 ".npy A^T is rank-deficient; give --ridge > 0)");
      U = Ht.transpose();
      personal.push_back({io::indexed_name("H", j), U});
    }
    out.U.push_back(U);
    const double train = (out.predict(j, t.X) - t.Y).squaredNorm() / double(t.Y.size());
    double test = std::numeric_limits<double>::quiet_NaN();
    if (t.test_samples() > 0) {
      const double s = (out.predict(j, t.X_test) - t.Y_test).squaredNorm();
      test = s / double(t.Y_test.size());
      test_se += s;
      test_count += double(t.Y_test.size());
    }
    report.row() << (long long)j << (long long)t.samples() << train << test << lambda;
  }
  io::save_matrices(out_dir, personal);
  exp::write_model(out_dir + "/model", m.method + "+adapt", m.rank, m.p, m.q, out);
  report.write(out_dir + "/report.csv");
  std::printf("colora adapt: %lld new tasks on the shared %s of %s (%s, rank %lld), ridge %g (relative)",
              (long long)k_new, colora_form ? "A, B" : "A", model_dir.c_str(), m.method.c_str(), (long long)r, ridge);
  if (test_count > 0) std::printf(", test MSE %.6e", test_se / test_count);
  std::printf("\nwrote %s/%s_<j>.npy, report.csv, model/\n", out_dir.c_str(), colora_form ? "S" : "H");
  return 0;
}

}  // namespace cmd
}  // namespace colora
