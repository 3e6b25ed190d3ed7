// Fault injection for tests: CAIRN_FAULT="<rank|*>:<step>[:<action>]" makes that rank fail at that
// step. Actions: "error" (the default: StorageError), "enospc" (StorageError as for a full disk),
// "kill" (the process sends itself SIGKILL, as a crash would), "cuda" (DeviceError, as from a
// failed CUDA call).
#pragma once

#include <string>

namespace cairn::detail {

/// Acts when CAIRN_FAULT names this rank (or '*') and `step`. Steps: validate, plan, stage,
/// prepare, open, write (after the data), metadata, commit (after the file is finished), publish,
/// published, retention, load-open, load-read, device-copy (before a save's or a load's copies
/// of device chunks), local-publish (a node-local save, before the nodes publish) and drain (after
/// a rank's file is copied to the root, before the copy is published).
void fault_point(const char* step, int rank);

}  // namespace cairn::detail
