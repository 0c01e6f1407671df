// colora — collaborative low-rank adaptation (CoLoRA), header-only C++17.
// The umbrella header: includes every public area of the library.
#pragma once

#include "colora/version.hpp"

#include "colora/core/adapter.hpp"
#include "colora/core/config.hpp"
#include "colora/core/errors.hpp"
#include "colora/core/linalg.hpp"
#include "colora/core/random.hpp"
#include "colora/core/status.hpp"

#include "colora/io/atomic_file.hpp"
#include "colora/io/csv.hpp"
#include "colora/io/npy.hpp"
#include "colora/io/task_directory.hpp"

#include "colora/diagnostics/oracle_floor.hpp"
#include "colora/diagnostics/subspace.hpp"
#include "colora/diagnostics/grip.hpp"
#include "colora/diagnostics/convergence_rate.hpp"
#include "colora/diagnostics/task_structure.hpp"
#include "colora/diagnostics/guarantee_report.hpp"

#include "colora/diagnostics/recovery_metrics.hpp"

#include "colora/regression/a_step.hpp"
#include "colora/regression/data.hpp"
#include "colora/regression/generator.hpp"
#include "colora/regression/oracle.hpp"
#include "colora/regression/solver.hpp"

#include "colora/baselines/baselines.hpp"

#include "colora/nn/nn.hpp"
