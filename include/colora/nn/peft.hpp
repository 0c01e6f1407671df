// PEFT-format adapters (docs/io.md, "PEFT adapters (safetensors)"): one
// user's adapter of a colora::nn model as a Hugging Face PEFT LoRA
// directory, and back.
//
//   nn::export_peft(model, /*user=*/1, "out/user_1");          // adapter_model.safetensors + adapter_config.json
//   nn::export_peft_users(model, "out");                        // out/user_0/, out/user_1/, ...
//   auto t = nn::peft_targets(model); t[0].module = "layers.0"; // other module names
//   nn::export_peft(t, 1, "out/user_1");
//   nn::PeftAdapter<float> a = nn::read_peft_adapter<float>("out/user_1");
//   nn::install_peft(lora_model, /*user=*/0, a);                // into a model with AdapterKind::Lora layers
//
// For every Linear with an adapter, the exported pair is
//   lora_A = A_i (r x in),  lora_B = (alpha/r) B_i S_i (out x r)
// with A_i, B_i the factors the user sees (shared or personal by kind) and S_i
// the CoLoRA core (identity for the other kinds; diag(s_i) for a diagonal
// core): lora_B lora_A is colora's update for that user, and the config has
// lora_alpha = r so PEFT's scaling alpha / r is 1.
#pragma once

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "colora/io/atomic_file.hpp"
#include "colora/io/json.hpp"
#include "colora/io/safetensors.hpp"
#include "colora/nn/models.hpp"

namespace colora {
namespace nn {

/// One adapted Linear to export and the PEFT module name it goes by.
template <class S>
struct PeftTarget {
  std::string module;
  const Linear<S>* layer = nullptr;
};

/// One module's LoRA pair: lora_A (r x in) and lora_B (out x r).
template <class S>
struct LoraPair {
  std::string module;
  Matrix<S> A;
  Matrix<S> B;
  Index rank() const { return A.rows(); }
};

/// What adapter_config.json says (the fields colora writes and checks).
struct PeftConfig {
  Index r = 0;
  double lora_alpha = 0;
  std::vector<std::string> target_modules;
  std::string base_model_name_or_path;  ///< "" for null
  std::string task_type;                ///< "" for null
  bool use_rslora = false;
  std::map<std::string, Index> rank_pattern;    ///< module -> rank, where it differs from r
  std::map<std::string, double> alpha_pattern;  ///< module -> alpha, where it differs from lora_alpha

  /// PEFT's scaling of `module`: alpha / r (alpha / sqrt(r) with rsLoRA),
  /// with the patterns applied (a key matches the module or a suffix after a '.').
  double scaling(const std::string& module) const {
    const double rank = double(pattern(rank_pattern, module, r));
    const double alpha = pattern(alpha_pattern, module, lora_alpha);
    return use_rslora ? alpha / std::sqrt(rank) : alpha / rank;
  }
  Index rank_of(const std::string& module) const { return pattern(rank_pattern, module, r); }

  template <class V>
  static V pattern(const std::map<std::string, V>& p, const std::string& module, V def) {
    for (const auto& kv : p)
      if (module_matches(module, kv.first)) return kv.second;
    return def;
  }
  /// PEFT's rule for a target name: the module itself, or a suffix of it after a '.'.
  static bool module_matches(const std::string& module, const std::string& target) {
    return module == target || (module.size() > target.size() &&
                                module.compare(module.size() - target.size(), target.size(), target) == 0 &&
                                module[module.size() - target.size() - 1] == '.');
  }
};

/// A PEFT adapter directory read back: its config and one pair per module
/// (lora_B as stored: multiply by config.scaling(module) for the update).
template <class S>
struct PeftAdapter {
  PeftConfig config;
  std::vector<LoraPair<S>> modules;
  const LoraPair<S>* find(const std::string& module) const {
    for (const auto& m : modules)
      if (m.module == module) return &m;
    return nullptr;
  }
};

/// Options of the PEFT writers.
struct PeftOptions {
  std::string base_model_name_or_path;  ///< "" writes null
  std::string task_type;                ///< "" writes null (e.g. "CAUSAL_LM", "FEATURE_EXTRACTION")
  bool write_factors = false;  ///< also colora_shared.safetensors and colora_cores.safetensors (export_* only)
};

inline constexpr const char* kPeftPrefix = "base_model.model.";

namespace detail {

/// Calls f(layer) for every Linear of a model (MlpModel, TransformerModel,
/// a Linear itself), const or not, in visit order.
template <class S, class F>
void each_linear(Linear<S>& l, F&& f) { f(l); }
template <class S, class F>
void each_linear(const Linear<S>& l, F&& f) { f(l); }
template <class M, class F>
auto each_linear(M& m, F&& f) -> decltype((void)m.layers.front().in(), void()) {
  for (auto& l : m.layers) f(l);
}
template <class M, class F>
auto each_linear(M& m, F&& f) -> decltype((void)m.blocks.front().attn.q, void()) {
  if (m.spec().vocab == 0) f(m.input);
  for (auto& b : m.blocks) {
    f(b.attn.q);
    f(b.attn.k);
    f(b.attn.v);
    f(b.attn.o);
    f(b.mlp.fc_in);
    f(b.mlp.fc_out);
  }
  f(m.head);
}

/// The name of a Linear: its W0 parameter's name without ".W0".
template <class S>
std::string layer_name(const Linear<S>& l) {
  const std::string& n = l.W0.name;
  return n.size() > 3 && n.compare(n.size() - 3, 3, ".W0") == 0 ? n.substr(0, n.size() - 3) : n;
}

inline void check_module_names(const std::vector<std::string>& names, const char* where) {
  std::set<std::string> seen;
  for (const auto& n : names) {
    const bool chars = std::all_of(n.begin(), n.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
             c == '.';
    });
    colora::detail::require(!n.empty() && chars && n.front() != '.' && n.back() != '.' &&
                                n.find("..") == std::string::npos,
                            where, "module name '", n,
                            "' is not a dotted module path (letters, digits, '_', '-', '.' between non-empty parts)");
    colora::detail::require(seen.insert(n).second, where, "module name '", n, "' is used twice");
  }
}

inline std::string json_number(double x) { return colora::detail::concat(x); }

}  // namespace detail

/// Every Linear of `model` that carries an adapter, in visit order, named by
/// the layer (its parameters' prefix): "mlp.fc0", "mlp.fc1", ... for an MLP;
/// "tf.input", "tf.block0.attn.q" (.k, .v, .o), "tf.block0.mlp.in", "tf.block0.mlp.out",
/// "tf.head" for a transformer; `module` for a lone Linear. Rename entries freely.
template <class Model>
auto peft_targets(const Model& model) {
  using S = typename Model::Scalar;
  std::vector<PeftTarget<S>> out;
  detail::each_linear(model, [&](const Linear<S>& l) {
    if (l.has_adapter()) out.push_back({detail::layer_name(l), &l});
  });
  return out;
}
template <class S>
std::vector<PeftTarget<S>> peft_targets(const Linear<S>& layer, const std::string& module) {
  if (!layer.has_adapter()) return {};
  return {{module, &layer}};
}

/// The LoRA pair of `layer` for `user`: lora_A = A_i, lora_B = (alpha/r) B_i S_i,
/// so that lora_B lora_A = effective_weight(user) - W_0.
template <class S>
LoraPair<S> peft_lora_pair(const Linear<S>& layer, int user, const std::string& module) {
  const char* where = "colora::nn::peft_lora_pair";
  colora::detail::require(layer.has_adapter(), where, "layer '", detail::layer_name(layer), "' has no adapter");
  colora::detail::require(user >= 0 && user < layer.num_tasks(), where, "user = ", user, " out of range [0, ",
                          layer.num_tasks(), ")");
  LoraPair<S> p;
  p.module = module;
  p.A = layer.A_of(user).value;
  const Matrix<S>& B = layer.B_of(user).value;
  const S c = S(layer.spec().scale());
  if (const Param<S>* s = layer.S_of(user)) {
    if (layer.spec().core == CoreKind::Full)
      p.B.noalias() = B * s->value;
    else
      p.B.noalias() = B * s->value.col(0).asDiagonal();
  } else {
    p.B = B;
  }
  if (c != S(1)) p.B *= c;
  return p;
}

/// An exact LoRA pair for a dense update D (out x in) of any rank:
/// r = min(in, out), lora_A = I, lora_B = D when in <= out, else lora_A = D, lora_B = I.
template <class S>
LoraPair<S> lora_pair_from_dense(const std::string& module, const Matrix<S>& D) {
  LoraPair<S> p;
  p.module = module;
  if (D.cols() <= D.rows()) {
    p.A = Matrix<S>::Identity(D.cols(), D.cols());
    p.B = D;
  } else {
    p.A = D;
    p.B = Matrix<S>::Identity(D.rows(), D.rows());
  }
  return p;
}

/// The text of adapter_config.json for these modules (keys sorted, as PEFT's
/// save_pretrained writes them): r and lora_alpha are the first module's
/// rank; modules of another rank go into rank_pattern and alpha_pattern
/// (alpha = rank there too), so every module's scaling is 1.
template <class S>
std::string peft_config_json(const std::vector<LoraPair<S>>& modules, const PeftOptions& opt) {
  const Index r = modules.empty() ? 0 : modules.front().rank();
  std::string patterns_r, patterns_a, targets;
  for (const auto& m : modules) {
    targets += std::string(targets.empty() ? "" : ", ") + io::json_quote(m.module);
    if (m.rank() != r) {
      patterns_r += std::string(patterns_r.empty() ? "" : ", ") + io::json_quote(m.module) + ": " +
                    std::to_string(m.rank());
      patterns_a += std::string(patterns_a.empty() ? "" : ", ") + io::json_quote(m.module) + ": " +
                    std::to_string(m.rank());
    }
  }
  auto str_or_null = [](const std::string& s) { return s.empty() ? std::string("null") : io::json_quote(s); };
  std::string j = "{\n";
  j += "  \"alpha_pattern\": {" + patterns_a + "},\n";
  j += "  \"auto_mapping\": null,\n";
  j += "  \"base_model_name_or_path\": " + str_or_null(opt.base_model_name_or_path) + ",\n";
  j += "  \"bias\": \"none\",\n";
  j += "  \"fan_in_fan_out\": false,\n";
  j += "  \"inference_mode\": true,\n";
  j += "  \"init_lora_weights\": true,\n";
  j += "  \"layers_pattern\": null,\n";
  j += "  \"layers_to_transform\": null,\n";
  j += "  \"lora_alpha\": " + std::to_string(r) + ",\n";
  j += "  \"lora_dropout\": 0.0,\n";
  j += "  \"modules_to_save\": null,\n";
  j += "  \"peft_type\": \"LORA\",\n";
  j += "  \"r\": " + std::to_string(r) + ",\n";
  j += "  \"rank_pattern\": {" + patterns_r + "},\n";
  j += "  \"revision\": null,\n";
  j += "  \"target_modules\": [" + targets + "],\n";
  j += "  \"task_type\": " + str_or_null(opt.task_type) + ",\n";
  j += "  \"use_dora\": false,\n";
  j += "  \"use_rslora\": false\n";
  j += "}\n";
  return j;
}

/// Writes a PEFT LoRA directory `dir` (created): adapter_model.safetensors
/// with base_model.model.<module>.lora_A.weight (r x in) and .lora_B.weight
/// (out x r) per module, metadata {"format": "pt"}, and adapter_config.json;
/// each file atomically. std::invalid_argument on bad module names, an empty
/// list or inconsistent shapes.
template <class S>
void write_peft_adapter(const std::string& dir, const std::vector<LoraPair<S>>& modules, const PeftOptions& opt = {}) {
  const char* where = "colora::nn::write_peft_adapter";
  colora::detail::require(!modules.empty(), where, "no module to write (the model has no adapted layer)");
  std::vector<std::string> names;
  std::vector<io::SafetensorsTensor> tensors;
  for (const auto& m : modules) {
    names.push_back(m.module);
    colora::detail::require(m.A.rows() >= 1 && m.A.rows() == m.B.cols() && m.A.cols() >= 1 && m.B.rows() >= 1, where,
                            "module '", m.module, "': lora_A is ", m.A.rows(), " x ", m.A.cols(), " and lora_B ",
                            m.B.rows(), " x ", m.B.cols(), " (need r x in and out x r, r >= 1)");
    tensors.push_back(io::safetensors_tensor<S>(kPeftPrefix + m.module + ".lora_A.weight", m.A));
    tensors.push_back(io::safetensors_tensor<S>(kPeftPrefix + m.module + ".lora_B.weight", m.B));
  }
  detail::check_module_names(names, where);
  io::detail::create_directory(dir, where);
  io::write_safetensors(dir + "/adapter_model.safetensors", tensors, {{"format", "pt"}});
  io::write_text_atomically(dir + "/adapter_config.json", peft_config_json(modules, opt));
}

/// Writes colora's own factors of `targets` into `dir` (created), atomically:
///   colora_shared.safetensors  <module>.A (r x in), <module>.B (out x r): the
///                              parameters every user shares (A for fedsa; A frozen for ffa)
///   colora_cores.safetensors   <module>.S.<i> (r x r; r x 1 for a diagonal core) for colora,
///                              <module>.A.<i>, <module>.B.<i> for lora, <module>.B.<i> for fedsa
/// both with metadata "format" = "colora", "users", and per module
/// "<module>.kind", ".rank", ".scale" (alpha / r), ".core": the update of
/// user i is scale * B_i S_i A_i.
template <class S>
void write_colora_factors(const std::vector<PeftTarget<S>>& targets, const std::string& dir) {
  const char* where = "colora::nn::write_colora_factors";
  colora::detail::require(!targets.empty(), where, "no adapted layer to write");
  std::vector<std::string> names;
  std::map<std::string, std::string> meta{{"format", "colora"}};
  std::vector<io::SafetensorsTensor> shared, personal;
  int users = -1;
  for (const auto& t : targets) {
    colora::detail::require(t.layer != nullptr && t.layer->has_adapter(), where, "module '", t.module,
                            "' has no adapted layer");
    const Linear<S>& l = *t.layer;
    names.push_back(t.module);
    colora::detail::require(users < 0 || users == l.num_tasks(), where, "module '", t.module, "' has ", l.num_tasks(),
                            " users, the others ", users);
    users = l.num_tasks();
    meta[t.module + ".kind"] = to_string(l.spec().kind);
    meta[t.module + ".rank"] = std::to_string(l.spec().rank);
    meta[t.module + ".scale"] = detail::json_number(l.spec().scale());
    meta[t.module + ".core"] = to_string(l.spec().core);
    const AdapterKind k = l.spec().kind;
    if (k != AdapterKind::Lora) shared.push_back(io::safetensors_tensor<S>(t.module + ".A", l.A.value));
    if (k != AdapterKind::Lora && k != AdapterKind::Fedsa)
      shared.push_back(io::safetensors_tensor<S>(t.module + ".B", l.B.value));
    for (int i = 0; i < l.num_tasks(); ++i) {
      const std::string si = "." + std::to_string(i);
      if (k == AdapterKind::Colora) personal.push_back(io::safetensors_tensor<S>(t.module + ".S" + si, l.Ss[i].value));
      if (k == AdapterKind::Lora) personal.push_back(io::safetensors_tensor<S>(t.module + ".A" + si, l.As[i].value));
      if (k == AdapterKind::Lora || k == AdapterKind::Fedsa)
        personal.push_back(io::safetensors_tensor<S>(t.module + ".B" + si, l.Bs[i].value));
    }
  }
  detail::check_module_names(names, where);
  std::string list;
  for (const auto& n : names) list += (list.empty() ? "" : ",") + n;
  meta["modules"] = list;
  meta["users"] = std::to_string(users);
  io::detail::create_directory(dir, where);
  io::write_safetensors(dir + "/colora_shared.safetensors", shared, meta);
  io::write_safetensors(dir + "/colora_cores.safetensors", personal, meta);
}

/// Writes `user`'s adapter over `targets` as a PEFT directory `dir` (see
/// write_peft_adapter); with opt.write_factors also write_colora_factors(targets, dir).
template <class S>
void export_peft(const std::vector<PeftTarget<S>>& targets, int user, const std::string& dir,
                 const PeftOptions& opt = {}) {
  std::vector<LoraPair<S>> pairs;
  for (const auto& t : targets) {
    colora::detail::require(t.layer != nullptr, "colora::nn::export_peft", "module '", t.module, "' has no layer");
    pairs.push_back(peft_lora_pair(*t.layer, user, t.module));
  }
  write_peft_adapter(dir, pairs, opt);
  if (opt.write_factors) write_colora_factors(targets, dir);
}
/// The same for every adapted Linear of `model`, default module names.
template <class Model, class = std::enable_if_t<!std::is_same<Model, std::vector<PeftTarget<typename Model::Scalar>>>::value>>
void export_peft(const Model& model, int user, const std::string& dir, const PeftOptions& opt = {}) {
  export_peft(peft_targets(model), user, dir, opt);
}

/// Every user's adapter: dir/user_<i>/ for i = 0..k-1, and with
/// opt.write_factors colora_shared.safetensors and colora_cores.safetensors in dir.
template <class S>
void export_peft_users(const std::vector<PeftTarget<S>>& targets, const std::string& dir,
                       const PeftOptions& opt = {}) {
  const char* where = "colora::nn::export_peft_users";
  colora::detail::require(!targets.empty() && targets.front().layer != nullptr, where, "no adapted layer to export");
  PeftOptions one = opt;
  one.write_factors = false;
  for (int i = 0; i < targets.front().layer->num_tasks(); ++i)
    export_peft(targets, i, dir + "/user_" + std::to_string(i), one);
  if (opt.write_factors) write_colora_factors(targets, dir);
}
template <class Model, class = std::enable_if_t<!std::is_same<Model, std::vector<PeftTarget<typename Model::Scalar>>>::value>>
void export_peft_users(const Model& model, const std::string& dir, const PeftOptions& opt = {}) {
  export_peft_users(peft_targets(model), dir, opt);
}

namespace detail {

[[noreturn]] inline void peft_fail(const std::string& file, const std::string& why) {
  throw std::runtime_error("colora::nn::read_peft_adapter: '" + file + "': " + why);
}

/// Parses and checks adapter_config.json.
inline PeftConfig parse_peft_config(const std::string& text, const std::string& file) {
  using T = io::JsonValue::Type;
  const io::JsonValue v = io::parse_json(text, "colora::nn::read_peft_adapter: '" + file + "'", io::JsonMode::Config);
  if (!v.is(T::Object)) peft_fail(file, "the config is not a JSON object");
  PeftConfig c;
  auto get = [&](const char* key) { return v.find(key); };
  auto null_or = [&](const char* key, T type) -> const io::JsonValue* {
    const io::JsonValue* x = get(key);
    if (!x || x->is(T::Null)) return nullptr;
    if (!x->is(type)) peft_fail(file, std::string("\"") + key + "\" has the wrong JSON type");
    return x;
  };
  const io::JsonValue* pt = get("peft_type");
  if (!pt || !pt->is(T::String) || pt->text != "LORA")
    peft_fail(file, std::string("\"peft_type\" is ") + (pt && pt->is(T::String) ? "\"" + pt->text + "\"" : "missing") +
                        ", expected \"LORA\"");
  const io::JsonValue* r = get("r");
  if (!r || !r->is(T::Integer) || r->integer < 1 || r->integer > (1u << 30))
    peft_fail(file, "\"r\" must be a positive integer");
  c.r = Index(r->integer);
  const io::JsonValue* a = get("lora_alpha");
  if (!a || !a->is_number() || !std::isfinite(a->number)) peft_fail(file, "\"lora_alpha\" must be a number");
  c.lora_alpha = a->number;
  const io::JsonValue* tm = get("target_modules");
  if (!tm || !tm->is(T::Array))
    peft_fail(file, "\"target_modules\" must be a list of module names (a regex string is not supported)");
  for (const auto& x : tm->items) {
    if (!x.is(T::String)) peft_fail(file, "\"target_modules\" holds a non-string");
    c.target_modules.push_back(x.text);
  }
  if (const io::JsonValue* f = null_or("fan_in_fan_out", T::Bool))
    if (f->boolean) peft_fail(file, "\"fan_in_fan_out\": true (transposed Conv1D weights) is not supported");
  if (const io::JsonValue* b = null_or("bias", T::String))
    if (b->text != "none") peft_fail(file, "\"bias\": \"" + b->text + "\" is not supported (only \"none\")");
  if (const io::JsonValue* d = null_or("use_dora", T::Bool))
    if (d->boolean) peft_fail(file, "\"use_dora\": true is not supported");
  if (const io::JsonValue* rs = null_or("use_rslora", T::Bool)) c.use_rslora = rs->boolean;
  if (const io::JsonValue* s = null_or("base_model_name_or_path", T::String)) c.base_model_name_or_path = s->text;
  if (const io::JsonValue* s = null_or("task_type", T::String)) c.task_type = s->text;
  if (const io::JsonValue* p = null_or("rank_pattern", T::Object))
    for (const auto& kv : p->members) {
      if (!kv.second.is(T::Integer) || kv.second.integer < 1 || kv.second.integer > (1u << 30))
        peft_fail(file, "\"rank_pattern\" entry \"" + kv.first + "\" must be a positive integer");
      c.rank_pattern[kv.first] = Index(kv.second.integer);
    }
  if (const io::JsonValue* p = null_or("alpha_pattern", T::Object))
    for (const auto& kv : p->members) {
      if (!kv.second.is_number() || !std::isfinite(kv.second.number))
        peft_fail(file, "\"alpha_pattern\" entry \"" + kv.first + "\" must be a number");
      c.alpha_pattern[kv.first] = kv.second.number;
    }
  return c;
}

inline std::string read_text_file(const std::string& path, std::size_t limit, const char* where) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(std::string(where) + ": '" + path + "': cannot open the file for reading");
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  in.seekg(0);
  if (size < 0 || std::uint64_t(size) > limit)
    throw std::runtime_error(std::string(where) + ": '" + path + "': the file has " + std::to_string(size) +
                             " bytes (limit " + std::to_string(limit) + ")");
  std::string text(std::size_t(size), '\0');
  if (size > 0 && !io::detail::read_exact(in, &text[0], std::size_t(size)))
    throw std::runtime_error(std::string(where) + ": '" + path + "': read error");
  return text;
}

}  // namespace detail

/// Reads a PEFT LoRA directory: adapter_config.json (peft_type LORA, r,
/// lora_alpha, target_modules; fan_in_fan_out, bias other than "none" and
/// DoRA are refused) and adapter_model.safetensors, whose every tensor must
/// be base_model.model.<module>.lora_A.weight or .lora_B.weight, each module
/// with both, named by target_modules (PEFT's rule: the module or a suffix
/// after a '.'), of shapes r x in and out x r with r = the config's rank for
/// that module. Modules come in the order of their lora_A tensors in the
/// file. std::runtime_error naming the file and the reason otherwise.
template <class S>
PeftAdapter<S> read_peft_adapter(const std::string& dir) {
  const char* where = "colora::nn::read_peft_adapter";
  PeftAdapter<S> out;
  const std::string cfg_path = dir + "/adapter_config.json";
  const std::string st_path = dir + "/adapter_model.safetensors";
  out.config = detail::parse_peft_config(detail::read_text_file(cfg_path, 1u << 24, where), cfg_path);
  const io::Safetensors st = io::read_safetensors(st_path);
  const std::string prefix = kPeftPrefix;
  std::map<std::string, std::pair<const io::SafetensorsTensor*, const io::SafetensorsTensor*>> found;
  std::vector<std::string> order;
  for (const auto& t : st.tensors) {
    const std::string& n = t.name;
    const std::string sa = ".lora_A.weight", sb = ".lora_B.weight";
    auto ends = [&](const std::string& s) {
      return n.size() > prefix.size() + s.size() && n.compare(n.size() - s.size(), s.size(), s) == 0;
    };
    if (n.compare(0, prefix.size(), prefix) != 0 || !(ends(sa) || ends(sb)))
      detail::peft_fail(st_path, "unexpected tensor '" + n + "' (expected " + prefix +
                                     "<module>.lora_A.weight or .lora_B.weight)");
    const bool is_a = ends(sa);
    const std::string module = n.substr(prefix.size(), n.size() - prefix.size() - sa.size());
    auto& slot = found[module];
    if (is_a) order.push_back(module);
    (is_a ? slot.first : slot.second) = &t;
  }
  for (const auto& kv : found) {
    const std::string& m = kv.first;
    if (!kv.second.first || !kv.second.second)
      detail::peft_fail(st_path, "module '" + m + "' has " + (kv.second.first ? "lora_A" : "lora_B") +
                                     " but not " + (kv.second.first ? "lora_B" : "lora_A"));
    bool targeted = false;
    for (const auto& t : out.config.target_modules) targeted = targeted || PeftConfig::module_matches(m, t);
    if (!targeted) detail::peft_fail(cfg_path, "module '" + m + "' of the safetensors file is not in target_modules");
  }
  for (const auto& m : order) {
    const auto& ab = found[m];
    const Index r = out.config.rank_of(m);
    const io::SafetensorsTensor &a = *ab.first, &b = *ab.second;
    if (a.shape.size() != 2 || b.shape.size() != 2 || a.rows() != r || b.cols() != r)
      detail::peft_fail(st_path, colora::detail::concat("module '", m, "': lora_A is ", io::detail::python_shape(a.shape),
                                                        " and lora_B ", io::detail::python_shape(b.shape),
                                                        ", expected (", r, ", in) and (out, ", r, ") for r = ", r,
                                                        " in adapter_config.json"));
    out.modules.push_back({m, a.template matrix<S>(), b.template matrix<S>()});
  }
  if (out.modules.empty()) detail::peft_fail(st_path, "the file holds no LoRA module");
  return out;
}

/// Installs one PEFT pair into `layer` for `user`: the layer must carry a
/// `lora` adapter (personal A_i, B_i) of the pair's rank and shape; then
/// A_i = lora_A and B_i = lora_B * scaling / (alpha/r of the layer), so the
/// layer's update for `user` is scaling * lora_B lora_A.
template <class S>
void install_peft(Linear<S>& layer, int user, const LoraPair<S>& pair, double scaling = 1.0) {
  const char* where = "colora::nn::install_peft";
  const std::string name = detail::layer_name(layer);
  colora::detail::require(layer.spec().kind == AdapterKind::Lora, where, "layer '", name, "' has a ",
                          to_string(layer.spec().kind),
                          " adapter: only a lora adapter has per-user A_i, B_i to hold one user's PEFT adapter "
                          "(build the model with AdapterKind::Lora)");
  colora::detail::require(user >= 0 && user < layer.num_tasks(), where, "user = ", user, " out of range [0, ",
                          layer.num_tasks(), ")");
  colora::detail::require(pair.A.rows() == layer.spec().rank && pair.A.cols() == layer.in() &&
                              pair.B.rows() == layer.out() && pair.B.cols() == layer.spec().rank,
                          where, "module '", pair.module, "': lora_A ", pair.A.rows(), " x ", pair.A.cols(),
                          " and lora_B ", pair.B.rows(), " x ", pair.B.cols(), " do not fit layer '", name,
                          "' (rank ", layer.spec().rank, ", in ", layer.in(), ", out ", layer.out(), ")");
  layer.As[std::size_t(user)].value = pair.A;
  const double f = scaling / layer.spec().scale();
  layer.Bs[std::size_t(user)].value = f == 1.0 ? pair.B : Matrix<S>(pair.B * S(f));
}

/// Installs every module of `adapter` into the Linear of `model` with that
/// default name (peft_targets naming) for `user`, with the config's scaling.
/// std::invalid_argument if a module names no Linear of the model.
template <class Model, class S>
void install_peft(Model& model, int user, const PeftAdapter<S>& adapter) {
  static_assert(std::is_same<typename Model::Scalar, S>::value, "colora::nn::install_peft: scalar types differ");
  for (const auto& m : adapter.modules) {
    Linear<S>* target = nullptr;
    detail::each_linear(model, [&](Linear<S>& l) {
      if (detail::layer_name(l) == m.module) target = &l;
    });
    colora::detail::require(target != nullptr, "colora::nn::install_peft", "module '", m.module,
                            "' names no Linear of the model");
    install_peft(*target, user, m, adapter.config.scaling(m.module));
  }
}

}  // namespace nn
}  // namespace colora
