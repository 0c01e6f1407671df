// Model directories (model_dir.hpp): writing and reading with every check.
#include "model_dir.hpp"

#include <colora/io/atomic_file.hpp>
#include <colora/io/json.hpp>
#include <colora/io/npy.hpp>
#include <colora/io/task_directory.hpp>
#include <colora/version.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace colora {
namespace exp {

namespace {

const char* const kFormat = "colora-model";
constexpr long long kFormatVersion = 1;

[[noreturn]] void model_fail(const std::string& dir, const std::string& why) {
  throw std::runtime_error("model directory '" + dir + "': " + why);
}

std::string read_manifest_text(const std::string& path, const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) model_fail(dir, "model.json is missing or not a regular file");
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) model_fail(dir, "model.json: cannot read its size: " + ec.message());
  if (size > (1u << 16)) model_fail(dir, "model.json is " + std::to_string(size) + " bytes (a manifest is < 64 KiB)");
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  if (!in && !in.eof()) model_fail(dir, "model.json: read error");
  return s.str();
}

}  // namespace

void write_model(const std::string& dir, const std::string& method, Index rank, Index p, Index q,
                 const MultiTaskEstimate<double>& est) {
  const Index k = est.num_tasks();
  std::vector<std::pair<std::string, Matrix<double>>> files;
  for (Index i = 0; i < k; ++i) files.push_back({io::indexed_name("U", i), est.U[size_t(i)]});
  const bool shared_v = !est.dense && est.V.size() == 1;
  if (!est.dense) {
    if (shared_v)
      files.push_back({"V", est.V.front()});
    else
      for (Index i = 0; i < k; ++i) files.push_back({io::indexed_name("V", i), est.v(i)});
  }
  if (est.A.size()) files.push_back({"A", est.A});
  if (est.B.size()) files.push_back({"B", est.B});
  if (est.W0.size()) files.push_back({"W0", est.W0});
  // The old manifest goes first and the new one is written last: a rewrite
  // that is interrupted leaves a directory without a manifest, which
  // read_model refuses, never a manifest over a mix of two models. Files of
  // an earlier, larger model (U_7.npy when k = 3) are ignored: the manifest
  // says which files are the model.
  std::error_code ec;
  std::filesystem::remove(std::filesystem::path(dir) / "model.json", ec);
  io::save_matrices(dir, files);
  std::ostringstream j;
  j << "{\n  \"format\": " << io::json_quote(kFormat) << ",\n  \"format_version\": " << kFormatVersion
    << ",\n  \"colora_version\": " << io::json_quote(version_string()) << ",\n  \"method\": " << io::json_quote(method)
    << ",\n  \"rank\": " << rank << ",\n  \"tasks\": " << k << ",\n  \"p\": " << p << ",\n  \"q\": " << q
    << ",\n  \"intercepts\": false,\n  \"dense\": " << (est.dense ? "true" : "false")
    << ",\n  \"shared_v\": " << (shared_v ? "true" : "false") << ",\n  \"has_W0\": "
    << (est.W0.size() ? "true" : "false") << ",\n  \"has_A\": " << (est.A.size() ? "true" : "false")
    << ",\n  \"has_B\": " << (est.B.size() ? "true" : "false") << "\n}\n";
  io::write_text_atomically((std::filesystem::path(dir) / "model.json").string(), j.str());
}

MultiTaskEstimate<double> read_model(const std::string& dir_in, ModelManifest& m, std::string& model_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path dir(dir_in);
  if (!fs::exists(dir / "model.json", ec) && fs::exists(dir / "model" / "model.json", ec)) dir /= "model";
  model_dir = dir.string();
  const std::string d = model_dir;
  if (!fs::is_directory(dir, ec)) model_fail(d, "is not a directory");
  const std::string text = read_manifest_text((dir / "model.json").string(), d);
  const io::JsonValue v = io::parse_json(text, "model directory '" + d + "': model.json");
  if (!v.is(io::JsonValue::Type::Object)) model_fail(d, "model.json is not a JSON object");
  auto field = [&](const char* key) -> const io::JsonValue& {
    const io::JsonValue* f = v.find(key);
    if (!f) model_fail(d, std::string("model.json has no \"") + key + "\"");
    return *f;
  };
  auto text_of = [&](const char* key) {
    const auto& f = field(key);
    if (!f.is(io::JsonValue::Type::String)) model_fail(d, std::string("model.json: \"") + key + "\" is not a string");
    return f.text;
  };
  auto count_of = [&](const char* key, long long lo) {
    const auto& f = field(key);
    if (!f.is(io::JsonValue::Type::Integer) || f.integer > (1ull << 40) || (long long)f.integer < lo)
      model_fail(d, std::string("model.json: \"") + key + "\" is not an integer >= " + std::to_string(lo));
    return Index(f.integer);
  };
  auto flag_of = [&](const char* key) {
    const auto& f = field(key);
    if (!f.is(io::JsonValue::Type::Bool)) model_fail(d, std::string("model.json: \"") + key + "\" is not true/false");
    return f.boolean;
  };
  if (text_of("format") != kFormat)
    model_fail(d, "model.json: format is '" + text_of("format") + "', not '" + kFormat + "' (not a colora model)");
  const Index fv = count_of("format_version", 1);
  if (fv != kFormatVersion)
    model_fail(d, "model.json: format_version " + std::to_string(fv) + " is not one this colora (" +
                      version_string() + ") reads (it reads version 1)");
  m.colora_version = text_of("colora_version");
  m.method = text_of("method");
  m.rank = count_of("rank", 0);
  m.tasks = count_of("tasks", 1);
  m.p = count_of("p", 1);
  m.q = count_of("q", 1);
  m.intercepts = flag_of("intercepts");
  m.dense = flag_of("dense");
  m.shared_v = flag_of("shared_v");
  m.has_W0 = flag_of("has_W0");
  m.has_A = flag_of("has_A");
  m.has_B = flag_of("has_B");
  if (m.intercepts)
    model_fail(d, "model.json: intercepts = true, which this colora (" + std::string(version_string()) +
                      ") cannot apply");
  if (m.dense && m.shared_v) model_fail(d, "model.json: dense and shared_v are both true");

  // Every file: its shape checked from the header before it is read.
  auto load = [&](const std::string& stem, Index rows, Index cols) {
    const std::string file = stem + ".npy";
    const fs::path path = dir / file;
    if (!fs::is_regular_file(path, ec)) model_fail(d, file + " is missing (model.json lists it)");
    const io::NpyHeader h = io::inspect_npy(path.string());
    if (h.ndim() != 2 || (rows >= 0 && h.rows() != rows) || (cols >= 0 && h.cols() != cols))
      model_fail(d, file + ": shape (" + std::to_string(h.rows()) + ", " + std::to_string(h.cols()) +
                        ") but the manifest gives (" + (rows >= 0 ? std::to_string(rows) : std::string("any")) +
                        ", " + (cols >= 0 ? std::to_string(cols) : std::string("any")) + ")");
    Matrix<double> x = io::read_npy<double>(path.string());
    if (!x.allFinite()) model_fail(d, file + " has non-finite entries");
    return x;
  };
  MultiTaskEstimate<double> est;
  est.dense = m.dense;
  const Index r = m.dense ? m.p : -1;  // low-rank: U_i's columns must match V's
  if (m.shared_v) est.V.push_back(load("V", m.p, -1));
  for (Index i = 0; i < m.tasks; ++i) {
    const Index ri = m.dense ? r : (m.shared_v ? est.V.front().cols() : -1);
    est.U.push_back(load(io::indexed_name("U", i), m.q, ri));
    if (!m.dense && !m.shared_v) est.V.push_back(load(io::indexed_name("V", i), m.p, est.U.back().cols()));
  }
  if (m.has_A) est.A = load("A", -1, m.p);
  if (m.has_B) est.B = load("B", m.q, m.has_A ? est.A.rows() : -1);
  if (m.has_W0) est.W0 = load("W0", m.q, m.p);
  return est;
}

}  // namespace exp
}  // namespace colora
