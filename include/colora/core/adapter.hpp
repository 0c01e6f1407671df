// Adapter vocabulary shared by the linear solver, the baselines and the
// network layers: which parameters are shared across tasks and which are
// personal. See docs/solver.md and docs/nn.md.
#pragma once

#include <string>

#include "colora/core/enum_names.hpp"
#include "colora/core/errors.hpp"

namespace colora {

/// How a low-rank update B S A (or B A) is split between shared and personal
/// parameters (docs/nn.md).
enum class AdapterKind {
  None,        ///< frozen base only
  Lora,        ///< per-task B_i A_i
  Colora,      ///< shared B, A; personal core S_i (full or diagonal)
  GlobalLora,  ///< one B A for all tasks
  Ffa,         ///< A frozen random, B shared
  Fedsa        ///< A shared, B personal
};

/// Shape of the personal r x r core S_i. Diagonal is a [choice] of this
/// project (docs/solver.md): r personal numbers instead of r^2.
enum class CoreKind { Full, Diagonal };

template <>
struct EnumNames<AdapterKind> {
  static constexpr const char* what = "adapter kind";
  static constexpr EnumName<AdapterKind> table[] = {{AdapterKind::None, "none"},
                                                    {AdapterKind::Lora, "lora"},
                                                    {AdapterKind::Colora, "colora"},
                                                    {AdapterKind::GlobalLora, "global-lora"},
                                                    {AdapterKind::Ffa, "ffa"},
                                                    {AdapterKind::Fedsa, "fedsa"}};
};
template <>
struct EnumNames<CoreKind> {
  static constexpr const char* what = "core kind";
  static constexpr EnumName<CoreKind> table[] = {{CoreKind::Full, "full"}, {CoreKind::Diagonal, "diagonal"}};
};

inline const char* to_string(AdapterKind k) noexcept { return enum_name(k); }
inline const char* to_string(CoreKind k) noexcept { return enum_name(k); }
inline AdapterKind parse_adapter_kind(const std::string& s) {
  return parse_enum<AdapterKind>(s, "colora::parse_adapter_kind");
}
inline CoreKind parse_core_kind(const std::string& s) { return parse_enum<CoreKind>(s, "colora::parse_core_kind"); }

}  // namespace colora
