// Step 1 of a save or load: checks a State on the caller's thread, before any collective.
#pragma once

#include <cairn/state.hpp>

namespace cairn::detail {

enum class Purpose { Save, Load };

/// Throws UsageError naming the entry and `rank` for the first problem found: a bad name, a
/// duplicate, a name that is also a group, an unknown dtype, a non-positive extent, a chunk outside
/// the global shape, overlapping chunks, a missing pointer, a distribution the kind does not allow.
void validate_state(const State& state, int rank, int world_size, Purpose purpose);

}  // namespace cairn::detail
