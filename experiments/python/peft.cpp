// colora._core's PEFT calls (docs/python.md, "PEFT adapters"): write and read
// a Hugging Face PEFT LoRA directory through colora::nn's writer and reader
// (include/colora/nn/peft.hpp; the format: docs/io.md).
#include "bindings_impl.hpp"
#include "colora/nn/peft.hpp"

namespace colora {
namespace python {

namespace {

template <class Scalar>
void write_peft_typed(const std::string& dir, const py::list& modules, const nn::PeftOptions& opt) {
  std::vector<nn::LoraPair<Scalar>> pairs;
  for (size_t j = 0; j < modules.size(); ++j) {
    const std::string at = "modules[" + std::to_string(j) + "]";
    const py::tuple t = py::reinterpret_borrow<py::tuple>(modules[j]);
    nn::LoraPair<Scalar> p;
    p.module = py::cast<std::string>(t[0]);
    p.A = to_matrix<Scalar>(as_numeric_array(t[1], at + " lora_A"), at + " lora_A", false);
    p.B = to_matrix<Scalar>(as_numeric_array(t[2], at + " lora_B"), at + " lora_B", false);
    pairs.push_back(std::move(p));
  }
  py::gil_scoped_release nogil;
  nn::write_peft_adapter(dir, pairs, opt);
}

template <class Scalar>
py::dict read_peft_typed(const std::string& dir) {
  nn::PeftAdapter<Scalar> a;
  {
    py::gil_scoped_release nogil;
    a = nn::read_peft_adapter<Scalar>(dir);
  }
  py::dict d;
  d["r"] = a.config.r;
  d["lora_alpha"] = a.config.lora_alpha;
  d["target_modules"] = a.config.target_modules;
  d["base_model_name_or_path"] =
      a.config.base_model_name_or_path.empty() ? py::object(py::none()) : py::str(a.config.base_model_name_or_path);
  py::list mods;
  for (auto& m : a.modules) {
    const double s = a.config.scaling(m.module);
    mods.append(py::make_tuple(m.module, to_array<Scalar>(std::move(m.A)), to_array<Scalar>(std::move(m.B)), s));
  }
  d["modules"] = mods;
  return d;
}

}  // namespace

void define_peft(py::module_& m) {
  m.def(
      "write_peft_adapter",
      [](const std::string& dir, const py::list& modules, py::object base_model, py::object task_type) {
        for (size_t j = 0; j < modules.size(); ++j)
          if (!py::isinstance<py::tuple>(modules[j]) || py::len(modules[j]) != 3)
            type_error("modules[" + std::to_string(j) + "]: expected a tuple (name, lora_A, lora_B)");
        nn::PeftOptions opt;
        if (!base_model.is_none()) opt.base_model_name_or_path = py::cast<std::string>(base_model);
        if (!task_type.is_none()) opt.task_type = py::cast<std::string>(task_type);
        std::vector<py::array> all;
        for (size_t j = 0; j < modules.size(); ++j) {
          const py::tuple t = py::reinterpret_borrow<py::tuple>(modules[j]);
          all.push_back(as_numeric_array(t[1], "modules[" + std::to_string(j) + "] lora_A"));
          all.push_back(as_numeric_array(t[2], "modules[" + std::to_string(j) + "] lora_B"));
        }
        if (precision_of(all) == Precision::Float)
          write_peft_typed<float>(dir, modules, opt);
        else
          write_peft_typed<double>(dir, modules, opt);
      },
      py::arg("directory"), py::arg("modules"), py::arg("base_model") = py::none(), py::arg("task_type") = py::none());
  m.def(
      "read_peft_adapter",
      [](const std::string& dir, const std::string& dtype) {
        if (dtype == "float32") return read_peft_typed<float>(dir);
        if (dtype == "float64") return read_peft_typed<double>(dir);
        throw std::invalid_argument("dtype must be 'float64' or 'float32', got '" + dtype + "'");
      },
      py::arg("directory"), py::arg("dtype") = "float64");
}

}  // namespace python
}  // namespace colora
