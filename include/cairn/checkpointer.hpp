// Checkpointer: saves and loads States across the ranks of a communicator.
#pragma once

#include <cairn/planner.hpp>
#include <cairn/process_group.hpp>
#include <cairn/state.hpp>
#include <cairn/storage.hpp>

#include <mpi.h>

#include <cstdint>
#include <memory>
#include <string>

namespace cairn {

/// Options of one save.
struct SaveOptions {
  /// Replace an existing checkpoint with the same id. The old one is removed only after the new
  /// one is complete; without this flag, saving onto an existing id is an error.
  bool overwrite = false;
  /// The backend to write with; the HDF5 backend when null.
  std::shared_ptr<StorageWriter> writer;
};

/// Options of one load.
struct LoadOptions {
  /// The backend to read with; the HDF5 backend when null.
  std::shared_ptr<StorageReader> reader;
  /// Accept a stored dtype that converts losslessly into the requested one (int32 into int64).
  bool allow_lossless_conversion = true;
};

/// Saves and loads States collectively over a process group. A checkpoint id is a directory path;
/// a checkpoint is published atomically (written under a partial name, renamed into place once
/// every rank succeeded) and is all-or-nothing.
class Checkpointer {
 public:
  /// Collective over `comm`: duplicates it; Cairn never communicates on `comm` itself.
  explicit Checkpointer(MPI_Comm comm);
  /// Uses `group` for every collective (a replacement transport, or a shared MpiProcessGroup).
  explicit Checkpointer(std::shared_ptr<ProcessGroup> group);
  ~Checkpointer();
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;
  Checkpointer(Checkpointer&&) noexcept;
  Checkpointer& operator=(Checkpointer&&) noexcept;

  /// Replaces the planner (DefaultPlanner unless set). Not collective, but set it alike on all ranks.
  void set_planner(std::shared_ptr<Planner> planner);

  /// Collective. Writes `state` to checkpoint `id`. Returns once the checkpoint is published and
  /// durable. Throws UsageError for invalid entries or ids, StorageError for I/O failures; the
  /// same error on every rank, naming the rank where it happened, with nothing published and an
  /// existing checkpoint untouched.
  void save(const State& state, const std::string& id, const SaveOptions& options = {});

  /// Collective. Fills every chunk, blob and scalar of `state` from checkpoint `id`, whatever the
  /// decomposition and rank count at save. Entries in the checkpoint that `state` does not name are
  /// ignored; an entry `state` names that the checkpoint lacks is an error naming it. Throws
  /// UsageError (missing entry, dtype or shape mismatch), StorageError or CorruptCheckpointError,
  /// the same on every rank.
  void load(State& state, const std::string& id, const LoadOptions& options = {});

  /// This checkpointer's process group.
  ProcessGroup& process_group() noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

/// The library's version string, "major.minor.patch".
const char* version() noexcept;

}  // namespace cairn
