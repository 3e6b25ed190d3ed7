#include "core/fault.hpp"

#include <cairn/error.hpp>

#include <cstdlib>

namespace cairn::detail {

void fault_point(const char* step, int rank) {
  const char* spec = std::getenv("CAIRN_FAULT");
  if (spec == nullptr || *spec == '\0') return;
  const std::string text = spec;
  const std::size_t colon = text.find(':');
  if (colon == std::string::npos) return;
  const std::string who = text.substr(0, colon);
  if (text.substr(colon + 1) != step) return;
  if (who != "*" && who != std::to_string(rank)) return;
  throw StorageError(std::string("injected fault (CAIRN_FAULT) in step ") + step);
}

}  // namespace cairn::detail
