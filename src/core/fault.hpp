// Fault injection for tests: CAIRN_FAULT="<rank>:<step>" makes that rank fail at that step.
#pragma once

#include <string>

namespace cairn::detail {

/// Throws StorageError("injected fault ...") when CAIRN_FAULT names this rank (or '*') and `step`.
/// Steps: validate, plan, stage, prepare, open, write, metadata, publish, load-open, load-read.
void fault_point(const char* step, int rank);

}  // namespace cairn::detail
