// Adapter vocabulary shared by the linear solver, the baselines and the
// network layers: which parameters are shared across tasks and which are
// personal. See docs/solver.md and docs/nn.md.
#pragma once

#include <string>

#include "colora/core/errors.hpp"

namespace colora {

/// How a low-rank update B S A (or B A) is split between shared and personal
/// parameters (spec section 9).
enum class AdapterKind {
  None,        ///< frozen base only
  Lora,        ///< per-task B_i A_i
  Colora,      ///< shared B, A; personal core S_i (full or diagonal)
  GlobalLora,  ///< one B A for all tasks
  Ffa,         ///< A frozen random, B shared
  Fedsa        ///< A shared, B personal
};

/// Shape of the personal r x r core S_i. Diagonal is a [choice] of this
/// project (spec section 1): r personal numbers instead of r^2.
enum class CoreKind { Full, Diagonal };

inline const char* to_string(AdapterKind k) noexcept {
  switch (k) {
    case AdapterKind::None: return "none";
    case AdapterKind::Lora: return "lora";
    case AdapterKind::Colora: return "colora";
    case AdapterKind::GlobalLora: return "global-lora";
    case AdapterKind::Ffa: return "ffa";
    case AdapterKind::Fedsa: return "fedsa";
  }
  return "?";
}

inline const char* to_string(CoreKind k) noexcept { return k == CoreKind::Full ? "full" : "diagonal"; }

inline AdapterKind parse_adapter_kind(const std::string& s) {
  for (AdapterKind k : {AdapterKind::None, AdapterKind::Lora, AdapterKind::Colora, AdapterKind::GlobalLora,
                        AdapterKind::Ffa, AdapterKind::Fedsa})
    if (s == to_string(k)) return k;
  detail::invalid("colora::parse_adapter_kind", "unknown adapter kind '", s,
                  "' (expected none, lora, colora, global-lora, ffa or fedsa)");
}

inline CoreKind parse_core_kind(const std::string& s) {
  if (s == "full") return CoreKind::Full;
  if (s == "diagonal") return CoreKind::Diagonal;
  detail::invalid("colora::parse_core_kind", "unknown core kind '", s, "' (expected full or diagonal)");
}

}  // namespace colora
