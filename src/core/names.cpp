#include "core/names.hpp"

#include <algorithm>

namespace cairn::detail {

std::string name_problem(std::string_view name) {
  if (name.empty()) return "the name is empty";
  if (name.front() == '/') return "the name starts with '/'";
  if (name.back() == '/') return "the name ends with '/'";
  if (name.find("//") != std::string_view::npos) return "the name contains '//'";
  std::size_t start = 0;
  while (start <= name.size()) {
    const std::size_t end = std::min(name.find('/', start), name.size());
    const std::string_view part = name.substr(start, end - start);
    if (part == "." || part == "..") return "the name has a '.' or '..' component";
    start = end + 1;
  }
  for (char c : name)
    if (static_cast<unsigned char>(c) < 0x20) return "the name contains a control character";
  const std::string_view first = name.substr(0, name.find('/'));
  if (first == reserved_group) return "names under '_cairn/' are reserved for Cairn's metadata";
  return {};
}

std::string group_collision(std::vector<std::string> names) {
  // After sorting, a name that is a group of another sorts right before its first child
  // ("a" < "a/b"), except for siblings like "a-x" that sort between; check the next few.
  std::sort(names.begin(), names.end());
  for (std::size_t i = 0; i < names.size(); ++i) {
    const std::string prefix = names[i] + "/";
    auto it = std::lower_bound(names.begin() + static_cast<std::ptrdiff_t>(i) + 1, names.end(), prefix);
    if (it != names.end() && it->compare(0, prefix.size(), prefix) == 0)
      return "entry '" + names[i] + "' is also the group of entry '" + *it + "'";
  }
  return {};
}

std::vector<std::string> parent_groups(std::string_view name) {
  std::vector<std::string> groups;
  for (std::size_t pos = name.find('/'); pos != std::string_view::npos; pos = name.find('/', pos + 1))
    groups.emplace_back(name.substr(0, pos));
  return groups;
}

std::string_view leaf_name(std::string_view name) {
  const std::size_t pos = name.rfind('/');
  return pos == std::string_view::npos ? name : name.substr(pos + 1);
}

}  // namespace cairn::detail
