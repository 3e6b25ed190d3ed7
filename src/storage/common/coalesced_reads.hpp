// Reads that land straight in their destinations, gathered and issued together: neighbours in
// both the file and memory become one pread. On the disks measured, one 64 MiB pread reads
// clearly faster than four of 16 MiB (benchmarks/README.md, "Load: how the readers read"), and a load's requests
// often come as neighbouring slabs (a chunk saved as several slabs, a checked load's rounds).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace cairn::detail {

class CoalescedReads {
 public:
  /// Reads `bytes` at `offset` of file `file` into `destination`; throws on failure.
  using ReadFn = std::function<void(int file, std::byte* destination, std::uint64_t bytes, std::uint64_t offset)>;

  /// A queued read, or several merged.
  struct Read {
    int file = 0;
    std::byte* destination = nullptr;
    std::uint64_t bytes = 0;
    std::uint64_t offset = 0;
  };

  /// Queues a read; nothing is read before flush() or take().
  void add(int file, std::byte* destination, std::uint64_t bytes, std::uint64_t offset);

  /// Empties the queue and returns its reads in file and offset order, neighbours merged (each
  /// merged read at most `max_bytes`), for a caller that issues them itself.
  std::vector<Read> take(std::uint64_t max_bytes = std::uint64_t{1} << 30);

  /// Issues every queued read, neighbours merged (each merged read at most `max_bytes`), and
  /// empties the queue, also when a read throws.
  void flush(const ReadFn& read, std::uint64_t max_bytes = std::uint64_t{1} << 30);

  /// Drops the queued reads (after a failure: their destinations may be gone by the next call).
  void clear() { m_pending.clear(); }

 private:
  std::vector<Read> m_pending;
};

}  // namespace cairn::detail
