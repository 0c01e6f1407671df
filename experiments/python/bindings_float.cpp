// The float instantiations of the module's calls (bindings_impl.hpp).
#include "bindings_impl.hpp"

namespace colora {
namespace python {
COLORA_PYTHON_INSTANTIATE(float)
}  // namespace python
}  // namespace colora
