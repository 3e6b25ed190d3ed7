// The input format of the `opener` fuzz target: a checkpoint directory described in bytes.
//
//   byte 0     flags (OpenerFlag bits)
//   then       sections, each a 16-bit little-endian length and that many bytes; a last section
//              shorter than its length takes what is left
//
// Shared-file layout: section 0 is the metadata blob of data.h5. Rank-files layout: sections 2r
// and 2r + 1 are the metadata blob and the chunk index (int64 little-endian values) of
// rank_<r>.h5, for up to max_rank_files files (at least one, empty when the input ends early).
// The harness writes these as well-formed HDF5 files: the fuzzer controls what Cairn wrote into
// them, never HDF5's own file format.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace cairn::fuzz {

/// Bits of the first input byte.
enum OpenerFlag : std::uint8_t {
  /// One file per rank (saves without collectives) instead of the shared data.h5.
  rank_files_layout = 1u << 0,
  /// Rewrite each metadata blob's trailing checksum to match, so mutations reach the decoder.
  repair_checksums = 1u << 1,
  /// Create the data datasets the metadata (shared) or chunk index (rank files) names.
  create_datasets = 1u << 2,
  /// Give those datasets one more element in their first dimension than recorded.
  skew_shapes = 1u << 3,
  /// Rank files: leave out the /_cairn "rank" attribute.
  omit_rank_attribute = 1u << 4,
  /// Rank files: store rank + 1 in the /_cairn "rank" attribute.
  wrong_rank_attribute = 1u << 5,
  /// Store the metadata blob as a 2-D (n, 1) dataset.
  metadata_2d = 1u << 6,
};

/// Most rank files an input describes.
inline constexpr std::size_t max_rank_files = 4;

/// The sections after the flags byte.
inline std::vector<std::vector<std::byte>> split_sections(const std::uint8_t* data, std::size_t size) {
  std::vector<std::vector<std::byte>> sections;
  std::size_t at = 0;
  while (at + 2 <= size) {
    const std::size_t length = static_cast<std::size_t>(data[at]) | static_cast<std::size_t>(data[at + 1]) << 8;
    at += 2;
    const std::size_t n = std::min(length, size - at);
    const auto* begin = reinterpret_cast<const std::byte*>(data + at);
    sections.emplace_back(begin, begin + n);
    at += n;
  }
  return sections;
}

/// Appends one section (at most 65535 bytes) to an input being built.
inline void append_section(std::vector<std::uint8_t>& input, const void* data, std::size_t size) {
  const std::size_t n = std::min<std::size_t>(size, 0xffff);
  input.push_back(static_cast<std::uint8_t>(n & 0xff));
  input.push_back(static_cast<std::uint8_t>(n >> 8));
  const auto* p = static_cast<const std::uint8_t*>(data);
  input.insert(input.end(), p, p + n);
}

}  // namespace cairn::fuzz
