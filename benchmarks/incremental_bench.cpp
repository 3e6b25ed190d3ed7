// cairn_incremental_bench: an incremental save (SaveOptions::incremental_from) beside a full save of
// the same state, in one run under mpirun. The state is one float64 array cut into 64 chunks per
// rank; between the base save and the measured saves 10% of the chunks change (the same number on
// every rank). Each run saves the base, changes the chunks, then saves the new state full and
// incrementally from the base (the order alternating from run to run); figures are medians.
// Reported per backend (hdf5, posix): wall time (barrier to barrier), the bytes the ranks wrote
// (SaveTimings::bytes_written), and the checkpoint's file sizes and allocated disk blocks.
// Usage: mpirun -np P cairn_incremental_bench --dir DIR [--mib-per-rank N] [--runs R] [--json]
#include <cairn/cairn.hpp>

#include "bench_support.hpp"

#include <mpi.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

constexpr std::int64_t chunks_per_rank = 64;
constexpr std::int64_t cols = 1024;  // 8 KiB rows
constexpr std::int64_t row_bytes = cols * static_cast<std::int64_t>(sizeof(double));

struct Options {
  std::int64_t mib_per_rank = 64;
  int runs = 5;
  int changed_percent = 10;
  std::vector<std::string> backends = {"hdf5", "posix"};
  std::string dir;
  bool json = false;
};

const char* usage =
    "usage: mpirun -np P cairn_incremental_bench --dir DIR [--mib-per-rank N] [--runs R] [--changed-percent C]\n"
    "                                            [--backends hdf5,posix] [--json]\n"
    "  --mib-per-rank     MiB of state per rank, in 64 chunks (integer >= 1); default 64\n"
    "  --runs             runs; each figure is the median; default 5\n"
    "  --changed-percent  share of the chunks changed between the base and the measured saves; default 10\n"
    "  --backends         hdf5, posix or both (comma-separated); default both\n"
    "  --dir              directory to write in; a private subdirectory is made there and removed at the end\n"
    "  --json             one JSON object per line instead of a table\n";

// "" when the arguments are good, else what is wrong.
std::string parse_args(int argc, char** argv, Options& o) {
  using cairn::bench::option_value;
  using cairn::bench::parse_int;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    std::string v;
    std::int64_t n = 0;
    if (arg == "--json") {
      o.json = true;
    } else if (arg == "--mib-per-rank") {
      if (!option_value(argc, argv, i, v) || !parse_int(v, 1, std::int64_t{1} << 20, n))
        return "--mib-per-rank needs an integer >= 1";
      o.mib_per_rank = n;
    } else if (arg == "--runs") {
      if (!option_value(argc, argv, i, v) || !parse_int(v, 1, 100000, n)) return "--runs needs an integer >= 1";
      o.runs = static_cast<int>(n);
    } else if (arg == "--changed-percent") {
      if (!option_value(argc, argv, i, v) || !parse_int(v, 0, 100, n))
        return "--changed-percent needs an integer from 0 to 100";
      o.changed_percent = static_cast<int>(n);
    } else if (arg == "--backends") {
      if (!option_value(argc, argv, i, v) || v.empty()) return "--backends needs a list";
      o.backends.clear();
      for (std::size_t at = 0; at <= v.size();) {
        const std::size_t comma = std::min(v.find(',', at), v.size());
        const std::string name = v.substr(at, comma - at);
        if (name != "hdf5" && name != "posix") return "--backends takes hdf5 and posix, not '" + name + "'";
        o.backends.push_back(name);
        at = comma + 1;
      }
    } else if (arg == "--dir") {
      if (!option_value(argc, argv, i, o.dir) || o.dir.empty()) return "--dir needs a directory";
    } else {
      return "unknown argument '" + arg + "'";
    }
  }
  if (o.dir.empty()) return "--dir is required";
  return "";
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

// The simulation: chunk k of rank r covers rows [(k * P + r) * rows, ...) of fields/u.
struct Sim {
  int rank = 0, ranks = 1;
  std::int64_t rows = 0;  // per chunk
  std::vector<std::vector<double>> chunks;
  std::vector<std::int64_t> version;

  Sim(int r, int p, std::int64_t mib)
      : rank(r), ranks(p), rows(mib * (std::int64_t{1} << 20) / chunks_per_rank / row_bytes) {
    rows = std::max<std::int64_t>(rows, 1);
    chunks.assign(chunks_per_rank, std::vector<double>(static_cast<std::size_t>(rows * cols)));
    version.assign(chunks_per_rank, 0);
    for (std::int64_t k = 0; k < chunks_per_rank; ++k) fill(k);
  }
  std::int64_t first_row(std::int64_t k) const { return (k * ranks + rank) * rows; }
  void fill(std::int64_t k) {
    const double base = static_cast<double>(first_row(k) * cols) + 1e12 * static_cast<double>(version[k]);
    std::vector<double>& c = chunks[static_cast<std::size_t>(k)];
    for (std::size_t i = 0; i < c.size(); ++i) c[i] = base + static_cast<double>(i);
  }
  // Changes `count` chunks, a different set each run.
  void change(std::int64_t count, int run) {
    for (std::int64_t i = 0; i < count; ++i) {
      const std::int64_t k = (run * count + i + rank) % chunks_per_rank;
      ++version[k];
      fill(k);
    }
  }
  cairn::State state() {
    cairn::State s;
    cairn::ArrayEntry& u =
        s.add_array("fields/u", cairn::DType::Float64, cairn::Extents{chunks_per_rank * ranks * rows, cols});
    for (std::int64_t k = 0; k < chunks_per_rank; ++k)
      u.add_chunk({first_row(k), 0}, {rows, cols}, chunks[static_cast<std::size_t>(k)].data());
    return s;
  }
};

// Sizes of the files under `dir` (rank 0): st_size, and the blocks allocated (holes left out).
void file_bytes(const std::string& dir, double& size, double& disk) {
  size = disk = 0;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec)) {
    struct stat st {};
    if (::stat(e.path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    size += static_cast<double>(st.st_size);
    disk += static_cast<double>(st.st_blocks) * 512.0;
  }
}

struct Series {
  std::vector<double> seconds, written, size, disk;
};

}  // namespace

int main(int argc, char** argv) {
  const cairn::bench::MpiSession mpi(argc, argv, MPI_THREAD_MULTIPLE);
  const int rank = mpi.rank(), ranks = mpi.size();
  Options o;
  const std::string bad = parse_args(argc, argv, o);
  if (!bad.empty()) return cairn::bench::print_usage(rank, "cairn_incremental_bench", bad, usage);
  int status = 0;
  std::string work;
  try {
    work = cairn::bench::make_run_dir(o.dir, "cairn-incremental-bench");
    cairn::Checkpointer ckpt(MPI_COMM_WORLD);
    Sim sim(rank, ranks, o.mib_per_rank);
    const std::int64_t changed = (chunks_per_rank * o.changed_percent + 50) / 100;
    std::vector<Series> full(o.backends.size()), incremental(o.backends.size());
    bool loads_ok = true;
    for (int run = 0; run < o.runs; ++run) {
      for (std::size_t b = 0; b < o.backends.size(); ++b) {
        const std::string prefix = work + "/" + o.backends[b] + "_" + std::to_string(run);
        auto options = [&](const std::string& base) {
          cairn::SaveOptions so;
          if (o.backends[b] == "posix") so.writer = cairn::make_posix_writer();
          so.incremental_from = base;
          return so;
        };
        ckpt.save(sim.state(), prefix + "_base", options(""));
        sim.change(changed, run);
        for (int k = 0; k < 2; ++k) {
          const bool inc = (k == 0) == (run % 2 == 1);  // alternate which goes first
          const std::string id = prefix + (inc ? "_incremental" : "_full");
          MPI_Barrier(MPI_COMM_WORLD);
          const double start = MPI_Wtime();
          cairn::SaveFuture f = ckpt.async_save(sim.state(), id, options(inc ? prefix + "_base" : ""));
          f.get();
          MPI_Barrier(MPI_COMM_WORLD);
          double seconds = MPI_Wtime() - start;
          MPI_Allreduce(MPI_IN_PLACE, &seconds, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
          double written = static_cast<double>(f.timings().bytes_written);
          MPI_Allreduce(MPI_IN_PLACE, &written, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
          double sizes[2] = {0, 0};
          if (rank == 0) file_bytes(id, sizes[0], sizes[1]);
          MPI_Bcast(sizes, 2, MPI_DOUBLE, 0, MPI_COMM_WORLD);
          Series& s = inc ? incremental[b] : full[b];
          s.seconds.push_back(seconds);
          s.written.push_back(written);
          s.size.push_back(sizes[0]);
          s.disk.push_back(sizes[1]);
        }
        // Not timed: the incremental checkpoint reads back as the state, on every rank.
        Sim back(rank, ranks, o.mib_per_rank);
        cairn::State s = back.state();
        ckpt.load(s, prefix + "_incremental");
        int same = back.chunks == sim.chunks ? 1 : 0;
        MPI_Allreduce(MPI_IN_PLACE, &same, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
        loads_ok = loads_ok && same == 1;
        MPI_Barrier(MPI_COMM_WORLD);
        if (rank == 0)
          for (const char* kind : {"_base", "_full", "_incremental"}) fs::remove_all(prefix + kind);
      }
    }

    const double state_mib = static_cast<double>(o.mib_per_rank) * ranks;
    if (rank == 0 && !o.json)
      std::printf(
          "cairn_incremental_bench (Cairn %s): %d rank%s, %lld MiB per rank in %lld chunks, %lld changed per rank "
          "(%.1f%%); median of %d runs\nseconds: barrier to barrier, slowest rank; written: SaveTimings::bytes_written "
          "of all ranks; file/disk: sizes and allocated blocks of the checkpoint's files\n\n%-8s %-12s %10s %12s "
          "%10s %10s %11s %13s\n",
          cairn::version(), ranks, ranks == 1 ? "" : "s", static_cast<long long>(o.mib_per_rank),
          static_cast<long long>(chunks_per_rank), static_cast<long long>(changed),
          100.0 * static_cast<double>(changed) / chunks_per_rank, o.runs, "backend", "save", "median s", "MiB written",
          "file MiB", "disk MiB", "x full time", "x full bytes");
    for (std::size_t b = 0; b < o.backends.size() && rank == 0; ++b) {
      for (int k = 0; k < 2; ++k) {
        const Series& s = k == 0 ? full[b] : incremental[b];
        const double time_ratio = median(s.seconds) / median(full[b].seconds);
        const double bytes_ratio = median(s.written) / median(full[b].written);
        const char* kind = k == 0 ? "full" : "incremental";
        if (o.json) {
          std::string list;
          for (double t : s.seconds) list += (list.empty() ? "" : ",") + std::to_string(t);
          std::printf(
              "{\"bench\":\"incremental\",\"backend\":\"%s\",\"save\":\"%s\",\"ranks\":%d,\"mib_per_rank\":%lld,"
              "\"chunks_per_rank\":%lld,\"changed_per_rank\":%lld,\"runs\":%d,\"median_s\":%.6g,"
              "\"bytes_written\":%.0f,\"file_bytes\":%.0f,\"disk_bytes\":%.0f,\"time_over_full\":%.4g,"
              "\"bytes_over_full\":%.4g,\"state_mib\":%.6g,\"loads_ok\":%s,\"seconds\":[%s]}\n",
              o.backends[b].c_str(), kind, ranks, static_cast<long long>(o.mib_per_rank),
              static_cast<long long>(chunks_per_rank), static_cast<long long>(changed), o.runs, median(s.seconds),
              median(s.written), median(s.size), median(s.disk), time_ratio, bytes_ratio, state_mib,
              loads_ok ? "true" : "false", list.c_str());
        } else {
          std::printf("%-8s %-12s %10.4f %12.2f %10.2f %10.2f %11.3f %13.3f\n", o.backends[b].c_str(), kind,
                      median(s.seconds), median(s.written) / (1 << 20), median(s.size) / (1 << 20),
                      median(s.disk) / (1 << 20), time_ratio, bytes_ratio);
        }
      }
    }
    if (rank == 0 && !o.json)
      std::printf("\nload check (the incremental checkpoint read back whole on every rank): %s\n",
                  loads_ok ? "ok" : "FAILED");
    if (!loads_ok) status = 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cairn_incremental_bench: rank %d: %s\n", rank, e.what());
    status = 1;
  }
  if (!work.empty()) cairn::bench::remove_run_dir(work);
  return status;
}
