#include <cairn/error.hpp>
#include <cairn/planner.hpp>

#include "core/compression.hpp"
#include "core/region.hpp"

#include <algorithm>
#include <string>
#include <string_view>
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

// "zstd level 5", "deflate", "none": how an entry asks to be compressed.
std::string compression_label(const EntryInfo& e) {
  std::string label = detail::compression_name(e.compression);
  if (e.compression_level != 0) label += " level " + std::to_string(e.compression_level);
  return label;
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
  if (a.compression != b.compression || a.compression_level != b.compression_level)
    return "compression (" + compression_label(a) + " vs " + compression_label(b) + ")";
  return {};
}

}  // namespace

SavePlan DefaultPlanner::create_local_plan(const State& state, int rank, int world_size) {
  SavePlan plan;
  plan.entries.reserve(state.size());
  std::size_t n_items = 0;
  for (const Entry& entry : state.entries())
    n_items += entry.is_array() ? std::get<ArrayEntry>(entry.value).chunks.size() : 1;
  plan.items.reserve(n_items);
  for (const Entry& entry : state.entries()) {
    const auto index = static_cast<std::int32_t>(plan.entries.size());
    if (const auto* array = std::get_if<ArrayEntry>(&entry.value)) {
      EntryInfo info;
      info.name = entry.name;
      info.kind = EntryKind::Array;
      info.distribution = entry.distribution;
      info.dtype = array->dtype;
      info.global_shape = array->global_shape;
      info.compression = array->compression;
      info.compression_level = array->compression_level;
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

namespace {

// The least loaded rank (lowest rank among equals), in O(log world) per change of a load: a
// tournament tree over the ranks' loads.
class LeastLoaded {
 public:
  explicit LeastLoaded(int world) : m_load(static_cast<std::size_t>(world), 0) {
    while (m_leaves < static_cast<std::size_t>(world)) m_leaves *= 2;
    m_tree.assign(2 * m_leaves, -1);
    for (std::size_t r = 0; r < m_load.size(); ++r) m_tree[m_leaves + r] = static_cast<int>(r);
    for (std::size_t i = m_leaves - 1; i > 0; --i) m_tree[i] = better(m_tree[2 * i], m_tree[2 * i + 1]);
  }
  int least() const { return m_tree[1]; }
  void add(int rank, std::int64_t bytes) {
    m_load[static_cast<std::size_t>(rank)] += bytes;
    for (std::size_t i = (m_leaves + static_cast<std::size_t>(rank)) / 2; i > 0; i /= 2)
      m_tree[i] = better(m_tree[2 * i], m_tree[2 * i + 1]);
  }

 private:
  int better(int a, int b) const {
    if (a < 0) return b;
    if (b < 0) return a;
    return m_load[static_cast<std::size_t>(b)] < m_load[static_cast<std::size_t>(a)] ? b : a;  // a < b
  }
  std::vector<std::int64_t> m_load;
  std::vector<int> m_tree;
  std::size_t m_leaves = 1;
};

// One local item: its rank and its index in that rank's plan.
struct ItemRef {
  std::int32_t rank;
  std::int32_t index;
};

}  // namespace

GlobalPlan DefaultPlanner::create_global_plan(std::vector<SavePlan> local_plans) {
  const int world = static_cast<int>(local_plans.size());
  GlobalPlan global;
  global.items_per_rank.resize(local_plans.size());
  auto plan_of = [&](int r) -> SavePlan& { return local_plans[static_cast<std::size_t>(r)]; };

  // Merge entries by name, in order of first appearance; remember who holds each. Ranks usually
  // list the same names in the same order: an entry named like the global entry at its own
  // position is that entry, found without hashing. Names are viewed in the local plans, which stay
  // put until the global entries are moved out of them at the end.
  std::unordered_map<std::string_view, std::int32_t> index_of;
  std::vector<ItemRef> first;  // per global entry: the local entry that introduced it
  std::vector<int> holders;
  std::vector<std::vector<std::int32_t>> local_to_global(local_plans.size());
  auto global_entry = [&](std::size_t g) -> const EntryInfo& {
    const ItemRef at = first[g];
    return plan_of(at.rank).entries[static_cast<std::size_t>(at.index)];
  };
  for (int r = 0; r < world; ++r) {
    auto& map = local_to_global[static_cast<std::size_t>(r)];
    const auto& entries = plan_of(r).entries;
    map.reserve(entries.size());
    if (r == 0) {
      index_of.reserve(entries.size());
      first.reserve(entries.size());
      holders.reserve(entries.size());
    }
    for (std::size_t i = 0; i < entries.size(); ++i) {
      const EntryInfo& info = entries[i];
      std::int32_t g = -1;
      if (i < first.size() && global_entry(i).name == info.name) {
        g = static_cast<std::int32_t>(i);
      } else {
        auto [it, inserted] = index_of.emplace(info.name, static_cast<std::int32_t>(first.size()));
        if (inserted) {
          first.push_back(ItemRef{r, static_cast<std::int32_t>(i)});
          holders.push_back(0);
        }
        g = it->second;
      }
      const auto gi = static_cast<std::size_t>(g);
      if (first[gi].rank != r || first[gi].index != static_cast<std::int32_t>(i)) {
        if (const std::string diff = structure_difference(global_entry(gi), info); !diff.empty())
          throw UsageError("entry '" + info.name + "': the " + diff + " differs between " + rank_str(first[gi].rank) +
                           " and " + rank_str(r));
      }
      ++holders[gi];
      map.push_back(g);
    }
  }
  const std::size_t n_entries = first.size();
  for (std::size_t e = 0; e < n_entries; ++e) {
    const EntryInfo& info = global_entry(e);
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

  // Each entry's items with their owners, in rank order: a counting sort into one flat list.
  std::vector<std::size_t> begin(n_entries + 1, 0);
  for (int r = 0; r < world; ++r) {
    const auto& map = local_to_global[static_cast<std::size_t>(r)];
    for (WriteItem& item : plan_of(r).items) {
      if (item.entry < 0 || static_cast<std::size_t>(item.entry) >= map.size())
        throw InternalError("the local plan of " + rank_str(r) + " names entry " + std::to_string(item.entry) + " of " +
                            std::to_string(map.size()));
      item.entry = map[static_cast<std::size_t>(item.entry)];
      ++begin[static_cast<std::size_t>(item.entry) + 1];
    }
  }
  for (std::size_t e = 0; e < n_entries; ++e) begin[e + 1] += begin[e];
  std::vector<ItemRef> refs(begin[n_entries]);
  {
    std::vector<std::size_t> next(begin.begin(), begin.end() - 1);
    for (int r = 0; r < world; ++r) {
      const auto& items = plan_of(r).items;
      for (std::size_t i = 0; i < items.size(); ++i)
        refs[next[static_cast<std::size_t>(items[i].entry)]++] = ItemRef{r, static_cast<std::int32_t>(i)};
    }
  }
  auto item_of = [&](const ItemRef& ref) -> WriteItem& {
    return plan_of(ref.rank).items[static_cast<std::size_t>(ref.index)];
  };

  for (int r = 0; r < world; ++r) global.items_per_rank[static_cast<std::size_t>(r)].reserve(plan_of(r).items.size());
  LeastLoaded load(world);  // bytes assigned per rank
  auto assign = [&](int rank, WriteItem item, std::size_t element_size) {
    const std::int64_t elements = detail::volume(item.region.shape);
    if (elements == 0) return;  // nothing to write (an empty blob)
    load.add(rank, elements * static_cast<std::int64_t>(element_size));
    global.items_per_rank[static_cast<std::size_t>(rank)].push_back(std::move(item));
  };

  std::vector<detail::BoxRef> boxes;
  for (std::size_t e = 0; e < n_entries; ++e) {
    EntryInfo& info = plan_of(first[e].rank).entries[static_cast<std::size_t>(first[e].index)];
    const ItemRef* owned = refs.data() + begin[e];
    const std::size_t n_owned = begin[e + 1] - begin[e];
    const std::size_t esize = dtype_size(info.dtype);
    if (info.kind == EntryKind::Array && info.distribution == Distribution::Sharded) {
      const std::size_t ndim = info.global_shape.size();
      boxes.clear();
      for (std::size_t k = 0; k < n_owned; ++k) {
        const Region& region = item_of(owned[k]).region;
        if (region.offset.size() != ndim || region.shape.size() != ndim)
          throw UsageError("entry '" + info.name + "': region " + detail::to_string(region) + " of " +
                           rank_str(owned[k].rank) + " has the wrong number of dimensions");
        boxes.push_back(detail::BoxRef{region.offset.data(), region.shape.data()});
      }
      std::size_t a = 0, b = 0;
      if (detail::find_overlap(boxes, ndim, a, b))
        throw UsageError("entry '" + info.name + "': region " + detail::to_string(item_of(owned[a]).region) + " of " +
                         rank_str(owned[a].rank) + " overlaps region " + detail::to_string(item_of(owned[b]).region) +
                         " of " + rank_str(owned[b].rank) + " (only replicated entries may be held by two ranks)");
      for (std::size_t k = 0; k < n_owned; ++k) {
        WriteItem& item = item_of(owned[k]);
        const std::int64_t bytes = detail::volume(item.region.shape) * static_cast<std::int64_t>(esize);
        const std::int64_t rows = ndim > 0 ? item.region.shape[0] : 0;
        if (m_max_item_bytes <= 0 || bytes <= m_max_item_bytes || rows < 2) {
          assign(owned[k].rank, std::move(item), esize);
          continue;
        }
        // Slabs of the first dimension, as even as the rows allow.
        const std::int64_t pieces = std::min(rows, (bytes + m_max_item_bytes - 1) / m_max_item_bytes);
        for (std::int64_t p = 0; p < pieces; ++p) {
          const std::int64_t lo = rows * p / pieces;
          const std::int64_t hi = rows * (p + 1) / pieces;
          WriteItem slab = item;
          slab.region.offset[0] += lo;
          slab.region.shape[0] = hi - lo;
          assign(owned[k].rank, std::move(slab), esize);
        }
      }
    } else if (info.kind == EntryKind::Array) {  // replicated: every rank must hold the same chunks
      // The items are in rank order: rank 0's run first, then each other rank's.
      std::size_t reference = 0;
      while (reference < n_owned && owned[reference].rank == 0) ++reference;
      std::size_t run = reference;  // where rank r's run starts
      for (int r = 1; r < world; ++r) {
        std::size_t end = run;
        while (end < n_owned && owned[end].rank == r) ++end;
        bool same = end - run == reference;
        for (std::size_t i = 0; same && i < reference; ++i)
          same = item_of(owned[run + i]).region == item_of(owned[i]).region;
        if (!same)
          throw UsageError("entry '" + info.name + "' is replicated but " + rank_str(r) +
                           " holds different chunks than rank 0");
        run = end;
      }
      for (std::size_t i = 0; i < reference; ++i) {
        const WriteItem& item = item_of(owned[i]);  // moved only in the last branch
        const std::int64_t bytes = detail::volume(item.region.shape) * static_cast<std::int64_t>(esize);
        const std::int64_t rows = item.region.shape[0];
        if (bytes >= m_replicated_split_bytes && world > 1 && rows > 1) {
          // Spread the bytes: rank k writes the k-th slab of the first dimension from its own copy.
          for (int k = 0; k < world; ++k) {
            const std::int64_t lo = rows * k / world;
            const std::int64_t hi = rows * (k + 1) / world;
            if (hi == lo) continue;
            WriteItem slab = item;
            slab.region.offset[0] += lo;
            slab.region.shape[0] = hi - lo;
            assign(k, std::move(slab), esize);
          }
        } else {
          assign(load.least(), std::move(item_of(owned[i])), esize);
        }
      }
    } else if (info.kind == EntryKind::Bytes && info.distribution == Distribution::Replicated) {
      for (std::size_t k = 0; k < n_owned; ++k)
        if (item_of(owned[k]).region.shape != item_of(owned[0]).region.shape)
          throw UsageError("entry '" + info.name + "' is a replicated blob but its size differs between " +
                           rank_str(owned[0].rank) + " and " + rank_str(owned[k].rank));
      if (n_owned > 0) assign(load.least(), item_of(owned[0]), esize);
    } else if (info.kind == EntryKind::Bytes) {  // rank-local: side by side in rank order
      info.rank_offsets.assign(static_cast<std::size_t>(world) + 1, 0);
      for (std::size_t k = 0; k < n_owned; ++k)
        info.rank_offsets[static_cast<std::size_t>(owned[k].rank) + 1] = item_of(owned[k]).region.shape[0];
      for (int r = 0; r < world; ++r)
        info.rank_offsets[static_cast<std::size_t>(r) + 1] += info.rank_offsets[static_cast<std::size_t>(r)];
      info.global_shape = {info.rank_offsets.back()};
      for (std::size_t k = 0; k < n_owned; ++k) {
        WriteItem& item = item_of(owned[k]);
        const std::int64_t start = info.rank_offsets[static_cast<std::size_t>(owned[k].rank)];
        item.region.offset = {start};
        item.source_offset = {start};
        assign(owned[k].rank, std::move(item), esize);
      }
    } else {  // rank-local scalars: one element per rank
      for (std::size_t k = 0; k < n_owned; ++k) assign(owned[k].rank, std::move(item_of(owned[k])), esize);
    }
  }

  // The global entries, moved out of the local plans that introduced them (nothing views their
  // names any more).
  index_of.clear();
  global.entries.reserve(n_entries);
  for (std::size_t e = 0; e < n_entries; ++e)
    global.entries.push_back(std::move(plan_of(first[e].rank).entries[static_cast<std::size_t>(first[e].index)]));

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
