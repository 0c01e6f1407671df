// colora._core: the compiled half of the Python package colora
// (experiments/python/colora/__init__.py holds the estimator classes;
// docs/python.md documents both). Conventions: bindings.hpp.
#include <cmath>
#include <limits>
#include <set>

#include "bindings.hpp"
#include "colora/core/config.hpp"
#include "colora/diagnostics/oracle_floor.hpp"
#include "colora/version.hpp"

namespace colora {
namespace python {

void type_error(const std::string& msg) { throw py::type_error(msg); }

py::array as_numeric_array(const py::handle& obj, const std::string& what) {
  if (obj.is_none()) type_error(what + ": expected an array, got None");
  if (py::isinstance<py::str>(obj) || py::isinstance<py::bytes>(obj))
    type_error(what + ": expected an array, got " + std::string(py::str(obj.get_type().attr("__name__"))));
  py::array a = py::array::ensure(obj);
  if (!a) {
    PyErr_Clear();
    type_error(what + ": expected an array, got " + std::string(py::str(obj.get_type().attr("__name__"))));
  }
  const char kind = a.dtype().kind();
  const auto size = a.dtype().itemsize();
  const bool ok = (kind == 'f' && (size == 4 || size == 8)) || kind == 'i' || kind == 'u' || kind == 'b';
  if (!ok)
    type_error(what + ": element type " + std::string(py::str(a.dtype())) +
               " is not supported (float32 or float64; integers and bools are converted to float64)");
  // Byte order from the descriptor ('=' native, '|' not applicable, '<'/'>' explicit):
  // data in the other order is swapped once by NumPy.
  const char order = py::detail::array_descriptor_proxy(a.dtype().ptr())->byteorder;
  const bool little = PY_LITTLE_ENDIAN;
  if (order == (little ? '>' : '<')) a = a.attr("astype")(a.dtype().attr("newbyteorder")("="));
  return a;
}

Precision precision_of(const std::vector<py::array>& arrays) {
  for (const auto& a : arrays)
    if (!(a.dtype().kind() == 'f' && a.dtype().itemsize() == 4)) return Precision::Double;
  return arrays.empty() ? Precision::Double : Precision::Float;
}

namespace {

std::string type_name(const py::handle& h) { return py::str(h.get_type().attr("__name__")); }

long long int_option(const py::handle& v, const std::string& key) {
  if (py::isinstance<py::bool_>(v) || !py::isinstance<py::int_>(v))
    type_error("option '" + key + "' must be an int, got " + type_name(v));
  return v.cast<long long>();
}

/// The option "seed": an int >= 0 (ValueError otherwise).
std::uint64_t seed_option(const py::handle& v) {
  const long long s = int_option(v, "seed");
  if (s < 0) throw std::invalid_argument("option 'seed' must be >= 0, got " + std::to_string(s));
  return std::uint64_t(s);
}

double float_option(const py::handle& v, const std::string& key) {
  if (py::isinstance<py::bool_>(v) || !(py::isinstance<py::float_>(v) || py::isinstance<py::int_>(v)))
    type_error("option '" + key + "' must be a number, got " + type_name(v));
  return v.cast<double>();
}

std::string str_option(const py::handle& v, const std::string& key) {
  if (!py::isinstance<py::str>(v)) type_error("option '" + key + "' must be a str, got " + type_name(v));
  return v.cast<std::string>();
}

int checked_int(long long v, const std::string& key) {
  if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max())
    throw std::invalid_argument("option '" + key + "' = " + std::to_string(v) + " is out of range");
  return int(v);
}

std::vector<py::array> arrays_of(const py::handle& seq, const char* name) {
  std::vector<py::array> out;
  if (seq.is_none()) return out;
  if (!py::isinstance<py::sequence>(seq) || py::isinstance<py::str>(seq) || py::isinstance<py::array>(seq))
    type_error(std::string(name) + ": expected a list of per-task arrays, got " + type_name(seq));
  const py::sequence s = py::reinterpret_borrow<py::sequence>(seq);
  for (size_t i = 0; i < s.size(); ++i)
    out.push_back(as_numeric_array(s[i], std::string(name) + "[" + std::to_string(i) + "]"));
  return out;
}

}  // namespace

BaselineOptions baseline_options(const py::dict& options) {
  BaselineOptions o;
  o.rank = 0;
  for (const auto& item : options) {
    const std::string key = py::str(item.first);
    const py::handle v = item.second;
    if (key == "rank")
      o.rank = Index(int_option(v, key));
    else if (key == "init")
      o.init = parse_enum<InitKind>(str_option(v, key), "colora: option 'init'");
    else if (key == "a_step")
      o.a_step = parse_enum<AStepSolver>(str_option(v, key), "colora: option 'a_step'");
    else if (key == "core")
      o.core = parse_enum<CoreKind>(str_option(v, key), "colora: option 'core'");
    else if (key == "weighting")
      o.weighting = parse_enum<TaskWeighting>(str_option(v, key), "colora: option 'weighting'");
    else if (key == "lam")
      o.lambda = float_option(v, key);
    else if (key == "max_iterations")
      o.max_iterations = checked_int(int_option(v, key), key);
    else if (key == "tol")
      o.tolerance = float_option(v, key);
    else if (key == "cg_max_products")
      o.cg_max_products = checked_int(int_option(v, key), key);
    else if (key == "cg_tolerance")
      o.cg_tolerance = float_option(v, key);
    else if (key == "cg_reduction")
      o.cg_reduction = float_option(v, key);
    else if (key == "gd_step")
      o.gd_step = float_option(v, key);
    else if (key == "threads")
      o.num_threads = checked_int(int_option(v, key), key);
    else if (key == "seed")
      o.seed = seed_option(v);
    else if (key == "track_truth")
      o.track_truth = v.cast<bool>();
    else if (key == "participation")
      o.participation = float_option(v, key);
    else if (key == "gd_gd_step")
      o.gd_gd_step = float_option(v, key);
    else
      type_error("unexpected option '" + key + "'");
  }
  return o;
}

/// The options' defaults as the C++ library has them (the Python classes test theirs against these).
py::dict default_options() {
  const BaselineOptions o;
  py::dict d;
  d["init"] = enum_name(o.init);
  d["a_step"] = enum_name(o.a_step);
  d["core"] = enum_name(o.core);
  d["weighting"] = enum_name(o.weighting);
  d["lam"] = o.lambda;
  d["max_iterations"] = o.max_iterations;
  d["tol"] = o.tolerance;
  d["cg_max_products"] = o.cg_max_products;
  d["cg_tolerance"] = o.cg_tolerance;
  d["cg_reduction"] = o.cg_reduction;
  d["gd_step"] = o.gd_step;
  d["threads"] = o.num_threads;
  d["seed"] = o.seed;
  d["participation"] = o.participation;
  d["gd_gd_step"] = o.gd_gd_step;
  return d;
}

Precision parse_precision(const std::string& dtype) {
  if (dtype == "float64" || dtype == "double") return Precision::Double;
  if (dtype == "float32" || dtype == "float") return Precision::Float;
  throw std::invalid_argument("dtype must be 'float64' or 'float32', got '" + dtype + "'");
}

}  // namespace python
}  // namespace colora

PYBIND11_MODULE(_core, m) {
  namespace py = pybind11;
  using namespace colora;
  using namespace colora::python;
  m.doc() = "colora's compiled core (use the package colora: docs/python.md)";
  m.attr("__version__") = COLORA_VERSION_STRING;
  m.attr("simd") = simd_instruction_sets();

  m.def("baseline_names", [] { return baseline_names(); }, "Every method fit_baseline() knows, in the registry's order.");
  m.def("baseline_traits", [] {
    py::dict d;
    for (const auto& t : baseline_traits()) {
      py::dict e;
      e["needs_rank"] = t.needs_rank;
      e["allows_wide_rank"] = t.allows_wide_rank;
      d[t.name] = e;
    }
    return d;
  });
  m.def("default_options", &default_options);

  m.def(
      "fit",
      [](const std::string& method, py::handle Xs, py::handle Ys, py::object W0, py::handle Xs_test,
         py::handle Ys_test, py::object truth, const py::dict& options, bool factors_only) {
        FitArgs a;
        a.method = method;
        a.factors_only = factors_only;
        a.Xs = arrays_of(Xs, "Xs");
        a.Ys = arrays_of(Ys, "Ys");
        a.Xs_test = arrays_of(Xs_test, "Xs_test");
        a.Ys_test = arrays_of(Ys_test, "Ys_test");
        a.W0 = W0;
        a.truth = truth;
        if (!truth.is_none() && !py::isinstance<py::dict>(truth))
          type_error("truth: expected the dict colora.generate() returns as 'truth', got " +
                     std::string(py::str(truth.get_type().attr("__name__"))));
        a.options = baseline_options(options);
        std::vector<py::array> all = a.Xs;
        all.insert(all.end(), a.Ys.begin(), a.Ys.end());
        return precision_of(all) == Precision::Float ? fit_method<float>(a) : fit_method<double>(a);
      },
      py::arg("method"), py::arg("Xs"), py::arg("Ys"), py::arg("W0") = py::none(), py::arg("Xs_test") = py::none(),
      py::arg("Ys_test") = py::none(), py::arg("truth") = py::none(), py::arg("options") = py::dict(),
      py::arg("factors_only") = false);

  m.def(
      "generate",
      [](const py::dict& kw, const std::string& dtype) {
        GeneratorOptions g;
        for (const auto& item : kw) {
          const std::string key = py::str(item.first);
          const py::handle v = item.second;
          if (key == "tasks") g.tasks = Index(int_option(v, key));
          else if (key == "p") g.p = Index(int_option(v, key));
          else if (key == "q") g.q = Index(int_option(v, key));
          else if (key == "rank") g.rank = Index(int_option(v, key));
          else if (key == "samples") {
            g.samples.clear();
            if (py::isinstance<py::int_>(v)) g.samples.push_back(Index(int_option(v, key)));
            else
              for (const auto& s : py::reinterpret_borrow<py::sequence>(v)) g.samples.push_back(Index(int_option(s, key)));
          } else if (key == "test_samples") g.test_samples = Index(int_option(v, key));
          else if (key == "sigma") g.sigma = float_option(v, key);
          else if (key == "kappa") g.kappa = float_option(v, key);
          else if (key == "tau") g.tau = float_option(v, key);
          else if (key == "theta_a") g.theta_a = float_option(v, key);
          else if (key == "theta_b") g.theta_b = float_option(v, key);
          else if (key == "input_condition") g.input_condition = float_option(v, key);
          else if (key == "random_base") g.random_base = v.cast<bool>();
          else if (key == "seed") g.seed = seed_option(v);
          else if (key == "threads") g.num_threads = checked_int(int_option(v, key), key);
          else type_error("unexpected option '" + key + "'");
        }
        g.validate();
        return parse_precision(dtype) == Precision::Float ? generate<float>(g) : generate<double>(g);
      },
      py::arg("options"), py::arg("dtype") = "float64");

  m.def(
      "recovery_metrics",
      [](const py::dict& truth, py::handle A, py::handle B, const py::list& cores, int threads) {
        const py::array a = as_numeric_array(A, "A"), b = as_numeric_array(B, "B");
        return precision_of({a, b}) == Precision::Float ? recovery_metrics<float>(truth, a, b, cores, threads)
                                                        : recovery_metrics<double>(truth, a, b, cores, threads);
      },
      py::arg("truth"), py::arg("A"), py::arg("B"), py::arg("cores"), py::arg("threads") = 0);

  m.def(
      "adapt_core",
      [](py::handle A, py::handle B, py::object W0, py::handle X, py::handle Y, double ridge,
         const std::string& core) {
        const py::array a = as_numeric_array(A, "A"), b = as_numeric_array(B, "B");
        const py::array x = as_numeric_array(X, "X"), y = as_numeric_array(Y, "Y");
        return precision_of({a, b}) == Precision::Float ? adapt_core<float>(a, b, W0, x, y, ridge, core)
                                                        : adapt_core<double>(a, b, W0, x, y, ridge, core);
      },
      py::arg("A"), py::arg("B"), py::arg("W0"), py::arg("X"), py::arg("Y"), py::arg("ridge") = 0.0,
      py::arg("core") = "full");

  define_peft(m);

  m.def("oracle_core_floor", &oracle_core_floor, py::arg("sigma"), py::arg("r"), py::arg("n"),
        "E||S_hat - S*||_F^2 of the least-squares core with A*, B* known.");
  m.def("oracle_head_floor", &oracle_head_floor, py::arg("sigma"), py::arg("q"), py::arg("r"), py::arg("n"),
        "E||H_hat - H*||_F^2 of a personal q x r head with A* known.");
  m.def("oracle_free_floor", &oracle_free_floor, py::arg("sigma"), py::arg("q"), py::arg("p"), py::arg("n"),
        "E||W_hat - W*||_F^2 of a free per-task q x p fit.");
  m.def("oracle_core_test_mse", &oracle_core_test_mse, py::arg("sigma"), py::arg("q"), py::arg("r"), py::arg("n"),
        "Expected held-out MSE per output entry of the core oracle.");
}
