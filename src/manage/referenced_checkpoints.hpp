// Retention of incremental checkpoints: which checkpoints hold chunks of others.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace cairn::detail {

/// The names of the sibling checkpoints that the checkpoint in `directory` refers to for chunks
/// it did not write (its chunk records' sources, "../<name>" as "<name>"), sorted. Reads only
/// its metadata, with HDF5 where it is HDF5: call it on the checkpointer's worker. Throws what
/// opening the checkpoint throws.
std::vector<std::string> referenced_checkpoints(const std::string& directory);

/// What each checkpoint refers to, by name: a published checkpoint does not change, so its
/// metadata is read once (the caller erases the name of one saved again).
using ReferenceCache = std::map<std::string, std::vector<std::string>>;

/// Marks in `keep` (by index into `names`, the checkpoints under `root`) every checkpoint that a
/// kept one refers to, and what those refer to in turn. Throws when a kept checkpoint's metadata
/// cannot be read: retention then removes nothing rather than a checkpoint still needed.
void keep_referenced(const std::string& root, const std::vector<std::string>& names, std::vector<bool>& keep,
                     ReferenceCache& cache);

}  // namespace cairn::detail
