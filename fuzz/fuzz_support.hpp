// Helpers shared by the fuzz targets, their standalone driver and the seed generator.
#pragma once

#include <cairn/storage.hpp>

#include "core/checksum.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <variant>
#include <vector>

/// The entry point libFuzzer calls (and fuzz/standalone_main.cpp, for the regression tests).
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace cairn::fuzz {

/// Reports a property the target checks as broken and aborts, so that libFuzzer (or ctest)
/// records the input as a crash.
[[noreturn]] inline void finding(const std::string& what) {
  std::fprintf(stderr, "FUZZ FINDING: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

/// Bytes of the trailing checksum that ends every metadata blob.
inline constexpr std::size_t checksum_bytes = 8;

/// Rewrites the trailing xxh3-64 of a metadata blob so that it matches the bytes before it: lets
/// mutated inputs get past the checksum into the decoder proper. Blobs too short are left alone.
inline void repair_checksum(std::vector<std::byte>& blob) {
  if (blob.size() < checksum_bytes) return;
  const std::uint64_t sum = detail::checksum(blob.data(), blob.size() - checksum_bytes);
  std::memcpy(blob.data() + blob.size() - checksum_bytes, &sum, sizeof sum);
}

/// Bit-exact equality of scalar values (a NaN equals itself).
inline bool same_value(const ScalarValue& a, const ScalarValue& b) {
  if (a.index() != b.index()) return false;
  if (const auto* x = std::get_if<double>(&a)) {
    const double y = std::get<double>(b);
    return std::memcmp(x, &y, sizeof y) == 0;
  }
  return a == b;
}

inline bool same_entry(const EntryInfo& a, const EntryInfo& b) {
  return a.name == b.name && a.kind == b.kind && a.distribution == b.distribution && a.dtype == b.dtype &&
         a.scalar_type == b.scalar_type && a.global_shape == b.global_shape && a.rank_offsets == b.rank_offsets &&
         a.max_items_per_rank == b.max_items_per_rank && a.compression == b.compression &&
         a.compression_level == b.compression_level && same_value(a.value, b.value);
}

/// Field-by-field equality of two Metadata.
inline bool same_metadata(const Metadata& a, const Metadata& b) {
  if (a.format_version != b.format_version || a.library_version != b.library_version || a.world_size != b.world_size ||
      a.created_unix_time != b.created_unix_time || a.entries.size() != b.entries.size() ||
      a.chunks.size() != b.chunks.size())
    return false;
  for (std::size_t i = 0; i < a.entries.size(); ++i)
    if (!same_entry(a.entries[i], b.entries[i])) return false;
  for (std::size_t i = 0; i < a.chunks.size(); ++i) {
    const ChunkRecord& x = a.chunks[i];
    const ChunkRecord& y = b.chunks[i];
    if (x.entry != y.entry || x.rank != y.rank || !(x.region == y.region) || x.checksum != y.checksum ||
        x.source != y.source || x.block_rows != y.block_rows || x.block_checksums != y.block_checksums)
      return false;
  }
  return true;
}

}  // namespace cairn::fuzz
