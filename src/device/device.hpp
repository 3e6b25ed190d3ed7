// CUDA device memory, seen from the host: where a pointer lives, page-locked host buffers, and
// copies on streams of the library's own. Builds without CUDA get the same interface, in which
// every pointer is host memory and asking for a device is a UsageError.
#pragma once

#include <cairn/state.hpp>

#include <cstddef>
#include <map>
#include <string>

namespace cairn::detail {

/// True when this build has CUDA support.
bool cuda_built() noexcept;

/// Number of CUDA devices this process can use: 0 without CUDA support, driver or device; then
/// `why`, when given, says which.
int cuda_device_count(std::string* why = nullptr);

/// Where a pointer's memory is.
struct MemoryLocation {
  bool device = false;  // CUDA device memory (not page-locked or managed host memory)
  int device_id = -1;   // the device, when `device`
};

/// Where `pointer` lives: as `declared`, or, for MemorySpace::Auto, as CUDA says
/// (cudaPointerGetAttributes; host memory when CUDA is absent or has no device). Throws UsageError
/// for MemorySpace::CudaDevice in a build without CUDA or on a pointer CUDA does not know as device
/// memory, and DeviceError when CUDA fails.
MemoryLocation locate(const void* pointer, MemorySpace declared);

/// Host memory, page-locked (cudaHostAlloc) when asked for and CUDA has a device, so that copies
/// to and from devices run at full speed and asynchronously; plain aligned memory otherwise.
class HostBuffer {
 public:
  HostBuffer() = default;
  HostBuffer(std::size_t bytes, bool page_locked) { reserve(bytes, page_locked); }
  ~HostBuffer() { release(); }
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;
  HostBuffer(HostBuffer&& other) noexcept { swap(other); }
  HostBuffer& operator=(HostBuffer&& other) noexcept {
    swap(other);
    return *this;
  }

  /// Makes room for `bytes` bytes (keeping nothing), page-locked as asked: reallocates only when
  /// the buffer is smaller or locked differently. Throws DeviceError when cudaHostAlloc fails.
  std::byte* reserve(std::size_t bytes, bool page_locked);
  void release() noexcept;
  std::byte* data() const noexcept { return m_data; }
  std::size_t size() const noexcept { return m_size; }
  bool page_locked() const noexcept { return m_locked; }

 private:
  void swap(HostBuffer& other) noexcept;
  std::byte* m_data = nullptr;
  std::size_t m_size = 0;
  bool m_locked = false;
};

/// Copies between host and device memory on one non-blocking stream per device, created on first
/// use and kept. Not thread-safe: one thread at a time (the caller's for saves, the worker's for
/// loads). Copies from page-locked memory are asynchronous; synchronize() waits for all of them
/// and throws DeviceError naming `what` when one failed.
class DeviceCopier {
 public:
  DeviceCopier() = default;
  ~DeviceCopier();
  DeviceCopier(const DeviceCopier&) = delete;
  DeviceCopier& operator=(const DeviceCopier&) = delete;

  /// Starts copying `bytes` bytes from `device_data` on device `device` to `host`.
  void to_host(int device, void* host, const void* device_data, std::size_t bytes, const std::string& what);
  /// Starts copying `bytes` bytes from `host` to `device_data` on device `device`.
  void to_device(int device, void* device_data, const void* host, std::size_t bytes, const std::string& what);
  /// Waits for every copy started since the last call.
  void synchronize(const std::string& what);

 private:
  void* stream(int device, const std::string& what);
  std::map<int, void*> m_streams;  // device -> cudaStream_t
  std::map<int, bool> m_busy;      // devices with copies since the last synchronize()
};

/// Throws DeviceError "<what>: <CUDA's name and text for code>" when `code` (a cudaError_t) is
/// not cudaSuccess. Always throws in builds without CUDA.
void check_cuda(int code, const std::string& what);

}  // namespace cairn::detail
