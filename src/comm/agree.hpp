// Agreement on the outcome of a step: every rank learns whether any rank failed, and how.
#pragma once

#include <cairn/process_group.hpp>

#include <exception>
#include <string>

namespace cairn::detail {

/// Collective. When `local_failure` is set on any rank, every rank throws the same Error: the
/// failure of the lowest failing rank, with its code, prefixed with the step and that rank
/// ("save of 'ckpt' failed in step write on rank 2: ..."). Returns normally when all succeeded.
void agree(ProcessGroup& group, const std::string& step, std::exception_ptr local_failure);

/// Runs `body`, capturing what it throws, then agrees on the outcome of `step`.
template <class Body>
void agree_on(ProcessGroup& group, const std::string& step, Body&& body) {
  std::exception_ptr failure;
  try {
    body();
  } catch (...) {
    failure = std::current_exception();
  }
  agree(group, step, failure);
}

}  // namespace cairn::detail
