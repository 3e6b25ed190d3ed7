// Reading saved chunks (whole, or the blocks of them a load needs) and checking them against the
// checksums they were saved with: the verified load and Checkpointer::verify().
#pragma once

#include <cairn/checkpointer.hpp>
#include <cairn/process_group.hpp>
#include <cairn/storage.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace cairn::detail {

/// Collective. Serves `requests` through `reader` (already open) so that every byte delivered was
/// checked: each saved chunk a request touches is read whole, or, when it is checksummed in
/// blocks of rows, every block that holds rows some request asks for, in row-major slices of at
/// most `buffer_bytes`; its checksums compared, and the overlapping parts copied out. The rows of
/// a chunk that are rows of one request (the whole chunk, or a request's share of a chunk it
/// shares with others) are read straight into that request. Requests in another dtype than the
/// stored one are checked the same way and then read again with conversion. Throws
/// CorruptCheckpointError naming the entry, the chunk's offsets (and the block's rows), the
/// saving rank and `source` on a mismatch, and the reader's error when a read fails (after
/// taking part in every read round).
void read_checked(StorageReader& reader, ProcessGroup& group, const std::vector<ReadRequest>& requests,
                  std::size_t buffer_bytes, const std::string& source);

/// Collective. Reads every chunk of the open checkpoint, shared out among the ranks by size, and
/// returns every bad chunk, the same list on every rank.
VerifyReport verify_all_chunks(StorageReader& reader, ProcessGroup& group, std::size_t buffer_bytes,
                               const std::string& source);

}  // namespace cairn::detail
