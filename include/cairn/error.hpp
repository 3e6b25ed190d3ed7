// Cairn's exceptions: one base type carrying a code, one subclass per cause.
#pragma once

#include <stdexcept>
#include <string>

namespace cairn {

/// What kind of failure an Error reports. Values are stable: the C API returns them.
enum class ErrorCode : int {
  Usage = 1,          ///< The caller asked for something invalid (bad entry, bad id, bad option).
  Storage = 2,        ///< Reading or writing files failed (permissions, full disk, missing file).
  Communication = 3,  ///< An MPI (or NCCL) call failed.
  Corrupt = 4,        ///< A checkpoint exists but its contents are damaged or not Cairn's.
  Unsupported = 5,    ///< The request is valid but this build or format cannot do it.
  Internal = 6,       ///< A bug in Cairn.
  Device = 7,         ///< A CUDA call failed (a copy to or from device memory, a stream, page-locked memory).
};

/// Base of every exception Cairn throws. The message says what, which entry, which rank, which file.
class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), m_code(code) {}
  /// The cause of the failure.
  ErrorCode code() const noexcept { return m_code; }

 private:
  ErrorCode m_code;
};

/// Invalid input from the caller: a bad entry, chunk, name, checkpoint id or option.
class UsageError : public Error {
 public:
  explicit UsageError(const std::string& message) : Error(ErrorCode::Usage, message) {}
};

/// A file-system or storage-library failure.
class StorageError : public Error {
 public:
  explicit StorageError(const std::string& message) : Error(ErrorCode::Storage, message) {}
};

/// A failed MPI or NCCL call.
class CommunicationError : public Error {
 public:
  explicit CommunicationError(const std::string& message) : Error(ErrorCode::Communication, message) {}
};

/// A checkpoint whose files are missing parts, damaged, or not written by Cairn.
class CorruptCheckpointError : public Error {
 public:
  explicit CorruptCheckpointError(const std::string& message) : Error(ErrorCode::Corrupt, message) {}
};

/// A valid request this build or this format version cannot serve.
class UnsupportedError : public Error {
 public:
  explicit UnsupportedError(const std::string& message) : Error(ErrorCode::Unsupported, message) {}
};

/// A failed CUDA call: copying device arrays, creating streams, allocating page-locked memory.
class DeviceError : public Error {
 public:
  explicit DeviceError(const std::string& message) : Error(ErrorCode::Device, message) {}
};

/// A broken invariant inside Cairn.
class InternalError : public Error {
 public:
  explicit InternalError(const std::string& message) : Error(ErrorCode::Internal, message) {}
};

/// Throws the subclass of Error that matches `code`.
[[noreturn]] void throw_error(ErrorCode code, const std::string& message);

}  // namespace cairn
