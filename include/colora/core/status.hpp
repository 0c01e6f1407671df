// Outcome vocabulary shared by every solver and trainer of the library.
#pragma once

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

inline const char* to_string(Status s) noexcept {
  switch (s) {
    case Status::Success: return "Success";
    case Status::MaxIterations: return "MaxIterations";
    case Status::NumericalIssue: return "NumericalIssue";
    case Status::NotComputed: return "NotComputed";
  }
  return "?";
}

inline const char* to_string(StopReason r) noexcept {
  switch (r) {
    case StopReason::NotStarted: return "not-started";
    case StopReason::ToleranceReached: return "tolerance-reached";
    case StopReason::MaxIterations: return "max-iterations";
    case StopReason::CallbackRequested: return "callback-requested";
    case StopReason::NonFiniteValue: return "non-finite-value";
    case StopReason::SingularSystem: return "singular-system";
    case StopReason::ClosedForm: return "closed-form";
    case StopReason::DegenerateProblem: return "degenerate-problem";
  }
  return "?";
}

}  // namespace colora
