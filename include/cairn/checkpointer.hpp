// Checkpointer: saves and loads States across the ranks of a communicator.
#pragma once

#include <cairn/future.hpp>
#include <cairn/planner.hpp>
#include <cairn/process_group.hpp>
#include <cairn/state.hpp>
#include <cairn/storage.hpp>

#include <mpi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace cairn {

namespace detail {
struct CheckpointerAccess;
}

/// How a save takes the bytes out of the caller's memory before async_save() returns.
enum class StagingMode : std::uint8_t {
  /// Every byte is copied into staging memory the checkpointer owns and reuses: the caller may
  /// change its arrays as soon as async_save() returns. The default.
  Copy = 0,
  /// Contiguous chunks are written straight from the caller's memory: async_save() returns almost
  /// at once, and the caller promises not to change those arrays until the future completes.
  ZeroCopy = 1,
  /// Like Copy, through at most `staging_budget_bytes` of staging memory: a larger state is staged
  /// and written in pieces, and async_save() returns once the last piece is staged.
  Bounded = 2,
};

/// Options of one save. The fields after `writer` follow the signature of PyTorch DCP's save.
struct SaveOptions {
  /// Replace an existing checkpoint with the same id. The old one is removed only after the new
  /// one is complete; without this flag, saving onto an existing id is an error.
  bool overwrite = false;
  /// The backend to write with; the HDF5 backend when null.
  std::shared_ptr<StorageWriter> writer;
  /// The planner for this save; the checkpointer's (set_planner) when null.
  std::shared_ptr<Planner> planner;
  /// The process group for this save; the checkpointer's when null.
  std::shared_ptr<ProcessGroup> process_group;
  /// One process, no collectives at all: this rank saves what it holds as a checkpoint of its own,
  /// as a world of one. MPI need not be initialized.
  bool no_dist = false;
  /// False: no collectives while planning and writing. Each rank plans alone and writes its own
  /// file with its own metadata; one agreement at the end decides the outcome. Replicated entries
  /// are written by rank 0 without checking that the ranks agree. A load reads every rank's
  /// metadata and reshards as usual.
  bool use_collectives = true;
  /// How bytes leave the caller's memory.
  StagingMode staging = StagingMode::Copy;
  /// StagingMode::Bounded: the most staging memory this rank uses, in bytes (at least 2 MiB).
  std::size_t staging_budget_bytes = std::size_t{256} << 20;
  /// An incremental save: the id of an earlier checkpoint in the same directory as `id` (a
  /// sibling; else UsageError). Each rank checksums its chunks before writing and leaves out those
  /// whose bytes match the base's chunk of the same entry (same dtype and global shape) and
  /// region: their records refer to the checkpoint holding the bytes (ChunkRecord::source: the
  /// base, or the checkpoint the base itself refers to, never a chain). Loads and verify follow
  /// the references, so that checkpoint must stay (CheckpointManager keeps it). A base that is
  /// missing, damaged, of another structure, layout or rank count, or a bounded staging save,
  /// writes every chunk instead (logged). HDF5 shared-file and posix backends only: others throw
  /// UsageError. Empty: a full save.
  std::string incremental_from;
};

/// Options of one load.
struct LoadOptions {
  /// The backend to read with; when null, make_reader(), which reads every layout Cairn writes.
  /// Either way, chunks of an incremental checkpoint held by an earlier one are read from it.
  std::shared_ptr<StorageReader> reader;
  /// Accept a stored dtype that converts losslessly into the requested one (int32 into int64).
  bool allow_lossless_conversion = true;
  /// The process group for this load; the checkpointer's when null.
  std::shared_ptr<ProcessGroup> process_group;
  /// One process, no collectives: this rank loads alone, as a world of one. MPI need not be
  /// initialized.
  bool no_dist = false;
  /// Check every byte read against the xxh3-64 checksum its chunk was saved with, and throw
  /// CorruptCheckpointError naming the entry, the chunk's offsets and the saving rank on a
  /// mismatch. Each rank reads the saved chunks it touches whole (in slices of at most
  /// `verify_buffer_bytes`), except chunks of 8 MiB and more: those are checksummed in blocks of
  /// rows (4 MiB and up, at most 16 per chunk), and a load reads and checks only the blocks that
  /// hold rows it asks for. A resharded load thus reads a little more than it keeps (at most a
  /// block at each end of its share of a chunk); turn this off to read only the regions asked for.
  bool verify_checksums = true;
  /// Memory for reading saved chunks that do not match the requested regions, per rank.
  std::size_t verify_buffer_bytes = std::size_t{64} << 20;
};

/// A chunk whose stored bytes do not match the checksum it was saved with, or cannot be read.
struct BadChunk {
  std::string entry;
  /// The chunk's region in the entry's global index space.
  std::vector<std::int64_t> offset;
  std::vector<std::int64_t> shape;
  /// The rank that saved it.
  int saving_rank = 0;
  std::uint64_t expected_checksum = 0;
  /// The checksum of the bytes found (0 when they could not be read).
  std::uint64_t actual_checksum = 0;
  /// What was wrong, in words, naming the entry, offsets, rank and file.
  std::string message;
};

/// The outcome of Checkpointer::verify(): the same on every rank.
struct VerifyReport {
  std::string id;
  std::int64_t chunks_checked = 0;
  std::int64_t bytes_checked = 0;
  std::vector<BadChunk> bad_chunks;
  /// True when every chunk's bytes match their checksum.
  bool ok() const noexcept { return bad_chunks.empty(); }
};

/// Options of Checkpointer::verify().
struct VerifyOptions {
  /// The backend to read with; when null, make_reader(), which reads every layout Cairn writes.
  std::shared_ptr<StorageReader> reader;
  /// Memory for reading chunks, per rank.
  std::size_t buffer_bytes = std::size_t{64} << 20;
};

/// Saves and loads States collectively over a process group. A checkpoint id is a directory path;
/// a checkpoint is published atomically (written under a partial name, renamed into place once
/// every rank succeeded) and is all-or-nothing.
///
/// Each checkpointer owns one worker thread ("cairn-worker") that runs every storage call, so that
/// HDF5 is only ever called from one thread. At most one save is in flight; a new save or a load
/// first waits for it, and so does the destructor. When MPI was initialized below
/// MPI_THREAD_MULTIPLE the worker cannot call MPI: saves are then staged by async_save() and
/// written on the calling thread inside the future's wait()/test()/get() or the next call
/// (background_writes() is false, and CAIRN_LOG=warn says so at construction).
class Checkpointer {
 public:
  /// A checkpointer for one process without MPI (a serial code or tool); MPI may be uninitialized.
  Checkpointer();
  /// Collective over `comm`: duplicates it; Cairn never communicates on `comm` itself.
  explicit Checkpointer(MPI_Comm comm);
  /// Uses `group` for every collective (a replacement transport, or a shared MpiProcessGroup).
  explicit Checkpointer(std::shared_ptr<ProcessGroup> group);
  /// Collective when a save is in flight: waits for it to finish (its error stays in its future).
  ~Checkpointer();
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;
  Checkpointer(Checkpointer&&) noexcept;
  Checkpointer& operator=(Checkpointer&&) noexcept;

  /// Replaces the planner (DefaultPlanner unless set). Not collective, but set it alike on all ranks.
  void set_planner(std::shared_ptr<Planner> planner);

  /// Collective. Starts writing `state` to checkpoint `id` and returns once the bytes are staged
  /// (see StagingMode); planning and staging run on the calling thread, the write and the commit
  /// on the worker. Waits first for the save in flight. Never throws for a failed save: the
  /// future's get() throws UsageError for invalid entries or ids, StorageError for I/O failures,
  /// the same error on every rank, naming the step and the rank where it happened, with nothing
  /// published and an existing checkpoint untouched. `state` may be destroyed once this returns.
  SaveFuture async_save(const State& state, const std::string& id, const SaveOptions& options = {});

  /// Collective. async_save(state, id, options).get(): returns once the checkpoint is published
  /// and durable, throws what get() throws. The caller waits, so its arrays cannot change while
  /// they are written: StagingMode::Copy (the default) writes them straight from the caller's
  /// memory as ZeroCopy does, without a staging copy.
  void save(const State& state, const std::string& id, const SaveOptions& options = {});

  /// Collective. Fills every chunk, blob and scalar of `state` from checkpoint `id`, whatever the
  /// decomposition and rank count at save. Entries in the checkpoint that `state` does not name are
  /// ignored; an entry `state` names that the checkpoint lacks is an error naming it. Throws
  /// UsageError (missing entry, dtype or shape mismatch), StorageError or CorruptCheckpointError,
  /// the same on every rank.
  void load(State& state, const std::string& id, const LoadOptions& options = {});

  /// Collective. Reads every chunk of checkpoint `id` back, the chunks shared out among the ranks,
  /// and compares each with the checksum it was saved with. Returns the same report on every rank,
  /// naming each bad chunk (entry, offsets, saving rank). Throws StorageError or
  /// CorruptCheckpointError when the checkpoint cannot be opened at all (missing, not published,
  /// metadata damaged) and UnsupportedError for a format version newer than this library's.
  VerifyReport verify(const std::string& id, const VerifyOptions& options = {});

  /// Collective when a save is in flight. Waits for it; its error stays in its future.
  void wait();

  /// This checkpointer's process group.
  ProcessGroup& process_group() noexcept;

  /// True when saves are written by the worker thread while the caller goes on (MPI_THREAD_MULTIPLE
  /// or no MPI); false when they are written inside wait()/test()/get() on the calling thread.
  bool background_writes() const noexcept;

  /// The timings of the last save that finished, on this rank.
  SaveTimings last_save_timings() const;

 private:
  friend struct detail::CheckpointerAccess;  // CheckpointManager's hooks into the save steps
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

/// The library's version string, "major.minor.patch".
const char* version() noexcept;

}  // namespace cairn
