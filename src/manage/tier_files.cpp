#include "manage/tier_files.hpp"

#include <cairn/error.hpp>

#include "core/checksum.hpp"
#include "storage/common/publish.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <thread>

namespace cairn::detail::tier {

namespace {

constexpr std::size_t copy_block_bytes = std::size_t{4} << 20;

[[noreturn]] void fail(const std::string& what, const std::string& path, int err) {
  throw StorageError(what + " '" + path + "': " + errno_text(err));
}

// Closes a file descriptor when it goes.
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

std::size_t read_some(int fd, std::byte* out, std::size_t bytes, std::uint64_t offset, const std::string& path) {
  int error = 0;
  const std::size_t done = read_at(fd, out, bytes, offset, error);
  if (error != 0) fail("cannot read", path, error);
  return done;
}

void write_all(int fd, const std::byte* data, std::size_t bytes, std::uint64_t offset, const std::string& path) {
  std::size_t done = 0;
  while (done < bytes) {
    const ssize_t n = ::pwrite(fd, data + done, bytes - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("cannot write", path, n < 0 ? errno : EIO);
    done += static_cast<std::size_t>(n);
  }
}

}  // namespace

std::string format_record(const TierRecord& record) {
  std::ostringstream out;
  out << "cairn-tier 1\nworld " << record.world << "\n";
  for (std::size_t r = 0; r < record.ranks.size(); ++r) {
    const RankRecord& rr = record.ranks[r];
    char sum[32];
    std::snprintf(sum, sizeof sum, "%016llx", static_cast<unsigned long long>(rr.checksum));
    out << r << ' ' << rr.node << ' ' << rr.size << ' ' << sum << ' ' << rr.host << '\n';
  }
  return out.str();
}

TierRecord parse_record(const std::vector<std::byte>& bytes, const std::string& dir) {
  const std::string text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  std::istringstream in(text);
  auto corrupt = [&] {
    return CorruptCheckpointError("'" + dir + "/" + record_file_name + "' is damaged or not a tier record");
  };
  std::string word;
  int version = 0;
  TierRecord record;
  if (!(in >> word >> version) || word != "cairn-tier" || version != 1) throw corrupt();
  if (!(in >> word >> record.world) || word != "world" || record.world < 1 || record.world > (1 << 24)) throw corrupt();
  for (int r = 0; r < record.world; ++r) {
    int rank = -1;
    RankRecord rr;
    std::string sum;
    if (!(in >> rank >> rr.node >> rr.size >> sum >> rr.host) || rank != r) throw corrupt();
    rr.checksum = std::strtoull(sum.c_str(), nullptr, 16);
    record.ranks.push_back(rr);
  }
  return record;
}

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "unknown";
  std::string host = name;
  std::replace(host.begin(), host.end(), ' ', '_');
  return host.empty() ? "unknown" : host;
}

void make_directories(const std::string& dir) {
  if (dir.empty() || exists(dir)) return;
  const std::size_t slash = dir.find_last_of('/');
  if (slash != std::string::npos && slash > 0) make_directories(dir.substr(0, slash));
  if (::mkdir(dir.c_str(), 0777) != 0 && errno != EEXIST) fail("cannot create directory", dir, errno);
}

std::vector<std::byte> read_whole(const std::string& path) {
  Fd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (f.fd < 0) fail("cannot open", path, errno);
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) fail("cannot inspect", path, errno);
  std::vector<std::byte> bytes(static_cast<std::size_t>(st.st_size));
  bytes.resize(read_some(f.fd, bytes.data(), bytes.size(), 0, path));
  return bytes;
}

std::uint64_t file_size(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail("cannot inspect", path, errno);
  return static_cast<std::uint64_t>(st.st_size);
}

std::uint64_t file_checksum(const std::string& path) {
  Fd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (f.fd < 0) fail("cannot open", path, errno);
  std::vector<std::byte> block(copy_block_bytes);
  Checksummer sum;
  std::uint64_t at = 0;
  for (;;) {
    const std::size_t n = read_some(f.fd, block.data(), block.size(), at, path);
    if (n == 0) break;
    sum.update(block.data(), n);
    at += n;
  }
  return sum.digest();
}

void write_file(const std::string& path, const std::vector<std::byte>& bytes) {
  const std::string temp = path + ".tmp";
  {
    Fd f(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (f.fd < 0) fail("cannot create", temp, errno);
    write_all(f.fd, bytes.data(), bytes.size(), 0, temp);
    if (::fsync(f.fd) != 0) fail("cannot sync", temp, errno);
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) fail("cannot rename into", path, errno);
}

void copy_file(const std::string& from, const std::string& to, double bytes_per_second) {
  Fd in(::open(from.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.fd < 0) fail("cannot open", from, errno);
  Fd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (out.fd < 0) fail("cannot create", to, errno);
  std::vector<std::byte> block(copy_block_bytes);
  const auto start = std::chrono::steady_clock::now();
  std::uint64_t at = 0;
  for (;;) {
    const std::size_t n = read_some(in.fd, block.data(), block.size(), at, from);
    if (n == 0) break;
    write_all(out.fd, block.data(), n, at, to);
    at += n;
    // Keep to the rate on average: the application keeps the memory bandwidth and the network.
    if (bytes_per_second > 0)
      std::this_thread::sleep_until(start +
                                    std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                        std::chrono::duration<double>(static_cast<double>(at) / bytes_per_second)));
  }
  if (::fsync(out.fd) != 0) fail("cannot sync", to, errno);
}

}  // namespace cairn::detail::tier
