// colora regression — the multi-task problems (M1) and (M2), the planted
// problem generator, data rescaling, the alternating-minimization kernel, the
// CoLoRA solver and the oracle (docs/solver.md). The area umbrella.
#pragma once

#include "colora/regression/data.hpp"
#include "colora/regression/data_scale.hpp"
#include "colora/regression/generator.hpp"
#include "colora/regression/altmin.hpp"
#include "colora/regression/recovery_metrics.hpp"
#include "colora/regression/solver.hpp"
#include "colora/regression/oracle.hpp"
