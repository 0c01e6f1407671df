// Shared helpers of the network experiments (nn-teacher, nn-digits;
// docs/nn-experiments.md): the digits data loader, bilinear image rotation,
// the list of adapter methods, subspace distances of learned adapters and
// small summary statistics. Experiment code, not library code: it may throw
// std::runtime_error with a message for the user.
#pragma once

#include <colora/core/adapter.hpp>
#include <colora/core/config.hpp>
#include <colora/core/errors.hpp>
#include <colora/core/random.hpp>
#include <colora/diagnostics/subspace.hpp>
#include <colora/nn/nn.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli.hpp"

namespace colora {
namespace exp {

// ---------------------------------------------------------------- digits data

/// The UCI optical digits (data/digits.csv): n images of 8 x 8 pixels,
/// row-major, values 0..16, and their labels 0..9.
struct Digits {
  Matrix<double> X;         ///< n x 64, raw pixel values 0..16
  std::vector<int> labels;  ///< n labels in 0..9
};

/// The data file the program was built with (COLORA_DATA_DIR/digits.csv).
inline std::string default_digits_path() {
#ifdef COLORA_DATA_DIR
  return std::string(COLORA_DATA_DIR) + "/digits.csv";
#else
  return "data/digits.csv";
#endif
}

/// Parses the digits CSV text: one image a line, 64 integers 0..16 then the
/// label 0..9, comma separated, no header. `name` is used in error messages.
inline Digits parse_digits_csv(const std::string& text, const std::string& name) {
  Digits d;
  std::vector<double> pix;
  std::istringstream in(text);
  std::string line;
  long lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    std::vector<long> vals;
    std::size_t pos = 0;
    while (pos <= line.size()) {
      const std::size_t comma = std::min(line.find(',', pos), line.size());
      const std::string cell = line.substr(pos, comma - pos);
      std::size_t used = 0;
      long v = 0;
      try {
        v = std::stol(cell, &used);
      } catch (...) {
        used = 0;
      }
      if (used == 0 || used != cell.size())
        throw std::runtime_error("digits data '" + name + "', line " + std::to_string(lineno) + ": '" + cell +
                                 "' is not an integer");
      vals.push_back(v);
      pos = comma + 1;
    }
    if (vals.size() != 65)
      throw std::runtime_error("digits data '" + name + "', line " + std::to_string(lineno) + ": " +
                               std::to_string(vals.size()) + " fields, expected 65 (64 pixels and a label)");
    for (int j = 0; j < 64; ++j) {
      if (vals[j] < 0 || vals[j] > 16)
        throw std::runtime_error("digits data '" + name + "', line " + std::to_string(lineno) + ": pixel " +
                                 std::to_string(j) + " = " + std::to_string(vals[j]) + " is outside 0..16");
      pix.push_back(double(vals[j]));
    }
    if (vals[64] < 0 || vals[64] > 9)
      throw std::runtime_error("digits data '" + name + "', line " + std::to_string(lineno) + ": label " +
                               std::to_string(vals[64]) + " is outside 0..9");
    d.labels.push_back(int(vals[64]));
  }
  if (d.labels.empty()) throw std::runtime_error("digits data '" + name + "' holds no images");
  d.X.resize(Index(d.labels.size()), 64);
  for (Index i = 0; i < d.X.rows(); ++i)
    for (Index j = 0; j < 64; ++j) d.X(i, j) = pix[std::size_t(i * 64 + j)];
  return d;
}

/// Reads the digits CSV file (plain text; the repository ships it
/// uncompressed so no decompression library or tool is needed).
inline Digits load_digits_csv(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw std::runtime_error("cannot open the digits data '" + path +
                             "' (the repository ships it as data/digits.csv; pass --data FILE to use another copy)");
  std::ostringstream os;
  os << in.rdbuf();
  return parse_digits_csv(os.str(), path);
}

/// Rotates an 8 x 8 image (64 values, row-major) counter-clockwise by
/// `degrees` about its centre (3.5, 3.5) with bilinear resampling; source
/// points outside the image read as 0 (background). Output pixel (r, c)
/// takes the value at the source point obtained by rotating (r, c) back.
template <class In>
std::vector<double> rotate_image8(const In& img, double degrees) {
  const double t = degrees * 3.14159265358979323846 / 180.0;
  const double ct = std::cos(t), st = std::sin(t);
  auto at = [&](int r, int c) -> double {
    if (r < 0 || r > 7 || c < 0 || c > 7) return 0.0;
    return double(img[r * 8 + c]);
  };
  std::vector<double> out(64, 0.0);
  for (int r = 0; r < 8; ++r)
    for (int c = 0; c < 8; ++c) {
      // (x, y) = (c - 3.5, 3.5 - r) in image coordinates with y upwards; the
      // output at angle t reads the source at angle -t.
      const double x = c - 3.5, y = 3.5 - r;
      const double xs = ct * x + st * y, ys = -st * x + ct * y;
      double cs = xs + 3.5, rs = 3.5 - ys;
      // Snap round-off so exact quarter turns map pixel centres to centres.
      if (std::abs(cs - std::round(cs)) < 1e-9) cs = std::round(cs);
      if (std::abs(rs - std::round(rs)) < 1e-9) rs = std::round(rs);
      const int r0 = int(std::floor(rs)), c0 = int(std::floor(cs));
      const double fr = rs - r0, fc = cs - c0;
      out[std::size_t(r * 8 + c)] = (1 - fr) * ((1 - fc) * at(r0, c0) + fc * at(r0, c0 + 1)) +
                                    fr * ((1 - fc) * at(r0 + 1, c0) + fc * at(r0 + 1, c0 + 1));
    }
  return out;
}

/// A deterministic random permutation of 0..n-1 (Fisher-Yates on `rng`).
inline std::vector<Index> permutation(Index n, Rng rng) {
  std::vector<Index> p(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) p[std::size_t(i)] = i;
  for (Index i = n - 1; i > 0; --i) std::swap(p[std::size_t(i)], p[std::size_t(rng.below(std::uint64_t(i + 1)))]);
  return p;
}

// ---------------------------------------------------------------- methods

/// The adapter kinds, in the order the experiments report them.
inline const std::vector<AdapterKind>& all_adapter_kinds() {
  static const std::vector<AdapterKind> k = {AdapterKind::None,       AdapterKind::Lora, AdapterKind::Colora,
                                             AdapterKind::GlobalLora, AdapterKind::Ffa,  AdapterKind::Fedsa};
  return k;
}

/// Parses a comma-separated method list ("all" = every name in `known`).
inline std::vector<std::string> parse_method_list(const std::vector<std::string>& given,
                                                  const std::vector<std::string>& known) {
  std::vector<std::string> out;
  for (const auto& m : given) {
    if (m == "all") {
      for (const auto& k : known)
        if (std::find(out.begin(), out.end(), k) == out.end()) out.push_back(k);
      continue;
    }
    if (std::find(known.begin(), known.end(), m) == known.end()) {
      std::string all;
      for (const auto& k : known) all += (all.empty() ? "" : ",") + k;
      throw cli::UsageError("--methods: unknown method '" + m + "' (known: " + all + ", all)");
    }
    if (std::find(out.begin(), out.end(), m) == out.end()) out.push_back(m);
  }
  if (out.empty()) throw cli::UsageError("--methods needs at least one method");
  return out;
}

/// ||sin Theta||_F / sqrt(r) between the row spaces of A (r x p) and A* (in
/// [0, 1]; 0 = same subspace, 1 = orthogonal).
template <class M1, class M2>
double row_dist(const M1& A, const M2& A_star) {
  const auto d = row_space_distance(A, A_star);
  return d.frobenius / std::sqrt(double(A_star.rows()));
}
/// The same for column spaces (B is q x r).
template <class M1, class M2>
double col_dist(const M1& B, const M2& B_star) {
  const auto d = subspace_distance(B, B_star);
  return d.frobenius / std::sqrt(double(B_star.cols()));
}

/// Distances of one adapted Linear's learned factors to the teacher's shared
/// A* (r x p) and B* (q x r): {dist_A, dist_B}; NaN where not learned (ffa's
/// frozen A, a B still exactly 0) or not defined (none). Personal factors
/// (lora's A_i, B_i, fedsa's B_i) are averaged over tasks.
template <class S>
std::pair<double, double> adapter_distances(const nn::Linear<S>& L, const Matrix<double>& A_star,
                                            const Matrix<double>& B_star) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const AdapterKind k = L.spec().kind;
  if (k == AdapterKind::None) return {nan, nan};
  auto dist_b = [&](const Matrix<S>& B) { return B.norm() > 0 ? col_dist(B, B_star) : nan; };
  double da = nan, db = nan;
  if (k == AdapterKind::Lora) {
    da = db = 0;
    for (int t = 0; t < L.num_tasks(); ++t) {
      da += row_dist(L.As[std::size_t(t)].value, A_star);
      db += dist_b(L.Bs[std::size_t(t)].value);
    }
    return {da / L.num_tasks(), db / L.num_tasks()};
  }
  if (k != AdapterKind::Ffa) da = row_dist(L.A.value, A_star);
  if (k == AdapterKind::Fedsa) {
    db = 0;
    for (int t = 0; t < L.num_tasks(); ++t) db += dist_b(L.Bs[std::size_t(t)].value);
    db /= L.num_tasks();
  } else {
    db = dist_b(L.B.value);
  }
  return {da, db};
}

// ---------------------------------------------------------------- statistics

/// Sample standard deviation of the finite entries (NaN for fewer than 2).
inline double sample_sd(const std::vector<double>& v) {
  double s = 0;
  long n = 0;
  for (double x : v)
    if (std::isfinite(x)) {
      s += x;
      ++n;
    }
  if (n < 2) return std::numeric_limits<double>::quiet_NaN();
  const double m = s / double(n);
  double ss = 0;
  for (double x : v)
    if (std::isfinite(x)) ss += (x - m) * (x - m);
  return std::sqrt(ss / double(n - 1));
}

/// Mean of the finite entries (NaN if none).
inline double finite_mean(const std::vector<double>& v) {
  double s = 0;
  long n = 0;
  for (double x : v)
    if (std::isfinite(x)) {
      s += x;
      ++n;
    }
  return n ? s / double(n) : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace exp
}  // namespace colora
