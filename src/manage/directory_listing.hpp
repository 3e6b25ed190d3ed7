// Names in a checkpoint root: listing a directory, telling checkpoint names ("<prefix><step>")
// apart. Shared by the manager and its node-local tier.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cairn::detail {

bool exists(const std::string& path);
bool ends_with(const std::string& s, const std::string& tail);
/// The step in "<prefix><digits>", or -1 when `name` is not such a name.
std::int64_t step_of(const std::string& name, const std::string& prefix);
/// Entry names of `dir` but "." and ".."; none when it does not exist. Throws StorageError.
std::vector<std::string> directory_names(const std::string& dir);

}  // namespace cairn::detail
