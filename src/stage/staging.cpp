#include "stage/staging.hpp"

#include <cairn/error.hpp>

#include "core/checksum.hpp"
#include "core/region.hpp"
#include "core/strided_copy.hpp"

#include <string>
#include <string_view>
#include <unordered_map>

namespace cairn::detail {

namespace {

// Slabs of about this many bytes are copied and then checksummed while still in cache.
constexpr std::int64_t slab_bytes = std::int64_t{1} << 20;

// True when `region` of `chunk` is one contiguous byte range of caller memory: the chunk is
// row-major and contiguous and the region spans every dimension but the first.
bool region_is_contiguous(const Chunk& chunk, const Region& region) {
  if (!is_row_major_contiguous(chunk)) return false;
  for (std::size_t d = 1; d < region.shape.size(); ++d)
    if (region.shape[d] != chunk.shape[d]) return false;
  return true;
}

// Copies `region` of `chunk` into `out` (row-major), slab by slab, checksumming as it goes.
std::uint64_t copy_and_checksum(const Chunk& chunk, const Region& region, std::size_t esize, std::byte* out) {
  const Extents src_strides = chunk_strides(chunk);
  const Extents dst_strides = row_major_strides(region.shape);
  const std::int64_t row_bytes = dst_strides.empty() ? 0 : dst_strides[0] * static_cast<std::int64_t>(esize);
  const std::int64_t rows_per_slab = std::max<std::int64_t>(1, row_bytes > 0 ? slab_bytes / row_bytes : 1);
  Checksummer sum;
  Region slab = region;
  for (std::int64_t row = 0; row < region.shape[0]; row += rows_per_slab) {
    slab.offset[0] = region.offset[0] + row;
    slab.shape[0] = std::min(rows_per_slab, region.shape[0] - row);
    const void* src = chunk_element(chunk, src_strides, slab.offset, esize);
    std::byte* dst = out + row * row_bytes;
    strided_copy(src, src_strides, dst, dst_strides, slab.shape, esize);
    sum.update(dst, static_cast<std::size_t>(slab.shape[0] * row_bytes));
  }
  return sum.digest();
}

}  // namespace

std::vector<WriteBuffer> Staging::stage(const SavePlan& plan, const State& state, int rank,
                                        std::vector<std::uint64_t>& checksums) {
  std::unordered_map<std::string_view, const Entry*> by_name;
  by_name.reserve(state.size());
  for (const Entry& entry : state.entries()) by_name.emplace(entry.name, &entry);

  std::vector<WriteBuffer> buffers;
  buffers.reserve(plan.items.size());
  checksums.assign(plan.items.size(), 0);
  std::size_t next_buffer = 0;
  for (std::size_t i = 0; i < plan.items.size(); ++i) {
    const WriteItem& item = plan.items[i];
    const EntryInfo& info = plan.entries.at(static_cast<std::size_t>(item.entry));
    auto found = by_name.find(info.name);
    if (found == by_name.end())
      throw InternalError("staging on rank " + std::to_string(rank) + ": the plan names entry '" + info.name +
                          "' which the state does not hold");
    const Entry& entry = *found->second;
    const std::size_t esize = dtype_size(info.dtype);
    const auto bytes = static_cast<std::size_t>(volume(item.region.shape)) * esize;
    const void* data = nullptr;
    if (const auto* array = std::get_if<ArrayEntry>(&entry.value)) {
      const Chunk& chunk = array->chunks.at(static_cast<std::size_t>(item.chunk));
      if (region_is_contiguous(chunk, item.region)) {
        data = chunk_element(chunk, chunk_strides(chunk), item.region.offset, esize);
        checksums[i] = checksum(data, bytes);
      } else {
        if (next_buffer == m_buffers.size()) m_buffers.emplace_back();
        std::vector<std::byte>& buffer = m_buffers[next_buffer++];
        if (buffer.size() < bytes) buffer.resize(bytes);
        checksums[i] = copy_and_checksum(chunk, item.region, esize, buffer.data());
        data = buffer.data();
      }
    } else if (const auto* blob = std::get_if<BytesEntry>(&entry.value)) {
      const std::byte* base = blob->vector ? blob->vector->data() : static_cast<const std::byte*>(blob->data);
      data = base + (item.region.offset[0] - item.source_offset[0]);
      checksums[i] = checksum(data, bytes);
    } else {
      const auto& target = std::get<ScalarEntry>(entry.value).target;
      if (const auto* i64 = std::get_if<std::int64_t*>(&target)) data = *i64;
      if (const auto* f64 = std::get_if<double*>(&target)) data = *f64;
      checksums[i] = checksum(data, bytes);
    }
    buffers.push_back(WriteBuffer{&item, data});
  }
  return buffers;
}

std::size_t Staging::capacity() const noexcept {
  std::size_t total = 0;
  for (const auto& b : m_buffers) total += b.capacity();
  return total;
}

}  // namespace cairn::detail
