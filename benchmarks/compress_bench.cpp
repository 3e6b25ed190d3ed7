// cairn_compress_bench: what compression per entry (ArrayEntry::compress) buys and costs. At P ranks
// it saves and loads (a) a smooth heat3d-like float64 temperature field (a Gaussian hot spot on a
// sinusoidal background, with the small noise a solver's round-off leaves) and (b) random float64
// data, with no compression, deflate level 1, deflate at its default level (6) and zstd at its
// default level (3), on the hdf5 and posix backends, and reports per method the compression ratio
// (logical bytes / bytes on disk) and the save and load throughput of logical bytes beside the
// uncompressed save of the same backend from the same run.
//
//   mpirun -np P cairn_compress_bench [--mib-per-rank N] [--runs R] --dir DIR [--json]
//
// Runs alternate between the methods (none, deflate-1, deflate, zstd, none, ...); each figure is
// the median over the runs. Page caches are dropped (fsync + POSIX_FADV_DONTNEED) before every load;
// every load is checked against the saved bytes on every rank.
#include <cairn/cairn.hpp>

#include "bench_support.hpp"

#include <fcntl.h>
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

struct Options {
  std::int64_t mib_per_rank = 64;
  int runs = 3;
  std::string dir;
  bool json = false;
  bool help = false;
};

const char* usage_text =
    "usage: mpirun -np P cairn_compress_bench [--mib-per-rank N] [--runs R] --dir DIR [--json]\n"
    "  --mib-per-rank  MiB of float64 field per rank (integer >= 1); default 64\n"
    "  --runs          runs per method; each figure is the median; default 3\n"
    "  --dir           directory to write in; a private subdirectory is made there and removed at the end\n"
    "  --json          print one JSON object per line instead of a table\n";

// "" or what is wrong with the command line.
std::string parse(int argc, char** argv, Options& o) {
  using cairn::bench::option_value;
  using cairn::bench::parse_int;
  bool have_dir = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    std::string v;
    std::int64_t n = 0;
    if (arg == "--help" || arg == "-h") {
      o.help = true;
    } else if (arg == "--json") {
      o.json = true;
    } else if (arg == "--mib-per-rank") {
      if (!option_value(argc, argv, i, v) || !parse_int(v, 1, 1 << 20, n))
        return "--mib-per-rank needs an integer >= 1";
      o.mib_per_rank = n;
    } else if (arg == "--runs") {
      if (!option_value(argc, argv, i, v) || !parse_int(v, 1, 1000, n)) return "--runs needs an integer >= 1";
      o.runs = static_cast<int>(n);
    } else if (arg == "--dir") {
      if (!option_value(argc, argv, i, v) || v.empty()) return "--dir needs a directory";
      o.dir = v;
      have_dir = true;
    } else {
      return "unknown argument '" + arg + "'";
    }
  }
  if (!have_dir && !o.help) return "--dir is required";
  return {};
}

constexpr double kPi = 3.14159265358979323846;

std::uint64_t mix(std::uint64_t x) {  // splitmix64's finalizer: a hash of the index
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// The heat3d example's field after some diffusion: its hot sphere smoothed into a Gaussian on the
// same background, plus noise of relative size 1e-9 (a solver's values use every mantissa bit).
double heat_value(std::int64_t i, std::int64_t j, std::int64_t k, std::int64_t ni, std::int64_t n) {
  const double x = (static_cast<double>(i) + 0.5) / static_cast<double>(ni);
  const double y = (static_cast<double>(j) + 0.5) / static_cast<double>(n);
  const double z = (static_cast<double>(k) + 0.5) / static_cast<double>(n);
  const double dx = x - 0.35, dy = y - 0.6, dz = z - 0.45;
  const double spot = std::exp(-(dx * dx + dy * dy + dz * dz) / (2 * 0.12 * 0.12));
  const double background = 0.25 * std::sin(kPi * x) * std::cos(0.5 * kPi * y) * (1.0 + z) + 0.1 * x * y;
  const auto linear = static_cast<std::uint64_t>((i * n + j) * n + k);
  const double noise = (static_cast<double>(mix(linear) >> 11) * 0x1.0p-53 - 0.5) * 1e-9;
  return spot + background + noise;
}

double random_value(std::int64_t linear) {
  const std::uint64_t bits = mix(static_cast<std::uint64_t>(linear) + 0x5151);
  return static_cast<double>(bits >> 11) * 0x1.0p-53 * 2.0 - 1.0;
}

struct Method {
  const char* name;
  cairn::Compression compression;
  int level;
};

double max_over_ranks(double v) {
  double out = v;
  MPI_Allreduce(&v, &out, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return out;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Every rank: fsync and drop from the page cache each file of `dir` (a rank reads others' files too).
void drop_page_cache(const std::string& dir) {
  std::error_code ec;
  for (const auto& f : fs::recursive_directory_iterator(dir, ec)) {
    if (!f.is_regular_file(ec)) continue;
    const int fd = ::open(f.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    (void)::fsync(fd);
    (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}

std::int64_t bytes_on_disk(const std::string& dir) {
  std::int64_t total = 0;
  std::error_code ec;
  for (const auto& f : fs::recursive_directory_iterator(dir, ec))
    if (f.is_regular_file(ec)) total += static_cast<std::int64_t>(f.file_size(ec));
  return total;
}

struct Measured {
  std::vector<double> save_s, load_s;
  std::int64_t stored = 0;
  bool verified = true;
};

std::string json_number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", std::isfinite(v) ? v : 0.0);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  // Saves here are synchronous; MULTIPLE only keeps Cairn's worker thread usable.
  const cairn::bench::MpiSession mpi(argc, argv, MPI_THREAD_MULTIPLE);
  const int rank = mpi.rank(), size = mpi.size();
  Options o;
  if (const std::string problem = parse(argc, argv, o); !problem.empty() || o.help)
    return cairn::bench::print_usage(rank, "cairn_compress_bench", problem, usage_text);
  int status = 0;
  std::string root;
  try {
    // A (P * rows, n, n) float64 field in slabs of the first dimension, mib_per_rank MiB per rank.
    const std::int64_t n = 128;
    const std::int64_t rows = std::max<std::int64_t>(1, o.mib_per_rank * (std::int64_t{1} << 20) / (n * n * 8));
    const std::int64_t ni = rows * size, begin = rows * rank;
    const auto count = static_cast<std::size_t>(rows * n * n);
    const double logical = static_cast<double>(ni * n * n * 8);  // bytes, all ranks
    const double mib = logical / (1024.0 * 1024.0);

    std::vector<Method> methods = {{"none", cairn::Compression::None, 0},
                                   {"deflate-1", cairn::Compression::Deflate, 1},
                                   {"deflate", cairn::Compression::Deflate, 0},
                                   {"zstd", cairn::Compression::Zstd, 0}};
    const char* datasets[] = {"heat3d", "random"};
    const char* backends[] = {"hdf5", "posix"};
    root = cairn::bench::make_run_dir(o.dir, "cairn_compress_bench");
    cairn::Checkpointer ck(MPI_COMM_WORLD);
    std::vector<double> field(count), back(count);

    if (!o.json && rank == 0)
      std::printf("cairn_compress_bench: %d ranks, %lld MiB per rank (%lld x %lld x %lld float64), %d runs, medians\n",
                  size, static_cast<long long>(o.mib_per_rank), static_cast<long long>(ni), static_cast<long long>(n),
                  static_cast<long long>(n), o.runs);
    for (const char* data : datasets) {
      for (std::int64_t i = 0; i < rows; ++i)
        for (std::int64_t j = 0; j < n; ++j)
          for (std::int64_t k = 0; k < n; ++k) {
            const auto at = static_cast<std::size_t>((i * n + j) * n + k);
            field[at] = std::strcmp(data, "heat3d") == 0 ? heat_value(begin + i, j, k, ni, n)
                                                         : random_value(((begin + i) * n + j) * n + k);
          }
      for (const char* backend : backends) {
        std::vector<Measured> results(methods.size());
        std::vector<bool> refused(methods.size(), false);
        for (int run = 0; run < o.runs; ++run) {
          for (std::size_t m = 0; m < methods.size(); ++m) {
            if (refused[m]) continue;
            const std::string id = root + "/" + data + "_" + backend + "_" + methods[m].name;
            cairn::State state;
            state.add_array("fields/temperature", {ni, n, n}, {begin, 0, 0}, {rows, n, n}, field.data())
                .compress(methods[m].compression, methods[m].level);
            cairn::SaveOptions save;
            save.overwrite = true;
            if (std::strcmp(backend, "posix") == 0) save.writer = cairn::make_posix_writer();
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            try {
              ck.save(state, id, save);
            } catch (const cairn::UnsupportedError& e) {  // zstd in a build without libzstd
              if (rank == 0) std::fprintf(stderr, "%s: %s\n", methods[m].name, e.what());
              refused[m] = true;
              continue;
            }
            results[m].save_s.push_back(max_over_ranks(MPI_Wtime() - t0));
            std::int64_t stored = rank == 0 ? bytes_on_disk(id) : 0;
            MPI_Bcast(&stored, 1, MPI_INT64_T, 0, MPI_COMM_WORLD);
            results[m].stored = stored;

            drop_page_cache(id);
            std::fill(back.begin(), back.end(), -7.0);
            cairn::State load;
            load.add_array("fields/temperature", {ni, n, n}, {begin, 0, 0}, {rows, n, n}, back.data());
            MPI_Barrier(MPI_COMM_WORLD);
            t0 = MPI_Wtime();
            ck.load(load, id);
            results[m].load_s.push_back(max_over_ranks(MPI_Wtime() - t0));
            int same = std::memcmp(back.data(), field.data(), count * sizeof(double)) == 0 ? 1 : 0;
            MPI_Allreduce(MPI_IN_PLACE, &same, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
            results[m].verified = results[m].verified && same == 1;
            if (same != 1) status = 1;
            MPI_Barrier(MPI_COMM_WORLD);
            if (rank == 0) fs::remove_all(id);
          }
        }
        if (rank != 0) continue;
        const double none_save = mib / median(results[0].save_s), none_load = mib / median(results[0].load_s);
        if (!o.json) {
          std::printf("\n%s field on %s\n", data, backend);
          std::printf("  %-10s %8s %12s %12s %10s %10s %s\n", "method", "ratio", "save MiB/s", "load MiB/s",
                      "save/none", "load/none", "verified");
        }
        for (std::size_t m = 0; m < methods.size(); ++m) {
          if (refused[m]) continue;
          const Measured& r = results[m];
          const double ratio = r.stored > 0 ? logical / static_cast<double>(r.stored) : 0.0;
          const double save = mib / median(r.save_s), load = mib / median(r.load_s);
          if (o.json) {
            std::string line =
                std::string("{\"bench\":\"compress\",\"data\":\"") + data + "\",\"backend\":\"" + backend +
                "\",\"method\":\"" + methods[m].name + "\",\"ranks\":" + std::to_string(size) +
                ",\"mib_per_rank\":" + std::to_string(o.mib_per_rank) + ",\"runs\":" + std::to_string(o.runs) +
                ",\"logical_bytes\":" + std::to_string(static_cast<long long>(logical)) +
                ",\"stored_bytes\":" + std::to_string(r.stored) + ",\"ratio\":" + json_number(ratio) +
                ",\"save_mib_s\":" + json_number(save) + ",\"load_mib_s\":" + json_number(load) +
                ",\"none_save_mib_s\":" + json_number(none_save) + ",\"none_load_mib_s\":" + json_number(none_load) +
                ",\"verified\":" + (r.verified ? "true" : "false") + ",\"cairn_version\":\"" + cairn::version() + "\"}";
            std::printf("%s\n", line.c_str());
          } else {
            std::printf("  %-10s %8.3f %12.1f %12.1f %10.2f %10.2f %s\n", methods[m].name, ratio, save, load,
                        save / none_save, load / none_load, r.verified ? "yes" : "NO");
          }
        }
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cairn_compress_bench: rank %d: %s\n", rank, e.what());
    status = 1;
  }
  if (!root.empty()) cairn::bench::remove_run_dir(root);
  return status;
}
