#include <cairn/error.hpp>
#include <cairn/process_group.hpp>

#include "comm/agree.hpp"
#include "comm/nccl_comm.hpp"
#include "core/log.hpp"

#include <climits>
#include <cstring>
#include <string>

namespace cairn {

namespace {

void check(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(rc, text, &length);
  throw CommunicationError(std::string(call) + " failed: " + std::string(text, static_cast<std::size_t>(length)));
}

int to_count(std::size_t n, const char* call) {
  if (n > static_cast<std::size_t>(INT_MAX))
    throw UnsupportedError(std::string(call) + ": a message of " + std::to_string(n) +
                           " bytes exceeds MPI's int count");
  return static_cast<int>(n);
}

}  // namespace

MpiProcessGroup::MpiProcessGroup(MPI_Comm comm) {
  int initialized = 0;
  int finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized)
    throw UsageError("MpiProcessGroup: MPI is not initialized (call MPI_Init_thread before creating a Checkpointer)");
  if (comm == MPI_COMM_NULL) throw UsageError("MpiProcessGroup: the communicator is MPI_COMM_NULL");
  check(MPI_Comm_dup(comm, &m_comm), "MPI_Comm_dup");
  // Errors on Cairn's own communicator come back as exceptions rather than aborting the job.
  MPI_Comm_set_errhandler(m_comm, MPI_ERRORS_RETURN);
  MPI_Comm_rank(m_comm, &m_rank);
  MPI_Comm_size(m_comm, &m_size);
}

MpiProcessGroup::~MpiProcessGroup() {
  m_nccl.reset();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && m_comm != MPI_COMM_NULL) MPI_Comm_free(&m_comm);
}

void MpiProcessGroup::broadcast_device(void* data, std::size_t bytes, int root, int device) {
  if (!m_nccl_decided) {
    m_nccl_decided = true;
    std::string why;
    m_nccl = detail::NcclComm::create(m_comm, device, why);
    if (!m_nccl && m_rank == 0) detail::log(detail::LogLevel::Info, "device broadcasts go through host memory: " + why);
  }
  // Every rank must take the same path: NCCL only when every rank's buffer is on the device the
  // communicator was made for.
  std::int64_t on_nccl_device = m_nccl && m_nccl->device() == device ? 1 : 0;
  allreduce(&on_nccl_device, 1, ReduceOp::Min);
  if (on_nccl_device == 1) {
    detail::agree_on(*this, "device broadcast", [&] { m_nccl->broadcast(data, bytes, root); });
    return;
  }
  ProcessGroup::broadcast_device(data, bytes, root, device);
}

const char* MpiProcessGroup::device_transport() const noexcept {
  return m_nccl ? "nccl" : "host";
}

void MpiProcessGroup::barrier() {
  check(MPI_Barrier(m_comm), "MPI_Barrier");
}

void MpiProcessGroup::broadcast(void* data, std::size_t bytes, int root) {
  check(MPI_Bcast(data, to_count(bytes, "broadcast"), MPI_BYTE, root, m_comm), "MPI_Bcast");
}

void MpiProcessGroup::allgather(const void* send, std::size_t bytes, void* recv) {
  const int n = to_count(bytes, "allgather");
  check(MPI_Allgather(send, n, MPI_BYTE, recv, n, MPI_BYTE, m_comm), "MPI_Allgather");
}

std::vector<std::vector<std::byte>> MpiProcessGroup::gather(const std::vector<std::byte>& send, int root) {
  const int mine = to_count(send.size(), "gather");
  std::vector<int> counts(m_rank == root ? static_cast<std::size_t>(m_size) : 0);
  check(MPI_Gather(&mine, 1, MPI_INT, counts.data(), 1, MPI_INT, root, m_comm), "MPI_Gather");
  std::vector<int> displs;
  std::vector<std::byte> all;
  if (m_rank == root) {
    displs.resize(counts.size());
    std::size_t total = 0;
    for (std::size_t r = 0; r < counts.size(); ++r) {
      displs[r] = to_count(total, "gather");
      total += static_cast<std::size_t>(counts[r]);
    }
    all.resize(total);
  }
  check(MPI_Gatherv(send.data(), mine, MPI_BYTE, all.data(), counts.data(), displs.data(), MPI_BYTE, root, m_comm),
        "MPI_Gatherv");
  std::vector<std::vector<std::byte>> out;
  if (m_rank != root) return out;
  out.resize(counts.size());
  for (std::size_t r = 0; r < counts.size(); ++r)
    out[r].assign(all.begin() + displs[r], all.begin() + displs[r] + counts[r]);
  return out;
}

std::vector<std::byte> MpiProcessGroup::scatter(const std::vector<std::vector<std::byte>>& send, int root) {
  std::vector<int> counts;
  std::vector<int> displs;
  std::vector<std::byte> all;
  if (m_rank == root) {
    if (send.size() != static_cast<std::size_t>(m_size))
      throw InternalError("scatter: root passed " + std::to_string(send.size()) + " parts for " +
                          std::to_string(m_size) + " ranks");
    std::size_t total = 0;
    for (const auto& part : send) {
      counts.push_back(to_count(part.size(), "scatter"));
      displs.push_back(to_count(total, "scatter"));
      total += part.size();
    }
    all.reserve(total);
    for (const auto& part : send) all.insert(all.end(), part.begin(), part.end());
  }
  int mine = 0;
  check(MPI_Scatter(counts.data(), 1, MPI_INT, &mine, 1, MPI_INT, root, m_comm), "MPI_Scatter");
  std::vector<std::byte> out(static_cast<std::size_t>(mine));
  check(MPI_Scatterv(all.data(), counts.data(), displs.data(), MPI_BYTE, out.data(), mine, MPI_BYTE, root, m_comm),
        "MPI_Scatterv");
  return out;
}

void MpiProcessGroup::allreduce(std::int64_t* values, std::size_t count, ReduceOp op) {
  const MPI_Op mpi_op = op == ReduceOp::Min ? MPI_MIN : op == ReduceOp::Max ? MPI_MAX : MPI_SUM;
  check(MPI_Allreduce(MPI_IN_PLACE, values, to_count(count, "allreduce"), MPI_INT64_T, mpi_op, m_comm),
        "MPI_Allreduce");
}

}  // namespace cairn

namespace cairn {

void SerialProcessGroup::allgather(const void* send, std::size_t bytes, void* recv) {
  if (bytes > 0 && send != recv) std::memmove(recv, send, bytes);
}

std::vector<std::vector<std::byte>> SerialProcessGroup::gather(const std::vector<std::byte>& send, int root) {
  if (root != 0) throw UsageError("SerialProcessGroup::gather: root " + std::to_string(root) + " does not exist");
  return {send};
}

std::vector<std::byte> SerialProcessGroup::scatter(const std::vector<std::vector<std::byte>>& send, int root) {
  if (root != 0) throw UsageError("SerialProcessGroup::scatter: root " + std::to_string(root) + " does not exist");
  if (send.size() != 1) throw UsageError("SerialProcessGroup::scatter: expected one element");
  return send[0];
}

}  // namespace cairn
