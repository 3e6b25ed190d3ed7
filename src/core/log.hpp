// Diagnostics on stderr, by level, chosen with CAIRN_LOG=off|error|warn|info|debug (default warn).
#pragma once

#include <string>

namespace cairn::detail {

enum class LogLevel { Off = 0, Error = 1, Warn = 2, Info = 3, Debug = 4 };

/// The level set by CAIRN_LOG, read once per process.
LogLevel log_level() noexcept;
/// True when messages of `level` are printed.
inline bool log_enabled(LogLevel level) noexcept {
  return level <= log_level();
}
/// Prints "cairn: <message>" on one line of stderr when `level` is enabled.
void log(LogLevel level, const std::string& message) noexcept;

}  // namespace cairn::detail
