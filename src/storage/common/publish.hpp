// Atomic publication of a checkpoint directory: write under a partial name, rename into place,
// fsync the parent. These run on one rank (rank 0); callers agree on the outcome afterwards.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace cairn::detail {

/// A small file in every published checkpoint; an existing directory without it is never replaced.
inline constexpr const char* marker_file_name = "CAIRN";

/// Paths of one checkpoint id: the final directory, its partial name and its parent.
struct CheckpointPaths {
  std::string final_dir;    ///< the id, without a trailing '/'
  std::string partial_dir;  ///< "<parent>/.<name>.partial"
  std::string parent_dir;
};

/// Splits and checks a checkpoint id. Throws UsageError for an empty id or one ending in '.'/'..'.
CheckpointPaths checkpoint_paths(const std::string& id);

/// Rank 0, before any data is written: creates missing parent directories, refuses an id that is
/// a file (UsageError) or an existing checkpoint without `overwrite` (UsageError), checks that the
/// parent is writable (StorageError), removes a stale partial directory and creates a fresh one.
void begin_checkpoint(const CheckpointPaths& paths, bool overwrite);

/// Every rank on its own, in saves without collectives: the checks of begin_checkpoint, then
/// creates the partial directory unless another rank already has. A stale partial directory is
/// reused; before publishing, rank 0 removes what this save did not write (keep_only).
void join_checkpoint(const CheckpointPaths& paths, bool overwrite);

/// Removes every entry of directory `dir` whose name is not in `keep`. Throws StorageError.
void keep_only(const std::string& dir, const std::vector<std::string>& keep);

/// Rank 0, once every rank's data is durable: fsyncs the partial directory, moves it to the final
/// name (swapping atomically with an existing checkpoint when the system can), fsyncs the parent,
/// then removes the replaced checkpoint.
void publish_checkpoint(const CheckpointPaths& paths);

/// Rank 0, after a failed save: removes the partial directory. Never throws.
void discard_checkpoint(const CheckpointPaths& paths) noexcept;

/// Removes a directory tree; throws StorageError naming the path that could not be removed.
void remove_tree(const std::string& path);

/// Reserves disk blocks for the first `bytes` of file `path` without changing its size, so that a
/// full disk shows up here, on one rank, rather than inside a collective write. Does nothing where
/// the file system cannot reserve. Throws StorageError (ENOSPC and the like).
void reserve_space(const std::string& path, long long bytes);

/// Opens `path` and fsyncs it (a file or a directory). Throws StorageError.
void fsync_path(const std::string& path);

/// Asks the kernel to start writing `bytes` bytes at `offset` of open file `fd` (0 bytes: to the
/// end) to its device now, without waiting: the disk gets busy while the save goes on (checksums,
/// metadata), and the final fsync has less left to wait for. Best effort, never throws: where
/// sync_file_range is missing or refused, the fsync does it all.
void start_writeback(int fd, long long offset = 0, long long bytes = 0) noexcept;

/// start_writeback() for the whole file `path`, opened for it.
void start_writeback(const std::string& path) noexcept;

/// Implemented by the writers that call start_writeback() as they write. A save whose caller
/// waits for each piece's write (bounded staging) turns it off: sync_file_range waits for room
/// in the device queue, so the piece writes would go at disk speed instead of page-cache speed.
class EarlyWriteback {
 public:
  virtual ~EarlyWriteback() = default;
  /// Not collective; before open(). On by default.
  void set_early_writeback(bool on) noexcept { m_early_writeback = on; }
  bool early_writeback() const noexcept { return m_early_writeback; }

 private:
  bool m_early_writeback = true;
};

/// "No such file or directory" and the like, for errno `err`.
std::string errno_text(int err);

/// Reads `bytes` bytes at `offset` of `fd` into `out`, in calls of at most 1 GiB (Linux caps one
/// call near 2 GiB), again after EINTR. Returns how many it read: fewer than asked at the end of
/// the file, or when a call fails, which sets `error` to its errno (else 0). The callers word
/// their own errors.
std::size_t read_at(int fd, void* out, std::size_t bytes, std::uint64_t offset, int& error) noexcept;

}  // namespace cairn::detail
