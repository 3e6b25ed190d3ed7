// cairn_bench: Cairn's save and load throughput beside two hand-written baselines, measured in one
// run under mpirun so that all three see the same machine, disk and moment:
//   posix  raw POSIX, one file per rank: pwrite in large pieces, fsync (load: pread);
//   hdf5   collective parallel HDF5: one global float64 dataset, one hyperslab per rank, flushed,
//          closed and fsync'd (Cairn's save is durable, so the baseline is too).
// Runs alternate (cairn, posix, hdf5, cairn, ...) and each figure is the median of the runs.
// --op async measures instead how long Checkpointer::async_save() blocks its caller in each staging
// mode, beside a memcpy of the same bytes, and how much resident memory a save adds.
// Usage and output are described in benchmarks/README.md and by --help.
#include <cairn/cairn.hpp>

#include "bench_support.hpp"

#include <hdf5.h>
#include <mpi.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

namespace fs = std::filesystem;

constexpr std::int64_t mib = std::int64_t{1} << 20;
// The state: four sharded float64 arrays of shape (ranks * rows, 64, 64), cut along the first
// dimension, that together hold exactly N MiB per rank; plus a small replicated array and an int64
// scalar "step".
constexpr int n_arrays = 4;
constexpr std::int64_t inner_dim = 64;
constexpr std::int64_t row_elems = inner_dim * inner_dim;
constexpr std::int64_t row_bytes = row_elems * static_cast<std::int64_t>(sizeof(double));
constexpr std::int64_t replicated_elems = 512;
constexpr std::int64_t step_value = 123456789;
// The baselines write the same bytes as Cairn: N MiB per rank, and rank 0 also the replicated
// array and the step (both 8-byte elements).
constexpr std::int64_t extra_elems = replicated_elems + 1;
// POSIX transfers are issued in pieces of this size.
constexpr std::size_t io_piece = std::size_t{64} << 20;
// Elements checked per array after a load.
constexpr std::int64_t samples_per_array = 64;

// Distinct, exactly representable values: array `a` holds base(a) + its global linear index.
double array_value(int a, std::int64_t global_index) {
  return std::ldexp(static_cast<double>(a + 1), 44) + static_cast<double>(global_index);
}
double replicated_value(std::int64_t i) {
  return std::ldexp(9.0, 44) + static_cast<double>(i);
}

// ---------------------------------------------------------------------------------------------
// Command line

struct Options {
  std::string op = "all";  // save, load, reshard, tune, async or all
  std::string backends = "hdf5,hdf5-agg,posix";
  std::int64_t mib_per_rank = 64;
  int runs = 5;
  std::int64_t budget_mib = 64;  // async: the staging budget of StagingMode::Bounded
  std::string dir;
  bool json = false;
  bool help = false;
};

const char* usage_text =
    "usage: mpirun -np P cairn_bench [--op save|load|reshard|tune|async|all] [--backends LIST] [--mib-per-rank N]\n"
    "                                 [--runs R] [--budget-mib B] --dir DIR [--json]\n"
    "  --op            save, load, reshard (saved on P ranks, loaded on P-1), tune (the HDF5 options),\n"
    "                  async, or all (save, load, reshard, then async); default all\n"
    "  --backends      comma-separated Cairn backends: hdf5, hdf5-agg, posix; default all three\n"
    "  --mib-per-rank  MiB of state per rank (integer >= 1); default 64\n"
    "  --runs          runs per method; each figure is the median; default 5\n"
    "  --budget-mib    async: staging budget of the bounded mode, MiB (integer >= 2); default 64\n"
    "  --dir           directory to write in; a private subdirectory is made there and removed at the end\n"
    "  --json          print one JSON object per line instead of a table\n";

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = text.find(',', start);
    const std::size_t end = comma == std::string::npos ? text.size() : comma;
    if (end > start) out.push_back(text.substr(start, end - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

// Returns an empty string on success, otherwise what is wrong.
std::string parse_args(int argc, char** argv, Options& options) {
  bool have_dir = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    bool have_value = false;
    const std::size_t eq = arg.find('=');
    if (arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      have_value = true;
    }
    auto next_value = [&]() -> bool {
      if (have_value) return true;
      if (i + 1 >= argc) return false;
      value = argv[++i];
      return true;
    };
    if (arg == "--help" || arg == "-h") {
      options.help = true;
    } else if (arg == "--json") {
      if (have_value) return "--json takes no value";
      options.json = true;
    } else if (arg == "--op") {
      if (!next_value()) return "--op needs a value";
      if (value != "save" && value != "load" && value != "reshard" && value != "tune" && value != "async" &&
          value != "all")
        return "--op must be save, load, reshard, tune, async or all, not '" + value + "'";
      options.op = value;
    } else if (arg == "--backends") {
      if (!next_value() || value.empty()) return "--backends needs a list";
      for (const std::string& name : split_list(value))
        if (name != "hdf5" && name != "hdf5-agg" && name != "posix")
          return "--backends takes hdf5, hdf5-agg and posix, not '" + name + "'";
      options.backends = value;
    } else if (arg == "--mib-per-rank") {
      std::int64_t n = 0;
      if (!next_value() || !cairn::bench::parse_int(value, 1, std::int64_t{1} << 20, n))
        return "--mib-per-rank needs an integer >= 1";
      options.mib_per_rank = n;
    } else if (arg == "--runs") {
      std::int64_t n = 0;
      if (!next_value() || !cairn::bench::parse_int(value, 1, 100000, n)) return "--runs needs an integer >= 1";
      options.runs = static_cast<int>(n);
    } else if (arg == "--budget-mib") {
      std::int64_t n = 0;
      if (!next_value() || !cairn::bench::parse_int(value, 2, std::int64_t{1} << 20, n))
        return "--budget-mib needs an integer >= 2";
      options.budget_mib = n;
    } else if (arg == "--dir") {
      if (!next_value() || value.empty()) return "--dir needs a directory";
      options.dir = value;
      have_dir = true;
    } else {
      return "unknown argument '" + std::string(argv[i]) + "'";
    }
  }
  if (!have_dir && !options.help) return "--dir is required";
  return "";
}

// ---------------------------------------------------------------------------------------------
// MPI and system helpers

int world_rank() {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

int world_size() {
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

double max_over_ranks(double value) {
  double out = value;
  MPI_Allreduce(&value, &out, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return out;
}

bool all_ranks(bool value) {
  int local = value ? 1 : 0;
  int out = local;
  MPI_Allreduce(&local, &out, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return out != 0;
}

void broadcast_string(std::string& text) {
  std::int64_t size = static_cast<std::int64_t>(text.size());
  MPI_Bcast(&size, 1, MPI_INT64_T, 0, MPI_COMM_WORLD);
  text.resize(static_cast<std::size_t>(size));
  if (size > 0) MPI_Bcast(text.data(), static_cast<int>(size), MPI_CHAR, 0, MPI_COMM_WORLD);
}

[[noreturn]] void fail_errno(const std::string& what, const std::string& path) {
  throw std::runtime_error(what + " '" + path + "': " + std::strerror(errno));
}

// Owns a file descriptor.
class Fd {
 public:
  explicit Fd(int fd) noexcept : m_fd(fd) {}
  ~Fd() {
    if (m_fd >= 0) ::close(m_fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const noexcept { return m_fd; }
  // Closes now, reporting a failed close (which can carry a write error).
  void close(const std::string& path) {
    const int fd = std::exchange(m_fd, -1);
    if (fd >= 0 && ::close(fd) != 0) fail_errno("cannot close", path);
  }

 private:
  int m_fd;
};

void fsync_path(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) fail_errno("cannot open for fsync", path);
  if (::fsync(fd.get()) != 0) fail_errno("fsync failed on", path);
  fd.close(path);
}

// Flushes the file system of `path` so that the journal work of a removal is not charged to the
// next timed run. Best effort.
void settle_file_system(const std::string& path) {
#ifdef __linux__
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() >= 0) ::syncfs(fd.get());
#else
  (void)path;
  ::sync();
#endif
}

// Collective: rank 0 removes `path` (file or tree) and flushes; the others wait.
void remove_path(const std::string& path, const std::string& settle_dir) {
  if (world_rank() == 0) {
    std::error_code ec;
    fs::remove_all(path, ec);
    if (ec) std::fprintf(stderr, "cairn_bench: warning: cannot remove '%s': %s\n", path.c_str(), ec.message().c_str());
    settle_file_system(settle_dir);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

// pwrite of `bytes` bytes at `offset`, in large pieces.
void pwrite_all(int fd, const std::string& path, const void* data, std::size_t bytes, off_t offset) {
  const auto* p = static_cast<const char*>(data);
  std::size_t done = 0;
  while (done < bytes) {
    const std::size_t n = std::min(io_piece, bytes - done);
    const ssize_t written = ::pwrite(fd, p + done, n, offset + static_cast<off_t>(done));
    if (written < 0) {
      if (errno == EINTR) continue;
      fail_errno("pwrite failed on", path);
    }
    done += static_cast<std::size_t>(written);
  }
}

// pread of exactly `bytes` bytes at `offset`, in large pieces.
void pread_all(int fd, const std::string& path, void* data, std::size_t bytes, off_t offset) {
  auto* p = static_cast<char*>(data);
  std::size_t done = 0;
  while (done < bytes) {
    const std::size_t n = std::min(io_piece, bytes - done);
    const ssize_t got = ::pread(fd, p + done, n, offset + static_cast<off_t>(done));
    if (got < 0) {
      if (errno == EINTR) continue;
      fail_errno("pread failed on", path);
    }
    if (got == 0) throw std::runtime_error("'" + path + "' is shorter than expected");
    done += static_cast<std::size_t>(got);
  }
}

// Best effort: fsync `path`, ask the kernel to drop its pages from the page cache, and return the
// fraction of its pages still resident afterwards (0 for an empty file, -1 when unknown).
double drop_page_cache(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return -1.0;
  (void)::fsync(fd.get());
  (void)::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return -1.0;
  if (st.st_size == 0) return 0.0;
  const auto size = static_cast<std::size_t>(st.st_size);
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd.get(), 0);
  if (map == MAP_FAILED) return -1.0;
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> resident((size + page - 1) / page);
  double fraction = -1.0;
  if (::mincore(map, size, resident.data()) == 0) {
    std::size_t count = 0;
    for (unsigned char r : resident) count += r & 1u;
    fraction = static_cast<double>(count) / static_cast<double>(resident.size());
  }
  ::munmap(map, size);
  return fraction;
}

// Drops every regular file under `path` (a file or a directory); returns the largest resident fraction.
double drop_page_cache_tree(const std::string& path) {
  double worst = 0.0;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    for (const auto& item : fs::recursive_directory_iterator(path, ec))
      if (item.is_regular_file(ec)) worst = std::max(worst, drop_page_cache(item.path().string()));
  } else {
    worst = drop_page_cache(path);
  }
  return worst;
}

// ---------------------------------------------------------------------------------------------
// The parallel-HDF5 baseline

// Owns one hid_t; throws when created from a failed call.
class H5Id {
 public:
  using Closer = herr_t (*)(hid_t);
  H5Id(hid_t id, Closer closer, const char* what) : m_id(id), m_closer(closer) {
    if (id < 0) throw std::runtime_error(std::string("HDF5 baseline: ") + what + " failed");
  }
  ~H5Id() {
    if (m_id >= 0) m_closer(m_id);
  }
  H5Id(H5Id&& other) noexcept : m_id(std::exchange(other.m_id, H5I_INVALID_HID)), m_closer(other.m_closer) {}
  H5Id(const H5Id&) = delete;
  H5Id& operator=(const H5Id&) = delete;
  H5Id& operator=(H5Id&&) = delete;
  hid_t get() const noexcept { return m_id; }
  void close(const char* what) {
    const hid_t id = std::exchange(m_id, H5I_INVALID_HID);
    if (id >= 0 && m_closer(id) < 0)
      throw std::runtime_error(std::string("HDF5 baseline: closing ") + what + " failed");
  }

 private:
  hid_t m_id;
  Closer m_closer;
};

void h5_check(herr_t rc, const char* what) {
  if (rc < 0) throw std::runtime_error(std::string("HDF5 baseline: ") + what + " failed");
}

// The baselines write and read exactly the bytes Cairn does, from and into the same buffers: the
// four arrays of this rank, and on rank 0 the replicated array and the step.
struct Baseline {
  std::vector<const double*> arrays;  // this rank's slab of each array
  std::vector<double*> targets;       // where loads go
  std::int64_t local_elems = 0;       // per array
  const double* extra = nullptr;      // rank 0: replicated array + step, extra_elems doubles
  double* extra_target = nullptr;
};

H5Id mpio_access() {
  H5Id fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose, "H5Pcreate(file access)");
  h5_check(H5Pset_fapl_mpio(fapl.get(), MPI_COMM_WORLD, MPI_INFO_NULL), "H5Pset_fapl_mpio");
  return fapl;
}

H5Id collective_transfer() {
  H5Id dxpl(H5Pcreate(H5P_DATASET_XFER), H5Pclose, "H5Pcreate(transfer)");
  h5_check(H5Pset_dxpl_mpio(dxpl.get(), H5FD_MPIO_COLLECTIVE), "H5Pset_dxpl_mpio");
  return dxpl;
}

// Collective: selects this rank's slab of a global 1-D dataset (nothing when count is 0).
void select_slab(hid_t space, std::int64_t offset, std::int64_t count) {
  const hsize_t start = static_cast<hsize_t>(offset);
  const hsize_t n = static_cast<hsize_t>(count);
  if (count == 0)
    h5_check(H5Sselect_none(space), "H5Sselect_none");
  else
    h5_check(H5Sselect_hyperslab(space, H5S_SELECT_SET, &start, nullptr, &n, nullptr), "H5Sselect_hyperslab");
}

// What a user would write by hand with parallel HDF5: one global 1-D float64 dataset per array
// (contiguous, allocated early, never filled, as Cairn's), one collective hyperslab write per
// dataset, flush and close; then rank 0 fsyncs the file, because Cairn's save is durable too.
void hdf5_write(const std::string& path, const Baseline& b) {
  const int rank = world_rank(), size = world_size();
  {
    H5Id fapl = mpio_access();
    H5Id file(H5Fcreate(path.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, fapl.get()), H5Fclose, "H5Fcreate");
    H5Id dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose, "H5Pcreate(dataset create)");
    h5_check(H5Pset_alloc_time(dcpl.get(), H5D_ALLOC_TIME_EARLY), "H5Pset_alloc_time");
    h5_check(H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER), "H5Pset_fill_time");
    H5Id dxpl = collective_transfer();
    for (std::size_t a = 0; a <= b.arrays.size(); ++a) {
      const bool extra = a == b.arrays.size();
      const hsize_t total = extra ? extra_elems : static_cast<hsize_t>(b.local_elems * size);
      const std::int64_t count = extra ? (rank == 0 ? extra_elems : 0) : b.local_elems;
      const std::int64_t offset = extra ? 0 : rank * b.local_elems;
      H5Id space(H5Screate_simple(1, &total, nullptr), H5Sclose, "H5Screate_simple");
      const std::string name = "array" + std::to_string(a);
      H5Id dset(H5Dcreate2(file.get(), name.c_str(), H5T_IEEE_F64LE, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                H5Dclose, "H5Dcreate2");
      select_slab(space.get(), offset, count);
      const hsize_t n = static_cast<hsize_t>(std::max<std::int64_t>(count, 1));
      H5Id mem(H5Screate_simple(1, &n, nullptr), H5Sclose, "H5Screate_simple");
      if (count == 0) h5_check(H5Sselect_none(mem.get()), "H5Sselect_none");
      const double* data = extra ? b.extra : b.arrays[a];
      h5_check(H5Dwrite(dset.get(), H5T_NATIVE_DOUBLE, mem.get(), space.get(), dxpl.get(), data), "H5Dwrite");
    }
    h5_check(H5Fflush(file.get(), H5F_SCOPE_GLOBAL), "H5Fflush");
    file.close("the file");
  }
  if (rank == 0) fsync_path(path);
}

// Collective: reads back this rank's slabs of the file hdf5_write made (collective reads).
void hdf5_read(const std::string& path, const Baseline& b) {
  const int rank = world_rank();
  H5Id fapl = mpio_access();
  H5Id file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get()), H5Fclose, "H5Fopen");
  H5Id dxpl = collective_transfer();
  for (std::size_t a = 0; a <= b.targets.size(); ++a) {
    const bool extra = a == b.targets.size();
    const std::int64_t count = extra ? (rank == 0 ? extra_elems : 0) : b.local_elems;
    const std::int64_t offset = extra ? 0 : rank * b.local_elems;
    const std::string name = "array" + std::to_string(a);
    H5Id dset(H5Dopen2(file.get(), name.c_str(), H5P_DEFAULT), H5Dclose, "H5Dopen2");
    H5Id space(H5Dget_space(dset.get()), H5Sclose, "H5Dget_space");
    select_slab(space.get(), offset, count);
    const hsize_t n = static_cast<hsize_t>(std::max<std::int64_t>(count, 1));
    H5Id mem(H5Screate_simple(1, &n, nullptr), H5Sclose, "H5Screate_simple");
    if (count == 0) h5_check(H5Sselect_none(mem.get()), "H5Sselect_none");
    double* data = extra ? b.extra_target : b.targets[a];
    h5_check(H5Dread(dset.get(), H5T_NATIVE_DOUBLE, mem.get(), space.get(), dxpl.get(), data), "H5Dread");
  }
}

// Raw POSIX, one file per rank: every array (and rank 0's extras) with pwrite in large pieces, fsync.
void posix_write(const std::string& path, const Baseline& b) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (fd.get() < 0) fail_errno("cannot create", path);
  off_t at = 0;
  const auto bytes = static_cast<std::size_t>(b.local_elems) * sizeof(double);
  for (const double* a : b.arrays) {
    pwrite_all(fd.get(), path, a, bytes, at);
    at += static_cast<off_t>(bytes);
  }
  if (world_rank() == 0) pwrite_all(fd.get(), path, b.extra, extra_elems * sizeof(double), at);
  if (::fsync(fd.get()) != 0) fail_errno("fsync failed on", path);
  fd.close(path);
}

void posix_read(const std::string& path, const Baseline& b) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) fail_errno("cannot open", path);
  off_t at = 0;
  const auto bytes = static_cast<std::size_t>(b.local_elems) * sizeof(double);
  for (double* a : b.targets) {
    pread_all(fd.get(), path, a, bytes, at);
    at += static_cast<off_t>(bytes);
  }
  if (world_rank() == 0) pread_all(fd.get(), path, b.extra_target, extra_elems * sizeof(double), at);
  fd.close(path);
}

// ---------------------------------------------------------------------------------------------
// The benchmark

// Collective over `comm`: the slowest rank's wall time of `body`, started together after a barrier.
double timed(const std::function<void()>& body) {
  MPI_Barrier(MPI_COMM_WORLD);
  const double start = MPI_Wtime();
  body();
  const double elapsed = MPI_Wtime() - start;
  return max_over_ranks(elapsed);
}

double median(std::vector<double> values) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

// Positions checked after a load: spread over the whole buffer, first and last included.
std::vector<std::int64_t> sample_positions(std::int64_t n) {
  std::vector<std::int64_t> out;
  if (n <= 0) return out;
  const std::int64_t k = std::min(samples_per_array, n);
  for (std::int64_t i = 0; i < k; ++i) out.push_back(k == 1 ? 0 : i * (n - 1) / (k - 1));
  return out;
}

// One measured method: its run times, and for loads the page-cache residue after the drop.
struct Series {
  std::string name;
  std::vector<double> seconds;
  double resident = 0.0;
};

// One op's series: Cairn's backends first, then the baselines. For reshard, `reference` names
// the same-layout load each resharded load is compared with.
struct Result {
  std::string op;
  std::vector<Series> series;
  bool verified = true;
  int load_ranks = 0;  // reshard: the ranks that loaded
  Series* find(const std::string& name) {
    for (Series& s : series)
      if (s.name == name) return &s;
    return nullptr;
  }
  const Series* find(const std::string& name) const { return const_cast<Result*>(this)->find(name); }
};

// A Cairn backend as the benchmark saves with it.
struct Backend {
  std::string name;
  std::function<std::shared_ptr<cairn::StorageWriter>()> writer;
};

std::vector<Backend> backends_named(const std::vector<std::string>& names) {
  std::vector<Backend> out;
  for (const std::string& n : names) {
    if (n == "hdf5")
      out.push_back({n, [] { return std::shared_ptr<cairn::StorageWriter>(cairn::make_hdf5_writer()); }});
    else if (n == "hdf5-agg")
      out.push_back({n, [] { return std::shared_ptr<cairn::StorageWriter>(cairn::make_hdf5_aggregated_writer()); }});
    else if (n == "posix")
      out.push_back({n, [] { return std::shared_ptr<cairn::StorageWriter>(cairn::make_posix_writer()); }});
  }
  return out;
}

// The HDF5 tuning variants of --op tune, each against the default.
std::vector<Backend> tuning_variants() {
  auto with = [](std::string name, std::function<void(cairn::Hdf5Options&)> change) {
    return Backend{std::move(name), [change] {
                     cairn::Hdf5Options o;
                     change(o);
                     return std::shared_ptr<cairn::StorageWriter>(cairn::make_hdf5_writer(o));
                   }};
  };
  return {with("default", [](cairn::Hdf5Options&) {}),
          with("no-align", [](cairn::Hdf5Options& o) { o.alignment = 1; }),
          with("align-1MiB", [](cairn::Hdf5Options& o) { o.alignment = std::size_t{1} << 20; }),
          with("collective", [](cairn::Hdf5Options& o) { o.collective_writes = true; }),
          with("indep-meta", [](cairn::Hdf5Options& o) { o.collective_metadata = false; }),
          with("chunked", [](cairn::Hdf5Options& o) { o.chunked = true; }),
          with("cb-1-aggr",
               [](cairn::Hdf5Options& o) {
                 o.mpi_hints = {{"cb_nodes", "1"}};
               }),
          with("cb-16MiB", [](cairn::Hdf5Options& o) {
            o.mpi_hints = {{"cb_buffer_size", "16777216"}};
          })};
}

// Rows of the first dimension that part `q` of `parts` holds of `total` rows (even split).
std::pair<std::int64_t, std::int64_t> row_range(std::int64_t total, int parts, int q) {
  const std::int64_t begin = total * q / parts;
  return {begin, total * (q + 1) / parts - begin};
}

// Buffers for one rank's share of the four arrays (in `chunks` row ranges), the replicated array
// and the step, described as a State.
struct Holder {
  std::vector<std::pair<std::int64_t, std::int64_t>> rows;  // (first row, rows) per chunk
  std::vector<std::vector<std::vector<double>>> data;       // [array][chunk]
  std::vector<double> replicated;
  std::int64_t step = 0;
  cairn::State state;

  Holder(std::int64_t global_rows, std::vector<std::pair<std::int64_t, std::int64_t>> chunk_rows)
      : rows(std::move(chunk_rows)), data(n_arrays), replicated(static_cast<std::size_t>(replicated_elems)) {
    for (int a = 0; a < n_arrays; ++a) {
      cairn::ArrayEntry& entry = state.add_array("fields/array" + std::to_string(a), cairn::DType::Float64,
                                                 {global_rows, inner_dim, inner_dim});
      for (const auto& [first, n] : rows) {
        data[static_cast<std::size_t>(a)].emplace_back(static_cast<std::size_t>(n * row_elems));
        entry.add_chunk({first, 0, 0}, {n, inner_dim, inner_dim}, data[static_cast<std::size_t>(a)].back().data());
      }
    }
    state.add_replicated_array<double>("grid/replicated", {replicated_elems}, replicated.data());
    state.add_scalar("step", step);
  }

  void fill() {
    for (int a = 0; a < n_arrays; ++a)
      for (std::size_t c = 0; c < rows.size(); ++c) {
        double* p = data[static_cast<std::size_t>(a)][c].data();
        const std::int64_t first = rows[c].first * row_elems;
        for (std::int64_t i = 0; i < rows[c].second * row_elems; ++i) p[i] = array_value(a, first + i);
      }
    for (std::int64_t i = 0; i < replicated_elems; ++i) replicated[static_cast<std::size_t>(i)] = replicated_value(i);
    step = step_value;
  }

  void poison() {
    for (auto& chunks : data)
      for (auto& chunk : chunks)
        for (std::int64_t at : sample_positions(static_cast<std::int64_t>(chunk.size())))
          chunk[static_cast<std::size_t>(at)] = -1.0;
    std::fill(replicated.begin(), replicated.end(), -1.0);
    step = -1;
  }

  // Sampled values of every chunk, the whole replicated array and the step; false (with a
  // message) on the first difference.
  bool check(const char* what, int run, bool with_extras) const {
    for (int a = 0; a < n_arrays; ++a)
      for (std::size_t c = 0; c < rows.size(); ++c) {
        const auto& chunk = data[static_cast<std::size_t>(a)][c];
        const std::int64_t first = rows[c].first * row_elems;
        for (std::int64_t at : sample_positions(static_cast<std::int64_t>(chunk.size())))
          if (chunk[static_cast<std::size_t>(at)] != array_value(a, first + at))
            return mismatch(what, run, "fields/array" + std::to_string(a) + " element " + std::to_string(first + at),
                            chunk[static_cast<std::size_t>(at)], array_value(a, first + at));
      }
    if (!with_extras) return true;
    for (std::int64_t i = 0; i < replicated_elems; ++i)
      if (replicated[static_cast<std::size_t>(i)] != replicated_value(i))
        return mismatch(what, run, "grid/replicated element " + std::to_string(i),
                        replicated[static_cast<std::size_t>(i)], replicated_value(i));
    if (step != step_value) return mismatch(what, run, "step", static_cast<double>(step), step_value);
    return true;
  }

  static bool mismatch(const char* what, int run, const std::string& where, double got, double want) {
    std::fprintf(stderr, "cairn_bench: rank %d, %s run %d: %s holds %.17g, expected %.17g\n", world_rank(), what, run,
                 where.c_str(), got, want);
    return false;
  }
};

class Bench {
 public:
  Bench(const Options& options, std::string work)
      : m_options(options),
        m_work(std::move(work)),
        m_rank(world_rank()),
        m_size(world_size()),
        m_rows(options.mib_per_rank * mib / (n_arrays * row_bytes)),
        m_source(m_size * m_rows, {{m_rank * m_rows, m_rows}}),
        m_backends(backends_named(split_list(options.backends))) {
    m_source.fill();
    m_extra.assign(m_source.replicated.begin(), m_source.replicated.end());
    m_extra.push_back(static_cast<double>(step_value));
  }

  // Total bytes every method moves: N MiB per rank plus the replicated array and the step, once.
  std::int64_t total_bytes() const {
    return m_size * m_rows * n_arrays * row_bytes + extra_elems * static_cast<std::int64_t>(sizeof(double));
  }

  // Saves with every backend (or --op tune: every HDF5 variant), alternating with the baselines.
  Result save(bool tune) {
    Result result{tune ? "tune" : "save", {}, true, 0};
    const std::vector<Backend> methods = tune ? tuning_variants() : m_backends;
    for (const Backend& b : methods) result.series.push_back({b.name, {}, 0.0});
    result.series.push_back({"posix-raw", {}, 0.0});
    result.series.push_back({"hdf5-hand", {}, 0.0});
    const Baseline base = baseline(m_source);
    std::vector<std::string> previous(result.series.size());
    for (int i = 0; i < m_options.runs; ++i) {
      const std::string n = std::to_string(i);
      // Each run starts with another method: the first write after the previous run's files were
      // removed can meet the disk still freeing them, and that must not always be the same method.
      for (std::size_t step = 0; step < result.series.size(); ++step) {
        const std::size_t m = (step + static_cast<std::size_t>(i)) % result.series.size();
        Series& s = result.series[m];
        const std::string path = m_work + "/" + s.name + "_run" + n;
        if (m < methods.size()) {
          cairn::SaveOptions save_options;
          save_options.writer = methods[m].writer();
          s.seconds.push_back(timed([&] { m_checkpointer.save(m_source.state, path, save_options); }));
        } else if (s.name == "posix-raw") {
          s.seconds.push_back(timed([&] {
            if (m_rank == 0 && ::mkdir(path.c_str(), 0755) != 0) fail_errno("cannot create directory", path);
            MPI_Barrier(MPI_COMM_WORLD);
            posix_write(rank_file(path), base);
          }));
        } else {
          s.seconds.push_back(timed([&] { hdf5_write(path, base); }));
        }
        if (!previous[m].empty()) remove_path(previous[m], m_work);
        previous[m] = path;
      }
    }
    for (const std::string& p : previous) remove_path(p, m_work);
    return result;
  }

  // Loads with every backend (checked, as by default, and without checksums) and the baselines,
  // all into the same kind of buffers, dropped from the page cache before every read. Every run
  // reads files written afresh for it, in a rotated order: where a file lands on the disk sets
  // how fast it reads back (by 10% and more on a virtual disk), and one placement drawn for the
  // whole op would decide every median.
  Result load() {
    Result result{"load", {}, true, 0};
    Holder target(m_size * m_rows, {{m_rank * m_rows, m_rows}});
    const Baseline base = baseline(target);
    for (const Backend& b : m_backends) {
      result.series.push_back({b.name, {}, 0.0});
      result.series.push_back({b.name + "-nocheck", {}, 0.0});
    }
    result.series.push_back({"posix-raw", {}, 0.0});
    result.series.push_back({"hdf5-hand", {}, 0.0});
    const std::size_t files = m_backends.size() + 2;  // one per backend, the raw files, the hand-written file
    const std::size_t raw_file = m_backends.size();   // then hand_file = raw_file + 1

    cairn::LoadOptions no_check;
    no_check.verify_checksums = false;
    bool ok = true;
    for (int i = 0; i < m_options.runs; ++i) {
      const auto rotation = static_cast<std::size_t>(i);
      const std::string n = std::to_string(i);
      std::vector<std::string> paths(files);
      for (std::size_t step = 0; step < files; ++step) {
        const std::size_t f = (step + rotation) % files;
        if (f < m_backends.size()) {
          paths[f] = m_work + "/load_" + m_backends[f].name + "_run" + n;
          cairn::SaveOptions save_options;
          save_options.writer = m_backends[f].writer();
          m_checkpointer.save(m_source.state, paths[f], save_options);
        } else if (f == raw_file) {
          paths[f] = m_work + "/load_posix_raw_run" + n;
          if (m_rank == 0 && ::mkdir(paths[f].c_str(), 0755) != 0) fail_errno("cannot create directory", paths[f]);
          MPI_Barrier(MPI_COMM_WORLD);
          posix_write(rank_file(paths[f]), baseline(m_source));
        } else {
          paths[f] = m_work + "/load_hdf5_hand_run" + n + ".h5";
          hdf5_write(paths[f], baseline(m_source));
        }
      }
      for (std::size_t step = 0; step < result.series.size(); ++step) {
        const std::size_t m = (step + rotation) % result.series.size();
        Series& s = result.series[m];
        const std::size_t backend_series = 2 * m_backends.size();  // checked and unchecked per backend
        const std::size_t f = m < backend_series ? m / 2 : m_backends.size() + (m - backend_series);
        target.poison();
        const std::string drop = f == raw_file ? rank_file(paths[f]) : paths[f];
        s.resident = std::max(s.resident, drop_all(drop));
        if (f < m_backends.size()) {
          const bool checked = m % 2 == 0;
          s.seconds.push_back(timed([&] {
            if (checked)
              m_checkpointer.load(target.state, paths[f]);
            else
              m_checkpointer.load(target.state, paths[f], no_check);
          }));
          ok = target.check(s.name.c_str(), i, true) && ok;
        } else {
          s.seconds.push_back(timed([&] {
            if (f == raw_file)
              posix_read(rank_file(paths[f]), base);
            else
              hdf5_read(paths[f], base);
          }));
          ok = target.check(s.name.c_str(), i, false) && ok;
        }
      }
      for (const std::string& p : paths) remove_path(p, m_work);
    }
    result.verified = all_ranks(ok);
    return result;
  }

  // Saved on every rank, loaded on fewer (P-1; at one rank, into three uneven chunks), beside the
  // same-layout load of the same checkpoint, alternating.
  Result reshard() {
    const int load_ranks = m_size > 1 ? m_size - 1 : 1;
    Result result{"reshard", {}, true, load_ranks};
    const std::int64_t global_rows = m_size * m_rows;
    std::vector<std::pair<std::int64_t, std::int64_t>> mine;
    if (m_size == 1) {
      mine = {{0, global_rows / 3}, {global_rows / 3, global_rows / 3 + 1}};
      mine.push_back({mine[1].first + mine[1].second, global_rows - (mine[1].first + mine[1].second)});
    } else if (m_rank < load_ranks) {
      mine = {row_range(global_rows, load_ranks, m_rank)};
    }
    MPI_Comm load_comm = MPI_COMM_NULL;
    MPI_Comm_split(MPI_COMM_WORLD, m_rank < load_ranks ? 0 : MPI_UNDEFINED, m_rank, &load_comm);
    std::vector<std::string> paths;
    {
      Holder same(global_rows, {{m_rank * m_rows, m_rows}});
      for (const Backend& b : m_backends) {
        paths.push_back(m_work + "/reshard_" + b.name);
        cairn::SaveOptions save_options;
        save_options.writer = b.writer();
        m_checkpointer.save(m_source.state, paths.back(), save_options);
        result.series.push_back({b.name + "-same", {}, 0.0});
        result.series.push_back({b.name + "-reshard", {}, 0.0});
      }
      bool ok = true;
      std::unique_ptr<cairn::Checkpointer> sub;
      if (load_comm != MPI_COMM_NULL) sub = std::make_unique<cairn::Checkpointer>(load_comm);
      Holder resharded(global_rows, mine);
      for (int i = 0; i < m_options.runs; ++i) {
        for (std::size_t b = 0; b < m_backends.size(); ++b) {
          Series& s_same = result.series[2 * b];
          same.poison();
          s_same.resident = std::max(s_same.resident, drop_all(paths[b]));
          s_same.seconds.push_back(timed([&] { m_checkpointer.load(same.state, paths[b]); }));
          ok = same.check(s_same.name.c_str(), i, true) && ok;

          Series& s_re = result.series[2 * b + 1];
          resharded.poison();
          s_re.resident = std::max(s_re.resident, drop_all(paths[b]));
          s_re.seconds.push_back(timed([&] {
            if (sub) sub->load(resharded.state, paths[b]);
          }));
          if (sub) ok = resharded.check(s_re.name.c_str(), i, true) && ok;
        }
      }
      result.verified = all_ranks(ok);
    }
    if (load_comm != MPI_COMM_NULL) MPI_Comm_free(&load_comm);
    for (const std::string& p : paths) remove_path(p, m_work);
    return result;
  }

 private:
  std::string rank_file(const std::string& dir) const { return dir + "/rank" + std::to_string(m_rank) + ".bin"; }

  Baseline baseline(Holder& h) {
    Baseline b;
    for (int a = 0; a < n_arrays; ++a) {
      b.arrays.push_back(h.data[static_cast<std::size_t>(a)][0].data());
      b.targets.push_back(h.data[static_cast<std::size_t>(a)][0].data());
    }
    b.local_elems = m_rows * row_elems;
    b.extra = m_extra.data();
    m_extra_in.assign(m_extra.size(), 0.0);
    b.extra_target = m_extra_in.data();
    return b;
  }

  // Collective: drops the page cache of `path` on every rank; the worst resident fraction. A
  // second pass, once every rank has finished the first, catches pages another rank's fsync or
  // the kernel's per-CPU LRU batches kept from the first.
  static double drop_all(const std::string& path) {
    (void)drop_page_cache_tree(path);
    MPI_Barrier(MPI_COMM_WORLD);
    const double resident = drop_page_cache_tree(path);
    return max_over_ranks(resident);
  }

  const Options& m_options;
  std::string m_work;
  int m_rank;
  int m_size;
  std::int64_t m_rows;  // rows of the first dimension per rank and array
  Holder m_source;
  std::vector<Backend> m_backends;
  std::vector<double> m_extra, m_extra_in;  // rank 0's replicated array + step, for the baselines
  cairn::Checkpointer m_checkpointer{MPI_COMM_WORLD};
};

// ---------------------------------------------------------------------------------------------
// Output

double mib_per_s(std::int64_t bytes, double seconds) {
  return seconds > 0.0 ? static_cast<double>(bytes) / static_cast<double>(mib) / seconds : 0.0;
}

std::string json_number(double value) {
  if (!std::isfinite(value)) return "null";
  char text[64];
  std::snprintf(text, sizeof text, "%.6g", value);
  return text;
}

std::string json_list(const std::vector<double>& values) {
  std::string out = "[";
  for (std::size_t i = 0; i < values.size(); ++i) out += (i ? "," : "") + json_number(values[i]);
  return out + "]";
}

double ratio(double a, double b) {
  return b > 0.0 ? a / b : 0.0;
}

bool is_baseline(const std::string& name) {
  return name == "posix-raw" || name == "hdf5-hand";
}

// The figures a series is judged by: throughput beside both baselines, or (reshard) time beside
// the same backend's same-layout load.
struct Row {
  std::string name;
  double median_s = 0.0, mib_s = 0.0, over_posix = 0.0, over_hdf5 = 0.0, over_same = 0.0;
};

std::vector<Row> rows_of(const Result& r, std::int64_t bytes) {
  std::vector<Row> rows;
  const Series* raw = r.find("posix-raw");
  const Series* hand = r.find("hdf5-hand");
  for (const Series& s : r.series) {
    Row row{s.name, median(s.seconds), 0.0, 0.0, 0.0, 0.0};
    row.mib_s = mib_per_s(bytes, row.median_s);
    if (raw) row.over_posix = ratio(row.mib_s, mib_per_s(bytes, median(raw->seconds)));
    if (hand) row.over_hdf5 = ratio(row.mib_s, mib_per_s(bytes, median(hand->seconds)));
    const std::string suffix = "-reshard";
    if (s.name.size() > suffix.size() && s.name.compare(s.name.size() - suffix.size(), suffix.size(), suffix) == 0)
      if (const Series* same = r.find(s.name.substr(0, s.name.size() - suffix.size()) + "-same"))
        row.over_same = ratio(row.median_s, median(same->seconds));
    rows.push_back(row);
  }
  return rows;
}

void print_json(const Result& r, const Options& options, int ranks, std::int64_t bytes) {
  std::string line = "{\"op\":\"" + r.op + "\",\"ranks\":" + std::to_string(ranks) +
                     ",\"mib_per_rank\":" + std::to_string(options.mib_per_rank) +
                     ",\"runs\":" + std::to_string(options.runs) + ",\"bytes_total\":" + std::to_string(bytes);
  if (r.op == "reshard") line += ",\"load_ranks\":" + std::to_string(r.load_ranks);
  line += ",\"methods\":{";
  const std::vector<Row> rows = rows_of(r, bytes);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const Row& row = rows[i];
    const Series& s = r.series[i];
    line += (i ? ",\"" : "\"") + row.name + "\":{\"baseline\":" + (is_baseline(row.name) ? "true" : "false") +
            ",\"median_s\":" + json_number(row.median_s) + ",\"mib_s\":" + json_number(row.mib_s) +
            ",\"over_posix_raw\":" + json_number(row.over_posix) + ",\"over_hdf5_hand\":" + json_number(row.over_hdf5);
    if (r.op == "reshard" && row.over_same > 0.0) line += ",\"time_over_same_layout\":" + json_number(row.over_same);
    if (r.op == "load" || r.op == "reshard") line += ",\"resident_after_drop\":" + json_number(s.resident);
    line += ",\"seconds\":" + json_list(s.seconds) + "}";
  }
  line += "}";
  if (r.op == "load" || r.op == "reshard") line += std::string(",\"verified\":") + (r.verified ? "true" : "false");
  line += ",\"cairn_version\":\"" + std::string(cairn::version()) + "\"}";
  std::printf("%s\n", line.c_str());
}

void print_table(const std::vector<Result>& results, const Options& options, int ranks, std::int64_t bytes) {
  std::printf(
      "cairn_bench (Cairn %s): %d rank%s, %lld MiB per rank, %.2f MiB in all per run; median of %d runs; the "
      "methods of an op alternate run by run\n",
      cairn::version(), ranks, ranks == 1 ? "" : "s", static_cast<long long>(options.mib_per_rank),
      static_cast<double>(bytes) / static_cast<double>(mib), options.runs);
  std::printf("MiB/s is aggregate: all ranks' bytes / the slowest rank's wall time between barriers\n");
  for (const Result& r : results) {
    std::printf("\n%s", r.op.c_str());
    if (r.op == "reshard") std::printf(" (saved on %d ranks, loaded on %d)", ranks, r.load_ranks);
    std::printf("\n%-22s %10s %12s %14s %14s%s\n", "method", "median s", "MiB/s", "x posix-raw", "x hdf5-hand",
                r.op == "reshard" ? "   time x same-layout" : "");
    for (const Row& row : rows_of(r, bytes)) {
      std::printf("%-22s %10.4f %12.1f %14.2f %14.2f", row.name.c_str(), row.median_s, row.mib_s, row.over_posix,
                  row.over_hdf5);
      if (row.over_same > 0.0) std::printf("   %19.2f", row.over_same);
      std::printf("\n");
    }
    if (r.op == "load" || r.op == "reshard") {
      double worst = 0.0;
      for (const Series& s : r.series) worst = std::max(worst, s.resident);
      std::printf(
          "reads may be served from a cache: the page cache is dropped (fsync + POSIX_FADV_DONTNEED) before "
          "every read; at most %.0f%% of a file's pages stayed resident\n",
          100.0 * worst);
      std::printf("load check (sampled values of every array, the replicated array, the step): %s\n",
                  r.verified ? "passed" : "FAILED");
    }
  }
  std::printf("\nrun times (s):\n");
  for (const Result& r : results)
    for (const Series& s : r.series) {
      std::printf("  %-8s %-22s", r.op.c_str(), s.name.c_str());
      for (double t : s.seconds) std::printf(" %.4f", t);
      std::printf("\n");
    }
}

// ---------------------------------------------------------------------------------------------
// async_save: how long it blocks the caller, and how much memory a save adds

// The state of --op async: one float64 array of global shape (ranks * rows, async_cols), one
// contiguous row-major slab of N MiB per rank, and an int64 scalar "step".
constexpr std::int64_t async_cols = 1024;
// Between saves, outside the timed region, one element in every 4 KiB page changes.
constexpr std::size_t touch_stride = 4096 / sizeof(double);
// Resident memory is sampled this often while a checkpointer's saves run.
constexpr auto resident_period = std::chrono::milliseconds(1);
// Targets. Steady-state stall as a multiple of a memcpy of the same bytes; extra resident memory
// beyond the staging memory a mode needs (the state for copy, the budget for bounded).
constexpr double copy_stall_target = 1.2;
constexpr double zero_copy_stall_target = 0.05;
constexpr std::int64_t memory_slack_mib = 64;

double async_value(std::int64_t global_index) {
  return std::ldexp(5.0, 44) + static_cast<double>(global_index);
}

double to_mib(std::int64_t bytes) {
  return static_cast<double>(bytes) / static_cast<double>(mib);
}

// Page faults (minor and major) taken so far by the calling thread (the whole process where the
// system cannot count per thread).
double page_faults() {
#ifdef RUSAGE_THREAD
  const int who = RUSAGE_THREAD;
#else
  const int who = RUSAGE_SELF;
#endif
  struct rusage usage {};
  if (::getrusage(who, &usage) != 0) return 0.0;
  return static_cast<double>(usage.ru_minflt + usage.ru_majflt);
}

// Reads this process's resident set size from /proc/self/statm (the whole process, every thread).
class ResidentReader {
 public:
  ResidentReader() : m_fd(::open("/proc/self/statm", O_RDONLY | O_CLOEXEC)), m_page(::sysconf(_SC_PAGESIZE)) {}

  // Bytes resident now; -1 when unknown.
  std::int64_t bytes() const {
    if (m_fd.get() < 0) return -1;
    char text[128];
    const ssize_t n = ::pread(m_fd.get(), text, sizeof text - 1, 0);
    if (n <= 0) return -1;
    text[n] = '\0';
    long long size = 0;
    long long resident = 0;
    if (std::sscanf(text, "%lld %lld", &size, &resident) != 2) return -1;
    return static_cast<std::int64_t>(resident) * m_page;
  }

 private:
  Fd m_fd;
  std::int64_t m_page;
};

// Samples the resident set size every resident_period on a thread of its own, from construction
// until stop(), and keeps the largest value seen.
class PeakResident {
 public:
  PeakResident() : m_peak(m_reader.bytes()), m_thread([this] { sample(); }) {}
  ~PeakResident() { (void)stop(); }
  PeakResident(const PeakResident&) = delete;
  PeakResident& operator=(const PeakResident&) = delete;

  // Stops sampling (after one last sample); the peak in bytes, -1 when unknown.
  std::int64_t stop() {
    if (m_thread.joinable()) {
      m_stop.store(true);
      m_thread.join();
      note(m_reader.bytes());
    }
    return m_peak;
  }

 private:
  void sample() {
    while (!m_stop.load()) {
      note(m_reader.bytes());
      std::this_thread::sleep_for(resident_period);
    }
  }
  // Written by the sampler until it is joined, then by the joining thread.
  void note(std::int64_t bytes) { m_peak = std::max(m_peak, bytes); }

  ResidentReader m_reader;
  std::atomic<bool> m_stop{false};
  std::int64_t m_peak;
  std::thread m_thread;  // last: starts once the members it reads exist
};

// One staging mode measured with a checkpointer of its own.
struct ModeResult {
  std::string name;  // copy, zero-copy, bounded
  cairn::StagingMode mode = cairn::StagingMode::Copy;
  // The first save (plan, staging allocation, page faults), the slowest rank's.
  double first_call_s = 0, first_stall_s = 0, first_write_s = 0, first_faults = 0;
  // The steady saves, one value per run, each the slowest rank's: wall time around async_save(),
  // SaveTimings::stall_seconds, stage_seconds, write_seconds + commit_seconds, and the page faults
  // the calling thread took inside async_save() (staging runs there).
  std::vector<double> call_s, stall_s, stage_s, write_s, faults;
  // Resident memory, MiB, each the largest over ranks: just before this mode's checkpointer was
  // made, and the peak while its saves ran. `extra` is the peak over the resident size before the
  // process made its first checkpointer (the state allocated and touched, nothing saved yet): what
  // MPI-IO, HDF5 or the allocator keep from the modes measured earlier counts too, as it would in a
  // simulation that saves again and again. `own` is the peak over the size just before this
  // mode's checkpointer: it leaves out what earlier modes left behind. Per rank, then the largest.
  double rss_before_mib = 0, rss_peak_mib = 0, rss_extra_mib = 0, rss_own_mib = 0;
};

struct AsyncResult {
  double rss_fresh_mib = 0;       // resident before the first checkpointer, the largest over ranks
  std::vector<double> memcpy_s;   // the baseline: one value per run, the slowest rank's
  std::vector<ModeResult> modes;  // in the order measured: bounded, zero-copy, copy
};

class AsyncBench {
 public:
  AsyncBench(const Options& options, std::string work)
      : m_options(options),
        m_work(std::move(work)),
        m_rank(world_rank()),
        m_size(world_size()),
        m_rows(options.mib_per_rank * mib / (async_cols * static_cast<std::int64_t>(sizeof(double)))),
        m_elems(m_rows * async_cols) {}

  // Collective. Measures bounded, zero-copy and copy staging, each with a fresh checkpointer, in
  // that order; the memcpy baseline runs alternate with the copy saves.
  AsyncResult run() {
    m_array.resize(static_cast<std::size_t>(m_elems));
    const std::int64_t first = m_rank * m_elems;
    for (std::int64_t i = 0; i < m_elems; ++i) m_array[static_cast<std::size_t>(i)] = async_value(first + i);
    m_state.add_array<double>("fields/data", {m_size * m_rows, async_cols}, {m_rank * m_rows, 0}, {m_rows, async_cols},
                              m_array.data());
    m_state.add_scalar("step", m_step);
    // The baseline's destination, touched in full now so that the timed copies take no page fault.
    m_scratch.assign(m_array.size(), 0.0);

    AsyncResult result;
    MPI_Barrier(MPI_COMM_WORLD);
    m_fresh = ResidentReader().bytes();
    result.rss_fresh_mib = max_over_ranks(to_mib(m_fresh));
    result.modes.push_back(measure("bounded", cairn::StagingMode::Bounded, nullptr));
    result.modes.push_back(measure("zero-copy", cairn::StagingMode::ZeroCopy, nullptr));
    result.modes.push_back(measure("copy", cairn::StagingMode::Copy, &result.memcpy_s));
    return result;
  }

 private:
  // The cheap change between saves: one element per page and the step.
  void touch() {
    ++m_step;
    const std::int64_t first = m_rank * m_elems;
    for (std::size_t i = 0; i < m_array.size(); i += touch_stride)
      m_array[i] = async_value(first + static_cast<std::int64_t>(i)) + static_cast<double>(m_step);
  }

  double timed_memcpy() {
    const double seconds =
        timed([&] { std::memcpy(m_scratch.data(), m_array.data(), m_array.size() * sizeof(double)); });
    m_sink = m_sink + m_scratch.back();  // the copy is read, so it stays
    return seconds;
  }

  // Collective: one first save and --runs steady saves through a new checkpointer, resident
  // memory sampled throughout; with `memcpy_s`, a timed memcpy before each steady save.
  ModeResult measure(const std::string& name, cairn::StagingMode mode, std::vector<double>* memcpy_s) {
    ModeResult result;
    result.name = name;
    result.mode = mode;
    cairn::SaveOptions options;
    options.staging = mode;
    options.staging_budget_bytes = static_cast<std::size_t>(m_options.budget_mib * mib);

    MPI_Barrier(MPI_COMM_WORLD);
    const std::int64_t before = ResidentReader().bytes();
    PeakResident peak;
    std::string previous;
    {
      cairn::Checkpointer checkpointer(MPI_COMM_WORLD);
      for (int i = 0; i <= m_options.runs; ++i) {
        // Outside the timed region: the previous save is complete (get() below), so even a
        // zero-copy save's buffers may change.
        if (!previous.empty()) remove_path(previous, m_work);
        touch();
        if (i > 0 && memcpy_s != nullptr) memcpy_s->push_back(timed_memcpy());
        const std::string path = m_work + "/async_" + name + "_" + std::to_string(i);
        cairn::SaveFuture future;
        double faults = 0.0;
        const double call = timed([&] {
          faults = page_faults();
          future = checkpointer.async_save(m_state, path, options);
          faults = page_faults() - faults;
        });
        faults = max_over_ranks(faults);
        future.get();
        const cairn::SaveTimings t = future.timings();
        const double stall = max_over_ranks(t.stall_seconds);
        const double stage = max_over_ranks(t.stage_seconds);
        const double write = max_over_ranks(t.write_seconds + t.commit_seconds);
        if (i == 0) {
          result.first_call_s = call;
          result.first_stall_s = stall;
          result.first_write_s = write;
          result.first_faults = faults;
        } else {
          result.call_s.push_back(call);
          result.stall_s.push_back(stall);
          result.stage_s.push_back(stage);
          result.write_s.push_back(write);
          result.faults.push_back(faults);
        }
        previous = path;
      }
      const std::int64_t top = peak.stop();
      const bool known = all_ranks(m_fresh >= 0 && before >= 0 && top >= 0);
      result.rss_before_mib = known ? max_over_ranks(to_mib(before)) : -1.0;
      result.rss_peak_mib = known ? max_over_ranks(to_mib(top)) : -1.0;
      result.rss_extra_mib = known ? max_over_ranks(to_mib(top - m_fresh)) : -1.0;
      result.rss_own_mib = known ? max_over_ranks(to_mib(top - before)) : -1.0;
    }
    remove_path(previous, m_work);
    return result;
  }

  const Options& m_options;
  std::string m_work;
  int m_rank;
  int m_size;
  std::int64_t m_rows;   // rows of the array per rank
  std::int64_t m_elems;  // elements of the array per rank
  std::vector<double> m_array;
  std::int64_t m_step = 0;
  cairn::State m_state;
  std::vector<double> m_scratch;
  double m_sink = 0.0;
  std::int64_t m_fresh = -1;  // resident bytes before the first checkpointer
};

struct ModeTargets {
  double stall_over_memcpy = -1.0;  // -1: none
  double extra_mib = -1.0;
};

ModeTargets targets(const ModeResult& m, const Options& options) {
  ModeTargets t;
  if (m.mode == cairn::StagingMode::Copy) {
    t.stall_over_memcpy = copy_stall_target;
    t.extra_mib = static_cast<double>(options.mib_per_rank + memory_slack_mib);
  } else if (m.mode == cairn::StagingMode::ZeroCopy) {
    t.stall_over_memcpy = zero_copy_stall_target;
  } else {
    t.extra_mib = static_cast<double>(options.budget_mib + memory_slack_mib);
  }
  return t;
}

std::string mode_label(const ModeResult& m, const Options& options) {
  if (m.mode != cairn::StagingMode::Bounded) return m.name;
  return m.name + " (" + std::to_string(options.budget_mib) + " MiB)";
}

const char* verdict(bool has_target, bool met) {
  return !has_target ? "info" : met ? "met" : "MISSED";
}

void print_async_json(const AsyncResult& r, const Options& options, int ranks) {
  const double memcpy_median = median(r.memcpy_s);
  std::string line =
      "{\"op\":\"async\",\"ranks\":" + std::to_string(ranks) +
      ",\"mib_per_rank\":" + std::to_string(options.mib_per_rank) + ",\"runs\":" + std::to_string(options.runs) +
      ",\"budget_mib\":" + std::to_string(options.budget_mib) + ",\"rss_fresh_mib\":" + json_number(r.rss_fresh_mib) +
      ",\"memcpy_s\":" + json_list(r.memcpy_s) + ",\"memcpy_median_s\":" + json_number(memcpy_median) + ",\"modes\":{";
  for (std::size_t i = 0; i < r.modes.size(); ++i) {
    const ModeResult& m = r.modes[i];
    const ModeTargets t = targets(m, options);
    line += std::string(i ? "," : "") + "\"" + m.name + "\":{\"first_call_s\":" + json_number(m.first_call_s) +
            ",\"first_stall_s\":" + json_number(m.first_stall_s) +
            ",\"first_write_s\":" + json_number(m.first_write_s) + ",\"call_s\":" + json_list(m.call_s) +
            ",\"stall_s\":" + json_list(m.stall_s) + ",\"stage_s\":" + json_list(m.stage_s) +
            ",\"write_s\":" + json_list(m.write_s) + ",\"call_median_s\":" + json_number(median(m.call_s)) +
            ",\"stall_median_s\":" + json_number(median(m.stall_s)) +
            ",\"write_median_s\":" + json_number(median(m.write_s)) +
            ",\"first_faults\":" + json_number(m.first_faults) + ",\"faults\":" + json_list(m.faults) +
            ",\"call_over_memcpy\":" + json_number(ratio(median(m.call_s), memcpy_median)) +
            ",\"stall_over_memcpy\":" + json_number(ratio(median(m.stall_s), memcpy_median)) +
            ",\"target_call_over_memcpy\":" +
            (t.stall_over_memcpy < 0 ? std::string("null") : json_number(t.stall_over_memcpy)) +
            ",\"rss_before_mib\":" + json_number(m.rss_before_mib) + ",\"rss_own_mib\":" + json_number(m.rss_own_mib) +
            ",\"rss_peak_mib\":" + json_number(m.rss_peak_mib) + ",\"rss_extra_mib\":" + json_number(m.rss_extra_mib) +
            ",\"target_rss_extra_mib\":" + (t.extra_mib < 0 ? std::string("null") : json_number(t.extra_mib)) + "}";
  }
  line += "},\"cairn_version\":\"" + std::string(cairn::version()) + "\"}";
  std::printf("%s\n", line.c_str());
}

void print_async_table(const AsyncResult& r, const Options& options, int ranks) {
  const double memcpy_median = median(r.memcpy_s);
  const auto ms = [](double seconds) { return 1e3 * seconds; };
  std::printf(
      "cairn_bench async_save (Cairn %s): %d rank%s, %lld MiB per rank (one float64 array and an int64 step); "
      "each mode: a first save, then the median of %d saves\n",
      cairn::version(), ranks, ranks == 1 ? "" : "s", static_cast<long long>(options.mib_per_rank), options.runs);
  std::printf(
      "call = the slowest rank's wall time inside async_save() (each save is waited for before the next call); "
      "stall = SaveTimings::stall_seconds\nbaseline: memcpy of the same %lld MiB per rank into a pre-faulted "
      "buffer, the slowest rank, median of %d runs alternating with the copy saves\n\n",
      static_cast<long long>(options.mib_per_rank), options.runs);
  const char* head = "%-16s %9s %9s %9s %9s %10s %7s %7s %11s %8s %10s %6s\n";
  std::printf(head, "stall (ms)", "first", "call", "stall", "stage", "write", "faults1", "faults", "call/memcpy",
              "target", "stall/mcpy", "");
  std::printf("%-16s %9s %9.3f %9s %9s %10s %7s %7s %11.3f %8s %10s %6s\n", "memcpy", "-", ms(memcpy_median), "-", "-",
              "-", "-", "-", 1.0, "", "", "");
  for (const ModeResult& m : r.modes) {
    const ModeTargets t = targets(m, options);
    const double over = ratio(median(m.call_s), memcpy_median);
    const std::string target = t.stall_over_memcpy < 0 ? "" : "<= " + json_number(t.stall_over_memcpy);
    std::printf("%-16s %9.3f %9.3f %9.3f %9.3f %10.3f %7.0f %7.0f %11.3f %8s %10.3f %6s\n",
                mode_label(m, options).c_str(), ms(m.first_call_s), ms(median(m.call_s)), ms(median(m.stall_s)),
                ms(median(m.stage_s)), ms(median(m.write_s)), m.first_faults, median(m.faults), over, target.c_str(),
                ratio(median(m.stall_s), memcpy_median),
                verdict(t.stall_over_memcpy >= 0, over <= t.stall_over_memcpy));
  }
  std::printf(
      "(first: the first save's call, with planning, staging allocation and page faults; stage: "
      "SaveTimings::stage_seconds;\n write: write_seconds + commit_seconds on the worker, after the call returned, "
      "for context; faults1, faults: page faults\n the calling thread took inside the first call and (median) a "
      "steady call)\n\n");

  std::printf(
      "memory: resident set (/proc/self/statm, sampled every %lld ms) per rank, the largest over ranks; each mode "
      "with a fresh checkpointer,\nmeasured in the order shown. no ckpt: before the first checkpointer (state "
      "allocated and touched) = %.1f MiB;\nbefore: just before this mode's checkpointer; peak: while its saves ran; "
      "extra = peak - no ckpt (checked); own = peak - before\n",
      static_cast<long long>(resident_period.count()), r.rss_fresh_mib);
  std::printf("%-16s %10s %10s %10s %10s %10s %7s\n", "memory (MiB)", "before", "peak", "extra", "own", "target", "");
  for (const ModeResult& m : r.modes) {
    const ModeTargets t = targets(m, options);
    const std::string target = t.extra_mib < 0 ? "" : "<= " + json_number(t.extra_mib);
    std::printf("%-16s %10.1f %10.1f %10.1f %10.1f %10s %7s\n", mode_label(m, options).c_str(), m.rss_before_mib,
                m.rss_peak_mib, m.rss_extra_mib, m.rss_own_mib, target.c_str(),
                verdict(t.extra_mib >= 0 && m.rss_extra_mib >= 0, m.rss_extra_mib <= t.extra_mib));
  }
  std::printf("\nrun times (ms), the slowest rank's, first save excluded:\n");
  std::printf("  %-24s", "memcpy");
  for (double s : r.memcpy_s) std::printf(" %.3f", ms(s));
  std::printf("\n");
  for (const ModeResult& m : r.modes) {
    const std::pair<const char*, const std::vector<double>*> rows[] = {
        {"call", &m.call_s}, {"stall", &m.stall_s}, {"write", &m.write_s}};
    for (const auto& [what, times] : rows) {
      std::printf("  %-24s", (mode_label(m, options) + " " + what).c_str());
      for (double s : *times) std::printf(" %.3f", ms(s));
      std::printf("\n");
    }
  }
}

// Collective: rank 0 makes a private directory under `dir`; "" on every rank when it cannot.
std::string make_work_dir(const std::string& dir) {
  std::string work;
  if (world_rank() == 0) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    std::string pattern = dir + "/cairn_bench.XXXXXX";
    if (::mkdtemp(pattern.data()) != nullptr) {
      work = pattern;
    } else {
      std::fprintf(stderr, "cairn_bench: cannot create a directory in '%s': %s\n", dir.c_str(), std::strerror(errno));
    }
  }
  broadcast_string(work);
  return work;
}

int run(int argc, char** argv) {
  const int rank = world_rank();
  const int size = world_size();
  Options options;
  const std::string error = parse_args(argc, argv, options);
  if (options.help || !error.empty()) {
    if (rank == 0) {
      if (!error.empty()) std::fprintf(stderr, "cairn_bench: %s\n", error.c_str());
      std::fprintf(error.empty() ? stdout : stderr, "%s", usage_text);
    }
    return error.empty() ? 0 : 2;
  }
  const std::string work = make_work_dir(options.dir);
  if (work.empty()) return 1;

  std::vector<Result> results;
  std::int64_t bytes = 0;
  if (options.op != "async") {
    Bench bench(options, work);
    bytes = bench.total_bytes();
    const bool all = options.op == "all";
    auto report = [&](Result r) {
      results.push_back(std::move(r));
      if (rank == 0 && options.json) print_json(results.back(), options, size, bytes);
      std::fflush(stdout);
    };
    if (options.op == "save" || all) report(bench.save(false));
    if (options.op == "tune") report(bench.save(true));
    if (options.op == "load" || all) report(bench.load());
    if (options.op == "reshard" || all) report(bench.reshard());
  }
  AsyncResult async_result;
  const bool async = options.op == "async" || options.op == "all";
  if (async) {
    async_result = AsyncBench(options, work).run();
    if (rank == 0 && options.json) print_async_json(async_result, options, size);
    std::fflush(stdout);
  }
  remove_path(work, options.dir);
  if (rank == 0 && !options.json) {
    if (!results.empty()) print_table(results, options, size, bytes);
    if (!results.empty() && async) std::printf("\n");
    if (async) print_async_table(async_result, options, size);
  }
  std::fflush(stdout);
  for (const Result& r : results)
    if (!r.verified) {
      if (rank == 0) std::fprintf(stderr, "cairn_bench: the loaded data differ from what was saved\n");
      return 1;
    }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int rc = 1;
  try {
    rc = run(argc, argv);
  } catch (const std::exception& e) {
    // Other ranks may be inside a collective call: abort the job rather than hang it.
    std::fprintf(stderr, "cairn_bench: rank %d: error: %s\n", world_rank(), e.what());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Finalize();
  return rc;
}
