#include "comm/nccl_comm.hpp"

#include <cairn/error.hpp>

#include "device/device.hpp"

#include <cuda_runtime_api.h>
#include <nccl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace cairn::detail {

namespace {

// What identifies a GPU across the job: the host and the device's PCI bus id.
struct GpuIdentity {
  char host[128] = {};
  char bus[32] = {};
};

void check_nccl(ncclResult_t code, const std::string& what) {
  if (code == ncclSuccess) return;
  throw CommunicationError(what + " failed: " + ncclGetErrorString(code));
}

void check_mpi(int rc, const char* call) {
  if (rc != MPI_SUCCESS) throw CommunicationError(std::string(call) + " failed while setting up NCCL");
}

// Collective: the minimum of `value` over `comm`.
int all_min(MPI_Comm comm, int value) {
  int result = value;
  check_mpi(MPI_Allreduce(&value, &result, 1, MPI_INT, MPI_MIN, comm), "MPI_Allreduce");
  return result;
}

}  // namespace

std::unique_ptr<NcclComm> NcclComm::create(MPI_Comm comm, int device, std::string& why) {
  int rank = 0;
  int size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  const char* setting = std::getenv("CAIRN_NCCL");
  const bool wanted = setting == nullptr || std::strcmp(setting, "0") != 0;
  if (all_min(comm, wanted ? 1 : 0) == 0) {
    why = "CAIRN_NCCL=0 on some rank";
    return nullptr;
  }

  GpuIdentity mine;
  bool identified = ::gethostname(mine.host, sizeof mine.host - 1) == 0 &&
                    cudaDeviceGetPCIBusId(mine.bus, static_cast<int>(sizeof mine.bus), device) == cudaSuccess;
  if (!identified) (void)cudaGetLastError();
  if (all_min(comm, identified ? 1 : 0) == 0) {
    why = "some rank cannot identify its GPU";
    return nullptr;
  }
  std::vector<GpuIdentity> all(static_cast<std::size_t>(size));
  check_mpi(MPI_Allgather(&mine, sizeof mine, MPI_BYTE, all.data(), sizeof mine, MPI_BYTE, comm), "MPI_Allgather");
  for (std::size_t a = 0; a < all.size(); ++a)
    for (std::size_t b = a + 1; b < all.size(); ++b)  // once per job, for a few thousand ranks at most
      if (std::strcmp(all[a].host, all[b].host) == 0 && std::strcmp(all[a].bus, all[b].bus) == 0) {
        why = "ranks " + std::to_string(a) + " and " + std::to_string(b) + " share GPU " + all[a].bus + " on " +
              all[a].host + " (NCCL needs a GPU per rank)";
        return nullptr;
      }

  ncclUniqueId id{};
  int ok = 1;
  if (rank == 0 && ncclGetUniqueId(&id) != ncclSuccess) ok = 0;
  if (all_min(comm, ok) == 0) {
    why = "ncclGetUniqueId failed on rank 0";
    return nullptr;
  }
  check_mpi(MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, comm), "MPI_Bcast");

  std::unique_ptr<NcclComm> made(new NcclComm());
  made->m_device = device;
  std::string failure;
  int previous = 0;
  ok = cudaGetDevice(&previous) == cudaSuccess && cudaSetDevice(device) == cudaSuccess ? 1 : 0;
  if (ok) {
    cudaStream_t stream = nullptr;
    if (cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) == cudaSuccess)
      made->m_stream = stream;
    else
      ok = 0;
  }
  // Every rank takes part in the initialization unless it cannot reach it at all: NCCL's own
  // errors are then agreed on, below.
  if (all_min(comm, ok) == 1) {
    ncclComm_t nccl = nullptr;
    const ncclResult_t code = ncclCommInitRank(&nccl, size, id, rank);
    if (code == ncclSuccess)
      made->m_comm = nccl;
    else
      failure = ncclGetErrorString(code);
    ok = code == ncclSuccess ? 1 : 0;
  } else {
    ok = 0;
    failure = "CUDA could not select the device or make a stream";
  }
  (void)cudaSetDevice(previous);
  if (all_min(comm, ok) == 0) {
    why = "NCCL's initialization failed" + (failure.empty() ? std::string(" on another rank") : ": " + failure);
    return nullptr;  // the destructor frees what this rank made
  }
  return made;
}

NcclComm::~NcclComm() {
  int previous = 0;
  const bool switched = cudaGetDevice(&previous) == cudaSuccess && cudaSetDevice(m_device) == cudaSuccess;
  if (m_comm != nullptr) (void)ncclCommDestroy(static_cast<ncclComm_t>(m_comm));
  if (m_stream != nullptr) (void)cudaStreamDestroy(static_cast<cudaStream_t>(m_stream));
  if (switched) (void)cudaSetDevice(previous);
}

void NcclComm::broadcast(void* data, std::size_t bytes, int root) {
  const std::string what = "ncclBroadcast of " + std::to_string(bytes) + " bytes from rank " + std::to_string(root);
  int previous = 0;
  check_cuda(cudaGetDevice(&previous), what + ": cudaGetDevice");
  check_cuda(cudaSetDevice(m_device), what + ": cudaSetDevice");
  auto* stream = static_cast<cudaStream_t>(m_stream);
  try {
    check_nccl(ncclBroadcast(data, data, bytes, ncclUint8, root, static_cast<ncclComm_t>(m_comm), stream), what);
    check_cuda(cudaStreamSynchronize(stream), what);
  } catch (...) {
    (void)cudaSetDevice(previous);
    throw;
  }
  (void)cudaSetDevice(previous);
}

}  // namespace cairn::detail
