// The device layer with CUDA: the runtime API only (no kernels), so the host compiler builds it.
#include "device/device.hpp"

#include <cairn/error.hpp>

#include <cuda_runtime_api.h>

#include <algorithm>
#include <new>
#include <utility>

namespace cairn::detail {

namespace {

// The device count is asked once: it cannot change while the process runs.
struct DeviceCount {
  int count = 0;
  std::string why;
};

const DeviceCount& device_count() {
  static const DeviceCount found = [] {
    DeviceCount result;
    int count = 0;
    const cudaError_t code = cudaGetDeviceCount(&count);
    if (code != cudaSuccess) {
      (void)cudaGetLastError();  // not sticky: clear it for the calls that follow
      result.why = std::string("CUDA reports ") + cudaGetErrorName(code) + ": " + cudaGetErrorString(code);
    } else if (count == 0) {
      result.why = "CUDA sees no device";
    }
    result.count = code == cudaSuccess ? count : 0;
    return result;
  }();
  return found;
}

// Runs the rest of a scope with `device` current on this thread, restoring the previous one.
class CurrentDevice {
 public:
  CurrentDevice(int device, const std::string& what) {
    check_cuda(cudaGetDevice(&m_previous), what + ": cudaGetDevice");
    if (m_previous != device)
      check_cuda(cudaSetDevice(device), what + ": cudaSetDevice(" + std::to_string(device) + ")");
  }
  ~CurrentDevice() {
    int now = m_previous;
    if (cudaGetDevice(&now) == cudaSuccess && now != m_previous) (void)cudaSetDevice(m_previous);
  }
  CurrentDevice(const CurrentDevice&) = delete;
  CurrentDevice& operator=(const CurrentDevice&) = delete;

 private:
  int m_previous = 0;
};

}  // namespace

bool cuda_built() noexcept {
  return true;
}

int cuda_device_count(std::string* why) {
  const DeviceCount& found = device_count();
  if (why != nullptr) *why = found.why;
  return found.count;
}

void check_cuda(int code, const std::string& what) {
  const auto error = static_cast<cudaError_t>(code);
  if (error == cudaSuccess) return;
  throw DeviceError(what + " failed: " + cudaGetErrorName(error) + " (" + cudaGetErrorString(error) + ")");
}

MemoryLocation locate(const void* pointer, MemorySpace declared) {
  if (declared == MemorySpace::Host) return {};
  if (cuda_device_count() == 0) {
    if (declared == MemorySpace::CudaDevice) {
      std::string why;
      cuda_device_count(&why);
      throw UsageError("the chunk is declared to be in CUDA device memory, but " + why);
    }
    return {};  // Auto: without a device every pointer is host memory
  }
  cudaPointerAttributes attributes{};
  const cudaError_t code = cudaPointerGetAttributes(&attributes, pointer);
  if (code == cudaErrorInvalidValue) {
    // Older runtimes report memory CUDA never saw (plain malloc) this way.
    (void)cudaGetLastError();
    attributes.type = cudaMemoryTypeUnregistered;
  } else {
    check_cuda(code, "cudaPointerGetAttributes");
  }
  MemoryLocation where;
  where.device = attributes.type == cudaMemoryTypeDevice;
  where.device_id = where.device ? attributes.device : -1;
  if (declared == MemorySpace::CudaDevice && !where.device)
    throw UsageError(
        "the chunk is declared to be in CUDA device memory, but CUDA does not know its pointer as "
        "device memory (it is host or managed memory)");
  return where;
}

std::byte* HostBuffer::reserve(std::size_t bytes, bool page_locked) {
  const bool lock = page_locked && cuda_device_count() > 0;
  if (m_data != nullptr && m_size >= bytes && m_locked == lock) return m_data;
  release();                                 // never hold the old and the new block at once
  bytes = std::max<std::size_t>(bytes, 64);  // never a null buffer, even for nothing
  void* memory = nullptr;
  if (lock) {
    check_cuda(cudaHostAlloc(&memory, bytes, cudaHostAllocPortable),
               "cudaHostAlloc of " + std::to_string(bytes) + " bytes of page-locked staging memory");
  } else {
    memory = ::operator new (bytes, std::align_val_t{64});
  }
  m_data = static_cast<std::byte*>(memory);
  m_size = bytes;
  m_locked = lock;
  return m_data;
}

void HostBuffer::release() noexcept {
  if (m_data == nullptr) return;
  if (m_locked)
    (void)cudaFreeHost(m_data);
  else
    ::operator delete (m_data, std::align_val_t{64});
  m_data = nullptr;
  m_size = 0;
  m_locked = false;
}

void HostBuffer::swap(HostBuffer& other) noexcept {
  std::swap(m_data, other.m_data);
  std::swap(m_size, other.m_size);
  std::swap(m_locked, other.m_locked);
}

DeviceCopier::~DeviceCopier() {
  for (auto& [device, stream] : m_streams) {
    int previous = 0;
    if (cudaGetDevice(&previous) != cudaSuccess) continue;
    if (cudaSetDevice(device) == cudaSuccess) {
      (void)cudaStreamSynchronize(static_cast<cudaStream_t>(stream));
      (void)cudaStreamDestroy(static_cast<cudaStream_t>(stream));
    }
    (void)cudaSetDevice(previous);
  }
}

void* DeviceCopier::stream(int device, const std::string& what) {
  auto found = m_streams.find(device);
  if (found != m_streams.end()) return found->second;
  CurrentDevice current(device, what);
  cudaStream_t created = nullptr;
  // Non-blocking: the copies neither wait for nor hold up work on the legacy default stream.
  check_cuda(cudaStreamCreateWithFlags(&created, cudaStreamNonBlocking), what + ": cudaStreamCreateWithFlags");
  m_streams.emplace(device, created);
  return created;
}

void DeviceCopier::to_host(int device, void* host, const void* device_data, std::size_t bytes,
                           const std::string& what) {
  if (bytes == 0) return;
  auto* s = static_cast<cudaStream_t>(stream(device, what));
  CurrentDevice current(device, what);
  check_cuda(cudaMemcpyAsync(host, device_data, bytes, cudaMemcpyDeviceToHost, s),
             what + ": cudaMemcpyAsync of " + std::to_string(bytes) + " bytes from device " + std::to_string(device));
  m_busy[device] = true;
}

void DeviceCopier::to_device(int device, void* device_data, const void* host, std::size_t bytes,
                             const std::string& what) {
  if (bytes == 0) return;
  auto* s = static_cast<cudaStream_t>(stream(device, what));
  CurrentDevice current(device, what);
  check_cuda(cudaMemcpyAsync(device_data, host, bytes, cudaMemcpyHostToDevice, s),
             what + ": cudaMemcpyAsync of " + std::to_string(bytes) + " bytes to device " + std::to_string(device));
  m_busy[device] = true;
}

void DeviceCopier::synchronize(const std::string& what) {
  std::string first_failure;
  for (auto& [device, busy] : m_busy) {
    if (!busy) continue;
    busy = false;
    // Every stream is waited for, even after a failure: no copy may still run into memory the
    // caller frees once this throws.
    try {
      CurrentDevice current(device, what);
      check_cuda(cudaStreamSynchronize(static_cast<cudaStream_t>(m_streams.at(device))),
                 what + ": copies on device " + std::to_string(device));
    } catch (const DeviceError& e) {
      if (first_failure.empty()) first_failure = e.what();
    }
  }
  if (!first_failure.empty()) throw DeviceError(first_failure);
}

}  // namespace cairn::detail

namespace cairn {

MemorySpace memory_space_of(const void* pointer) {
  return detail::locate(pointer, MemorySpace::Auto).device ? MemorySpace::CudaDevice : MemorySpace::Host;
}

}  // namespace cairn
