#include "exec/executor.hpp"

#include <pthread.h>
#include <signal.h>

namespace cairn::detail {

Executor::Executor(Mode mode) : m_mode(mode) {
  if (m_mode != Mode::Background) return;
  // The worker inherits a full signal mask: the application's signal handlers run on its own
  // threads, never in the middle of a checkpoint write.
  sigset_t all;
  sigset_t previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  m_thread = std::thread([this] {
    pthread_setname_np(pthread_self(), "cairn-worker");
    work();
  });
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

Executor::~Executor() {
  drain();
  if (m_thread.joinable()) {
    {
      std::lock_guard<std::mutex> lock(m_mutex);
      m_stop = true;
    }
    m_wake.notify_all();
    m_thread.join();
  }
}

void Executor::post(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lock(m_mutex);
    m_jobs.push_back(std::move(job));
  }
  if (m_mode == Mode::Background) m_wake.notify_one();
}

void Executor::work() {
  std::unique_lock<std::mutex> lock(m_mutex);
  for (;;) {
    m_wake.wait(lock, [this] { return m_stop || !m_jobs.empty(); });
    if (m_jobs.empty()) return;  // stop, and nothing left to do
    std::function<void()> job = std::move(m_jobs.front());
    m_jobs.pop_front();
    m_running = true;
    lock.unlock();
    job();
    job = nullptr;  // release what the job captured before reporting it done
    lock.lock();
    m_running = false;
    m_idle.notify_all();
  }
}

void Executor::run_until(const std::function<bool()>& done) {
  if (m_mode == Mode::Background) {
    std::unique_lock<std::mutex> lock(m_mutex);
    m_idle.wait(lock, [&] { return done() || (m_jobs.empty() && !m_running); });
    return;
  }
  for (;;) {
    if (done()) return;
    std::function<void()> job;
    {
      std::lock_guard<std::mutex> lock(m_mutex);
      if (m_jobs.empty()) return;
      job = std::move(m_jobs.front());
      m_jobs.pop_front();
    }
    job();
  }
}

void Executor::drain() {
  run_until([] { return false; });
}

bool Executor::idle() {
  std::lock_guard<std::mutex> lock(m_mutex);
  return m_jobs.empty() && !m_running;
}

}  // namespace cairn::detail
