// Binary form of plans, for gathering local plans on rank 0 and handing finished plans back.
#pragma once

#include <cairn/planner.hpp>

#include <cairn/state.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace cairn::detail {

std::vector<std::byte> encode_plan(const SavePlan& plan);
SavePlan decode_plan(const std::vector<std::byte>& bytes);

std::vector<std::byte> encode_entries(const std::vector<EntryInfo>& entries);
std::vector<EntryInfo> decode_entries(const std::vector<std::byte>& bytes);

std::vector<std::byte> encode_items(const std::vector<WriteItem>& items);
std::vector<WriteItem> decode_items(const std::vector<std::byte>& bytes);

/// A 64-bit fingerprint (xxh3) of everything DefaultPlanner::create_local_plan reads from
/// `state`: the order, names, kinds and distributions of its entries, array dtypes, global shapes
/// and chunk offsets and shapes, blob sizes and scalar types. Not what it does not read: data
/// pointers, layouts, strides, values. For one rank and world size, states with equal
/// fingerprints have the same local plan (but for a 2^-64 chance), at a fraction of its cost.
std::uint64_t plan_fingerprint(const State& state);

}  // namespace cairn::detail
