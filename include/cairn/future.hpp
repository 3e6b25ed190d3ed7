// SaveFuture: the handle of a save running on the checkpointer's worker thread.
#pragma once

#include <cstdint>
#include <memory>

namespace cairn {

namespace detail {
class SaveTask;
}

/// Where the time of one save went, on this rank.
struct SaveTimings {
  /// Validating the state and agreeing on the plan (caller's thread).
  double plan_seconds = 0;
  /// Copying the caller's bytes into staging memory (caller's thread).
  double stage_seconds = 0;
  /// Preparing the directory, creating the files and writing the data (worker thread).
  double write_seconds = 0;
  /// Recording the metadata, making it durable and publishing (worker thread).
  double commit_seconds = 0;
  /// How long async_save() blocked the caller, waiting for the previous save included.
  double stall_seconds = 0;
  /// Bytes of checkpoint data this rank wrote (an incremental save: only the chunks it wrote, not
  /// those it refers to in an earlier checkpoint).
  std::uint64_t bytes_written = 0;
};

/// The outcome of one async_save(). Copyable; every copy refers to the same save.
///
/// When the checkpointer writes in the background (MPI_THREAD_MULTIPLE, or no MPI), wait(), test()
/// and get() are local. Under a lower MPI thread level the write runs on the calling thread inside
/// wait(), test() or get() (or the checkpointer's next call), which are then collective: call them
/// on every rank.
class SaveFuture {
 public:
  /// An invalid future (valid() is false); wait(), test() and get() throw UsageError.
  SaveFuture() = default;

  /// True when this future refers to a save.
  bool valid() const noexcept { return m_task != nullptr; }
  /// Blocks until the save has finished, successfully or not. Never throws the save's error.
  void wait();
  /// True when the save has finished. Does not block in background mode.
  bool test();
  /// Waits, then rethrows the save's error (the same on every rank), every time it is called.
  void get();
  /// The save's phase timings on this rank; waits for the save first.
  SaveTimings timings();

  /// Internal: futures are made by Checkpointer::async_save().
  explicit SaveFuture(std::shared_ptr<detail::SaveTask> task) noexcept : m_task(std::move(task)) {}

 private:
  std::shared_ptr<detail::SaveTask> m_task;
};

}  // namespace cairn
