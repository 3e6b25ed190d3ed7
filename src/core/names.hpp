// Entry names: '/'-separated paths that become HDF5 groups and datasets.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace cairn::detail {

/// Group that holds Cairn's own metadata in every checkpoint; no entry may live under it.
inline constexpr std::string_view reserved_group = "_cairn";

/// Returns an empty string when `name` is valid, otherwise why it is not.
std::string name_problem(std::string_view name);

/// Returns "" when no name is both an entry and the group of another ('a' and 'a/b'), otherwise
/// a message naming the pair. `names` need not be sorted.
std::string group_collision(std::vector<std::string> names);

/// Splits "a/b/c" into its parent groups ("a", "a/b") and leaf ("c").
std::vector<std::string> parent_groups(std::string_view name);
std::string_view leaf_name(std::string_view name);

}  // namespace cairn::detail
