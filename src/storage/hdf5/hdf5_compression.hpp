// Compressed datasets: HDF5's deflate filter, and the registered Zstandard filter (id 32015),
// served by an installed plugin or, where none is found, by Cairn's own implementation of it.
#pragma once

#include <cairn/planner.hpp>

#include "storage/hdf5/hdf5_handle.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace cairn::detail::h5 {

/// The Zstandard filter's id in The HDF Group's registry; its chunks are single zstd frames and
/// its first client value is the level, which h5py (with hdf5plugin) and h5dump (with the
/// plugin on HDF5_PLUGIN_PATH) read.
inline constexpr H5Z_filter_t zstd_filter_id = 32015;

/// Whether HDF5 can apply the filter `e` asks for. For Zstd, registers Cairn's implementation
/// when no plugin provides it (once per process); false when neither exists.
bool filter_available(Compression method);

/// Throws UnsupportedError naming the entry when HDF5 here cannot write `e` as it asks (Zstd with
/// neither a plugin nor libzstd in this build).
void check_filter_available(const EntryInfo& e);

/// HDF5 chunk dimensions for a compressed dataset of `e`: slabs of the first dimension of about
/// `target_bytes`, ending at a multiple of `row_boundary` rows (the ranks' slabs) where that does
/// not make them much smaller, the other dimensions whole unless one row alone is too large.
std::vector<hsize_t> compressed_chunk_dims(const EntryInfo& e, std::int64_t row_boundary,
                                           std::size_t target_bytes = std::size_t{4} << 20);

/// A copy of `base` (a dataset creation property list) with `chunk` as the chunk dimensions and
/// the filter of `e`, allocated as parallel HDF5 needs when `parallel`.
Handle compressed_creation(hid_t base, const EntryInfo& e, const std::vector<hsize_t>& chunk, bool parallel);

/// Dataset access properties for reading a compressed entry: a chunk cache of a few chunks, so that
/// the reads of one region (a load, a checked load's rounds) decompress each chunk once, not once
/// per read. Invalid (use H5P_DEFAULT) for uncompressed entries.
Handle compressed_access(const EntryInfo& e);

}  // namespace cairn::detail::h5
