#include "storage/common/coalesced_reads.hpp"

#include <algorithm>
#include <tuple>

namespace cairn::detail {

void CoalescedReads::add(int file, std::byte* destination, std::uint64_t bytes, std::uint64_t offset) {
  if (bytes > 0) m_pending.push_back(Read{file, destination, bytes, offset});
}

std::vector<CoalescedReads::Read> CoalescedReads::take(std::uint64_t max_bytes) {
  std::vector<Read> pending;
  pending.swap(m_pending);
  std::sort(pending.begin(), pending.end(),
            [](const Read& a, const Read& b) { return std::tie(a.file, a.offset) < std::tie(b.file, b.offset); });
  std::vector<Read> merged;
  for (const Read& next : pending) {
    if (!merged.empty()) {
      Read& last = merged.back();
      if (next.file == last.file && next.offset == last.offset + last.bytes &&
          next.destination == last.destination + last.bytes && last.bytes + next.bytes <= max_bytes) {
        last.bytes += next.bytes;
        continue;
      }
    }
    merged.push_back(next);
  }
  return merged;
}

void CoalescedReads::flush(const ReadFn& read, std::uint64_t max_bytes) {
  for (const Read& r : take(max_bytes)) read(r.file, r.destination, r.bytes, r.offset);
}

}  // namespace cairn::detail
