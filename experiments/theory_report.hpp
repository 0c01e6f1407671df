// Printing and writing a GuaranteeReport (colora theory, colora recovery).
#pragma once

#include <colora/diagnostics/guarantee_report.hpp>
#include <colora/io/csv.hpp>

#include <cmath>
#include <cstdio>
#include <string>

namespace colora {
namespace exp {

/// The report as a table on stdout: quantity, value, 95 % interval (when any).
inline void print_guarantee_report(const GuaranteeReport& r) {
  std::printf(
      "guarantee report (GRIP: %s; rho_measured on max(dist_A, dist_B) of the run, rho_measured_noiseless on the\n"
      "  steps of the same solver on the noiseless twin, rho_predicted = spectral radius of the iteration's Jacobian;\n"
      "  floor vs oracle core floor)\n",
      r.delta_method.c_str());
  std::printf("  %-26s %14s %14s %14s\n", "quantity", "value", "ci_low", "ci_high");
  for (const auto& row : r.rows()) {
    if (std::isnan(row.ci_low))
      std::printf("  %-26s %14.6g\n", row.quantity.c_str(), row.value);
    else
      std::printf("  %-26s %14.6g %14.6g %14.6g\n", row.quantity.c_str(), row.value, row.ci_low, row.ci_high);
  }
  std::printf("verdict: %s\n", r.verdict_text.c_str());
}

/// Writes `path` with the columns quantity,value,ci_low,ci_high.
inline void write_guarantee_csv(const GuaranteeReport& r, const std::string& path) {
  io::CsvTable t({"quantity", "value", "ci_low", "ci_high"});
  for (const auto& row : r.rows()) t.row() << row.quantity << row.value << row.ci_low << row.ci_high;
  t.write(path);
}

}  // namespace exp
}  // namespace colora
