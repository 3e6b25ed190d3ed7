#include <cairn/checkpointer.hpp>
#include <cairn/error.hpp>

#include "comm/agree.hpp"
#include "comm/broadcast.hpp"
#include "core/byte_codec.hpp"
#include "core/checksum.hpp"
#include "core/fault.hpp"
#include "core/log.hpp"
#include "core/metadata_codec.hpp"
#include "core/region.hpp"
#include "core/strided_copy.hpp"
#include "core/validate.hpp"
#include "device/device.hpp"
#include "exec/checkpointer_access.hpp"
#include "exec/chunk_check.hpp"
#include "exec/executor.hpp"
#include "exec/save_task.hpp"
#include "plan/plan_codec.hpp"
#include "stage/staging.hpp"
#include "storage/common/incremental.hpp"
#include "storage/common/publish.hpp"
#include "storage/hdf5/hdf5_rank_files.hpp"
#include "storage/layout/reference_reader.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <typeinfo>
#include <unordered_map>

namespace cairn {

namespace {

// A saved item's checksums, as each rank sends them to rank 0 for the metadata.
struct ItemChecksums {
  std::uint64_t checksum = 0;
  std::int64_t block_rows = 0;
  std::vector<std::uint64_t> blocks;
};

ItemChecksums checksums_of(const detail::ChunkHasher& hasher, std::int64_t block_rows) {
  return ItemChecksums{hasher.digest(), block_rows,
                       block_rows > 0 ? hasher.block_checksums() : std::vector<std::uint64_t>{}};
}

std::vector<std::byte> encode_checksums(const std::vector<ItemChecksums>& items) {
  detail::ByteWriter out;
  out.u64(items.size());
  for (const ItemChecksums& item : items) {
    out.u64(item.checksum);
    out.u8(item.block_rows > 0 ? 1 : 0);
    if (item.block_rows <= 0) continue;
    out.i64(item.block_rows);
    out.u64(item.blocks.size());
    for (std::uint64_t b : item.blocks) out.u64(b);
  }
  return std::move(out.bytes());
}

std::vector<ItemChecksums> decode_checksums(const std::vector<std::byte>& bytes, int rank) {
  detail::ByteReader in(bytes.data(), bytes.size(), "the checksums of rank " + std::to_string(rank));
  std::vector<ItemChecksums> items(in.count(9));
  for (ItemChecksums& item : items) {
    item.checksum = in.u64();
    if (in.u8() == 0) continue;
    item.block_rows = in.i64();
    item.blocks.resize(in.count(sizeof(std::uint64_t)));
    for (std::uint64_t& b : item.blocks) b = in.u64();
  }
  return items;
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

// Collective. When every rank asks for the same replicated regions (the usual case), rank 0 alone
// reads them and broadcasts them after the read: one read instead of one per rank. Removes them
// from `requests` on the other ranks and returns them, in an order every rank shares; returns
// nothing (every rank reads its own) when the ranks' requests differ.
std::vector<ReadRequest> read_once_and_broadcast(ProcessGroup& g, std::vector<ReadRequest>& requests,
                                                 const std::vector<std::size_t>& replicated) {
  if (g.size() == 1) return {};
  std::vector<ReadRequest> chosen;
  for (std::size_t i : replicated) chosen.push_back(requests[i]);
  std::sort(chosen.begin(), chosen.end(), [](const ReadRequest& a, const ReadRequest& b) {
    return std::tie(a.entry, a.region.offset, a.region.shape) < std::tie(b.entry, b.region.offset, b.region.shape);
  });
  // FNV-1a over what each rank asks for, so that ranks agree on more than a count.
  std::uint64_t hash = 1469598103934665603ull;
  auto mix = [&](std::int64_t v) {
    for (int k = 0; k < 8; ++k) hash = (hash ^ ((static_cast<std::uint64_t>(v) >> (8 * k)) & 0xffu)) * 1099511628211ull;
  };
  for (const ReadRequest& r : chosen) {
    mix(r.entry);
    mix(static_cast<std::int64_t>(r.dtype));
    for (std::int64_t v : r.region.offset) mix(v);
    for (std::int64_t v : r.region.shape) mix(v);
  }
  const auto signed_hash = static_cast<std::int64_t>(hash >> 1);
  std::int64_t low[2] = {static_cast<std::int64_t>(chosen.size()), signed_hash};
  std::int64_t high[2] = {low[0], low[1]};
  g.allreduce(low, 2, ReduceOp::Min);
  g.allreduce(high, 2, ReduceOp::Max);
  if (low[0] != high[0] || low[1] != high[1] || chosen.empty()) return {};
  if (g.rank() != 0) {
    std::vector<bool> drop(requests.size(), false);
    for (std::size_t i : replicated) drop[i] = true;
    std::size_t kept = 0;
    for (std::size_t i = 0; i < requests.size(); ++i)
      if (!drop[i]) requests[kept++] = requests[i];
    requests.resize(kept);
  }
  return chosen;
}

// A region read into a temporary buffer, then copied into caller memory: a host chunk that is not
// row-major and contiguous, or any chunk in device memory (through page-locked memory).
struct PendingCopy {
  const Chunk* chunk = nullptr;
  Region region;
  std::size_t element_size = 0;
  detail::HostBuffer buffer;
  detail::MemoryLocation where;
  bool done = false;  // filled already (a replicated device chunk broadcast device to device)
};

// Collective, after rank 0 has read `broadcasts` (the same list on every rank): sends them to the
// other ranks. A replicated chunk held in device memory, contiguous and row-major, on every rank
// goes device to device (ProcessGroup::broadcast_device: NCCL where it can); the rest through
// host memory.
void broadcast_replicated(ProcessGroup& g, const std::vector<ReadRequest>& broadcasts, std::vector<PendingCopy>& copies,
                          const std::string& what) {
  if (broadcasts.empty()) return;
  std::unordered_map<const void*, PendingCopy*> copy_of;
  for (PendingCopy& copy : copies) copy_of.emplace(copy.buffer.data(), &copy);
  std::vector<PendingCopy*> device_target(broadcasts.size(), nullptr);
  std::vector<std::int64_t> on_device(broadcasts.size(), 0);
  for (std::size_t k = 0; k < broadcasts.size(); ++k) {
    auto found = copy_of.find(broadcasts[k].destination);
    if (found == copy_of.end()) continue;
    PendingCopy& copy = *found->second;
    if (copy.where.device && detail::is_row_major_contiguous(*copy.chunk)) {
      device_target[k] = &copy;
      on_device[k] = 1;
    }
  }
  g.allreduce(on_device.data(), on_device.size(), ReduceOp::Min);
  detail::DeviceCopier copier;
  detail::agree_on(g, what + " (replicated chunks to the device)", [&] {
    if (g.rank() != 0) return;
    for (std::size_t k = 0; k < broadcasts.size(); ++k) {
      if (on_device[k] == 0) continue;
      const PendingCopy& copy = *device_target[k];
      copier.to_device(copy.where.device_id, copy.chunk->data, copy.buffer.data(),
                       static_cast<std::size_t>(detail::volume(copy.region.shape)) * copy.element_size, what);
    }
    copier.synchronize(what);
  });
  for (std::size_t k = 0; k < broadcasts.size(); ++k) {
    const ReadRequest& r = broadcasts[k];
    const auto bytes = static_cast<std::size_t>(detail::volume(r.region.shape)) * dtype_size(r.dtype);
    if (on_device[k] == 1) {
      PendingCopy& copy = *device_target[k];
      g.broadcast_device(copy.chunk->data, bytes, 0, copy.where.device_id);
      copy.done = true;
      continue;
    }
    constexpr std::size_t piece = std::size_t{1} << 30;  // below MPI's int count limit
    for (std::size_t at = 0; at < bytes; at += piece)
      g.broadcast(static_cast<std::byte*>(r.destination) + at, std::min(piece, bytes - at), 0);
  }
}

// Collective: copies what was read into temporary buffers into the chunks it belongs to; device
// chunks on the copier's streams, agreed on, since a CUDA failure may strike one rank only.
void copy_into_chunks(ProcessGroup& g, std::vector<PendingCopy>& copies, const std::string& what) {
  detail::HostBuffer scratch;   // a device chunk's memory span, for layouts other than row-major
  detail::DeviceCopier copier;  // declared after the scratch: waits for its copies before it goes
  detail::agree_on(g, what + " (copy into the chunks)", [&] {
    for (PendingCopy& copy : copies) {
      if (copy.done) continue;
      const Chunk& chunk = *copy.chunk;
      const Extents strides = detail::chunk_strides(chunk);
      const auto bytes = static_cast<std::size_t>(detail::volume(copy.region.shape)) * copy.element_size;
      if (!copy.where.device) {
        void* target = detail::chunk_element(chunk, strides, copy.region.offset, copy.element_size);
        detail::strided_copy(copy.buffer.data(), detail::row_major_strides(copy.region.shape), target, strides,
                             copy.region.shape, copy.element_size);
        continue;
      }
      if (bytes == 0) continue;
      detail::fault_point("device-copy", g.rank());
      if (detail::is_row_major_contiguous(chunk)) {
        copier.to_device(copy.where.device_id, chunk.data, copy.buffer.data(), bytes, what);
        continue;
      }
      // Another layout: arrange the chunk's memory span on the host, then copy it over whole. A
      // span with gaps (strides) is fetched first, so that the gaps keep their bytes.
      const std::size_t span = static_cast<std::size_t>(detail::chunk_span_elements(chunk)) * copy.element_size;
      std::byte* host = scratch.reserve(span, true);
      if (span != bytes) {
        copier.to_host(copy.where.device_id, host, chunk.data, span, what);
        copier.synchronize(what);
      }
      detail::strided_copy(copy.buffer.data(), detail::row_major_strides(copy.region.shape), host, strides,
                           copy.region.shape, copy.element_size);
      copier.to_device(copy.where.device_id, chunk.data, host, span, what);
      copier.synchronize(what);  // the scratch is reused by the next chunk
    }
    copier.synchronize(what);
  });
}

// A blob read whole, then split among saved ranks.
struct PendingSplit {
  BytesEntry bytes;
  const EntryInfo* info = nullptr;
  std::vector<std::byte> buffer;
};

// Smallest buffer for checked reads: below it, chunks would be read in absurdly small slices.
constexpr std::size_t minimum_read_buffer = std::size_t{64} << 10;

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

const char* staging_name(StagingMode mode) {
  switch (mode) {
    case StagingMode::Copy: return "copy";
    case StagingMode::ZeroCopy: return "zero-copy";
    case StagingMode::Bounded: return "bounded";
  }
  return "?";
}

// `failure` with "in step <step>: " before its message, keeping its error code: a save without
// collectives agrees once at the end, so the message must say where the rank failed.
std::exception_ptr in_step(const std::string& step, std::exception_ptr failure) {
  try {
    std::rethrow_exception(failure);
  } catch (const Error& e) {
    try {
      throw_error(e.code(), "in step " + step + ": " + e.what());
    } catch (...) {
      return std::current_exception();
    }
  } catch (const std::exception& e) {
    return std::make_exception_ptr(InternalError("in step " + step + ": " + e.what()));
  } catch (...) {
    return std::make_exception_ptr(InternalError("in step " + step + ": unknown exception"));
  }
}

// The reader of a load or verify: the caller's, made to follow the references of incremental
// checkpoints when it does not already, or make_reader().
std::shared_ptr<StorageReader> reader_for(const std::shared_ptr<StorageReader>& given) {
  if (!given) return make_reader();
  if (detail::follows_references(*given)) return given;
  return detail::follow_references(given);
}

// True when `a` and `b` name the same directory (lexically, or the same inode when both exist).
bool same_directory(const std::string& a, const std::string& b) {
  if (a == b) return true;
  struct stat sa {};
  struct stat sb {};
  return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

// The directory of the base of an incremental save, checked; "" for a full save.
std::string incremental_base(const SaveOptions& options, const detail::CheckpointPaths& paths) {
  if (options.incremental_from.empty()) return {};
  if (options.writer && dynamic_cast<const detail::IncrementalWriter*>(options.writer.get()) == nullptr)
    throw UsageError(
        "incremental saves (SaveOptions::incremental_from) are written by the HDF5 shared-file and "
        "posix backends only; this writer (the aggregated HDF5 or rank-files layout, or one of the "
        "caller's) cannot refer to an earlier checkpoint");
  const detail::CheckpointPaths base = detail::checkpoint_paths(options.incremental_from);
  if (same_directory(base.final_dir, paths.final_dir))
    throw UsageError("checkpoint '" + paths.final_dir + "' cannot be saved incrementally from itself");
  if (!same_directory(base.parent_dir, paths.parent_dir))
    throw UsageError("the base '" + options.incremental_from + "' of incremental save '" + paths.final_dir +
                     "' must lie in the same directory (a sibling checkpoint), not in '" + base.parent_dir + "'");
  if (options.staging == StagingMode::Bounded) {
    static std::once_flag told;
    std::call_once(told, [] {
      detail::log(detail::LogLevel::Warn,
                  "incremental saves with bounded staging write every chunk: a chunk's checksum is only known once "
                  "its last piece is staged");
    });
    return {};
  }
  return base.final_dir;
}

}  // namespace

// One save from the moment its bytes are staged: the steps the worker runs (or, under a low MPI
// thread level, the caller inside wait()). Owned by the checkpointer on the caller's thread, so
// that staging memory is never released by the worker.
struct SaveOperation {
  std::shared_ptr<ProcessGroup> group_owner;  // the caller's SaveOptions may go before the save ends
  ProcessGroup* group = nullptr;
  int rank = 0;
  bool collective = true;
  std::string id;
  std::string what;
  detail::CheckpointPaths paths;
  bool overwrite = false;
  std::shared_ptr<StorageWriter> writer;
  bool own_writer = false;  // Cairn's backend: its file names are known
  const SavePlan* plan = nullptr;
  const std::vector<std::vector<WriteItem>>* global_items = nullptr;  // rank 0, collective saves
  std::vector<ScalarValue> scalar_values;                             // replicated scalars, by entry
  std::vector<std::shared_ptr<HostMirror>> mirrors;                   // kept alive while in flight
  detail::SaveHooks hooks;

  // Data to write: one list of buffers per piece (a single piece unless staging is bounded).
  std::vector<std::vector<WriteBuffer>> pieces;
  std::vector<std::exception_ptr> piece_failures;  // staging failures, agreed when written
  std::vector<detail::Piece> bounded_pieces;
  std::vector<detail::ChunkHasher> sums;  // one per plan item, fed in row-major order
  std::vector<std::int64_t> block_rows;   // by plan item: rows per checksum block (0: none)
  bool sums_done = false;                 // computed before the write (incremental saves)

  // Incremental saves: the base's directory ("" for a full save) and, by plan item, the
  // checkpoint that holds the bytes of an item left out ("" when written).
  std::string base_dir;
  std::vector<std::string> item_source;
  bool leaves_out = false;  // on some rank
  std::atomic<int> pieces_written{0};
  std::atomic<bool> failed{false};

  std::exception_ptr failure;  // agreed failure (collective), or this rank's (no collectives)
  std::shared_ptr<detail::SaveTask> task;
  SaveTimings timings;
  StagingMode staging = StagingMode::Copy;

  // Runs one step. Collective saves agree on every step's outcome; a save without collectives
  // keeps its first failure for the agreement at the end.
  template <class Body>
  void step(const std::string& name, Body&& body) {
    if (failure) return;
    if (!collective) {
      try {
        body();
      } catch (...) {
        failure = in_step(name, std::current_exception());
        failed.store(true);
      }
      return;
    }
    try {
      detail::agree_on(*group, what + " (" + name + ")", body);
    } catch (...) {
      failure = std::current_exception();
      failed.store(true);
      clean_up();
    }
  }

  // After an agreed failure: every rank closes its files before rank 0 removes them.
  void clean_up() noexcept {
    if (writer) writer->abort();
    try {
      group->barrier();
    } catch (...) {
      // The transport itself failed; the error being reported already says so.
    }
    if (rank == 0) detail::discard_checkpoint(paths);
  }

  // A hook of the manager's, on rank 0: logged when it fails, never failing the save.
  void run_hook(const std::function<void()>& hook, const char* name) noexcept {
    if (rank != 0 || !hook) return;
    try {
      hook();
    } catch (const std::exception& e) {
      detail::log(detail::LogLevel::Warn, what + ": " + name + ": " + e.what());
    } catch (...) {
      detail::log(detail::LogLevel::Warn, what + ": " + name + " failed");
    }
  }

  void begin(std::exception_ptr stage_failure) {
    const auto start = std::chrono::steady_clock::now();
    if (!stage_failure) run_hook(hooks.before_prepare, "removing leftovers of unpublished saves");
    step("prepare directory", [&] {
      if (stage_failure) std::rethrow_exception(stage_failure);
      detail::fault_point("prepare", rank);
      detail::fault_point("open", rank);  // a rank that cannot take part in the open says so first
      if (!collective)
        detail::join_checkpoint(paths, overwrite);
      else if (rank == 0)
        detail::begin_checkpoint(paths, overwrite);
    });
    if (!base_dir.empty()) compare_with_base();
    step("open", [&] {
      if (auto* incremental = dynamic_cast<detail::IncrementalWriter*>(writer.get()))
        incremental->set_leaves_out(leaves_out);
      if (auto* early = dynamic_cast<detail::EarlyWriteback*>(writer.get()))
        early->set_early_writeback(staging != StagingMode::Bounded);  // the caller waits on bounded writes
      writer->set_local_items(item_source.empty() ? plan->items : written_items());
      writer->open(paths.partial_dir, plan->entries, *group);
    });
    timings.write_seconds += seconds_since(start);
  }

  void write(std::size_t piece) {
    const auto start = std::chrono::steady_clock::now();
    step("write", [&] {
      std::vector<WriteBuffer>& buffers = pieces[piece];
      if (piece_failures[piece]) {
        // Take part in the collective writes with nothing, then report the staging failure.
        if (collective) writer->write({});
        std::rethrow_exception(piece_failures[piece]);
      }
      std::vector<WriteBuffer> written;  // an incremental save: only what no earlier checkpoint holds
      if (!item_source.empty())
        for (std::size_t k = 0; k < buffers.size(); ++k)
          if (item_source[k].empty()) written.push_back(buffers[k]);
      const std::vector<WriteBuffer>& to_write = item_source.empty() ? buffers : written;
      writer->write(to_write);
      for (const WriteBuffer& b : to_write) timings.bytes_written += detail::item_bytes(*plan, *b.item);
      // Checksums after the write rather than while staging (off the caller's stall) or before
      // the write: the writers have started the disk on these bytes, and hashing them overlaps
      // it. Pieces come in order, and a piece's sub-items in row-major order within their item;
      // the buffers stay untouched until this step ends.
      for (std::size_t k = 0; k < buffers.size() && !sums_done; ++k) {
        const std::size_t item = bounded_pieces.empty() ? k : bounded_pieces[piece].plan_item[k];
        sums[item].update(buffers[k].data, detail::item_bytes(*plan, *buffers[k].item));
      }
      detail::fault_point("write", rank);
    });
    timings.write_seconds += seconds_since(start);
    pieces_written.fetch_add(1);
  }

  // Incremental saves, before the open: checksums every item from its staged bytes, and marks
  // those whose checksum matches the base's record of the same region (rank 0 reads the base's
  // metadata and sends each rank the records of its items).
  void compare_with_base() {
    step("checksums", [&] {
      const std::vector<WriteBuffer>& buffers = pieces.at(0);
      if (!piece_failures.at(0) && buffers.size() != plan->items.size())
        throw InternalError("staged " + std::to_string(buffers.size()) + " buffers for " +
                            std::to_string(plan->items.size()) + " items");
      for (std::size_t k = 0; k < buffers.size(); ++k)
        sums[k].update(buffers[k].data, detail::item_bytes(*plan, *buffers[k].item));
      sums_done = true;
    });
    if (failure) return;
    std::vector<std::vector<std::byte>> expected;
    if (rank == 0) expected = expected_from_base();
    const std::vector<std::byte> mine = group->scatter(expected, 0);
    step("compare with the base", [&] {
      if (mine.empty()) return;  // no usable base: a full save
      detail::ByteReader in(mine.data(), mine.size(), "the base's chunk records");
      if (in.u64() != plan->items.size()) return;
      std::vector<std::string> sources(plan->items.size());
      std::size_t left_out = 0;
      for (std::size_t k = 0; k < sources.size(); ++k) {
        if (in.u8() == 0) continue;
        const std::uint64_t sum = in.u64();
        std::string source = in.str();
        if (sum == sums[k].digest() && detail::item_bytes(*plan, plan->items[k]) > 0) {
          sources[k] = std::move(source);
          ++left_out;
        }
      }
      if (left_out > 0) item_source = std::move(sources);
    });
    if (failure) return;
    std::int64_t any = item_source.empty() ? 0 : 1;
    group->allreduce(&any, 1, ReduceOp::Max);
    leaves_out = any != 0;
  }

  // Rank 0: for every rank, for each of its items, the checksum and holder of the base's chunk
  // with the same entry, dtype, global shape and region. Any trouble with the base (missing,
  // damaged, another layout or rank count) is logged, and every chunk is written.
  std::vector<std::vector<std::byte>> expected_from_base() const noexcept {
    const auto ranks = static_cast<std::size_t>(group->size());
    std::vector<std::vector<std::byte>> out(ranks);
    try {
      if (global_items == nullptr || global_items->size() != ranks) throw InternalError("no global plan");
      struct stat st {};
      if (::stat((base_dir + "/" + detail::marker_file_name).c_str(), &st) != 0)
        throw StorageError("it is not a published checkpoint: " + detail::errno_text(errno));
      const auto* capable = dynamic_cast<const detail::IncrementalWriter*>(writer.get());
      if (capable == nullptr || !capable->same_layout(base_dir))
        throw UsageError("it was written in another layout than this save's");
      Metadata base;
      {
        SerialProcessGroup alone;
        std::unique_ptr<StorageReader> reader = detail::make_layout_reader();
        try {
          reader->open(base_dir, alone);
          base = reader->metadata();
        } catch (...) {
          reader->close();
          throw;
        }
        reader->close();
      }
      if (base.world_size != group->size())
        throw UsageError("it was saved on " + std::to_string(base.world_size) + " ranks, not " +
                         std::to_string(group->size()));
      // This save's entries that the base has alike: arrays of at least one dimension.
      std::unordered_map<std::string_view, std::size_t> base_index;
      for (std::size_t e = 0; e < base.entries.size(); ++e) base_index.emplace(base.entries[e].name, e);
      std::vector<std::int64_t> base_entry_of(plan->entries.size(), -1);
      std::vector<bool> used(base.entries.size(), false);
      for (std::size_t e = 0; e < plan->entries.size(); ++e) {
        const EntryInfo& info = plan->entries[e];
        if (info.kind != EntryKind::Array || info.global_shape.empty()) continue;
        auto found = base_index.find(info.name);
        if (found == base_index.end()) continue;
        const EntryInfo& held = base.entries[found->second];
        if (held.kind != info.kind || held.dtype != info.dtype || held.global_shape != info.global_shape) continue;
        base_entry_of[e] = static_cast<std::int64_t>(found->second);
        used[found->second] = true;
      }
      std::vector<std::map<std::pair<Extents, Extents>, const ChunkRecord*>> by_region(base.entries.size());
      for (const ChunkRecord& c : base.chunks)
        if (used[static_cast<std::size_t>(c.entry)])
          by_region[static_cast<std::size_t>(c.entry)].emplace(std::make_pair(c.region.offset, c.region.shape), &c);
      // The holder of a chunk: the base, or the checkpoint the base refers to, if it is there.
      const std::string base_source = "../" + base_dir.substr(base_dir.find_last_of('/') + 1);
      std::map<std::string, bool> present;
      auto holder = [&](const ChunkRecord& c) -> std::string {
        const std::string source = c.source.empty() ? base_source : c.source;
        auto [it, fresh] = present.try_emplace(source, true);
        if (fresh && !c.source.empty()) {
          const std::string dir = detail::referenced_directory(base_dir, source);
          it->second = ::stat((dir + "/" + detail::marker_file_name).c_str(), &st) == 0;
          if (!it->second)
            detail::log(detail::LogLevel::Warn, what + ": checkpoint '" + dir + "', which base '" + base_dir +
                                                    "' refers to, is missing: its chunks are written again");
        }
        return it->second ? source : std::string();
      };
      for (std::size_t r = 0; r < ranks; ++r) {
        detail::ByteWriter w;
        const std::vector<WriteItem>& items = (*global_items)[r];
        w.u64(items.size());
        for (const WriteItem& item : items) {
          const std::int64_t b = base_entry_of[static_cast<std::size_t>(item.entry)];
          const ChunkRecord* match = nullptr;
          if (b >= 0) {
            const auto& regions = by_region[static_cast<std::size_t>(b)];
            auto found = regions.find(std::make_pair(item.region.offset, item.region.shape));
            if (found != regions.end()) match = found->second;
          }
          const std::string source = match ? holder(*match) : std::string();
          w.u8(source.empty() ? 0 : 1);
          if (source.empty()) continue;
          w.u64(match->checksum);
          w.str(source);
        }
        out[r] = std::move(w.bytes());
      }
    } catch (const std::exception& e) {
      detail::log(detail::LogLevel::Warn, what + ": the base '" + base_dir + "' cannot be used (" + e.what() +
                                              "): every chunk is written, as in a full save");
      out.assign(ranks, {});
    } catch (...) {
      out.assign(ranks, {});
    }
    return out;
  }

  // The plan's items that this incremental save writes.
  std::vector<WriteItem> written_items() const {
    std::vector<WriteItem> items;
    for (std::size_t k = 0; k < plan->items.size(); ++k)
      if (item_source[k].empty()) items.push_back(plan->items[k]);
    return items;
  }

  // This rank's references for the commit: (item, holder) for each item left out.
  std::vector<std::byte> encode_sources() const {
    detail::ByteWriter w;
    std::uint64_t n = 0;
    for (const std::string& source : item_source) n += source.empty() ? 0 : 1;
    w.u64(n);
    for (std::size_t k = 0; k < item_source.size(); ++k) {
      if (item_source[k].empty()) continue;
      w.u64(k);
      w.str(item_source[k]);
    }
    return std::move(w.bytes());
  }

  Metadata make_metadata(const std::vector<std::vector<ItemChecksums>>& checksums,
                         const std::vector<std::vector<WriteItem>>& items_per_rank, int first_rank,
                         const std::vector<std::vector<std::byte>>& sources_per_rank = {}) const {
    Metadata md;
    md.library_version = version();
    md.world_size = group->size();
    md.created_unix_time =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    md.entries = plan->entries;
    for (std::size_t e = 0; e < md.entries.size(); ++e)
      if (md.entries[e].kind == EntryKind::Scalar && md.entries[e].distribution == Distribution::Replicated)
        md.entries[e].value = scalar_values[e];
    for (std::size_t r = 0; r < items_per_rank.size(); ++r) {
      const auto& items = items_per_rank[r];
      if (checksums[r].size() != items.size())
        throw InternalError("rank " + std::to_string(r) + " reported " + std::to_string(checksums[r].size()) +
                            " checksums for " + std::to_string(items.size()) + " items");
      const std::size_t first_record = md.chunks.size();
      for (std::size_t i = 0; i < items.size(); ++i)
        md.chunks.push_back(ChunkRecord{items[i].entry,
                                        static_cast<std::int32_t>(first_rank + static_cast<int>(r)),
                                        items[i].region,
                                        checksums[r][i].checksum,
                                        {},
                                        checksums[r][i].block_rows,
                                        checksums[r][i].blocks});
      if (r >= sources_per_rank.size() || sources_per_rank[r].empty()) continue;
      detail::ByteReader in(sources_per_rank[r].data(), sources_per_rank[r].size(),
                            "the references of rank " + std::to_string(r));
      for (std::uint64_t n = in.u64(); n > 0; --n) {
        const std::uint64_t k = in.u64();
        if (k >= items.size()) in.fail("item " + std::to_string(k) + " out of range");
        md.chunks[first_record + k].source = in.str();
      }
    }
    return md;
  }

  void commit() {
    const auto start = std::chrono::steady_clock::now();
    std::vector<ItemChecksums> mine(sums.size());
    for (std::size_t i = 0; i < sums.size(); ++i) mine[i] = checksums_of(sums[i], block_rows[i]);
    if (!collective) {
      step("metadata", [&] {
        detail::fault_point("metadata", rank);
        writer->finish(make_metadata({mine}, {plan->items}, rank));
      });
      // The one agreement of a save without collectives.
      std::exception_ptr outcome = failure;
      failure = nullptr;
      collective = true;
      // One name on every rank; the failing rank's message says in which step it failed.
      step("commit", [&] {
        if (outcome) std::rethrow_exception(outcome);
      });
      step("publish", [&] {
        if (rank != 0) return;
        if (own_writer) {  // drop files left by an earlier save into the same id that never published
          std::vector<std::string> keep;
          for (int r = 0; r < group->size(); ++r) keep.push_back(detail::h5::rank_file_name(r));
          detail::keep_only(paths.partial_dir, keep);
        }
        detail::fault_point("publish", rank);
        detail::publish_checkpoint(paths);
        detail::fault_point("published", rank);
      });
      if (!failure) run_hook(hooks.after_publish, "retention");
      timings.commit_seconds = seconds_since(start);
      return;
    }
    if (failure) return;
    std::vector<std::vector<std::byte>> gathered = group->gather(encode_checksums(mine), 0);
    std::vector<std::vector<std::byte>> references;
    if (!base_dir.empty()) references = group->gather(encode_sources(), 0);
    std::vector<std::byte> blob;
    step("metadata", [&] {
      detail::fault_point("metadata", rank);
      if (rank != 0) return;
      std::vector<std::vector<ItemChecksums>> all;
      for (std::size_t r = 0; r < gathered.size(); ++r)
        all.push_back(decode_checksums(gathered[r], static_cast<int>(r)));
      blob = detail::encode_metadata(make_metadata(all, *global_items, 0, references));
    });
    if (failure) return;
    detail::broadcast_bytes(*group, blob, 0);
    step("commit", [&] {
      // The backend's collectives stay matched: a rank fails here after taking part in them.
      writer->finish(detail::decode_metadata(blob.data(), blob.size(), "the metadata being saved"));
      detail::fault_point("commit", rank);
    });
    step("publish", [&] {
      // Only rank 0 publishes; once it has renamed, the checkpoint exists, so nothing may fail after.
      if (rank == 0) {
        detail::fault_point("publish", rank);
        detail::publish_checkpoint(paths);
        detail::fault_point("published", rank);
      }
    });
    if (!failure) run_hook(hooks.after_publish, "retention");
    timings.commit_seconds = seconds_since(start);
  }

  // The last step: reports the outcome to the future. Nothing may touch this object afterwards.
  void complete() noexcept {
    if (detail::log_enabled(detail::LogLevel::Info) && rank == 0) {
      char line[512];
      std::snprintf(line, sizeof line,
                    "%s %s (%d ranks, %s staging): plan %.3f s, stage %.3f s, write %.3f s, commit %.3f s, "
                    "stall %.3f s, %.1f MiB from rank 0",
                    what.c_str(), failure ? "failed" : "done", group->size(), staging_name(staging),
                    timings.plan_seconds, timings.stage_seconds, timings.write_seconds, timings.commit_seconds,
                    timings.stall_seconds, static_cast<double>(timings.bytes_written) / (1 << 20));
      detail::log(detail::LogLevel::Info, line);
    }
    task->complete(failure, timings);
  }
};

struct Checkpointer::Impl {
  std::shared_ptr<ProcessGroup> group;
  std::shared_ptr<ProcessGroup> serial_group = std::make_shared<SerialProcessGroup>();
  std::shared_ptr<Planner> planner = std::make_shared<DefaultPlanner>();
  detail::Staging staging;
  std::unique_ptr<detail::Executor> executor;

  // The finished plan of the last save, reused while the state keeps its structure.
  bool plan_cached = false;
  std::uint64_t plan_hash = 0;
  // Which group and planner made it: weak, so that a new object at a freed one's address never
  // passes for it.
  std::weak_ptr<ProcessGroup> plan_group;
  std::weak_ptr<Planner> plan_planner;
  SavePlan plan;
  std::vector<std::vector<WriteItem>> global_items;  // rank 0: every rank's items

  std::shared_ptr<SaveOperation> in_flight;
  SaveTimings last_timings;

  explicit Impl(std::shared_ptr<ProcessGroup> g);
  ~Impl();
  void finish_in_flight();
  // `structure`: validate_state's fingerprint of `state`.
  void make_plan(const std::shared_ptr<ProcessGroup>& group_ptr, const std::shared_ptr<Planner>& planner_ptr,
                 const State& state, std::uint64_t structure, const std::string& what);
  void make_local_plan(ProcessGroup& g, Planner& p, const State& state);
  SaveFuture async_save(const State& state, const std::string& id, const SaveOptions& options,
                        detail::SaveHooks hooks = {});
  VerifyReport verify(const std::string& id, const VerifyOptions& options);
  void run_on_worker(const std::function<void()>& job);
  void load(State& state, const std::string& id, const LoadOptions& options);
  void load_on(ProcessGroup& g, State& state, const std::string& id, const LoadOptions& options);
};

namespace {

// Background writes need a worker that may call MPI while the application does.
detail::Executor::Mode executor_mode(const ProcessGroup& group) {
  if (group.mpi_comm() == MPI_COMM_NULL) return detail::Executor::Mode::Background;
  int initialized = 0;
  int finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) return detail::Executor::Mode::Background;
  int provided = MPI_THREAD_SINGLE;
  MPI_Query_thread(&provided);
  if (provided == MPI_THREAD_MULTIPLE) return detail::Executor::Mode::Background;
  static std::once_flag told;
  std::call_once(told, [&] {
    if (group.rank() != 0) return;
    const char* level = provided == MPI_THREAD_SERIALIZED ? "MPI_THREAD_SERIALIZED"
                        : provided == MPI_THREAD_FUNNELED ? "MPI_THREAD_FUNNELED"
                                                          : "MPI_THREAD_SINGLE";
    detail::log(detail::LogLevel::Warn,
                std::string("MPI provides ") + level +
                    ", not MPI_THREAD_MULTIPLE: async_save() stages and returns, and the write runs inside the "
                    "future's wait()/test()/get() or the checkpointer's next call, on the calling thread (no "
                    "overlap with computation). Initialize MPI with MPI_Init_thread(..., MPI_THREAD_MULTIPLE, ...) "
                    "for background writes.");
  });
  return detail::Executor::Mode::Deferred;
}

}  // namespace

Checkpointer::Impl::Impl(std::shared_ptr<ProcessGroup> g)
    : group(std::move(g)), executor(std::make_unique<detail::Executor>(executor_mode(*group))) {}

Checkpointer::Impl::~Impl() {
  try {
    finish_in_flight();
  } catch (...) {
    // A destructor never throws; the save's error stays in its future.
  }
  executor.reset();  // stops the worker before the staging memory goes
}

void Checkpointer::Impl::finish_in_flight() {
  if (!in_flight) return;
  in_flight->task->wait();
  executor->drain();
  last_timings = in_flight->task->timings();
  in_flight.reset();  // staging references and mirrors released on the caller's thread
}

void Checkpointer::Impl::make_plan(const std::shared_ptr<ProcessGroup>& group_ptr,
                                   const std::shared_ptr<Planner>& planner_ptr, const State& state,
                                   std::uint64_t structure, const std::string& what) {
  ProcessGroup& g = *group_ptr;
  Planner& p = *planner_ptr;
  const int rank = g.rank();
  // DefaultPlanner's local plan follows from the state's structure alone, so validation's
  // fingerprint of the structure stands for it and the plan is built only when some rank's
  // structure changed.
  // Another planner's local plan is built every time and hashed.
  const bool by_structure = typeid(p) == typeid(DefaultPlanner);
  const bool same_makers = plan_cached && plan_group.lock() == group_ptr && plan_planner.lock() == planner_ptr;
  std::vector<std::byte> encoded;
  bool have_local = false;
  std::uint64_t hash = 0;
  std::exception_ptr failure;
  try {
    detail::fault_point("plan", rank);
    if (by_structure) {
      hash = structure;
    } else {
      encoded = detail::encode_plan(p.create_local_plan(state, rank, g.size()));
      hash = detail::checksum(encoded.data(), encoded.size());
      have_local = true;
    }
    if (!have_local && !(same_makers && hash == plan_hash)) {  // changed here: a new plan whatever the others say
      encoded = detail::encode_plan(p.create_local_plan(state, rank, g.size()));
      have_local = true;
    }
  } catch (...) {
    failure = std::current_exception();
  }
  const bool unchanged_here = !failure && same_makers && hash == plan_hash;
  // One small collective: did a rank fail, did every rank keep its structure, did any keep it?
  std::int64_t votes[3] = {failure ? rank : g.size(), unchanged_here ? 1 : 0, unchanged_here ? 0 : 1};
  g.allreduce(votes, 3, ReduceOp::Min);
  if (votes[0] < g.size()) detail::agree(g, what + " (plan)", failure);  // throws on every rank
  if (votes[1] == 1) return;
  plan_cached = false;
  if (votes[2] == 0)  // ranks whose structure is unchanged have no local plan yet
    detail::agree_on(g, what + " (plan)", [&] {
      if (!have_local) encoded = detail::encode_plan(p.create_local_plan(state, rank, g.size()));
    });

  std::vector<std::vector<std::byte>> gathered = g.gather(encoded, 0);
  std::vector<std::byte> entries_blob;
  std::vector<std::vector<std::byte>> item_blobs;
  detail::agree_on(g, what + " (global plan)", [&] {
    if (rank != 0) return;
    std::vector<SavePlan> local_plans;
    local_plans.reserve(gathered.size());
    for (auto& bytes : gathered) {
      local_plans.push_back(detail::decode_plan(bytes));
      std::vector<std::byte>().swap(bytes);  // rank 0 holds every plan: not twice
    }
    GlobalPlan global = p.create_global_plan(std::move(local_plans));
    if (global.items_per_rank.size() != static_cast<std::size_t>(g.size()))
      throw InternalError("the planner returned items for " + std::to_string(global.items_per_rank.size()) +
                          " ranks, not " + std::to_string(g.size()));
    entries_blob = detail::encode_entries(global.entries);
    for (const auto& items : global.items_per_rank) item_blobs.push_back(detail::encode_items(items));
    global_items = std::move(global.items_per_rank);
  });
  detail::broadcast_bytes(g, entries_blob, 0);
  std::vector<std::byte> my_items = g.scatter(item_blobs, 0);
  detail::agree_on(g, what + " (finish plan)", [&] {
    SavePlan central{detail::decode_entries(entries_blob), detail::decode_items(my_items)};
    plan = p.finish_plan(std::move(central));
    for (const WriteItem& item : plan.items)
      if (item.entry < 0 || static_cast<std::size_t>(item.entry) >= plan.entries.size())
        throw InternalError("the finished plan names entry " + std::to_string(item.entry));
  });
  plan_hash = hash;
  plan_group = group_ptr;
  plan_planner = planner_ptr;
  plan_cached = true;
}

void Checkpointer::Impl::make_local_plan(ProcessGroup& g, Planner& p, const State& state) {
  // Each rank plans as a world of one; replicated entries are written by rank 0 alone.
  plan_cached = false;
  std::vector<SavePlan> own;
  own.push_back(p.create_local_plan(state, g.rank(), g.size()));
  GlobalPlan global = p.create_global_plan(std::move(own));
  if (global.items_per_rank.size() != 1)
    throw InternalError("the planner returned items for " + std::to_string(global.items_per_rank.size()) +
                        " ranks, not 1");
  SavePlan central{std::move(global.entries), {}};
  for (WriteItem& item : global.items_per_rank[0])
    if (g.rank() == 0 || central.entries[static_cast<std::size_t>(item.entry)].distribution != Distribution::Replicated)
      central.items.push_back(std::move(item));
  plan = p.finish_plan(std::move(central));
  for (const WriteItem& item : plan.items)
    if (item.entry < 0 || static_cast<std::size_t>(item.entry) >= plan.entries.size())
      throw InternalError("the finished plan names entry " + std::to_string(item.entry));
}

SaveFuture Checkpointer::Impl::async_save(const State& state, const std::string& id, const SaveOptions& options,
                                          detail::SaveHooks hooks) {
  const auto call_start = std::chrono::steady_clock::now();
  finish_in_flight();

  auto op = std::make_shared<SaveOperation>();
  op->hooks = std::move(hooks);
  op->task = std::make_shared<detail::SaveTask>(executor.get());
  SaveFuture future(op->task);
  const std::shared_ptr<ProcessGroup>& group_ptr = options.no_dist         ? serial_group
                                                   : options.process_group ? options.process_group
                                                                           : group;
  const std::shared_ptr<Planner>& planner_ptr = options.planner ? options.planner : planner;
  ProcessGroup& g = *group_ptr;
  Planner& p = *planner_ptr;
  op->group_owner = group_ptr;
  op->group = &g;
  op->rank = g.rank();
  op->collective = options.use_collectives || options.no_dist;
  op->id = id;
  op->what = "save of checkpoint '" + id + "'";
  op->overwrite = options.overwrite;
  op->staging = options.staging;
  const int rank = op->rank;
  const std::string& what = op->what;

  // Validate and plan (collective unless the save has no collectives).
  auto phase_start = std::chrono::steady_clock::now();
  try {
    if (op->collective) {
      // Every rank must name the same base (or none): the incremental steps are collective.
      const std::uint64_t base_hash =
          detail::checksum(options.incremental_from.data(), options.incremental_from.size());
      std::int64_t bases[2] = {static_cast<std::int64_t>(base_hash >> 1), -static_cast<std::int64_t>(base_hash >> 1)};
      g.allreduce(bases, 2, ReduceOp::Max);
      std::uint64_t structure = 0;  // validation's fingerprint: the plan cache's key
      detail::agree_on(g, what + " (validate)", [&] {
        detail::fault_point("validate", rank);
        op->paths = detail::checkpoint_paths(id);
        if (bases[0] != -bases[1])
          throw UsageError("the ranks name different bases for the incremental save (SaveOptions::incremental_from)");
        op->base_dir = incremental_base(options, op->paths);
        structure = detail::validate_state(state, rank, g.size(), detail::Purpose::Save);
        if (options.staging == StagingMode::Bounded && options.staging_budget_bytes < (std::size_t{2} << 20))
          throw UsageError("the staging budget of " + std::to_string(options.staging_budget_bytes) +
                           " bytes is below the minimum of 2 MiB");
      });
      make_plan(group_ptr, planner_ptr, state, structure, what);
      op->global_items = &global_items;
    } else {
      detail::fault_point("validate", rank);
      op->paths = detail::checkpoint_paths(id);
      if (!options.incremental_from.empty())
        throw UsageError(
            "incremental saves need collectives: a save with use_collectives = false writes the "
            "rank-files layout, which cannot refer to an earlier checkpoint");
      detail::validate_state(state, rank, g.size(), detail::Purpose::Save);
      detail::fault_point("plan", rank);
      make_local_plan(g, p, state);
    }
  } catch (...) {
    if (op->collective) {  // agreed: the same error on every rank, nothing started
      op->timings.plan_seconds = seconds_since(phase_start);
      op->timings.stall_seconds = seconds_since(call_start);
      op->task->complete(std::current_exception(), op->timings);
      last_timings = op->timings;
      return future;
    }
    // Without collectives the other ranks learn of it in the agreement at the end: go on with
    // an empty plan, so this rank still takes part in it.
    op->failure = in_step("plan", std::current_exception());
    plan = SavePlan{};
  }
  op->plan = &plan;
  op->timings.plan_seconds = seconds_since(phase_start);
  op->own_writer = !options.writer;
  op->writer = options.writer   ? options.writer
               : op->collective ? std::shared_ptr<StorageWriter>(make_hdf5_writer())
                                : std::shared_ptr<StorageWriter>(make_hdf5_rank_files_writer());

  // Snapshot what the commit reads from the state: the caller may change it once we return.
  op->scalar_values.assign(plan.entries.size(), ScalarValue{});
  {
    // By name through a table, not State::find (a scan per scalar: quadratic in the entries).
    std::unordered_map<std::string_view, const Entry*> replicated_scalars;
    for (const Entry& entry : state.entries())
      if (entry.is_scalar() && entry.distribution == Distribution::Replicated)
        replicated_scalars.emplace(entry.name, &entry);
    for (std::size_t e = 0; e < plan.entries.size() && !replicated_scalars.empty(); ++e) {
      const EntryInfo& info = plan.entries[e];
      if (info.kind != EntryKind::Scalar || info.distribution != Distribution::Replicated) continue;
      if (auto found = replicated_scalars.find(info.name); found != replicated_scalars.end())
        op->scalar_values[e] = read_scalar(*found->second);
    }
  }
  op->mirrors = state.mirrors();
  op->sums.clear();
  op->block_rows.clear();
  op->sums.reserve(plan.items.size());
  op->block_rows.reserve(plan.items.size());
  for (const WriteItem& item : plan.items) {
    const std::size_t esize = dtype_size(plan.entries.at(static_cast<std::size_t>(item.entry)).dtype);
    const std::int64_t rows = detail::checksum_block_rows(item.region.shape, esize);
    op->block_rows.push_back(rows);
    op->sums.emplace_back(detail::checksum_block_bytes(item.region.shape, rows, esize));
  }

  // Stage (caller's thread). A failure here is agreed on by the worker's first step.
  phase_start = std::chrono::steady_clock::now();
  std::exception_ptr stage_failure;
  detail::Executor& exec = *executor;
  SaveOperation* raw = op.get();
  if (options.staging != StagingMode::Bounded) {
    op->pieces.resize(1);
    op->piece_failures.resize(1);
    try {
      detail::fault_point("stage", rank);
      for (const auto& mirror : op->mirrors) mirror->copy_to_host();
      staging.stage(plan, state, rank, options.staging == StagingMode::ZeroCopy, op->pieces[0]);
    } catch (...) {
      stage_failure = std::current_exception();
      op->pieces[0].clear();
    }
    op->timings.stage_seconds = seconds_since(phase_start);
    exec.post([raw, stage_failure] { raw->begin(stage_failure); });
    exec.post([raw] { raw->write(0); });
  } else {
    const std::size_t half = detail::half_budget(options.staging_budget_bytes);
    std::int64_t count = 0;
    try {
      op->bounded_pieces = detail::split_into_pieces(plan, half);
      count = static_cast<std::int64_t>(op->bounded_pieces.size());
    } catch (...) {
      stage_failure = std::current_exception();
    }
    if (op->collective) g.allreduce(&count, 1, ReduceOp::Max);
    const auto n = static_cast<std::size_t>(std::max<std::int64_t>(count, 1));
    op->pieces.resize(n);
    op->piece_failures.resize(n);
    if (!stage_failure) {
      try {
        detail::fault_point("stage", rank);
        for (const auto& mirror : op->mirrors) mirror->copy_to_host();
      } catch (...) {
        stage_failure = std::current_exception();
      }
    }
    exec.post([raw] { raw->begin(nullptr); });
    double stage_seconds = 0;
    for (std::size_t k = 0; k < n; ++k) {
      // Half k % 2 is free once piece k - 2 is written.
      if (k >= 2) exec.run_until([raw, k] { return raw->pieces_written.load() >= static_cast<int>(k - 1); });
      const auto piece_start = std::chrono::steady_clock::now();
      if (stage_failure) {
        op->piece_failures[k] = stage_failure;
      } else if (k < op->bounded_pieces.size() && !op->failed.load()) {
        try {
          staging.stage_piece(op->bounded_pieces[k], plan, state, rank, static_cast<int>(k % 2), half, op->pieces[k]);
        } catch (...) {
          op->piece_failures[k] = std::current_exception();
        }
      }
      stage_seconds += seconds_since(piece_start);
      exec.post([raw, k] { raw->write(k); });
    }
    op->timings.stage_seconds = stage_seconds;
  }
  // Set before the last job is posted: that job reports the timings.
  op->timings.stall_seconds = seconds_since(call_start);
  exec.post([raw] {
    raw->commit();
    raw->complete();
  });
  in_flight = std::move(op);
  return future;
}

void Checkpointer::Impl::run_on_worker(const std::function<void()>& job) {
  finish_in_flight();
  // Storage calls stay on the worker, like those of saves: HDF5 is called from one thread only.
  std::exception_ptr failure;
  executor->post([&] {
    try {
      job();
    } catch (...) {
      failure = std::current_exception();
    }
  });
  executor->drain();
  if (failure) std::rethrow_exception(failure);
}

VerifyReport Checkpointer::Impl::verify(const std::string& id, const VerifyOptions& options) {
  ProcessGroup& g = *group;
  const std::string what = "verification of checkpoint '" + id + "'";
  VerifyReport report;
  run_on_worker([&] {
    detail::CheckpointPaths paths;
    detail::agree_on(g, what + " (validate)", [&] {
      paths = detail::checkpoint_paths(id);
      if (options.buffer_bytes < minimum_read_buffer)
        throw UsageError("the verification buffer of " + std::to_string(options.buffer_bytes) +
                         " bytes is below the minimum of " + std::to_string(minimum_read_buffer));
    });
    std::shared_ptr<StorageReader> reader = reader_for(options.reader);
    try {
      detail::agree_on(g, what + " (open)", [&] { reader->open(paths.final_dir, g); });
      report = detail::verify_all_chunks(*reader, g, options.buffer_bytes, "checkpoint '" + id + "'");
    } catch (...) {
      reader->close();
      throw;
    }
    reader->close();
  });
  report.id = id;
  return report;
}

void Checkpointer::Impl::load(State& state, const std::string& id, const LoadOptions& options) {
  ProcessGroup& g = options.no_dist ? *serial_group : options.process_group ? *options.process_group : *group;
  run_on_worker([&] { load_on(g, state, id, options); });
  for (const auto& mirror : state.mirrors()) mirror->copy_from_host();
  for (Stateful* object : state.statefuls()) object->restored();
}

void Checkpointer::Impl::load_on(ProcessGroup& g, State& state, const std::string& id, const LoadOptions& options) {
  const int rank = g.rank();
  const int world = g.size();
  const std::string what = "load of checkpoint '" + id + "'";
  detail::CheckpointPaths paths;
  detail::agree_on(g, what + " (validate)", [&] {
    paths = detail::checkpoint_paths(id);
    detail::validate_state(state, rank, world, detail::Purpose::Load);
    if (options.verify_checksums && options.verify_buffer_bytes < minimum_read_buffer)
      throw UsageError("the verification buffer of " + std::to_string(options.verify_buffer_bytes) +
                       " bytes is below the minimum of " + std::to_string(minimum_read_buffer));
    detail::fault_point("load-open", rank);
  });

  std::shared_ptr<StorageReader> reader = reader_for(options.reader);
  try {
    detail::agree_on(g, what + " (open)", [&] { reader->open(paths.final_dir, g); });
    const Metadata& md = reader->metadata();

    std::vector<ReadRequest> requests;
    std::vector<PendingCopy> copies;
    std::vector<PendingSplit> splits;
    std::vector<std::size_t> replicated;  // requests of replicated arrays and blobs: the same on every rank
    detail::agree_on(g, what + " (match entries)", [&] {
      detail::fault_point("load-read", rank);
      std::unordered_map<std::string_view, std::int32_t> index_of;
      for (std::size_t e = 0; e < md.entries.size(); ++e)
        index_of.emplace(md.entries[e].name, static_cast<std::int32_t>(e));
      std::vector<detail::RegionIndex> saved_regions(md.entries.size());
      for (std::size_t c = 0; c < md.chunks.size(); ++c)
        saved_regions[static_cast<std::size_t>(md.chunks[c].entry)].add(&md.chunks[c].region, c);
      for (detail::RegionIndex& saved : saved_regions) saved.build();
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
            saved_regions[static_cast<std::size_t>(index)].for_each_intersecting(
                wanted, [&](std::size_t, const Region& part) { covered += detail::volume(part.shape); });
            if (covered != detail::volume(wanted.shape))
              throw UsageError(where + ": region " + detail::to_string(wanted) +
                               " was not entirely written by the save (the checkpoint holds part of it)");
            if (entry.distribution == Distribution::Replicated && info.distribution == Distribution::Replicated)
              replicated.push_back(requests.size());
            detail::MemoryLocation location;
            try {
              location = detail::locate(chunk.data, chunk.memory);
            } catch (const UsageError& e) {
              throw UsageError(where + ", chunk at " + detail::to_string(chunk.offset) + ": " + e.what());
            }
            if (!location.device && detail::is_row_major_contiguous(chunk)) {
              requests.push_back(ReadRequest{index, wanted, array->dtype, chunk.data});
            } else {
              PendingCopy& copy = copies.emplace_back();
              copy.chunk = &chunk;
              copy.region = wanted;
              copy.element_size = esize;
              copy.where = location;
              copy.buffer.reserve(static_cast<std::size_t>(detail::volume(wanted.shape)) * esize, location.device);
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
          if (size > 0 && entry.distribution == Distribution::Replicated &&
              info.distribution == Distribution::Replicated)
            replicated.push_back(requests.size());
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
    const std::vector<ReadRequest> broadcasts = read_once_and_broadcast(g, requests, replicated);
    detail::agree_on(g, what + " (read)", [&] {
      if (options.verify_checksums)
        detail::read_checked(*reader, g, requests, options.verify_buffer_bytes, "checkpoint '" + id + "'");
      else
        reader->read(requests);
    });
    broadcast_replicated(g, broadcasts, copies, what);
    copy_into_chunks(g, copies, what);
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
}

Checkpointer::Checkpointer() : m_impl(std::make_unique<Impl>(std::make_shared<SerialProcessGroup>())) {}

Checkpointer::Checkpointer(MPI_Comm comm) : m_impl(std::make_unique<Impl>(std::make_shared<MpiProcessGroup>(comm))) {}

Checkpointer::Checkpointer(std::shared_ptr<ProcessGroup> group)
    : m_impl(group ? std::make_unique<Impl>(std::move(group))
                   : throw UsageError("Checkpointer: the process group is null")) {}

Checkpointer::~Checkpointer() = default;
Checkpointer::Checkpointer(Checkpointer&&) noexcept = default;
Checkpointer& Checkpointer::operator=(Checkpointer&&) noexcept = default;

void Checkpointer::set_planner(std::shared_ptr<Planner> planner) {
  if (!planner) throw UsageError("set_planner: the planner is null");
  m_impl->finish_in_flight();  // the save in flight still uses the old plan
  m_impl->planner = std::move(planner);
  m_impl->plan_cached = false;
}

SaveFuture Checkpointer::async_save(const State& state, const std::string& id, const SaveOptions& options) {
  return m_impl->async_save(state, id, options);
}

void Checkpointer::save(const State& state, const std::string& id, const SaveOptions& options) {
  if (options.staging != StagingMode::Copy) {
    m_impl->async_save(state, id, options).get();
    return;
  }
  // Nothing can change the arrays until this returns: a staging copy would only cost time and memory.
  SaveOptions direct = options;
  direct.staging = StagingMode::ZeroCopy;
  m_impl->async_save(state, id, direct).get();
}

void Checkpointer::load(State& state, const std::string& id, const LoadOptions& options) {
  m_impl->load(state, id, options);
}

VerifyReport Checkpointer::verify(const std::string& id, const VerifyOptions& options) {
  return m_impl->verify(id, options);
}

SaveFuture detail::CheckpointerAccess::async_save(Checkpointer& checkpointer, const State& state, const std::string& id,
                                                  const SaveOptions& options, SaveHooks hooks) {
  return checkpointer.m_impl->async_save(state, id, options, std::move(hooks));
}

void detail::CheckpointerAccess::run_on_worker(Checkpointer& checkpointer, const std::function<void()>& job) {
  checkpointer.m_impl->run_on_worker(job);
}

SaveFuture detail::CheckpointerAccess::run_after(Checkpointer& checkpointer, std::function<void()> job) {
  auto task = std::make_shared<detail::SaveTask>(checkpointer.m_impl->executor.get());
  checkpointer.m_impl->executor->post([task, job = std::move(job)] {
    std::exception_ptr failure;
    const auto start = std::chrono::steady_clock::now();
    try {
      job();
    } catch (...) {
      failure = std::current_exception();
    }
    SaveTimings timings;
    timings.commit_seconds = seconds_since(start);
    task->complete(failure, timings);
  });
  return SaveFuture(task);
}

void Checkpointer::wait() {
  m_impl->finish_in_flight();
}

ProcessGroup& Checkpointer::process_group() noexcept {
  return *m_impl->group;
}

bool Checkpointer::background_writes() const noexcept {
  return m_impl->executor->mode() == detail::Executor::Mode::Background;
}

SaveTimings Checkpointer::last_save_timings() const {
  m_impl->finish_in_flight();
  return m_impl->last_timings;
}

const char* version() noexcept {
  return CAIRN_VERSION_STRING;
}

}  // namespace cairn
