// An NCCL communicator over the ranks of an MPI communicator, for device-to-device collectives.
#pragma once

#include <mpi.h>

#include <cstddef>
#include <memory>
#include <string>

namespace cairn::detail {

class NcclComm {
 public:
  /// Collective over `comm`. Makes an NCCL communicator on `device` (rank 0's unique id broadcast over MPI), or returns
  /// nullptr on every rank, with `why`, when NCCL cannot serve: two ranks share a GPU (NCCL needs one per rank),
  /// CAIRN_NCCL=0 on some rank, or NCCL's initialization failed on some rank.
  static std::unique_ptr<NcclComm> create(MPI_Comm comm, int device, std::string& why);
  ~NcclComm();
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;

  /// The device the communicator was made on.
  int device() const noexcept { return m_device; }
  /// Collective. ncclBroadcast of `bytes` bytes at device address `data`, waited for. Throws
  /// CommunicationError when NCCL fails, DeviceError when CUDA does.
  void broadcast(void* data, std::size_t bytes, int root);

 private:
  NcclComm() = default;
  void* m_comm = nullptr;    // ncclComm_t
  void* m_stream = nullptr;  // cudaStream_t
  int m_device = -1;
};

}  // namespace cairn::detail
