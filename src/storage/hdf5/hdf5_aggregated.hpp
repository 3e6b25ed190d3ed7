// The aggregated HDF5 layout: groups of ranks write one "part" file each (every plan item of the
// group's ranks a dataset of its own), and "data.h5" holds, for every array, a virtual dataset with
// the global shape that maps each saved chunk to its dataset in its part file.
#pragma once

#include <cairn/storage.hpp>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace cairn::detail::h5 {

/// "part_000002.h5": the file the ranks of part `part` write together.
std::string part_file_name(int part);
/// "/r000003/i000012": the dataset of item `item` (in plan order) of saving rank `rank` in its part file.
std::string item_dataset_name(int rank, std::size_t item);
/// For every chunk record of `metadata`, the item index that names its dataset in its part file
/// (item_dataset_name(chunk.rank, index)).
std::vector<std::size_t> item_index_of_chunks(const Metadata& metadata);
/// int32 dataset of data.h5: the part file of each saving rank.
inline constexpr const char* part_of_rank_dataset = "/_cairn/part_of_rank";

/// Reads the aggregated layout through data.h5's virtual datasets (every rank opens the files
/// with HDF5's POSIX driver: reading a virtual dataset over MPI-IO would open its source files
/// collectively, one rank at a time).
std::unique_ptr<StorageReader> make_hdf5_aggregated_reader();

}  // namespace cairn::detail::h5
