#include "manage/directory_listing.hpp"

#include <cairn/error.hpp>

#include "storage/common/publish.hpp"

#include <dirent.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdint>

namespace cairn::detail {

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

std::int64_t step_of(const std::string& name, const std::string& prefix) {
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return -1;
  std::int64_t step = 0;
  for (std::size_t i = prefix.size(); i < name.size(); ++i) {
    const char c = name[i];
    if (c < '0' || c > '9') return -1;
    if (step > (INT64_MAX - (c - '0')) / 10) return -1;
    step = step * 10 + (c - '0');
  }
  return step;
}

std::vector<std::string> directory_names(const std::string& dir) {
  std::vector<std::string> names;
  DIR* stream = ::opendir(dir.c_str());
  if (stream == nullptr) {
    if (errno == ENOENT) return names;
    throw StorageError("cannot list directory '" + dir + "': " + errno_text(errno));
  }
  while (const dirent* e = ::readdir(stream)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(stream);
  return names;
}

}  // namespace cairn::detail
