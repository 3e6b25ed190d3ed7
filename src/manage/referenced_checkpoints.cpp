#include "manage/referenced_checkpoints.hpp"

#include <cairn/process_group.hpp>
#include <cairn/storage.hpp>

#include "storage/layout/reference_reader.hpp"

#include <algorithm>
#include <iterator>
#include <memory>
#include <unordered_map>

namespace cairn::detail {

std::vector<std::string> referenced_checkpoints(const std::string& directory) {
  SerialProcessGroup alone;
  std::unique_ptr<StorageReader> reader = make_layout_reader();  // its own metadata, not its holders'
  std::vector<std::string> names;
  try {
    reader->open(directory, alone);
    for (const ChunkRecord& c : reader->metadata().chunks)
      if (!c.source.empty()) names.push_back(c.source.substr(c.source.rfind('/') + 1));
  } catch (...) {
    reader->close();
    throw;
  }
  reader->close();
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

void keep_referenced(const std::string& root, const std::vector<std::string>& names, std::vector<bool>& keep,
                     ReferenceCache& cache) {
  std::unordered_map<std::string, std::size_t> index_of;
  for (std::size_t i = 0; i < names.size(); ++i) index_of.emplace(names[i], i);
  std::vector<std::size_t> pending;
  for (std::size_t i = 0; i < names.size(); ++i)
    if (keep[i]) pending.push_back(i);
  std::vector<bool> read(names.size(), false);
  while (!pending.empty()) {
    const std::size_t i = pending.back();
    pending.pop_back();
    if (read[i]) continue;
    read[i] = true;
    auto cached = cache.find(names[i]);
    if (cached == cache.end()) cached = cache.emplace(names[i], referenced_checkpoints(root + "/" + names[i])).first;
    for (const std::string& name : cached->second) {
      auto found = index_of.find(name);
      if (found == index_of.end() || keep[found->second]) continue;  // gone already: loads report it
      keep[found->second] = true;
      pending.push_back(found->second);
    }
  }
  for (auto it = cache.begin(); it != cache.end();)  // forget the checkpoints that are gone
    it = index_of.count(it->first) ? std::next(it) : cache.erase(it);
}

}  // namespace cairn::detail
