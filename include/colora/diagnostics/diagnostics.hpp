// colora diagnostics — oracle floors (docs/solver.md, "Diagnostics"); GRIP, contraction rates, task structure
// and the guarantee report (docs/theory.md). The area umbrella. Subspace
// distances live in core/subspace.hpp, recovery errors next to the solver in
// regression/recovery_metrics.hpp (layers only point down).
#pragma once

#include "colora/diagnostics/oracle_floor.hpp"
#include "colora/diagnostics/grip_types.hpp"
#include "colora/diagnostics/grip_prediction.hpp"
#include "colora/diagnostics/grip.hpp"
#include "colora/diagnostics/tangent_grip.hpp"
#include "colora/diagnostics/convergence_rate.hpp"
#include "colora/diagnostics/measured_rate.hpp"
#include "colora/diagnostics/predicted_rate.hpp"
#include "colora/diagnostics/task_structure.hpp"
#include "colora/diagnostics/guarantee_report.hpp"
