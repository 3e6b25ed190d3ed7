// Storage backends: how a planned checkpoint reaches files and comes back.
#pragma once

#include <cairn/planner.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace cairn {

class ProcessGroup;

/// Version of the on-disk format this library writes. Readers reject newer versions.
inline constexpr std::uint32_t format_version = 1;

/// One region of an entry as saved: the rank that wrote it and the xxh3-64 of its bytes (row-major).
struct ChunkRecord {
  std::int32_t entry = 0;
  std::int32_t rank = 0;
  Region region;
  std::uint64_t checksum = 0;
};

/// Everything a checkpoint records about itself besides the array data.
struct Metadata {
  std::uint32_t format_version = cairn::format_version;
  std::string library_version;
  std::int32_t world_size = 0;
  std::int64_t created_unix_time = 0;
  std::vector<EntryInfo> entries;
  std::vector<ChunkRecord> chunks;

  /// The entry called `name`, or nullptr.
  const EntryInfo* find(const std::string& name) const noexcept;
};

/// One write item's bytes, contiguous and row-major in the entry's dtype.
struct WriteBuffer {
  const WriteItem* item = nullptr;
  const void* data = nullptr;
};

/// Writes one checkpoint. The checkpointer calls open, write, finish in that order on every rank
/// (abort instead of the rest when a step failed on any rank). Each call is collective; a backend
/// keeps its collective calls matched across ranks even when one rank fails, and throws at the end.
class StorageWriter {
 public:
  virtual ~StorageWriter() = default;
  /// Collective. Creates the data files in `directory` laid out for `entries` (the global plan).
  virtual void open(const std::string& directory, const std::vector<EntryInfo>& entries, ProcessGroup& group) = 0;
  /// Collective. Writes this rank's buffers.
  virtual void write(const std::vector<WriteBuffer>& buffers) = 0;
  /// Collective. Records `metadata`, makes everything durable (fsync) and closes the files.
  virtual void finish(const Metadata& metadata) = 0;
  /// Collective, best effort, never throws: closes whatever is open after a failed step.
  virtual void abort() noexcept = 0;
};

/// One region this rank wants, delivered row-major and contiguous into `destination` in `dtype`.
struct ReadRequest {
  /// Index into the reader's metadata entries.
  std::int32_t entry = 0;
  Region region;
  DType dtype = DType::UInt8;
  void* destination = nullptr;
};

/// Reads one checkpoint: open, any number of read calls, close, on every rank. Each is collective.
class StorageReader {
 public:
  virtual ~StorageReader() = default;
  /// Collective. Opens the checkpoint in `directory` and reads its metadata. Throws StorageError
  /// when files are missing, CorruptCheckpointError when they are not a valid Cairn checkpoint.
  virtual void open(const std::string& directory, ProcessGroup& group) = 0;
  /// Not collective. The metadata read by open().
  virtual const Metadata& metadata() const = 0;
  /// Collective (every rank calls it, with any number of requests, possibly none).
  virtual void read(const std::vector<ReadRequest>& requests) = 0;
  /// Collective, never throws.
  virtual void close() noexcept = 0;
};

/// The default backend: one HDF5 file per checkpoint written through MPI-IO; every array a dataset
/// with its global shape, readable by h5py and h5dump without Cairn. (With a group that has no MPI
/// communicator, such as SerialProcessGroup, the file is written with HDF5's POSIX driver.)
std::unique_ptr<StorageWriter> make_hdf5_writer();
/// Reads checkpoints of both HDF5 layouts: one shared file, or one file per saving rank.
std::unique_ptr<StorageReader> make_hdf5_reader();

/// The backend of saves without collectives (SaveOptions::use_collectives = false): every rank
/// writes its own HDF5 file, "rank_<r>.h5", holding each of its chunks as a dataset and its own
/// metadata. Its calls are NOT collective: each rank runs open, write, finish on its own.
std::unique_ptr<StorageWriter> make_hdf5_rank_files_writer();

}  // namespace cairn
