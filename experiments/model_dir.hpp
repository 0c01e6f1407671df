// A fitted model as a self-describing directory (docs/experiments.md,
// "Model directories"): what `colora fit` and `colora adapt --model` write and
// what `colora predict` and `colora adapt --model` read.
//
//   DIR/model.json        manifest: format "colora-model", format_version 1,
//                         colora_version, method, rank, tasks, p, q,
//                         intercepts (false: this version fits none), dense,
//                         shared_v, has_W0, has_A, has_B
//   DIR/U_<i>.npy         q x r_i   task i's update W_i - W0 = U_i V_i^T
//   DIR/V.npy             p x r     when every task shares V (shared_v)
//   DIR/V_<i>.npy         p x r_i   otherwise (absent when dense: V_i = I_p)
//   DIR/A.npy, DIR/B.npy  the shared factors (r x p, q x r) when the method has them
//   DIR/W0.npy            q x p frozen base (has_W0)
//
// The manifest is written last (atomically, like every file), so a directory
// with a manifest is complete. Reading checks the manifest's format, version
// and every file's shape against it, naming the file.
#pragma once

#include <string>

#include <colora/baselines/estimate.hpp>

namespace colora {
namespace exp {

struct ModelManifest {
  std::string method;
  std::string colora_version;
  Index rank = 0;  ///< 0 for the full-rank methods
  Index tasks = 0, p = 0, q = 0;
  bool intercepts = false;
  bool dense = false;
  bool shared_v = false;
  bool has_W0 = false, has_A = false, has_B = false;
};

/// Writes `est` (every task) and the manifest into `dir` (created).
void write_model(const std::string& dir, const std::string& method, Index rank, Index p, Index q,
                 const MultiTaskEstimate<double>& est);

/// Reads a model directory: `dir` itself or `dir`/model (the model
/// subdirectory of a `colora fit` output). Throws std::runtime_error naming
/// the file on anything missing, malformed or inconsistent.
MultiTaskEstimate<double> read_model(const std::string& dir, ModelManifest& manifest, std::string& model_dir);

}  // namespace exp
}  // namespace colora
