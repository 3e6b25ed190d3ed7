#include "comm/agree.hpp"

#include <cairn/error.hpp>

#include <cstdint>
#include <cstring>
#include <vector>

namespace cairn::detail {

namespace {

void describe(std::exception_ptr failure, ErrorCode& code, std::string& message) {
  try {
    std::rethrow_exception(failure);
  } catch (const Error& e) {
    code = e.code();
    message = e.what();
  } catch (const std::bad_alloc&) {
    code = ErrorCode::Storage;
    message = "out of memory";
  } catch (const std::exception& e) {
    code = ErrorCode::Internal;
    message = e.what();
  } catch (...) {
    code = ErrorCode::Internal;
    message = "unknown exception";
  }
}

}  // namespace

void agree(ProcessGroup& group, const std::string& step, std::exception_ptr local_failure) {
  // Lowest failing rank and the number of failing ranks, in one reduction.

  std::int64_t lowest = local_failure ? group.rank() : group.size();
  group.allreduce(&lowest, 1, ReduceOp::Min);
  if (lowest == group.size()) return;
  std::int64_t failures = local_failure ? 1 : 0;
  group.allreduce(&failures, 1, ReduceOp::Sum);

  const int root = static_cast<int>(lowest);
  ErrorCode code = ErrorCode::Internal;
  std::string message;
  if (group.rank() == root) describe(local_failure, code, message);
  std::uint64_t header[2] = {static_cast<std::uint64_t>(code), message.size()};
  group.broadcast(header, sizeof header, root);
  message.resize(header[1]);
  group.broadcast(message.data(), message.size(), root);

  std::string text = step + " failed on rank " + std::to_string(root) + ": " + message;
  if (failures > 1) text += " (and on " + std::to_string(failures - 1) + " other rank(s))";
  if (local_failure && group.rank() != root) {
    ErrorCode own_code;
    std::string own;
    describe(local_failure, own_code, own);
    text += "; on this rank " + std::to_string(group.rank()) + ": " + own;
  }
  throw_error(static_cast<ErrorCode>(header[0]), text);
}

}  // namespace cairn::detail
