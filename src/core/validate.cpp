#include "core/validate.hpp"

#include <cairn/error.hpp>

#include "core/names.hpp"
#include "core/region.hpp"

#include <string>
#include <unordered_set>

namespace cairn::detail {

namespace {

[[noreturn]] void fail(const Entry& entry, int rank, const std::string& why) {
  throw UsageError("entry '" + entry.name + "' on rank " + std::to_string(rank) + ": " + why);
}

void validate_array(const Entry& entry, const ArrayEntry& array, int rank, Purpose purpose) {
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
  std::vector<Region> regions;
  regions.reserve(array.chunks.size());
  for (std::size_t c = 0; c < array.chunks.size(); ++c) {
    const Chunk& chunk = array.chunks[c];
    const std::string which = "chunk " + std::to_string(c);
    if (chunk.offset.size() != ndim || chunk.shape.size() != ndim)
      fail(entry, rank,
           which + " has " + std::to_string(chunk.shape.size()) + " dimensions, the array " + std::to_string(ndim));
    if (chunk.data == nullptr) fail(entry, rank, which + " has a null data pointer");
    if (chunk.layout != Layout::RowMajor && chunk.layout != Layout::ColumnMajor)
      fail(entry, rank, which + " has an unknown layout");
    if (!chunk.strides.empty()) {
      if (chunk.strides.size() != ndim) fail(entry, rank, which + " has strides of the wrong rank");
      for (std::int64_t s : chunk.strides)
        if (s <= 0) fail(entry, rank, which + " has a non-positive stride");
    }
    for (std::size_t d = 0; d < ndim; ++d) {
      if (chunk.shape[d] <= 0)
        fail(entry, rank,
             which + " has extent " + std::to_string(chunk.shape[d]) + " in dimension " + std::to_string(d) +
                 " (extents must be positive)");
      if (chunk.offset[d] < 0 || chunk.offset[d] > array.global_shape[d] - chunk.shape[d])
        fail(entry, rank,
             which + " " + to_string(Region{chunk.offset, chunk.shape}) + " lies outside the global shape " +
                 to_string(array.global_shape));
    }
    regions.push_back(Region{chunk.offset, chunk.shape});
  }
  std::size_t a = 0, b = 0;
  if (find_overlap(regions, a, b))
    fail(entry, rank,
         "chunks " + std::to_string(a) + " " + to_string(regions[a]) + " and " + std::to_string(b) + " " +
             to_string(regions[b]) + " overlap");
  (void)purpose;
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

}  // namespace

void validate_state(const State& state, int rank, int world_size, Purpose purpose) {
  std::unordered_set<std::string> seen;
  std::vector<std::string> names;
  names.reserve(state.size());
  for (const Entry& entry : state.entries()) {
    if (const std::string problem = name_problem(entry.name); !problem.empty())
      fail(entry, rank, "invalid name: " + problem);
    if (!seen.insert(entry.name).second) fail(entry, rank, "the name is used by two entries");
    names.push_back(entry.name);
    if (entry.distribution != Distribution::Sharded && entry.distribution != Distribution::Replicated &&
        entry.distribution != Distribution::RankLocal)
      fail(entry, rank, "unknown distribution");
    if (entry.source_rank >= 0) {
      if (entry.distribution != Distribution::RankLocal)
        fail(entry, rank, "only rank-local entries take a source rank");
      if (purpose == Purpose::Save) fail(entry, rank, "a source rank applies to loading only");
    }
    if (const auto* array = std::get_if<ArrayEntry>(&entry.value)) validate_array(entry, *array, rank, purpose);
    if (const auto* bytes = std::get_if<BytesEntry>(&entry.value)) validate_bytes(entry, *bytes, rank, purpose);
    if (const auto* scalar = std::get_if<ScalarEntry>(&entry.value)) validate_scalar(entry, *scalar, rank);
  }
  if (const std::string collision = group_collision(std::move(names)); !collision.empty())
    throw UsageError("on rank " + std::to_string(rank) + ": " + collision +
                     " (an HDF5 path cannot be both a dataset and a group)");
  (void)world_size;
}

}  // namespace cairn::detail
