#include "stage/staging.hpp"

#include <cairn/error.hpp>

#include "core/fault.hpp"
#include "core/region.hpp"
#include "core/strided_copy.hpp"

#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>
#include <unordered_map>

namespace cairn::detail {

namespace {

// Each staged item starts on a cache line.
constexpr std::size_t alignment = 64;

std::size_t align_up(std::size_t n) {
  return (n + alignment - 1) / alignment * alignment;
}

// True when `region` of `chunk` is one contiguous byte range of caller memory: the chunk is
// row-major and contiguous and the region spans every dimension but the first.
bool region_is_contiguous(const Chunk& chunk, const Region& region) {
  if (!is_row_major_contiguous(chunk)) return false;
  for (std::size_t d = 1; d < region.shape.size(); ++d)
    if (region.shape[d] != chunk.shape[d]) return false;
  return true;
}

// Elements from the first to the last element of a non-empty box of `shape` in memory with `strides`.
std::int64_t span_elements(const Extents& strides, const Extents& shape) {
  std::int64_t span = 1;
  for (std::size_t d = 0; d < shape.size(); ++d) span += (shape[d] - 1) * strides[d];
  return span;
}

}  // namespace

// Where the bytes of plan items come from.
class Sources {
 public:
  Sources(const SavePlan& plan, const State& state, int rank) : m_plan(plan), m_rank(rank) {
    m_by_name.reserve(state.size());
    for (const Entry& entry : state.entries()) m_by_name.emplace(entry.name, &entry);
  }

  const Entry& entry_of(const WriteItem& item) const {
    const EntryInfo& info = m_plan.entries.at(static_cast<std::size_t>(item.entry));
    auto found = m_by_name.find(info.name);
    if (found == m_by_name.end())
      throw InternalError("staging on rank " + std::to_string(m_rank) + ": the plan names entry '" + info.name +
                          "' which the state does not hold");
    return *found->second;
  }

  // The array chunk `item` is read from, or nullptr for blobs and scalars (host memory).
  const Chunk* chunk_of(const WriteItem& item) const {
    const auto* array = std::get_if<ArrayEntry>(&entry_of(item).value);
    return array != nullptr ? &array->chunks.at(static_cast<std::size_t>(item.chunk)) : nullptr;
  }

  // Where the chunk of `item` is: asked once per chunk and save.
  MemoryLocation location(const WriteItem& item) const {
    const Chunk* chunk = chunk_of(item);
    if (chunk == nullptr) return {};
    auto [it, fresh] = m_locations.emplace(chunk, MemoryLocation{});
    if (fresh) {
      try {
        it->second = locate(chunk->data, chunk->memory);
      } catch (const UsageError& e) {
        m_locations.erase(it);
        throw UsageError("entry '" + entry_of(item).name + "' on rank " + std::to_string(m_rank) + ", chunk " +
                         std::to_string(item.chunk) + ": " + e.what());
      }
    }
    return it->second;
  }

  int rank() const noexcept { return m_rank; }

  DType dtype_of(const WriteItem& item) const { return m_plan.entries.at(static_cast<std::size_t>(item.entry)).dtype; }

  // "entry 'name' on rank r": for messages.
  std::string describe(const WriteItem& item) const {
    return "entry '" + entry_of(item).name + "' on rank " + std::to_string(m_rank);
  }

  // The caller's bytes of `item` when they are one contiguous range, else nullptr.
  const std::byte* contiguous(const WriteItem& item) const {
    const Entry& entry = entry_of(item);
    const std::size_t esize = dtype_size(m_plan.entries[static_cast<std::size_t>(item.entry)].dtype);
    if (const auto* array = std::get_if<ArrayEntry>(&entry.value)) {
      const Chunk& chunk = array->chunks.at(static_cast<std::size_t>(item.chunk));
      if (!region_is_contiguous(chunk, item.region)) return nullptr;
      return static_cast<const std::byte*>(chunk_element(chunk, chunk_strides(chunk), item.region.offset, esize));
    }
    if (const auto* blob = std::get_if<BytesEntry>(&entry.value)) {
      const std::byte* base = blob->vector ? blob->vector->data() : static_cast<const std::byte*>(blob->data);
      return base + (item.region.offset[0] - item.source_offset[0]);
    }
    const auto& target = std::get<ScalarEntry>(entry.value).target;
    if (const auto* i64 = std::get_if<std::int64_t*>(&target)) return reinterpret_cast<const std::byte*>(*i64);
    if (const auto* f64 = std::get_if<double*>(&target)) return reinterpret_cast<const std::byte*>(*f64);
    throw InternalError("staging on rank " + std::to_string(m_rank) + ": entry '" + entry.name +
                        "' is a string scalar, which is never written as data");
  }

  // Copies `item` (or a sub-region of a plan item) into `out`, row-major. A contiguous region is
  // one memcpy, the fastest copy there is (large copies use non-temporal stores).
  void copy(const WriteItem& item, std::byte* out) const {
    const Entry& entry = entry_of(item);
    const std::size_t esize = dtype_size(m_plan.entries[static_cast<std::size_t>(item.entry)].dtype);
    if (const auto* array = std::get_if<ArrayEntry>(&entry.value)) {
      const Chunk& chunk = array->chunks.at(static_cast<std::size_t>(item.chunk));
      const Extents strides = chunk_strides(chunk);
      strided_copy(chunk_element(chunk, strides, item.region.offset, esize), strides, out,
                   row_major_strides(item.region.shape), item.region.shape, esize);
      return;
    }
    std::memcpy(out, contiguous(item), static_cast<std::size_t>(volume(item.region.shape)) * esize);
  }

 private:
  const SavePlan& m_plan;
  int m_rank;
  std::unordered_map<std::string_view, const Entry*> m_by_name;
  mutable std::unordered_map<const Chunk*, MemoryLocation> m_locations;
};

namespace {

// Cuts `region` into boxes of at most `max_bytes`, in row-major order: the outer dimensions one
// index at a time, dimension `d` in slabs, the inner dimensions whole.
void split_region(const Region& region, std::size_t esize, std::size_t max_bytes, std::vector<Region>& out) {
  const std::size_t dims = region.shape.size();
  std::size_t d = 0;
  std::size_t inner = esize;  // bytes of one index step of dimension d
  for (std::size_t k = 1; k < dims; ++k) inner *= static_cast<std::size_t>(region.shape[k]);
  while (inner > max_bytes && d + 1 < dims) {
    ++d;
    inner /= static_cast<std::size_t>(region.shape[d]);
  }
  if (inner > max_bytes) throw InternalError("split_region: one element exceeds the piece size");
  const auto step = static_cast<std::int64_t>(std::max<std::size_t>(1, max_bytes / inner));
  Extents index(region.offset.begin(), region.offset.begin() + static_cast<std::ptrdiff_t>(d));
  for (;;) {
    for (std::int64_t at = 0; at < region.shape[d]; at += step) {
      Region box = region;
      for (std::size_t k = 0; k < d; ++k) {
        box.offset[k] = index[k];
        box.shape[k] = 1;
      }
      box.offset[d] = region.offset[d] + at;
      box.shape[d] = std::min(step, region.shape[d] - at);
      out.push_back(std::move(box));
    }
    // Next outer index, last dimension fastest.
    std::size_t k = d;
    while (k > 0) {
      --k;
      if (++index[k] < region.offset[k] + region.shape[k]) break;
      index[k] = region.offset[k];
      if (k == 0) return;
    }
    if (d == 0) return;
  }
}

}  // namespace

std::size_t item_bytes(const SavePlan& plan, const WriteItem& item) {
  return static_cast<std::size_t>(volume(item.region.shape)) *
         dtype_size(plan.entries.at(static_cast<std::size_t>(item.entry)).dtype);
}

std::size_t half_budget(std::size_t budget) noexcept {
  return budget / 2 / alignment * alignment;
}

std::vector<Piece> split_into_pieces(const SavePlan& plan, std::size_t piece_bytes) {
  std::vector<Piece> pieces;
  std::vector<Region> boxes;
  for (std::size_t i = 0; i < plan.items.size(); ++i) {
    const WriteItem& item = plan.items[i];
    const std::size_t esize = dtype_size(plan.entries.at(static_cast<std::size_t>(item.entry)).dtype);
    if (esize > piece_bytes) throw UsageError("the staging budget is smaller than one element");
    boxes.clear();
    split_region(item.region, esize, piece_bytes, boxes);
    for (Region& box : boxes) {
      const std::size_t bytes = static_cast<std::size_t>(volume(box.shape)) * esize;
      if (pieces.empty() || pieces.back().bytes + align_up(bytes) > piece_bytes) pieces.emplace_back();
      Piece& piece = pieces.back();
      WriteItem sub = item;
      sub.region = std::move(box);
      piece.items.push_back(std::move(sub));
      piece.plan_item.push_back(i);
      piece.bytes += align_up(bytes);
    }
  }
  return pieces;
}

void Staging::release() noexcept {
  m_memory.release();
  m_scratch.release();
}

void Staging::copy_items(const Sources& sources, const std::vector<const WriteItem*>& items,
                         const std::vector<std::byte*>& outs) {
  struct FromScratch {  // a device region copied as its memory span, rearranged on the host after
    std::size_t item = 0;
    std::size_t at = 0;
  };
  std::vector<MemoryLocation> where(items.size());
  std::vector<FromScratch> later;
  std::size_t scratch_bytes = 0;
  for (std::size_t k = 0; k < items.size(); ++k) {
    where[k] = sources.location(*items[k]);
    if (!where[k].device) continue;
    const WriteItem& item = *items[k];
    const Chunk& chunk = *sources.chunk_of(item);
    if (region_is_contiguous(chunk, item.region) || volume(item.region.shape) == 0) continue;
    later.push_back(FromScratch{k, scratch_bytes});
    scratch_bytes += align_up(static_cast<std::size_t>(span_elements(chunk_strides(chunk), item.region.shape)) *
                              dtype_size(sources.dtype_of(item)));
  }
  std::byte* scratch = later.empty() ? nullptr : m_scratch.reserve(scratch_bytes, true);

  // Device copies first, so that they run while the host copies do. Should one fail to start,
  // those started are waited for: no copy may still run into memory the next save reuses.
  std::size_t next_later = 0;
  bool any_device = false;
  try {
    for (std::size_t k = 0; k < items.size(); ++k) {
      if (!where[k].device) continue;
      if (!any_device) fault_point("device-copy", sources.rank());
      any_device = true;
      const WriteItem& item = *items[k];
      const Chunk& chunk = *sources.chunk_of(item);
      const std::size_t esize = dtype_size(sources.dtype_of(item));
      const std::size_t bytes = static_cast<std::size_t>(volume(item.region.shape)) * esize;
      if (bytes == 0) continue;
      const Extents strides = chunk_strides(chunk);
      const void* first = chunk_element(chunk, strides, item.region.offset, esize);
      const std::string what = "staging " + sources.describe(item);
      if (next_later < later.size() && later[next_later].item == k) {
        m_copier.to_host(where[k].device_id, scratch + later[next_later].at, first,
                         static_cast<std::size_t>(span_elements(strides, item.region.shape)) * esize, what);
        ++next_later;
      } else {
        m_copier.to_host(where[k].device_id, outs[k], first, bytes, what);
      }
    }
    for (std::size_t k = 0; k < items.size(); ++k)
      if (!where[k].device) sources.copy(*items[k], outs[k]);
  } catch (...) {
    try {
      m_copier.synchronize("staging device chunks");
    } catch (...) {
      // The first failure is the one to report.
    }
    throw;
  }
  if (!any_device) return;
  m_copier.synchronize("staging device chunks");
  for (const FromScratch& from : later) {
    const WriteItem& item = *items[from.item];
    const Chunk& chunk = *sources.chunk_of(item);
    strided_copy(scratch + from.at, chunk_strides(chunk), outs[from.item], row_major_strides(item.region.shape),
                 item.region.shape, dtype_size(sources.dtype_of(item)));
  }
}

void Staging::stage(const SavePlan& plan, const State& state, int rank, bool in_place,
                    std::vector<WriteBuffer>& buffers) {
  const Sources sources(plan, state, rank);
  buffers.clear();
  buffers.reserve(plan.items.size());
  // First pass: what stays in place (host memory only) and how much memory the rest needs.
  std::vector<const std::byte*> direct(plan.items.size(), nullptr);
  std::size_t total = 0;
  bool any_device = false;
  for (std::size_t i = 0; i < plan.items.size(); ++i) {
    const bool device = sources.location(plan.items[i]).device;
    any_device = any_device || device;
    if (in_place && !device) direct[i] = sources.contiguous(plan.items[i]);
    if (direct[i] == nullptr) total += align_up(item_bytes(plan, plan.items[i]));
  }
  std::byte* memory = m_memory.reserve(total, any_device);
  std::vector<const WriteItem*> items;
  std::vector<std::byte*> outs;
  std::size_t at = 0;
  for (std::size_t i = 0; i < plan.items.size(); ++i) {
    const WriteItem& item = plan.items[i];
    if (direct[i] != nullptr) {
      buffers.push_back(WriteBuffer{&item, direct[i]});
      continue;
    }
    std::byte* out = memory + at;
    at += align_up(item_bytes(plan, item));
    items.push_back(&item);
    outs.push_back(out);
    buffers.push_back(WriteBuffer{&item, out});
  }
  copy_items(sources, items, outs);
}

void Staging::stage_piece(const Piece& piece, const SavePlan& plan, const State& state, int rank, int half,
                          std::size_t half_bytes, std::vector<WriteBuffer>& buffers) {
  const Sources sources(plan, state, rank);
  bool any_device = false;
  for (const WriteItem& item : piece.items) any_device = any_device || sources.location(item).device;
  // The other half may be being written: the memory is only ever grown here, never re-made
  // for another kind (a device piece after host ones copies into pageable memory, more slowly).
  std::byte* memory =
      (m_memory.size() >= 2 * half_bytes ? m_memory.data() : m_memory.reserve(2 * half_bytes, any_device)) +
      static_cast<std::size_t>(half) * half_bytes;
  buffers.clear();
  std::vector<const WriteItem*> items;
  std::vector<std::byte*> outs;
  std::size_t at = 0;
  for (std::size_t k = 0; k < piece.items.size(); ++k) {
    const WriteItem& item = piece.items[k];
    std::byte* out = memory + at;
    at += align_up(item_bytes(plan, item));
    items.push_back(&item);
    outs.push_back(out);
    buffers.push_back(WriteBuffer{&item, out});
  }
  copy_items(sources, items, outs);
}

}  // namespace cairn::detail
