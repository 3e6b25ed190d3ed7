// Converting a checkpoint from one storage layout to another (posix to HDF5, for tools).
#pragma once

#include <cairn/process_group.hpp>
#include <cairn/storage.hpp>

#include <cstddef>
#include <memory>
#include <string>

namespace cairn {

/// Options of convert_checkpoint.
struct ConvertOptions {
  /// The backend to write `to` with (a collective one); the HDF5 shared-file writer when null,
  /// whose arrays h5py and h5dump read whole.
  std::shared_ptr<StorageWriter> writer;
  /// Replace an existing checkpoint `to` once the new one is complete.
  bool overwrite = false;
  /// The most bytes each rank holds in memory at once (at least 4 KiB); larger chunks are copied
  /// in row-major slices.
  std::size_t buffer_bytes = std::size_t{64} << 20;
};

/// Collective over `group` (any number of ranks, not necessarily the number that saved): reads
/// checkpoint `from`, of any layout, and publishes an equivalent checkpoint `to`, atomically: the
/// same entries, dtypes, global shapes and chunk records, with the same checksums. Every chunk's
/// checksum is verified as it is read. Throws the same Error on every rank: UsageError for bad
/// ids or options or an existing `to` without `overwrite`; StorageError when files cannot be read
/// or written; CorruptCheckpointError, naming the entry and the chunk, when a chunk does not match
/// its checksum. After a failure nothing is published at `to` (an existing one is left as it was).
void convert_checkpoint(ProcessGroup& group, const std::string& from, const std::string& to,
                        const ConvertOptions& options = {});

}  // namespace cairn
