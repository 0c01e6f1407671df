// Test helpers for files: a scratch directory, the message of an expected
// exception, and code examples that a documentation page must show verbatim.
#pragma once

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace colora_test {

/// A scratch directory cwd/colora_test_<name>, emptied on creation and removed on exit.
struct ScratchDir {
  std::filesystem::path path;
  explicit ScratchDir(const std::string& name)
      : path(std::filesystem::current_path() / ("colora_test_" + name)) {
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string file(const std::string& f) const { return (path / f).string(); }
};

/// The message of the exception of type Ex thrown by f, or a marker.
template <class Ex, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Ex& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("<wrong exception type: ") + e.what() + ">";
  }
  return "<no exception>";
}

inline bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

/// The whole text of `path` ("" if it cannot be read).
inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// The lines of `file` between the lines holding `begin` and `end`, without
/// their first `indent` characters: a code example a page must show verbatim.
inline std::string example_from_file(const std::string& file, const std::string& begin, const std::string& end,
                                     std::size_t indent) {
  std::istringstream in(read_text(file));
  std::string line, out;
  bool inside = false;
  while (std::getline(in, line)) {
    if (line.find(end) != std::string::npos && inside) break;
    if (inside) out += (line.size() > indent ? line.substr(indent) : std::string()) + "\n";
    if (line.find(begin) != std::string::npos) inside = true;
  }
  return out;
}

/// The documentation page docs/<page> next to this tests directory.
inline std::string docs_page(const std::string& this_file, const std::string& page) {
  return read_text(this_file.substr(0, this_file.find_last_of("/\\") + 1) + "../docs/" + page);
}

}  // namespace colora_test
