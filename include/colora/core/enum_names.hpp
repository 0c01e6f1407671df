// One name table per enum: to_string, parse and the command line's list of
// choices all read it, so a value's name is written once.
//
//   template <> struct EnumNames<MyEnum> {
//     static constexpr const char* what = "my setting";          // for messages
//     static constexpr EnumName<MyEnum> table[] = {{MyEnum::A, "a"}, {MyEnum::B, "b"}};
//   };
//   enum_name(MyEnum::A)              -> "a"
//   parse_enum<MyEnum>("b", "where")  -> MyEnum::B, or std::invalid_argument listing the names
//   enum_choices<MyEnum>()            -> {"a", "b"}
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "colora/core/errors.hpp"

namespace colora {

template <class E>
struct EnumName {
  E value;
  const char* name;
};

/// Specialise for each enum with `what` and `table` (see the header comment).
template <class E>
struct EnumNames;

/// The name of `v` ("?" for a value outside the table).
template <class E>
const char* enum_name(E v) noexcept {
  for (const auto& e : EnumNames<E>::table)
    if (e.value == v) return e.name;
  return "?";
}

/// Every name of the table, in its order.
template <class E>
std::vector<std::string> enum_choices() {
  std::vector<std::string> out;
  for (const auto& e : EnumNames<E>::table) out.emplace_back(e.name);
  return out;
}

/// The value called `s`; std::invalid_argument from `where` naming the
/// expected names otherwise.
template <class E>
E parse_enum(const std::string& s, const char* where) {
  for (const auto& e : EnumNames<E>::table)
    if (s == e.name) return e.value;
  std::string all;
  const std::size_t n = sizeof(EnumNames<E>::table) / sizeof(EnumNames<E>::table[0]);
  for (std::size_t j = 0; j < n; ++j)
    all += std::string(j == 0 ? "" : (j + 1 == n ? " or " : ", ")) + EnumNames<E>::table[j].name;
  detail::invalid(where, "unknown ", EnumNames<E>::what, " '", s, "' (expected ", all, ")");
}

}  // namespace colora
