// Save planning: what each rank writes, agreed before any byte moves (DCP's local plan, global
// plan and finish-plan steps). The default planner can be replaced by the caller's own.
#pragma once

#include <cairn/dtype.hpp>
#include <cairn/state.hpp>

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace cairn {

class ProcessGroup;

/// Which of the three entry kinds an EntryInfo describes.
enum class EntryKind : std::uint8_t { Array = 0, Bytes = 1, Scalar = 2 };
/// Value type of a scalar entry.
enum class ScalarType : std::uint8_t { None = 0, Int64 = 1, Float64 = 2, String = 3 };

/// A box in a global index space.
struct Region {
  Extents offset;
  Extents shape;
  friend bool operator==(const Region& a, const Region& b) { return a.offset == b.offset && a.shape == b.shape; }
};

/// A scalar's saved value (monostate until the save has read it).
using ScalarValue = std::variant<std::monostate, std::int64_t, double, std::string>;

/// The structure of one entry as it is stored: what a plan fixes and what metadata records.
///
/// Arrays are stored with their global shape. Bytes are stored as a 1-D uint8 array: replicated
/// blobs whole, rank-local blobs side by side in saved-rank order (`rank_offsets` has world+1
/// elements). Rank-local scalars are a 1-D array with one element per saved rank. Replicated
/// scalars are attributes and have an empty `global_shape`.
struct EntryInfo {
  std::string name;
  EntryKind kind = EntryKind::Array;
  Distribution distribution = Distribution::Sharded;
  DType dtype = DType::UInt8;
  ScalarType scalar_type = ScalarType::None;
  Extents global_shape;
  std::vector<std::int64_t> rank_offsets;
  /// The most write items any one rank has for this entry (collective write rounds).
  std::int32_t max_items_per_rank = 0;
  /// Arrays: the lossless filter on disk and its level (0: the filter's default).
  Compression compression = Compression::None;
  std::int32_t compression_level = 0;
  /// Replicated scalars: the value (filled at commit, not part of the plan's structure).
  ScalarValue value;
};

/// One region of one entry that one rank writes.
struct WriteItem {
  /// Index into the plan's entries.
  std::int32_t entry = 0;
  /// Index of the source chunk among this rank's chunks of the entry (0 for bytes and scalars).
  std::int32_t chunk = 0;
  /// The global region this item writes.
  Region region;
  /// Global index of the source chunk's first element (blobs: where this rank's blob starts).
  Extents source_offset;
};

/// A plan: the entries and the items one rank writes. A local plan's entries are that rank's; a
/// finished plan's entries are the global list, identical on every rank.
struct SavePlan {
  std::vector<EntryInfo> entries;
  std::vector<WriteItem> items;
};

/// The global plan, built on rank 0: the global entry list and each rank's items.
struct GlobalPlan {
  std::vector<EntryInfo> entries;
  std::vector<std::vector<WriteItem>> items_per_rank;
};

/// Decides who writes what. Only create_global_plan runs on rank 0 alone; the others run on every
/// rank. A planner throws UsageError, naming the entry and rank, for an inconsistent state.
class Planner {
 public:
  virtual ~Planner() = default;
  /// Not collective. Describes what this rank holds of `state` (validated already).
  virtual SavePlan create_local_plan(const State& state, int rank, int world_size) = 0;
  /// Not collective; runs on rank 0 with every rank's local plan, indexed by rank. Merges entries,
  /// checks them across ranks, and assigns every region of the checkpoint to exactly one rank.
  virtual GlobalPlan create_global_plan(std::vector<SavePlan> local_plans) = 0;
  /// Not collective. Adjusts the plan this rank received from rank 0; the default returns it.
  virtual SavePlan finish_plan(SavePlan central_plan) { return central_plan; }
};

/// Cairn's planner: one dtype and global shape per name across ranks, chunks inside the shape, no
/// region claimed by two ranks unless replicated. Replicated arrays are written once, their bytes
/// spread across ranks in slabs of the first dimension. Sharded chunks larger than
/// `max_item_bytes` are written as several items, slabs of the first dimension: each is a chunk of
/// the checkpoint with its own checksums, so a load onto another decomposition reads and checks
/// little more than the slabs it needs (chunks of 8 MiB and more are also checked in blocks of
/// rows, ChunkRecord::block_rows).
class DefaultPlanner : public Planner {
 public:
  /// Replicated arrays at least `replicated_split_bytes` large are split among ranks; smaller ones
  /// go whole to the least loaded rank. 0 as `max_item_bytes`: never split a sharded chunk.
  explicit DefaultPlanner(std::int64_t replicated_split_bytes = std::int64_t{1} << 20,
                          std::int64_t max_item_bytes = std::int64_t{16} << 20)
      : m_replicated_split_bytes(replicated_split_bytes), m_max_item_bytes(max_item_bytes) {}

  SavePlan create_local_plan(const State& state, int rank, int world_size) override;
  GlobalPlan create_global_plan(std::vector<SavePlan> local_plans) override;

 private:
  std::int64_t m_replicated_split_bytes;
  std::int64_t m_max_item_bytes;
};

}  // namespace cairn
