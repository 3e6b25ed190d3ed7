// Incremental saves in the HDF5 shared-file layout. An entry whose chunks are partly held by
// earlier checkpoints keeps the chunks this save wrote in "/_cairn/incremental/<name>", and
// "/<name>" becomes a virtual dataset with the global shape that maps each chunk to where its
// bytes are: that dataset, or the same entry in the holder's data.h5 ("../<holder>/data.h5",
// which HDF5 resolves beside this file). h5py and h5dump still read every array whole.
#pragma once

#include <cairn/storage.hpp>

#include <string>

namespace cairn::detail::h5 {

/// True when `directory` holds a checkpoint of the HDF5 shared-file layout (data.h5, and neither
/// the aggregated layout's part files nor the posix metadata).
bool is_shared_file_checkpoint(const std::string& directory);

/// One process, no MPI, after every rank has closed `path` (the data.h5 of a new checkpoint, in
/// its partial directory): turns every entry with referenced chunks into the virtual dataset
/// described above. Does nothing when no chunk is referenced. Throws StorageError.
void map_referenced_chunks(const std::string& path, const Metadata& metadata);

}  // namespace cairn::detail::h5
