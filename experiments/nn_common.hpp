// Shared helpers of the network experiments (nn-teacher, nn-digits;
// docs/nn-experiments.md): the digits data loader, bilinear image rotation,
// the list of adapter methods, subspace distances of learned adapters, the
// selection flags, the method loop (run_methods: every method goes through the
// library's nn::fit_selected, colora/nn/selection.hpp) and the summaries over
// units (tasks / users) and trials. Experiment code, not library code: it may
// throw std::runtime_error with a message for the user.
#pragma once

#include <colora/core/adapter.hpp>
#include <colora/core/config.hpp>
#include <colora/core/errors.hpp>
#include <colora/core/random.hpp>
#include <colora/core/subspace.hpp>
#include <colora/nn/nn.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <new>
#include <functional>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "cli.hpp"
#include "stats.hpp"

namespace colora {
namespace exp {

// ---------------------------------------------------------------- digits data

/// The UCI optical digits (data/digits.csv): n images of 8 x 8 pixels,
/// row-major, values 0..16, and their labels 0..9.
struct Digits {
  Matrix<double> X;         ///< n x 64, raw pixel values 0..16
  std::vector<int> labels;  ///< n labels in 0..9
};

/// Where nn-digits looks for digits.csv when --data is not given, first match:
/// the directory in the environment variable COLORA_DATA_DIR; <prefix>/share/colora
/// next to an installed program (<prefix>/bin/colora, found through
/// /proc/self/exe); the source tree's data/ the program was built from.
inline std::string default_digits_path() {
  namespace fs = std::filesystem;
  if (const char* env = std::getenv("COLORA_DATA_DIR"); env && *env) return std::string(env) + "/digits.csv";
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path installed = exe.parent_path().parent_path() / "share" / "colora" / "digits.csv";
    if (fs::is_regular_file(installed, ec)) return installed.string();
  }
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
inline std::vector<Index> permutation(Index n, Rng rng) { return nn::shuffled_indices(n, rng); }

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

// ---------------------------------------------------------------- PEFT export

/// The --export-peft DIR flag of nn-teacher and nn-digits ("" = off).
inline std::string export_peft_flag(cli::Args& args) {
  return args.str("export-peft", "",
                  "write the trained adapters of trial 0 at the reference point as PEFT LoRA directories "
                  "DIR/<method>/user_<i>/, plus DIR/<method>/colora_shared.safetensors and colora_cores.safetensors "
                  "(docs/io.md)");
}

/// Writes every user's adapter of `model` under dir/<method>/ (nn::export_peft_users
/// with the colora factor files); a model without adapters writes nothing.
template <class Model>
void export_peft_method(const Model& model, const std::string& dir, const std::string& method) {
  const auto targets = nn::peft_targets(model);
  if (targets.empty()) return;
  nn::PeftOptions opt;
  opt.write_factors = true;
  nn::export_peft_users(targets, dir + "/" + method, opt);
}

// ---------------------------------------------------------------- statistics

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

/// Sample standard deviation of the finite entries (NaN for fewer than 2).
inline double sample_sd(const std::vector<double>& v) {
  long n = 0;
  for (double x : v) n += std::isfinite(x) ? 1 : 0;
  if (n < 2) return std::numeric_limits<double>::quiet_NaN();
  const double m = finite_mean(v);
  double ss = 0;
  for (double x : v)
    if (std::isfinite(x)) ss += (x - m) * (x - m);
  return std::sqrt(ss / double(n - 1));
}

// ---------------------------------------------------------------- model selection

// The validation split and the selection rule are the library's
// (colora/nn/selection.hpp); these names are kept for the experiment code and
// tests/test_nn_experiments.cpp.
using NnSelectionOptions = nn::SelectionOptions;
using NnSelection = nn::Selection;
using TrainValSplit = nn::TrainValSplit;
using nn::fit_selected;
using nn::split_train_val;
using nn::take_examples;
using nn::validation_count;

/// Trains `model` on `data` (o.max_iterations, o.eval_every) keeping the
/// parameters of the evaluation with the lowest validation loss, the initial
/// state included (nn::StoreBest), stopping after `o.patience` evaluations
/// without improvement (nn::EarlyStopAtMinLoss; 0 = never). Returns {best
/// iteration, best loss}; `model` then holds those parameters.
template <class Model>
std::pair<int, double> train_keep_best(Model& model, const std::vector<nn::TaskData<typename Model::Scalar>>& data,
                                       const nn::TrainerOptions& o, bool& numerical_issue) {
  nn::TrainerOptions to = o;
  to.patience = 0;
  nn::Trainer<Model> trainer(model, data, to);
  nn::EarlyStopAtMinLoss stop(o.patience);
  nn::StoreBest<typename Model::Scalar> keep;
  numerical_issue |= trainer.run(stop, keep).status == Status::NumericalIssue;
  return {keep.best_iteration(), keep.best_loss()};
}

// ---------------------------------------------------------------- method loop and summaries

/// What the selection rule chose for one (point, method) over the trials: the
/// mean and 95 % t-interval of the selected iteration count, learning rate and
/// personal learning-rate scale (NaN, count 0, for a method without personal
/// parameters).
struct SelectionSummary {
  MeanInterval iterations, lr, personal_ratio;
};
inline SelectionSummary summarize_selection(const std::vector<nn::Selection>& per_trial) {
  std::vector<double> it, lr, pr;
  for (const nn::Selection& s : per_trial) {
    it.push_back(double(s.iteration));
    lr.push_back(s.lr);
    pr.push_back(s.personal_ratio);
  }
  return {mean_interval(it), mean_interval(lr), mean_interval(pr)};
}
/// Its three CSV rows `sweep,value,method,selected_*,trials,mean,ci_low,ci_high,NaN`.
template <class Table>
void selection_rows(Table& table, const std::string& sweep, double value, const std::string& method,
                    const SelectionSummary& s) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::pair<const char*, const MeanInterval*> rows[] = {{"selected_iterations", &s.iterations},
                                                              {"selected_lr", &s.lr},
                                                              {"selected_personal_lr_scale", &s.personal_ratio}};
  for (const auto& r : rows)
    table.row() << sweep << value << method << r.first << r.second->count << r.second->mean << r.second->low
                << r.second->high << nan;
}

/// Per method, per unit (task / user): the metrics `evaluate` returns.
using UnitMetrics = std::vector<std::vector<double>>;  ///< [metric][unit]
struct NnOutcome {
  UnitMetrics metrics;
  nn::Selection selection;
};

/// The method loop both experiments share: for every method, build its
/// student with `make(method)` (a callable returning a Model), fit it with
/// nn::fit_selected (method `none` is not trained), then `evaluate(model,
/// method)` returns the per-unit test metrics. A non-finite training value
/// is reported on stderr as a warning naming `program` and the method.
template <class Model, class MakeFor, class Evaluate>
std::vector<NnOutcome> run_methods(const char* program, const std::vector<std::string>& methods, const MakeFor& make,
                                   const std::vector<nn::TaskData<typename Model::Scalar>>& train,
                                   const nn::TrainerOptions& o, const nn::SelectionOptions& sel, const Rng& split_rng,
                                   const Evaluate& evaluate) {
  std::vector<NnOutcome> out;
  for (std::size_t mi = 0; mi < methods.size(); ++mi) {
    NnOutcome r;
    const std::string& method = methods[mi];
    auto build = [&] { return make(method); };
    if (method == "none") {
      Model m = build();
      r.metrics = evaluate(m, method);
    } else {
      Model m = nn::fit_selected<Model>(build, train, o, sel, split_rng, r.selection);
      if (r.selection.numerical_issue)
        std::fprintf(stderr, "%s: warning: %s stopped on a non-finite value during training\n", program,
                     method.c_str());
      r.metrics = evaluate(m, method);
    }
    out.push_back(std::move(r));
  }
  return out;
}

/// Summary of one metric of one method at one sweep point over trials: the
/// per-trial mean over units, its mean and 95 % t-interval over trials, and
/// the spread (sd) over units averaged over trials.
struct TrialSummary {
  MeanInterval ci;
  double unit_sd = std::numeric_limits<double>::quiet_NaN();
};

/// `per_trial[t]` = the per-unit values of trial t.
inline TrialSummary summarize_trials(const std::vector<std::vector<double>>& per_trial) {
  std::vector<double> means, sds;
  for (const auto& v : per_trial) {
    means.push_back(finite_mean(v));
    sds.push_back(sample_sd(v));
  }
  TrialSummary s;
  s.ci = mean_interval(means);
  s.unit_sd = finite_mean(sds);
  return s;
}

/// The paired per-trial difference mean(a[t]) - mean(b[t]) over trials:
/// mean and 95 % t-interval.
inline MeanInterval paired_difference(const std::vector<std::vector<double>>& a,
                                      const std::vector<std::vector<double>>& b) {
  std::vector<double> d;
  for (std::size_t t = 0; t < a.size() && t < b.size(); ++t) d.push_back(finite_mean(a[t]) - finite_mean(b[t]));
  return mean_interval(d);
}

/// Runs f(run) for run = 0..runs-1 in parallel (OpenMP, dynamic), collecting
/// exceptions; throws std::runtime_error naming the first failed run
/// (`what` + index) after all runs.
template <class F>
void parallel_runs(long runs, int threads, const std::string& what, exp::Progress* progress, const F& f) {
  std::vector<std::string> errors(static_cast<std::size_t>(runs));
  detail::parallel_for(runs, threads, [&](Index run) {
    try {
      f(long(run));
    } catch (const std::bad_alloc&) {
      throw;  // stops the command with its own message
    } catch (const std::exception& e) {
      errors[std::size_t(run)] = e.what();
    }
    if (progress) progress->tick();
  });
  for (long run = 0; run < runs; ++run)
    if (!errors[std::size_t(run)].empty())
      throw std::runtime_error(what + " " + std::to_string(run) + " failed: " + errors[std::size_t(run)]);
}

/// Runs `f(point, trial)` for every (point, trial) pair into
/// results[point * trials + trial], in parallel (parallel_runs). A point whose
/// `keys` entry equals an earlier point's (the reference point, which every
/// sweep contains) is computed once and its results copied: the runs depend
/// only on the point's parameters and the trial. `label` names the progress
/// line on stderr.
template <class Key, class Result, class F>
void run_points(const std::vector<Key>& keys, long trials, int threads, const std::string& label,
                std::vector<Result>& results, const F& f) {
  const long np = long(keys.size());
  std::vector<long> first(static_cast<std::size_t>(np));
  for (long pi = 0; pi < np; ++pi)
    first[std::size_t(pi)] = long(std::find(keys.begin(), keys.end(), keys[std::size_t(pi)]) - keys.begin());
  std::vector<long> todo;  // run indices of first occurrences
  for (long run = 0; run < np * trials; ++run)
    if (first[std::size_t(run / trials)] == run / trials) todo.push_back(run);
  results.assign(static_cast<std::size_t>(np * trials), Result{});
  Progress progress(label, long(todo.size()));
  parallel_runs(long(todo.size()), threads, "run", &progress, [&](long j) {
    const long run = todo[std::size_t(j)];
    results[std::size_t(run)] = f(run / trials, run % trials);
  });
  for (long run = 0; run < np * trials; ++run) {
    const long pi = run / trials, src = first[std::size_t(pi)];
    if (src != pi) results[std::size_t(run)] = results[std::size_t(src * trials + run % trials)];
  }
}

/// The training and selection flags both experiments share (--iters, --lr,
/// --personal-lr-scale, --val-fraction, --eval-every, --patience, --refit).
inline nn::SelectionOptions parse_selection(cli::Args& args, int default_iters, const std::string& default_lrs,
                                            const std::string& default_refit, int default_patience) {
  nn::SelectionOptions s;
  s.max_iterations = int(
      args.integer("iters", default_iters,
                   "maximum training iterations per learning rate (the same budget for every method)", 0, 100000000));
  s.lrs = args.reals("lr", default_lrs,
                     "AdamW learning rates tried per method; the one with the lowest validation loss is kept", 1e-12,
                     1e3);
  s.personal_ratios = args.reals("personal-lr-scale", "1,0.1",
                                 "personal learning rate = this times the shared one (list: tried like --lr, by "
                                 "every method that trains personal parameters)",
                                 1e-6, 1e6);
  s.val_fraction = args.real("val-fraction", 0.2,
                             "share of each task's own training examples held out for validation (at least 1 when "
                             "n >= 2; 0 = no selection, train --iters on all)",
                             0, 0.9);
  s.eval_every = int(args.integer("eval-every", 5, "validation evaluation every this many iterations", 1, 100000000));
  s.patience = int(args.integer("patience", default_patience,
                                "stop a learning rate after this many evaluations without a lower validation loss "
                                "(0 = run all --iters)",
                                0, 100000000));
  s.refit = args.choice("refit", default_refit, {"yes", "no"},
                        "after selection retrain on all the task's examples for the selected iterations (yes) or "
                        "keep the best-validation parameters (no)") == "yes";
  return s;
}

/// One line describing the selection rule, for the printed header.
inline std::string describe_selection(const nn::SelectionOptions& s) {
  auto join = [](const std::vector<double>& v) {
    std::string out;
    for (double x : v) out += (out.empty() ? "" : ",") + cli::Args::format(x);
    return out;
  };
  return "iters<=" + std::to_string(s.max_iterations) + " lr in {" + join(s.lrs) + "} personal x{" +
         join(s.personal_ratios) + "}" + ", val-fraction " + cli::Args::format(s.val_fraction) + ", eval every " +
         std::to_string(s.eval_every) + ", patience " + std::to_string(s.patience) + ", refit " +
         (s.refit ? "yes" : "no");
}

/// One value of a sweep list given to --`flag`: a number (an integer if
/// `integer`) in [lo, hi], else cli::UsageError naming the flag and the value.
inline double parse_sweep_value(const std::string& flag, const std::string& s, double lo, double hi, bool integer) {
  std::size_t used = 0;
  double v = 0;
  try {
    v = std::stod(s, &used);
  } catch (...) {
    used = 0;
  }
  if (used != s.size() || s.empty() || !(v >= lo && v <= hi) || (integer && v != std::floor(v)))
    throw cli::UsageError("flag --" + flag + ": '" + s + "' is not " + (integer ? "an integer" : "a number") + " in [" +
                          cli::Args::format(lo) + ", " + cli::Args::format(hi) + "]");
  return v;
}

}  // namespace exp
}  // namespace colora
