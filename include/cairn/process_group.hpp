// ProcessGroup: the collectives Cairn needs, over a communicator the library owns.
#pragma once

#include <mpi.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace cairn {

namespace detail {
class NcclComm;
}

/// Reduction applied by ProcessGroup::allreduce.
enum class ReduceOp { Min, Max, Sum };

/// The collectives Cairn runs among the ranks of one checkpointer. Every call is collective over
/// the group unless it says otherwise, and throws CommunicationError when the transport fails.
class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;
  /// This process's rank in the group. Not collective.
  virtual int rank() const noexcept = 0;
  /// Number of ranks in the group. Not collective.
  virtual int size() const noexcept = 0;
  /// Collective. Returns once every rank has entered.
  virtual void barrier() = 0;
  /// Collective. Copies `bytes` bytes at `data` from `root` to every rank.
  virtual void broadcast(void* data, std::size_t bytes, int root) = 0;
  /// Collective. Every rank sends `bytes` bytes; `recv` receives size() * bytes, in rank order.
  virtual void allgather(const void* send, std::size_t bytes, void* recv) = 0;
  /// Collective. Gathers a variable number of bytes from every rank on `root`; others get {}.
  virtual std::vector<std::vector<std::byte>> gather(const std::vector<std::byte>& send, int root) = 0;
  /// Collective. `root` sends element r of `send` to rank r; returns this rank's element.
  virtual std::vector<std::byte> scatter(const std::vector<std::vector<std::byte>>& send, int root) = 0;
  /// Collective. Element-wise reduction of `count` int64 values, in place on every rank.
  virtual void allreduce(std::int64_t* values, std::size_t count, ReduceOp op) = 0;
  /// The MPI communicator behind the group (for MPI-IO), or MPI_COMM_NULL when there is none.
  virtual MPI_Comm mpi_comm() const noexcept = 0;

  /// Collective. As broadcast(), for `bytes` bytes of CUDA device memory at `data` on device
  /// `device` of every rank. This default copies through page-locked host memory and
  /// broadcast(); MpiProcessGroup sends device to device with NCCL where it can. Throws
  /// DeviceError (on every rank) when a CUDA call fails, UsageError in a build without CUDA.
  virtual void broadcast_device(void* data, std::size_t bytes, int root, int device);
  /// How broadcast_device() moves bytes: "nccl" (device to device) or "host" (through host memory
  /// and broadcast()). Not collective; "host" until a broadcast_device() has decided otherwise.
  virtual const char* device_transport() const noexcept { return "host"; }
};

/// A ProcessGroup over a duplicate of an MPI communicator. The user's communicator is never used
/// for Cairn's traffic; the duplicate reports MPI errors as exceptions instead of aborting.
class MpiProcessGroup final : public ProcessGroup {
 public:
  /// Collective over `comm`: duplicates it. Throws UsageError when MPI is not initialized.
  explicit MpiProcessGroup(MPI_Comm comm);
  ~MpiProcessGroup() override;
  MpiProcessGroup(const MpiProcessGroup&) = delete;
  MpiProcessGroup& operator=(const MpiProcessGroup&) = delete;

  int rank() const noexcept override { return m_rank; }
  int size() const noexcept override { return m_size; }
  void barrier() override;
  void broadcast(void* data, std::size_t bytes, int root) override;
  void allgather(const void* send, std::size_t bytes, void* recv) override;
  std::vector<std::vector<std::byte>> gather(const std::vector<std::byte>& send, int root) override;
  std::vector<std::byte> scatter(const std::vector<std::vector<std::byte>>& send, int root) override;
  void allreduce(std::int64_t* values, std::size_t count, ReduceOp op) override;
  MPI_Comm mpi_comm() const noexcept override { return m_comm; }
  /// NCCL, device to device, when Cairn was built with NCCL, every rank's buffer is on a GPU of its
  /// own (no two ranks on one device) and CAIRN_NCCL is not 0; otherwise ProcessGroup's default.
  /// The NCCL communicator is made on the first call (its unique id broadcast over MPI) and kept.
  void broadcast_device(void* data, std::size_t bytes, int root, int device) override;
  const char* device_transport() const noexcept override;

 private:
  MPI_Comm m_comm = MPI_COMM_NULL;
  int m_rank = 0;
  int m_size = 1;
  bool m_nccl_decided = false;
  std::unique_ptr<detail::NcclComm> m_nccl;
};

/// A group of one process that needs no MPI at all (MPI may be uninitialized): every collective
/// is a local copy. For serial codes, tools, and saves in no-dist mode.
class SerialProcessGroup final : public ProcessGroup {
 public:
  int rank() const noexcept override { return 0; }
  int size() const noexcept override { return 1; }
  void barrier() override {}
  void broadcast(void*, std::size_t, int) override {}
  void allgather(const void* send, std::size_t bytes, void* recv) override;
  std::vector<std::vector<std::byte>> gather(const std::vector<std::byte>& send, int root) override;
  std::vector<std::byte> scatter(const std::vector<std::vector<std::byte>>& send, int root) override;
  void allreduce(std::int64_t*, std::size_t, ReduceOp) override {}
  MPI_Comm mpi_comm() const noexcept override { return MPI_COMM_NULL; }
};

}  // namespace cairn
