// A small CSV table: a header, rows of cells, written atomically.
// Numbers are written with 17 significant digits (round-trip exact for double).
#pragma once

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "colora/core/errors.hpp"
#include "colora/io/atomic_file.hpp"

namespace colora {
namespace io {

class CsvTable {
 public:
  explicit CsvTable(std::vector<std::string> header) : header_(std::move(header)) {}

  /// Starts a new row; fill it with operator<< (strings or numbers).
  CsvTable& row() {
    check_last_row();
    rows_.emplace_back();
    return *this;
  }
  CsvTable& operator<<(const std::string& cell) {
    current().push_back(quote(cell));
    return *this;
  }
  CsvTable& operator<<(const char* cell) { return *this << std::string(cell); }
  CsvTable& operator<<(double v) {
    current().push_back(number(v));
    return *this;
  }
  CsvTable& operator<<(float v) { return *this << double(v); }
  CsvTable& operator<<(long long v) {
    current().push_back(std::to_string(v));
    return *this;
  }
  CsvTable& operator<<(long v) { return *this << static_cast<long long>(v); }
  CsvTable& operator<<(int v) { return *this << static_cast<long long>(v); }
  CsvTable& operator<<(unsigned long v) { return *this << static_cast<long long>(v); }
  CsvTable& operator<<(unsigned long long v) { return *this << static_cast<long long>(v); }
  CsvTable& operator<<(unsigned v) { return *this << static_cast<long long>(v); }

  const std::vector<std::string>& header() const { return header_; }
  size_t rows() const { return rows_.size(); }

  std::string str() const {
    check_last_row();
    std::string out;
    append_line(out, header_);
    for (const auto& r : rows_) append_line(out, r);
    return out;
  }

  /// Writes the table to `path` atomically (temporary file, then rename).
  void write(const std::string& path) const { write_text_atomically(path, str()); }

  /// "nan", "inf", "-inf" or the shortest round-trip representation.
  static std::string number(double v) {
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    std::ostringstream os;
    os.precision(17);
    os << v;
    return os.str();
  }

 private:
  std::vector<std::string>& current() {
    colora::detail::require(!rows_.empty(), "colora::io::CsvTable", "call row() before adding cells");
    return rows_.back();
  }
  void check_last_row() const {
    if (!rows_.empty())
      colora::detail::require(rows_.back().size() == header_.size(), "colora::io::CsvTable", "row ", rows_.size() - 1,
                              " has ", rows_.back().size(), " cells but the header has ", header_.size());
  }
  static std::string quote(const std::string& s) {
    if (s.find_first_of(",\"\n") == std::string::npos) return s;
    std::string q = "\"";
    for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
  }
  static void append_line(std::string& out, const std::vector<std::string>& cells) {
    for (size_t j = 0; j < cells.size(); ++j) {
      if (j) out += ',';
      out += cells[j];
    }
    out += '\n';
  }

  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace io
}  // namespace colora
