// Checkpoint files (docs/nn.md): one binary file holding a payload framed as
//   "COLORANN" | u32 format version | u64 payload bytes | payload | u64 FNV-1a(payload)
// written atomically (io::write_file_atomically). Reading checks the magic,
// the version, the length (truncation) and the checksum (corruption) and
// throws std::runtime_error naming the file and the reason. The payload
// starts with the architecture fingerprint; a mismatch is std::invalid_argument.
// The checksum only detects accidents (anyone can recompute it): readers treat
// the payload as hostile and bound every count and shape (BinaryReader::count, mat).
//
// The trainer's payload (Trainer::save_checkpoint / load_checkpoint) is
// TrainerState, written by encode_trainer_state and parsed and validated by
// decode_trainer_state: every count and shape is bounded before anything is
// allocated, every value checked before the trainer commits it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <limits>
#include <string>
#include <vector>

#include "colora/io/atomic_file.hpp"
#include "colora/nn/param.hpp"
#include "colora/nn/trainer_options.hpp"

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
    fail("format version " + std::to_string(ver) + " is not supported (expected " + std::to_string(kCheckpointVersion) +
         ")");
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

/// Largest minibatch counter and optimizer step count a checkpoint may hold:
/// exact in a double, and 2^63 - 2^53 increments away from overflowing.
inline constexpr std::int64_t kCheckpointMaxCount = std::int64_t(1) << 53;

/// The state of a Trainer a checkpoint holds, in the order of the payload.
template <class S>
struct TrainerState {
  std::int64_t iteration = 0;
  double last_train_loss = 0;
  std::int64_t bad_evals = 0;  ///< early stopping: evaluations without improvement
  double best_val_loss = 0;
  std::int64_t best_iteration = -1;
  std::vector<std::int64_t> counters;    ///< per task: minibatches drawn
  std::vector<Matrix<S>> values;         ///< every trainable parameter (param_list order)
  std::vector<std::int64_t> steps;       ///< optimizer: per parameter (all, frozen included) or empty
  std::vector<Matrix<S>> first, second;  ///< optimizer moments, as steps
  std::vector<Matrix<S>> best;           ///< best-state snapshot (one per trainable parameter) or empty
  std::vector<EvalRecord> history;
};

/// The payload of a trainer checkpoint: a tag, the architecture `fingerprint`, the `frozen_hash`
/// of the frozen weights, then `s`.
template <class S>
std::string encode_trainer_state(const TrainerState<S>& s, const std::string& fingerprint, std::uint64_t frozen_hash) {
  BinaryWriter w;
  w.str("colora-nn-trainer");
  w.str(fingerprint);
  w.u64(frozen_hash);
  w.i64(s.iteration);
  w.f64(s.last_train_loss);
  w.i64(s.bad_evals);
  w.f64(s.best_val_loss);
  w.i64(s.best_iteration);
  for (auto c : s.counters) w.i64(c);
  for (auto& v : s.values) w.mat(v);
  w.u64(s.steps.size());
  for (std::size_t id = 0; id < s.steps.size(); ++id) {
    w.i64(s.steps[id]);
    w.mat(s.first[id]);
    w.mat(s.second[id]);
  }
  w.u64(s.best.size());
  for (auto& b : s.best) w.mat(b);
  w.u64(s.history.size());
  for (auto& r : s.history) {
    w.i64(r.iteration);
    w.f64(r.train_loss);
    w.f64(r.val_loss);
    w.u64(r.task_loss.size());
    for (double x : r.task_loss) w.f64(x);
    w.u64(r.task_accuracy.size());
    for (double x : r.task_accuracy) w.f64(x);
  }
  return w.bytes();
}

/// "parameter 'name'" or "frozen parameter 'name'", for messages.
template <class S>
std::string param_label(const Param<S>& p) {
  return (p.trainable() ? "parameter '" : "frozen parameter '") + p.name + "'";
}

/// Checks a parsed trainer state as a whole (every value against its range and
/// the other fields; `hist_iter` the history records' iterations as read); r.fail names the field.
template <class S>
void check_trainer_state(const TrainerState<S>& s, const std::vector<std::int64_t>& hist_iter,
                         const std::vector<Param<S>*>& params, const BinaryReader& r) {
  auto range = [&](std::int64_t x, std::int64_t lo, std::int64_t hi, const std::string& what) {
    if (x < lo || x > hi) r.fail(detail::concat(what, " ", x, " is out of range [", lo, ", ", hi, "]"));
  };
  // Finite entries; second moments may also be +inf (AdamW reaches it when a squared gradient overflows).
  auto entries = [&](const Matrix<S>& m, const std::string& what, bool second_moment) {
    for (Index c = 0; c < m.cols(); ++c)
      for (Index i = 0; i < m.rows(); ++i) {
        const double x = double(m(i, c));
        if (second_moment ? !(x >= 0) : !std::isfinite(x))
          r.fail(detail::concat(what, " has the entry ", x, " at (", i, ", ", c, "), expected ",
                                second_moment ? "a value >= 0" : "a finite value"));
      }
  };
  range(s.iteration, 0, std::numeric_limits<int>::max(), "iteration");
  range(s.bad_evals, 0, s.iteration, "bad_evals");
  range(s.best_iteration, -1, s.iteration, "best_iteration");
  if (!(s.best_val_loss > -std::numeric_limits<double>::infinity()))
    r.fail(detail::concat("best validation loss ", s.best_val_loss, " is not a loss (expected finite or +inf)"));
  for (std::size_t i = 0; i < s.counters.size(); ++i)
    range(s.counters[i], 0, kCheckpointMaxCount, "task " + std::to_string(i) + "'s minibatch counter");
  std::size_t j = 0;
  for (auto* p : params)
    if (p->trainable()) {
      entries(s.values[j], param_label(*p), false);
      if (j < s.best.size()) entries(s.best[j], "best-state snapshot of " + param_label(*p), false);
      ++j;
    }
  for (std::size_t id = 0; id < s.steps.size(); ++id) {
    const Param<S>& p = *params[id];
    range(s.steps[id], 0, p.trainable() ? kCheckpointMaxCount : 0, "step count of " + param_label(p));
    entries(s.first[id], "first moment of " + param_label(p), false);
    entries(s.second[id], "second moment of " + param_label(p), true);
  }
  for (std::size_t e = 0; e < hist_iter.size(); ++e)
    range(hist_iter[e], 0, s.iteration, "history record " + std::to_string(e) + "'s iteration");
}

/// Parses and validates the payload of a trainer checkpoint read from `path`, for a model whose
/// parameters are `params` (param_list order) with `tasks` tasks, architecture `fingerprint`
/// and frozen weights `frozen_hash`. The payload is hostile: every count and shape is checked
/// before anything is allocated, every value against its range and the other fields. Another
/// architecture or other frozen weights are std::invalid_argument (from `where`); anything else
/// is std::runtime_error naming the file and the field.
template <class S>
TrainerState<S> decode_trainer_state(const std::string& payload, const std::string& path,
                                     const std::vector<Param<S>*>& params, std::size_t tasks,
                                     const std::string& fingerprint, std::uint64_t frozen_hash, const char* where) {
  BinaryReader r(payload, path);
  if (r.str() != "colora-nn-trainer") r.fail("is not a trainer checkpoint");
  const std::string fp = r.str();
  if (fp != fingerprint)
    detail::invalid(where, "checkpoint '", path, "' is for another architecture: file has {", fp, "}, model has {",
                    fingerprint, "}");
  if (r.u64() != frozen_hash)
    detail::invalid(where, "checkpoint '", path,
                    "' was written with different frozen (base) weights than this model's");
  TrainerState<S> s;
  s.iteration = r.i64();
  s.last_train_loss = r.f64();
  s.bad_evals = r.i64();
  s.best_val_loss = r.f64();
  s.best_iteration = r.i64();
  s.counters.resize(tasks);
  for (auto& c : s.counters) c = r.i64();
  for (auto* p : params)
    if (p->trainable()) s.values.push_back(r.mat<S>(p->value.rows(), p->value.cols(), false, param_label(*p)));
  const std::uint64_t nt = r.count(8 + 2 * 16, "optimizer state");
  if (nt != 0 && nt != params.size())
    r.fail(detail::concat("optimizer state has ", nt, " parameters, the model has ", params.size()));
  s.steps.resize(nt);
  s.first.resize(nt);
  s.second.resize(nt);
  for (std::size_t id = 0; id < nt; ++id) {  // frozen parameters have no moments
    const Param<S>& p = *params[id];
    const Index rows = p.trainable() ? p.value.rows() : 0, cols = p.trainable() ? p.value.cols() : 0;
    s.steps[id] = r.i64();
    s.first[id] = r.mat<S>(rows, cols, true, "first moment of " + param_label(p));
    s.second[id] = r.mat<S>(rows, cols, true, "second moment of " + param_label(p));
  }
  const std::uint64_t nb = r.count(16, "best-state snapshot");
  if (nb != 0 && nb != s.values.size())
    r.fail(detail::concat("best-state snapshot has ", nb, " matrices, the model has ", s.values.size(),
                          " trainable parameters"));
  for (auto* p : params)
    if (p->trainable() && s.best.size() < nb)
      s.best.push_back(r.mat<S>(p->value.rows(), p->value.cols(), false, "best-state snapshot of " + param_label(*p)));
  const std::uint64_t k = tasks;
  s.history.resize(r.count(40 + 8 * k, "history"));  // a record holds k task losses
  std::vector<std::int64_t> hist_iter(s.history.size());
  for (std::size_t e = 0; e < s.history.size(); ++e) {
    EvalRecord& h = s.history[e];
    const std::string what = "history record " + std::to_string(e);
    hist_iter[e] = r.i64();
    h.train_loss = r.f64();
    h.val_loss = r.f64();
    const std::uint64_t nl = r.count(8, what + " task_loss");
    if (nl != k) r.fail(detail::concat(what, " has ", nl, " task losses, the model has ", k, " tasks"));
    h.task_loss.resize(nl);
    for (auto& x : h.task_loss) x = r.f64();
    const std::uint64_t na = r.count(8, what + " task_accuracy");
    if (na != 0 && na != k)
      r.fail(detail::concat(what, " has ", na, " task accuracies, expected 0 or ", k, " (one per task)"));
    h.task_accuracy.resize(na);
    for (auto& x : h.task_accuracy) x = r.f64();
  }
  if (!r.at_end()) r.fail("has unexpected bytes after the trainer state");
  check_trainer_state(s, hist_iter, params, r);
  for (std::size_t e = 0; e < s.history.size(); ++e) s.history[e].iteration = int(hist_iter[e]);
  return s;
}

}  // namespace nn
}  // namespace colora
