// cairn_gpu_bench: Cairn with arrays in CUDA device memory, beside what the same bytes cost by hand,
// from one run under mpirun:
//   stall   async_save() of device arrays (until it returns)  vs  a bare cudaMemcpyAsync of the same
//           bytes into page-locked memory, synchronized
//   load    load() into device arrays  vs  pread of the same bytes (one raw file per rank) into
//           page-locked memory plus cudaMemcpy to the device
// Runs alternate between the methods; each figure is the median. Without a GPU it says so and
// exits 0, measuring nothing.
#include <cairn/cairn.hpp>

#include "bench_support.hpp"

#include <cuda_runtime_api.h>
#include <fcntl.h>
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

void cuda_check(cudaError_t code, const char* what) {
  if (code != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(code));
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// The slowest rank's time of `body`, between barriers.
template <class Body>
double timed(Body&& body) {
  MPI_Barrier(MPI_COMM_WORLD);
  const double start = MPI_Wtime();
  body();
  double mine = MPI_Wtime() - start;
  double slowest = 0;
  MPI_Allreduce(&mine, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return slowest;
}

void drop_cache(const std::string& path) {
  for (const auto& item : std::filesystem::recursive_directory_iterator(path)) {
    if (!item.is_regular_file()) continue;
    const int fd = ::open(item.path().c_str(), O_RDONLY);
    if (fd < 0) continue;
    (void)::fsync(fd);
    (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}

}  // namespace

const char* const usage_text =
    "usage: mpirun -np P cairn_gpu_bench [--mib-per-rank N] [--runs R] [--dir DIR]\n"
    "  --mib-per-rank  MiB of float64 device array per rank; default 256\n"
    "  --runs          runs per method; each figure is the median; default 5\n"
    "  --dir           directory to write in (a private subdirectory, removed at the end); default /tmp\n";

int main(int argc, char** argv) {
  const cairn::bench::MpiSession mpi(argc, argv, MPI_THREAD_MULTIPLE);
  const int rank = mpi.rank(), size = mpi.size();
  std::size_t mib = 256;
  int runs = 5;
  std::string dir = "/tmp";
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = i + 1 < argc ? argv[i + 1] : "";
    std::int64_t n = 0;
    if (flag == "--mib-per-rank" && cairn::bench::parse_int(value, 1, std::int64_t{1} << 20, n))
      mib = static_cast<std::size_t>(n);
    else if (flag == "--runs" && cairn::bench::parse_int(value, 1, 100000, n))
      runs = static_cast<int>(n);
    else if (flag == "--dir" && !value.empty())
      dir = value;
    else
      return cairn::bench::print_usage(rank, "cairn_gpu_bench", "bad argument '" + flag + "'", usage_text);
  }
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    if (rank == 0) std::printf("cairn_gpu_bench: no CUDA device here; nothing measured\n");
    return 0;
  }
  int status = 0;
  try {
    cuda_check(cudaSetDevice(rank % devices), "cudaSetDevice");
    const std::size_t bytes = mib << 20;
    const auto elems = static_cast<std::int64_t>(bytes / sizeof(double));
    void* device = nullptr;
    cuda_check(cudaMalloc(&device, bytes), "cudaMalloc");
    std::vector<double> pattern(static_cast<std::size_t>(elems));
    for (std::int64_t i = 0; i < elems; ++i)
      pattern[static_cast<std::size_t>(i)] = static_cast<double>(rank * elems + i);
    cuda_check(cudaMemcpy(device, pattern.data(), bytes, cudaMemcpyHostToDevice), "cudaMemcpy");
    void* pinned = nullptr;
    cuda_check(cudaHostAlloc(&pinned, bytes, cudaHostAllocDefault), "cudaHostAlloc");
    cudaStream_t stream = nullptr;
    cuda_check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");

    const std::string root = cairn::bench::make_run_dir(dir, "cairn_gpu_bench");
    cairn::Checkpointer ck(MPI_COMM_WORLD);
    cairn::State state;
    state.add_array("u", cairn::DType::Float64, {elems * size}).add_chunk({elems * rank}, {elems}, device);
    const std::string raw = root + "/raw_" + std::to_string(rank) + ".dat";
    {  // the raw file of the load baseline
      const int fd = ::open(raw.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd < 0 || ::pwrite(fd, pattern.data(), bytes, 0) != static_cast<ssize_t>(bytes))
        throw std::runtime_error("pwrite");
      ::fsync(fd);
      ::close(fd);
    }

    std::vector<double> stall_cairn, stall_memcpy, save_total, load_cairn, load_raw;
    cairn::SaveOptions overwrite;
    overwrite.overwrite = true;
    const std::string id = root + "/ckpt";
    ck.async_save(state, id, overwrite).get();  // warms the plan, the staging memory and the streams
    for (int r = 0; r < runs; ++r) {
      cairn::SaveFuture future;
      stall_cairn.push_back(timed([&] { future = ck.async_save(state, id, overwrite); }));
      save_total.push_back(stall_cairn.back() + timed([&] { future.get(); }));
      stall_memcpy.push_back(timed([&] {
        cuda_check(cudaMemcpyAsync(pinned, device, bytes, cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync");
        cuda_check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
      }));
    }
    for (int r = 0; r < runs; ++r) {
      drop_cache(root);
      load_cairn.push_back(timed([&] { ck.load(state, id); }));
      drop_cache(root);
      load_raw.push_back(timed([&] {
        const int fd = ::open(raw.c_str(), O_RDONLY);
        std::size_t done = 0;
        while (done < bytes) {
          const ssize_t got = ::pread(fd, static_cast<char*>(pinned) + done, bytes - done, static_cast<off_t>(done));
          if (got <= 0) throw std::runtime_error("pread");
          done += static_cast<std::size_t>(got);
        }
        ::close(fd);
        cuda_check(cudaMemcpy(device, pinned, bytes, cudaMemcpyHostToDevice), "cudaMemcpy");
      }));
    }
    // The last load must have brought back the pattern.
    std::vector<double> back(static_cast<std::size_t>(elems));
    ck.load(state, id);
    cuda_check(cudaMemcpy(back.data(), device, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy");
    const int ok = back == pattern ? 1 : 0;
    int all_ok = 0;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);

    if (rank == 0) {
      cudaDeviceProp prop{};
      (void)cudaGetDeviceProperties(&prop, 0);
      const double total_mib = static_cast<double>(mib) * size;
      std::printf("cairn_gpu_bench: %d rank(s) on %s, %zu MiB per rank, %d runs, device transport %s\n", size,
                  prop.name, mib, runs, ck.process_group().device_transport());
      std::printf("%-44s %10s %10s %8s\n", "method", "median s", "MiB/s", "ratio");
      const double sc = median(stall_cairn), sm = median(stall_memcpy);
      const double lc = median(load_cairn), lr = median(load_raw);
      std::printf("%-44s %10.4f %10.1f %8.2f\n", "async_save stall (device arrays)", sc, total_mib / sc, sc / sm);
      std::printf("%-44s %10.4f %10.1f %8.2f\n", "cudaMemcpyAsync to page-locked (baseline)", sm, total_mib / sm, 1.0);
      std::printf("%-44s %10.4f %10.1f %8s\n", "async_save until durable", median(save_total),
                  total_mib / median(save_total), "");
      std::printf("%-44s %10.4f %10.1f %8.2f\n", "load into device arrays", lc, total_mib / lc, lc / lr);
      std::printf("%-44s %10.4f %10.1f %8.2f\n", "pread + cudaMemcpy to device (baseline)", lr, total_mib / lr, 1.0);
      std::printf("ratio = time / baseline's time (stall target <= 1.1); load check: %s\n",
                  all_ok ? "passed" : "FAILED");
      std::printf(
          "{\"op\":\"gpu\",\"ranks\":%d,\"mib_per_rank\":%zu,\"runs\":%d,\"stall_s\":%g,\"memcpy_s\":%g,"
          "\"stall_over_memcpy\":%g,\"load_s\":%g,\"read_h2d_s\":%g,\"load_over_read_h2d\":%g,"
          "\"transport\":\"%s\"}\n",
          size, mib, runs, sc, sm, sc / sm, lc, lr, lc / lr, ck.process_group().device_transport());
    }
    status = all_ok ? 0 : 1;
    cairn::bench::remove_run_dir(root);
    cudaStreamDestroy(stream);
    cudaFreeHost(pinned);
    cudaFree(device);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cairn_gpu_bench on rank %d: %s\n", rank, e.what());
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  return status;
}
