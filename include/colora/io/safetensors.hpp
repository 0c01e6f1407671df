// safetensors files (docs/io.md, "PEFT adapters (safetensors)"): named
// float32 / float64 matrices and string metadata in the format of Hugging
// Face's safetensors library:
//
//   u64 little-endian N | N bytes of JSON header | data section
//   header: {"__metadata__": {"k": "v", ...},
//            "name": {"dtype": "F32", "shape": [rows, cols], "data_offsets": [begin, end]}, ...}
//   data:   every tensor's values, row-major, little-endian, at [begin, end)
//           relative to the start of the data section.
//
//   io::write_safetensors<float>("a.safetensors", {{"A", A}, {"B", B}}, {{"format", "pt"}});
//   io::Safetensors f = io::read_safetensors("a.safetensors");
//   Matrix<float> A = f.matrix<float>("A");     // F64 -> float rounds, F32 -> double is exact
//
// The reader treats the file as hostile: the header length is checked
// against the file size and a cap (100,000,000 bytes, the safetensors
// library's own) before anything is allocated; the header is parsed by the
// strict JSON reader (io/json.hpp); every tensor needs a known dtype, rank 1
// or 2, offsets inside the data section and exactly product(shape) * item
// size bytes (overflow-checked); tensors must not overlap and must cover the
// data section without gaps. Any refusal is a std::runtime_error
// "colora::io::read_safetensors: '<file>': <why>" (as io/npy.hpp does); bad
// arguments to the writer are std::invalid_argument.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <istream>
#include <map>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "colora/core/errors.hpp"
#include "colora/io/atomic_file.hpp"
#include "colora/io/json.hpp"
#include "colora/io/npy.hpp"

namespace colora {
namespace io {

/// Element type of a safetensors tensor colora reads and writes.
enum class SafetensorsDtype { F32, F64 };

inline const char* to_string(SafetensorsDtype d) noexcept { return d == SafetensorsDtype::F32 ? "F32" : "F64"; }

/// The largest header the reader accepts (the safetensors library's limit).
inline constexpr std::uint64_t kSafetensorsMaxHeader = 100000000;

/// One tensor: its name, dtype, shape as stored (1 or 2 entries), offsets in
/// the data section, and its values as a column-major matrix in the logical
/// shape (a 1-D tensor of length n is n x 1). Only the matrix of its dtype is set.
struct SafetensorsTensor {
  std::string name;
  SafetensorsDtype dtype = SafetensorsDtype::F32;
  std::vector<Index> shape;
  std::uint64_t begin = 0, end = 0;
  Matrix<float> f32;
  Matrix<double> f64;

  Index rows() const { return dtype == SafetensorsDtype::F32 ? f32.rows() : f64.rows(); }
  Index cols() const { return dtype == SafetensorsDtype::F32 ? f32.cols() : f64.cols(); }
  /// The values as Scalar (float32 -> double exact, float64 -> float rounds).
  template <class Scalar>
  Matrix<Scalar> matrix() const {
    static_assert(std::is_same<Scalar, float>::value || std::is_same<Scalar, double>::value,
                  "colora::io: safetensors supports float and double");
    if (dtype == SafetensorsDtype::F32) {
      if constexpr (std::is_same<Scalar, float>::value) return f32;
      else return f32.template cast<Scalar>();
    }
    if constexpr (std::is_same<Scalar, double>::value) return f64;
    else return f64.template cast<Scalar>();
  }
};

/// The content of a safetensors file: tensors in header order and metadata.
struct Safetensors {
  std::vector<SafetensorsTensor> tensors;
  std::map<std::string, std::string> metadata;

  const SafetensorsTensor* find(const std::string& name) const {
    for (const auto& t : tensors)
      if (t.name == name) return &t;
    return nullptr;
  }
  bool contains(const std::string& name) const { return find(name) != nullptr; }
  /// The tensor `name`; std::invalid_argument naming it if there is none.
  const SafetensorsTensor& tensor(const std::string& name) const {
    const SafetensorsTensor* t = find(name);
    if (!t) colora::detail::invalid("colora::io::Safetensors::tensor", "no tensor named '", name, "'");
    return *t;
  }
  template <class Scalar>
  Matrix<Scalar> matrix(const std::string& name) const {
    return tensor(name).template matrix<Scalar>();
  }
};

namespace detail {

/// Item size of a safetensors dtype name, 0 for an unknown name; `supported`
/// tells whether colora reads it.
inline std::size_t safetensors_item_size(const std::string& d, bool& supported) {
  supported = d == "F32" || d == "F64";
  const std::pair<const char*, std::size_t> known[] = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},
      {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4},     {"F64", 8},     {"I64", 8}, {"U64", 8}};
  for (const auto& k : known)
    if (d == k.first) return k.second;
  return 0;
}

/// Checks the parsed header against the data section size and fills
/// `out` (names, dtypes, shapes, offsets; no values yet).
inline void safetensors_layout(const JsonValue& h, std::uint64_t data_size, const char* where, const std::string& name,
                               Safetensors& out) {
  using T = JsonValue::Type;
  auto fail = [&](const std::string& why) { npy_fail(where, name, why); };
  if (!h.is(T::Object)) fail("bad header: the JSON header is not an object");
  for (const auto& m : h.members) {
    const std::string& key = m.first;
    const JsonValue& v = m.second;
    const std::string at = " (header byte " + std::to_string(v.offset) + ")";
    if (key == "__metadata__") {
      if (!v.is(T::Object)) fail("bad header: \"__metadata__\" is not an object" + at);
      for (const auto& kv : v.members) {
        if (!kv.second.is(T::String))
          fail("bad header: metadata value of \"" + kv.first + "\" is not a string (header byte " +
               std::to_string(kv.second.offset) + ")");
        out.metadata[kv.first] = kv.second.text;
      }
      continue;
    }
    const std::string tname = "tensor '" + key + "'";
    if (key.empty()) fail("bad header: a tensor has an empty name" + at);
    if (!v.is(T::Object)) fail("bad header: " + tname + " is not an object" + at);
    const JsonValue *dtype = nullptr, *shape = nullptr, *offs = nullptr;
    for (const auto& f : v.members) {
      if (f.first == "dtype") dtype = &f.second;
      else if (f.first == "shape") shape = &f.second;
      else if (f.first == "data_offsets") offs = &f.second;
      else fail("bad header: " + tname + " has an unexpected key \"" + f.first + "\"" + at);
    }
    if (!dtype || !shape || !offs)
      fail("bad header: " + tname + " lacks \"" + (!dtype ? "dtype" : !shape ? "shape" : "data_offsets") + "\"" + at);
    if (!dtype->is(T::String)) fail("bad header: the dtype of " + tname + " is not a string" + at);
    bool supported = false;
    const std::size_t item = safetensors_item_size(dtype->text, supported);
    if (item == 0) fail("unknown dtype '" + dtype->text + "' of " + tname);
    if (!supported)
      fail("dtype '" + dtype->text + "' of " + tname +
           " is not supported: colora reads F32 and F64 (save with tensor.float() or tensor.double())");
    if (!shape->is(T::Array)) fail("bad header: the shape of " + tname + " is not an array" + at);
    if (shape->items.empty() || shape->items.size() > 2)
      fail(tname + " has rank " + std::to_string(shape->items.size()) + ": colora reads rank 1 and 2 tensors");
    SafetensorsTensor t;
    t.name = key;
    t.dtype = dtype->text == "F32" ? SafetensorsDtype::F32 : SafetensorsDtype::F64;
    std::uint64_t count = 1;
    bool overflow = false;
    for (const auto& d : shape->items) {
      if (!d.is(T::Integer)) fail("bad header: a shape entry of " + tname + " is not an integer" + at);
      if (d.integer > (std::uint64_t(1) << 40))
        fail(tname + ": shape entry " + std::to_string(d.integer) + " is absurdly large (over 2^40)");
      t.shape.push_back(Index(d.integer));
      if (d.integer != 0 && count > UINT64_MAX / d.integer) overflow = true;
      else count *= d.integer;
    }
    if (overflow || count > UINT64_MAX / item) fail(tname + ": the shape's byte count overflows 64 bits");
    if (!offs->is(T::Array) || offs->items.size() != 2 || !offs->items[0].is(T::Integer) ||
        !offs->items[1].is(T::Integer))
      fail("bad header: the data_offsets of " + tname + " are not two non-negative integers" + at);
    t.begin = offs->items[0].integer;
    t.end = offs->items[1].integer;
    if (t.begin > t.end || t.end > data_size)
      fail(colora::detail::concat(tname, ": data_offsets [", t.begin, ", ", t.end, "] are out of range [0, ",
                                  data_size, "] of the data section"));
    if (t.end - t.begin != count * item)
      fail(colora::detail::concat(tname, ": size mismatch: shape ", python_shape(t.shape), " ", dtype->text, " needs ",
                                  count * item, " bytes but data_offsets [", t.begin, ", ", t.end, "] hold ",
                                  t.end - t.begin));
    out.tensors.push_back(std::move(t));
  }
  // Tensors must tile the data section: no overlap, no gap, nothing after.
  std::vector<std::size_t> order(out.tensors.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    const auto &x = out.tensors[a], &y = out.tensors[b];
    return x.begin != y.begin ? x.begin < y.begin : x.end < y.end;
  });
  std::uint64_t pos = 0;
  const SafetensorsTensor* prev = nullptr;
  for (std::size_t i : order) {
    const SafetensorsTensor& t = out.tensors[i];
    if (t.begin < pos)
      fail(colora::detail::concat("tensors '", prev->name, "' [", prev->begin, ", ", prev->end, ") and '", t.name,
                                  "' [", t.begin, ", ", t.end, ") overlap"));
    if (t.begin > pos)
      fail(colora::detail::concat("bytes [", pos, ", ", t.begin,
                                  ") of the data section belong to no tensor (safetensors requires none)"));
    pos = t.end;
    if (t.end > t.begin || !prev) prev = &t;
  }
  if (pos != data_size)
    fail(colora::detail::concat("trailing bytes: the data section has ", data_size, " bytes but the tensors cover ",
                                pos));
}

/// Reads the values of `t` (its bytes are next in `is`).
template <class FileScalar>
Matrix<FileScalar> safetensors_values(std::istream& is, const SafetensorsTensor& t, const char* where,
                                      const std::string& name) {
  const Index r = t.shape[0], c = t.shape.size() == 2 ? t.shape[1] : 1;
  // Row-major r x c is the column-major c x r matrix of the transpose.
  Matrix<FileScalar> raw(c, r);
  if (!read_exact(is, reinterpret_cast<char*>(raw.data()), std::size_t(t.end - t.begin)))
    npy_fail(where, name, "read error in the data of tensor '" + t.name + "'");
  to_or_from_little_endian(reinterpret_cast<char*>(raw.data()), std::size_t(raw.size()), sizeof(FileScalar));
  return raw.transpose();
}

}  // namespace detail

/// Reads a safetensors file from a stream positioned at its first byte; the
/// stream must end with the data section. `name` is used in error messages.
inline Safetensors read_safetensors(std::istream& is, const std::string& name = "<stream>") {
  const char* where = "colora::io::read_safetensors";
  const std::streamoff size = detail::remaining_bytes(is);
  if (size < 0) {
    // Not seekable: take what arrives (bounded by the stream itself), then parse that.
    std::string all;
    char buf[1 << 16];
    while (is.read(buf, sizeof buf) || is.gcount() > 0) all.append(buf, std::size_t(is.gcount()));
    std::istringstream in(all);
    return read_safetensors(in, name);
  }
  if (size == 0) detail::npy_fail(where, name, "the file is empty (not a safetensors file)");
  if (size < 8)
    detail::npy_fail(where, name,
                     detail::concat("truncated: the file has only ", size,
                                    " bytes (a safetensors file starts with an 8-byte header length)"));
  unsigned char len[8];
  is.read(reinterpret_cast<char*>(len), 8);
  if (is.gcount() != 8) detail::npy_fail(where, name, "read error in the header length");
  std::uint64_t n = 0;
  for (int b = 0; b < 8; ++b) n |= std::uint64_t(len[b]) << (8 * b);
  const std::uint64_t after = std::uint64_t(size) - 8;
  if (n > kSafetensorsMaxHeader)
    detail::npy_fail(where, name,
                     detail::concat("bad header: its length field says ", n, " bytes (limit ", kSafetensorsMaxHeader,
                                    ")"));
  if (n > after)
    detail::npy_fail(where, name,
                     detail::concat("truncated: the header length field says ", n, " bytes but only ", after,
                                    " follow it"));
  if (n < 2) detail::npy_fail(where, name, detail::concat("bad header: its length field says ", n, " bytes"));
  std::string text(std::size_t(n), '\0');
  if (!detail::read_exact(is, &text[0], std::size_t(n))) detail::npy_fail(where, name, "read error in the header");
  if (text[0] != '{')
    detail::npy_fail(where, name, "bad header: it does not start with '{' at byte 8 (not a safetensors file?)");
  const JsonValue h = parse_json(text, std::string(where) + ": '" + name + "': bad header", JsonMode::Strict, 8);
  Safetensors out;
  detail::safetensors_layout(h, after - n, where, name, out);
  // Values, in the order of the data section (the layout tiles it).
  std::vector<SafetensorsTensor*> order;
  for (auto& t : out.tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const SafetensorsTensor* a, const SafetensorsTensor* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  for (SafetensorsTensor* t : order) {
    if (t->dtype == SafetensorsDtype::F32)
      t->f32 = detail::safetensors_values<float>(is, *t, where, name);
    else
      t->f64 = detail::safetensors_values<double>(is, *t, where, name);
  }
  return out;
}

/// Reads the safetensors file at `path` (see the stream overload).
inline Safetensors read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) detail::npy_fail("colora::io::read_safetensors", path, "cannot open the file for reading");
  return read_safetensors(in, path);
}

/// A tensor to write: `name` and the matrix, stored with shape [rows, cols]
/// (or [rows] when `one_d` and the matrix has one column).
template <class Scalar>
SafetensorsTensor safetensors_tensor(std::string name, Matrix<Scalar> m, bool one_d = false) {
  static_assert(std::is_same<Scalar, float>::value || std::is_same<Scalar, double>::value,
                "colora::io: safetensors supports float and double");
  SafetensorsTensor t;
  t.name = std::move(name);
  t.shape = one_d && m.cols() == 1 ? std::vector<Index>{m.rows()} : std::vector<Index>{m.rows(), m.cols()};
  if constexpr (std::is_same<Scalar, float>::value) {
    t.dtype = SafetensorsDtype::F32;
    t.f32 = std::move(m);
  } else {
    t.dtype = SafetensorsDtype::F64;
    t.f64 = std::move(m);
  }
  return t;
}

/// Writes tensors (in this order, contiguous) and metadata as a safetensors
/// byte stream: the header is `{"__metadata__":{...},"<name>":{...},...}`
/// padded with spaces to a multiple of 8 bytes (as the safetensors library
/// does). Names must be non-empty, distinct, not "__metadata__", and valid
/// UTF-8 (std::invalid_argument otherwise).
inline void write_safetensors(std::ostream& os, const std::vector<SafetensorsTensor>& tensors,
                              const std::map<std::string, std::string>& metadata = {}) {
  const char* where = "colora::io::write_safetensors";
  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& kv : metadata) {
      header += (first ? "" : ",") + json_quote(kv.first) + ":" + json_quote(kv.second);
      first = false;
    }
    header += "}";
  }
  std::uint64_t offset = 0;
  for (std::size_t j = 0; j < tensors.size(); ++j) {
    const SafetensorsTensor& t = tensors[j];
    colora::detail::require(!t.name.empty() && t.name != "__metadata__", where, "tensor ", j, ": name '", t.name,
                            "' is empty or reserved");
    for (std::size_t i = 0; i < j; ++i)
      colora::detail::require(tensors[i].name != t.name, where, "tensor ", j, ": name '", t.name, "' is used twice");
    const Index r = t.rows(), c = t.cols();
    const bool one_d = t.shape.size() == 1;
    colora::detail::require((one_d && t.shape[0] == r && c == 1) || (t.shape.size() == 2 && t.shape[0] == r &&
                                                                      t.shape[1] == c),
                            where, "tensor '", t.name, "': shape ", detail::python_shape(t.shape),
                            " does not match its ", r, " x ", c, " matrix");
    const std::uint64_t bytes =
        std::uint64_t(r) * std::uint64_t(c) * (t.dtype == SafetensorsDtype::F32 ? 4u : 8u);
    header += std::string(j == 0 && metadata.empty() ? "" : ",") + json_quote(t.name) + ":{\"dtype\":\"" +
              to_string(t.dtype) + "\",\"shape\":[" + std::to_string(r) + (one_d ? "" : "," + std::to_string(c)) +
              "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + bytes) + "]}";
    offset += bytes;
  }
  header += "}";
  try {  // names and metadata must be valid UTF-8: parse what we made
    (void)parse_json(header, where, JsonMode::Strict);
  } catch (const std::runtime_error& e) {
    colora::detail::invalid(where, "a tensor name or metadata entry is not valid UTF-8 (", e.what(), ")");
  }
  header.append((8 - header.size() % 8) % 8, ' ');
  unsigned char len[8];
  for (int b = 0; b < 8; ++b) len[b] = static_cast<unsigned char>((std::uint64_t(header.size()) >> (8 * b)) & 0xff);
  os.write(reinterpret_cast<const char*>(len), 8);
  os.write(header.data(), static_cast<std::streamsize>(header.size()));
  auto rows_out = [&](const auto& m) {  // row-major, little-endian, one row at a time
    using S = typename std::decay_t<decltype(m)>::Scalar;
    std::vector<S> line(static_cast<std::size_t>(m.cols()));
    for (Index i = 0; i < m.rows(); ++i) {
      for (Index k = 0; k < m.cols(); ++k) line[std::size_t(k)] = m(i, k);
      char* b = reinterpret_cast<char*>(line.data());
      detail::to_or_from_little_endian(b, line.size(), sizeof(S));
      os.write(b, static_cast<std::streamsize>(line.size() * sizeof(S)));
    }
  };
  for (const auto& t : tensors) {
    if (t.dtype == SafetensorsDtype::F32)
      rows_out(t.f32);
    else
      rows_out(t.f64);
  }
  if (!os) throw std::runtime_error("colora::io::write_safetensors: write to the stream failed");
}

/// Writes the file at `path` atomically (temporary file, then rename).
inline void write_safetensors(const std::string& path, const std::vector<SafetensorsTensor>& tensors,
                              const std::map<std::string, std::string>& metadata = {}) {
  write_file_atomically(path, [&](std::ostream& os) { write_safetensors(os, tensors, metadata); });
}

/// Convenience: named matrices of one scalar type, each stored 2-D [rows, cols]
/// as F32 (float) or F64 (double), atomically.
template <class Scalar>
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Matrix<Scalar>>>& named,
                       const std::map<std::string, std::string>& metadata = {}) {
  std::vector<SafetensorsTensor> tensors;
  tensors.reserve(named.size());
  for (const auto& nm : named) tensors.push_back(safetensors_tensor<Scalar>(nm.first, nm.second));
  write_safetensors(path, tensors, metadata);
}

}  // namespace io
}  // namespace colora
