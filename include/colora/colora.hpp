// colora — collaborative low-rank adaptation (CoLoRA), header-only C++17.
// The umbrella header: includes the umbrella of every public area of the
// library (each area's header can also be included on its own).
#pragma once

#include "colora/version.hpp"

#include "colora/core/core.hpp"
#include "colora/io/io.hpp"
#include "colora/regression/regression.hpp"
#include "colora/diagnostics/diagnostics.hpp"
#include "colora/baselines/baselines.hpp"
#include "colora/baselines/rank_selection.hpp"
#include "colora/nn/nn.hpp"
