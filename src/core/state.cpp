#include <cairn/error.hpp>
#include <cairn/state.hpp>

namespace cairn {

ArrayEntry& State::add_array(std::string name, DType dtype, Extents global_shape, Distribution distribution) {
  ArrayEntry array;
  array.dtype = dtype;
  array.global_shape = std::move(global_shape);
  Entry& entry = add_entry(Entry{std::move(name), distribution, std::move(array), -1});
  return std::get<ArrayEntry>(entry.value);
}

void State::add_bytes(std::string name, void* data, std::size_t size, Distribution distribution) {
  BytesEntry bytes;
  bytes.data = data;
  bytes.size = size;
  add_entry(Entry{std::move(name), distribution, bytes, -1});
}

void State::add_bytes(std::string name, std::vector<std::byte>& bytes, Distribution distribution) {
  BytesEntry entry;
  entry.vector = &bytes;
  add_entry(Entry{std::move(name), distribution, entry, -1});
}

void State::add_bytes_from_all_ranks(std::string name, std::vector<std::vector<std::byte>>& out) {
  BytesEntry entry;
  entry.all_ranks = &out;
  add_entry(Entry{std::move(name), Distribution::RankLocal, entry, -1});
}

void State::add_scalar(std::string name, std::int64_t& value, Distribution distribution) {
  add_entry(Entry{std::move(name), distribution, ScalarEntry{&value}, -1});
}

void State::add_scalar(std::string name, double& value, Distribution distribution) {
  add_entry(Entry{std::move(name), distribution, ScalarEntry{&value}, -1});
}

void State::add_scalar(std::string name, std::string& value) {
  add_entry(Entry{std::move(name), Distribution::Replicated, ScalarEntry{&value}, -1});
}

void State::add(const std::string& prefix, Stateful& object) {
  State inner;
  object.describe(inner);
  for (Entry& entry : inner.m_entries) {
    entry.name = prefix.empty() ? entry.name : prefix + "/" + entry.name;
    add_entry(std::move(entry));
  }
  for (Stateful* nested : inner.m_statefuls) m_statefuls.push_back(nested);
  for (auto& mirror : inner.m_mirrors) m_mirrors.push_back(std::move(mirror));
  m_statefuls.push_back(&object);
}

Entry& State::add_entry(Entry entry) {
  m_entries.push_back(std::move(entry));
  return m_entries.back();
}

void State::add_mirror(std::shared_ptr<HostMirror> mirror) {
  if (!mirror) throw UsageError("add_mirror: the mirror is null");
  m_mirrors.push_back(std::move(mirror));
}

void State::load_from_rank(const std::string& name, int saved_rank) {
  Entry* entry = find(name);
  if (entry == nullptr) throw UsageError("load_from_rank: the state has no entry '" + name + "'");
  if (entry->distribution != Distribution::RankLocal)
    throw UsageError("load_from_rank: entry '" + name + "' is not rank-local");
  if (saved_rank < 0) throw UsageError("load_from_rank: entry '" + name + "': negative rank");
  entry->source_rank = saved_rank;
}

const Entry* State::find(const std::string& name) const noexcept {
  for (const Entry& entry : m_entries)
    if (entry.name == name) return &entry;
  return nullptr;
}

Entry* State::find(const std::string& name) noexcept {
  for (Entry& entry : m_entries)
    if (entry.name == name) return &entry;
  return nullptr;
}

}  // namespace cairn
