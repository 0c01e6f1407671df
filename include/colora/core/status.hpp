// Outcome vocabulary shared by every solver and trainer of the library.
#pragma once

#include "colora/core/enum_names.hpp"

namespace colora {

/// What a computation achieved (the Eigen ComputationInfo idea). Only
/// contract violations throw; everything numerical is reported here and the
/// partial result stays readable.
enum class Status {
  Success,         ///< stopped on its convergence criterion or on request
  MaxIterations,   ///< ran out of iterations before the tolerance was met
  NumericalIssue,  ///< a non-finite value or a singular system; last good state kept
  NotComputed      ///< compute() has not run yet
};

/// Why an iterative computation stopped.
enum class StopReason {
  NotStarted,         ///< nothing ran yet
  ToleranceReached,   ///< relative objective change below the tolerance
  MaxIterations,      ///< the iteration budget was used
  CallbackRequested,  ///< the user's callback returned false
  NonFiniteValue,     ///< a NaN or Inf appeared (objective or iterate)
  SingularSystem,     ///< a linear system could not be solved
  ClosedForm,         ///< a one-shot method: nothing to iterate
  DegenerateProblem   ///< the data carry no information (e.g. every task's inputs are zero)
};

template <>
struct EnumNames<Status> {
  static constexpr const char* what = "status";
  static constexpr EnumName<Status> table[] = {{Status::Success, "Success"},
                                               {Status::MaxIterations, "MaxIterations"},
                                               {Status::NumericalIssue, "NumericalIssue"},
                                               {Status::NotComputed, "NotComputed"}};
};
template <>
struct EnumNames<StopReason> {
  static constexpr const char* what = "stop reason";
  static constexpr EnumName<StopReason> table[] = {{StopReason::NotStarted, "not-started"},
                                                   {StopReason::ToleranceReached, "tolerance-reached"},
                                                   {StopReason::MaxIterations, "max-iterations"},
                                                   {StopReason::CallbackRequested, "callback-requested"},
                                                   {StopReason::NonFiniteValue, "non-finite-value"},
                                                   {StopReason::SingularSystem, "singular-system"},
                                                   {StopReason::ClosedForm, "closed-form"},
                                                   {StopReason::DegenerateProblem, "degenerate-problem"}};
};

inline const char* to_string(Status s) noexcept { return enum_name(s); }
inline const char* to_string(StopReason r) noexcept { return enum_name(r); }

}  // namespace colora
