// The checkpointer's single worker: a FIFO of jobs run by one thread, or by the caller when the
// worker may not call MPI.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace cairn::detail {

class Executor {
 public:
  enum class Mode {
    Background,  ///< A thread named "cairn-worker" runs the jobs as they arrive.
    Deferred,    ///< Jobs wait until the caller runs them in drain().
  };

  explicit Executor(Mode mode);
  /// Runs (Deferred) or waits for (Background) every job still queued, then stops the worker.
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  Mode mode() const noexcept { return m_mode; }
  /// Queues `job`. Jobs run one at a time in the order posted; a job must not throw.
  void post(std::function<void()> job);
  /// Returns once every job posted so far has run (running them on this thread when Deferred).
  void drain();
  /// Deferred: runs queued jobs until `done()` holds or none is left. Background: waits until
  /// `done()` holds; the worker notifies through notify() after each job.
  void run_until(const std::function<bool()>& done);
  /// True when no job is queued or running.
  bool idle();

 private:
  void work();

  Mode m_mode;
  std::mutex m_mutex;
  std::condition_variable m_wake;  // the worker: a job arrived or stop
  std::condition_variable m_idle;  // the caller: a job finished
  std::deque<std::function<void()>> m_jobs;
  bool m_running = false;
  bool m_stop = false;
  std::thread m_thread;
};

}  // namespace cairn::detail
