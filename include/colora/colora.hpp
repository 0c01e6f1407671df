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

#include "colora/regression/data.hpp"
