// What CheckpointManager needs of a Checkpointer beyond its public API: steps of its own inside a
// save, and storage calls on the checkpointer's worker (HDF5 is only ever called from there).
#pragma once

#include <cairn/checkpointer.hpp>

#include <functional>
#include <string>

namespace cairn::detail {

/// Work a save runs on rank 0, on the worker. A hook's failure is logged, never fails the save.
struct SaveHooks {
  /// Before the checkpoint's directory is prepared.
  std::function<void()> before_prepare;
  /// Once the checkpoint is published.
  std::function<void()> after_publish;
};

struct CheckpointerAccess {
  /// Checkpointer::async_save with `hooks`.
  static SaveFuture async_save(Checkpointer& checkpointer, const State& state, const std::string& id,
                               const SaveOptions& options, SaveHooks hooks);
  /// Waits for the save in flight, then runs `job` on the worker and waits for it; rethrows what
  /// it throws. Collective when `job` is.
  static void run_on_worker(Checkpointer& checkpointer, const std::function<void()>& job);
  /// Queues `job` on the worker after the save in flight and returns at once: the future
  /// completes when it has run, with what it threw. Collective when `job` is; the next save, load
  /// or wait() waits for it.
  static SaveFuture run_after(Checkpointer& checkpointer, std::function<void()> job);
};

}  // namespace cairn::detail
