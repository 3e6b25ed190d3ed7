// cairn_bench: Cairn's save and load throughput beside two hand-written baselines, measured in one
// run under mpirun so that all three see the same machine, disk and moment:
//   posix  raw POSIX, one file per rank: pwrite in large pieces, fsync (load: pread);
//   hdf5   collective parallel HDF5: one global float64 dataset, one hyperslab per rank, flushed,
//          closed and fsync'd (Cairn's save is durable, so the baseline is too).
// Runs alternate (cairn, posix, hdf5, cairn, ...) and each figure is the median of the runs.
// Usage and output are described in benchmarks/README.md and by --help.
#include <cairn/cairn.hpp>

#include <hdf5.h>
#include <mpi.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
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
double baseline_value(std::int64_t global_index) {
  return std::ldexp(7.0, 44) + static_cast<double>(global_index);
}

// ---------------------------------------------------------------------------------------------
// Command line

struct Options {
  std::string op = "all";  // save, load or all
  std::int64_t mib_per_rank = 64;
  int runs = 5;
  std::string dir;
  bool json = false;
  bool help = false;
};

const char* usage_text =
    "usage: mpirun -np P cairn_bench [--op save|load|all] [--mib-per-rank N] [--runs R] --dir DIR [--json]\n"
    "  --op            save, load, or all (save then load); default all\n"
    "  --mib-per-rank  MiB of state per rank (integer >= 1); default 64\n"
    "  --runs          runs per method; each figure is the median; default 5\n"
    "  --dir           directory to write in; a private subdirectory is made there and removed at the end\n"
    "  --json          print one JSON object per line instead of a table\n";

bool parse_int(const std::string& text, std::int64_t& out) {
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || end == nullptr || *end != '\0') return false;
  out = value;
  return true;
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
      if (value != "save" && value != "load" && value != "all")
        return "--op must be save, load or all, not '" + value + "'";
      options.op = value;
    } else if (arg == "--mib-per-rank") {
      std::int64_t n = 0;
      if (!next_value() || !parse_int(value, n) || n < 1 || n > (std::int64_t{1} << 20))
        return "--mib-per-rank needs an integer >= 1";
      options.mib_per_rank = n;
    } else if (arg == "--runs") {
      std::int64_t n = 0;
      if (!next_value() || !parse_int(value, n) || n < 1 || n > 100000) return "--runs needs an integer >= 1";
      options.runs = static_cast<int>(n);
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

// Writes `bytes` bytes to a new file with pwrite in large pieces, then fsync.
void posix_write_file(const std::string& path, const void* data, std::size_t bytes) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (fd.get() < 0) fail_errno("cannot create", path);
  const auto* p = static_cast<const char*>(data);
  std::size_t done = 0;
  while (done < bytes) {
    const std::size_t n = std::min(io_piece, bytes - done);
    const ssize_t written = ::pwrite(fd.get(), p + done, n, static_cast<off_t>(done));
    if (written < 0) {
      if (errno == EINTR) continue;
      fail_errno("pwrite failed on", path);
    }
    done += static_cast<std::size_t>(written);
  }
  if (::fsync(fd.get()) != 0) fail_errno("fsync failed on", path);
  fd.close(path);
}

// Reads exactly `bytes` bytes of `path` with pread in large pieces.
void posix_read_file(const std::string& path, void* data, std::size_t bytes) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) fail_errno("cannot open", path);
  auto* p = static_cast<char*>(data);
  std::size_t done = 0;
  while (done < bytes) {
    const std::size_t n = std::min(io_piece, bytes - done);
    const ssize_t got = ::pread(fd.get(), p + done, n, static_cast<off_t>(done));
    if (got < 0) {
      if (errno == EINTR) continue;
      fail_errno("pread failed on", path);
    }
    if (got == 0) throw std::runtime_error("'" + path + "' is shorter than expected");
    done += static_cast<std::size_t>(got);
  }
  fd.close(path);
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

constexpr const char* hdf5_dataset_name = "data";

// This rank's part of the baseline's global 1-D float64 dataset.
struct Slab {
  std::int64_t offset = 0;  // elements
  std::int64_t count = 0;
  std::int64_t total = 0;
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

// Collective: writes `data` (slab.count doubles) as this rank's hyperslab of a new file; durable
// on return (flush, close, then rank 0 fsyncs the file).
void hdf5_write(const std::string& path, const Slab& slab, const double* data) {
  {
    H5Id fapl = mpio_access();
    H5Id file(H5Fcreate(path.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, fapl.get()), H5Fclose, "H5Fcreate");
    const auto total = static_cast<hsize_t>(slab.total);
    H5Id file_space(H5Screate_simple(1, &total, nullptr), H5Sclose, "H5Screate_simple");
    // As Cairn does: contiguous, allocated at creation, never filled (every byte is written once).
    H5Id dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose, "H5Pcreate(dataset create)");
    h5_check(H5Pset_alloc_time(dcpl.get(), H5D_ALLOC_TIME_EARLY), "H5Pset_alloc_time");
    h5_check(H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER), "H5Pset_fill_time");
    H5Id dset(H5Dcreate2(file.get(), hdf5_dataset_name, H5T_IEEE_F64LE, file_space.get(), H5P_DEFAULT, dcpl.get(),
                         H5P_DEFAULT),
              H5Dclose, "H5Dcreate2");
    const hsize_t start = static_cast<hsize_t>(slab.offset);
    const hsize_t count = static_cast<hsize_t>(slab.count);
    h5_check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, &start, nullptr, &count, nullptr),
             "H5Sselect_hyperslab");
    H5Id mem_space(H5Screate_simple(1, &count, nullptr), H5Sclose, "H5Screate_simple");
    H5Id dxpl = collective_transfer();
    h5_check(H5Dwrite(dset.get(), H5T_NATIVE_DOUBLE, mem_space.get(), file_space.get(), dxpl.get(), data), "H5Dwrite");
    dset.close("the dataset");
    h5_check(H5Fflush(file.get(), H5F_SCOPE_GLOBAL), "H5Fflush");
    file.close("the file");
  }
  if (world_rank() == 0) fsync_path(path);
}

// Collective: reads this rank's hyperslab of the file hdf5_write made.
void hdf5_read(const std::string& path, const Slab& slab, double* data) {
  H5Id fapl = mpio_access();
  H5Id file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get()), H5Fclose, "H5Fopen");
  H5Id dset(H5Dopen2(file.get(), hdf5_dataset_name, H5P_DEFAULT), H5Dclose, "H5Dopen2");
  H5Id file_space(H5Dget_space(dset.get()), H5Sclose, "H5Dget_space");
  const hsize_t start = static_cast<hsize_t>(slab.offset);
  const hsize_t count = static_cast<hsize_t>(slab.count);
  h5_check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, &start, nullptr, &count, nullptr),
           "H5Sselect_hyperslab");
  H5Id mem_space(H5Screate_simple(1, &count, nullptr), H5Sclose, "H5Screate_simple");
  H5Id dxpl = collective_transfer();
  h5_check(H5Dread(dset.get(), H5T_NATIVE_DOUBLE, mem_space.get(), file_space.get(), dxpl.get(), data), "H5Dread");
  dset.close("the dataset");
  file.close("the file");
}

// ---------------------------------------------------------------------------------------------
// The benchmark

// Collective: the slowest rank's wall time of `body`, started together after a barrier.
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

struct Result {
  std::string op;
  std::vector<double> cairn_s, posix_s, hdf5_s;
  double resident_cairn = 0.0, resident_posix = 0.0, resident_hdf5 = 0.0;  // load only
  bool verified = true;
};

class Bench {
 public:
  Bench(const Options& options, std::string work)
      : m_options(options),
        m_work(std::move(work)),
        m_rank(world_rank()),
        m_size(world_size()),
        m_rows(options.mib_per_rank * mib / (n_arrays * row_bytes)),
        m_local_elems(m_rows * row_elems),
        m_checkpointer(MPI_COMM_WORLD) {
    // The baseline's global 1-D dataset: N MiB per rank, rank 0 first with the extras.
    const std::int64_t per_rank = options.mib_per_rank * mib / static_cast<std::int64_t>(sizeof(double));
    m_slab.count = per_rank + (m_rank == 0 ? extra_elems : 0);
    m_slab.offset = m_rank * per_rank + (m_rank > 0 ? extra_elems : 0);
    m_slab.total = m_size * per_rank + extra_elems;
  }

  // Total bytes every method moves: N MiB per rank plus the replicated array and the step, once.
  std::int64_t total_bytes() const { return m_slab.total * static_cast<std::int64_t>(sizeof(double)); }

  Result save() {
    fill_source();
    Result result{"save", {}, {}, {}, 0.0, 0.0, 0.0, true};
    const auto bytes = static_cast<std::size_t>(m_slab.count) * sizeof(double);
    std::string previous_cairn, previous_posix, previous_hdf5;
    for (int i = 0; i < m_options.runs; ++i) {
      const std::string n = std::to_string(i);
      const std::string cairn_path = m_work + "/cairn_run" + n;
      result.cairn_s.push_back(timed([&] { m_checkpointer.save(m_source, cairn_path); }));
      if (!previous_cairn.empty()) remove_path(previous_cairn, m_work);
      previous_cairn = cairn_path;

      const std::string posix_dir = m_work + "/posix_run" + n;
      result.posix_s.push_back(timed([&] {
        if (m_rank == 0 && ::mkdir(posix_dir.c_str(), 0755) != 0) fail_errno("cannot create directory", posix_dir);
        MPI_Barrier(MPI_COMM_WORLD);
        posix_write_file(rank_file(posix_dir), m_baseline.data(), bytes);
      }));
      if (!previous_posix.empty()) remove_path(previous_posix, m_work);
      previous_posix = posix_dir;

      const std::string hdf5_path = m_work + "/hdf5_run" + n + ".h5";
      result.hdf5_s.push_back(timed([&] { hdf5_write(hdf5_path, m_slab, m_baseline.data()); }));
      if (!previous_hdf5.empty()) remove_path(previous_hdf5, m_work);
      previous_hdf5 = hdf5_path;
    }
    remove_path(previous_cairn, m_work);
    remove_path(previous_posix, m_work);
    remove_path(previous_hdf5, m_work);
    return result;
  }

  Result load() {
    fill_source();
    Result result{"load", {}, {}, {}, 0.0, 0.0, 0.0, true};
    const auto bytes = static_cast<std::size_t>(m_slab.count) * sizeof(double);
    // Written once, untimed; then each is read --runs times.
    const std::string cairn_path = m_work + "/cairn_load";
    const std::string posix_dir = m_work + "/posix_load";
    const std::string hdf5_path = m_work + "/hdf5_load.h5";
    m_checkpointer.save(m_source, cairn_path);
    if (m_rank == 0 && ::mkdir(posix_dir.c_str(), 0755) != 0) fail_errno("cannot create directory", posix_dir);
    MPI_Barrier(MPI_COMM_WORLD);
    posix_write_file(rank_file(posix_dir), m_baseline.data(), bytes);
    hdf5_write(hdf5_path, m_slab, m_baseline.data());

    // Destination: a separate state of zeroed buffers of the same structure.
    std::vector<std::vector<double>> arrays(n_arrays, std::vector<double>(static_cast<std::size_t>(m_local_elems)));
    std::vector<double> replicated(static_cast<std::size_t>(replicated_elems));
    std::int64_t step = 0;
    cairn::State target;
    describe(target, arrays, replicated, step);
    std::vector<double> baseline_in(m_baseline.size());

    bool ok = true;
    for (int i = 0; i < m_options.runs; ++i) {
      poison(arrays, replicated, step);
      result.resident_cairn = std::max(result.resident_cairn, drop_all(cairn_path));
      result.cairn_s.push_back(timed([&] { m_checkpointer.load(target, cairn_path); }));
      ok = check_state(arrays, replicated, step, i) && ok;

      poison_baseline(baseline_in);
      result.resident_posix = std::max(result.resident_posix, drop_all(rank_file(posix_dir)));
      result.posix_s.push_back(timed([&] { posix_read_file(rank_file(posix_dir), baseline_in.data(), bytes); }));
      ok = check_baseline(baseline_in, "posix", i) && ok;

      poison_baseline(baseline_in);
      result.resident_hdf5 = std::max(result.resident_hdf5, drop_all(hdf5_path));
      result.hdf5_s.push_back(timed([&] { hdf5_read(hdf5_path, m_slab, baseline_in.data()); }));
      ok = check_baseline(baseline_in, "hdf5", i) && ok;
    }
    result.verified = all_ranks(ok);
    remove_path(cairn_path, m_work);
    remove_path(posix_dir, m_work);
    remove_path(hdf5_path, m_work);
    return result;
  }

 private:
  std::string rank_file(const std::string& dir) const { return dir + "/rank" + std::to_string(m_rank) + ".bin"; }

  void describe(cairn::State& state, std::vector<std::vector<double>>& arrays, std::vector<double>& replicated,
                std::int64_t& step) const {
    const cairn::Extents global{m_size * m_rows, inner_dim, inner_dim};
    const cairn::Extents offset{m_rank * m_rows, 0, 0};
    const cairn::Extents local{m_rows, inner_dim, inner_dim};
    for (int a = 0; a < n_arrays; ++a)
      state.add_array<double>("fields/array" + std::to_string(a), global, offset, local,
                              arrays[static_cast<std::size_t>(a)].data());
    state.add_replicated_array<double>("grid/replicated", {replicated_elems}, replicated.data());
    state.add_scalar("step", step);
  }

  // Allocates and fills the state to save and the baselines' buffer (once).
  void fill_source() {
    if (!m_arrays.empty()) return;
    m_arrays.assign(n_arrays, std::vector<double>(static_cast<std::size_t>(m_local_elems)));
    const std::int64_t first = m_rank * m_local_elems;
    for (int a = 0; a < n_arrays; ++a) {
      double* p = m_arrays[static_cast<std::size_t>(a)].data();
      for (std::int64_t i = 0; i < m_local_elems; ++i) p[i] = array_value(a, first + i);
    }
    m_replicated.resize(static_cast<std::size_t>(replicated_elems));
    for (std::int64_t i = 0; i < replicated_elems; ++i) m_replicated[static_cast<std::size_t>(i)] = replicated_value(i);
    m_step = step_value;
    describe(m_source, m_arrays, m_replicated, m_step);
    m_baseline.resize(static_cast<std::size_t>(m_slab.count));
    for (std::int64_t i = 0; i < m_slab.count; ++i)
      m_baseline[static_cast<std::size_t>(i)] = baseline_value(m_slab.offset + i);
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

  void poison(std::vector<std::vector<double>>& arrays, std::vector<double>& replicated, std::int64_t& step) const {
    for (auto& array : arrays)
      for (std::int64_t at : sample_positions(m_local_elems)) array[static_cast<std::size_t>(at)] = -1.0;
    std::fill(replicated.begin(), replicated.end(), -1.0);
    step = -1;
  }

  void poison_baseline(std::vector<double>& buffer) const {
    for (std::int64_t at : sample_positions(m_slab.count)) buffer[static_cast<std::size_t>(at)] = -1.0;
  }

  bool report_mismatch(const char* what, int run, const std::string& where, double got, double want) const {
    std::fprintf(stderr, "cairn_bench: rank %d, %s load run %d: %s holds %.17g, expected %.17g\n", m_rank, what, run,
                 where.c_str(), got, want);
    return false;
  }

  bool check_state(const std::vector<std::vector<double>>& arrays, const std::vector<double>& replicated,
                   std::int64_t step, int run) const {
    const std::int64_t first = m_rank * m_local_elems;
    for (int a = 0; a < n_arrays; ++a)
      for (std::int64_t at : sample_positions(m_local_elems)) {
        const double got = arrays[static_cast<std::size_t>(a)][static_cast<std::size_t>(at)];
        if (got != array_value(a, first + at))
          return report_mismatch("cairn", run, "fields/array" + std::to_string(a) + " element " + std::to_string(at),
                                 got, array_value(a, first + at));
      }
    for (std::int64_t i = 0; i < replicated_elems; ++i)
      if (replicated[static_cast<std::size_t>(i)] != replicated_value(i))
        return report_mismatch("cairn", run, "grid/replicated element " + std::to_string(i),
                               replicated[static_cast<std::size_t>(i)], replicated_value(i));
    if (step != step_value)
      return report_mismatch("cairn", run, "step", static_cast<double>(step), static_cast<double>(step_value));
    return true;
  }

  bool check_baseline(const std::vector<double>& buffer, const char* what, int run) const {
    for (std::int64_t at : sample_positions(m_slab.count))
      if (buffer[static_cast<std::size_t>(at)] != baseline_value(m_slab.offset + at))
        return report_mismatch(what, run, "element " + std::to_string(at), buffer[static_cast<std::size_t>(at)],
                               baseline_value(m_slab.offset + at));
    return true;
  }

  const Options& m_options;
  std::string m_work;
  int m_rank;
  int m_size;
  std::int64_t m_rows;         // rows of the first dimension per rank and array
  std::int64_t m_local_elems;  // elements per rank and array
  Slab m_slab;
  cairn::Checkpointer m_checkpointer;

  std::vector<std::vector<double>> m_arrays;
  std::vector<double> m_replicated;
  std::int64_t m_step = 0;
  cairn::State m_source;
  std::vector<double> m_baseline;
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

struct Figures {
  double cairn, posix, hdf5;
};

Figures figures(const Result& r, std::int64_t bytes) {
  return {mib_per_s(bytes, median(r.cairn_s)), mib_per_s(bytes, median(r.posix_s)), mib_per_s(bytes, median(r.hdf5_s))};
}

double ratio(double a, double b) {
  return b > 0.0 ? a / b : 0.0;
}

void print_json(const Result& r, const Options& options, int ranks, std::int64_t bytes) {
  const Figures f = figures(r, bytes);
  std::string line =
      "{\"op\":\"" + r.op + "\",\"ranks\":" + std::to_string(ranks) +
      ",\"mib_per_rank\":" + std::to_string(options.mib_per_rank) + ",\"runs\":" + std::to_string(options.runs) +
      ",\"bytes_total\":" + std::to_string(bytes) + ",\"cairn_mib_s\":" + json_number(f.cairn) +
      ",\"posix_mib_s\":" + json_number(f.posix) + ",\"hdf5_mib_s\":" + json_number(f.hdf5) +
      ",\"cairn_over_hdf5\":" + json_number(ratio(f.cairn, f.hdf5)) +
      ",\"cairn_over_posix\":" + json_number(ratio(f.cairn, f.posix)) + ",\"cairn_s\":" + json_list(r.cairn_s) +
      ",\"posix_s\":" + json_list(r.posix_s) + ",\"hdf5_s\":" + json_list(r.hdf5_s);
  if (r.op == "load") {
    line += ",\"reads_may_be_cached\":true,\"resident_after_drop\":{\"cairn\":" + json_number(r.resident_cairn) +
            ",\"posix\":" + json_number(r.resident_posix) + ",\"hdf5\":" + json_number(r.resident_hdf5) +
            "},\"verified\":" + (r.verified ? "true" : "false");
  }
  line += ",\"cairn_version\":\"" + std::string(cairn::version()) + "\"}";
  std::printf("%s\n", line.c_str());
}

void print_table(const std::vector<Result>& results, const Options& options, int ranks, std::int64_t bytes) {
  std::printf(
      "cairn_bench (Cairn %s): %d rank%s, %lld MiB per rank, %.2f MiB in all per run; median of %d runs, "
      "alternating cairn, posix, hdf5\n",
      cairn::version(), ranks, ranks == 1 ? "" : "s", static_cast<long long>(options.mib_per_rank),
      static_cast<double>(bytes) / static_cast<double>(mib), options.runs);
  std::printf("MiB/s is aggregate: all ranks' bytes / the slowest rank's wall time between barriers\n\n");
  std::printf("%-5s %6s %9s %12s %12s %12s %11s %12s\n", "op", "ranks", "MiB/rank", "cairn MiB/s", "posix MiB/s",
              "hdf5 MiB/s", "cairn/hdf5", "cairn/posix");
  for (const Result& r : results) {
    const Figures f = figures(r, bytes);
    std::printf("%-5s %6d %9lld %12.1f %12.1f %12.1f %11.2f %12.2f\n", r.op.c_str(), ranks,
                static_cast<long long>(options.mib_per_rank), f.cairn, f.posix, f.hdf5, ratio(f.cairn, f.hdf5),
                ratio(f.cairn, f.posix));
  }
  std::printf("\nrun times (s):\n");
  for (const Result& r : results) {
    const std::pair<const char*, const std::vector<double>*> rows[] = {
        {"cairn", &r.cairn_s}, {"posix", &r.posix_s}, {"hdf5", &r.hdf5_s}};
    for (const auto& [name, times] : rows) {
      std::printf("  %-5s %-5s", r.op.c_str(), name);
      for (double t : *times) std::printf(" %.4f", t);
      std::printf("\n");
    }
  }
  for (const Result& r : results) {
    if (r.op != "load") continue;
    std::printf(
        "\nnote: reads may be served from the page cache: dropping it (fsync + POSIX_FADV_DONTNEED) is best "
        "effort;\n      largest fraction of pages still resident after the drop: cairn %.0f%%, posix %.0f%%, "
        "hdf5 %.0f%%\n",
        100.0 * r.resident_cairn, 100.0 * r.resident_posix, 100.0 * r.resident_hdf5);
    std::printf("load check (sampled values of every array, the replicated array, the step): %s\n",
                r.verified ? "passed" : "FAILED");
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
  {
    Bench bench(options, work);
    bytes = bench.total_bytes();
    if (options.op == "save" || options.op == "all") {
      results.push_back(bench.save());
      if (rank == 0 && options.json) print_json(results.back(), options, size, bytes);
      std::fflush(stdout);
    }
    if (options.op == "load" || options.op == "all") {
      results.push_back(bench.load());
      if (rank == 0 && options.json) print_json(results.back(), options, size, bytes);
      std::fflush(stdout);
    }
  }
  remove_path(work, options.dir);
  if (rank == 0 && !options.json) print_table(results, options, size, bytes);
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
