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

  /// The job's mean time between failures, in seconds (0: not used). When set, due() also says a
  /// save is due once checkpoint_interval() has passed since the last save began: the optimum
  /// interval (optimal_checkpoint_interval) for the measured cost of a save, never shorter than a
  /// whole save takes. Until a save has been measured, the first due() says yes.
  double mtbf_seconds = 0;
  /// The job's wall-clock limit, in seconds from the manager's construction. 0: from the
  /// environment, as Unix seconds of the job's end: CAIRN_JOB_END_TIME (set it in the job script,
  /// for any batch system), else SLURM_JOB_END_TIME (Slurm 22.05 and later); none: no limit known.
  double time_limit_seconds = 0;
  /// should_exit() says yes once the time left is less than twice the measured time of a whole
  /// save plus this margin, in seconds (for the restart script, the application's own output).
  double exit_margin_seconds = 60;

  /// Node-local tier (empty: none). A directory on fast storage of each node (a RAM disk, a local
  /// SSD); "{node}" in it is replaced by the rank's node index, so that simulated nodes on one
  /// machine get directories of their own (one directory that several nodes see is refused at
  /// construction). Saves are written there with the posix backend and published on every node;
  /// the worker then drains each one to `root` (see CheckpointManager).
  std::string local_root;
  /// Nodes for the tier: 0: the ranks that share memory (MPI_COMM_TYPE_SHARED); N > 0: blocks of
  /// N consecutive ranks (tests, and launchers that pack ranks in order).
  int ranks_per_node = 0;
  /// The drain's rate per rank, in bytes per second (0: as fast as it goes); it copies in blocks
  /// of 4 MiB and sleeps between them to keep to the rate.
  double drain_bytes_per_second = 0;
  /// Checkpoints kept in the node-local tier (at least 1). Older ones are removed once their copy
  /// under `root` is published, never before.
  int keep_local = 2;
  /// Each rank also sends its rank file to a partner rank on the next node, which keeps it in its
  /// node's copy, so that a checkpoint survives the loss of one node before the drain finishes.
  bool partner_copies = false;

  /// Incremental saves (SaveOptions::incremental_from): each save writes only the chunks that
  /// changed since the previous checkpoint and refers to the checkpoints holding the others.
  /// Retention keeps every checkpoint a kept one refers to, and removes it once none does;
  /// latest() and restore_or_start() skip a checkpoint whose referenced checkpoint is missing.
  /// Saves into the node-local tier (`local_root`) stay full.
  bool incremental = false;
  /// With `incremental`: every `full_every`-th save writes every chunk (and so does the first save
  /// of each manager), so that old checkpoints can go. 1: every save is full.
  int full_every = 10;
};

/// The compute time between checkpoints that loses the least work to failures and checkpoints,
/// for a save that costs the application `save_cost_seconds` and failures `mtbf_seconds` apart:
/// Daly's higher-order estimate (Young's sqrt(2 C M) to first order); `mtbf_seconds` itself when
/// the cost is at least twice it. Throws UsageError for a negative cost or a non-positive MTBF.
double optimal_checkpoint_interval(double save_cost_seconds, double mtbf_seconds);

/// One published checkpoint under the manager's root.
struct CheckpointInfo {
  std::int64_t step = 0;
  /// Its checkpoint id (directory), for Checkpointer::load or verify.
  std::string id;
  /// Where it lives: "root" (the manager's root), or "node-local" (ManagerOptions::local_root,
  /// `id` then being this rank's node's copy, read with the node-local reader by restore_or_start).
  std::string tier = "root";
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
/// Node-local tier (ManagerOptions::local_root): a save is written into every node's own directory
/// and published there (the save's future completes then), then drained by the worker to `root`,
/// where it is published like any checkpoint; the next save waits for the drain. latest() and
/// restore_or_start() prefer a local copy that every node holds for the same ranks on the same
/// nodes (CheckpointInfo::tier), rebuilding a lost node's copy from partner copies when they are
/// kept, and fall back to `root` otherwise. Local copies go only once a checkpoint at least as new
/// is published under `root`.
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
  /// ones; std::nullopt when there is none. With the node-local tier, a usable local copy wins at
  /// an equal or newer step (a node's lost copy is rebuilt from partner copies on the way).
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

  /// Collective. The interval due() keeps with ManagerOptions::mtbf_seconds, in seconds, from
  /// rank 0's measurements: optimal_checkpoint_interval(median stall of the recent saves, MTBF),
  /// and at least the median time of a whole save. 0 without mtbf_seconds or before any save.
  double checkpoint_interval();

  /// Collective. Seconds left before the job's wall-clock limit (ManagerOptions::time_limit_seconds
  /// or the environment), by rank 0's clock; std::nullopt when no limit is known.
  std::optional<double> time_left();

  /// Collective. True when the job should stop now to end cleanly before its wall-clock limit:
  /// the time left is below twice a whole save's measured time plus exit_margin_seconds. Before it
  /// says yes it saves `state` as the checkpoint of `step` (unless that step is already saved) and
  /// waits until it is published, so the next job restarts from `step`; its error is thrown. Once
  /// it has said yes it keeps saying yes without saving again. False when no limit is known.
  bool should_exit(const State& state, std::int64_t step);

  /// The checkpoint id of `step`: "<root>/<prefix><step, 10 digits>". Not collective.
  std::string id_of(std::int64_t step) const;

  /// The checkpointer the manager saves with.
  Checkpointer& checkpointer() noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

}  // namespace cairn
