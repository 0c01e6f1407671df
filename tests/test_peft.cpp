// safetensors files (io/safetensors.hpp), the JSON reader (io/json.hpp) and
// PEFT-format adapters (nn/peft.hpp); docs/io.md, "PEFT adapters (safetensors)".
#include <doctest/doctest.h>

#include <colora/io/safetensors.hpp>
#include <colora/nn/nn.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "test_files.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using colora::AdapterKind;
using colora::CoreKind;
using colora::Index;
using colora::Matrix;
namespace io = colora::io;
namespace nn = colora::nn;

namespace {

using colora_test::contains;
using colora_test::error_of;

struct ScratchDir : colora_test::ScratchDir {
  explicit ScratchDir(const std::string& name) : colora_test::ScratchDir("peft_" + name) {}
};

/// A safetensors byte string from its parts, per the public format description:
/// u64 little-endian header length, the header, the data.
std::string st_bytes(const std::string& header, const std::string& data) {
  std::string out;
  const std::uint64_t n = header.size();
  for (int b = 0; b < 8; ++b) out += char((n >> (8 * b)) & 0xff);
  return out + header + data;
}

/// Little-endian bytes of a bit pattern (independent of the host).
std::string le(std::uint64_t bits, int bytes) {
  std::string s;
  for (int b = 0; b < bytes; ++b) s += char((bits >> (8 * b)) & 0xff);
  return s;
}

io::Safetensors parse(const std::string& bytes, const std::string& name = "mem.safetensors") {
  std::istringstream in(bytes);
  return io::read_safetensors(in, name);
}

template <class S>
bool bitwise_equal(const Matrix<S>& a, const Matrix<S>& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         (a.size() == 0 || std::memcmp(a.data(), b.data(), sizeof(S) * std::size_t(a.size())) == 0);
}

/// Files under `dir` (recursively) whose name contains ".tmp.".
int temporaries_under(const fs::path& dir) {
  int n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.path().filename().string().find(".tmp.") != std::string::npos) ++n;
  return n;
}

/// An MLP 6 -> 5 -> 4 for 3 users with adapter `spec` on every Linear, every
/// adapter parameter (and ffa's frozen A) random, so each user's update is non-trivial.
template <class S>
nn::MlpModel<S> random_mlp(const nn::AdapterSpec& spec, colora::Rng rng) {
  nn::MlpSpec s;
  s.in = 6;
  s.hidden = {5};
  s.out = 4;
  s.num_tasks = 3;
  s.adapter = spec;
  s.seed = 11;
  nn::MlpModel<S> m(s);
  int j = 0;
  m.visit([&](nn::Param<S>& p) {
    if (p.trainable() || spec.kind == AdapterKind::Ffa)
      if (p.name.find(".W0") == std::string::npos && p.name.find(".b0") == std::string::npos)
        p.value = rng.substream(std::uint64_t(j++)).normal_matrix<S>(p.value.rows(), p.value.cols());
  });
  return m;
}

std::vector<nn::AdapterSpec> every_adapter() {
  return {nn::adapter(AdapterKind::Lora, 2),
          nn::adapter(AdapterKind::Colora, 2),
          nn::adapter(AdapterKind::Colora, 2, 3.0, CoreKind::Diagonal),
          nn::adapter(AdapterKind::Colora, 2, 5.0),
          nn::adapter(AdapterKind::GlobalLora, 2),
          nn::adapter(AdapterKind::Ffa, 2, 0.5),
          nn::adapter(AdapterKind::Fedsa, 2)};
}

}  // namespace

// ---------------------------------------------------------------- safetensors

TEST_CASE_TEMPLATE("safetensors round trip is bitwise exact", S, COLORA_TEST_SCALARS) {
  ScratchDir dir("roundtrip");
  colora::Rng rng = colora_test::rng_for("safetensors round trip");
  std::vector<std::pair<std::string, Matrix<S>>> named = {{"A", rng.normal_matrix<S>(3, 7)},
                                                          {"layer.0.B", rng.normal_matrix<S>(5, 2)},
                                                          {"one", rng.normal_matrix<S>(1, 1)},
                                                          {"empty", Matrix<S>(0, 4)},
                                                          {"col", rng.normal_matrix<S>(6, 1)}};
  named[0].second(1, 2) = std::numeric_limits<S>::infinity();
  named[0].second(2, 3) = std::numeric_limits<S>::quiet_NaN();
  named[0].second(0, 0) = -S(0);
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "quote \" backslash \\ tab\t é"}};
  io::write_safetensors<S>(dir.file("a.safetensors"), named, meta);
  const io::Safetensors f = io::read_safetensors(dir.file("a.safetensors"));
  REQUIRE(f.tensors.size() == named.size());
  CHECK(f.metadata == meta);
  for (std::size_t i = 0; i < named.size(); ++i) {
    CHECK(f.tensors[i].name == named[i].first);  // header order kept
    CHECK(f.tensors[i].dtype == (sizeof(S) == 4 ? io::SafetensorsDtype::F32 : io::SafetensorsDtype::F64));
    CHECK(bitwise_equal(f.matrix<S>(named[i].first), named[i].second));
  }
  // Converting on read: float32 -> double is exact.
  if (sizeof(S) == 4) CHECK(bitwise_equal<float>(f.matrix<double>("layer.0.B").template cast<float>(),
                                                 named[1].second.template cast<float>()));
  // The stream writer gives the same bytes; the header is padded to 8 bytes.
  std::ostringstream os;
  std::vector<io::SafetensorsTensor> ts;
  for (const auto& nm : named) ts.push_back(io::safetensors_tensor<S>(nm.first, nm.second));
  io::write_safetensors(os, ts, meta);
  std::ifstream in(dir.file("a.safetensors"), std::ios::binary);
  const std::string disk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(os.str() == disk);
  std::uint64_t n = 0;
  for (int b = 0; b < 8; ++b) n |= std::uint64_t(static_cast<unsigned char>(disk[std::size_t(b)])) << (8 * b);
  CHECK(n % 8 == 0);
  CHECK(temporaries_under(dir.path) == 0);
}

TEST_CASE("safetensors reader parses a hand-written file") {
  // Per the public format description, independent of colora's writer:
  // tensor "a" F32 2 x 3 = [[1, 2, 3], [4, 5, 6]] row-major, "b\u00e9" F64 shape [3] = [0.5, -1, 2],
  // header padded with spaces, tensors listed out of data order.
  const std::string header =
      "{\"b\\u00e9\": {\"dtype\": \"F64\", \"shape\": [3], \"data_offsets\": [24, 48]},\n"
      " \"__metadata__\": {\"format\": \"pt\", \"k\\n\": \"v\\\"\"},\n"
      " \"a\": {\"shape\": [2, 3], \"dtype\": \"F32\", \"data_offsets\": [0, 24]}}   ";
  const std::uint32_t f[6] = {0x3F800000u, 0x40000000u, 0x40400000u, 0x40800000u, 0x40A00000u, 0x40C00000u};
  std::string data;
  for (std::uint32_t x : f) data += le(x, 4);
  data += le(0x3FE0000000000000ull, 8) + le(0xBFF0000000000000ull, 8) + le(0x4000000000000000ull, 8);
  const io::Safetensors s = parse(st_bytes(header, data));
  REQUIRE(s.tensors.size() == 2);
  CHECK(s.tensors[0].name == "b\xc3\xa9");
  CHECK(s.metadata.at("format") == "pt");
  CHECK(s.metadata.at("k\n") == "v\"");
  const Matrix<float> a = s.matrix<float>("a");
  REQUIRE(a.rows() == 2);
  REQUIRE(a.cols() == 3);
  CHECK(a(0, 0) == 1.0f);
  CHECK(a(0, 1) == 2.0f);
  CHECK(a(0, 2) == 3.0f);
  CHECK(a(1, 0) == 4.0f);
  CHECK(a(1, 2) == 6.0f);
  const Matrix<double> b = s.matrix<double>("b\xc3\xa9");
  REQUIRE(b.rows() == 3);
  REQUIRE(b.cols() == 1);
  CHECK(b(0, 0) == 0.5);
  CHECK(b(1, 0) == -1.0);
  CHECK(b(2, 0) == 2.0);
  CHECK(s.tensors[0].shape.size() == 1);

  // And the writer's bytes for a small case, byte for byte.
  Matrix<float> x(1, 2);
  x << 1.0f, 2.0f;
  std::ostringstream os;
  io::write_safetensors(os, {io::safetensors_tensor<float>("x", x)});
  std::string h = "{\"x\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[0,8]}}";
  h.append((8 - h.size() % 8) % 8, ' ');
  CHECK(os.str() == st_bytes(h, le(0x3F800000u, 4) + le(0x40000000u, 4)));
}

TEST_CASE("safetensors reader rejects hostile files, naming the file and the reason") {
  const std::string ok_h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
  const std::string d8(8, '\0');
  auto tensor = [](const std::string& name, const std::string& dtype, const std::string& shape, std::uint64_t b,
                   std::uint64_t e) {
    return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
           std::to_string(b) + "," + std::to_string(e) + "]}";
  };
  std::string huge_len = le(200000000ull, 8) + "{}";
  std::string beyond = le(1000ull, 8) + ok_h;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "the file is empty"},
      {std::string("\x05\0\0\0", 4), "truncated: the file has only 4 bytes"},
      {huge_len, "limit 100000000"},
      {beyond, "truncated: the header length field says 1000 bytes"},
      {st_bytes(ok_h, std::string(4, '\0')), "out of range"},
      {st_bytes("[1]", ""), "does not start with '{'"},
      {st_bytes("{\"a\":}", ""), "bad header: expected an object, an array, a string or a non-negative integer at byte 13"},
      {st_bytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", d8), "no fraction or exponent"},
      {st_bytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", d8), "bad header"},
      {st_bytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} x", d8), "unexpected text after"},
      {st_bytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]", d8), "bad header"},
      {st_bytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"dtype\":\"F32\"}}", d8),
       "duplicate key"},
      {st_bytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":[]}}", d8), "unexpected key"},
      {st_bytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", d8), "lacks \"data_offsets\""},
      {st_bytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"__metadata__\":{\"k\":1}}", d8),
       "metadata value"},
      {st_bytes("{" + tensor("a", "F17", "[2]", 0, 8) + "}", d8), "unknown dtype 'F17'"},
      {st_bytes("{" + tensor("a", "F16", "[4]", 0, 8) + "}", d8), "dtype 'F16' of tensor 'a' is not supported"},
      {st_bytes("{" + tensor("a", "BF16", "[4]", 0, 8) + "}", d8), "not supported"},
      {st_bytes("{" + tensor("a", "F32", "[1,1,2]", 0, 8) + "}", d8), "rank 3"},
      {st_bytes("{" + tensor("a", "F32", "[]", 0, 4) + "}", std::string(4, '\0')), "rank 0"},
      {st_bytes("{" + tensor("a", "F32", "[3]", 0, 8) + "}", d8), "size mismatch"},
      {st_bytes("{" + tensor("a", "F32", "[2]", 8, 16) + "}", d8), "out of range"},
      {st_bytes("{" + tensor("a", "F32", "[2]", 8, 4) + "}", d8), "out of range"},
      {st_bytes("{" + tensor("a", "F32", "[2]", 0, 8) + "," + tensor("b", "F32", "[2]", 4, 12) + "}",
                std::string(12, '\0')),
       "overlap"},
      {st_bytes("{" + tensor("a", "F32", "[1]", 4, 8) + "}", d8), "belong to no tensor"},
      {st_bytes(ok_h, std::string(12, '\0')), "trailing bytes"},
      {st_bytes("{" + tensor("a", "F32", "[1099511627776,1099511627776]", 0, 8) + "}", d8), "overflows 64 bits"},
      {st_bytes("{" + tensor("a", "F32", "[18446744073709551616]", 0, 8) + "}", d8), "does not fit in 64 bits"},
      {st_bytes("{\"a\xff\":1}", ""), "invalid UTF-8"},
      {st_bytes("{\"a\":\"\\ud800\"}", ""), "surrogate"},
      {st_bytes("{\"a\":\"x\ty\"}", ""), "control character"},
      {st_bytes("{\"a\":true}", ""), "bad header"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.second);
    const std::string msg = error_of<std::runtime_error>([&] { parse(c.first, "bad.safetensors"); });
    CHECK(contains(msg, "colora::io::read_safetensors: 'bad.safetensors': "));
    CHECK(contains(msg, c.second));
  }
  // Deep nesting is refused, not a stack overflow.
  std::string deep = "{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  CHECK(contains(error_of<std::runtime_error>([&] { parse(st_bytes(deep, "")); }), "deeper than 64"));
  // Every truncation of a valid file is refused.
  std::ostringstream os;
  colora::Rng rng(3);
  io::write_safetensors(os, {io::safetensors_tensor<double>("w", rng.normal_matrix<double>(3, 2)),
                             io::safetensors_tensor<float>("v", rng.normal_matrix<float>(2, 2))},
                        {{"format", "pt"}});
  const std::string good = os.str();
  CHECK(parse(good).tensors.size() == 2);
  for (std::size_t n = 0; n < good.size(); ++n)
    CHECK_THROWS_AS(parse(good.substr(0, n)), std::runtime_error);
  // A missing file names itself.
  CHECK(contains(error_of<std::runtime_error>([] { io::read_safetensors(std::string("/nonexistent/x.safetensors")); }),
                 "'/nonexistent/x.safetensors': cannot open"));
}

TEST_CASE("safetensors writer refuses bad names with std::invalid_argument") {
  ScratchDir dir("writer_args");
  const Matrix<double> m = Matrix<double>::Ones(2, 2);
  using V = std::vector<std::pair<std::string, Matrix<double>>>;
  CHECK(contains(error_of<std::invalid_argument>(
                     [&] { io::write_safetensors<double>(dir.file("x.safetensors"), V{{"a", m}, {"a", m}}); }),
                 "name 'a' is used twice"));
  CHECK(contains(error_of<std::invalid_argument>(
                     [&] { io::write_safetensors<double>(dir.file("x.safetensors"), V{{"__metadata__", m}}); }),
                 "empty or reserved"));
  CHECK(contains(
      error_of<std::invalid_argument>([&] { io::write_safetensors<double>(dir.file("x.safetensors"), V{{"", m}}); }),
      "empty or reserved"));
  CHECK(contains(error_of<std::invalid_argument>(
                     [&] { io::write_safetensors<double>(dir.file("x.safetensors"), V{{"bad\xff", m}}); }),
                 "not valid UTF-8"));
  CHECK(!fs::exists(dir.file("x.safetensors")));
  CHECK(temporaries_under(dir.path) == 0);
}

TEST_CASE("json reader: config mode accepts literals and real numbers, strict mode does not") {
  const io::JsonValue v = io::parse_json("{\"a\": [true, false, null, -1.5e2, 0, 12], \"s\": \"\\ud83d\\ude00\"}",
                                         "cfg", io::JsonMode::Config);
  const io::JsonValue* a = v.find("a");
  REQUIRE(a != nullptr);
  REQUIRE(a->items.size() == 6);
  CHECK(a->items[0].boolean);
  CHECK(a->items[2].is(io::JsonValue::Type::Null));
  CHECK(a->items[3].number == -150.0);
  CHECK(a->items[5].integer == 12);
  CHECK(v.find("s")->text == "\xf0\x9f\x98\x80");
  CHECK(contains(error_of<std::runtime_error>([] { io::parse_json("{\"a\": true}", "p", io::JsonMode::Strict); }),
                 "p: expected an object"));
  CHECK(contains(error_of<std::runtime_error>([] { io::parse_json("[01]", "p", io::JsonMode::Config, 100); }),
                 "leading zero at byte 102"));
  CHECK(io::json_quote("a\"b\\\n\x01") == "\"a\\\"b\\\\\\n\\u0001\"");
}

// ---------------------------------------------------------------- PEFT

TEST_CASE_TEMPLATE("PEFT export: lora_B lora_A is colora's update for every adapter kind and user", S,
                   COLORA_TEST_SCALARS) {
  ScratchDir dir("kinds");
  int which = 0;
  for (const nn::AdapterSpec& spec : every_adapter()) {
    CAPTURE(colora::to_string(spec.kind));
    CAPTURE(spec.alpha);
    auto model = random_mlp<S>(spec, colora_test::rng_for("peft kinds").substream(std::uint64_t(which)));
    const auto targets = nn::peft_targets(model);
    REQUIRE(targets.size() == 2);
    CHECK(targets[0].module == "mlp.fc0");
    CHECK(targets[1].module == "mlp.fc1");
    const std::string out = dir.file("k" + std::to_string(which++));
    nn::PeftOptions opt;
    opt.write_factors = true;
    nn::export_peft_users(model, out, opt);
    for (int u = 0; u < 3; ++u) {
      const auto back = nn::read_peft_adapter<S>(out + "/user_" + std::to_string(u));
      CHECK(back.config.r == 2);
      CHECK(back.config.lora_alpha == 2.0);
      REQUIRE(back.modules.size() == 2);
      for (std::size_t l = 0; l < 2; ++l) {
        const nn::Linear<S>& L = model.layers[l];
        const Matrix<S> update = L.effective_weight(u) - L.W0.value;
        const nn::LoraPair<S> p = nn::peft_lora_pair(L, u, "x");
        const double tol = colora_test::Tol<S>::tight * (1 + update.norm());
        CHECK((p.B * p.A - update).norm() <= tol);
        CHECK(bitwise_equal(back.modules[l].A, p.A));  // the file holds exactly the pair
        CHECK(bitwise_equal(back.modules[l].B, p.B));
        CHECK(back.config.scaling(back.modules[l].module) == 1.0);
      }
    }
    // The separate factors rebuild the same updates: scale * B_i S_i A_i.
    const io::Safetensors sh = io::read_safetensors(out + "/colora_shared.safetensors");
    const io::Safetensors co = io::read_safetensors(out + "/colora_cores.safetensors");
    CHECK(sh.metadata.at("users") == "3");
    CHECK(co.metadata.at("mlp.fc0.kind") == colora::to_string(spec.kind));
    for (int u = 0; u < 3; ++u) {
      const std::string m = "mlp.fc1", ui = "." + std::to_string(u);
      const nn::Linear<S>& L = model.layers[1];
      Matrix<S> A = spec.kind == AdapterKind::Lora ? co.matrix<S>(m + ".A" + ui) : sh.matrix<S>(m + ".A");
      Matrix<S> B = spec.kind == AdapterKind::Lora || spec.kind == AdapterKind::Fedsa ? co.matrix<S>(m + ".B" + ui)
                                                                                      : sh.matrix<S>(m + ".B");
      Matrix<S> core = Matrix<S>::Identity(2, 2);
      if (spec.kind == AdapterKind::Colora) {
        const Matrix<S> s = co.matrix<S>(m + ".S" + ui);
        core = spec.core == CoreKind::Full ? s : Matrix<S>(s.col(0).asDiagonal());
      }
      const double scale = std::stod(sh.metadata.at(m + ".scale"));
      const Matrix<S> update = L.effective_weight(u) - L.W0.value;
      CHECK((S(scale) * B * core * A - update).norm() <= colora_test::Tol<S>::tight * (1 + update.norm()));
    }
  }
  CHECK(temporaries_under(dir.path) == 0);
}

TEST_CASE_TEMPLATE("PEFT directory round trip: a colora user's adapter installed into a lora model predicts the same",
                   S, COLORA_TEST_SCALARS) {
  ScratchDir dir("roundtrip_dir");
  colora::Rng rng = colora_test::rng_for("peft dir round trip");
  auto colora_model = random_mlp<S>(nn::adapter(AdapterKind::Colora, 2, 3.0), rng.substream(1));
  nn::PeftOptions opt;
  opt.base_model_name_or_path = "my-base";
  nn::export_peft(colora_model, 1, dir.file("user_1"), opt);
  CHECK(fs::exists(dir.file("user_1/adapter_model.safetensors")));
  CHECK(fs::exists(dir.file("user_1/adapter_config.json")));
  CHECK(!fs::exists(dir.file("user_1/colora_shared.safetensors")));
  const auto a = nn::read_peft_adapter<S>(dir.file("user_1"));
  CHECK(a.config.base_model_name_or_path == "my-base");
  CHECK(a.config.task_type.empty());
  CHECK(a.config.target_modules == std::vector<std::string>{"mlp.fc0", "mlp.fc1"});
  const io::Safetensors raw = io::read_safetensors(dir.file("user_1/adapter_model.safetensors"));
  CHECK(raw.contains("base_model.model.mlp.fc0.lora_A.weight"));
  CHECK(raw.contains("base_model.model.mlp.fc1.lora_B.weight"));
  CHECK(raw.metadata.at("format") == "pt");

  auto lora_model = random_mlp<S>(nn::adapter(AdapterKind::Lora, 2, 7.0), rng.substream(2));
  for (std::size_t l = 0; l < 2; ++l) {
    lora_model.layers[l].W0.value = colora_model.layers[l].W0.value;
    lora_model.layers[l].b0.value = colora_model.layers[l].b0.value;
  }
  nn::install_peft(lora_model, 2, a);
  const Matrix<S> X = rng.substream(3).normal_matrix<S>(9, 6);
  const Matrix<S> want = colora_model.predict(X, 1);
  CHECK((lora_model.predict(X, 2) - want).norm() <= colora_test::Tol<S>::tight * 10 * (1 + want.norm()));
  // Installing into a colora model is refused: its A is shared.
  CHECK(contains(error_of<std::invalid_argument>([&] { nn::install_peft(colora_model, 0, a); }),
                 "only a lora adapter has per-user A_i, B_i"));
}

TEST_CASE("PEFT reader rejects directories that do not match their config") {
  ScratchDir dir("bad_dirs");
  colora::Rng rng = colora_test::rng_for("peft bad dirs");
  auto model = random_mlp<float>(nn::adapter(AdapterKind::Colora, 2), rng);
  nn::export_peft(model, 0, dir.file("u"));
  const std::string cfg_path = dir.file("u/adapter_config.json");
  std::ifstream in(cfg_path);
  const std::string cfg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto with_config = [&](const std::string& from, const std::string& to) {
    std::string c = cfg;
    const std::size_t at = c.find(from);
    REQUIRE(at != std::string::npos);
    c.replace(at, from.size(), to);
    io::write_text_atomically(cfg_path, c);
    const std::string msg = error_of<std::runtime_error>([&] { nn::read_peft_adapter<float>(dir.file("u")); });
    io::write_text_atomically(cfg_path, cfg);
    return msg;
  };
  CHECK(contains(with_config("\"r\": 2", "\"r\": 3"), "expected (3, in) and (out, 3) for r = 3"));
  CHECK(contains(with_config("\"peft_type\": \"LORA\"", "\"peft_type\": \"IA3\""), "expected \"LORA\""));
  CHECK(contains(with_config("\"mlp.fc0\", ", ""), "module 'mlp.fc0' of the safetensors file is not in target_modules"));
  CHECK(contains(with_config("\"fan_in_fan_out\": false", "\"fan_in_fan_out\": true"), "fan_in_fan_out"));
  CHECK(contains(with_config("\"bias\": \"none\"", "\"bias\": \"all\""), "\"bias\": \"all\" is not supported"));
  CHECK(contains(with_config("\"r\": 2,", "\"r\": 2"), "adapter_config.json': expected ',' or '}' at byte"));
  // Suffix matching as PEFT does it: target "fc0" matches module "mlp.fc0".
  CHECK(with_config("\"mlp.fc0\", ", "\"fc0\", ") == "<no exception>");
  CHECK(nn::read_peft_adapter<float>(dir.file("u")).modules.size() == 2);

  const std::string st = dir.file("u/adapter_model.safetensors");
  const io::Safetensors good = io::read_safetensors(st);
  auto with_tensors = [&](std::vector<io::SafetensorsTensor> ts) {
    io::write_safetensors(st, ts, good.metadata);
    const std::string msg = error_of<std::runtime_error>([&] { nn::read_peft_adapter<float>(dir.file("u")); });
    io::write_safetensors(st, good.tensors, good.metadata);
    return msg;
  };
  std::vector<io::SafetensorsTensor> ts = good.tensors;
  ts.pop_back();
  CHECK(contains(with_tensors(ts), "module 'mlp.fc1' has lora_A but not lora_B"));
  ts = good.tensors;
  ts.push_back(io::safetensors_tensor<float>("base_model.model.mlp.fc0.bias", Matrix<float>::Zero(5, 1)));
  CHECK(contains(with_tensors(ts), "unexpected tensor 'base_model.model.mlp.fc0.bias'"));
  CHECK(contains(error_of<std::runtime_error>([&] { nn::read_peft_adapter<float>(dir.file("missing")); }),
                 "cannot open"));
}

TEST_CASE("PEFT export: module names, ranks per module, bad arguments") {
  ScratchDir dir("names");
  // A transformer: default names follow the layer structure.
  nn::TransformerSpec ts;
  ts.d_in = 3;
  ts.seq_len = 2;
  ts.d_model = 8;
  ts.heads = 2;
  ts.d_out = 2;
  ts.num_tasks = 2;
  ts.adapters.attn.q = nn::adapter(AdapterKind::Colora, 2);
  ts.adapters.mlp_out = nn::adapter(AdapterKind::Colora, 3);
  nn::TransformerModel<double> tf(ts);
  auto targets = nn::peft_targets(tf);
  REQUIRE(targets.size() == 2);
  CHECK(targets[0].module == "tf.block0.attn.q");
  CHECK(targets[1].module == "tf.block0.mlp.out");
  targets[0].module = "layers.0.self_attn.q_proj";
  nn::export_peft(targets, 1, dir.file("tf"));
  const auto a = nn::read_peft_adapter<double>(dir.file("tf"));
  CHECK(a.config.r == 2);
  CHECK(a.config.rank_pattern.at("tf.block0.mlp.out") == 3);
  CHECK(a.config.scaling("tf.block0.mlp.out") == 1.0);
  CHECK(a.find("layers.0.self_attn.q_proj") != nullptr);
  CHECK(a.find("tf.block0.mlp.out")->A.rows() == 3);

  CHECK(contains(error_of<std::invalid_argument>([&] { nn::export_peft(tf, 2, dir.file("x")); }),
                 "user = 2 out of range [0, 2)"));
  targets[1].module = targets[0].module;
  CHECK(contains(error_of<std::invalid_argument>([&] { nn::export_peft(targets, 0, dir.file("x")); }),
                 "is used twice"));
  targets[1].module = "bad..name";
  CHECK(contains(error_of<std::invalid_argument>([&] { nn::export_peft(targets, 0, dir.file("x")); }),
                 "not a dotted module path"));
  nn::MlpSpec none;
  none.in = 3;
  none.out = 2;
  CHECK(contains(error_of<std::invalid_argument>([&] { nn::export_peft(nn::MlpModel<float>(none), 0, dir.file("x")); }),
                 "no module to write"));
  CHECK(!fs::exists(dir.file("x")));
  // A dense update of full rank is written exactly with r = min(in, out).
  colora::Rng rng(5);
  for (const auto& shape : {std::pair<Index, Index>{3, 5}, std::pair<Index, Index>{5, 3}}) {
    const Matrix<double> D = rng.normal_matrix<double>(shape.first, shape.second);
    const auto p = nn::lora_pair_from_dense<double>("linear", D);
    CHECK(p.rank() == 3);
    CHECK((p.B * p.A - D).norm() == 0.0);
  }
}

TEST_CASE("docs/io.md, PEFT adapters: the example compiles, runs, and is the one the page shows") {
  ScratchDir dir("docs_example");
  const fs::path was = fs::current_path();
  fs::current_path(dir.path);
  {
    // docs/io.md PEFT example begin
    // A CoLoRA MLP 6 -> 5 -> 4 for 3 users (trained as in docs/nn.md).
    nn::MlpSpec spec;
    spec.in = 6;
    spec.hidden = {5};
    spec.out = 4;
    spec.num_tasks = 3;
    spec.adapter = nn::AdapterSpec{colora::AdapterKind::Colora, 2};
    nn::MlpModel<float> model(spec);

    nn::PeftOptions opt;
    opt.write_factors = true;                             // also colora_shared/colora_cores.safetensors
    nn::export_peft_users(model, "peft_out", opt);        // peft_out/user_0/ ... user_2/
    nn::PeftAdapter<float> back = nn::read_peft_adapter<float>("peft_out/user_1");
    std::cout << back.modules.size() << " modules, r = " << back.config.r << "\n";   // 2 modules, r = 2

    io::write_safetensors<double>("factors.safetensors", {{"A", Matrix<double>::Identity(2, 3)}}, {{"format", "pt"}});
    io::Safetensors f = io::read_safetensors("factors.safetensors");
    Matrix<float> A = f.matrix<float>("A");                // F64 in the file, read as float
    // docs/io.md PEFT example end
    CHECK(back.modules.size() == 2);
    CHECK(back.config.r == 2);
    CHECK(A == Matrix<float>::Identity(2, 3));
    CHECK(fs::exists("peft_out/user_2/adapter_config.json"));
    CHECK(fs::exists("peft_out/colora_cores.safetensors"));
  }
  fs::current_path(was);
  const std::string example = colora_test::example_from_file(__FILE__, "// docs/io.md PEFT example begin",
                                                             "// docs/io.md PEFT example end", 2);
  REQUIRE(!example.empty());
  const std::string doc = colora_test::docs_page(__FILE__, "io.md");
  REQUIRE(!doc.empty());
  // The page shows it as the body of a complete program's main(), indented by 2
  // (tests/doc_snippets compiles and runs that program too).
  CHECK_MESSAGE(doc.find("int main() {\n" + example + "}\n```") != std::string::npos,
                "docs/io.md must show this example verbatim:\n" << example);
}
