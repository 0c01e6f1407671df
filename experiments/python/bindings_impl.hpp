// The scalar-typed half of the module (bindings.hpp): included by
// bindings_double.cpp and bindings_float.cpp, each instantiating one type.
#pragma once

#include <Python.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <utility>

#include "bindings.hpp"
#include "colora/regression/oracle.hpp"

namespace colora {
namespace python {

/// What a copy needs to know about an array, read with the GIL held; the copy
/// itself (copy_view) touches no Python object and runs without the GIL.
/// `keep` holds the array (or NumPy's float64 conversion of an integer array).
struct ArrayView {
  py::array keep;
  const char* data = nullptr;
  bool is_double = true;  ///< element type: double, else float
  Index rows = 0, cols = 0;
  py::ssize_t s0 = 0, s1 = 0;  ///< byte strides of rows and columns
};

/// The view of an array from as_numeric_array() (ndim 2, or ndim 1 as one
/// column when `allow_1d`); `what` names it in errors.
inline ArrayView view_of(const py::array& a, const std::string& what, bool allow_1d) {
  if (a.ndim() != 2 && !(allow_1d && a.ndim() == 1))
    throw std::invalid_argument(what + ": expected a " + (allow_1d ? "1-D or 2-D" : "2-D") + " array, got " +
                                std::to_string(a.ndim()) + " dimensions");
  ArrayView v;
  const char kind = a.dtype().kind();
  const auto size = a.dtype().itemsize();
  // Integers and bools (as_numeric_array() let them through): NumPy converts them to float64.
  v.keep = kind == 'f' ? a : py::array(py::array_t<double, py::array::forcecast>::ensure(a));
  v.is_double = !(kind == 'f' && size == 4);
  v.data = static_cast<const char*>(v.keep.data());
  v.rows = Index(a.shape(0));
  v.cols = a.ndim() == 2 ? Index(a.shape(1)) : 1;
  const py::ssize_t item = v.is_double ? 8 : 4;
  v.s0 = v.keep.strides(0);
  v.s1 = a.ndim() == 2 ? v.keep.strides(1) : item;
  return v;
}

template <class T, class Scalar>
void copy_typed(const ArrayView& a, Matrix<Scalar>& M) {
  const auto item = py::ssize_t(sizeof(T));
  const Index rows = a.rows, cols = a.cols;
  const py::ssize_t s0 = a.s0, s1 = a.s1;
  M.resize(rows, cols);
  if (M.size() == 0) return;
  const bool aligned = reinterpret_cast<std::uintptr_t>(a.data) % alignof(T) == 0;
  const T* data = reinterpret_cast<const T*>(a.data);
  if (aligned && s1 == item && s0 == cols * item) {  // C order (NumPy's default): one transposing pass
    M = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(data, rows, cols)
            .template cast<Scalar>();
    return;
  }
  if (aligned && s0 == item && s1 == rows * item) {  // Fortran order: the solver's own layout
    M = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>>(data, rows, cols).template cast<Scalar>();
    return;
  }
  if (aligned && s0 > 0 && s1 > 0 && s0 % item == 0 && s1 % item == 0) {
    using Map = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>, Eigen::Unaligned,
                           Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>>;
    const Map m(data, rows, cols, Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>(s1 / item, s0 / item));
    M = m.template cast<Scalar>();
    return;
  }
  // Negative, zero or odd strides, or a misaligned buffer: element by element.
  for (Index j = 0; j < cols; ++j)
    for (Index i = 0; i < rows; ++i) {
      T v;
      std::memcpy(&v, a.data + i * s0 + j * s1, sizeof(T));
      M(i, j) = Scalar(v);
    }
}

/// Copies a view into M (no Python calls: safe without the GIL).
template <class Scalar>
void copy_view(const ArrayView& a, Matrix<Scalar>& M) {
  if (a.is_double)
    copy_typed<double>(a, M);
  else
    copy_typed<float>(a, M);
}

/// An array from as_numeric_array() as a Matrix<Scalar>; `what` names it in errors.
template <class Scalar>
Matrix<Scalar> to_matrix(const py::array& a, const std::string& what, bool allow_1d) {
  Matrix<Scalar> M;
  copy_view(view_of(a, what, allow_1d), M);
  return M;
}

/// A matrix as a NumPy array that owns it (moved, not copied; Fortran order).
template <class Scalar>
py::array to_array(Matrix<Scalar> m) {
  return py::cast(std::move(m));
}

template <class Scalar>
py::list to_list(std::vector<Matrix<Scalar>> v) {
  py::list l;
  for (auto& m : v) l.append(to_array<Scalar>(std::move(m)));
  return l;
}

/// A dict item as an array (TypeError naming the key when it is missing or not numeric).
inline py::array dict_array(const py::dict& d, const char* key, const std::string& where) {
  if (!d.contains(key)) throw std::invalid_argument(where + ": missing '" + key + "'");
  return as_numeric_array(d[key], where + "['" + key + "']");
}

/// GroundTruth from the dict generate() returns (keys A, B, cores, and
/// optionally A_tasks, B_tasks, sigma, input_scales).
template <class Scalar>
GroundTruth<Scalar> to_truth(const py::dict& d) {
  const std::string w = "truth";
  GroundTruth<Scalar> t;
  t.A_shared = to_matrix<Scalar>(dict_array(d, "A", w), "truth['A']", false);
  t.B_shared = to_matrix<Scalar>(dict_array(d, "B", w), "truth['B']", false);
  if (!d.contains("cores")) throw std::invalid_argument("truth: missing 'cores'");
  const py::list cores = py::list(d["cores"]);
  const Index r = t.A_shared.rows();
  detail::require(t.B_shared.cols() == r, "truth", "B has ", t.B_shared.cols(), " columns but A has r = ", r, " rows");
  for (size_t i = 0; i < cores.size(); ++i) {
    const std::string name = "truth['cores'][" + std::to_string(i) + "]";
    t.S.push_back(to_matrix<Scalar>(as_numeric_array(cores[i], name), name, false));
    detail::require(t.S.back().rows() == t.B_shared.cols() && t.S.back().cols() == r, "truth", "task ", i,
                    ": core is ", t.S.back().rows(), " x ", t.S.back().cols(), ", expected ", t.B_shared.cols(), " x ",
                    r);
  }
  const size_t k = t.S.size();
  auto per_task = [&](const char* key, const Matrix<Scalar>& shared, TaskMatrices<Scalar>& out) {
    if (!d.contains(key) || d[key].is_none()) {
      out.assign(k, shared);
      return;
    }
    const py::list l = py::list(d[key]);
    detail::require(l.size() == k, "truth", key, " has ", l.size(), " entries for ", k, " tasks");
    for (size_t i = 0; i < k; ++i) {
      const std::string name = std::string("truth['") + key + "'][" + std::to_string(i) + "]";
      out.push_back(to_matrix<Scalar>(as_numeric_array(l[i], name), name, false));
      detail::require(out[i].rows() == shared.rows() && out[i].cols() == shared.cols(), "truth", "task ", i, ": ",
                      key, " is ", out[i].rows(), " x ", out[i].cols(), ", expected ", shared.rows(), " x ",
                      shared.cols());
    }
  };
  per_task("A_tasks", t.A_shared, t.A);
  per_task("B_tasks", t.B_shared, t.B);
  if (d.contains("sigma")) t.sigma = py::cast<double>(d["sigma"]);
  return t;
}

/// The history as a dict of arrays, one entry per IterationRecord field.
inline py::dict history_dict(const std::vector<IterationRecord>& h) {
  const size_t n = h.size();
  py::array_t<int> it{py::ssize_t(n)}, prod{py::ssize_t(n)};
  std::vector<py::array_t<double>> cols;
  const char* names[] = {"seconds", "objective", "dist_a", "dist_b", "mean_rel_err", "median_rel_err", "max_rel_err",
                         "test_mse"};
  for (size_t c = 0; c < 8; ++c) cols.emplace_back(py::ssize_t(n));
  for (size_t i = 0; i < n; ++i) {
    const auto& r = h[i];
    it.mutable_at(py::ssize_t(i)) = r.iteration;
    prod.mutable_at(py::ssize_t(i)) = r.a_step_products;
    const double v[] = {r.seconds,      r.objective,      r.dist_a,      r.dist_b,
                        r.mean_rel_err, r.median_rel_err, r.max_rel_err, r.test_mse};
    for (size_t c = 0; c < 8; ++c) cols[c].mutable_at(py::ssize_t(i)) = v[c];
  }
  py::dict d;
  d["iteration"] = it;
  for (size_t c = 0; c < 8; ++c) d[names[c]] = cols[c];
  d["a_step_products"] = prod;
  return d;
}

inline py::dict metrics_dict(const RecoveryMetrics& m) {
  py::dict d;
  d["dist_a"] = m.dist_a;
  d["dist_b"] = m.dist_b;
  d["dist_a_frob"] = m.dist_a_frob;
  d["dist_b_frob"] = m.dist_b_frob;
  d["mean_rel_err"] = m.mean_rel_err;
  d["median_rel_err"] = m.median_rel_err;
  d["max_rel_err"] = m.max_rel_err;
  d["mean_sq_err"] = m.mean_sq_err;
  d["rel_err"] = py::array_t<double>(py::ssize_t(m.rel_err.size()), m.rel_err.data());
  d["sq_err"] = py::array_t<double>(py::ssize_t(m.sq_err.size()), m.sq_err.data());
  return d;
}

/// Checks for Ctrl-C (with the GIL, from the solver's callback) and keeps
/// the Python error to raise once the fit has returned.
class InterruptWatch {
 public:
  ~InterruptWatch() {
    if (type_) {  // never raised (an exception left the fit first): drop it with the GIL
      py::gil_scoped_acquire gil;
      Py_XDECREF(type_);
      Py_XDECREF(value_);
      Py_XDECREF(trace_);
    }
  }
  /// False once a signal handler raised (the fit then stops at this iteration).
  bool keep_going() {
    if (type_) return false;
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() == 0) return true;
    PyErr_Fetch(&type_, &value_, &trace_);
    return false;
  }
  /// With the GIL: raises the kept error, if any.
  void raise_if_interrupted() {
    if (!type_) return;
    PyErr_Restore(type_, value_, trace_);
    type_ = value_ = trace_ = nullptr;
    throw py::error_already_set();
  }

 private:
  PyObject *type_ = nullptr, *value_ = nullptr, *trace_ = nullptr;
};

template <class Scalar>
py::dict fit_method(const FitArgs& args) {
  // Convert with the GIL held; then fit without it.
  RegressionProblem<Scalar> pb;
  detail::require(args.Xs.size() == args.Ys.size(), "colora.fit", "got ", args.Xs.size(), " input arrays (Xs) but ",
                  args.Ys.size(), " output arrays (Ys)");
  const bool has_test = !args.Xs_test.empty() || !args.Ys_test.empty();
  if (has_test)
    detail::require(args.Xs_test.size() == args.Xs.size() && args.Ys_test.size() == args.Xs.size(), "colora.fit",
                    "the test split has ", args.Xs_test.size(), " input and ", args.Ys_test.size(),
                    " output arrays for ", args.Xs.size(), " tasks");
  const size_t k = args.Xs.size(), per = has_test ? 4 : 2;
  std::vector<ArrayView> views;
  views.reserve(k * per);
  for (size_t i = 0; i < k; ++i) {
    const std::string idx = "[" + std::to_string(i) + "]";
    views.push_back(view_of(args.Xs[i], "Xs" + idx, false));
    views.push_back(view_of(args.Ys[i], "Ys" + idx, true));
    if (has_test) {
      views.push_back(view_of(args.Xs_test[i], "Xs_test" + idx, false));
      views.push_back(view_of(args.Ys_test[i], "Ys_test" + idx, true));
    }
  }
  if (!args.W0.is_none()) pb.W0 = to_matrix<Scalar>(as_numeric_array(args.W0, "W0"), "W0", false);
  if (!args.truth.is_none()) pb.truth = to_truth<Scalar>(py::dict(args.truth));
  pb.tasks.resize(k);
  {  // The copies, task-parallel and without the GIL (the views keep the arrays alive).
    py::gil_scoped_release nogil;
    detail::parallel_for_tasks(Index(k), args.options.num_threads, [&](Index t) {
      auto& task = pb.tasks[size_t(t)];
      const ArrayView* v = &views[size_t(t) * per];
      copy_view(v[0], task.X);
      copy_view(v[1], task.Y);
      if (has_test) {
        copy_view(v[2], task.X_test);
        copy_view(v[3], task.Y_test);
      }
    });
  }

  BaselineOptions o = args.options;
  InterruptWatch watch;
  o.callback = [&watch](const IterationRecord&) { return watch.keep_going(); };
  BaselineResult<Scalar> res;
  RecoveryMetrics metrics;
  bool have_metrics = false;
  double solver_seconds = 0;
  {
    py::gil_scoped_release nogil;
    const auto t0 = std::chrono::steady_clock::now();
    res = fit_baseline(args.method, pb, o);
    solver_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (pb.truth) {
      metrics = estimate_metrics(*pb.truth, res.estimate, o.num_threads);
      have_metrics = true;
    }
  }
  watch.raise_if_interrupted();

  py::dict d;
  d["method"] = res.method;
  d["status"] = std::string(to_string(res.status));
  d["stop_reason"] = std::string(to_string(res.stop_reason));
  d["n_iter"] = res.iterations;
  d["solver_seconds"] = solver_seconds;
  d["history"] = history_dict(res.history);
  d["warnings"] = res.warnings;
  auto& e = res.estimate;
  d["dense"] = e.dense;
  d["trainable_parameters"] = e.trainable_parameters;
  d["A"] = e.A.size() ? py::object(to_array<Scalar>(std::move(e.A))) : py::none();
  d["B"] = e.B.size() ? py::object(to_array<Scalar>(std::move(e.B))) : py::none();
  d["W0"] = e.W0.size() ? py::object(to_array<Scalar>(std::move(e.W0))) : py::none();
  py::dict shared, personal;
  if (!args.factors_only) {
    d["U"] = to_list<Scalar>(std::move(e.U));
    d["V"] = to_list<Scalar>(std::move(e.V));
    for (auto& f : e.shared) shared[py::str(f.name)] = to_array<Scalar>(std::move(f.value));
  }
  for (auto& f : e.personal) personal[py::str(f.name)] = to_list<Scalar>(std::move(f.values));
  d["shared"] = shared;
  d["personal"] = personal;
  d["metrics"] = have_metrics ? py::object(metrics_dict(metrics)) : py::none();
  return d;
}

template <class Scalar>
py::dict generate(const GeneratorOptions& options) {
  RegressionProblem<Scalar> pb;
  {
    py::gil_scoped_release nogil;
    pb = generate_regression<Scalar>(options);
  }
  py::list Xs, Ys, Xs_test, Ys_test;
  for (auto& t : pb.tasks) {
    Xs.append(to_array<Scalar>(std::move(t.X)));
    Ys.append(to_array<Scalar>(std::move(t.Y)));
    if (options.test_samples > 0) {
      Xs_test.append(to_array<Scalar>(std::move(t.X_test)));
      Ys_test.append(to_array<Scalar>(std::move(t.Y_test)));
    }
  }
  py::dict d;
  d["Xs"] = Xs;
  d["Ys"] = Ys;
  d["Xs_test"] = Xs_test;
  d["Ys_test"] = Ys_test;
  d["W0"] = pb.W0.size() ? py::object(to_array<Scalar>(std::move(pb.W0))) : py::none();
  auto& t = *pb.truth;
  py::dict truth;
  truth["A"] = to_array<Scalar>(t.A_shared);
  truth["B"] = to_array<Scalar>(t.B_shared);
  // Tasks that share the planted factor share one array (theta = 0).
  auto per_task = [](const TaskMatrices<Scalar>& m) {
    py::list l;
    std::shared_ptr<const Matrix<Scalar>> last;
    py::object last_array;
    for (size_t i = 0; i < m.size(); ++i) {
      auto p = m.shared(i);
      if (p != last) {
        last = p;
        last_array = to_array<Scalar>(*p);
      }
      l.append(last_array);
    }
    return l;
  };
  truth["A_tasks"] = per_task(t.A);
  truth["B_tasks"] = per_task(t.B);
  truth["cores"] = to_list<Scalar>(std::move(t.S));
  truth["sigma"] = t.sigma;
  truth["input_scales"] = t.input_scales.size() ? py::object(to_array<Scalar>(Matrix<Scalar>(t.input_scales)))
                                                : py::none();
  d["truth"] = truth;
  return d;
}

template <class Scalar>
py::dict recovery_metrics(const py::dict& truth, const py::array& A, const py::array& B, const py::list& cores,
                          int num_threads) {
  const GroundTruth<Scalar> t = to_truth<Scalar>(truth);
  const Matrix<Scalar> a = to_matrix<Scalar>(A, "A", false), b = to_matrix<Scalar>(B, "B", false);
  std::vector<Matrix<Scalar>> s;
  for (size_t i = 0; i < cores.size(); ++i) {
    const std::string name = "cores[" + std::to_string(i) + "]";
    s.push_back(to_matrix<Scalar>(as_numeric_array(cores[i], name), name, false));
  }
  const char* w = "colora.recovery_metrics";
  detail::require(a.cols() == t.A_shared.cols() && a.rows() == t.A_shared.rows(), w, "A is ", a.rows(), " x ",
                  a.cols(), " but the truth's A is ", t.A_shared.rows(), " x ", t.A_shared.cols());
  detail::require(b.rows() == t.B_shared.rows() && b.cols() == a.rows(), w, "B is ", b.rows(), " x ", b.cols(),
                  ", expected ", t.B_shared.rows(), " x ", a.rows());
  for (size_t i = 0; i < s.size(); ++i)
    detail::require(s[i].rows() == a.rows() && s[i].cols() == a.rows(), w, "task ", i, ": core is ", s[i].rows(),
                    " x ", s[i].cols(), ", expected ", a.rows(), " x ", a.rows());
  RecoveryMetrics m;
  {
    py::gil_scoped_release nogil;
    m = colora::recovery_metrics(t, a, b, s, num_threads);
  }
  return metrics_dict(m);
}

template <class Scalar>
py::array adapt_core(const py::array& A, const py::array& B, const py::object& W0, const py::array& X,
                     const py::array& Y, double ridge, const std::string& core) {
  const Matrix<Scalar> a = to_matrix<Scalar>(A, "A", false), b = to_matrix<Scalar>(B, "B", false);
  const Matrix<Scalar> w0 = W0.is_none() ? Matrix<Scalar>() : to_matrix<Scalar>(as_numeric_array(W0, "W0"), "W0", false);
  const Matrix<Scalar> x = to_matrix<Scalar>(X, "X", false), y = to_matrix<Scalar>(Y, "Y", true);
  const CoreKind kind = parse_enum<CoreKind>(core, "colora.adapt");
  Matrix<Scalar> s;
  {
    py::gil_scoped_release nogil;
    s = colora::adapt_core(a, b, w0, x, y, ridge, kind);
  }
  return to_array<Scalar>(std::move(s));
}

#define COLORA_PYTHON_INSTANTIATE(Scalar)                                                                       \
  template py::dict fit_method<Scalar>(const FitArgs&);                                                          \
  template py::dict generate<Scalar>(const GeneratorOptions&);                                                   \
  template py::dict recovery_metrics<Scalar>(const py::dict&, const py::array&, const py::array&, const py::list&, \
                                             int);                                                               \
  template py::array adapt_core<Scalar>(const py::array&, const py::array&, const py::object&, const py::array&,  \
                                        const py::array&, double, const std::string&);

}  // namespace python
}  // namespace colora
