#include "storage/common/publish.hpp"

#include <cairn/error.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cstring>

namespace cairn::detail {

std::string errno_text(int err) {
  return std::strerror(err);
}

std::size_t read_at(int fd, void* out, std::size_t bytes, std::uint64_t offset, int& error) noexcept {
  constexpr std::size_t max_call = std::size_t{1} << 30;
  auto* p = static_cast<std::byte*>(out);
  std::size_t done = 0;
  error = 0;
  while (done < bytes) {
    const ssize_t n = ::pread(fd, p + done, std::min(bytes - done, max_call), static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) error = errno;
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  return done;
}

namespace {

[[noreturn]] void storage_fail(const std::string& what, const std::string& path, int err) {
  throw StorageError(what + " '" + path + "': " + errno_text(err));
}

bool exists(const std::string& path, struct stat& st) {
  return ::lstat(path.c_str(), &st) == 0;
}

void make_directories(const std::string& path) {
  if (path.empty()) return;
  struct stat st {};
  if (exists(path, st)) {
    if (!S_ISDIR(st.st_mode)) throw UsageError("'" + path + "' is not a directory");
    return;
  }
  const std::size_t slash = path.find_last_of('/');
  if (slash != std::string::npos && slash > 0) make_directories(path.substr(0, slash));
  if (::mkdir(path.c_str(), 0777) != 0 && errno != EEXIST) storage_fail("cannot create directory", path, errno);
}

// Swaps two paths atomically (Linux renameat2 RENAME_EXCHANGE). False when the system or the
// file system cannot, so the caller falls back to two renames.
bool exchange_paths(const std::string& a, const std::string& b) {
#if defined(__linux__) && defined(SYS_renameat2)
  constexpr unsigned rename_exchange = 2;  // RENAME_EXCHANGE from <linux/fs.h>
  if (::syscall(SYS_renameat2, AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), rename_exchange) == 0) return true;
  if (errno == ENOSYS || errno == EINVAL || errno == ENOTSUP) return false;
  storage_fail("cannot swap checkpoint into place", b, errno);
#else
  (void)a;
  (void)b;
  return false;
#endif
}

void write_marker(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) storage_fail("cannot create", path, errno);
  const std::string text = "Cairn checkpoint\n";
  const ssize_t written = ::write(fd, text.data(), text.size());
  const int err = errno;
  if (written != static_cast<ssize_t>(text.size()) || ::fsync(fd) != 0) {
    ::close(fd);
    storage_fail("cannot write", path, written < 0 ? err : errno ? errno : EIO);
  }
  ::close(fd);
}

}  // namespace

CheckpointPaths checkpoint_paths(const std::string& id) {
  std::string path = id;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  if (path.empty()) throw UsageError("the checkpoint id is empty");
  const std::size_t slash = path.find_last_of('/');
  const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  if (name.empty() || name == "." || name == "..")
    throw UsageError("checkpoint id '" + id + "' does not name a directory of its own");
  CheckpointPaths paths;
  paths.final_dir = path;
  paths.parent_dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  paths.partial_dir = paths.parent_dir + "/." + name + ".partial";
  return paths;
}

namespace {

void check_final_dir(const CheckpointPaths& paths, bool overwrite) {
  make_directories(paths.parent_dir);
  struct stat st {};
  if (exists(paths.final_dir, st)) {
    if (!S_ISDIR(st.st_mode))
      throw UsageError("checkpoint id '" + paths.final_dir + "' is an existing file, not a checkpoint directory");
    if (!overwrite)
      throw UsageError("checkpoint '" + paths.final_dir +
                       "' already exists; pass overwrite to replace it (it is kept until the new one is complete)");
    if (!exists(paths.final_dir + "/" + marker_file_name, st))
      throw UsageError("'" + paths.final_dir + "' exists and is not a Cairn checkpoint (no " +
                       std::string(marker_file_name) + " file); refusing to replace it");
  }
  if (::access(paths.parent_dir.c_str(), W_OK | X_OK) != 0)
    storage_fail("cannot write checkpoints into directory", paths.parent_dir, errno);
}

}  // namespace

void begin_checkpoint(const CheckpointPaths& paths, bool overwrite) {
  check_final_dir(paths, overwrite);
  struct stat st {};
  if (exists(paths.partial_dir, st)) remove_tree(paths.partial_dir);  // left by a save that never published
  if (::mkdir(paths.partial_dir.c_str(), 0777) != 0) storage_fail("cannot create directory", paths.partial_dir, errno);
}

void join_checkpoint(const CheckpointPaths& paths, bool overwrite) {
  check_final_dir(paths, overwrite);
  if (::mkdir(paths.partial_dir.c_str(), 0777) != 0 && errno != EEXIST)
    storage_fail("cannot create directory", paths.partial_dir, errno);
}

void keep_only(const std::string& dir, const std::vector<std::string>& keep) {
  DIR* stream = ::opendir(dir.c_str());
  if (stream == nullptr) storage_fail("cannot list directory", dir, errno);
  std::vector<std::string> doomed;
  while (const dirent* e = ::readdir(stream)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    if (std::find(keep.begin(), keep.end(), name) == keep.end()) doomed.push_back(name);
  }
  ::closedir(stream);
  for (const std::string& name : doomed) remove_tree(dir + "/" + name);
}

void publish_checkpoint(const CheckpointPaths& paths) {
  write_marker(paths.partial_dir + "/" + marker_file_name);
  fsync_path(paths.partial_dir);
  struct stat st {};
  if (exists(paths.final_dir, st)) {
    if (exchange_paths(paths.partial_dir, paths.final_dir)) {
      fsync_path(paths.parent_dir);
      discard_checkpoint(paths);  // now holds the replaced checkpoint; best effort
      return;
    }
    // No atomic swap: move the old one aside first, so a crash leaves it recoverable.
    const std::string old_dir = paths.partial_dir.substr(0, paths.partial_dir.size() - 8) + ".old";
    if (exists(old_dir, st)) remove_tree(old_dir);
    if (::rename(paths.final_dir.c_str(), old_dir.c_str()) != 0)
      storage_fail("cannot move the replaced checkpoint aside", paths.final_dir, errno);
    if (::rename(paths.partial_dir.c_str(), paths.final_dir.c_str()) != 0)
      storage_fail("cannot publish checkpoint", paths.final_dir, errno);
    fsync_path(paths.parent_dir);
    try {
      remove_tree(old_dir);
    } catch (const Error&) {
      // The new checkpoint is published; a leftover '.old' directory is removed by the next save.
    }
    return;
  }
  if (::rename(paths.partial_dir.c_str(), paths.final_dir.c_str()) != 0)
    storage_fail("cannot publish checkpoint", paths.final_dir, errno);
  fsync_path(paths.parent_dir);
}

void discard_checkpoint(const CheckpointPaths& paths) noexcept {
  try {
    struct stat st {};
    if (exists(paths.partial_dir, st)) remove_tree(paths.partial_dir);
  } catch (...) {
    // Best effort: the next save removes what is left.
  }
}

void remove_tree(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return;
    storage_fail("cannot inspect", path, errno);
  }
  if (S_ISDIR(st.st_mode)) {
    DIR* dir = ::opendir(path.c_str());
    if (dir == nullptr) storage_fail("cannot open directory", path, errno);
    while (const dirent* child = ::readdir(dir)) {
      const std::string name = child->d_name;
      if (name == "." || name == "..") continue;
      try {
        remove_tree(path + "/" + name);
      } catch (...) {
        ::closedir(dir);
        throw;
      }
    }
    ::closedir(dir);
    if (::rmdir(path.c_str()) != 0) storage_fail("cannot remove directory", path, errno);
  } else if (::unlink(path.c_str()) != 0) {
    storage_fail("cannot remove", path, errno);
  }
}

void reserve_space(const std::string& path, long long bytes) {
#if defined(__linux__)
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) storage_fail("cannot open", path, errno);
  constexpr int keep_size = 0x01;  // FALLOC_FL_KEEP_SIZE
  if (::fallocate(fd, keep_size, 0, static_cast<off_t>(bytes)) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EOPNOTSUPP || err == ENOSYS || err == EINVAL) return;  // cannot reserve here
    throw StorageError("cannot reserve " + std::to_string(bytes) + " bytes for '" + path + "': " + errno_text(err));
  }
  ::close(fd);
#else
  (void)path;
  (void)bytes;
#endif
}

void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) storage_fail("cannot open for fsync", path, errno);
  if (::fsync(fd) != 0 && errno != EINVAL) {
    const int err = errno;
    ::close(fd);
    storage_fail("fsync failed on", path, err);
  }
  ::close(fd);
}

void start_writeback(int fd, long long offset, long long bytes) noexcept {
#if defined(__linux__) && defined(SYNC_FILE_RANGE_WRITE)
  (void)::sync_file_range(fd, static_cast<off_t>(offset), static_cast<off_t>(bytes), SYNC_FILE_RANGE_WRITE);
#else
  (void)fd;
  (void)offset;
  (void)bytes;
#endif
}

void start_writeback(const std::string& path) noexcept {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  start_writeback(fd);
  ::close(fd);
}

}  // namespace cairn::detail
