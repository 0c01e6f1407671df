// The Python module colora._core (docs/python.md): conversion between NumPy
// arrays and the library's types, and the calls the Python package makes.
// Everything scalar-typed is a template instantiated for double and float in
// two translation units (bindings_double.cpp, bindings_float.cpp) so they
// compile in parallel; module.cpp holds the pybind11 definitions.
//
// Conventions:
//  - arrays of float32 or float64 in any memory order (C, Fortran, strided,
//    either byte order) and of integer or bool type (converted to float64);
//    anything else is a TypeError naming the argument and its element ("Xs[3]").
//  - the problem types own column-major Eigen storage, so each array is
//    copied once, straight from its own layout (no intermediate copy).
//  - std::invalid_argument from the library becomes ValueError with the
//    library's message; long calls run without the GIL and stop on Ctrl-C.
#pragma once

#include <pybind11/eigen.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "colora/baselines/baselines.hpp"
#include "colora/regression/generator.hpp"

namespace colora {
namespace python {

namespace py = pybind11;

/// Which scalar type a call runs in.
enum class Precision { Float, Double };

/// TypeError with a message (pybind11 maps py::type_error to TypeError).
[[noreturn]] void type_error(const std::string& msg);

/// `obj` as an ndarray of a supported element type, or TypeError naming `what`.
py::array as_numeric_array(const py::handle& obj, const std::string& what);

/// float32 when every array is float32, float64 otherwise (NumPy's promotion).
Precision precision_of(const std::vector<py::array>& arrays);

/// The options dict the Python side passes (keys as in docs/python.md).
BaselineOptions baseline_options(const py::dict& options);

/// Everything a fit call carries, converted on the calling thread (with the GIL).
struct FitArgs {
  std::string method;
  std::vector<py::array> Xs, Ys, Xs_test, Ys_test;
  py::object W0 = py::none();
  py::object truth = py::none();  ///< dict as generate() returns it, or None
  BaselineOptions options;
  bool factors_only = false;  ///< CoLoRA estimator: return A, B, the cores and the report, not the generic estimate
};

template <class Scalar>
py::dict fit_method(const FitArgs& args);

/// write_peft_adapter / read_peft_adapter (peft.cpp).
void define_peft(py::module_& m);

template <class Scalar>
py::dict generate(const GeneratorOptions& options);

template <class Scalar>
py::dict recovery_metrics(const py::dict& truth, const py::array& A, const py::array& B, const py::list& cores,
                          int num_threads);

template <class Scalar>
py::array adapt_core(const py::array& A, const py::array& B, const py::object& W0, const py::array& X,
                     const py::array& Y, double ridge, const std::string& core);

}  // namespace python
}  // namespace colora
