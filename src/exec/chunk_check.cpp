#include "exec/chunk_check.hpp"

#include <cairn/error.hpp>

#include "comm/broadcast.hpp"
#include "core/byte_codec.hpp"
#include "core/checksum.hpp"
#include "core/region.hpp"
#include "core/strided_copy.hpp"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <queue>
#include <system_error>
#include <thread>
#include <unordered_map>

namespace cairn::detail {

namespace {

std::string describe_chunk(const Metadata& md, const ChunkRecord& chunk) {
  return "chunk " + to_string(chunk.region) + " of entry '" + md.entries[static_cast<std::size_t>(chunk.entry)].name +
         "' saved by rank " + std::to_string(chunk.rank) +
         (chunk.source.empty() ? std::string() : " (its bytes held by checkpoint '" + chunk.source + "')");
}

// One saved chunk read and checked: whole, or (a chunk checksummed in blocks) the blocks of it
// that some request needs.
struct ChunkJob {
  std::size_t chunk = 0;                    // index into the metadata's chunks
  std::vector<const ReadRequest*> targets;  // same-dtype requests filled from it
  // Rows [first, last) of the chunk, by global index, that some request (of any dtype) needs;
  // empty: all of them (verify).
  std::vector<std::pair<std::int64_t, std::int64_t>> wanted;
  std::size_t element_size = 0;
  std::vector<Region> slices;  // in row order, none across a block boundary
  // By slice: where it is read in place (rows of the chunk that are rows of one request), or null
  // (read through a round buffer, then copied out to the requests it meets).
  std::vector<std::byte*> in_place;
  Checksummer sum;                          // of the whole chunk or, with blocks, of the current block
  std::uint64_t row_bytes = 0;              // with blocks: bytes of one row of the chunk
  std::uint64_t in_block = 0;               // bytes of the current block hashed so far
  std::vector<std::uint64_t> block_actual;  // by block, those read
  std::size_t blocks_read = 0;
  std::size_t slices_done = 0;
  bool failed = false;  // a read failed, or (after the last round) a checksum differs
  std::string message;
  // Written by whichever thread hashes the job's slices (see run_rounds).
  std::uint64_t actual = 0;  // the chunk checksum of the bytes read; with some blocks left unread, 0
  bool mismatch = false;
  std::int64_t bad_block = -1;  // the first block that differs
  std::uint64_t bad_block_actual = 0;
};

// Hashes `slice` of `job` at `data`. A block's checksum is compared once its last slice is in,
// the chunk's once every slice is.
void hash_slice(ChunkJob& job, const Metadata& md, const Region& slice, const std::byte* data, std::size_t bytes) {
  const ChunkRecord& chunk = md.chunks[job.chunk];
  const bool last = ++job.slices_done == job.slices.size();
  job.sum.update(data, bytes);
  if (chunk.block_rows <= 0) {
    if (!last) return;
    job.actual = job.sum.digest();
    job.mismatch = job.actual != chunk.checksum;
    return;
  }
  job.in_block += bytes;
  const std::int64_t first_row = chunk.region.offset[0];
  const std::int64_t block = (slice.offset[0] - first_row) / chunk.block_rows;
  const std::int64_t block_first = first_row + block * chunk.block_rows;
  const std::int64_t block_end = std::min(block_first + chunk.block_rows, first_row + chunk.region.shape[0]);
  if (job.in_block == static_cast<std::uint64_t>(block_end - block_first) * job.row_bytes) {
    const std::uint64_t digest = job.sum.digest();
    job.sum.reset();
    job.in_block = 0;
    const auto b = static_cast<std::size_t>(block);
    job.block_actual[b] = digest;
    ++job.blocks_read;
    if (digest != chunk.block_checksums[b] && job.bad_block < 0) {
      job.mismatch = true;
      job.bad_block = block;
      job.bad_block_actual = digest;
    }
  }
  if (!last || job.blocks_read != job.block_actual.size()) return;
  job.actual = checksum_of_blocks(job.block_actual);
  job.mismatch = job.mismatch || job.actual != chunk.checksum;
}

// What a failed check says about `job`'s chunk.
std::string mismatch_message(const ChunkJob& job, const Metadata& md, const std::string& source) {
  const ChunkRecord& chunk = md.chunks[job.chunk];
  std::string what = describe_chunk(md, chunk) + " in " + source + ": checksum mismatch";
  if (job.bad_block >= 0) {
    const std::int64_t first = chunk.region.offset[0] + job.bad_block * chunk.block_rows;
    const std::int64_t last = std::min(first + chunk.block_rows, chunk.region.offset[0] + chunk.region.shape[0]) - 1;
    const auto b = static_cast<std::size_t>(job.bad_block);
    what += " in its block " + std::to_string(job.bad_block) + " (rows " + std::to_string(first) + " to " +
            std::to_string(last) + "; saved " + checksum_hex(chunk.block_checksums[b]) + ", read " +
            checksum_hex(job.bad_block_actual) + ")";
  } else {
    what += " (saved " + checksum_hex(chunk.checksum) + ", read " + checksum_hex(job.actual) + ")";
  }
  return what + ": the data is damaged";
}

struct SliceRead {
  std::size_t job = 0;
  std::size_t slice = 0;
  std::size_t buffer_offset = 0;  // into its round's buffer, unless read in place
};

// Hashes the slices of each round on a thread of its own, in the order they were read, while the
// main thread reads the next round: checking then costs little time when reading waits on the
// disk. A slice read into one of the two round buffers is also copied out to its requests there,
// and its buffer is reused two rounds later, once wait_for() says the slice is done. Until
// finish() returns, only this thread touches the jobs' hash fields and their requests' bytes.
class SliceHasher {
 public:
  struct Work {
    SliceRead read;
    const std::byte* buffered = nullptr;  // the slice's bytes in a round buffer; null when in place
  };

  SliceHasher(std::vector<ChunkJob>& jobs, const Metadata& md) : m_jobs(jobs), m_md(md) {
    if (jobs.empty()) return;
    try {
      m_thread = std::thread([this] { run(); });
    } catch (const std::system_error&) {
      // No thread to be had: push() does the work on the caller's thread.
    }
  }
  SliceHasher(const SliceHasher&) = delete;
  SliceHasher& operator=(const SliceHasher&) = delete;
  ~SliceHasher() { finish(); }

  void push(const Work& work) {
    ++m_pushed;
    if (!m_thread.joinable()) {
      process(work);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(m_mutex);
      m_pending.push_back(work);
    }
    m_wake.notify_all();
  }

  /// Slices pushed so far (the caller's count, for wait_for).
  std::size_t pushed() const { return m_pushed; }

  /// Returns once the first `count` slices pushed are done.
  void wait_for(std::size_t count) {
    if (!m_thread.joinable()) return;
    std::unique_lock<std::mutex> lock(m_mutex);
    m_done_changed.wait(lock, [&] { return m_done >= count; });
  }

  /// Returns once every pushed slice is done.
  void finish() {
    if (!m_thread.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(m_mutex);
      m_closing = true;
    }
    m_wake.notify_all();
    m_thread.join();
  }

 private:
  void run() {
    std::unique_lock<std::mutex> lock(m_mutex);
    for (;;) {
      m_wake.wait(lock, [this] { return m_closing || !m_pending.empty(); });
      if (m_pending.empty()) return;  // closing, and all done
      const Work work = m_pending.front();
      m_pending.pop_front();
      lock.unlock();
      process(work);
      lock.lock();
      ++m_done;
      m_done_changed.notify_all();
    }
  }

  void process(const Work& work) {
    ChunkJob& job = m_jobs[work.read.job];
    const Region& slice = job.slices[work.read.slice];
    const auto esize = static_cast<std::int64_t>(job.element_size);
    const auto bytes = static_cast<std::size_t>(volume(slice.shape) * esize);
    if (!work.buffered) {
      hash_slice(job, m_md, slice, job.in_place[work.read.slice], bytes);
      return;
    }
    hash_slice(job, m_md, slice, work.buffered, bytes);
    const Extents slice_strides = row_major_strides(slice.shape);
    Region part;
    for (const ReadRequest* target : job.targets) {
      if (!intersect(slice, target->region, part)) continue;
      strided_copy(work.buffered + row_major_index(slice, part.offset) * esize, slice_strides,
                   static_cast<std::byte*>(target->destination) + row_major_index(target->region, part.offset) * esize,
                   row_major_strides(target->region.shape), part.shape, job.element_size);
    }
  }

  std::vector<ChunkJob>& m_jobs;
  const Metadata& m_md;
  std::size_t m_pushed = 0;  // the caller's thread only
  std::mutex m_mutex;
  std::condition_variable m_wake;
  std::condition_variable m_done_changed;
  std::deque<Work> m_pending;
  std::size_t m_done = 0;
  bool m_closing = false;
  std::thread m_thread;
};

// In-place reads come in rounds of up to 64 MiB (large preads read clearly faster here than
// 16 MiB ones), shrinking towards the end to half of what is left, down to one 4 MiB slice: the
// hash of the last round, which no read overlaps, stays short.
constexpr std::size_t in_place_round_bytes = std::size_t{64} << 20;
constexpr std::size_t in_place_slice_bytes = std::size_t{4} << 20;

// Slices read through a buffer are at most half of the caller's buffer memory: two round
// buffers, one read into while the other is hashed.
std::size_t buffered_slice_bytes(std::size_t buffer_bytes) {
  return std::max<std::size_t>(buffer_bytes / 2, 1);
}

// Reads the slices of `jobs` in rounds whose buffered slices fit half of `buffer_bytes`; every
// rank runs the same number of rounds (reader.read is collective), padding with empty reads. A
// failed read marks the jobs of its round. `final_requests` are read in one more round at the end.
void run_rounds(StorageReader& reader, ProcessGroup& group, std::vector<ChunkJob>& jobs, std::size_t buffer_bytes,
                bool one_chunk_per_round, const std::vector<ReadRequest>& final_requests, const std::string& source,
                std::exception_ptr& first_failure) {
  const Metadata& md = reader.metadata();
  std::vector<std::vector<SliceRead>> rounds;
  std::size_t round_bytes = 0;
  std::size_t round_in_place = 0;
  std::size_t largest_round = 0;
  std::size_t in_place_left = 0;  // in-place bytes not yet given a round
  for (const ChunkJob& job : jobs)
    for (std::size_t s = 0; s < job.slices.size(); ++s)
      if (job.in_place[s]) in_place_left += static_cast<std::size_t>(volume(job.slices[s].shape)) * job.element_size;
  std::size_t round_limit = 0;  // in-place bytes the current round may take
  auto start_round = [&] {
    rounds.emplace_back();
    round_bytes = 0;
    round_in_place = 0;
    round_limit = std::clamp(in_place_left / 2, in_place_slice_bytes, in_place_round_bytes);
  };
  for (std::size_t j = 0; j < jobs.size(); ++j) {
    ChunkJob& job = jobs[j];
    if (one_chunk_per_round && !(rounds.empty() || rounds.back().empty())) start_round();
    for (std::size_t s = 0; s < job.slices.size(); ++s) {
      const std::size_t bytes = static_cast<std::size_t>(volume(job.slices[s].shape)) * job.element_size;
      const std::size_t cost = job.in_place[s] ? 0 : bytes;
      // In-place slices need no buffer, but a round of them is hashed while the next is read.
      const std::size_t in_place = job.in_place[s] ? bytes : 0;
      if (rounds.empty() || (cost > 0 && round_bytes > 0 && round_bytes + cost > buffered_slice_bytes(buffer_bytes)) ||
          (in_place > 0 && round_in_place > 0 && round_in_place + in_place > round_limit))
        start_round();
      round_in_place += in_place;
      in_place_left -= in_place;
      rounds.back().push_back(SliceRead{j, s, round_bytes});
      round_bytes += cost;
      largest_round = std::max(largest_round, round_bytes);
    }
  }
  std::int64_t count = static_cast<std::int64_t>(rounds.size()) + 1;  // + the final round
  group.allreduce(&count, 1, ReduceOp::Max);
  // Two round buffers: round r reads into buffer r % 2 while the slices of round r - 1 are
  // hashed and copied out of the other.
  std::vector<std::byte> buffers[2];
  buffers[0].resize(largest_round);
  if (rounds.size() > 1) buffers[1].resize(largest_round);
  std::vector<std::size_t> pushed_by_round(rounds.size(), 0);

  std::vector<ReadRequest> requests;
  SliceHasher hasher(jobs, md);
  for (std::int64_t r = 0; r < count; ++r) {
    requests.clear();
    const bool last = r == count - 1;
    const auto round = static_cast<std::size_t>(r);
    const bool have = round < rounds.size();
    std::byte* buffer = buffers[round % 2].data();
    if (last) {
      if (!first_failure) requests = final_requests;
    } else if (have) {
      if (round >= 2) hasher.wait_for(pushed_by_round[round - 2]);  // the buffer's last round is done
      for (const SliceRead& read : rounds[round]) {
        ChunkJob& job = jobs[read.job];
        if (job.failed) continue;
        const ChunkRecord& chunk = md.chunks[job.chunk];
        const Region& slice = job.slices[read.slice];
        std::byte* destination = job.in_place[read.slice] ? job.in_place[read.slice] : buffer + read.buffer_offset;
        requests.push_back(
            ReadRequest{chunk.entry, slice, md.entries[static_cast<std::size_t>(chunk.entry)].dtype, destination});
      }
    }
    bool read_failed = false;
    try {
      reader.read(requests);
    } catch (...) {
      read_failed = true;
      if (!first_failure) first_failure = std::current_exception();
      std::string why = "cannot be read";
      try {
        throw;
      } catch (const std::exception& e) {
        why += std::string(": ") + e.what();
      } catch (...) {
      }
      if (have && !last)
        for (const SliceRead& read : rounds[round]) {
          ChunkJob& job = jobs[read.job];
          if (job.failed) continue;
          job.failed = true;
          job.message = describe_chunk(md, md.chunks[job.chunk]) + " in " + source + " " + why;
        }
    }
    if (last || !have) continue;
    if (!read_failed)
      for (const SliceRead& read : rounds[round])
        if (!jobs[read.job].failed)
          hasher.push(
              SliceHasher::Work{read, jobs[read.job].in_place[read.slice] ? nullptr : buffer + read.buffer_offset});
    pushed_by_round[round] = hasher.pushed();
  }
  hasher.finish();
  for (ChunkJob& job : jobs) {
    if (job.failed || !job.mismatch) continue;
    job.failed = true;
    job.message = mismatch_message(job, md, source);
  }
}

}  // namespace

// Slices `job`'s chunk in row order: all of it, or, when it is checksummed in blocks, the blocks
// that hold rows some request wants (a resharded load reads only those); no slice crosses a block
// boundary. Rows that lie in one request as rows of it (a slab of its first dimension, in the
// stored dtype) are read in place, in slices of in_place_slice_bytes: the whole chunk when it is
// one request's region or a slab of it, the request's share of a chunk it shares with other
// ranks' requests in a resharded load. The other rows go through a round buffer.
void plan_slices(ChunkJob& job, const ChunkRecord& chunk, std::size_t buffer_bytes) {
  const Region& region = chunk.region;
  struct Direct {
    std::int64_t first = 0, last = 0;  // rows [first, last) of the chunk, by global index
    std::byte* destination = nullptr;  // of row `first`
  };
  std::vector<Direct> direct;
  const auto esize = static_cast<std::int64_t>(job.element_size);
  if (!region.shape.empty())
    for (const ReadRequest* target : job.targets) {
      Region part;
      if (!intersect(region, target->region, part) || !row_slab_of(part, region) || !row_slab_of(part, target->region))
        continue;
      direct.push_back(
          Direct{part.offset[0], part.offset[0] + part.shape[0],
                 static_cast<std::byte*>(target->destination) + row_major_index(target->region, part.offset) * esize});
    }
  else if (job.targets.size() == 1 && job.targets[0]->region == region)
    direct.push_back(Direct{0, 1, static_cast<std::byte*>(job.targets[0]->destination)});
  std::sort(direct.begin(), direct.end(), [](const Direct& a, const Direct& b) { return a.first < b.first; });
  job.slices.clear();
  job.in_place.clear();
  auto add = [&](const Region& rows, std::byte* destination) {
    for (Region& slice : row_major_slices(rows, job.element_size,
                                          destination ? in_place_slice_bytes : buffered_slice_bytes(buffer_bytes))) {
      job.in_place.push_back(destination ? destination + row_major_index(rows, slice.offset) * esize : nullptr);
      job.slices.push_back(std::move(slice));
    }
  };
  if (region.shape.empty()) {  // a 0-d chunk: one element
    add(region, direct.empty() ? nullptr : direct.front().destination);
    return;
  }
  const std::int64_t first_row = region.offset[0];
  const std::int64_t end = first_row + region.shape[0];
  std::int64_t row_elements = 1;
  for (std::size_t d = 1; d < region.shape.size(); ++d) row_elements *= region.shape[d];
  // The row ranges to read: the whole chunk, or each wanted block (no slice crosses a block).
  std::vector<std::pair<std::int64_t, std::int64_t>> ranges;
  if (chunk.block_rows <= 0) {
    ranges.emplace_back(first_row, end);
  } else {
    const std::int64_t block_rows = chunk.block_rows;
    const std::size_t blocks = checksum_block_count(region.shape[0], block_rows);
    job.row_bytes = static_cast<std::uint64_t>(row_elements * esize);
    job.block_actual.assign(blocks, 0);
    std::vector<bool> wanted(blocks, job.wanted.empty());
    for (const auto& [first, last] : job.wanted) {
      if (last <= first) continue;
      const std::int64_t from = (std::max(first, first_row) - first_row) / block_rows;
      const std::int64_t to = (std::min(last, end) - 1 - first_row) / block_rows;
      for (std::int64_t b = from; b <= to; ++b) wanted[static_cast<std::size_t>(b)] = true;
    }
    for (std::size_t b = 0; b < blocks; ++b) {
      if (!wanted[b]) continue;
      const std::int64_t from = first_row + static_cast<std::int64_t>(b) * block_rows;
      ranges.emplace_back(from, std::min(from + block_rows, end));
    }
  }
  auto rows = [&](std::int64_t first, std::int64_t last) {
    Region r = region;
    r.offset[0] = first;
    r.shape[0] = last - first;
    return r;
  };
  // A rank's requests of one entry never overlap (validate_state), so neither do their rows.
  for (const auto& [range_first, range_end] : ranges) {
    std::int64_t row = range_first;
    for (const Direct& d : direct) {
      const std::int64_t from = std::max(d.first, row);
      const std::int64_t to = std::min(d.last, range_end);
      if (from >= to) continue;
      if (from > row) add(rows(row, from), nullptr);
      add(rows(from, to), d.destination + (from - d.first) * row_elements * esize);
      row = to;
    }
    if (row < range_end) add(rows(row, range_end), nullptr);
  }
}

void read_checked(StorageReader& reader, ProcessGroup& group, const std::vector<ReadRequest>& requests,
                  std::size_t buffer_bytes, const std::string& source) {
  const Metadata& md = reader.metadata();
  std::exception_ptr failure;
  std::vector<ChunkJob> jobs;
  std::vector<ReadRequest> converted;  // read again with conversion once checked
  try {
    std::vector<RegionIndex> chunks_of(md.entries.size());
    for (std::size_t c = 0; c < md.chunks.size(); ++c)
      if (volume(md.chunks[c].region.shape) > 0)
        chunks_of[static_cast<std::size_t>(md.chunks[c].entry)].add(&md.chunks[c].region, c);
    for (RegionIndex& index : chunks_of) index.build();
    std::unordered_map<std::size_t, std::size_t> job_of;  // chunk index -> job
    for (const ReadRequest& request : requests) {
      const auto e = static_cast<std::size_t>(request.entry);
      if (e >= md.entries.size()) throw InternalError("a read request names entry " + std::to_string(request.entry));
      const EntryInfo& info = md.entries[e];
      const bool same_dtype = request.dtype == info.dtype;
      if (!same_dtype) converted.push_back(request);
      std::int64_t covered = 0;
      std::vector<std::pair<std::size_t, std::pair<std::int64_t, std::int64_t>>> touched;  // chunk, rows wanted
      chunks_of[e].for_each_intersecting(request.region, [&](std::size_t c, const Region& part) {
        covered += volume(part.shape);
        const bool rows = !part.offset.empty();
        touched.emplace_back(c, std::make_pair(rows ? part.offset[0] : 0, rows ? part.offset[0] + part.shape[0] : 1));
      });
      if (covered < volume(request.region.shape))
        throw CorruptCheckpointError("entry '" + info.name + "': region " + to_string(request.region) + " of " +
                                     source + " is not covered by the chunks its metadata records");
      for (const auto& [c, rows] : touched) {
        auto [it, fresh] = job_of.emplace(c, jobs.size());
        if (fresh) {
          ChunkJob& job = jobs.emplace_back();
          job.chunk = c;
          job.element_size = dtype_size(info.dtype);
        }
        ChunkJob& job = jobs[it->second];
        if (same_dtype) job.targets.push_back(&request);
        job.wanted.push_back(rows);
      }
    }
    for (ChunkJob& job : jobs) plan_slices(job, md.chunks[job.chunk], buffer_bytes);
  } catch (...) {
    failure = std::current_exception();
    jobs.clear();
    converted.clear();
  }
  run_rounds(reader, group, jobs, buffer_bytes, false, converted, source, failure);
  if (failure) std::rethrow_exception(failure);
  std::size_t bad = 0;
  const ChunkJob* first = nullptr;
  for (const ChunkJob& job : jobs)
    if (job.failed && ++bad == 1) first = &job;
  if (first != nullptr)
    throw CorruptCheckpointError(
        first->message + (bad > 1 ? " (and " + std::to_string(bad - 1) + " more bad chunks on this rank)" : ""));
}

VerifyReport verify_all_chunks(StorageReader& reader, ProcessGroup& group, std::size_t buffer_bytes,
                               const std::string& source) {
  const Metadata& md = reader.metadata();
  const int ranks = group.size();
  const int rank = group.rank();
  // The same assignment on every rank: largest chunks first, each to the least loaded rank.
  std::vector<std::size_t> order(md.chunks.size());
  std::vector<std::int64_t> bytes(md.chunks.size());
  for (std::size_t c = 0; c < md.chunks.size(); ++c) {
    order[c] = c;
    const EntryInfo& info = md.entries[static_cast<std::size_t>(md.chunks[c].entry)];
    bytes[c] = volume(md.chunks[c].region.shape) * static_cast<std::int64_t>(dtype_size(info.dtype));
  }
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return bytes[a] > bytes[b]; });
  using Load = std::pair<std::int64_t, int>;  // bytes assigned, rank
  std::priority_queue<Load, std::vector<Load>, std::greater<>> least;
  for (int r = 0; r < ranks; ++r) least.emplace(0, r);
  std::vector<ChunkJob> jobs;
  std::int64_t my_bytes = 0;
  for (std::size_t c : order) {
    auto [assigned, r] = least.top();
    least.pop();
    least.emplace(assigned + bytes[c], r);
    if (r != rank) continue;
    my_bytes += bytes[c];
    ChunkJob& job = jobs.emplace_back();
    job.chunk = c;
    job.element_size = dtype_size(md.entries[static_cast<std::size_t>(md.chunks[c].entry)].dtype);
    plan_slices(job, md.chunks[c], buffer_bytes);  // no targets and nothing wanted: every block, buffered
    if (job.slices.empty()) {                      // an empty chunk: its checksum is that of no bytes
      job.actual = job.sum.digest();
      if (job.actual != md.chunks[c].checksum) {
        job.failed = true;
        job.message = describe_chunk(md, md.chunks[c]) + " in " + source + ": checksum mismatch for an empty chunk";
      }
    }
  }
  std::exception_ptr ignored;  // read failures are reported per chunk
  run_rounds(reader, group, jobs, buffer_bytes, true, {}, source, ignored);

  ByteWriter out;
  std::uint64_t n_bad = 0;
  for (const ChunkJob& job : jobs) n_bad += job.failed ? 1 : 0;
  out.u64(n_bad);
  for (const ChunkJob& job : jobs) {
    if (!job.failed) continue;
    out.u64(job.chunk);
    out.u64(job.actual);
    out.str(job.message);
  }
  std::vector<std::vector<std::byte>> gathered = group.gather(out.bytes(), 0);
  std::vector<std::byte> merged;
  if (rank == 0) {
    ByteWriter all;
    for (const auto& part : gathered) all.raw(part.data(), part.size());
    merged = std::move(all.bytes());
  }
  broadcast_bytes(group, merged, 0);

  VerifyReport report;
  std::int64_t totals[2] = {static_cast<std::int64_t>(jobs.size()), my_bytes};
  group.allreduce(totals, 2, ReduceOp::Sum);
  report.chunks_checked = totals[0];
  report.bytes_checked = totals[1];
  ByteReader in(merged.data(), merged.size(), "the verification results");
  for (int r = 0; r < ranks; ++r) {
    const std::uint64_t count = in.u64();
    for (std::uint64_t k = 0; k < count; ++k) {
      const auto c = static_cast<std::size_t>(in.u64());
      if (c >= md.chunks.size()) in.fail("chunk index out of range");
      const ChunkRecord& chunk = md.chunks[c];
      BadChunk bad;
      bad.entry = md.entries[static_cast<std::size_t>(chunk.entry)].name;
      bad.offset = chunk.region.offset;
      bad.shape = chunk.region.shape;
      bad.saving_rank = chunk.rank;
      bad.expected_checksum = chunk.checksum;
      bad.actual_checksum = in.u64();
      bad.message = in.str();
      report.bad_chunks.push_back(std::move(bad));
    }
  }
  return report;
}

}  // namespace cairn::detail
