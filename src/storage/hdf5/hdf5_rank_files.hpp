// The rank-files layout of saves without collectives: one HDF5 file per saving rank, each holding
// that rank's chunks as datasets and that rank's own metadata.
#pragma once

#include <cairn/storage.hpp>

#include <memory>
#include <string>

namespace cairn::detail::h5 {

/// "rank_000003.h5": the file saving rank `rank` writes inside the checkpoint directory.
std::string rank_file_name(int rank);

/// Group of the chunk datasets, "/_cairn/chunks/<k>" (k counts one rank's buffers in write order).
inline constexpr const char* chunks_group = "/_cairn/chunks";

/// Where each chunk dataset of a rank file lies, as int64 values: the dataset count, then per
/// dataset its entry index (into the file's metadata), its number of dimensions, offset, shape.
/// (A bounded save splits a planned chunk into several datasets, so metadata chunk records alone
/// do not locate them.)
inline constexpr const char* chunk_index_dataset = "/_cairn/chunk_index";

/// Reads the rank-files layout (see make_hdf5_rank_files_writer), merging every rank's metadata
/// into the metadata a shared-file checkpoint of the same state would have.
std::unique_ptr<StorageReader> make_hdf5_rank_files_reader();

}  // namespace cairn::detail::h5
