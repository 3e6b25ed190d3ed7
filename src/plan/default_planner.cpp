#include <cairn/error.hpp>
#include <cairn/planner.hpp>

#include "core/region.hpp"

#include <algorithm>
#include <string>
#include <unordered_map>

namespace cairn {

namespace {

std::string rank_str(int r) {
  return "rank " + std::to_string(r);
}

EntryInfo scalar_info(const Entry& entry, int world_size) {
  EntryInfo info;
  info.name = entry.name;
  info.kind = EntryKind::Scalar;
  info.distribution = entry.distribution;
  const auto& target = std::get<ScalarEntry>(entry.value).target;
  if (std::holds_alternative<std::int64_t*>(target)) {
    info.scalar_type = ScalarType::Int64;
    info.dtype = DType::Int64;
  } else if (std::holds_alternative<double*>(target)) {
    info.scalar_type = ScalarType::Float64;
    info.dtype = DType::Float64;
  } else {
    info.scalar_type = ScalarType::String;
    info.dtype = DType::UInt8;
  }
  if (entry.distribution == Distribution::RankLocal) info.global_shape = {world_size};
  return info;
}

// The first difference in structure between two ranks' descriptions of one entry, or "".
std::string structure_difference(const EntryInfo& a, const EntryInfo& b) {
  if (a.kind != b.kind) return "kind";
  if (a.distribution != b.distribution) return "distribution";
  if (a.dtype != b.dtype)
    return "dtype (" + std::string(dtype_name(a.dtype)) + " vs " + std::string(dtype_name(b.dtype)) + ")";
  if (a.scalar_type != b.scalar_type) return "scalar type";
  const bool sizes_may_differ = a.kind == EntryKind::Bytes && a.distribution == Distribution::RankLocal;
  if (!sizes_may_differ && a.global_shape != b.global_shape)
    return "global shape (" + detail::to_string(a.global_shape) + " vs " + detail::to_string(b.global_shape) + ")";
  return {};
}

}  // namespace

SavePlan DefaultPlanner::create_local_plan(const State& state, int rank, int world_size) {
  SavePlan plan;
  plan.entries.reserve(state.size());
  for (const Entry& entry : state.entries()) {
    const auto index = static_cast<std::int32_t>(plan.entries.size());
    if (const auto* array = std::get_if<ArrayEntry>(&entry.value)) {
      EntryInfo info;
      info.name = entry.name;
      info.kind = EntryKind::Array;
      info.distribution = entry.distribution;
      info.dtype = array->dtype;
      info.global_shape = array->global_shape;
      plan.entries.push_back(std::move(info));
      for (std::size_t c = 0; c < array->chunks.size(); ++c) {
        const Chunk& chunk = array->chunks[c];
        plan.items.push_back(
            WriteItem{index, static_cast<std::int32_t>(c), Region{chunk.offset, chunk.shape}, chunk.offset});
      }
    } else if (const auto* bytes = std::get_if<BytesEntry>(&entry.value)) {
      const auto size = static_cast<std::int64_t>(bytes->vector ? bytes->vector->size() : bytes->size);
      EntryInfo info;
      info.name = entry.name;
      info.kind = EntryKind::Bytes;
      info.distribution = entry.distribution;
      info.dtype = DType::UInt8;
      info.global_shape = {size};
      plan.entries.push_back(std::move(info));
      // An empty blob has nothing to write, but rank-local offsets still need its size: keep the
      // item and let the global plan drop it.
      plan.items.push_back(WriteItem{index, 0, Region{{0}, {size}}, {0}});
    } else {
      plan.entries.push_back(scalar_info(entry, world_size));
      if (entry.distribution == Distribution::RankLocal)
        plan.items.push_back(WriteItem{index, 0, Region{{rank}, {1}}, {rank}});
    }
  }
  return plan;
}

GlobalPlan DefaultPlanner::create_global_plan(std::vector<SavePlan> local_plans) {
  const int world = static_cast<int>(local_plans.size());
  GlobalPlan global;
  global.items_per_rank.resize(local_plans.size());

  // Merge entries by name, in order of first appearance; remember who holds each.
  std::unordered_map<std::string, std::int32_t> index_of;
  std::vector<int> first_holder;
  std::vector<int> holders;
  std::vector<std::vector<std::int32_t>> local_to_global(local_plans.size());
  for (int r = 0; r < world; ++r) {
    auto& map = local_to_global[static_cast<std::size_t>(r)];
    for (EntryInfo& info : local_plans[static_cast<std::size_t>(r)].entries) {
      auto [it, inserted] = index_of.emplace(info.name, static_cast<std::int32_t>(global.entries.size()));
      if (inserted) {
        global.entries.push_back(info);
        first_holder.push_back(r);
        holders.push_back(0);
      } else {
        const EntryInfo& seen = global.entries[static_cast<std::size_t>(it->second)];
        if (const std::string diff = structure_difference(seen, info); !diff.empty())
          throw UsageError("entry '" + info.name + "': the " + diff + " differs between " +
                           rank_str(first_holder[static_cast<std::size_t>(it->second)]) + " and " + rank_str(r));
      }
      ++holders[static_cast<std::size_t>(it->second)];
      map.push_back(it->second);
    }
  }
  for (std::size_t e = 0; e < global.entries.size(); ++e) {
    const EntryInfo& info = global.entries[e];
    if (info.distribution != Distribution::Sharded && holders[e] != world) {
      for (int r = 0; r < world; ++r) {
        const auto& map = local_to_global[static_cast<std::size_t>(r)];
        if (std::find(map.begin(), map.end(), static_cast<std::int32_t>(e)) == map.end())
          throw UsageError("entry '" + info.name + "' is " +
                           (info.distribution == Distribution::Replicated ? "replicated" : "rank-local") + " but " +
                           rank_str(r) + " does not hold it (every rank must)");
      }
    }
  }

  // Gather each entry's items with their owners.
  struct Owned {
    int rank;
    WriteItem item;
  };
  std::vector<std::vector<Owned>> by_entry(global.entries.size());
  for (int r = 0; r < world; ++r) {
    const auto& map = local_to_global[static_cast<std::size_t>(r)];
    for (WriteItem& item : local_plans[static_cast<std::size_t>(r)].items) {
      item.entry = map[static_cast<std::size_t>(item.entry)];
      by_entry[static_cast<std::size_t>(item.entry)].push_back(Owned{r, std::move(item)});
    }
  }

  std::vector<std::int64_t> load(static_cast<std::size_t>(world), 0);  // bytes assigned per rank
  auto least_loaded = [&] { return static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin()); };
  auto assign = [&](int rank, WriteItem item, std::size_t element_size) {
    if (detail::volume(item.region.shape) == 0) return;  // nothing to write (an empty blob)
    load[static_cast<std::size_t>(rank)] += detail::volume(item.region.shape) * static_cast<std::int64_t>(element_size);
    global.items_per_rank[static_cast<std::size_t>(rank)].push_back(std::move(item));
  };

  for (std::size_t e = 0; e < global.entries.size(); ++e) {
    EntryInfo& info = global.entries[e];
    std::vector<Owned>& owned = by_entry[e];
    const std::size_t esize = dtype_size(info.dtype);
    if (info.kind == EntryKind::Array && info.distribution == Distribution::Sharded) {
      std::vector<Region> regions;
      regions.reserve(owned.size());
      for (const Owned& o : owned) regions.push_back(o.item.region);
      std::size_t a = 0, b = 0;
      if (detail::find_overlap(regions, a, b))
        throw UsageError("entry '" + info.name + "': region " + detail::to_string(regions[a]) + " of " +
                         rank_str(owned[a].rank) + " overlaps region " + detail::to_string(regions[b]) + " of " +
                         rank_str(owned[b].rank) + " (only replicated entries may be held by two ranks)");
      for (Owned& o : owned) assign(o.rank, std::move(o.item), esize);
    } else if (info.kind == EntryKind::Array) {  // replicated: every rank must hold the same chunks
      std::vector<const WriteItem*> reference;
      std::vector<std::vector<const WriteItem*>> per_rank(static_cast<std::size_t>(world));
      for (const Owned& o : owned) per_rank[static_cast<std::size_t>(o.rank)].push_back(&o.item);
      for (int r = 1; r < world; ++r) {
        const auto& mine = per_rank[static_cast<std::size_t>(r)];
        bool same = mine.size() == per_rank[0].size();
        for (std::size_t i = 0; same && i < mine.size(); ++i) same = mine[i]->region == per_rank[0][i]->region;
        if (!same)
          throw UsageError("entry '" + info.name + "' is replicated but " + rank_str(r) +
                           " holds different chunks than rank 0");
      }
      for (const WriteItem* item : per_rank[0]) {
        const std::int64_t bytes = detail::volume(item->region.shape) * static_cast<std::int64_t>(esize);
        const std::int64_t rows = item->region.shape[0];
        if (bytes >= m_replicated_split_bytes && world > 1 && rows > 1) {
          // Spread the bytes: rank k writes the k-th slab of the first dimension from its own copy.
          for (int k = 0; k < world; ++k) {
            const std::int64_t begin = rows * k / world;
            const std::int64_t end = rows * (k + 1) / world;
            if (end == begin) continue;
            WriteItem slab = *item;
            slab.region.offset[0] += begin;
            slab.region.shape[0] = end - begin;
            assign(k, std::move(slab), esize);
          }
        } else {
          assign(least_loaded(), *item, esize);
        }
      }
    } else if (info.kind == EntryKind::Bytes && info.distribution == Distribution::Replicated) {
      for (const Owned& o : owned)
        if (o.item.region.shape != owned.front().item.region.shape)
          throw UsageError("entry '" + info.name + "' is a replicated blob but its size differs between " +
                           rank_str(owned.front().rank) + " and " + rank_str(o.rank));
      if (!owned.empty()) assign(least_loaded(), owned.front().item, esize);
    } else if (info.kind == EntryKind::Bytes) {  // rank-local: side by side in rank order
      info.rank_offsets.assign(static_cast<std::size_t>(world) + 1, 0);
      for (const Owned& o : owned) info.rank_offsets[static_cast<std::size_t>(o.rank) + 1] = o.item.region.shape[0];
      for (int r = 0; r < world; ++r)
        info.rank_offsets[static_cast<std::size_t>(r) + 1] += info.rank_offsets[static_cast<std::size_t>(r)];
      info.global_shape = {info.rank_offsets.back()};
      for (Owned& o : owned) {
        const std::int64_t start = info.rank_offsets[static_cast<std::size_t>(o.rank)];
        o.item.region.offset = {start};
        o.item.source_offset = {start};
        assign(o.rank, std::move(o.item), esize);
      }
    } else {  // rank-local scalars: one element per rank
      for (Owned& o : owned) assign(o.rank, std::move(o.item), esize);
    }
  }

  // Collective write rounds per entry: the most items any one rank writes of it. Each rank's items
  // were appended entry by entry, so an entry's items form one run.
  for (const auto& items : global.items_per_rank) {
    for (std::size_t i = 0; i < items.size();) {
      std::size_t j = i;
      while (j < items.size() && items[j].entry == items[i].entry) ++j;
      std::int32_t& rounds = global.entries[static_cast<std::size_t>(items[i].entry)].max_items_per_rank;
      rounds = std::max(rounds, static_cast<std::int32_t>(j - i));
      i = j;
    }
  }
  return global;
}

}  // namespace cairn
