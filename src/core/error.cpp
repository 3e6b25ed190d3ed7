#include <cairn/error.hpp>

namespace cairn {

void throw_error(ErrorCode code, const std::string& message) {
  switch (code) {
    case ErrorCode::Usage: throw UsageError(message);
    case ErrorCode::Storage: throw StorageError(message);
    case ErrorCode::Communication: throw CommunicationError(message);
    case ErrorCode::Corrupt: throw CorruptCheckpointError(message);
    case ErrorCode::Unsupported: throw UnsupportedError(message);
    case ErrorCode::Internal: throw InternalError(message);
    case ErrorCode::Device: throw DeviceError(message);
  }
  throw Error(code, message);
}

}  // namespace cairn
