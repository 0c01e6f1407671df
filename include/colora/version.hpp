// colora — collaborative low-rank adaptation (CoLoRA), header-only C++17.
// Version macros; CMake parses the three COLORA_VERSION_* lines below.
#pragma once

#define COLORA_VERSION_MAJOR 0
#define COLORA_VERSION_MINOR 1
#define COLORA_VERSION_PATCH 0

#define COLORA_VERSION_STRING_(a, b, c) #a "." #b "." #c
#define COLORA_VERSION_STRING_X_(a, b, c) COLORA_VERSION_STRING_(a, b, c)
#define COLORA_VERSION_STRING COLORA_VERSION_STRING_X_(COLORA_VERSION_MAJOR, COLORA_VERSION_MINOR, COLORA_VERSION_PATCH)

namespace colora {

struct Version {
  int major;
  int minor;
  int patch;
};

/// The version of the headers being compiled.
constexpr Version version() noexcept {
  return Version{COLORA_VERSION_MAJOR, COLORA_VERSION_MINOR, COLORA_VERSION_PATCH};
}

/// "MAJOR.MINOR.PATCH".
constexpr const char* version_string() noexcept { return COLORA_VERSION_STRING; }

}  // namespace colora
