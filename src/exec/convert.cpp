// convert_checkpoint: reads every saved chunk (checking its checksum) and writes it again through
// another backend, as the checkpointer would have written it, then publishes atomically.
#include <cairn/checkpointer.hpp>
#include <cairn/convert.hpp>
#include <cairn/error.hpp>

#include "comm/agree.hpp"
#include "core/checksum.hpp"
#include "core/region.hpp"
#include "storage/common/publish.hpp"

#include <algorithm>
#include <numeric>
#include <string>
#include <vector>

namespace cairn {

namespace {

std::size_t region_bytes(const Metadata& md, const ChunkRecord& c) {
  return static_cast<std::size_t>(detail::volume(c.region.shape)) *
         dtype_size(md.entries[static_cast<std::size_t>(c.entry)].dtype);
}

// One row-major slice of one of this rank's items.
struct Slice {
  std::size_t item = 0;  // index into this rank's items
  Region region;
  std::size_t bytes = 0;
  bool last = false;  // the item's last slice: its checksum is complete
};

}  // namespace

void convert_checkpoint(ProcessGroup& group, const std::string& from, const std::string& to,
                        const ConvertOptions& options) {
  const int rank = group.rank();
  const int size = group.size();
  const std::string what = "conversion of checkpoint '" + from + "' to '" + to + "'";
  detail::CheckpointPaths source, target;
  detail::agree_on(group, what + " (validate)", [&] {
    source = detail::checkpoint_paths(from);
    target = detail::checkpoint_paths(to);
    if (source.final_dir == target.final_dir)
      throw UsageError(what + ": the source and the target are the same checkpoint");
    if (options.buffer_bytes < 4096)
      throw UsageError(what + ": a buffer of " + std::to_string(options.buffer_bytes) +
                       " bytes is below the minimum of 4096");
  });
  std::unique_ptr<StorageReader> reader = make_reader();
  const std::shared_ptr<StorageWriter> writer =
      options.writer ? options.writer : std::shared_ptr<StorageWriter>(make_hdf5_writer());
  bool begun = false;
  try {
    detail::agree_on(group, what + " (open " + from + ")", [&] { reader->open(source.final_dir, group); });
    const Metadata& md = reader->metadata();

    // Share the chunks out by size, largest first to the least loaded rank: the same on every
    // rank, so no communication. Empty chunks carry no bytes and are left out.
    std::vector<std::size_t> order(md.chunks.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      return region_bytes(md, md.chunks[a]) > region_bytes(md, md.chunks[b]);
    });
    std::vector<std::uint64_t> load(static_cast<std::size_t>(size), 0);
    std::vector<int> owner(md.chunks.size(), -1);
    for (std::size_t c : order) {
      const std::size_t bytes = region_bytes(md, md.chunks[c]);
      if (detail::volume(md.chunks[c].region.shape) == 0) continue;
      const auto least = static_cast<std::size_t>(std::min_element(load.begin(), load.end()) - load.begin());
      owner[c] = static_cast<int>(least);
      load[least] += bytes;
    }
    std::vector<EntryInfo> entries = md.entries;
    std::vector<std::vector<std::int32_t>> per_rank(entries.size(), std::vector<std::int32_t>(load.size(), 0));
    for (std::size_t c = 0; c < md.chunks.size(); ++c)
      if (owner[c] >= 0) ++per_rank[static_cast<std::size_t>(md.chunks[c].entry)][static_cast<std::size_t>(owner[c])];
    for (std::size_t e = 0; e < entries.size(); ++e)
      entries[e].max_items_per_rank = *std::max_element(per_rank[e].begin(), per_rank[e].end());

    // This rank's items in entry order (writers take buffers grouped by entry).
    std::vector<std::size_t> mine;
    for (std::size_t c = 0; c < md.chunks.size(); ++c)
      if (owner[c] == rank) mine.push_back(c);
    std::stable_sort(mine.begin(), mine.end(),
                     [&](std::size_t a, std::size_t b) { return md.chunks[a].entry < md.chunks[b].entry; });
    std::vector<WriteItem> items;
    std::vector<std::int32_t> count_in_entry(entries.size(), 0);
    for (std::size_t c : mine) {
      const ChunkRecord& chunk = md.chunks[c];
      items.push_back(WriteItem{chunk.entry, count_in_entry[static_cast<std::size_t>(chunk.entry)]++, chunk.region,
                                chunk.region.offset});
    }

    // Row-major slices of at most buffer_bytes, in batches that fill the buffer.
    std::vector<Slice> slices;
    for (std::size_t i = 0; i < items.size(); ++i) {
      const std::size_t esize = dtype_size(entries[static_cast<std::size_t>(items[i].entry)].dtype);
      for (Region& r : detail::row_major_slices(items[i].region, esize, options.buffer_bytes)) {
        const std::size_t bytes = static_cast<std::size_t>(detail::volume(r.shape)) * esize;
        slices.push_back(Slice{i, std::move(r), bytes, false});
      }
      if (!slices.empty() && slices.back().item == i) slices.back().last = true;
    }
    std::vector<std::size_t> batch_start{0};
    std::size_t largest = 0;
    for (std::size_t s = 0, bytes = 0; s < slices.size(); ++s) {
      if (bytes > 0 && bytes + slices[s].bytes > options.buffer_bytes) {
        batch_start.push_back(s);
        bytes = 0;
      }
      bytes += slices[s].bytes;
      largest = std::max(largest, bytes);
    }
    batch_start.push_back(slices.size());
    const std::size_t my_batches = slices.empty() ? 0 : batch_start.size() - 1;
    std::int64_t batches = static_cast<std::int64_t>(my_batches);
    group.allreduce(&batches, 1, ReduceOp::Max);

    begun = true;  // from here a failure removes the partial directory
    detail::agree_on(group, what + " (prepare " + to + ")", [&] {
      if (rank == 0) detail::begin_checkpoint(target, options.overwrite);
    });
    writer->set_local_items(items);
    detail::agree_on(group, what + " (open " + to + ")", [&] { writer->open(target.partial_dir, entries, group); });

    std::vector<std::byte> buffer(largest);
    std::vector<detail::ChunkHasher> sums;  // by item, with its chunk's checksum blocks
    sums.reserve(items.size());
    for (std::size_t c : mine) {
      const ChunkRecord& chunk = md.chunks[c];
      sums.emplace_back(detail::checksum_block_bytes(chunk.region.shape, chunk.block_rows,
                                                     dtype_size(entries[static_cast<std::size_t>(chunk.entry)].dtype)));
    }
    std::vector<ReadRequest> requests;
    std::vector<WriteItem> pieces;
    std::vector<WriteBuffer> buffers;
    for (std::int64_t b = 0; b < batches; ++b) {
      requests.clear();
      pieces.clear();
      buffers.clear();
      const bool have = static_cast<std::size_t>(b) < my_batches;
      const std::size_t first = have ? batch_start[static_cast<std::size_t>(b)] : 0;
      const std::size_t last = have ? batch_start[static_cast<std::size_t>(b) + 1] : 0;
      pieces.reserve(last - first);  // buffers point into it
      for (std::size_t s = first, offset = 0; s < last; offset += slices[s].bytes, ++s) {
        const WriteItem& item = items[slices[s].item];
        const DType dtype = entries[static_cast<std::size_t>(item.entry)].dtype;
        requests.push_back(ReadRequest{item.entry, slices[s].region, dtype, buffer.data() + offset});
        pieces.push_back(WriteItem{item.entry, item.chunk, slices[s].region, item.source_offset});
        buffers.push_back(WriteBuffer{&pieces.back(), buffer.data() + offset});
      }
      detail::agree_on(group, what + " (read)", [&] {
        reader->read(requests);
        for (std::size_t s = first, offset = 0; s < last; offset += slices[s].bytes, ++s) {
          detail::ChunkHasher& sum = sums[slices[s].item];
          sum.update(buffer.data() + offset, slices[s].bytes);
          if (!slices[s].last) continue;
          const ChunkRecord& chunk = md.chunks[mine[slices[s].item]];
          if (sum.digest() != chunk.checksum)
            throw CorruptCheckpointError(
                "chunk " + detail::to_string(chunk.region) + " of entry '" +
                md.entries[static_cast<std::size_t>(chunk.entry)].name + "' saved by rank " +
                std::to_string(chunk.rank) + " in checkpoint '" + from + "' does not match its checksum (stored " +
                detail::checksum_hex(chunk.checksum) + ", read " + detail::checksum_hex(sum.digest()) + ")");
        }
      });
      detail::agree_on(group, what + " (write)", [&] { writer->write(buffers); });
    }

    Metadata out = md;
    for (ChunkRecord& chunk : out.chunks) chunk.source.clear();  // every chunk was written here
    out.format_version = format_version;
    out.library_version = version();
    out.entries = entries;
    detail::agree_on(group, what + " (commit)", [&] { writer->finish(out); });
    reader->close();
    detail::agree_on(group, what + " (publish)", [&] {
      if (rank == 0) detail::publish_checkpoint(target);
    });
  } catch (...) {
    if (begun) writer->abort();
    reader->close();
    try {
      group.barrier();  // every rank has closed its files before rank 0 removes them
    } catch (...) {
      // The transport itself failed; the error being reported already says so.
    }
    if (begun && rank == 0) detail::discard_checkpoint(target);
    try {
      group.barrier();  // and nothing is left of `to` on any rank's return
    } catch (...) {
    }
    throw;
  }
}

}  // namespace cairn
