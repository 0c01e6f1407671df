// Bring-your-own-data: a directory of .npy files as a multi-task regression
// problem ((M1), docs/io.md), and the same layout written back (docs/io.md).
//
//   dir/X_0.npy ... X_<k-1>.npy            n_i x p inputs           (required, X_0 at least)
//   dir/Y_0.npy ... Y_<k-1>.npy            n_i x q outputs, or 1-D n_i (q = 1)  (required)
//   dir/W0.npy                             q x p frozen base         (optional)
//   dir/X_test_<i>.npy, dir/Y_test_<i>.npy held-out split of task i  (optional, both or neither)
//
// Other names in the directory are ignored, whatever they are; a name of the
// layout must be a regular file (or a symlink to one). Every problem with the
// content is a std::runtime_error naming the file (and, for shapes, the
// dimension, the expected and the found value).
#pragma once

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "colora/core/errors.hpp"
#include "colora/io/atomic_file.hpp"
#include "colora/io/npy.hpp"
#include "colora/regression/data.hpp"

namespace colora {
namespace io {

/// "S_3": the file stem of the i-th matrix of a family.
inline std::string indexed_name(const std::string& stem, Index i) { return stem + "_" + std::to_string(i); }

namespace detail {

namespace fs = std::filesystem;

[[noreturn]] inline void dir_fail(const char* where, const fs::path& dir, const std::string& why) {
  throw std::runtime_error(std::string(where) + ": '" + dir.string() + "': " + why);
}

/// The task files of a directory, by role and task index.
struct TaskFileSet {
  std::map<Index, std::string> X, Y, X_test, Y_test;  ///< index -> file name
  bool has_W0 = false;
};

/// Classifies a file name of the layout: returns false for names outside it.
/// Throws for names that are in the layout but malformed (leading zeros).
inline bool classify_task_file(const std::string& file, TaskFileSet& set, const char* where, const fs::path& dir) {
  const std::string ext = ".npy";
  if (file.size() <= ext.size() || file.compare(file.size() - ext.size(), ext.size(), ext) != 0) return false;
  const std::string stem = file.substr(0, file.size() - ext.size());
  if (stem == "W0") {
    set.has_W0 = true;
    return true;
  }
  // Longest prefixes first: "X_test_" before "X_".
  const std::pair<const char*, std::map<Index, std::string>*> families[] = {{"X_test_", &set.X_test},
                                                                            {"Y_test_", &set.Y_test},
                                                                            {"X_", &set.X},
                                                                            {"Y_", &set.Y}};
  for (const auto& fam : families) {
    const std::string prefix = fam.first;
    if (stem.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string digits = stem.substr(prefix.size());
    if (digits.empty() || digits.size() > 9 ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return false;  // e.g. "X_train.npy": not ours
    if (digits.size() > 1 && digits[0] == '0')
      dir_fail(where, dir,
               file + ": task numbers must not have leading zeros (name the files " + prefix + "0.npy, " + prefix +
                   "1.npy, ...)");
    (*fam.second)[static_cast<Index>(std::stoll(digits))] = file;
    return true;
  }
  return false;
}

/// Fails unless `p` (a layout name) is a regular file after following
/// symlinks, naming what it is instead. Never opens it (a FIFO would block).
inline void check_regular_file(const fs::path& p, const std::string& file, const char* where, const fs::path& dir) {
  std::error_code ec, lec;
  const fs::file_status st = fs::status(p, ec);  // follows symlinks
  if (!ec && st.type() == fs::file_type::regular) return;
  const bool link = fs::is_symlink(fs::symlink_status(p, lec));
  if (ec)
    dir_fail(where, dir,
             file + (link ? " is a symbolic link that cannot be resolved (loop or dangling)"
                          : " cannot be accessed: " + ec.message()));
  const fs::file_type t = st.type();
  const std::string what = t == fs::file_type::directory ? "a directory"
                           : t == fs::file_type::fifo    ? "a FIFO (named pipe)"
                           : t == fs::file_type::socket  ? "a socket"
                           : t == fs::file_type::block || t == fs::file_type::character
                               ? "a device (block or character special file)"
                               : "something other than a regular file";
  dir_fail(where, dir, file + " is " + (link ? "a symbolic link to " + what : what) + " (expected a regular file)");
}

/// Reads dir/file and refuses NaN/Inf, naming the file and the position.
template <class Scalar>
Matrix<Scalar> read_task_file(const fs::path& dir, const std::string& file, const char* where) {
  Matrix<Scalar> m = read_npy<Scalar>((dir / file).string());
  for (Index j = 0; j < m.cols(); ++j)
    for (Index i = 0; i < m.rows(); ++i)
      if (!std::isfinite(m(i, j)))
        dir_fail(where, dir,
                 colora::detail::concat(file, ": non-finite value ", m(i, j), " at row ", i, ", column ", j,
                                        " (colora needs finite data)"));
  return m;
}

}  // namespace detail

/// Loads a multi-task regression problem from `dir` (layout above) and
/// validates it. Values are converted to Scalar from the files' float32 or
/// float64. Y files may be 1-D (read as n_i x 1); X and W0 must be 2-D.
/// Throws std::runtime_error naming the directory and the file on: a missing
/// directory, no X_0.npy, gaps in the numbering, an X_i without Y_i (or the
/// reverse), an X_test_i without Y_test_i (or the reverse), a test split for
/// a task that does not exist, a layout name that is not a regular file (a
/// directory, FIFO, socket, device or unresolvable symlink; never opened),
/// any .npy format problem, any shape mismatch, and NaN/Inf values (validate()).
template <class Scalar>
RegressionProblem<Scalar> load_regression_directory(const std::string& dir_name) {
  namespace fs = std::filesystem;
  const char* where = "colora::io::load_regression_directory";
  const fs::path dir(dir_name);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) detail::dir_fail(where, dir, "is not a directory (or cannot be accessed)");

  detail::TaskFileSet files;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string file = it->path().filename().string();
    if (detail::classify_task_file(file, files, where, dir)) detail::check_regular_file(it->path(), file, where, dir);
  }
  if (ec) detail::dir_fail(where, dir, "cannot list the directory: " + ec.message());

  using colora::detail::concat;
  if (!files.X.count(0)) {
    if (files.X.empty())
      detail::dir_fail(where, dir, "X_0.npy is missing (expected X_0.npy, Y_0.npy, X_1.npy, Y_1.npy, ...)");
    detail::dir_fail(where, dir,
                     concat("X_0.npy is missing but ", files.X.begin()->second,
                            " exists (task files are numbered from 0)"));
  }
  const Index k = static_cast<Index>(files.X.size());
  // Contiguous numbering: X_0 .. X_{k-1}; the first hole names the gap.
  for (Index i = 0; i < k; ++i)
    if (!files.X.count(i))
      detail::dir_fail(where, dir,
                       concat("X_", i, ".npy is missing but ", files.X.rbegin()->second,
                              " exists (task files must be numbered 0..k-1 without gaps)"));
  for (Index i = 0; i < k; ++i)
    if (!files.Y.count(i)) detail::dir_fail(where, dir, concat("Y_", i, ".npy is missing (X_", i, ".npy exists)"));
  for (const auto& y : files.Y)
    if (!files.X.count(y.first))
      detail::dir_fail(where, dir,
                       concat(y.second, " has no matching X_", y.first, ".npy (there are k = ", k, " tasks)"));
  for (const auto& xt : files.X_test) {
    if (xt.first >= k)
      detail::dir_fail(where, dir,
                       concat(xt.second, " is for task ", xt.first, " but there are only k = ", k, " tasks"));
    if (!files.Y_test.count(xt.first))
      detail::dir_fail(where, dir, concat("Y_test_", xt.first, ".npy is missing (", xt.second, " exists)"));
  }
  for (const auto& yt : files.Y_test)
    if (!files.X_test.count(yt.first))
      detail::dir_fail(where, dir, concat("X_test_", yt.first, ".npy is missing (", yt.second, " exists)"));

  auto read_x = [&](const std::string& file) {
    const NpyHeader h = inspect_npy((dir / file).string());
    if (h.ndim() != 2)
      detail::dir_fail(where, dir,
                       concat(file, " is 1-D (shape (", h.rows(),
                              ",)); inputs must be 2-D n x p (use x.reshape(-1, 1) for p = 1)"));
    return detail::read_task_file<Scalar>(dir, file, where);
  };
  auto shape_error = [&](const std::string& file, const char* dim, Index expected, const std::string& because,
                         Index got) {
    detail::dir_fail(where, dir, concat(file, ": ", dim, " is ", got, " but expected ", expected, " (", because, ")"));
  };

  RegressionProblem<Scalar> pb;
  pb.tasks.resize(static_cast<std::size_t>(k));
  Index p = 0, q = 0;
  for (Index i = 0; i < k; ++i) {
    auto& t = pb.tasks[std::size_t(i)];
    const std::string xf = files.X.at(i), yf = files.Y.at(i);
    t.X = read_x(xf);
    t.Y = detail::read_task_file<Scalar>(dir, yf, where);  // 1-D reads as n x 1
    if (i == 0) {
      p = t.X.cols();
      q = t.Y.cols();
      if (p == 0) detail::dir_fail(where, dir, xf + ": has 0 columns (the input dimension p must be positive)");
      if (q == 0) detail::dir_fail(where, dir, yf + ": has 0 columns (the output dimension q must be positive)");
    }
    if (t.X.rows() == 0) detail::dir_fail(where, dir, xf + ": has 0 rows (a task needs at least one sample)");
    if (t.X.cols() != p)
      shape_error(xf, "the number of columns (p)", p, "X_0.npy has p = " + std::to_string(p), t.X.cols());
    if (t.Y.rows() != t.X.rows())
      shape_error(yf, "the number of rows (samples)", t.X.rows(), xf + " has " + std::to_string(t.X.rows()) + " rows",
                  t.Y.rows());
    if (t.Y.cols() != q)
      shape_error(yf, "the number of columns (q)", q, "Y_0.npy has q = " + std::to_string(q), t.Y.cols());
    if (files.X_test.count(i)) {
      const std::string xtf = files.X_test.at(i), ytf = files.Y_test.at(i);
      t.X_test = read_x(xtf);
      t.Y_test = detail::read_task_file<Scalar>(dir, ytf, where);
      if (t.X_test.cols() != p)
        shape_error(xtf, "the number of columns (p)", p, "X_0.npy has p = " + std::to_string(p), t.X_test.cols());
      if (t.Y_test.rows() != t.X_test.rows())
        shape_error(ytf, "the number of rows (samples)", t.X_test.rows(),
                    xtf + " has " + std::to_string(t.X_test.rows()) + " rows", t.Y_test.rows());
      if (t.Y_test.cols() != q)
        shape_error(ytf, "the number of columns (q)", q, "Y_0.npy has q = " + std::to_string(q), t.Y_test.cols());
    }
  }
  if (files.has_W0) {
    const NpyHeader h = inspect_npy((dir / "W0.npy").string());
    if (h.ndim() != 2)
      detail::dir_fail(where, dir, concat("W0.npy is 1-D (shape (", h.rows(), ",)); W0 must be 2-D q x p"));
    pb.W0 = detail::read_task_file<Scalar>(dir, "W0.npy", where);
    if (pb.W0.rows() != q || pb.W0.cols() != p)
      detail::dir_fail(where, dir,
                       concat("W0.npy: shape is ", pb.W0.rows(), " x ", pb.W0.cols(), " but expected q x p = ", q,
                              " x ", p, " (q from Y_0.npy, p from X_0.npy)"));
  }
  // Shapes and values are checked above; validate() is the final guard.
  try {
    pb.validate(where);
  } catch (const std::invalid_argument& e) {
    detail::dir_fail(where, dir, e.what());
  }
  return pb;
}

/// Writes `pb` to `dir` in the layout above (creating the directory): X_i,
/// Y_i (always 2-D), W0 if non-empty, X_test_i / Y_test_i for tasks with a
/// test split. Each file is written atomically; afterwards, layout files left
/// over from an earlier, larger save (X_7.npy when k = 3, a stale W0.npy,
/// ...) are removed so that loading gives back exactly `pb`. Other files are
/// left alone. The planted truth, if any, is not written.
/// Throws std::invalid_argument if `pb` is invalid, std::runtime_error on I/O.
template <class Scalar>
void save_regression_directory(const std::string& dir_name, const RegressionProblem<Scalar>& pb,
                               NpyOrder order = NpyOrder::C) {
  namespace fs = std::filesystem;
  const char* where = "colora::io::save_regression_directory";
  pb.validate(where);
  const fs::path dir(dir_name);
  detail::create_directory(dir.string(), where);

  std::set<std::string> written;
  auto put = [&](const std::string& file, const Matrix<Scalar>& m) {
    write_npy((dir / file).string(), m, order);
    written.insert(file);
  };
  for (Index i = 0; i < pb.num_tasks(); ++i) {
    const auto& t = pb.tasks[std::size_t(i)];
    put(indexed_name("X", i) + ".npy", t.X);
    put(indexed_name("Y", i) + ".npy", t.Y);
    if (t.test_samples() > 0) {
      put(indexed_name("X_test", i) + ".npy", t.X_test);
      put(indexed_name("Y_test", i) + ".npy", t.Y_test);
    }
  }
  if (pb.W0.size() != 0) put("W0.npy", pb.W0);

  // Remove stale layout files so the directory reads back as exactly pb.
  std::vector<fs::path> stale;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string file = it->path().filename().string();
    detail::TaskFileSet probe;
    bool ours = false;
    try {
      ours = detail::classify_task_file(file, probe, where, dir);
    } catch (const std::runtime_error&) {
      ours = true;  // X_01.npy and the like would make loading fail
    }
    if (ours && !written.count(file)) stale.push_back(it->path());
  }
  if (ec) detail::dir_fail(where, dir, "cannot list the directory: " + ec.message());
  for (const auto& f : stale) {
    std::error_code rm;
    fs::remove(f, rm);
    if (rm) detail::dir_fail(where, dir, "cannot remove the stale file " + f.filename().string() + ": " + rm.message());
  }
}

/// Writes named matrices to `dir` (created if needed) as <name>.npy, each
/// atomically; for the results of `colora fit`:
///   save_matrices(out, {{"A", A}, {"B", B}, {indexed_name("S", 0), S[0]}, ...});
/// Names must be non-empty, use only letters, digits, '_', '-' and '.', not
/// start with '.', and be distinct (std::invalid_argument otherwise, before
/// anything is written). std::runtime_error on I/O problems.
template <class Scalar>
void save_matrices(const std::string& dir_name, const std::vector<std::pair<std::string, Matrix<Scalar>>>& named,
                   NpyOrder order = NpyOrder::C) {
  namespace fs = std::filesystem;
  const char* where = "colora::io::save_matrices";
  std::set<std::string> seen;
  for (std::size_t j = 0; j < named.size(); ++j) {
    const std::string& name = named[j].first;
    const bool ok_chars = std::all_of(name.begin(), name.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
             c == '.';
    });
    colora::detail::require(!name.empty() && ok_chars && name[0] != '.', where, "matrix ", j, ": name '", name,
                            "' is not a plain file stem (letters, digits, '_', '-', '.'; not starting with '.')");
    colora::detail::require(seen.insert(name).second, where, "matrix ", j, ": name '", name, "' is used twice");
  }
  const fs::path dir(dir_name);
  detail::create_directory(dir.string(), where);
  for (const auto& nm : named) write_npy((dir / (nm.first + ".npy")).string(), nm.second, order);
}

}  // namespace io
}  // namespace colora
