#include "core/validate.hpp"

#include <cairn/error.hpp>

#include "core/checksum.hpp"
#include "core/compression.hpp"
#include "core/names.hpp"
#include "core/region.hpp"

#include <cstring>
#include <string>
#include <string_view>

namespace cairn::detail {

namespace {

[[noreturn]] void fail(const Entry& entry, int rank, const std::string& why) {
  throw UsageError("entry '" + entry.name + "' on rank " + std::to_string(rank) + ": " + why);
}

std::string chunk_label(std::size_t c) {
  return "chunk " + std::to_string(c);
}

// The checks of a chunk that hold or fail whatever the state's structure: repeated on every save.
bool chunk_pointers_ok(const Chunk& chunk, std::size_t ndim) {
  if (chunk.data == nullptr) return false;
  if (chunk.layout != Layout::RowMajor && chunk.layout != Layout::ColumnMajor) return false;
  if (!chunk.strides.empty()) {
    if (chunk.strides.size() != ndim) return false;
    for (std::int64_t s : chunk.strides)
      if (s <= 0) return false;
  }
  return true;
}

void validate_array(const Entry& entry, const ArrayEntry& array, int rank, Purpose purpose,
                    std::vector<BoxRef>& boxes) {
  if (purpose == Purpose::Save) {  // a load decompresses whatever the checkpoint holds
    if (const std::string problem = compression_problem(array.compression, array.compression_level); !problem.empty())
      fail(entry, rank, problem);
    if (!compression_built(array.compression))
      throw UnsupportedError("entry '" + entry.name + "' on rank " + std::to_string(rank) + ": this Cairn was built " +
                             "without " + compression_name(array.compression) +
                             " compression (install libzstd-dev and rebuild Cairn, or use Compression::Deflate)");
  }
  if (!dtype_is_valid(array.dtype))
    fail(entry, rank, "unknown dtype value " + std::to_string(static_cast<unsigned>(array.dtype)));
  if (array.global_shape.empty() || array.global_shape.size() > 32)
    fail(entry, rank, "an array needs 1 to 32 dimensions, not " + std::to_string(array.global_shape.size()));
  for (std::size_t d = 0; d < array.global_shape.size(); ++d)
    if (array.global_shape[d] <= 0)
      fail(entry, rank,
           "global extent " + std::to_string(array.global_shape[d]) + " in dimension " + std::to_string(d) +
               " is not positive");
  const std::size_t ndim = array.global_shape.size();
  if (entry.distribution == Distribution::RankLocal)
    fail(entry, rank, "arrays are sharded or replicated; use a sharded array with one chunk per rank");
  if (entry.distribution == Distribution::Replicated && array.chunks.empty())
    fail(entry, rank, "a replicated array must be held by every rank, and this rank has no chunk of it");
  boxes.clear();
  for (std::size_t c = 0; c < array.chunks.size(); ++c) {
    const Chunk& chunk = array.chunks[c];
    if (chunk.offset.size() != ndim || chunk.shape.size() != ndim)
      fail(entry, rank,
           chunk_label(c) + " has " + std::to_string(chunk.shape.size()) + " dimensions, the array " +
               std::to_string(ndim));
    if (chunk.data == nullptr) fail(entry, rank, chunk_label(c) + " has a null data pointer");
    if (chunk.layout != Layout::RowMajor && chunk.layout != Layout::ColumnMajor)
      fail(entry, rank, chunk_label(c) + " has an unknown layout");
    if (!chunk.strides.empty()) {
      if (chunk.strides.size() != ndim) fail(entry, rank, chunk_label(c) + " has strides of the wrong rank");
      for (std::int64_t s : chunk.strides)
        if (s <= 0) fail(entry, rank, chunk_label(c) + " has a non-positive stride");
    }
    for (std::size_t d = 0; d < ndim; ++d) {
      if (chunk.shape[d] <= 0)
        fail(entry, rank,
             chunk_label(c) + " has extent " + std::to_string(chunk.shape[d]) + " in dimension " + std::to_string(d) +
                 " (extents must be positive)");
      if (chunk.offset[d] < 0 || chunk.offset[d] > array.global_shape[d] - chunk.shape[d])
        fail(entry, rank,
             chunk_label(c) + " " + to_string(Region{chunk.offset, chunk.shape}) + " lies outside the global shape " +
                 to_string(array.global_shape));
    }
    boxes.push_back(BoxRef{chunk.offset.data(), chunk.shape.data()});
  }
  std::size_t a = 0, b = 0;
  if (find_overlap(boxes, ndim, a, b)) {
    const Chunk& first = array.chunks[a];
    const Chunk& second = array.chunks[b];
    fail(entry, rank,
         "chunks " + std::to_string(a) + " " + to_string(Region{first.offset, first.shape}) + " and " +
             std::to_string(b) + " " + to_string(Region{second.offset, second.shape}) + " overlap");
  }
}

void validate_bytes(const Entry& entry, const BytesEntry& bytes, int rank, Purpose purpose) {
  if (entry.distribution == Distribution::Sharded) fail(entry, rank, "blobs are replicated or rank-local, not sharded");
  if (bytes.all_ranks != nullptr) {
    if (purpose == Purpose::Save) fail(entry, rank, "add_bytes_from_all_ranks() entries can only be loaded");
    return;
  }
  if (bytes.vector == nullptr && bytes.data == nullptr && bytes.size != 0)
    fail(entry, rank, "the blob has a null data pointer");
}

void validate_scalar(const Entry& entry, const ScalarEntry& scalar, int rank) {
  if (entry.distribution == Distribution::Sharded)
    fail(entry, rank, "scalars are replicated or rank-local, not sharded");
  const bool null = std::visit([](auto* p) { return p == nullptr; }, scalar.target);
  if (null) fail(entry, rank, "the scalar has a null pointer");
  if (std::holds_alternative<std::string*>(scalar.target) && entry.distribution != Distribution::Replicated)
    fail(entry, rank, "string scalars are replicated; save per-rank text as rank-local bytes");
}

// The names of a state in an open-addressing table: duplicates and group collisions in O(n)
// expected time, with no copy of any name.
class NameTable {
 public:
  explicit NameTable(const std::vector<Entry>& entries) : m_entries(entries) {
    std::size_t capacity = 16;
    while (capacity < 2 * entries.size()) capacity *= 2;
    m_slots.assign(capacity, Slot{});
    m_mask = capacity - 1;
  }

  // Adds entry `index`'s name; false when an earlier entry has it already.
  bool insert(std::size_t index) {
    const std::string_view name = m_entries[index].name;
    const std::uint64_t hash = checksum(name.data(), name.size());
    for (std::size_t s = hash & m_mask;; s = (s + 1) & m_mask) {
      Slot& slot = m_slots[s];
      if (slot.index == empty) {
        slot = Slot{hash, static_cast<std::uint32_t>(index)};
        return true;
      }
      if (slot.hash == hash && m_entries[slot.index].name == name) return false;
    }
  }

  bool contains(std::string_view name) const {
    const std::uint64_t hash = checksum(name.data(), name.size());
    for (std::size_t s = hash & m_mask;; s = (s + 1) & m_mask) {
      const Slot& slot = m_slots[s];
      if (slot.index == empty) return false;
      if (slot.hash == hash && m_entries[slot.index].name == name) return true;
    }
  }

 private:
  static constexpr std::uint32_t empty = 0xffffffffu;
  struct Slot {
    std::uint64_t hash = 0;
    std::uint32_t index = empty;
  };
  const std::vector<Entry>& m_entries;
  std::vector<Slot> m_slots;
  std::size_t m_mask = 0;
};

// What group_collision() reports, found through the table: the smallest name (in sorted order)
// that is the group of another entry, and the smallest of the names under it.
std::string group_collision(const std::vector<Entry>& entries, const NameTable& table) {
  std::string_view group;
  bool found = false;
  for (const Entry& entry : entries) {
    const std::string_view name = entry.name;
    for (std::size_t p = name.find('/'); p != std::string_view::npos; p = name.find('/', p + 1)) {
      const std::string_view prefix = name.substr(0, p);
      if ((!found || prefix < group) && table.contains(prefix)) {
        group = prefix;
        found = true;
      }
    }
  }
  if (!found) return {};
  const std::string prefix = std::string(group) + "/";
  std::string_view child;
  bool have_child = false;
  for (const Entry& entry : entries) {
    const std::string_view name = entry.name;
    if (name.compare(0, prefix.size(), prefix) == 0 && (!have_child || name < child)) {
      child = name;
      have_child = true;
    }
  }
  return "entry '" + std::string(group) + "' is also the group of entry '" + std::string(child) + "'";
}

void validate_everything(const State& state, int rank, Purpose purpose) {
  const std::vector<Entry>& entries = state.entries();
  NameTable names(entries);
  std::vector<BoxRef> boxes;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const Entry& entry = entries[i];
    if (const std::string problem = name_problem(entry.name); !problem.empty())
      fail(entry, rank, "invalid name: " + problem);
    if (!names.insert(i)) fail(entry, rank, "the name is used by two entries");
    if (entry.distribution != Distribution::Sharded && entry.distribution != Distribution::Replicated &&
        entry.distribution != Distribution::RankLocal)
      fail(entry, rank, "unknown distribution");
    if (entry.source_rank >= 0) {
      if (entry.distribution != Distribution::RankLocal)
        fail(entry, rank, "only rank-local entries take a source rank");
      if (purpose == Purpose::Save) fail(entry, rank, "a source rank applies to loading only");
    }
    if (const auto* array = std::get_if<ArrayEntry>(&entry.value)) validate_array(entry, *array, rank, purpose, boxes);
    if (const auto* bytes = std::get_if<BytesEntry>(&entry.value)) validate_bytes(entry, *bytes, rank, purpose);
    if (const auto* scalar = std::get_if<ScalarEntry>(&entry.value)) validate_scalar(entry, *scalar, rank);
  }
  if (const std::string collision = group_collision(entries, names); !collision.empty())
    throw UsageError("on rank " + std::to_string(rank) + ": " + collision +
                     " (an HDF5 path cannot be both a dataset and a group)");
}

// Everything the checks of validate_everything() read, except what chunk_pointers_ok() and the
// pointer checks of blobs and scalars read (`pointers_ok` says whether those pass), and the blob
// sizes, which a save's plan follows.
std::uint64_t validated_structure(const State& state, Purpose purpose, bool& pointers_ok) {
  StructureHash h;
  pointers_ok = true;
  h.u64(static_cast<std::uint64_t>(purpose));
  h.u64(state.size());
  for (const Entry& entry : state.entries()) {
    h.text(entry.name);
    h.u64(static_cast<std::uint64_t>(entry.distribution) | std::uint64_t{entry.value.index()} << 8 |
          static_cast<std::uint64_t>(static_cast<std::uint32_t>(entry.source_rank)) << 16);
    if (const auto* array = std::get_if<ArrayEntry>(&entry.value)) {
      h.u64(static_cast<std::uint64_t>(array->dtype) | std::uint64_t{array->chunks.size()} << 8);
      h.u64(static_cast<std::uint64_t>(array->compression) |
            static_cast<std::uint64_t>(static_cast<std::uint32_t>(array->compression_level)) << 8);
      h.extents(array->global_shape);
      for (const Chunk& chunk : array->chunks) {
        h.extents(chunk.offset);
        h.extents(chunk.shape);
        pointers_ok = pointers_ok && chunk_pointers_ok(chunk, array->global_shape.size());
      }
    } else if (const auto* bytes = std::get_if<BytesEntry>(&entry.value)) {
      h.u64(bytes->all_ranks != nullptr ? 1 : 0);
      h.u64(bytes->vector != nullptr ? bytes->vector->size() : bytes->size);  // the plan's item size
      if (bytes->all_ranks == nullptr && bytes->vector == nullptr && bytes->data == nullptr && bytes->size != 0)
        pointers_ok = false;
    } else {
      const auto& target = std::get<ScalarEntry>(entry.value).target;
      h.u64(target.index());
      if (std::visit([](auto* p) { return p == nullptr; }, target)) pointers_ok = false;
    }
  }
  return h.digest();
}

// The last state this thread validated successfully. A state with the same structure passes the
// structural checks again (names, groups, shapes, bounds, overlaps: the costly part), so only its
// pointers are checked: the common case of saving the same state every few steps.
struct LastValid {
  bool set = false;
  std::uint64_t structure = 0;
  int rank = 0;
  std::size_t entries = 0;
};

}  // namespace

std::uint64_t validate_state(const State& state, int rank, int world_size, Purpose purpose) {
  thread_local LastValid last;
  bool pointers_ok = false;
  const std::uint64_t structure = validated_structure(state, purpose, pointers_ok);
  if (pointers_ok && last.set && last.structure == structure && last.rank == rank && last.entries == state.size())
    return structure;
  last.set = false;
  validate_everything(state, rank, purpose);
  last = LastValid{true, structure, rank, state.size()};
  (void)world_size;
  return structure;
}

}  // namespace cairn::detail
