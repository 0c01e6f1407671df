// PNG plots through gnuplot (Debian package gnuplot-nox, installed by
// .ci/setup). When gnuplot is missing, the CSV is still written and one line
// says how to get the plots. The PNG is written atomically: gnuplot renders
// to a temporary file that is then renamed.
//
// No shell is involved: gnuplot is found by searching PATH and run with
// fork/exec (the script path as argv[1]); every file name pasted into a
// script goes through plot::quote_path, so output paths may hold any bytes.
#pragma once

#include <colora/io/atomic_file.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace colora {
namespace plot {

/// `s` as a gnuplot string expression that stands for exactly these bytes:
/// a single-quoted literal (no escapes, no backquote or macro substitution;
/// a quote is doubled), with newlines and carriage returns, which would end
/// the script line, joined in as "\n" and "\r" (the `.` operator).
inline std::string quote(const std::string& s) {
  std::string r = "'";
  for (char c : s) {
    if (c == '\n' || c == '\r')
      r += std::string("'.\"") + (c == '\n' ? "\\n" : "\\r") + "\".'";
    else
      r += c == '\'' ? std::string("''") : std::string(1, c);
  }
  return r + "'";
}

/// A file name for a gnuplot script or command line: relative names get "./"
/// so that gnuplot never reads them as "<command", "|command", "-", "+" or "~/...".
inline std::string safe_path(const std::string& path) { return path.empty() || path[0] != '/' ? "./" + path : path; }

/// quote(safe_path(path)): a file name as a gnuplot string expression.
inline std::string quote_path(const std::string& path) { return quote(safe_path(path)); }

/// The gnuplot executable found on PATH (no shell), or "" if there is none.
inline std::string find_gnuplot() {
  const char* env = std::getenv("PATH");
  const std::string path = env && *env ? env : "/usr/local/bin:/usr/bin:/bin";
  for (std::size_t from = 0;;) {
    const std::size_t colon = path.find(':', from);
    const std::string dir = path.substr(from, colon == std::string::npos ? std::string::npos : colon - from);
    const std::string exe = (dir.empty() ? std::string(".") : dir) + "/gnuplot";
    struct stat st;
    if (::stat(exe.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(exe.c_str(), X_OK) == 0) return exe;
    if (colon == std::string::npos) return "";
    from = colon + 1;
  }
}

inline bool gnuplot_available() {
  static const bool ok = !find_gnuplot().empty();
  return ok;
}

/// Runs `gnuplot <script>` (no shell; stderr to /dev/null; on Linux the child
/// is killed when the calling thread, here the main one, dies). Returns "" on
/// success, else why it failed.
inline std::string run_gnuplot(const std::string& script_path) {
  const std::string exe = find_gnuplot();
  if (exe.empty()) return "gnuplot not found on PATH";
  const std::string arg = safe_path(script_path);
  char* const argv[] = {const_cast<char*>("gnuplot"), const_cast<char*>(arg.c_str()), nullptr};
  const pid_t parent = ::getpid();
  const pid_t child = ::fork();
  if (child < 0) return std::string("fork failed: ") + std::strerror(errno);
  if (child == 0) {  // only async-signal-safe calls from here on
#ifdef __linux__
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) ::_exit(126);
#endif
    if (::getppid() != parent) ::_exit(126);  // the parent died before prctl
    const int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null >= 0) ::dup2(null, 2);
    ::execv(exe.c_str(), argv);
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(child, &status, 0) < 0)
    if (errno != EINTR) return std::string("waitpid failed: ") + std::strerror(errno);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
  if (WIFEXITED(status)) return "gnuplot exited with status " + std::to_string(WEXITSTATUS(status));
  return "gnuplot was killed by signal " + std::to_string(WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/// Runs `script` (gnuplot commands, without any "set output") rendering into
/// `png_path`. Returns true if the PNG was written; otherwise prints one line
/// to stderr saying why (and how to get plots) and returns false.
inline bool render_png(const std::string& png_path, const std::string& script, int width = 900, int height = 600) {
  if (!gnuplot_available()) {
    std::fprintf(stderr,
                 "colora: gnuplot not found, skipped %s (the CSV is written; run `bash .ci/setup` or "
                 "`apt-get install gnuplot-nox` for plots)\n",
                 png_path.c_str());
    return false;
  }
  // Unique per process and call; ends in .png (not a write_file_atomically temporary).
  const std::string tmp_png = io::detail::temporary_name(png_path) + ".png";
  const std::string script_path = png_path + ".gp";
  std::string full = "set terminal pngcairo size " + std::to_string(width) + "," + std::to_string(height) +
                     " enhanced font 'Sans,10'\nset output " + quote_path(tmp_png) + "\n" + script + "\nunset output\n";
  io::write_text_atomically(script_path, full);
  std::string why = run_gnuplot(script_path);
  if (why.empty() && std::rename(tmp_png.c_str(), png_path.c_str()) != 0)
    why = std::string("cannot rename the PNG: ") + std::strerror(errno);
  if (!why.empty()) {
    std::remove(tmp_png.c_str());
    std::fprintf(stderr, "colora: gnuplot failed on %s: %s (script kept for inspection)\n", script_path.c_str(),
                 why.c_str());
    return false;
  }
  return true;
}

}  // namespace plot
}  // namespace colora
