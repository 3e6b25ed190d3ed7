// Faults in a run that already has a good checkpoint, at 1 to 4 ranks: an I/O error on one rank, a
// full disk (a real tmpfs where one can be mounted, injected ENOSPC always), missing directories, a
// permission change mid-run, data files deleted or truncated, the publication marker deleted, one
// byte flipped, damaged metadata, a format version from the future. Each must give a clear error,
// the same on every rank, naming what and where; publish nothing; and leave the earlier checkpoint
// loadable with the right bytes. A hung rank fails the test by its ctest timeout.
//
// At the end rank 0 prints a tally: faults injected, checkpoints damaged and how many of those were
// detected (must be all), and earlier checkpoints lost (must be none).
#include "test_support.hpp"

#include <hdf5.h>
#include <xxhash.h>

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace cairn;
using namespace cairn::test;
namespace fs = std::filesystem;

namespace {

// ---------------------------------------------------------------------------------------------
// The tally reported at the end.

struct Tally {
  int faults = 0;           // every fault injected, of any kind
  int damaged = 0;          // published checkpoints damaged or made unreadable
  int detected = 0;         // ... of which every rank's load failed and latest()/restore skipped
  int earlier_checked = 0;  // checks that an earlier checkpoint is intact
  int earlier_lost = 0;     // ... that failed
};

Tally& tally() {
  static Tally t;
  return t;
}

// Counts one published checkpoint damaged (or made unreadable), and whether that was detected.
bool record_damage(bool detected) {
  ++tally().faults;
  ++tally().damaged;
  if (detected) ++tally().detected;
  return detected;
}

class TallyReport : public ::testing::Environment {
 public:
  void TearDown() override {
    const Tally& t = tally();
    if (world_rank() == 0)
      std::printf(
          "[faults] %d rank(s): %d faults injected; %d checkpoints damaged or made unreadable, %d detected; "
          "earlier checkpoints checked %d times, %d lost\n",
          world_size(), t.faults, t.damaged, t.detected, t.earlier_checked, t.earlier_lost);
    EXPECT_EQ(t.earlier_lost, 0) << "an earlier checkpoint was harmed";
    EXPECT_EQ(t.detected, t.damaged) << "damage went undetected";
  }
};

[[maybe_unused]] ::testing::Environment* const tally_report = ::testing::AddGlobalTestEnvironment(new TallyReport);

// ---------------------------------------------------------------------------------------------
// The state: a 2-D float64 field in row blocks, a 1-D int64 array, and replicated scalars. Every
// value is a function of the step and the global index, so any decomposition can check it.

Extents grid_shape() {
  return {13 * static_cast<std::int64_t>(world_size()) + 5, 24};
}
Extents counts_shape() {
  return {11 * static_cast<std::int64_t>(world_size()) + 3};
}

double grid_value(std::int64_t step, std::int64_t i, std::int64_t j) {
  return static_cast<double>(step) * 1.0e6 + static_cast<double>(i) * 100.0 + static_cast<double>(j) + 0.125;
}
std::int64_t count_value(std::int64_t step, std::int64_t i) {
  return step * 1000000007LL + i * 31 + 5;
}
double time_of(std::int64_t step) {
  return static_cast<double>(step) * 0.5 + 0.25;
}

std::size_t volume(const Block& b) {
  std::int64_t n = 1;
  for (std::int64_t e : b.shape) n *= e;
  return static_cast<std::size_t>(n);
}

struct Fields {
  explicit Fields(Decomposition kind)
      : grid_blocks(decompose(grid_shape(), world_size(), world_rank(), kind)),
        count_blocks(decompose(counts_shape(), world_size(), world_rank(), kind)),
        grid(grid_blocks.size()),
        counts(count_blocks.size()) {
    ArrayEntry& g = state.add_array("grid/temperature", DType::Float64, grid_shape());
    for (std::size_t b = 0; b < grid_blocks.size(); ++b) {
      grid[b].resize(volume(grid_blocks[b]));
      g.add_chunk(grid_blocks[b].offset, grid_blocks[b].shape, grid[b].data());
    }
    ArrayEntry& c = state.add_array("counts", DType::Int64, counts_shape());
    for (std::size_t b = 0; b < count_blocks.size(); ++b) {
      counts[b].resize(volume(count_blocks[b]));
      c.add_chunk(count_blocks[b].offset, count_blocks[b].shape, counts[b].data());
    }
    state.add_scalar("time", time);
    state.add_scalar("step", step);
  }

  void fill(std::int64_t s) {
    for (std::size_t b = 0; b < grid_blocks.size(); ++b)
      for_each_element(grid_blocks[b], [&](const Extents& l, std::int64_t pos) {
        grid[b][static_cast<std::size_t>(pos)] =
            grid_value(s, grid_blocks[b].offset[0] + l[0], grid_blocks[b].offset[1] + l[1]);
      });
    for (std::size_t b = 0; b < count_blocks.size(); ++b)
      for_each_element(count_blocks[b], [&](const Extents& l, std::int64_t pos) {
        counts[b][static_cast<std::size_t>(pos)] = count_value(s, count_blocks[b].offset[0] + l[0]);
      });
    time = time_of(s);
    step = s;
  }

  void clear() {
    for (auto& g : grid) std::fill(g.begin(), g.end(), -1.0);
    for (auto& c : counts) std::fill(c.begin(), c.end(), std::int64_t{-1});
    time = -1.0;
    step = -1;
  }

  // Elements (and scalars) on this rank that differ from step `s`'s values.
  std::int64_t mismatches(std::int64_t s) const {
    std::int64_t bad = 0;
    for (std::size_t b = 0; b < grid_blocks.size(); ++b)
      for_each_element(grid_blocks[b], [&](const Extents& l, std::int64_t pos) {
        if (grid[b][static_cast<std::size_t>(pos)] !=
            grid_value(s, grid_blocks[b].offset[0] + l[0], grid_blocks[b].offset[1] + l[1]))
          ++bad;
      });
    for (std::size_t b = 0; b < count_blocks.size(); ++b)
      for_each_element(count_blocks[b], [&](const Extents& l, std::int64_t pos) {
        if (counts[b][static_cast<std::size_t>(pos)] != count_value(s, count_blocks[b].offset[0] + l[0])) ++bad;
      });
    if (time != time_of(s)) ++bad;
    if (step != s) ++bad;
    return bad;
  }

  // True when clear() left everything as it was.
  bool untouched() const {
    bool same = time == -1.0 && step == -1;
    for (const auto& g : grid)
      for (double v : g) same = same && v == -1.0;
    for (const auto& c : counts)
      for (std::int64_t v : c) same = same && v == -1;
    return same;
  }

  std::vector<Block> grid_blocks;
  std::vector<Block> count_blocks;
  std::vector<std::vector<double>> grid;
  std::vector<std::vector<std::int64_t>> counts;
  double time = 0;
  std::int64_t step = 0;
  State state;
};

// Collective: mismatches summed over the ranks.
std::int64_t total_mismatches(const Fields& fields, std::int64_t s) {
  std::int64_t local = fields.mismatches(s);
  std::int64_t total = 0;
  MPI_Allreduce(&local, &total, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
  return total;
}

// ---------------------------------------------------------------------------------------------
// Errors on every rank.

std::string broadcast_string(std::string text) {
  std::uint64_t n = text.size();
  MPI_Bcast(&n, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
  text.resize(static_cast<std::size_t>(n));
  MPI_Bcast(text.data(), static_cast<int>(n), MPI_CHAR, 0, MPI_COMM_WORLD);
  return text;
}

// The part of an agreed error every rank shares: a rank that failed itself, but was not the one
// reported, adds "; on this rank <r>: ..." after it.
std::string shared_part(const std::string& message) {
  const std::size_t own = message.find("; on this rank ");
  return own == std::string::npos ? message : message.substr(0, own);
}

// No rank may hang: while it lives, a call into Cairn that has not returned after `limit` ends
// this process with a message naming it (and mpiexec then ends the job), well before the ctest
// timeout, so that the tests after it still tell their story in the next run.
class HangGuard {
 public:
  explicit HangGuard(std::string what, std::chrono::seconds limit = std::chrono::seconds(60))
      : m_rank(world_rank()),
        m_what(std::move(what)),
        m_limit(limit),
        m_fault(std::getenv("CAIRN_FAULT") ? std::getenv("CAIRN_FAULT") : ""),
        m_watchdog([this] { watch(); }) {}
  ~HangGuard() {
    {
      std::lock_guard<std::mutex> lock(m_mutex);
      m_done = true;
    }
    m_wake.notify_all();
    m_watchdog.join();
  }
  HangGuard(const HangGuard&) = delete;
  HangGuard& operator=(const HangGuard&) = delete;

 private:
  void watch() {
    std::unique_lock<std::mutex> lock(m_mutex);
    if (m_wake.wait_for(lock, m_limit, [this] { return m_done; })) return;
    std::fprintf(stderr, "[rank %d] HANG: %s did not return within %lld s (CAIRN_FAULT='%s')\n", m_rank, m_what.c_str(),
                 static_cast<long long>(m_limit.count()), m_fault.c_str());
    std::fflush(stderr);
    std::_Exit(3);
  }

  int m_rank;
  std::string m_what;
  std::chrono::seconds m_limit;
  std::string m_fault;
  std::mutex m_mutex;
  std::condition_variable m_wake;
  bool m_done = false;
  std::thread m_watchdog;  // last: starts once the members above exist
};

struct Outcome {
  bool everywhere = false;  // every rank threw E, naming every needle, with the same message
  std::string message;      // this rank's
};

// Collective: runs `body`, which must throw E on every rank with each of `needles` in its message
// and the same message on every rank.
template <class E, class Body>
Outcome expect_everywhere(Body&& body, const std::vector<std::string>& needles) {
  const int rank = world_rank();
  Outcome out;
  bool threw = false;
  bool right = false;
  try {
    HangGuard guard("a call expected to fail naming '" + needles.front() + "'");
    body();
  } catch (const E& e) {
    threw = right = true;
    out.message = e.what();
  } catch (const std::exception& e) {
    threw = true;
    out.message = e.what();
    ADD_FAILURE() << "rank " << rank << ": wrong error type: " << out.message;
  }
  if (!threw) ADD_FAILURE() << "rank " << rank << ": no error; expected one naming '" << needles.front() << "'";
  for (const std::string& needle : needles)
    if (right && out.message.find(needle) == std::string::npos) {
      right = false;
      ADD_FAILURE() << "rank " << rank << ": the message does not name '" << needle << "': " << out.message;
    }
  const std::string first = broadcast_string(shared_part(out.message));
  if (right && shared_part(out.message) != first) {
    right = false;
    ADD_FAILURE() << "rank " << rank << ": a different message than rank 0's (" << first << "): " << out.message;
  }
  const bool all_threw = all_ranks(threw);
  const bool all_right = all_ranks(right);
  EXPECT_TRUE(all_threw) << "not every rank threw";
  EXPECT_TRUE(all_right) << "not every rank threw the expected error";
  out.everywhere = all_threw && all_right;
  return out;
}

// Collective: runs `body`, which must succeed on every rank.
template <class Body>
bool expect_success(Body&& body, const std::string& what) {
  bool ok = true;
  try {
    HangGuard guard(what);
    body();
  } catch (const std::exception& e) {
    ok = false;
    ADD_FAILURE() << "rank " << world_rank() << ": " << what << " failed: " << e.what();
  }
  return all_ranks(ok);
}

// ---------------------------------------------------------------------------------------------
// Files.

// Collective: runs `body` on rank 0 alone (file edits); every rank gets its result.
bool on_rank0(const std::function<bool()>& body) {
  int ok = 1;
  if (world_rank() == 0) {
    try {
      ok = body() ? 1 : 0;
    } catch (const std::exception& e) {
      ADD_FAILURE() << e.what();
      ok = 0;
    }
  }
  MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
  return ok == 1;
}

std::string rank_file(int rank) {
  char name[32];
  std::snprintf(name, sizeof name, "rank_%06d.h5", rank);
  return name;
}

bool remove_file(const std::string& path) {
  std::error_code ec;
  const bool removed = fs::remove(path, ec);
  if (!removed) ADD_FAILURE() << "cannot remove " << path << ": " << ec.message();
  return removed;
}

bool truncate_file(const std::string& path, off_t size) {
  if (::truncate(path.c_str(), size) == 0) return true;
  ADD_FAILURE() << "cannot truncate " << path << ": " << std::strerror(errno);
  return false;
}

// Flips one bit of byte `byte` of the data of dataset `name` (contiguous) in HDF5 file `file`.
bool flip_byte(const std::string& file, const std::string& name, std::int64_t byte) {
  haddr_t base = HADDR_UNDEF;
  hsize_t storage = 0;
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) {
    ADD_FAILURE() << "cannot open " << file;
    return false;
  }
  const hid_t d = H5Dopen2(f, name.c_str(), H5P_DEFAULT);
  if (d >= 0) {
    base = H5Dget_offset(d);
    storage = H5Dget_storage_size(d);
    H5Dclose(d);
  }
  H5Fclose(f);
  if (base == HADDR_UNDEF || byte < 0 || static_cast<hsize_t>(byte) >= storage) {
    ADD_FAILURE() << "no byte " << byte << " in the data of '" << name << "' in " << file;
    return false;
  }
  const int fd = ::open(file.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  const auto at = static_cast<off_t>(base) + static_cast<off_t>(byte);
  unsigned char c = 0;
  bool ok = ::pread(fd, &c, 1, at) == 1;
  c = static_cast<unsigned char>(c ^ 0x10U);
  ok = ok && ::pwrite(fd, &c, 1, at) == 1 && ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

// The dataset under /_cairn/chunks of rank file `file` that holds a chunk of shape `shape`.
std::string chunk_dataset(const std::string& file, const Extents& shape) {
  std::string found;
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) return found;
  for (int k = 0; found.empty(); ++k) {
    const std::string name = "/_cairn/chunks/" + std::to_string(k);
    if (H5Lexists(f, name.c_str(), H5P_DEFAULT) <= 0) break;
    const hid_t d = H5Dopen2(f, name.c_str(), H5P_DEFAULT);
    const hid_t space = H5Dget_space(d);
    std::vector<hsize_t> dims(static_cast<std::size_t>(std::max(H5Sget_simple_extent_ndims(space), 0)));
    H5Sget_simple_extent_dims(space, dims.data(), nullptr);
    if (Extents(dims.begin(), dims.end()) == shape) found = name;
    H5Sclose(space);
    H5Dclose(d);
  }
  H5Fclose(f);
  if (found.empty()) ADD_FAILURE() << "no chunk dataset of that shape in " << file;
  return found;
}

// Rewrites the metadata blob of `file` as a newer Cairn would: the format version (after the
// 8-byte magic) raised by one, and the trailing xxh3-64 of the blob recomputed, so that the blob
// is intact and only its version is new.
bool raise_format_version(const std::string& file) {
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  if (f < 0) return false;
  bool ok = false;
  const hid_t d = H5Dopen2(f, "/_cairn/metadata", H5P_DEFAULT);
  if (d >= 0) {
    const hid_t space = H5Dget_space(d);
    const auto n = static_cast<std::size_t>(H5Sget_simple_extent_npoints(space));
    H5Sclose(space);
    std::vector<unsigned char> blob(n);
    std::uint32_t version = 0;
    if (n > 20 && H5Dread(d, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, blob.data()) >= 0) {
      std::memcpy(&version, blob.data() + 8, sizeof version);
      EXPECT_EQ(version, cairn::format_version) << file;
      const std::uint32_t future = cairn::format_version + 1;
      std::memcpy(blob.data() + 8, &future, sizeof future);
      const std::uint64_t sum = XXH3_64bits(blob.data(), n - 8);
      std::memcpy(blob.data() + n - 8, &sum, sizeof sum);
      ok = H5Dwrite(d, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, blob.data()) >= 0;
    }
    H5Dclose(d);
  }
  return H5Fclose(f) >= 0 && ok;
}

// Names under `dir`, or none when it is missing.
std::vector<std::string> names_in(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& item : fs::directory_iterator(dir, ec)) names.push_back(item.path().filename().string());
  return names;
}

// ---------------------------------------------------------------------------------------------
// Checkpoints.

std::vector<std::int64_t> steps_of(CheckpointManager& manager) {
  std::vector<std::int64_t> steps;
  for (const CheckpointInfo& info : manager.list()) steps.push_back(info.step);
  return steps;
}

std::optional<std::int64_t> step_of(const std::optional<CheckpointInfo>& info) {
  return info ? std::optional<std::int64_t>(info->step) : std::nullopt;
}

// Collective. After a failed save: the manager lists `published` (as before the save), and `root`
// holds those checkpoints and nothing else (no new directory, no partial directory left behind).
void expect_nothing_published(CheckpointManager& manager, const std::string& root,
                              const std::vector<std::int64_t>& published) {
  EXPECT_EQ(steps_of(manager), published);
  std::vector<std::string> expected;
  for (std::int64_t s : published) expected.push_back(manager.id_of(s).substr(root.size() + 1));
  EXPECT_TRUE(on_rank0([&] {
    std::vector<std::string> names = names_in(root);
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, expected) << "in " << root;
    return names == expected;
  }));
}

// Collective. The checkpoint of `step` loads with step `step`'s bytes on every rank, on another
// decomposition than it was saved with, and verifies.
void expect_intact(CheckpointManager& manager, std::int64_t step) {
  ++tally().earlier_checked;
  Fields back(Decomposition::TwoPerRank);
  back.clear();
  bool ok = expect_success([&] { manager.checkpointer().load(back.state, manager.id_of(step)); },
                           "loading the earlier checkpoint of step " + std::to_string(step));
  const std::int64_t wrong = total_mismatches(back, step);
  EXPECT_EQ(wrong, 0) << "elements of step " << step << " changed";
  VerifyReport report;
  ok = expect_success([&] { report = manager.verify(step); }, "verifying step " + std::to_string(step)) && ok;
  EXPECT_TRUE(report.ok()) << "step " << step << ": " << report.bad_chunks.size() << " bad chunks";
  EXPECT_GT(report.chunks_checked, 0);
  if (!ok || wrong != 0 || !report.ok() || report.chunks_checked == 0) ++tally().earlier_lost;
}

// Sets CAIRN_FAULT for its lifetime, with no save in flight (the worker reads the variable).
class ScopedFault {
 public:
  ScopedFault(CheckpointManager& manager, const std::string& spec) : m_manager(manager) {
    m_manager.wait();
    ::setenv("CAIRN_FAULT", spec.c_str(), 1);
    ++tally().faults;
  }
  ~ScopedFault() {
    m_manager.wait();
    ::unsetenv("CAIRN_FAULT");
  }
  ScopedFault(const ScopedFault&) = delete;
  ScopedFault& operator=(const ScopedFault&) = delete;

 private:
  CheckpointManager& m_manager;
};

// Runs this process as user nobody while it lives, when it runs as root (root ignores permission
// bits). seteuid applies to every thread of the process (glibc), the checkpointer's worker too.
class Unprivileged {
 public:
  Unprivileged() : m_was_root(::geteuid() == 0) {
    if (m_was_root) m_dropped = ::seteuid(65534) == 0;
  }
  ~Unprivileged() {
    if (m_dropped && ::seteuid(0) != 0) std::abort();  // the rest of the suite would run as nobody
  }
  Unprivileged(const Unprivileged&) = delete;
  Unprivileged& operator=(const Unprivileged&) = delete;
  bool ok() const { return !m_was_root || m_dropped; }

 private:
  bool m_was_root;
  bool m_dropped = false;
};

// A tmpfs of `size` mounted at `dir` by rank 0 while it lives, where this process may mount one.
class SmallDisk {
 public:
  SmallDisk(const std::string& dir, const char* size) : m_dir(dir) {
    int mounted = 0;
    if (world_rank() == 0) {
      fs::create_directories(dir);
      mounted = ::mount("tmpfs", dir.c_str(), "tmpfs", 0, size) == 0 ? 1 : 0;
    }
    MPI_Bcast(&mounted, 1, MPI_INT, 0, MPI_COMM_WORLD);
    m_mounted = mounted == 1;
  }
  ~SmallDisk() {
    MPI_Barrier(MPI_COMM_WORLD);
    if (m_mounted && world_rank() == 0) ::umount2(m_dir.c_str(), MNT_DETACH);
    MPI_Barrier(MPI_COMM_WORLD);
  }
  SmallDisk(const SmallDisk&) = delete;
  SmallDisk& operator=(const SmallDisk&) = delete;
  bool mounted() const { return m_mounted; }

 private:
  std::string m_dir;
  bool m_mounted = false;
};

// Fills the file system of `dir` with one file until it is full; returns the file's path.
std::string fill_disk(const std::string& dir) {
  const std::string path = dir + "/filler";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return path;
  std::vector<char> block(4096, 'x');
  while (::write(fd, block.data(), block.size()) > 0) {
  }
  ::close(fd);
  return path;
}

// The region string Cairn's messages use: "[a:b, c:d]".
std::string region_text(const Block& b) {
  std::string s = "[";
  for (std::size_t d = 0; d < b.offset.size(); ++d) {
    if (d) s += ", ";
    s += std::to_string(b.offset[d]) + ":" + std::to_string(b.offset[d] + b.shape[d]);
  }
  return s + "]";
}

// ---------------------------------------------------------------------------------------------

class Faults : public ::testing::Test {
 protected:
  void SetUp() override {
    root = dir / "run";
    manager = std::make_unique<CheckpointManager>(MPI_COMM_WORLD, root);
    fields.fill(1);
    manager->save(fields.state, 1);
    fields.fill(2);
  }

  // A manager of the same root whose saves use no collectives: one file per rank.
  CheckpointManager& rank_files_manager() {
    if (!rank_files) {
      ManagerOptions options;
      options.save.use_collectives = false;
      rank_files = std::make_unique<CheckpointManager>(MPI_COMM_WORLD, root, options);
    }
    return *rank_files;
  }

  int last() const { return world_size() - 1; }
  std::string id(std::int64_t step) const { return manager->id_of(step); }

  // Collective. Step 2 has just been damaged. A load of it fails on every rank with E naming each
  // of `needles`; latest() skips it (the fast check too when `fast_sees_it`), restore_or_start
  // falls back to step 1 with its bytes, and step 1 is intact. Returns whether all of that held.
  template <class E>
  bool expect_detected(const std::vector<std::string>& needles, bool fast_sees_it = true) {
    Fields target(Decomposition::TwoPerRank);
    target.clear();
    const Outcome load = expect_everywhere<E>([&] { manager->checkpointer().load(target.state, id(2)); }, needles);
    const std::optional<std::int64_t> fast = step_of(manager->latest(CheckMode::Fast));
    const std::optional<std::int64_t> deep = step_of(manager->latest(CheckMode::Deep));
    EXPECT_EQ(fast, std::optional<std::int64_t>(fast_sees_it ? 1 : 2));
    EXPECT_EQ(deep, std::optional<std::int64_t>(1));
    Fields restored(Decomposition::Grid);
    restored.clear();
    std::optional<std::int64_t> from;
    expect_success([&] { from = manager->restore_or_start(restored.state); }, "restore_or_start");
    EXPECT_EQ(from, std::optional<std::int64_t>(1));
    const std::int64_t wrong = total_mismatches(restored, 1);
    EXPECT_EQ(wrong, 0) << "restore_or_start did not bring back step 1's bytes";
    expect_intact(*manager, 1);
    return load.everywhere && deep == std::optional<std::int64_t>(1) &&
           (!fast_sees_it || fast == std::optional<std::int64_t>(1)) && from == std::optional<std::int64_t>(1) &&
           wrong == 0;
  }

  TempDir dir;
  std::string root;
  Fields fields{Decomposition::Slabs};
  std::unique_ptr<CheckpointManager> manager;
  std::unique_ptr<CheckpointManager> rank_files;
};

// ---------------------------------------------------------------------------------------------
// I/O errors on one rank.

TEST_F(Faults, AnIOErrorOnTheLastRankFailsTheSaveOnEveryRankAndPublishesNothing) {
  const std::string who = "failed on rank " + std::to_string(last());
  for (const char* step : {"open", "write", "metadata"}) {
    {
      ScopedFault fault(*manager, std::to_string(last()) + ":" + step);
      expect_everywhere<StorageError>(
          [&] { manager->save(fields.state, 2); },
          {"save of checkpoint '" + id(2) + "'", who, std::string("injected fault (CAIRN_FAULT) in step ") + step});
    }
    expect_nothing_published(*manager, root, {1});
    expect_intact(*manager, 1);
  }
  // The asynchronous form: async_save returns, the future's get() throws on every rank.
  {
    ScopedFault fault(*manager, std::to_string(last()) + ":write");
    SaveFuture future = manager->async_save(fields.state, 2);
    expect_everywhere<StorageError>([&] { future.get(); }, {id(2), who, "in step write"});
  }
  expect_nothing_published(*manager, root, {1});
  // Every rank failing at once: the lowest is named, and how many others failed.
  {
    ScopedFault fault(*manager, "*:write");
    std::vector<std::string> needles{"failed on rank 0", "in step write"};
    if (world_size() > 1) needles.push_back("(and on " + std::to_string(world_size() - 1) + " other rank(s))");
    expect_everywhere<StorageError>([&] { manager->save(fields.state, 2); }, needles);
  }
  expect_nothing_published(*manager, root, {1});
  expect_intact(*manager, 1);
  // The fault gone, the same save succeeds.
  EXPECT_TRUE(expect_success([&] { manager->save(fields.state, 2); }, "saving after the faults"));
  EXPECT_EQ(steps_of(*manager), (std::vector<std::int64_t>{1, 2}));
  expect_intact(*manager, 2);
}

TEST_F(Faults, AnIOErrorOnTheLastRankFailsASaveWithoutCollectivesOnEveryRank) {
  CheckpointManager& own_files = rank_files_manager();
  for (const char* step : {"write", "metadata"}) {
    {
      ScopedFault fault(own_files, std::to_string(last()) + ":" + step);
      expect_everywhere<StorageError>([&] { own_files.save(fields.state, 2); },
                                      {id(2), "failed on rank " + std::to_string(last()),
                                       std::string("injected fault (CAIRN_FAULT) in step ") + step});
    }
    expect_nothing_published(own_files, root, {1});
    expect_intact(*manager, 1);
  }
  EXPECT_TRUE(expect_success([&] { own_files.save(fields.state, 2); }, "saving after the faults"));
  expect_intact(*manager, 2);
}

TEST_F(Faults, AnIOErrorOnTheLastRankFailsTheLoadOnEveryRank) {
  for (const char* step : {"load-open", "load-read"}) {
    ScopedFault fault(*manager, std::to_string(last()) + ":" + step);
    Fields target(Decomposition::Slabs);
    expect_everywhere<StorageError>([&] { manager->checkpointer().load(target.state, id(1)); },
                                    {"load of checkpoint '" + id(1) + "'", "failed on rank " + std::to_string(last()),
                                     std::string("in step ") + step});
  }
  EXPECT_EQ(steps_of(*manager), (std::vector<std::int64_t>{1}));
  expect_intact(*manager, 1);
}

// ---------------------------------------------------------------------------------------------
// A full disk.

TEST_F(Faults, AFullDiskFailsTheSaveOnEveryRankAndKeepsTheEarlierCheckpoint) {
  // A real full file system where this process may mount a tmpfs (root on Linux). 1.5 MiB holds
  // one checkpoint of this state with the room Cairn reserves for HDF5's metadata, not two.
  {
    SmallDisk disk(dir / "small", "size=1536k");
    if (disk.mounted()) {
      const std::string small_root = dir / "small/run";
      CheckpointManager on_disk(MPI_COMM_WORLD, small_root);
      fields.fill(1);
      ASSERT_TRUE(expect_success([&] { on_disk.save(fields.state, 1); }, "the first save on the small disk"));
      fields.fill(2);
      ++tally().faults;
      expect_everywhere<StorageError>([&] { on_disk.save(fields.state, 2); },
                                      {"save of checkpoint '" + on_disk.id_of(2) + "'", "No space left on device"});
      expect_nothing_published(on_disk, small_root, {1});
      expect_intact(on_disk, 1);

      // Full to the last block: saves without collectives (one file per rank, no reservation)
      // fail in the middle of their writes.
      std::string filler;
      ASSERT_TRUE(on_rank0([&] {
        filler = fill_disk(dir / "small");
        return fs::exists(filler);
      }));
      ManagerOptions per_rank;
      per_rank.save.use_collectives = false;
      CheckpointManager on_disk_per_rank(MPI_COMM_WORLD, small_root, per_rank);
      ++tally().faults;
      expect_everywhere<StorageError>([&] { on_disk_per_rank.save(fields.state, 2); },
                                      {"save of checkpoint '" + on_disk.id_of(2) + "'", "No space left on device"});
      expect_nothing_published(on_disk, small_root, {1});
      expect_intact(on_disk, 1);

      // Room again: the next save goes through.
      ASSERT_TRUE(on_rank0([&] { return remove_file(filler); }));
      EXPECT_TRUE(expect_success([&] { on_disk_per_rank.save(fields.state, 2); }, "a save once there is room"));
      EXPECT_EQ(steps_of(on_disk), (std::vector<std::int64_t>{1, 2}));
      expect_intact(on_disk, 2);
    } else if (world_rank() == 0) {
      std::printf("[faults] no tmpfs could be mounted: the full disk is injected only\n");
    }
  }
  // Everywhere: ENOSPC injected on the last rank while it writes.
  {
    ScopedFault fault(*manager, std::to_string(last()) + ":write:enospc");
    expect_everywhere<StorageError>(
        [&] { manager->save(fields.state, 2); },
        {"save of checkpoint '" + id(2) + "'", "failed on rank " + std::to_string(last()), "No space left on device"});
  }
  expect_nothing_published(*manager, root, {1});
  expect_intact(*manager, 1);
}

// ---------------------------------------------------------------------------------------------
// Missing directories.

TEST_F(Faults, AMissingCheckpointIsNamedOnEveryRank) {
  Fields target(Decomposition::Slabs);
  target.clear();
  ++tally().faults;
  expect_everywhere<StorageError>([&] { manager->checkpointer().load(target.state, id(9)); },
                                  {"checkpoint '" + id(9) + "'", "No such file or directory"});
  expect_everywhere<StorageError>([&] { manager->verify(9); }, {id(9), "No such file or directory"});
  const std::string nowhere = dir / "no/such/place";
  expect_everywhere<StorageError>([&] { manager->checkpointer().load(target.state, nowhere); },
                                  {nowhere, "No such file or directory"});
  EXPECT_TRUE(all_ranks(target.untouched()));
  EXPECT_EQ(steps_of(*manager), (std::vector<std::int64_t>{1}));
  expect_intact(*manager, 1);
}

TEST_F(Faults, ARootRemovedMidRunIsMadeAgainByTheNextSave) {
  ++tally().faults;
  ASSERT_TRUE(on_rank0([&] { return fs::remove_all(root) > 0; }));
  // Nothing to list or restore: the run would start fresh.
  EXPECT_TRUE(manager->list().empty());
  EXPECT_EQ(step_of(manager->latest(CheckMode::Fast)), std::nullopt);
  EXPECT_EQ(step_of(manager->latest(CheckMode::Deep)), std::nullopt);
  Fields target(Decomposition::Slabs);
  target.clear();
  std::optional<std::int64_t> from = 0;
  EXPECT_TRUE(expect_success([&] { from = manager->restore_or_start(target.state); }, "restore_or_start"));
  EXPECT_EQ(from, std::nullopt);
  EXPECT_TRUE(all_ranks(target.untouched()));
  // The next save makes the root again and publishes there.
  EXPECT_TRUE(expect_success([&] { manager->save(fields.state, 2); }, "saving into a removed root"));
  EXPECT_EQ(steps_of(*manager), (std::vector<std::int64_t>{2}));
  expect_intact(*manager, 2);
}

TEST_F(Faults, ARootUnderAFileIsRefusedAndNamed) {
  ++tally().faults;
  const std::string plain = dir / "plain";
  ASSERT_TRUE(on_rank0([&] { return static_cast<bool>(std::ofstream(plain) << "a file, not a directory"); }));
  CheckpointManager under_file(MPI_COMM_WORLD, plain + "/run");
  expect_everywhere<UsageError>([&] { under_file.save(fields.state, 2); }, {"'" + plain + "' is not a directory"});
  expect_everywhere<StorageError>([&] { under_file.list(); }, {plain + "/run"});
  expect_intact(*manager, 1);
}

// ---------------------------------------------------------------------------------------------
// Permissions changed mid-run.

TEST_F(Faults, ARootMadeReadOnlyMidRunFailsTheNextSaveAndKeepsTheEarlierOne) {
  ++tally().faults;
  ASSERT_TRUE(on_rank0([&] {
    // The test's own directory is private (mkdtemp); nobody may look inside, not write.
    return ::chmod(dir.path().c_str(), 0755) == 0 && ::chmod(root.c_str(), 0555) == 0;
  }));
  {
    Unprivileged nobody;
    ASSERT_TRUE(all_ranks(nobody.ok()));
    expect_everywhere<StorageError>(
        [&] { manager->save(fields.state, 2); },
        {"save of checkpoint '" + id(2) + "'", "failed on rank 0", root, "Permission denied"});
    // Without collectives every rank finds out for itself.
    std::vector<std::string> needles{id(2), "failed on rank 0", root, "Permission denied"};
    if (world_size() > 1) needles.push_back("(and on " + std::to_string(world_size() - 1) + " other rank(s))");
    expect_everywhere<StorageError>([&] { rank_files_manager().save(fields.state, 2); }, needles);
    // Reading still works.
    expect_intact(*manager, 1);
    Fields target(Decomposition::Grid);
    target.clear();
    std::optional<std::int64_t> from;
    EXPECT_TRUE(expect_success([&] { from = manager->restore_or_start(target.state); }, "restore_or_start"));
    EXPECT_EQ(from, std::optional<std::int64_t>(1));
    EXPECT_EQ(total_mismatches(target, 1), 0);
  }
  ASSERT_TRUE(on_rank0([&] { return ::chmod(root.c_str(), 0755) == 0; }));
  expect_nothing_published(*manager, root, {1});
  EXPECT_TRUE(expect_success([&] { manager->save(fields.state, 2); }, "saving with the permission back"));
  EXPECT_EQ(steps_of(*manager), (std::vector<std::int64_t>{1, 2}));
  expect_intact(*manager, 2);
}

TEST_F(Faults, AnUnreadableDataFileIsAPermissionErrorNamingTheFile) {
  EXPECT_TRUE(expect_success([&] { manager->save(fields.state, 2); }, "saving step 2"));
  const std::string file = id(2) + "/data.h5";
  ASSERT_TRUE(on_rank0([&] { return ::chmod(dir.path().c_str(), 0755) == 0 && ::chmod(file.c_str(), 0) == 0; }));
  bool detected = false;
  {
    Unprivileged nobody;
    ASSERT_TRUE(all_ranks(nobody.ok()));
    Fields target(Decomposition::Slabs);
    const Outcome load = expect_everywhere<StorageError>([&] { manager->checkpointer().load(target.state, id(2)); },
                                                         {file, "Permission denied"});
    const std::optional<std::int64_t> fast = step_of(manager->latest(CheckMode::Fast));
    EXPECT_EQ(fast, std::optional<std::int64_t>(1));
    detected = load.everywhere && fast == std::optional<std::int64_t>(1);
    expect_intact(*manager, 1);
  }
  EXPECT_TRUE(record_damage(detected));
  ASSERT_TRUE(on_rank0([&] { return ::chmod(file.c_str(), 0644) == 0; }));
  expect_intact(*manager, 2);
}

// ---------------------------------------------------------------------------------------------
// Files of a published checkpoint deleted or truncated, its metadata damaged.

TEST_F(Faults, ADeletedDataFileIsNamedAndSkipped) {
  ASSERT_TRUE(expect_success([&] { manager->save(fields.state, 2); }, "saving step 2"));
  ASSERT_TRUE(on_rank0([&] { return remove_file(id(2) + "/data.h5"); }));
  EXPECT_TRUE(record_damage(
      expect_detected<StorageError>({"checkpoint '" + id(2) + "' has no data file '" + id(2) + "/data.h5'"})));
  expect_everywhere<StorageError>([&] { manager->verify(2); }, {id(2) + "/data.h5"});
}

TEST_F(Faults, ATruncatedDataFileIsNamedAndSkipped) {
  const std::string file = id(2) + "/data.h5";
  // To half its size, then (saved again over the damaged one) to a few bytes.
  ASSERT_TRUE(expect_success([&] { manager->save(fields.state, 2); }, "saving step 2"));
  ASSERT_TRUE(on_rank0([&] { return truncate_file(file, static_cast<off_t>(fs::file_size(file) / 2)); }));
  EXPECT_TRUE(record_damage(expect_detected<CorruptCheckpointError>({"'" + file + "'", "truncated"})));
  expect_everywhere<CorruptCheckpointError>([&] { manager->verify(2); }, {file});

  ASSERT_TRUE(expect_success([&] { manager->save(fields.state, 2); }, "saving over the damaged step 2"));
  expect_intact(*manager, 2);
  ASSERT_TRUE(on_rank0([&] { return truncate_file(file, 5); }));
  EXPECT_TRUE(record_damage(expect_detected<CorruptCheckpointError>({"'" + file + "' is not an HDF5 file"})));
}

TEST_F(Faults, DamagedMetadataIsNamedAndSkipped) {
  ASSERT_TRUE(expect_success([&] { manager->save(fields.state, 2); }, "saving step 2"));
  const std::string file = id(2) + "/data.h5";
  ASSERT_TRUE(on_rank0([&] {
    const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    const hid_t d = H5Dopen2(f, "/_cairn/metadata", H5P_DEFAULT);
    const hsize_t size = H5Dget_storage_size(d);
    H5Dclose(d);
    H5Fclose(f);
    // A byte in the middle: past the magic and the version, before the trailing checksum.
    return size > 64 && flip_byte(file, "/_cairn/metadata", static_cast<std::int64_t>(size / 2));
  }));
  EXPECT_TRUE(
      record_damage(expect_detected<CorruptCheckpointError>({file, "checksum mismatch (the metadata is damaged)"})));
}

TEST_F(Faults, AMissingOrTruncatedRankFileIsNamedAndSkipped) {
  CheckpointManager& own_files = rank_files_manager();
  const std::string last_file = id(2) + "/" + rank_file(last());
  ASSERT_TRUE(expect_success([&] { own_files.save(fields.state, 2); }, "saving step 2 in rank files"));
  ASSERT_TRUE(on_rank0([&] { return remove_file(last_file); }));
  EXPECT_TRUE(
      record_damage(expect_detected<StorageError>({"'" + last_file + "'", "saved rank " + std::to_string(last())})));

  ASSERT_TRUE(expect_success([&] { own_files.save(fields.state, 2); }, "saving over the damaged step 2"));
  ASSERT_TRUE(on_rank0([&] { return truncate_file(last_file, static_cast<off_t>(fs::file_size(last_file) / 2)); }));
  EXPECT_TRUE(record_damage(expect_detected<CorruptCheckpointError>({"'" + last_file + "'"})));

  if (world_size() > 1) {
    // Rank 0's file: the one a reader looks for first.
    const std::string first_file = id(2) + "/" + rank_file(0);
    ASSERT_TRUE(expect_success([&] { own_files.save(fields.state, 2); }, "saving over the damaged step 2"));
    ASSERT_TRUE(on_rank0([&] { return remove_file(first_file); }));
    EXPECT_TRUE(record_damage(expect_detected<StorageError>({"'" + first_file + "'"})));
  }
}

TEST_F(Faults, ADeletedMarkerUnpublishesTheCheckpoint) {
  ASSERT_TRUE(expect_success([&] { manager->save(fields.state, 2); }, "saving step 2"));
  ASSERT_TRUE(on_rank0([&] { return remove_file(id(2) + "/CAIRN"); }));
  // Not published any more: list, latest and restore_or_start pass over it.
  const std::vector<std::int64_t> listed = steps_of(*manager);
  EXPECT_EQ(listed, (std::vector<std::int64_t>{1}));
  const std::optional<std::int64_t> fast = step_of(manager->latest(CheckMode::Fast));
  EXPECT_EQ(fast, std::optional<std::int64_t>(1));
  EXPECT_EQ(step_of(manager->latest(CheckMode::Deep)), std::optional<std::int64_t>(1));
  Fields target(Decomposition::Grid);
  target.clear();
  std::optional<std::int64_t> from;
  EXPECT_TRUE(expect_success([&] { from = manager->restore_or_start(target.state); }, "restore_or_start"));
  EXPECT_EQ(from, std::optional<std::int64_t>(1));
  const std::int64_t wrong = total_mismatches(target, 1);
  EXPECT_EQ(wrong, 0);
  EXPECT_TRUE(record_damage(listed == std::vector<std::int64_t>{1} && fast == std::optional<std::int64_t>(1) &&
                            from == std::optional<std::int64_t>(1) && wrong == 0));
  // A directory without its marker is never replaced (it may not be Cairn's): saving that step
  // again is refused, by name; the next step saves.
  expect_everywhere<UsageError>([&] { manager->save(fields.state, 2); }, {id(2), "is not a Cairn checkpoint"});
  EXPECT_TRUE(on_rank0([&] { return fs::exists(id(2) + "/data.h5"); })) << "the unmarked directory was touched";
  fields.fill(3);
  EXPECT_TRUE(expect_success([&] { manager->save(fields.state, 3); }, "saving step 3"));
  EXPECT_EQ(steps_of(*manager), (std::vector<std::int64_t>{1, 3}));
  expect_intact(*manager, 1);
  expect_intact(*manager, 3);
}

// ---------------------------------------------------------------------------------------------
// One byte flipped in a data file.

TEST_F(Faults, AFlippedByteFailsTheLoadOnEveryRankAndVerifyNamesExactlyTheChunk) {
  struct Target {
    const char* entry;
    Extents shape;
    int saving_rank;
    std::int64_t element_size;
  };
  const std::vector<Target> targets{{"grid/temperature", grid_shape(), last(), 8}, {"counts", counts_shape(), 0, 8}};
  VerifyReport good;
  ASSERT_TRUE(expect_success([&] { good = manager->verify(1); }, "verifying step 1"));
  for (const bool per_rank : {false, true}) {
    CheckpointManager& saver = per_rank ? rank_files_manager() : *manager;
    for (const Target& target : targets) {
      const Block chunk = decompose(target.shape, world_size(), target.saving_rank, Decomposition::Slabs).at(0);
      const std::int64_t chunk_bytes = static_cast<std::int64_t>(volume(chunk)) * target.element_size;
      for (const std::int64_t byte : {std::int64_t{0}, chunk_bytes / 2 + 3, chunk_bytes - 1}) {
        SCOPED_TRACE(std::string(per_rank ? "rank files" : "shared file") + ", entry " + target.entry + ", byte " +
                     std::to_string(byte));
        ASSERT_TRUE(expect_success([&] { saver.save(fields.state, 2); }, "saving step 2"));
        ASSERT_TRUE(on_rank0([&] {
          if (per_rank) {
            const std::string file = id(2) + "/" + rank_file(target.saving_rank);
            return flip_byte(file, chunk_dataset(file, chunk.shape), byte);
          }
          // The chunk starts at its first element's row-major position in the global dataset.
          std::int64_t first = 0;
          for (std::size_t d = 0; d < target.shape.size(); ++d) first = first * target.shape[d] + chunk.offset[d];
          return flip_byte(id(2) + "/data.h5", target.entry, first * target.element_size + byte);
        }));
        // The flip landed in the data: read without checksums, exactly one element differs.
        Fields unchecked(Decomposition::Slabs);
        LoadOptions no_checks;
        no_checks.verify_checksums = false;
        EXPECT_TRUE(expect_success([&] { manager->checkpointer().load(unchecked.state, id(2), no_checks); },
                                   "a load without checksums"));
        EXPECT_EQ(total_mismatches(unchecked, 2), 1);

        const std::string named = "chunk " + region_text(chunk) + " of entry '" + target.entry + "' saved by rank " +
                                  std::to_string(target.saving_rank);
        const bool detected = expect_detected<CorruptCheckpointError>({named, "checksum mismatch"}, false);
        bool exact = false;
        // verify() names that chunk alone and checks every other.
        VerifyReport report;
        EXPECT_TRUE(expect_success([&] { report = manager->verify(2); }, "verify"));
        EXPECT_EQ(report.chunks_checked, good.chunks_checked);
        EXPECT_EQ(report.bad_chunks.size(), 1U);
        if (report.bad_chunks.size() == 1) {
          const BadChunk& bad = report.bad_chunks[0];
          EXPECT_EQ(bad.entry, target.entry);
          EXPECT_EQ(bad.offset, chunk.offset);
          EXPECT_EQ(bad.shape, chunk.shape);
          EXPECT_EQ(bad.saving_rank, target.saving_rank);
          EXPECT_NE(bad.expected_checksum, bad.actual_checksum);
          EXPECT_NE(bad.message.find(named), std::string::npos) << bad.message;
          exact = report.chunks_checked == good.chunks_checked && bad.entry == target.entry &&
                  bad.offset == chunk.offset && bad.shape == chunk.shape && bad.saving_rank == target.saving_rank;
        }
        EXPECT_TRUE(record_damage(detected && exact));
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// A format version from the future.

TEST_F(Faults, AFormatVersionFromTheFutureIsRefusedOnEveryRankAndSkipped) {
  const std::string newer = "format version " + std::to_string(cairn::format_version + 1) +
                            " is newer than this library's (" + std::to_string(cairn::format_version) + ")";
  for (const bool per_rank : {false, true}) {
    SCOPED_TRACE(per_rank ? "rank files" : "shared file");
    CheckpointManager& saver = per_rank ? rank_files_manager() : *manager;
    ASSERT_TRUE(expect_success([&] { saver.save(fields.state, 2); }, "saving step 2"));
    const std::string file = id(2) + "/" + (per_rank ? rank_file(last()) : std::string("data.h5"));
    ASSERT_TRUE(on_rank0([&] { return raise_format_version(file); }));
    Fields target(Decomposition::Slabs);
    target.clear();
    const Outcome load =
        expect_everywhere<UnsupportedError>([&] { manager->checkpointer().load(target.state, id(2)); }, {file, newer});
    expect_everywhere<UnsupportedError>([&] { manager->verify(2); }, {file, newer});
    const std::optional<std::int64_t> fast = step_of(manager->latest(CheckMode::Fast));
    const std::optional<std::int64_t> deep = step_of(manager->latest(CheckMode::Deep));
    EXPECT_EQ(fast, std::optional<std::int64_t>(1));
    EXPECT_EQ(deep, std::optional<std::int64_t>(1));
    // Restarting from the older checkpoint would silently drop the newer one's steps: refused.
    expect_everywhere<UnsupportedError>([&] { manager->restore_or_start(target.state); }, {file, newer});
    expect_intact(*manager, 1);
    EXPECT_TRUE(record_damage(load.everywhere && fast == std::optional<std::int64_t>(1) &&
                              deep == std::optional<std::int64_t>(1)));
  }
}

// ---------------------------------------------------------------------------------------------
// Last in the file: an I/O error in the commit step, where the ranks other than the failing one
// are already inside the writer's collective finish (a hang here must not hide the tests above).

TEST_F(Faults, AnIOErrorOnTheLastRankDuringCommitFailsTheSaveOnEveryRank) {
  {
    ScopedFault fault(*manager, std::to_string(last()) + ":commit");
    expect_everywhere<StorageError>([&] { manager->save(fields.state, 2); },
                                    {"save of checkpoint '" + id(2) + "'", "failed on rank " + std::to_string(last()),
                                     "injected fault (CAIRN_FAULT) in step commit"});
  }
  expect_nothing_published(*manager, root, {1});
  expect_intact(*manager, 1);
  EXPECT_TRUE(expect_success([&] { manager->save(fields.state, 2); }, "saving after the fault"));
  EXPECT_EQ(steps_of(*manager), (std::vector<std::int64_t>{1, 2}));
  expect_intact(*manager, 2);
}

}  // namespace
