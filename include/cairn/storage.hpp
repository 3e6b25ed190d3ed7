// Storage backends: how a planned checkpoint reaches files and comes back.
#pragma once

#include <cairn/planner.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace cairn {

class ProcessGroup;

/// Version of the on-disk format this library writes. Readers reject newer versions.
/// Version 2 added compression per entry and chunks held by an earlier checkpoint; version 3,
/// checksums per block of rows of large chunks.
inline constexpr std::uint32_t format_version = 3;

/// One region of an entry as saved: the rank that wrote it and the xxh3-64 of its bytes (row-major).
struct ChunkRecord {
  std::int32_t entry = 0;
  std::int32_t rank = 0;
  Region region;
  /// xxh3-64 of the chunk's row-major bytes or, when it has blocks, of its block checksums (each
  /// as a little-endian 64-bit word, in order).
  std::uint64_t checksum = 0;
  /// Empty: the bytes are in this checkpoint. Otherwise they were unchanged since an earlier
  /// checkpoint and only that one holds them (an incremental save): its directory, relative to
  /// this checkpoint's directory ("../step_0000000100").
  std::string source;
  /// A large chunk is checksummed in blocks of this many rows of its first dimension (the last
  /// block may have fewer), so that a load needing part of it reads and checks only those
  /// blocks. 0: no blocks (small chunks; checkpoints of format version 2).
  std::int64_t block_rows = 0;
  /// xxh3-64 of each block's row-major bytes; empty when block_rows is 0.
  std::vector<std::uint64_t> block_checksums;
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
  /// Not collective; called on every rank just before open() with this rank's items of the
  /// finished plan (the items the write buffers describe, or contain when a bounded save splits
  /// them into pieces). For backends that lay out their files per item; the default ignores them.
  virtual void set_local_items(const std::vector<WriteItem>& items) { (void)items; }
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

/// Tuning of the HDF5 writers (shared file and aggregated). The defaults are what measured best on
/// Cairn's benchmark (benchmarks/README.md, "Tuning the HDF5 backend"); change them to measure.
struct Hdf5Options {
  /// Objects of at least `alignment_threshold` bytes start at a multiple of `alignment` bytes in
  /// the file (H5Pset_alignment). 0: the file system's preferred I/O size for the checkpoint
  /// directory (st_blksize: 4 KiB on ext4 and XFS, the stripe size on Lustre); 1: no alignment.
  std::size_t alignment = 0;
  std::size_t alignment_threshold = std::size_t{64} << 10;
  /// Collective data writes (MPI-IO two-phase I/O: aggregators gather and write); false: every
  /// rank writes its own hyperslabs independently. Independent is the default: each rank's chunk is
  /// one large contiguous run of a contiguous dataset, which gains nothing from aggregation, and
  /// it measured as fast or faster (benchmarks/README.md). Collective buffering helps when chunks
  /// are small or interleaved. Compressed entries (ArrayEntry::compress) are always written
  /// collectively: parallel HDF5 writes filtered datasets no other way.
  bool collective_writes = false;
  /// HDF5 metadata written collectively and read once then broadcast (H5Pset_coll_metadata_write,
  /// H5Pset_all_coll_metadata_ops).
  bool collective_metadata = true;
  /// Chunked datasets (HDF5 chunks of the first dimension split evenly among the ranks) instead
  /// of contiguous ones.
  bool chunked = false;
  /// MPI-IO hints handed to MPI_File_open through HDF5, such as {"cb_nodes", "2"},
  /// {"romio_cb_write", "enable"} or {"striping_unit", "1048576"}. Unknown keys are ignored by MPI.
  std::vector<std::pair<std::string, std::string>> mpi_hints;
};

/// The default backend: one HDF5 file per checkpoint written through MPI-IO; every array a dataset
/// with its global shape, readable by h5py and h5dump without Cairn. (With a group that has no MPI
/// communicator, such as SerialProcessGroup, the file is written with HDF5's POSIX driver.)
std::unique_ptr<StorageWriter> make_hdf5_writer();
std::unique_ptr<StorageWriter> make_hdf5_writer(const Hdf5Options& options);
/// Reads checkpoints of both HDF5 layouts: one shared file, or one file per saving rank.
std::unique_ptr<StorageReader> make_hdf5_reader();

/// The backend of saves without collectives (SaveOptions::use_collectives = false): every rank
/// writes its own HDF5 file, "rank_<r>.h5", holding each of its chunks as a dataset and its own
/// metadata. Its calls are NOT collective: each rank runs open, write, finish on its own.
std::unique_ptr<StorageWriter> make_hdf5_rank_files_writer();

/// Options of the posix backend (make_posix_writer).
struct PosixOptions {
  /// Every piece of data starts at a multiple of this many bytes in its rank file: a power of two,
  /// at least 512 (the file-system block, or the stripe size on a parallel file system).
  std::size_t alignment = 4096;
  /// Write the rank files with O_DIRECT, bypassing the page cache (through an aligned bounce
  /// buffer). Where the file system refuses O_DIRECT the write goes through the page cache and a
  /// warning is logged once.
  bool direct_io = false;
};

/// The posix backend: one raw file per saving rank ("rank_<r>.dat", each piece at an aligned
/// offset, written in large requests and fsync'd) plus one metadata file written by rank 0 that
/// holds the same Metadata as the HDF5 layouts and where each piece lies. The fastest way to disk;
/// tools that need HDF5 use convert_checkpoint (cairn/convert.hpp). Collective like the HDF5 writer,
/// so not for saves with use_collectives = false (those write with the rank-files backend).
std::unique_ptr<StorageWriter> make_posix_writer(const PosixOptions& options = {});
/// Reads the posix layout, resharding like the HDF5 readers.
std::unique_ptr<StorageReader> make_posix_reader();

/// The aggregated HDF5 layout, for many ranks: the ranks are split into `files` groups of
/// consecutive ranks (0: one group per node, from MPI_COMM_TYPE_SHARED), each group writes its
/// chunks collectively into its own file "part_<g>.h5", and rank 0 writes "data.h5", whose
/// virtual datasets present every array whole, with its global shape, to h5py and h5dump.
std::unique_ptr<StorageWriter> make_hdf5_aggregated_writer(int files = 0, const Hdf5Options& options = {});

/// Reads every layout Cairn writes (HDF5 shared file, HDF5 aggregated, HDF5 rank files, posix),
/// telling them apart on open. LoadOptions uses it when no reader is given. It follows the
/// references of incremental checkpoints (ChunkRecord::source): regions held by an earlier
/// checkpoint are read from it, opened once per open(); a missing one is a StorageError naming it.
std::unique_ptr<StorageReader> make_reader();

}  // namespace cairn
