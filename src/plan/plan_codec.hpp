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

}  // namespace cairn::detail
