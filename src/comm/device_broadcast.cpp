// ProcessGroup::broadcast_device through the host: the path of every group without NCCL.
#include <cairn/error.hpp>
#include <cairn/process_group.hpp>

#include "comm/agree.hpp"
#include "device/device.hpp"

#include <algorithm>
#include <string>

namespace cairn {

void ProcessGroup::broadcast_device(void* data, std::size_t bytes, int root, int device) {
  const std::string what =
      "broadcast of " + std::to_string(bytes) + " bytes of device memory from rank " + std::to_string(root);
  detail::HostBuffer host;
  detail::DeviceCopier copier;
  // Each CUDA step is agreed on before the next collective: a rank whose copy failed must not
  // leave the others waiting in broadcast().
  detail::agree_on(*this, what + " (to host)", [&] {
    host.reserve(bytes, true);
    if (rank() != root) return;
    copier.to_host(device, host.data(), data, bytes, what);
    copier.synchronize(what);
  });
  constexpr std::size_t piece = std::size_t{1} << 30;  // below MPI's int count limit
  for (std::size_t at = 0; at < bytes; at += piece) broadcast(host.data() + at, std::min(piece, bytes - at), root);
  detail::agree_on(*this, what + " (to device)", [&] {
    if (rank() == root) return;
    copier.to_device(device, data, host.data(), bytes, what);
    copier.synchronize(what);
  });
}

}  // namespace cairn
