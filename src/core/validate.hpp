// Step 1 of a save or load: checks a State on the caller's thread, before any collective.
#pragma once

#include <cairn/state.hpp>

namespace cairn::detail {

enum class Purpose { Save, Load };

/// Throws UsageError naming the entry and `rank` for the first problem found: a bad name, a
/// duplicate, a name that is also a group, an unknown dtype, a non-positive extent, a chunk outside
/// the global shape, overlapping chunks, a missing pointer, a distribution the kind does not allow.
/// Returns a 64-bit fingerprint (xxh3) of the state's structure: the order, names, kinds and
/// distributions of its entries, array dtypes, compression, global shapes and chunk offsets and
/// shapes, blob sizes and scalar types; not data pointers, layouts, strides or values. For one
/// purpose, rank and world size, states with equal fingerprints have the same DefaultPlanner
/// local plan (but for a 2^-64 chance): the save's plan cache takes it as its key, so a cached
/// save walks the state once, not twice.
std::uint64_t validate_state(const State& state, int rank, int world_size, Purpose purpose);

}  // namespace cairn::detail
