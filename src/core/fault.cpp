#include "core/fault.hpp"

#include <cairn/error.hpp>

#include <csignal>
#include <cstdlib>
#include <cstring>

#include <unistd.h>

namespace cairn::detail {

void fault_point(const char* step, int rank) {
  const char* spec = std::getenv("CAIRN_FAULT");
  if (spec == nullptr || *spec == '\0') return;
  const std::string text = spec;
  const std::size_t colon = text.find(':');
  if (colon == std::string::npos) return;
  const std::string who = text.substr(0, colon);
  const std::size_t second = text.find(':', colon + 1);
  const std::string where =
      text.substr(colon + 1, second == std::string::npos ? std::string::npos : second - colon - 1);
  const std::string action = second == std::string::npos ? "error" : text.substr(second + 1);
  if (where != step) return;
  if (who != "*" && who != std::to_string(rank)) return;
  if (action == "kill") {
    ::kill(::getpid(), SIGKILL);
    ::pause();  // SIGKILL cannot be blocked: never reached
  }
  if (action == "cuda")  // as a failed CUDA call would report itself
    throw DeviceError(std::string("injected fault (CAIRN_FAULT) in step ") + step +
                      ": cudaErrorLaunchFailure (unspecified launch failure)");
  if (action == "enospc")
    throw StorageError(std::string("injected fault (CAIRN_FAULT) in step ") + step + ": " + std::strerror(ENOSPC));
  throw StorageError(std::string("injected fault (CAIRN_FAULT) in step ") + step);
}

}  // namespace cairn::detail
