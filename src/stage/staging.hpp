// Step 3 of a save: turns plan items into contiguous row-major buffers, with their checksums.
#pragma once

#include <cairn/planner.hpp>
#include <cairn/state.hpp>
#include <cairn/storage.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace cairn::detail {

/// Owns the staging memory of one checkpointer and reuses it from save to save.
class Staging {
 public:
  /// Returns one buffer per item of `plan` (a finished plan for this rank), taking bytes from
  /// `state`. Items already contiguous and row-major in caller memory are used in place; others
  /// are copied. `checksums` receives each item's xxh3-64, in item order, computed as the bytes
  /// are copied rather than in a second pass. Throws InternalError when the plan names data the
  /// state does not have.
  std::vector<WriteBuffer> stage(const SavePlan& plan, const State& state, int rank,
                                 std::vector<std::uint64_t>& checksums);

  /// Bytes of staging memory currently held.
  std::size_t capacity() const noexcept;

 private:
  std::vector<std::vector<std::byte>> m_buffers;
};

}  // namespace cairn::detail
