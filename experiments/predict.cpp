// colora predict: the predictions of a fitted model for new inputs.
//
//   colora predict --model results/fit --data new_inputs --out results/predict
//
// --model: a model directory (model_dir.hpp; `colora fit --out D` writes D/model,
// and `--model D` finds it). --data: a directory with X_<i>.npy (n_i x p) for
// any of the model's tasks i < k (tasks without a file are skipped), and
// optionally Y_<i>.npy (n_i x q, or 1-D when q = 1) to score them.
// Writes OUT/pred_<i>.npy (n_i x q, W_i applied to X_<i>) and OUT/report.csv
// (task, samples, mse: NaN without Y_<i>). Exit codes: 0 done; 1 unreadable
// or mismatched files (the message names the file); 2 a bad command line.
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

int predict(cli::Args& args) {
  const std::string model_arg = args.str("model", "", "model directory written by colora fit (required)");
  const std::string data = args.str("data", "", "directory with X_<i>.npy [, Y_<i>.npy] (required)");
  const std::string out_dir = args.str("out", "results/predict", "output directory");
  if (args.finish()) return 0;
  if (model_arg.empty()) throw cli::UsageError("--model DIR is required (the --out directory of colora fit)");
  if (data.empty()) throw cli::UsageError("--data DIR is required (X_<i>.npy for the tasks to predict)");

  exp::ModelManifest m;
  std::string model_dir;
  const MultiTaskEstimate<double> est = exp::read_model(model_arg, m, model_dir);
  namespace fs = std::filesystem;
  const fs::path dir(data);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw std::runtime_error("colora predict: '" + data + "' is not a directory");
  if (fs::exists(dir / ("X_" + std::to_string(m.tasks) + ".npy"), ec))
    throw std::runtime_error("colora predict: '" + data + "': X_" + std::to_string(m.tasks) +
                             ".npy exists but the model (" + model_dir + ", method " + m.method + ") has " +
                             std::to_string(m.tasks) + " tasks, numbered 0.." + std::to_string(m.tasks - 1));
  const char* where = "colora predict";
  auto read_2d = [&](const std::string& file, Index cols, const char* what) {
    const io::NpyHeader h = io::inspect_npy((dir / file).string());
    const bool one_d_ok = what[0] == 'Y' && cols == 1;
    if ((h.ndim() != 2 && !one_d_ok) || h.cols() != cols)
      throw std::runtime_error("colora predict: '" + data + "': " + file + " has shape " +
                               (h.ndim() == 2 ? "(" + std::to_string(h.rows()) + ", " + std::to_string(h.cols()) + ")"
                                              : "(" + std::to_string(h.rows()) + ",)") +
                               " but the model needs " + what + " with " + std::to_string(cols) +
                               " columns (model " + model_dir + ": p = " + std::to_string(m.p) +
                               ", q = " + std::to_string(m.q) + ")");
    return io::detail::read_task_file<double>(dir, file, where);
  };

  fs::create_directories(out_dir);
  io::CsvTable report({"task", "samples", "mse"});
  Index predicted = 0;
  double se = 0, count = 0;
  for (Index i = 0; i < m.tasks; ++i) {
    const std::string xf = io::indexed_name("X", i) + ".npy", yf = io::indexed_name("Y", i) + ".npy";
    if (!fs::exists(dir / xf, ec)) continue;
    const Matrix<double> X = read_2d(xf, m.p, "X (n x p)");
    const Matrix<double> pred = est.predict(i, X);
    io::write_npy(out_dir + "/" + io::indexed_name("pred", i) + ".npy", pred);
    double mse = std::numeric_limits<double>::quiet_NaN();
    if (fs::exists(dir / yf, ec)) {
      const Matrix<double> Y = read_2d(yf, m.q, "Y (n x q)");
      if (Y.rows() != X.rows())
        throw std::runtime_error("colora predict: '" + data + "': " + yf + " has " + std::to_string(Y.rows()) +
                                 " rows but " + xf + " has " + std::to_string(X.rows()));
      const double s = (pred - Y).squaredNorm();
      mse = s / double(Y.size());
      se += s;
      count += double(Y.size());
    }
    report.row() << (long long)i << (long long)X.rows() << mse;
    ++predicted;
  }
  if (predicted == 0)
    throw std::runtime_error("colora predict: '" + data + "' has no X_<i>.npy for a task of the model (i in 0.." +
                             std::to_string(m.tasks - 1) + ")");
  report.write(out_dir + "/report.csv");
  std::printf("colora predict: model %s (%s, rank %lld, k=%lld p=%lld q=%lld): predicted %lld tasks", model_dir.c_str(),
              m.method.c_str(), (long long)m.rank, (long long)m.tasks, (long long)m.p, (long long)m.q,
              (long long)predicted);
  if (count > 0) std::printf(", MSE %.6e over the tasks with Y_<i>.npy", se / count);
  std::printf("\nwrote %s/pred_<i>.npy, report.csv\n", out_dir.c_str());
  return 0;
}

}  // namespace cmd
}  // namespace colora
