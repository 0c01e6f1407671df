// PNG plots through gnuplot (Debian package gnuplot-nox, installed by
// .ci/setup). When gnuplot is missing, the CSV is still written and one line
// says how to get the plots. The PNG is written atomically: gnuplot renders
// to a temporary file that is then renamed.
#pragma once

#include <colora/io/atomic_file.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace colora {
namespace plot {

inline bool gnuplot_available() {
  static const bool ok = std::system("command -v gnuplot >/dev/null 2>&1") == 0;
  return ok;
}

/// Runs `script` (gnuplot commands, without any "set output") rendering into
/// `png_path`. Returns true if the PNG was written; otherwise prints one line
/// to stderr saying why (and how to get plots) and returns false.
inline bool render_png(const std::string& png_path, const std::string& script, int width = 900, int height = 600) {
  if (!gnuplot_available()) {
    std::fprintf(stderr, "colora: gnuplot not found, skipped %s (the CSV is written; run `bash .ci/setup` or "
                         "`apt-get install gnuplot-nox` for plots)\n", png_path.c_str());
    return false;
  }
  const std::string tmp_png = png_path + ".tmp.png";
  const std::string script_path = png_path + ".gp";
  std::string full = "set terminal pngcairo size " + std::to_string(width) + "," + std::to_string(height) +
                     " enhanced font 'Sans,10'\nset output '" + tmp_png + "'\n" + script + "\nunset output\n";
  io::write_text_atomically(script_path, full);
  const std::string cmd = "gnuplot '" + script_path + "' 2>/dev/null";
  const int rc = std::system(cmd.c_str());
  if (rc != 0 || std::rename(tmp_png.c_str(), png_path.c_str()) != 0) {
    std::remove(tmp_png.c_str());
    std::fprintf(stderr, "colora: gnuplot failed on %s (script kept for inspection)\n", script_path.c_str());
    return false;
  }
  return true;
}

}  // namespace plot
}  // namespace colora
