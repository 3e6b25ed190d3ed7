#include "comm/broadcast.hpp"

#include <algorithm>
#include <cstdint>

namespace cairn::detail {

void broadcast_bytes(ProcessGroup& group, std::vector<std::byte>& bytes, int root) {
  std::uint64_t size = bytes.size();
  group.broadcast(&size, sizeof size, root);
  bytes.resize(static_cast<std::size_t>(size));
  constexpr std::size_t piece = std::size_t{1} << 30;  // MPI counts are ints
  for (std::size_t at = 0; at < bytes.size(); at += piece)
    group.broadcast(bytes.data() + at, std::min(piece, bytes.size() - at), root);
}

}  // namespace cairn::detail
