// colora::io — durable file writes, CSV tables, NumPy .npy files and task
// directories (docs/io.md). The area umbrella.
#pragma once

#include "colora/io/atomic_file.hpp"
#include "colora/io/csv.hpp"
#include "colora/io/npy.hpp"
#include "colora/io/task_directory.hpp"
