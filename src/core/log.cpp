#include "core/log.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace cairn::detail {

LogLevel log_level() noexcept {
  static const LogLevel level = [] {
    const char* text = std::getenv("CAIRN_LOG");
    if (text == nullptr || *text == '\0') return LogLevel::Warn;
    if (std::strcmp(text, "off") == 0) return LogLevel::Off;
    if (std::strcmp(text, "error") == 0) return LogLevel::Error;
    if (std::strcmp(text, "info") == 0) return LogLevel::Info;
    if (std::strcmp(text, "debug") == 0) return LogLevel::Debug;
    return LogLevel::Warn;
  }();
  return level;
}

void log(LogLevel level, const std::string& message) noexcept {
  if (!log_enabled(level)) return;
  // One fprintf per message: lines from several threads or ranks do not interleave mid-line.
  std::fprintf(stderr, "cairn: %s\n", message.c_str());
}

}  // namespace cairn::detail
