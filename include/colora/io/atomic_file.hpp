// Whole-or-nothing, durable file writes (docs/io.md): the content goes to a
// new temporary file `<path>.tmp.<pid>.<16 hex digits>` in the same
// directory (created with O_EXCL, so it never clobbers anything), is flushed,
// checked and fsync'ed, then renamed over the target (rename(2) is atomic on
// POSIX file systems) and the directory is fsync'ed. A reader never sees half
// a file, and after a crash the target holds the old or the new content.
// Temporaries left in that directory by dead processes are removed (once per
// directory and process).
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

namespace colora {
namespace io {
namespace detail {

/// 16 lowercase hex digits that no other call of this process returns: a
/// process-wide counter (high 32 bits) and the clock mixed with the thread
/// (low 32 bits). With the process id in the name this makes temporaries
/// unique on a host without any random generator; O_EXCL settles the rest.
inline std::string unique_hex64() {
  static std::atomic<std::uint32_t> counter{0};
  std::uint64_t t = std::uint64_t(std::chrono::system_clock::now().time_since_epoch().count());
  t ^= std::uint64_t(std::hash<std::thread::id>{}(std::this_thread::get_id())) * 0x9E3779B97F4A7C15ull;
  t = (t ^ (t >> 30)) * 0xBF58476D1CE4E5B9ull;
  t = (t ^ (t >> 27)) * 0x94D049BB133111EBull;
  const std::uint64_t x = (std::uint64_t(counter.fetch_add(1) + 1) << 32) | ((t ^ (t >> 31)) & 0xffffffffull);
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(x));
  return buf;
}

/// A fresh temporary name for `path`: "<path>.tmp.<pid>.<16 hex digits>".
inline std::string temporary_name(const std::string& path) {
  return path + ".tmp." + std::to_string(::getpid()) + "." + unique_hex64();
}

/// Directory and file name of `path` ("." for a bare name).
inline std::pair<std::string, std::string> split_path(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {".", path};
  return {slash == 0 ? "/" : path.substr(0, slash), path.substr(slash + 1)};
}

/// Removes the files `<name>.tmp.<pid>.<16 hex digits>` in `dir` whose
/// process no longer exists (kill(pid, 0) fails with ESRCH): the temporaries
/// that killed writers left. Exactly that pattern, nothing else; best effort
/// (errors are ignored). A directory is scanned once per process (the first
/// write into it), so writing many files into one directory stays linear.
inline void remove_stale_temporaries(const std::string& dir) {
  static std::mutex mutex;
  // A directory is known by device, inode and birth time (statx; 0 where the
  // file system does not record it): an inode reused by a new directory is
  // a new directory.
  static std::set<std::array<std::uint64_t, 5>> scanned;
  struct statx sx;
  if (::statx(AT_FDCWD, dir.c_str(), 0, STATX_INO | STATX_BTIME, &sx) != 0) return;
  const bool born = (sx.stx_mask & STATX_BTIME) != 0;
  const std::array<std::uint64_t, 5> key = {sx.stx_dev_major, sx.stx_dev_minor, sx.stx_ino,
                                            born ? std::uint64_t(sx.stx_btime.tv_sec) : 0,
                                            born ? std::uint64_t(sx.stx_btime.tv_nsec) : 0};
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (!scanned.insert(key).second) return;
  }
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    // <name>.tmp.<pid>.<16 hex>: find ".tmp." followed by digits, '.', 16 hex digits, end.
    if (name.size() < 5 + 1 + 1 + 16) continue;
    const std::size_t hex = name.size() - 16;
    if (name[hex - 1] != '.') continue;
    const std::size_t tag = name.rfind(".tmp.", hex - 1);
    if (tag == std::string::npos || tag == 0) continue;
    const std::size_t digits = tag + 5;
    if (digits >= hex - 1 || hex - 1 - digits > 10) continue;
    long long pid = 0;
    bool ok = true;
    for (std::size_t i = digits; i < hex - 1 && ok; ++i) {
      ok = name[i] >= '0' && name[i] <= '9';
      pid = pid * 10 + (name[i] - '0');
    }
    for (std::size_t i = hex; i < name.size() && ok; ++i)
      ok = (name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f');
    if (!ok || pid <= 0 || pid > INT_MAX) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == -1 && errno == ESRCH) ::unlink((dir + "/" + name).c_str());
  }
  ::closedir(d);
}

/// fsync(fd), ignoring file systems that cannot sync this kind of file.
inline bool sync_fd(int fd) {
  if (::fsync(fd) == 0) return true;
  return errno == EINVAL || errno == EROFS || errno == ENOTSUP || errno == EOPNOTSUPP;
}

/// Creates `dir` and its parents; std::runtime_error
/// "<where>: '<dir>': cannot create the directory: <reason>" when it cannot
/// (every writer of a directory of files uses this one).
inline void create_directory(const std::string& dir, const char* where) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir))
    throw std::runtime_error(std::string(where) + ": '" + dir + "': cannot create the directory: " + ec.message());
}

}  // namespace detail

/// Calls `write(std::ostream&)` on a binary stream for a new temporary file
/// next to `path`, fsyncs it, renames it to `path` and fsyncs the directory.
/// Throws std::runtime_error naming the file if anything fails; the temporary
/// is removed and `path` is untouched.
template <class Writer>
void write_file_atomically(const std::string& path, Writer&& write) {
  const auto parts = detail::split_path(path);
  detail::remove_stale_temporaries(parts.first);
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; attempt < 16 && fd < 0; ++attempt) {
    tmp = detail::temporary_name(path);
    fd = ::open(tmp.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0666);  // 0666 & ~umask
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0)
    throw std::runtime_error("colora::io: cannot create a temporary file next to '" + path +
                             "': " + std::strerror(errno));
  auto fail = [&](const std::string& why) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw std::runtime_error("colora::io: " + why + " '" + path + "'");
  };
  {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) fail("cannot open the temporary file '" + tmp + "' for");
    try {
      write(static_cast<std::ostream&>(out));
    } catch (...) {
      out.close();
      ::close(fd);
      ::unlink(tmp.c_str());
      throw;
    }
    out.close();
    if (!out) fail("write failed (disk full or I/O error) on");
  }
  // fsync through our own descriptor: it flushes the data written by the stream.
  if (!detail::sync_fd(fd)) fail(std::string("fsync failed (") + std::strerror(errno) + ") on");
  if (::close(fd) != 0) {
    ::unlink(tmp.c_str());
    throw std::runtime_error("colora::io: close failed (I/O error) on the temporary file for '" + path + "'");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw std::runtime_error("colora::io: cannot rename the temporary file onto '" + path + "': " + std::strerror(err));
  }
  // Make the rename durable. A directory that cannot be opened or synced on
  // this file system is skipped; a real I/O error is reported.
  const int dfd = ::open(parts.first.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    const bool ok = detail::sync_fd(dfd) || errno == EBADF || errno == EACCES;
    const int err = errno;
    ::close(dfd);
    if (!ok)
      throw std::runtime_error("colora::io: fsync of the directory of '" + path + "' failed: " + std::strerror(err));
  }
}

/// Writes a text string atomically.
inline void write_text_atomically(const std::string& path, const std::string& text) {
  write_file_atomically(path,
                        [&](std::ostream& os) { os.write(text.data(), static_cast<std::streamsize>(text.size())); });
}

}  // namespace io
}  // namespace colora
