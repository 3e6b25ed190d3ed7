// Step 3 of a save: turns plan items into contiguous row-major buffers in memory the checkpointer
// owns and reuses from save to save. Checksums are left to the worker, which computes them just
// before it writes each buffer: the caller's stall stays one memcpy.
#pragma once

#include <cairn/planner.hpp>
#include <cairn/state.hpp>
#include <cairn/storage.hpp>

#include "device/device.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace cairn::detail {

/// A part of a plan that fits a staging budget: sub-items (regions inside the plan's items, in
/// row-major order within each item) and, for each, the plan item it belongs to.
struct Piece {
  std::vector<WriteItem> items;
  std::vector<std::size_t> plan_item;
  std::size_t bytes = 0;
};

/// Bytes of an item's region in the entry's dtype.
std::size_t item_bytes(const SavePlan& plan, const WriteItem& item);

/// Staging memory is split in two halves so that one piece is staged while the other is written.
/// The size of one half of `budget` bytes, a multiple of the staging alignment.
std::size_t half_budget(std::size_t budget) noexcept;

/// Splits the items of `plan` into pieces of at most `piece_bytes` each (a multiple of 64; items
/// larger than that become several sub-items, cut along the outermost dimensions). Throws
/// UsageError when a single element does not fit.
std::vector<Piece> split_into_pieces(const SavePlan& plan, std::size_t piece_bytes);

class Sources;

/// Owns the staging memory of one checkpointer. Not thread-safe: staging runs on the caller's
/// thread, and the memory is only released there. When the state has chunks in CUDA device
/// memory, the staging memory is page-locked and those chunks are copied on the checkpointer's
/// own streams, while the host chunks are copied; staging returns once every copy is complete.
class Staging {
 public:
  /// Stages every item of `plan` (a finished plan for this rank) from `state` into `buffers`,
  /// one per item. With `in_place` false every byte is copied into owned memory. With `in_place`
  /// true, items that are one contiguous range of host memory are written from there; the
  /// others are copied. Throws InternalError when the plan names data the state lacks,
  /// UsageError when a chunk's memory space is wrong, DeviceError when a device copy fails.
  void stage(const SavePlan& plan, const State& state, int rank, bool in_place, std::vector<WriteBuffer>& buffers);

  /// Stages `piece` into half `half` (0 or 1) of owned memory of two halves of `half_bytes`.
  void stage_piece(const Piece& piece, const SavePlan& plan, const State& state, int rank, int half,
                   std::size_t half_bytes, std::vector<WriteBuffer>& buffers);

  /// Bytes of staging memory currently held.
  std::size_t capacity() const noexcept { return m_memory.size(); }
  /// Frees the staging memory.
  void release() noexcept;

 private:
  // Copies items[k] into outs[k], row-major: device items on the copier's streams, host items
  // meanwhile; returns when all are done.
  void copy_items(const Sources& sources, const std::vector<const WriteItem*>& items,
                  const std::vector<std::byte*>& outs);

  HostBuffer m_memory;
  HostBuffer m_scratch;  // device memory spans of regions that are not contiguous there
  DeviceCopier m_copier;
};

}  // namespace cairn::detail
