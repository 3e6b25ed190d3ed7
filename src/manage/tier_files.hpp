// Files of the node-local tier: the record of where each rank's file lives, whole-file helpers,
// the throttled copy of the drain, and the transfer of files between ranks (partner copies).
#pragma once

#include <cairn/process_group.hpp>

#include "manage/directory_listing.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace cairn::detail::tier {

/// In every node's copy: the world size and, per rank, its node, host, file size and checksum.
inline constexpr const char* record_file_name = "tier.cairn";

struct RankRecord {
  int node = 0;
  std::uint64_t size = 0;      ///< bytes of the rank file
  std::uint64_t checksum = 0;  ///< xxh3-64 of the whole rank file; 0: not recorded (no partner copies)
  std::string host;
};

struct TierRecord {
  int world = 0;
  std::vector<RankRecord> ranks;
};

/// Text: "cairn-tier 1\nworld N\n" then per rank "<rank> <node> <size> <checksum hex> <host>\n".
std::string format_record(const TierRecord& record);
/// Throws CorruptCheckpointError naming `dir` when the text is not a record.
TierRecord parse_record(const std::vector<std::byte>& bytes, const std::string& dir);

std::string host_name();
using detail::directory_names;
using detail::ends_with;
using detail::exists;
using detail::step_of;
/// Creates `dir` and its missing parents. Throws StorageError.
void make_directories(const std::string& dir);
/// Throws StorageError.
std::vector<std::byte> read_whole(const std::string& path);
std::uint64_t file_size(const std::string& path);
std::uint64_t file_checksum(const std::string& path);
/// Writes `bytes` to `path` through a temporary file, fsync'd, then renamed. Throws StorageError.
void write_file(const std::string& path, const std::vector<std::byte>& bytes);
/// Copies `from` to `to` in blocks of 4 MiB, at most `bytes_per_second` (0: no limit), fsync'd.
void copy_file(const std::string& from, const std::string& to, double bytes_per_second);

/// One file sent from rank `from` (reading `source`, a path on its node) to rank `to` (writing
/// `target` on its node, through a temporary file; missing directories are made).
struct FileTransfer {
  int from = 0;
  int to = 0;
  std::string source;
  std::string target;
};

/// Collective over `group` (an MPI one), every rank passing the same list (paths may differ: a
/// rank reads only the sources of its sends and writes only the targets of its receives). Streams
/// every file in blocks of 4 MiB, point to point on the group's communicator. Returns, per
/// transfer, the xxh3-64 of the bytes this rank sent or received (0 where it took no part).
/// Throws the same error on every rank when any transfer failed; a failed target is not left.
std::vector<std::uint64_t> transfer_files(ProcessGroup& group, const std::vector<FileTransfer>& transfers,
                                          const std::string& what);

}  // namespace cairn::detail::tier
