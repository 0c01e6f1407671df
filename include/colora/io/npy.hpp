// NumPy .npy files: read and write float64 / float32 arrays of one or two
// dimensions, C or Fortran order, little-endian (docs/io.md). Over 450 lines on
// purpose: the header parser, the two readers and the writer share one
// validation path, and splitting them would separate each check from the code
// it guards.
//
//   Matrix<double> X = io::read_npy<double>("X_0.npy");      // 2-D, or 1-D as n x 1
//   io::write_npy("W.npy", W);                                // C order, '<f8'
//   io::NpyHeader h = io::inspect_npy("X_0.npy");             // shape, dtype, order
//
// Reading accepts format versions 1.0, 2.0 and 3.0 (3.0 differs only in the
// header's text encoding, irrelevant for the three keys read here). Writing
// produces version 1.0 with the header layout of np.save (NumPy >= 1.23,
// including its spare "growth" spaces), or 2.0 if the header would not fit.
//
// Everything else is refused with a std::runtime_error naming the file and
// the reason: big-endian or non-float dtypes, bad magic, a truncated header
// or payload, bytes after the payload, a bad header dictionary, ndim 0 or > 2.
// The reader never allocates more than the file actually holds and never
// reads past the end of the stream.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <istream>
#include <ostream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "colora/core/errors.hpp"
#include "colora/io/atomic_file.hpp"

namespace colora {
namespace io {

/// Element type of a .npy file colora can read.
enum class NpyDtype { Float32, Float64 };

/// The layout of the payload when written: row-major ('C', the NumPy default)
/// or column-major ('Fortran', Eigen's own layout, so slightly faster).
enum class NpyOrder { C, Fortran };

inline const char* to_string(NpyDtype d) noexcept { return d == NpyDtype::Float32 ? "float32" : "float64"; }
/// The NumPy descr string of a dtype: "<f4" or "<f8".
inline const char* npy_descr(NpyDtype d) noexcept { return d == NpyDtype::Float32 ? "<f4" : "<f8"; }
inline std::size_t npy_item_size(NpyDtype d) noexcept { return d == NpyDtype::Float32 ? 4 : 8; }

/// What the header of a .npy file says (see inspect_npy).
struct NpyHeader {
  int major_version = 1;  ///< format version: 1, 2 or 3
  int minor_version = 0;
  NpyDtype dtype = NpyDtype::Float64;
  bool fortran_order = false;   ///< as stored in the file (always false for 1-D files from NumPy)
  std::vector<Index> shape;     ///< 1 or 2 entries
  std::size_t data_offset = 0;  ///< bytes before the payload (magic + version + length + header)

  Index ndim() const { return static_cast<Index>(shape.size()); }
  /// Rows of the matrix the file reads as: shape[0].
  Index rows() const { return shape.empty() ? 0 : shape[0]; }
  /// Columns of the matrix the file reads as: shape[1], or 1 for a 1-D file.
  Index cols() const { return shape.size() < 2 ? 1 : shape[1]; }
  /// Payload size in bytes: rows * cols * item size.
  std::size_t data_bytes() const {
    return static_cast<std::size_t>(rows()) * static_cast<std::size_t>(cols()) * npy_item_size(dtype);
  }
};

namespace detail {

using colora::detail::concat;

[[noreturn]] inline void npy_fail(const char* where, const std::string& name, const std::string& why) {
  throw std::runtime_error(std::string(where) + ": '" + name + "': " + why);
}

inline bool host_is_little_endian() noexcept {
  const std::uint16_t one = 1;
  unsigned char b[2];
  std::memcpy(b, &one, 2);
  return b[0] == 1;
}

/// Reverses the bytes of each `item`-byte element of `data` (only on a
/// big-endian host: .npy payloads here are always little-endian).
inline void to_or_from_little_endian(char* data, std::size_t count, std::size_t item) noexcept {
  if (host_is_little_endian()) return;
  for (std::size_t e = 0; e < count; ++e)
    for (std::size_t a = 0, b = item - 1; a < b; ++a, --b) std::swap(data[e * item + a], data[e * item + b]);
}

template <class Scalar>
constexpr NpyDtype npy_dtype_of() {
  static_assert(std::is_same<Scalar, float>::value || std::is_same<Scalar, double>::value,
                "colora::io: .npy I/O supports float and double only");
  return std::is_same<Scalar, float>::value ? NpyDtype::Float32 : NpyDtype::Float64;
}

/// Bytes left in `is` from the current position, or -1 if the stream cannot
/// tell (not seekable). Leaves the position where it was.
inline std::streamoff remaining_bytes(std::istream& is) {
  const std::streampos here = is.tellg();
  if (here == std::streampos(-1)) {
    is.clear();
    return -1;
  }
  is.seekg(0, std::ios::end);
  const std::streampos end = is.tellg();
  is.clear();
  is.seekg(here);
  if (end == std::streampos(-1) || !is) {
    is.clear();
    is.seekg(here);
    return -1;
  }
  return static_cast<std::streamoff>(end - here);
}

/// "(2, 3)" or "(5,)" as Python's repr of a tuple writes it.
inline std::string python_shape(const std::vector<Index>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

/// A minimal parser for the Python dict literal of a .npy header:
/// {'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }
class NpyHeaderParser {
 public:
  NpyHeaderParser(const std::string& text, const char* where, const std::string& name)
      : s_(text), where_(where), name_(name) {}

  void parse(NpyHeader& h) {
    bool have_descr = false, have_order = false, have_shape = false;
    skip_ws();
    expect('{');
    for (;;) {
      skip_ws();
      if (peek() == '}') {
        ++pos_;
        break;
      }
      const std::string key = parse_string("a key");
      skip_ws();
      expect(':');
      skip_ws();
      if (key == "descr") {
        if (have_descr) fail("the key 'descr' appears twice");
        have_descr = true;
        if (peek() != '\'' && peek() != '"')
          fail(
              "'descr' is not a string (structured or record dtypes are not supported; "
              "colora reads '<f8' float64 and '<f4' float32)");
        h.dtype = dtype_from_descr(parse_string("the descr"));
      } else if (key == "fortran_order") {
        if (have_order) fail("the key 'fortran_order' appears twice");
        have_order = true;
        h.fortran_order = parse_bool();
      } else if (key == "shape") {
        if (have_shape) fail("the key 'shape' appears twice");
        have_shape = true;
        h.shape = parse_shape();
      } else {
        fail("unexpected key '" + key + "' (a .npy header has exactly 'descr', 'fortran_order' and 'shape')");
      }
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      skip_ws();
      if (peek() != '}') fail(at("expected ',' or '}'"));
    }
    skip_ws();
    if (pos_ != s_.size()) fail(at("unexpected text after the closing '}'"));
    if (!have_descr) fail("the key 'descr' is missing");
    if (!have_order) fail("the key 'fortran_order' is missing");
    if (!have_shape) fail("the key 'shape' is missing");
  }

 private:
  [[noreturn]] void fail(const std::string& why) const { npy_fail(where_, name_, "bad header: " + why); }
  std::string at(const std::string& what) const {
    return what + " at header offset " + std::to_string(pos_) +
           (pos_ < s_.size() ? std::string(" (found '") + s_[pos_] + "')" : std::string(" (found the end)"));
  }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }
  void expect(char c) {
    if (peek() != c || pos_ >= s_.size()) fail(at(std::string("expected '") + c + "'"));
    ++pos_;
  }
  std::string parse_string(const char* what) {
    const char q = peek();
    if (q != '\'' && q != '"') fail(at(std::string("expected a quoted string for ") + what));
    ++pos_;
    std::string out;
    while (pos_ < s_.size() && s_[pos_] != q) {
      if (s_[pos_] == '\\') fail(at("escape sequences are not supported in header strings"));
      out += s_[pos_++];
      if (out.size() > 64) fail(at(std::string("overlong string for ") + what));
    }
    if (pos_ >= s_.size()) fail(std::string("unterminated string for ") + what);
    ++pos_;
    return out;
  }
  bool parse_bool() {
    if (s_.compare(pos_, 4, "True") == 0) {
      pos_ += 4;
      return true;
    }
    if (s_.compare(pos_, 5, "False") == 0) {
      pos_ += 5;
      return false;
    }
    fail(at("'fortran_order' must be True or False"));
  }
  Index parse_int() {
    if (!(peek() >= '0' && peek() <= '9')) fail(at("expected a non-negative integer in 'shape'"));
    // Bounded so that rows * cols * 8 cannot overflow below.
    const std::uint64_t limit = std::uint64_t(1) << 40;
    std::uint64_t v = 0;
    while (peek() >= '0' && peek() <= '9') {
      v = v * 10 + static_cast<std::uint64_t>(peek() - '0');
      if (v > limit) fail(at("a 'shape' entry is absurdly large (over 2^40)"));
      ++pos_;
    }
    if (peek() == 'L') ++pos_;  // Python 2 longs: (2L, 3L)
    return static_cast<Index>(v);
  }
  std::vector<Index> parse_shape() {
    std::vector<Index> shape;
    expect('(');
    for (;;) {
      skip_ws();
      if (peek() == ')') {
        ++pos_;
        break;
      }
      if (shape.size() >= 64) fail("'shape' has more than 64 entries");
      shape.push_back(parse_int());
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() != ')') fail(at("expected ',' or ')' in 'shape'"));
    }
    return shape;
  }
  NpyDtype dtype_from_descr(const std::string& d) const {
    if (d == "<f8") return NpyDtype::Float64;
    if (d == "<f4") return NpyDtype::Float32;
    if (d == ">f8" || d == ">f4")
      npy_fail(where_, name_,
               "big-endian dtype '" + d + "' is not supported (save with arr.astype('" + (d[2] == '8' ? "<f8" : "<f4") +
                   "') or on a little-endian machine)");
    npy_fail(where_, name_,
             "unsupported dtype '" + d +
                 "': colora reads only '<f8' (float64) and '<f4' (float32); convert with arr.astype(np.float64)");
  }

  const std::string& s_;
  const char* where_;
  const std::string& name_;
  std::size_t pos_ = 0;
};

/// Reads exactly `n` bytes into `dst`; false if the stream ends first.
inline bool read_exact(std::istream& is, char* dst, std::size_t n) {
  const std::size_t chunk = std::size_t(1) << 26;
  while (n > 0) {
    const std::size_t want = n < chunk ? n : chunk;
    is.read(dst, static_cast<std::streamsize>(want));
    if (static_cast<std::size_t>(is.gcount()) != want) return false;
    dst += want;
    n -= want;
  }
  return true;
}

/// Reads the payload of `h` as a FileScalar matrix in the logical shape
/// rows x cols (column-major in memory).
template <class FileScalar>
Matrix<FileScalar> read_npy_payload(std::istream& is, const NpyHeader& h, const char* where, const std::string& name) {
  const Index r = h.rows(), c = h.cols();
  const std::size_t need = h.data_bytes();
  const bool c_layout = !h.fortran_order && h.ndim() == 2 && r > 1 && c > 1;
  // A C-order r x c array is the column-major c x r matrix of its transpose;
  // allocated only once the stream is known to hold the payload.
  Matrix<FileScalar> raw;
  auto allocate = [&] { raw.resize(c_layout ? c : r, c_layout ? r : c); };
  auto shape_text = [&] { return python_shape(h.shape) + " " + to_string(h.dtype); };
  const std::streamoff avail = remaining_bytes(is);
  if (avail >= 0) {
    if (static_cast<std::uint64_t>(avail) < need)
      npy_fail(where, name,
               concat("truncated data: shape ", shape_text(), " needs ", need, " bytes but only ", avail,
                      " follow the header"));
    if (static_cast<std::uint64_t>(avail) > need)
      npy_fail(where, name,
               concat("trailing bytes: shape ", shape_text(), " needs ", need, " bytes but ", avail,
                      " follow the header (", avail - static_cast<std::streamoff>(need),
                      " extra; shape and file size disagree)"));
    allocate();
    if (!read_exact(is, reinterpret_cast<char*>(raw.data()), need)) npy_fail(where, name, "read error in the data");
  } else {
    // Not seekable: read into a buffer that grows with what actually arrives,
    // so a lying header cannot make us allocate more than the stream holds.
    std::vector<char> buf;
    const std::size_t chunk = std::size_t(1) << 20;
    while (buf.size() < need) {
      const std::size_t want = std::min(chunk, need - buf.size());
      const std::size_t old = buf.size();
      buf.resize(old + want);
      is.read(buf.data() + old, static_cast<std::streamsize>(want));
      const std::size_t got = static_cast<std::size_t>(is.gcount());
      if (got != want)
        npy_fail(where, name,
                 concat("truncated data: shape ", shape_text(), " needs ", need, " bytes but only ", old + got,
                        " follow the header"));
    }
    if (is.peek() != std::char_traits<char>::eof())
      npy_fail(where, name, concat("trailing bytes after the ", need, " data bytes of shape ", shape_text()));
    is.clear();
    allocate();
    if (need) std::memcpy(raw.data(), buf.data(), need);
  }
  to_or_from_little_endian(reinterpret_cast<char*>(raw.data()), static_cast<std::size_t>(raw.size()),
                           sizeof(FileScalar));
  if (c_layout) return raw.transpose();
  return raw;
}

template <class Scalar, class FileScalar>
Matrix<Scalar> read_npy_as(std::istream& is, const NpyHeader& h, const char* where, const std::string& name) {
  Matrix<FileScalar> m = read_npy_payload<FileScalar>(is, h, where, name);
  if constexpr (std::is_same<Scalar, FileScalar>::value) {
    return m;
  } else {
    return m.template cast<Scalar>();
  }
}

}  // namespace detail

/// Reads and checks the header of a .npy stream, leaving the stream at the
/// first payload byte. `name` is used in error messages.
inline NpyHeader read_npy_header(std::istream& is, const std::string& name = "<stream>") {
  const char* where = "colora::io::read_npy";
  NpyHeader h;
  char pre[10];
  is.read(pre, 8);
  const std::size_t got = static_cast<std::size_t>(is.gcount());
  if (got == 0) detail::npy_fail(where, name, "the file is empty (not a .npy file)");
  if (got >= 2 && pre[0] == 'P' && pre[1] == 'K')
    detail::npy_fail(where, name, "this is a zip archive (.npz?), not a .npy file; save each array with np.save");
  if (got < 6 || std::memcmp(pre, "\x93NUMPY", 6) != 0) {
    if (got < 6 && std::memcmp(pre, "\x93NUMPY", got) == 0)
      detail::npy_fail(where, name, detail::concat("truncated header: the file has only ", got, " bytes"));
    detail::npy_fail(where, name, "not a .npy file: it does not start with the magic string \\x93NUMPY");
  }
  if (got < 8) detail::npy_fail(where, name, detail::concat("truncated header: the file has only ", got, " bytes"));
  h.major_version = static_cast<unsigned char>(pre[6]);
  h.minor_version = static_cast<unsigned char>(pre[7]);
  if (!((h.major_version == 1 || h.major_version == 2 || h.major_version == 3) && h.minor_version == 0))
    detail::npy_fail(where, name,
                     detail::concat("unsupported .npy format version ", h.major_version, ".", h.minor_version,
                                    " (colora reads 1.0, 2.0 and 3.0)"));
  const std::size_t len_bytes = h.major_version == 1 ? 2 : 4;
  is.read(pre, static_cast<std::streamsize>(len_bytes));
  if (static_cast<std::size_t>(is.gcount()) != len_bytes)
    detail::npy_fail(where, name, "truncated header: the file ends inside the header length field");
  std::uint32_t hlen = 0;
  for (std::size_t b = 0; b < len_bytes; ++b) hlen |= std::uint32_t(static_cast<unsigned char>(pre[b])) << (8 * b);
  // NumPy itself refuses headers over 10000 bytes unless told otherwise.
  const std::uint32_t max_header = 1u << 20;
  if (hlen > max_header)
    detail::npy_fail(where, name,
                     detail::concat("bad header: its length field says ", hlen, " bytes (limit ", max_header, ")"));
  if (hlen == 0) detail::npy_fail(where, name, "bad header: its length field says 0 bytes");
  const std::streamoff avail = detail::remaining_bytes(is);
  if (avail >= 0 && static_cast<std::uint64_t>(avail) < hlen)
    detail::npy_fail(where, name,
                     detail::concat("truncated header: the length field says ", hlen, " bytes but only ", avail,
                                    " follow"));
  std::string text(hlen, '\0');
  if (!detail::read_exact(is, &text[0], hlen))
    detail::npy_fail(where, name,
                     detail::concat("truncated header: the length field says ", hlen,
                                    " bytes but the file ends first"));
  for (char ch : text)
    if (static_cast<unsigned char>(ch) < 0x20 && ch != '\n' && ch != '\t' && ch != '\r')
      detail::npy_fail(where, name, "bad header: it contains a control or NUL byte");
  detail::NpyHeaderParser(text, where, name).parse(h);
  if (h.shape.empty())
    detail::npy_fail(where, name, "0-d (scalar) arrays are not supported; save np.atleast_1d(x) or a 1 x 1 array");
  if (h.shape.size() > 2)
    detail::npy_fail(where, name,
                     detail::concat("ndim = ", h.shape.size(), " ", detail::python_shape(h.shape),
                                    " is not supported; colora reads 1-D and 2-D arrays"));
  // Each entry is at most 2^40 (parser); keep the payload size representable.
  const std::uint64_t max_bytes = std::uint64_t(1) << 60;
  const std::uint64_t r = static_cast<std::uint64_t>(h.rows()), c = static_cast<std::uint64_t>(h.cols());
  if (c != 0 && r > max_bytes / npy_item_size(h.dtype) / c)
    detail::npy_fail(where, name, "bad header: shape " + detail::python_shape(h.shape) + " is absurdly large");
  h.data_offset = 6 + 2 + len_bytes + hlen;
  return h;
}

/// Reads only the header of the .npy file at `path`: shape, dtype, order.
/// Throws std::runtime_error naming the file on an unreadable or bad header.
/// Does not check the payload (read_npy does).
inline NpyHeader inspect_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) detail::npy_fail("colora::io::inspect_npy", path, "cannot open the file for reading");
  return read_npy_header(in, path);
}

/// Reads a .npy array from a stream positioned at its magic string; the
/// stream must end right after the payload. A 1-D array of length n reads as
/// an n x 1 matrix. The file's float32/float64 values are converted to
/// Scalar (float64 -> float rounds to nearest). `name` is used in errors.
template <class Scalar>
Matrix<Scalar> read_npy(std::istream& is, const std::string& name = "<stream>") {
  (void)detail::npy_dtype_of<Scalar>();
  const NpyHeader h = read_npy_header(is, name);
  if (h.dtype == NpyDtype::Float64) return detail::read_npy_as<Scalar, double>(is, h, "colora::io::read_npy", name);
  return detail::read_npy_as<Scalar, float>(is, h, "colora::io::read_npy", name);
}

/// Reads the .npy file at `path` (see the stream overload).
template <class Scalar>
Matrix<Scalar> read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) detail::npy_fail("colora::io::read_npy", path, "cannot open the file for reading");
  return read_npy<Scalar>(in, path);
}

/// Reads a 1-D .npy file (or an n x 1 2-D one) as a vector.
template <class Scalar>
Vector<Scalar> read_npy_vector(const std::string& path) {
  Matrix<Scalar> m = read_npy<Scalar>(path);
  if (m.cols() != 1)
    detail::npy_fail("colora::io::read_npy_vector", path,
                     detail::concat("expected a 1-D array or one column, got ", m.rows(), " x ", m.cols()));
  return Vector<Scalar>(std::move(m));
}

/// The complete header block (magic, version, length, padded dict) that
/// np.save writes for this dtype, shape and order.
inline std::string npy_header_bytes(NpyDtype dtype, const std::vector<Index>& shape, bool fortran_order) {
  std::string dict = std::string("{'descr': '") + npy_descr(dtype) +
                     "', 'fortran_order': " + (fortran_order ? "True" : "False") +
                     ", 'shape': " + detail::python_shape(shape) + ", }";
  // NumPy >= 1.23 leaves room to rewrite the growing axis in place.
  if (!shape.empty()) {
    const std::size_t digits = std::to_string(shape[fortran_order ? shape.size() - 1 : 0]).size();
    if (digits < 21) dict.append(21 - digits, ' ');
  }
  for (int major = 1; major <= 2; ++major) {
    const std::size_t prefix = major == 1 ? 10 : 12;
    const std::size_t hlen = dict.size() + 1;
    const std::size_t pad = 64 - (prefix + hlen) % 64;
    const std::size_t total = hlen + pad;
    if (major == 1 && total > 65535) continue;
    std::string out("\x93NUMPY", 6);
    out += static_cast<char>(major);
    out += '\0';
    for (std::size_t b = 0; b < prefix - 8; ++b) out += static_cast<char>((total >> (8 * b)) & 0xff);
    out += dict;
    out.append(pad, ' ');
    out += '\n';
    return out;
  }
  throw std::runtime_error("colora::io::npy_header_bytes: header too long");
}

/// Writes `m` as a .npy array to a binary stream: dtype '<f8' for double,
/// '<f4' for float; shape (n,) for a compile-time vector (Vector / RowVector),
/// (rows, cols) otherwise; payload in `order`.
template <class Derived>
void write_npy(std::ostream& os, const Eigen::DenseBase<Derived>& m, NpyOrder order = NpyOrder::C) {
  using Scalar = typename Derived::Scalar;
  constexpr NpyDtype dtype = detail::npy_dtype_of<Scalar>();
  const auto& e = m.derived().eval();
  const bool one_d = Derived::ColsAtCompileTime == 1 || Derived::RowsAtCompileTime == 1;
  const Index r = e.rows(), c = e.cols();
  const std::vector<Index> shape = one_d ? std::vector<Index>{e.size()} : std::vector<Index>{r, c};
  const bool fortran = !one_d && order == NpyOrder::Fortran;
  const std::string header = npy_header_bytes(dtype, shape, fortran);
  os.write(header.data(), static_cast<std::streamsize>(header.size()));
  // One line at a time: a row (C order) or a column (Fortran order).
  const bool by_rows = !one_d && !fortran;
  const Index lines = one_d ? 1 : (by_rows ? r : c), width = one_d ? e.size() : (by_rows ? c : r);
  std::vector<Scalar> line(static_cast<std::size_t>(width));
  for (Index l = 0; l < lines; ++l) {
    for (Index j = 0; j < width; ++j) {
      if (one_d)
        line[size_t(j)] = e.coeff(j);
      else
        line[size_t(j)] = by_rows ? e.coeff(l, j) : e.coeff(j, l);
    }
    char* bytes = reinterpret_cast<char*>(line.data());
    detail::to_or_from_little_endian(bytes, line.size(), sizeof(Scalar));
    os.write(bytes, static_cast<std::streamsize>(line.size() * sizeof(Scalar)));
  }
  if (!os) throw std::runtime_error("colora::io::write_npy: write to the stream failed");
}

/// Writes `m` to the .npy file at `path` atomically (temporary file, then
/// rename): a reader sees the old file or the complete new one.
template <class Derived>
void write_npy(const std::string& path, const Eigen::DenseBase<Derived>& m, NpyOrder order = NpyOrder::C) {
  write_file_atomically(path, [&](std::ostream& os) { write_npy(os, m, order); });
}

}  // namespace io
}  // namespace colora
