// Whole-or-nothing file writes: the content goes to a temporary file in the
// same directory, is flushed and checked, then renamed over the target
// (rename(2) is atomic on POSIX file systems). A reader never sees half a file.
#pragma once

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>
#include <system_error>

namespace colora {
namespace io {

/// Calls `write(std::ostream&)` on a binary stream for a temporary file next
/// to `path`, then renames it to `path`. Throws std::runtime_error naming the
/// file if anything fails; the temporary is removed and `path` is untouched.
template <class Writer>
void write_file_atomically(const std::string& path, Writer&& write) {
  // The temporary name is unique per object address and per call count so
  // two threads writing different targets never collide.
  static thread_local unsigned long counter = 0;
  const std::string tmp = path + ".tmp." + std::to_string(reinterpret_cast<std::uintptr_t>(&counter)) + "." +
                          std::to_string(++counter);
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error("colora::io: cannot open '" + tmp + "' for writing (for '" + path + "')");
    try {
      write(static_cast<std::ostream&>(out));
    } catch (...) {
      out.close();
      std::remove(tmp.c_str());
      throw;
    }
    out.flush();
    if (!out) {
      out.close();
      std::remove(tmp.c_str());
      throw std::runtime_error("colora::io: write to '" + path + "' failed (disk full or I/O error)");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw std::runtime_error("colora::io: cannot rename temporary file onto '" + path + "'");
  }
}

/// Writes a text string atomically.
inline void write_text_atomically(const std::string& path, const std::string& text) {
  write_file_atomically(path, [&](std::ostream& os) { os.write(text.data(), static_cast<std::streamsize>(text.size())); });
}

}  // namespace io
}  // namespace colora
