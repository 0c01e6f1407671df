// colora core: configuration (Scalar, Index, Matrix, OpenMP), errors, enum
// names, linear algebra helpers, the random number generator, statuses and the
// adapter kinds. The area umbrella.
#pragma once

#include "colora/core/config.hpp"
#include "colora/core/errors.hpp"
#include "colora/core/enum_names.hpp"
#include "colora/core/status.hpp"
#include "colora/core/random.hpp"
#include "colora/core/linalg.hpp"
#include "colora/core/subspace.hpp"
#include "colora/core/adapter.hpp"
