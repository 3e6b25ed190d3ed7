// CheckpointManager: the lifecycle of a run's checkpoints under one root directory.
#pragma once

#include <cairn/checkpointer.hpp>

#include <mpi.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace cairn {

/// How CheckpointManager::latest() decides that a checkpoint is good.
enum class CheckMode : std::uint8_t {
  /// Published (renamed into place, with its CAIRN marker) and its metadata opens and decodes.
  Fast = 0,
  /// Fast, and every chunk's bytes match their checksum (Checkpointer::verify).
  Deep = 1,
};

/// Options of a CheckpointManager.
struct ManagerOptions {
  /// Save when the step is a multiple of this (0: not by step count).
  std::int64_t every_steps = 0;
  /// Save when this many seconds have passed since the last save began, by rank 0's clock
  /// (0: not by time). With both set, a save is due when either says so.
  double every_seconds = 0;
  /// Keep the newest `keep_last` checkpoints (at least 1) ...
  int keep_last = 3;
  /// ... and every checkpoint whose step is a multiple of `keep_every` (0: none besides).
  std::int64_t keep_every = 0;
  /// What latest() checks by default.
  CheckMode check = CheckMode::Fast;
  /// Options of every save (staging, backend, ...). `overwrite` is always set: saving a step that
  /// exists replaces it atomically.
  SaveOptions save;
  /// Options of the load in restore_or_start() (checksums are verified by default).
  LoadOptions load;
  /// Checkpoints are named "<prefix><step>", the step zero-padded to 10 digits.
  std::string prefix = "step_";
};

/// One published checkpoint under the manager's root.
struct CheckpointInfo {
  std::int64_t step = 0;
  /// Its checkpoint id (directory), for Checkpointer::load or verify.
  std::string id;
};

/// Names checkpoints by step under `root`, saves when due, keeps the last K (and every M-th), and
/// finds the newest good checkpoint after a crash. Every member function is collective over the
/// checkpointer's process group. Directory listings and removals are done once, by rank 0, and the
/// other ranks are told the outcome.
///
/// Crash safety: a checkpoint is published by an atomic rename once every rank's data and its
/// metadata are durable, so a crash at any moment (kill -9 of one rank or of the whole job) leaves
/// either the new checkpoint complete or the previous ones untouched. Directories of saves that
/// never published are removed by the next save; retention removes old checkpoints only after a
/// new one is published.
///
/// Typical use:
///
///     cairn::CheckpointManager manager(MPI_COMM_WORLD, "ckpt", {.every_steps = 100});
///     std::int64_t step = manager.restore_or_start(state).value_or(0);
///     for (++step; step <= steps; ++step) {
///       advance();
///       manager.save_if_due(state, step);  // asynchronous; the next save waits for it
///     }
///     manager.wait();
class CheckpointManager {
 public:
  /// Collective over `comm`: the manager owns a Checkpointer over a duplicate of it.
  CheckpointManager(MPI_Comm comm, std::string root, ManagerOptions options = {});
  /// Uses `checkpointer`, which must outlive the manager.
  CheckpointManager(Checkpointer& checkpointer, std::string root, ManagerOptions options = {});
  /// Waits for the save in flight (collective then); its error stays in its future.
  ~CheckpointManager();
  CheckpointManager(const CheckpointManager&) = delete;
  CheckpointManager& operator=(const CheckpointManager&) = delete;

  /// Collective. True when a save is due at `step` (by step count or by rank 0's clock).
  bool due(std::int64_t step);

  /// Collective. async_save(state, step) when due(step), else an invalid future (valid() false).
  SaveFuture save_if_due(const State& state, std::int64_t step);

  /// Collective. Starts saving `state` as the checkpoint of `step`; returns once it is staged.
  /// Rank 0 first removes what saves that never published left under the root, and, once the new
  /// checkpoint is published, the checkpoints retention no longer keeps.
  SaveFuture async_save(const State& state, std::int64_t step);

  /// Collective. async_save(state, step).get().
  void save(const State& state, std::int64_t step);

  /// Collective. Waits for the save in flight; its error stays in its future.
  void wait();

  /// Collective. The published checkpoints under the root, oldest first (no checks beyond the
  /// marker of publication).
  std::vector<CheckpointInfo> list();

  /// Collective. The newest checkpoint that passes `mode`'s check, skipping (and logging) damaged
  /// ones; std::nullopt when there is none.
  std::optional<CheckpointInfo> latest(CheckMode mode);
  /// latest() with the manager's default check.
  std::optional<CheckpointInfo> latest();

  /// Collective. Loads the newest good checkpoint into `state` and returns its step; a checkpoint
  /// that fails to load (damaged data, missing files) is logged and the next older one tried.
  /// std::nullopt when no checkpoint loads: start fresh. A state that does not match the
  /// checkpoint (UsageError) is thrown, not skipped.
  std::optional<std::int64_t> restore_or_start(State& state);

  /// Collective. Checkpointer::verify() of the checkpoint of `step`.
  VerifyReport verify(std::int64_t step);

  /// The checkpoint id of `step`: "<root>/<prefix><step, 10 digits>". Not collective.
  std::string id_of(std::int64_t step) const;

  /// The checkpointer the manager saves with.
  Checkpointer& checkpointer() noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

}  // namespace cairn
