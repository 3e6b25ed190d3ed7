// Broadcast of a byte vector whose size only the root knows.
#pragma once

#include <cairn/process_group.hpp>

#include <cstddef>
#include <vector>

namespace cairn::detail {

/// Collective. Copies `bytes` from `root` to every rank, resizing it there; any size (sent in
/// pieces below MPI's int count limit).
void broadcast_bytes(ProcessGroup& group, std::vector<std::byte>& bytes, int root);

}  // namespace cairn::detail
