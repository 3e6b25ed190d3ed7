// tier_bench: a CheckpointManager save into the node-local tier (a RAM disk by default) beside the
// same save straight to a directory on the parallel file system (or any disk), under mpirun.
//
//   mpirun -np P cairn_tier_bench --dir /scratch/me/bench [--local-dir /dev/shm] [--mib-per-rank M]
//                                 [--runs R] [--json]
//
// Both methods write the posix layout (one file per rank) of a sharded float64 array of M MiB per
// rank. Runs alternate (direct, node-local, direct, ...) and each figure is the median of the runs:
//   stall      time inside async_save() (staging; the slowest rank);
//   publish    from the call until the save's future completes: the checkpoint published under
//              --dir (direct) or on every node's local directory (node-local);
//   MiB/s      all ranks' bytes / publish;
//   drain      node-local only: from the local publish until the copy under --dir is published.
#include <cairn/cairn.hpp>

#include "bench_support.hpp"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

namespace {

struct Options {
  long long mib_per_rank = 16;
  int runs = 5;
  std::string dir;
  std::string local_dir = "/dev/shm";
  bool json = false;
};

const char* usage =
    "usage: cairn_tier_bench --dir DIR [--local-dir DIR] [--mib-per-rank M] [--runs R] [--json]\n"
    "  --dir           directory on the parallel file system (or a disk): the direct saves and the\n"
    "                  drained copies go under it\n"
    "  --local-dir     node-local directory for the tier; default /dev/shm\n"
    "  --mib-per-rank  MiB of float64 array per rank; default 16\n"
    "  --runs          runs per method; each figure is the median; default 5\n"
    "  --json          print one JSON object per line instead of a table\n";

// "" or what is wrong.
std::string parse_args(int argc, char** argv, Options& options) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--json") {
      options.json = true;
      continue;
    }
    if (i + 1 >= argc) return arg + " needs a value";
    const std::string value = argv[++i];
    std::int64_t n = 0;
    if (arg == "--mib-per-rank") {
      if (!cairn::bench::parse_int(value, 1, std::int64_t{1} << 20, n)) return "--mib-per-rank needs an integer >= 1";
      options.mib_per_rank = static_cast<long long>(n);
    } else if (arg == "--runs") {
      if (!cairn::bench::parse_int(value, 1, 100000, n)) return "--runs needs an integer >= 1";
      options.runs = static_cast<int>(n);
    } else if (arg == "--dir") {
      options.dir = value;
    } else if (arg == "--local-dir") {
      options.local_dir = value;
    } else {
      return "unknown argument '" + arg + "'";
    }
  }
  if (options.dir.empty()) return "--dir is required";
  return "";
}

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

double slowest(double seconds) {
  MPI_Allreduce(MPI_IN_PLACE, &seconds, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return seconds;
}

double since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

struct Method {
  std::string name;
  std::vector<double> stall, publish, drain;
};

std::string json_list(const std::vector<double>& values) {
  std::string out = "[";
  for (std::size_t i = 0; i < values.size(); ++i) {
    char text[32];
    std::snprintf(text, sizeof text, "%s%.6g", i ? "," : "", values[i]);
    out += text;
  }
  return out + "]";
}

}  // namespace

int main(int argc, char** argv) {
  const cairn::bench::MpiSession mpi(argc, argv, MPI_THREAD_MULTIPLE);
  const int rank = mpi.rank(), ranks = mpi.size();
  Options options;
  const std::string problem = parse_args(argc, argv, options);
  if (!problem.empty()) return cairn::bench::print_usage(rank, "cairn_tier_bench", problem, usage);
  int exit_code = 0;
  std::string work;   // under --dir: the direct saves and the drained copies
  std::string local;  // under --local-dir, one per node
  Method direct{"direct-posix", {}, {}, {}}, tiered{"node-local", {}, {}, {}};
  try {
    work = cairn::bench::make_run_dir(options.dir, "cairn-tier-bench");
    // The same name on the node-local side: concurrent jobs never share a tier directory.
    local = options.local_dir + "/" + std::filesystem::path(work).filename().string();
    const std::string direct_root = work + "/direct";
    const std::string tier_root = work + "/drained";
    const std::string local_root = local + "/node{node}";
    const auto n = static_cast<std::int64_t>(options.mib_per_rank << 20) / 8;
    std::vector<double> data(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) data[static_cast<std::size_t>(i)] = static_cast<double>(rank * n + i);
    cairn::State state;
    state.add_array("field", cairn::Extents{n * ranks}, cairn::Extents{rank * n}, cairn::Extents{n}, data.data());

    cairn::ManagerOptions direct_options;
    direct_options.keep_last = 1;
    direct_options.save.writer = cairn::make_posix_writer();
    cairn::ManagerOptions tier_options = direct_options;
    tier_options.save.writer = nullptr;  // the tier writes the posix layout itself
    tier_options.local_root = local_root;
    tier_options.keep_local = 1;
    cairn::CheckpointManager to_disk(MPI_COMM_WORLD, direct_root, direct_options);
    cairn::CheckpointManager to_tier(MPI_COMM_WORLD, tier_root, tier_options);

    for (int run = 0; run < options.runs; ++run) {
      for (int m = 0; m < 2; ++m) {
        const bool tier = (m + run) % 2 == 1;  // alternate which goes first
        cairn::CheckpointManager& manager = tier ? to_tier : to_disk;
        Method& method = tier ? tiered : direct;
        MPI_Barrier(MPI_COMM_WORLD);
        const auto start = std::chrono::steady_clock::now();
        cairn::SaveFuture future = manager.async_save(state, run + 1);
        const double stall = since(start);
        future.get();
        const double publish = since(start);
        manager.wait();  // the drain, for the tier
        const double drain = since(start) - publish;
        method.stall.push_back(slowest(stall));
        method.publish.push_back(slowest(publish));
        method.drain.push_back(slowest(drain));
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cairn_tier_bench: rank %d: %s\n", rank, e.what());
    exit_code = 1;
  }
  if (!work.empty()) {
    cairn::bench::remove_run_dir(work);
    std::error_code ignored;
    std::filesystem::remove_all(local, ignored);  // each node's, by each rank
  }
  if (rank == 0 && exit_code == 0) {
    const double total_mib = static_cast<double>(options.mib_per_rank) * ranks;
    if (!options.json) {
      std::printf("cairn_tier_bench (Cairn %s): %d rank%s, %lld MiB per rank, median of %d runs\n", cairn::version(),
                  ranks, ranks == 1 ? "" : "s", options.mib_per_rank, options.runs);
      std::printf("direct: posix layout straight to %s; node-local: to %s, drained to %s\n\n", options.dir.c_str(),
                  options.local_dir.c_str(), options.dir.c_str());
      std::printf("%-14s %12s %12s %12s %12s\n", "method", "stall ms", "publish s", "MiB/s", "drain s");
    }
    for (const Method* method : {&direct, &tiered}) {
      const double publish = median(method->publish);
      const double mib_s = publish > 0 ? total_mib / publish : 0;
      const bool tier = method == &tiered;
      if (options.json) {
        std::printf(
            "{\"bench\":\"tier\",\"method\":\"%s\",\"ranks\":%d,\"mib_per_rank\":%lld,\"runs\":%d,"
            "\"stall_median_s\":%.6g,\"publish_median_s\":%.6g,\"mib_s\":%.6g,\"drain_median_s\":%.6g,"
            "\"stall_s\":%s,\"publish_s\":%s,\"drain_s\":%s}\n",
            method->name.c_str(), ranks, options.mib_per_rank, options.runs, median(method->stall), publish, mib_s,
            tier ? median(method->drain) : 0.0, json_list(method->stall).c_str(), json_list(method->publish).c_str(),
            json_list(method->drain).c_str());
      } else {
        char drain[32] = "-";
        if (tier) std::snprintf(drain, sizeof drain, "%.4f", median(method->drain));
        std::printf("%-14s %12.3f %12.4f %12.1f %12s\n", method->name.c_str(), 1e3 * median(method->stall), publish,
                    mib_s, drain);
      }
    }
  }
  return exit_code;
}
