// Builds without NCCL: device broadcasts always go through host memory.
#include "comm/nccl_comm.hpp"

#include <cairn/error.hpp>

namespace cairn::detail {

std::unique_ptr<NcclComm> NcclComm::create(MPI_Comm, int, std::string& why) {
  why = "this Cairn was built without NCCL";
  return nullptr;
}

NcclComm::~NcclComm() = default;

void NcclComm::broadcast(void*, std::size_t, int) {
  throw InternalError("NcclComm::broadcast in a build without NCCL");
}

}  // namespace cairn::detail
