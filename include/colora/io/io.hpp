// colora::io — durable file writes, CSV tables, NumPy .npy files, task
// directories, JSON and safetensors files (docs/io.md). The area umbrella.
#pragma once

#include "colora/io/atomic_file.hpp"
#include "colora/io/csv.hpp"
#include "colora/io/json.hpp"
#include "colora/io/npy.hpp"
#include "colora/io/safetensors.hpp"
#include "colora/io/task_directory.hpp"
