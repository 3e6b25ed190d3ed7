#include <cairn/error.hpp>
#include <cairn/future.hpp>

#include "exec/save_task.hpp"

namespace cairn {

namespace {

detail::SaveTask& task_of(const std::shared_ptr<detail::SaveTask>& task) {
  if (!task) throw UsageError("SaveFuture: this future refers to no save (default-constructed)");
  return *task;
}

}  // namespace

void SaveFuture::wait() {
  task_of(m_task).wait();
}

bool SaveFuture::test() {
  return task_of(m_task).test();
}

void SaveFuture::get() {
  detail::SaveTask& task = task_of(m_task);
  task.wait();
  if (task.error()) std::rethrow_exception(task.error());
}

SaveTimings SaveFuture::timings() {
  detail::SaveTask& task = task_of(m_task);
  task.wait();
  return task.timings();
}

}  // namespace cairn
