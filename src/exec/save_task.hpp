// The shared state behind a SaveFuture.
#pragma once

#include <cairn/future.hpp>

#include "exec/executor.hpp"

#include <atomic>
#include <exception>

namespace cairn::detail {

class SaveTask {
 public:
  explicit SaveTask(Executor* executor) noexcept : m_executor(executor) {}

  /// Records the outcome; called once, by the job that ends the save (or by async_save when the
  /// save fails before reaching the worker).
  void complete(std::exception_ptr error, const SaveTimings& timings) noexcept {
    m_error = std::move(error);
    m_timings = timings;
    m_done.store(true, std::memory_order_release);
  }

  bool done() const noexcept { return m_done.load(std::memory_order_acquire); }

  /// Runs or waits for the executor's jobs until this save is done.
  void wait() {
    if (done()) return;
    m_executor->run_until([this] { return done(); });
  }

  /// Non-blocking in background mode; in deferred mode the caller's thread runs the save now.
  bool test() {
    if (done()) return true;
    if (m_executor->mode() == Executor::Mode::Deferred) wait();
    return done();
  }

  // Read only after done().
  const std::exception_ptr& error() const noexcept { return m_error; }
  const SaveTimings& timings() const noexcept { return m_timings; }

 private:
  // Valid until done(): the checkpointer that owns the executor finishes every save before dying.
  Executor* m_executor;
  std::exception_ptr m_error;
  SaveTimings m_timings;
  std::atomic<bool> m_done{false};
};

}  // namespace cairn::detail
