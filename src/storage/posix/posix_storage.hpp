// The posix layout: one raw data file per saving rank and one metadata file written by rank 0.
//
// rank_<r>.dat: the bytes of each write buffer of rank r, row-major in the entry's dtype, each
// starting at a multiple of the save's alignment (the gaps are holes or zeros). A buffer of a
// compressed entry (EntryInfo::compression) is stored as one zlib stream or one zstd frame.
//
// metadata.cairn, little-endian:
//   magic "CAIRNPX\0" | u32 layout version | u32 rank files | u64 alignment
//   | u64 n, n bytes of encode_metadata (the same Metadata as the HDF5 layouts)
//   | u64 pieces, per piece: i32 entry, i32 rank file, region (i64s offset, i64s shape),
//     u64 byte offset in the rank file, u64 byte length (as stored: compressed, if it is)
//   | u64 xxh3-64 of everything before it.
// A piece is one write buffer; a bounded save cuts a chunk into several, so chunk records alone
// do not locate the bytes.
#pragma once

#include <cairn/dtype.hpp>
#include <cairn/planner.hpp>
#include <cairn/storage.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace cairn::detail::posix {

/// The file rank 0 writes last; its presence marks a posix checkpoint.
inline constexpr const char* metadata_file_name = "metadata.cairn";

/// "rank_000003.dat": the data file rank `rank` writes inside the checkpoint directory.
std::string rank_data_file_name(int rank);

inline constexpr char layout_magic[8] = {'C', 'A', 'I', 'R', 'N', 'P', 'X', '\0'};
inline constexpr std::uint32_t layout_version = 1;

/// Where one write buffer's bytes lie.
struct Piece {
  std::int32_t entry = 0;
  std::int32_t rank = 0;  ///< the rank file (the writing rank)
  Region region;
  std::uint64_t offset = 0;  ///< bytes into the rank file
  std::uint64_t length = 0;  ///< bytes as stored (compressed pieces: their compressed size)
};

/// Converts `count` elements at `src` of dtype `from` to `to` at `dst` (no overlap). Integers,
/// floats (float16 and bfloat16 included) and bool in every direction; narrowing rounds to
/// nearest and clamps out-of-range values, NaN becomes 0 in integers. The checkpointer only asks
/// for lossless conversions.
void convert_elements(const void* src, DType from, void* dst, DType to, std::size_t count);

/// A posix reader for checkpoints whose rank files are spread over the nodes' own directories
/// (the node-local tier): every rank opens its node's copy, rank 0's metadata is used, and the
/// rank files are not checked at open; reading a file this node lacks throws StorageError.
std::unique_ptr<StorageReader> make_node_local_reader();

}  // namespace cairn::detail::posix
