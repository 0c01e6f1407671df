// Command-line parsing for the colora program: long flags only
// (--name value or --name=value), every flag declared with a default and a
// help line, unknown flags and bad values reported in one line (exit code 2).
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace colora {
namespace cli {

/// A bad command line: main() prints "colora <cmd>: error: <what>" and exits 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Args {
 public:
  /// argv[first..argc) are the subcommand's arguments.
  Args(std::string command, std::string summary, int argc, char** argv, int first)
      : command_(std::move(command)), summary_(std::move(summary)) {
    for (int i = first; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "--help" || a == "-h") {
        help_ = true;
        continue;
      }
      if (a.rfind("--", 0) != 0 || a.size() <= 2)
        throw UsageError("unexpected argument '" + a + "' (flags are --name value)");
      std::string name = a.substr(2), value;
      const auto eq = name.find('=');
      if (eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
      } else if (i + 1 < argc && !is_flag(argv[i + 1])) {
        value = argv[++i];
      } else {
        value = "";  // a bare switch
      }
      if (given_.count(name)) throw UsageError("flag --" + name + " given twice");
      given_[name] = value;
    }
  }

  bool help_requested() const { return help_; }
  /// Whether --name was given (declared or not).
  bool given(const std::string& name) const { return given_.count(name) != 0; }
  const std::string& command() const { return command_; }

  std::string str(const std::string& name, const std::string& def, const std::string& help) {
    declare(name, def, help);
    auto it = given_.find(name);
    if (it == given_.end()) return def;
    if (it->second.empty() && !help_) throw UsageError("flag --" + name + " needs a value");
    return it->second;
  }

  long long integer(const std::string& name, long long def, const std::string& help, long long lo = INT64_MIN,
                    long long hi = INT64_MAX) {
    const std::string s = str(name, std::to_string(def), help);
    if (help_) return def;
    return parse_integer(name, s, lo, hi);
  }

  double real(const std::string& name, double def, const std::string& help, double lo = -1e308, double hi = 1e308) {
    const std::string s = str(name, format(def), help);
    if (help_) return def;
    return parse_real(name, s, lo, hi);
  }

  std::vector<std::string> list(const std::string& name, const std::string& def, const std::string& help) {
    return split(str(name, def, help));
  }

  std::vector<long long> integers(const std::string& name, const std::string& def, const std::string& help,
                                  long long lo = INT64_MIN, long long hi = INT64_MAX) {
    std::vector<long long> out;
    for (const auto& s : list(name, def, help)) out.push_back(help_ ? 0 : parse_integer(name, s, lo, hi));
    if (!help_ && out.empty()) throw UsageError("flag --" + name + " needs at least one value");
    return out;
  }

  std::vector<double> reals(const std::string& name, const std::string& def, const std::string& help,
                            double lo = -1e308, double hi = 1e308) {
    std::vector<double> out;
    for (const auto& s : list(name, def, help)) out.push_back(help_ ? 0 : parse_real(name, s, lo, hi));
    if (!help_ && out.empty()) throw UsageError("flag --" + name + " needs at least one value");
    return out;
  }

  /// One of `choices`.
  std::string choice(const std::string& name, const std::string& def, const std::vector<std::string>& choices,
                     const std::string& help) {
    std::string all;
    for (const auto& c : choices) all += (all.empty() ? "" : "|") + c;
    const std::string v = str(name, def, help + " (" + all + ")");
    if (help_) return v;
    for (const auto& c : choices)
      if (v == c) return v;
    throw UsageError("flag --" + name + ": '" + v + "' is not one of " + all);
  }

  /// A bare switch (--name), false unless given.
  bool flag(const std::string& name, const std::string& help) {
    declare(name, "", help);
    auto it = given_.find(name);
    if (it == given_.end()) return false;
    if (!it->second.empty() && !help_) throw UsageError("flag --" + name + " takes no value");
    return true;
  }

  /// Call after declaring every flag. Returns true if --help was given (the
  /// help was printed to stdout: the caller returns 0); throws UsageError on
  /// unknown flags.
  bool finish() {
    if (help_) {
      std::printf("usage: colora %s [flags]\n%s\n\nflags:\n", command_.c_str(), summary_.c_str());
      for (const auto& d : declared_)
        std::printf("  --%-18s %s%s\n", d.name.c_str(), d.help.c_str(),
                    d.def.empty() ? "" : (" [default: " + d.def + "]").c_str());
      std::printf("  --%-18s %s\n", "help", "print this help");
      return true;
    }
    for (const auto& g : given_)
      if (!names_.count(g.first))
        throw UsageError("unknown flag --" + g.first + " (see colora " + command_ + " --help)");
    return false;
  }

  static std::string format(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
  }

 private:
  struct Decl {
    std::string name, def, help;
  };
  static bool is_flag(const char* s) { return s[0] == '-' && s[1] == '-' && s[2] != '\0'; }
  static std::vector<std::string> split(const std::string& s) {
    std::vector<std::string> out;
    std::string cur;
    for (char c : s) {
      if (c == ',') {
        if (!cur.empty()) out.push_back(cur);
        cur.clear();
      } else {
        cur += c;
      }
    }
    if (!cur.empty()) out.push_back(cur);
    return out;
  }
  void declare(const std::string& name, const std::string& def, const std::string& help) {
    if (names_.insert(name).second) declared_.push_back({name, def, help});
  }
  static long long parse_integer(const std::string& name, const std::string& s, long long lo, long long hi) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(s, &used);
    } catch (...) {
      used = 0;
    }
    if (used != s.size() || s.empty()) throw UsageError("flag --" + name + ": '" + s + "' is not an integer");
    if (v < lo || v > hi)
      throw UsageError("flag --" + name + ": " + s + " is out of range [" + std::to_string(lo) + ", " +
                       std::to_string(hi) + "]");
    return v;
  }
  static double parse_real(const std::string& name, const std::string& s, double lo, double hi) {
    size_t used = 0;
    double v = 0;
    try {
      v = std::stod(s, &used);
    } catch (...) {
      used = 0;
    }
    if (used != s.size() || s.empty() || !(v == v))
      throw UsageError("flag --" + name + ": '" + s + "' is not a number");
    if (v < lo || v > hi)
      throw UsageError("flag --" + name + ": " + s + " is out of range [" + format(lo) + ", " + format(hi) + "]");
    return v;
  }

  std::string command_, summary_;
  bool help_ = false;
  std::map<std::string, std::string> given_;
  std::set<std::string> names_;
  std::vector<Decl> declared_;
};

}  // namespace cli
}  // namespace colora
