#include <cairn/checkpointer.hpp>
#include <cairn/error.hpp>

#include "comm/agree.hpp"
#include "core/checksum.hpp"
#include "core/fault.hpp"
#include "core/metadata_codec.hpp"
#include "core/region.hpp"
#include "core/strided_copy.hpp"
#include "core/validate.hpp"
#include "plan/plan_codec.hpp"
#include "stage/staging.hpp"
#include "storage/common/publish.hpp"

#include <chrono>
#include <cstring>
#include <string>
#include <unordered_map>

namespace cairn {

namespace {

std::vector<std::byte> to_bytes(const std::vector<std::uint64_t>& values) {
  std::vector<std::byte> out(values.size() * sizeof(std::uint64_t));
  if (!out.empty()) std::memcpy(out.data(), values.data(), out.size());
  return out;
}

std::vector<std::uint64_t> from_bytes(const std::vector<std::byte>& bytes) {
  std::vector<std::uint64_t> out(bytes.size() / sizeof(std::uint64_t));
  if (!out.empty()) std::memcpy(out.data(), bytes.data(), out.size() * sizeof(std::uint64_t));
  return out;
}

// Broadcasts a byte vector of any size from `root`.
void broadcast_bytes(ProcessGroup& group, std::vector<std::byte>& bytes, int root) {
  std::uint64_t size = bytes.size();
  group.broadcast(&size, sizeof size, root);
  bytes.resize(static_cast<std::size_t>(size));
  constexpr std::size_t piece = std::size_t{1} << 30;  // MPI counts are ints
  for (std::size_t at = 0; at < bytes.size(); at += piece)
    group.broadcast(bytes.data() + at, std::min(piece, bytes.size() - at), root);
}

std::string kind_name(EntryKind kind) {
  switch (kind) {
    case EntryKind::Array: return "an array";
    case EntryKind::Bytes: return "a blob";
    case EntryKind::Scalar: return "a scalar";
  }
  return "an entry";
}

ScalarValue read_scalar(const Entry& entry) {
  const auto& target = std::get<ScalarEntry>(entry.value).target;
  if (const auto* i = std::get_if<std::int64_t*>(&target)) return **i;
  if (const auto* d = std::get_if<double*>(&target)) return **d;
  return *std::get<std::string*>(target);
}

// A region read into a temporary buffer, then copied into caller memory.
struct PendingCopy {
  const Chunk* chunk = nullptr;
  Region region;
  std::size_t element_size = 0;
  std::vector<std::byte> buffer;
};

// A blob read whole, then split among saved ranks.
struct PendingSplit {
  BytesEntry bytes;
  const EntryInfo* info = nullptr;
  std::vector<std::byte> buffer;
};

}  // namespace

struct Checkpointer::Impl {
  std::shared_ptr<ProcessGroup> group;
  std::shared_ptr<Planner> planner = std::make_shared<DefaultPlanner>();
  detail::Staging staging;

  // The finished plan of the last save, reused while the state keeps its structure.
  bool plan_cached = false;
  std::uint64_t plan_hash = 0;
  SavePlan plan;
  std::vector<std::vector<WriteItem>> global_items;  // rank 0: every rank's items

  void make_plan(const State& state, const std::string& what);
  Metadata make_metadata(const State& state, const std::vector<std::vector<std::uint64_t>>& checksums) const;
  void save(const State& state, const std::string& id, const SaveOptions& options);
  void load(State& state, const std::string& id, const LoadOptions& options);
};

void Checkpointer::Impl::make_plan(const State& state, const std::string& what) {
  ProcessGroup& g = *group;
  const int rank = g.rank();
  std::vector<std::byte> encoded;
  std::uint64_t hash = 0;
  detail::agree_on(g, what + " (plan)", [&] {
    detail::fault_point("plan", rank);
    encoded = detail::encode_plan(planner->create_local_plan(state, rank, g.size()));
    hash = detail::checksum(encoded.data(), encoded.size());
  });
  // One small collective decides whether every rank's state kept its structure.
  std::int64_t unchanged = plan_cached && hash == plan_hash ? 1 : 0;
  g.allreduce(&unchanged, 1, ReduceOp::Min);
  if (unchanged) return;
  plan_cached = false;

  std::vector<std::vector<std::byte>> gathered = g.gather(encoded, 0);
  std::vector<std::byte> entries_blob;
  std::vector<std::vector<std::byte>> item_blobs;
  detail::agree_on(g, what + " (global plan)", [&] {
    if (rank != 0) return;
    std::vector<SavePlan> local_plans;
    local_plans.reserve(gathered.size());
    for (const auto& bytes : gathered) local_plans.push_back(detail::decode_plan(bytes));
    GlobalPlan global = planner->create_global_plan(std::move(local_plans));
    if (global.items_per_rank.size() != static_cast<std::size_t>(g.size()))
      throw InternalError("the planner returned items for " + std::to_string(global.items_per_rank.size()) +
                          " ranks, not " + std::to_string(g.size()));
    entries_blob = detail::encode_entries(global.entries);
    for (const auto& items : global.items_per_rank) item_blobs.push_back(detail::encode_items(items));
    global_items = std::move(global.items_per_rank);
  });
  broadcast_bytes(g, entries_blob, 0);
  std::vector<std::byte> my_items = g.scatter(item_blobs, 0);
  detail::agree_on(g, what + " (finish plan)", [&] {
    SavePlan central{detail::decode_entries(entries_blob), detail::decode_items(my_items)};
    plan = planner->finish_plan(std::move(central));
    for (const WriteItem& item : plan.items)
      if (item.entry < 0 || static_cast<std::size_t>(item.entry) >= plan.entries.size())
        throw InternalError("the finished plan names entry " + std::to_string(item.entry));
  });
  plan_hash = hash;
  plan_cached = true;
}

Metadata Checkpointer::Impl::make_metadata(const State& state,
                                           const std::vector<std::vector<std::uint64_t>>& checksums) const {
  Metadata md;
  md.library_version = version();
  md.world_size = group->size();
  md.created_unix_time =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  md.entries = plan.entries;
  std::unordered_map<std::string_view, const Entry*> by_name;
  for (const Entry& entry : state.entries()) by_name.emplace(entry.name, &entry);
  for (EntryInfo& e : md.entries)
    if (e.kind == EntryKind::Scalar && e.distribution == Distribution::Replicated)
      e.value = read_scalar(*by_name.at(e.name));
  for (std::size_t r = 0; r < global_items.size(); ++r) {
    const auto& items = global_items[r];
    if (checksums[r].size() != items.size())
      throw InternalError("rank " + std::to_string(r) + " reported " + std::to_string(checksums[r].size()) +
                          " checksums for " + std::to_string(items.size()) + " items");
    for (std::size_t i = 0; i < items.size(); ++i)
      md.chunks.push_back(ChunkRecord{items[i].entry, static_cast<std::int32_t>(r), items[i].region, checksums[r][i]});
  }
  return md;
}

void Checkpointer::Impl::save(const State& state, const std::string& id, const SaveOptions& options) {
  ProcessGroup& g = *group;
  const int rank = g.rank();
  const std::string what = "save of checkpoint '" + id + "'";
  detail::CheckpointPaths paths;
  detail::agree_on(g, what + " (validate)", [&] {
    detail::fault_point("validate", rank);
    paths = detail::checkpoint_paths(id);
    detail::validate_state(state, rank, g.size(), detail::Purpose::Save);
  });
  make_plan(state, what);

  std::vector<std::uint64_t> checksums;
  std::vector<WriteBuffer> buffers;
  detail::agree_on(g, what + " (stage)", [&] {
    detail::fault_point("stage", rank);
    buffers = staging.stage(plan, state, rank, checksums);
  });
  detail::agree_on(g, what + " (prepare directory)", [&] {
    detail::fault_point("prepare", rank);
    detail::fault_point("open", rank);  // a rank that cannot take part in the open says so first
    if (rank == 0) detail::begin_checkpoint(paths, options.overwrite);
  });

  std::shared_ptr<StorageWriter> writer = options.writer ? options.writer : make_hdf5_writer();
  try {
    detail::agree_on(g, what + " (open)", [&] { writer->open(paths.partial_dir, plan.entries, g); });
    detail::agree_on(g, what + " (write)", [&] {
      writer->write(buffers);
      detail::fault_point("write", rank);
    });
    std::vector<std::vector<std::byte>> gathered = g.gather(to_bytes(checksums), 0);
    std::vector<std::byte> blob;
    detail::agree_on(g, what + " (metadata)", [&] {
      detail::fault_point("metadata", rank);
      if (rank != 0) return;
      std::vector<std::vector<std::uint64_t>> all;
      for (const auto& bytes : gathered) all.push_back(from_bytes(bytes));
      blob = detail::encode_metadata(make_metadata(state, all));
    });
    broadcast_bytes(g, blob, 0);
    detail::agree_on(g, what + " (commit)", [&] {
      writer->finish(detail::decode_metadata(blob.data(), blob.size(), "the metadata being saved"));
    });
    detail::agree_on(g, what + " (publish)", [&] {
      // Only rank 0 publishes; once it has renamed, the checkpoint exists, so nothing may fail after.
      if (rank == 0) {
        detail::fault_point("publish", rank);
        detail::publish_checkpoint(paths);
      }
    });
  } catch (...) {
    writer->abort();
    g.barrier();  // every rank has closed its files before rank 0 removes them
    if (rank == 0) detail::discard_checkpoint(paths);
    throw;
  }
}

void Checkpointer::Impl::load(State& state, const std::string& id, const LoadOptions& options) {
  ProcessGroup& g = *group;
  const int rank = g.rank();
  const int world = g.size();
  const std::string what = "load of checkpoint '" + id + "'";
  detail::CheckpointPaths paths;
  detail::agree_on(g, what + " (validate)", [&] {
    paths = detail::checkpoint_paths(id);
    detail::validate_state(state, rank, world, detail::Purpose::Load);
    detail::fault_point("load-open", rank);
  });

  std::shared_ptr<StorageReader> reader = options.reader ? options.reader : make_hdf5_reader();
  try {
    detail::agree_on(g, what + " (open)", [&] { reader->open(paths.final_dir, g); });
    const Metadata& md = reader->metadata();

    std::vector<ReadRequest> requests;
    std::vector<PendingCopy> copies;
    std::vector<PendingSplit> splits;
    detail::agree_on(g, what + " (match entries)", [&] {
      detail::fault_point("load-read", rank);
      std::unordered_map<std::string_view, std::int32_t> index_of;
      for (std::size_t e = 0; e < md.entries.size(); ++e)
        index_of.emplace(md.entries[e].name, static_cast<std::int32_t>(e));
      std::vector<std::vector<const Region*>> saved_regions(md.entries.size());
      for (const ChunkRecord& c : md.chunks) saved_regions[static_cast<std::size_t>(c.entry)].push_back(&c.region);
      // Pending copies keep their buffers at stable addresses.
      std::size_t n_copies = 0;
      for (const Entry& entry : state.entries())
        if (const auto* a = std::get_if<ArrayEntry>(&entry.value)) n_copies += a->chunks.size();
      copies.reserve(n_copies);
      splits.reserve(state.size());

      for (Entry& entry : state.entries()) {
        const std::string where = "entry '" + entry.name + "' on rank " + std::to_string(rank);
        auto found = index_of.find(entry.name);
        if (found == index_of.end()) throw UsageError(where + ": checkpoint '" + id + "' has no such entry");
        const std::int32_t index = found->second;
        const EntryInfo& info = md.entries[static_cast<std::size_t>(index)];
        auto source_rank = [&]() -> std::int64_t {
          if (entry.source_rank >= 0) {
            if (entry.source_rank >= md.world_size)
              throw UsageError(where + ": saved rank " + std::to_string(entry.source_rank) +
                               " does not exist (the checkpoint was saved on " + std::to_string(md.world_size) +
                               " ranks)");
            return entry.source_rank;
          }
          if (md.world_size != world)
            throw UsageError(where + ": the entry is rank-local and was saved on " + std::to_string(md.world_size) +
                             " ranks, not " + std::to_string(world) + "; choose a saved rank with load_from_rank()");
          return rank;
        };

        if (auto* array = std::get_if<ArrayEntry>(&entry.value)) {
          if (info.kind != EntryKind::Array)
            throw UsageError(where + ": the state asks for an array, the checkpoint holds " + kind_name(info.kind));
          if (array->dtype != info.dtype &&
              !(options.allow_lossless_conversion && dtype_converts_losslessly(info.dtype, array->dtype)))
            throw UsageError(where + ": saved as " + std::string(dtype_name(info.dtype)) + ", requested as " +
                             std::string(dtype_name(array->dtype)) + ", which is not a lossless conversion");
          if (array->global_shape != info.global_shape)
            throw UsageError(where + ": the global shape " + detail::to_string(array->global_shape) +
                             " differs from the saved " + detail::to_string(info.global_shape));
          const std::size_t esize = dtype_size(array->dtype);
          for (const Chunk& chunk : array->chunks) {
            const Region wanted{chunk.offset, chunk.shape};
            std::int64_t covered = 0;
            Region part;
            for (const Region* saved : saved_regions[static_cast<std::size_t>(index)])
              if (detail::intersect(*saved, wanted, part)) covered += detail::volume(part.shape);
            if (covered != detail::volume(wanted.shape))
              throw UsageError(where + ": region " + detail::to_string(wanted) +
                               " was not entirely written by the save (the checkpoint holds part of it)");
            if (detail::is_row_major_contiguous(chunk)) {
              requests.push_back(ReadRequest{index, wanted, array->dtype, chunk.data});
            } else {
              PendingCopy& copy = copies.emplace_back();
              copy.chunk = &chunk;
              copy.region = wanted;
              copy.element_size = esize;
              copy.buffer.resize(static_cast<std::size_t>(detail::volume(wanted.shape)) * esize);
              requests.push_back(ReadRequest{index, wanted, array->dtype, copy.buffer.data()});
            }
          }
        } else if (auto* bytes = std::get_if<BytesEntry>(&entry.value)) {
          if (info.kind != EntryKind::Bytes)
            throw UsageError(where + ": the state asks for a blob, the checkpoint holds " + kind_name(info.kind));
          if (bytes->all_ranks != nullptr) {
            if (info.distribution != Distribution::RankLocal)
              throw UsageError(where + ": only rank-local blobs can be loaded from all ranks");
            PendingSplit& split = splits.emplace_back();
            split.bytes = *bytes;
            split.info = &info;
            split.buffer.resize(static_cast<std::size_t>(info.global_shape[0]));
            if (info.global_shape[0] > 0)
              requests.push_back(
                  ReadRequest{index, Region{{0}, {info.global_shape[0]}}, DType::UInt8, split.buffer.data()});
            continue;
          }
          Region region{{0}, {info.global_shape.at(0)}};
          if (info.distribution == Distribution::RankLocal) {
            const auto s = static_cast<std::size_t>(source_rank());
            if (info.rank_offsets.size() != static_cast<std::size_t>(md.world_size) + 1)
              throw CorruptCheckpointError(where + ": the checkpoint's blob offsets are damaged");
            region = Region{{info.rank_offsets[s]}, {info.rank_offsets[s + 1] - info.rank_offsets[s]}};
          }
          const auto size = static_cast<std::size_t>(region.shape[0]);
          void* destination = nullptr;
          if (bytes->vector != nullptr) {
            bytes->vector->resize(size);
            destination = bytes->vector->data();
          } else {
            if (bytes->size != size)
              throw UsageError(where + ": the saved blob has " + std::to_string(size) + " bytes, the buffer " +
                               std::to_string(bytes->size));
            destination = bytes->data;
          }
          if (size > 0) requests.push_back(ReadRequest{index, region, DType::UInt8, destination});
        } else {
          const auto& scalar = std::get<ScalarEntry>(entry.value);
          if (info.kind != EntryKind::Scalar)
            throw UsageError(where + ": the state asks for a scalar, the checkpoint holds " + kind_name(info.kind));
          const ScalarType wanted = std::holds_alternative<std::int64_t*>(scalar.target) ? ScalarType::Int64
                                    : std::holds_alternative<double*>(scalar.target)     ? ScalarType::Float64
                                                                                         : ScalarType::String;
          if (wanted != info.scalar_type) throw UsageError(where + ": the scalar's type differs from the saved one");
          if (info.distribution == Distribution::RankLocal) {
            void* destination = std::holds_alternative<std::int64_t*>(scalar.target)
                                    ? static_cast<void*>(std::get<std::int64_t*>(scalar.target))
                                    : static_cast<void*>(std::get<double*>(scalar.target));
            const std::int64_t s = source_rank();
            requests.push_back(ReadRequest{index, Region{{s}, {1}}, info.dtype, destination});
          } else if (const auto* i = std::get_if<std::int64_t>(&info.value)) {
            *std::get<std::int64_t*>(scalar.target) = *i;
          } else if (const auto* d = std::get_if<double>(&info.value)) {
            *std::get<double*>(scalar.target) = *d;
          } else if (const auto* s = std::get_if<std::string>(&info.value)) {
            *std::get<std::string*>(scalar.target) = *s;
          } else {
            throw CorruptCheckpointError(where + ": the checkpoint records no value for the scalar");
          }
        }
      }
    });
    detail::agree_on(g, what + " (read)", [&] { reader->read(requests); });
    for (PendingCopy& copy : copies) {
      void* target =
          detail::chunk_element(*copy.chunk, detail::chunk_strides(*copy.chunk), copy.region.offset, copy.element_size);
      detail::strided_copy(copy.buffer.data(), detail::row_major_strides(copy.region.shape), target,
                           detail::chunk_strides(*copy.chunk), copy.region.shape, copy.element_size);
    }
    for (PendingSplit& split : splits) {
      const auto& offsets = split.info->rank_offsets;
      split.bytes.all_ranks->assign(static_cast<std::size_t>(md.world_size), {});
      for (std::size_t r = 0; r + 1 < offsets.size(); ++r)
        (*split.bytes.all_ranks)[r].assign(split.buffer.begin() + offsets[r], split.buffer.begin() + offsets[r + 1]);
    }
  } catch (...) {
    reader->close();
    throw;
  }
  reader->close();
  for (Stateful* object : state.statefuls()) object->restored();
}

Checkpointer::Checkpointer(MPI_Comm comm) : m_impl(std::make_unique<Impl>()) {
  m_impl->group = std::make_shared<MpiProcessGroup>(comm);
}

Checkpointer::Checkpointer(std::shared_ptr<ProcessGroup> group) : m_impl(std::make_unique<Impl>()) {
  if (!group) throw UsageError("Checkpointer: the process group is null");
  m_impl->group = std::move(group);
}

Checkpointer::~Checkpointer() = default;
Checkpointer::Checkpointer(Checkpointer&&) noexcept = default;
Checkpointer& Checkpointer::operator=(Checkpointer&&) noexcept = default;

void Checkpointer::set_planner(std::shared_ptr<Planner> planner) {
  if (!planner) throw UsageError("set_planner: the planner is null");
  m_impl->planner = std::move(planner);
  m_impl->plan_cached = false;
}

void Checkpointer::save(const State& state, const std::string& id, const SaveOptions& options) {
  m_impl->save(state, id, options);
}

void Checkpointer::load(State& state, const std::string& id, const LoadOptions& options) {
  m_impl->load(state, id, options);
}

ProcessGroup& Checkpointer::process_group() noexcept {
  return *m_impl->group;
}

const char* version() noexcept {
  return CAIRN_VERSION_STRING;
}

}  // namespace cairn
