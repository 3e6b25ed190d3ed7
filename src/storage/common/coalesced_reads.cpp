#include "storage/common/coalesced_reads.hpp"

#include <algorithm>
#include <tuple>

namespace cairn::detail {

void CoalescedReads::add(int file, std::byte* destination, std::uint64_t bytes, std::uint64_t offset) {
  if (bytes > 0) m_pending.push_back(Pending{file, destination, bytes, offset});
}

void CoalescedReads::flush(const ReadFn& read, std::uint64_t max_bytes) {
  std::vector<Pending> pending;
  pending.swap(m_pending);
  std::sort(pending.begin(), pending.end(),
            [](const Pending& a, const Pending& b) { return std::tie(a.file, a.offset) < std::tie(b.file, b.offset); });
  std::size_t i = 0;
  while (i < pending.size()) {
    Pending merged = pending[i];
    std::size_t next = i + 1;
    while (next < pending.size() && pending[next].file == merged.file &&
           pending[next].offset == merged.offset + merged.bytes &&
           pending[next].destination == merged.destination + merged.bytes &&
           merged.bytes + pending[next].bytes <= max_bytes) {
      merged.bytes += pending[next].bytes;
      ++next;
    }
    read(merged.file, merged.destination, merged.bytes, merged.offset);
    i = next;
  }
}

}  // namespace cairn::detail
