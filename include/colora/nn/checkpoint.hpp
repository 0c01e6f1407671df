// Checkpoint files (docs/nn.md): one binary file holding a payload framed as
//   "COLORANN" | u32 format version | u64 payload bytes | payload | u64 FNV-1a(payload)
// written atomically (io::write_file_atomically). Reading checks the magic,
// the version, the length (truncation) and the checksum (corruption) and
// throws std::runtime_error naming the file and the reason. The payload
// starts with the architecture fingerprint; a mismatch is std::invalid_argument.
// The checksum only detects accidents (anyone can recompute it): readers treat
// the payload as hostile and bound every count and shape (BinaryReader::count, mat).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "colora/io/atomic_file.hpp"
#include "colora/nn/param.hpp"

namespace colora {
namespace nn {

inline constexpr std::uint32_t kCheckpointVersion = 1;
inline constexpr char kCheckpointMagic[8] = {'C', 'O', 'L', 'O', 'R', 'A', 'N', 'N'};

/// Appends little pieces of binary data to a string.
class BinaryWriter {
 public:
  void u64(std::uint64_t v) { raw(&v, sizeof v); }
  void i64(std::int64_t v) { raw(&v, sizeof v); }
  void f64(double v) { raw(&v, sizeof v); }
  void str(const std::string& s) {
    u64(s.size());
    raw(s.data(), s.size());
  }
  template <class S>
  void mat(const Matrix<S>& m) {
    i64(m.rows());
    i64(m.cols());
    raw(m.data(), sizeof(S) * std::size_t(m.size()));
  }
  void raw(const void* p, std::size_t n) {
    if (n > 0) buf_.append(static_cast<const char*>(p), n);
  }
  const std::string& bytes() const noexcept { return buf_; }

 private:
  std::string buf_;
};

/// Reads what BinaryWriter wrote; every shortfall is a runtime_error naming the file.
class BinaryReader {
 public:
  BinaryReader(const std::string& bytes, std::string path) : b_(bytes), path_(std::move(path)) {}
  std::uint64_t u64() { return pod<std::uint64_t>(); }
  std::int64_t i64() { return pod<std::int64_t>(); }
  double f64() { return pod<double>(); }
  std::string str() {
    const std::uint64_t n = u64();
    need(n, "string");
    std::string s = b_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  template <class S>
  Matrix<S> mat() {
    const std::int64_t r = i64(), c = i64();
    if (r < 0 || c < 0 || (c > 0 && std::uint64_t(r) > remaining() / std::uint64_t(c) / sizeof(S)))
      fail("matrix of " + std::to_string(r) + " x " + std::to_string(c) + " does not fit in the payload");
    return body<S>(r, c);
  }
  /// A matrix that must be rows x cols, or 0 x 0 when `may_be_empty`: any other shape is refused
  /// (naming `what`) before anything is allocated.
  template <class S>
  Matrix<S> mat(Index rows, Index cols, bool may_be_empty, const std::string& what) {
    const std::int64_t r = i64(), c = i64();
    if (!(r == rows && c == cols) && !(may_be_empty && r == 0 && c == 0))
      fail(what + " is " + std::to_string(r) + " x " + std::to_string(c) + ", expected " + std::to_string(rows) +
           " x " + std::to_string(cols) + (may_be_empty && rows * cols != 0 ? " or 0 x 0" : ""));
    return body<S>(r, c);
  }
  /// A u64 count of entries that take at least `min_bytes` each in the payload; a count the rest
  /// of the payload cannot hold is refused (naming `what`) before anything is allocated.
  std::uint64_t count(std::uint64_t min_bytes, const std::string& what) {
    const std::uint64_t n = u64();
    if (n > remaining() / std::max<std::uint64_t>(min_bytes, 1))
      fail(what + " count " + std::to_string(n) + " does not fit in the " + std::to_string(remaining()) +
           " bytes that remain (at least " + std::to_string(min_bytes) + " bytes each)");
    return n;
  }
  std::uint64_t remaining() const noexcept { return b_.size() - pos_; }
  bool at_end() const noexcept { return pos_ == b_.size(); }
  [[noreturn]] void fail(const std::string& why) const {
    throw std::runtime_error("colora::nn checkpoint '" + path_ + "': " + why);
  }

 private:
  template <class T>
  T pod() {
    need(sizeof(T), "number");
    T v;
    std::memcpy(&v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  void need(std::uint64_t n, const char* what) {
    if (n > remaining()) fail(std::string("payload ends inside a ") + what + " (inconsistent content)");
  }
  template <class S>
  Matrix<S> body(std::int64_t r, std::int64_t c) {  // r x c, already known to be >= 0 and not to overflow
    const std::uint64_t n = sizeof(S) * std::uint64_t(r) * std::uint64_t(c);
    need(n, "matrix");
    Matrix<S> m(r, c);
    if (n > 0) std::memcpy(m.data(), b_.data() + pos_, std::size_t(n));
    pos_ += std::size_t(n);
    return m;
  }
  const std::string& b_;
  std::string path_;
  std::size_t pos_ = 0;
};

/// Writes `payload` to `path` atomically with magic, version, length and checksum.
inline void write_checkpoint_file(const std::string& path, const std::string& payload) {
  io::write_file_atomically(path, [&](std::ostream& os) {
    os.write(kCheckpointMagic, 8);
    const std::uint32_t ver = kCheckpointVersion;
    os.write(reinterpret_cast<const char*>(&ver), sizeof ver);
    const std::uint64_t n = payload.size();
    os.write(reinterpret_cast<const char*>(&n), sizeof n);
    os.write(payload.data(), static_cast<std::streamsize>(payload.size()));
    const std::uint64_t h = fnv1a(payload.data(), payload.size());
    os.write(reinterpret_cast<const char*>(&h), sizeof h);
  });
}

/// Reads and verifies a checkpoint file; returns its payload.
inline std::string read_checkpoint_file(const std::string& path) {
  auto fail = [&](const std::string& why) -> void {
    throw std::runtime_error("colora::nn checkpoint '" + path + "': " + why);
  };
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open the file");
  std::ostringstream ss;
  ss << in.rdbuf();
  const std::string all = ss.str();
  const std::size_t head = 8 + 4 + 8;
  if (all.size() < head) fail("truncated (" + std::to_string(all.size()) + " bytes, shorter than the header)");
  if (std::memcmp(all.data(), kCheckpointMagic, 8) != 0) fail("not a colora network checkpoint (bad magic)");
  std::uint32_t ver;
  std::memcpy(&ver, all.data() + 8, 4);
  if (ver != kCheckpointVersion)
    fail("format version " + std::to_string(ver) + " is not supported (expected " +
         std::to_string(kCheckpointVersion) + ")");
  std::uint64_t n;
  std::memcpy(&n, all.data() + 12, 8);
  if (all.size() < head + 8 || n > all.size() - head - 8)
    fail("truncated (file has " + std::to_string(all.size()) + " bytes, header announces " +
         std::to_string(head + n + 8) + ")");
  if (all.size() != head + n + 8)
    fail("has " + std::to_string(all.size() - head - n - 8) + " trailing bytes after the checksum");
  std::uint64_t h;
  std::memcpy(&h, all.data() + head + n, 8);
  if (h != fnv1a(all.data() + head, n)) fail("checksum mismatch (the file is corrupt)");
  return all.substr(head, n);
}

}  // namespace nn
}  // namespace colora
