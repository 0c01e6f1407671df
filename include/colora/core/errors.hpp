// Contract checks: bad input is a std::invalid_argument whose message names
// the function, the task (when there is one), the field and the value.
#pragma once

#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string>

#include "colora/core/config.hpp"

namespace colora {
namespace detail {

template <class... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream os;
  os.precision(17);
  (os << ... << parts);
  return os.str();
}

/// Throws std::invalid_argument("<where>: <message parts...>").
template <class... Parts>
[[noreturn]] void invalid(const char* where, const Parts&... parts) {
  throw std::invalid_argument(concat(where, ": ", parts...));
}

/// Throws unless `cond`; the message is built only on failure.
template <class... Parts>
void require(bool cond, const char* where, const Parts&... parts) {
  if (!cond) invalid(where, parts...);
}

/// Throws if any entry of `m` is NaN or +-Inf, naming what and where.
template <class Derived>
void require_finite(const Eigen::DenseBase<Derived>& m, const char* where, const std::string& what) {
  const auto& d = m.derived();
  for (Index j = 0; j < d.cols(); ++j)
    for (Index i = 0; i < d.rows(); ++i)
      if (!std::isfinite(static_cast<double>(d(i, j))))
        invalid(where, what, " has a non-finite entry ", static_cast<double>(d(i, j)), " at (", i, ", ", j, ")");
}

}  // namespace detail
}  // namespace colora
