// The device layer without CUDA: every pointer is host memory; asking for a device is an error.
#include "device/device.hpp"

#include <cairn/error.hpp>

#include <algorithm>
#include <new>
#include <utility>

namespace cairn::detail {

namespace {
const char* const no_cuda = "this Cairn was built without CUDA (configure with -DCAIRN_ENABLE_CUDA=ON)";
}

bool cuda_built() noexcept {
  return false;
}

int cuda_device_count(std::string* why) {
  if (why != nullptr) *why = no_cuda;
  return 0;
}

void check_cuda(int code, const std::string& what) {
  if (code == 0) return;
  throw DeviceError(what + " failed: " + no_cuda);
}

MemoryLocation locate(const void*, MemorySpace declared) {
  if (declared == MemorySpace::CudaDevice)
    throw UsageError(std::string("the chunk is declared to be in CUDA device memory, but ") + no_cuda);
  return {};
}

std::byte* HostBuffer::reserve(std::size_t bytes, bool) {
  if (m_data != nullptr && m_size >= bytes) return m_data;
  release();
  bytes = std::max<std::size_t>(bytes, 64);  // never a null buffer, even for nothing
  m_data = static_cast<std::byte*>(::operator new (bytes, std::align_val_t{64}));
  m_size = bytes;
  return m_data;
}

void HostBuffer::release() noexcept {
  if (m_data == nullptr) return;
  ::operator delete (m_data, std::align_val_t{64});
  m_data = nullptr;
  m_size = 0;
}

void HostBuffer::swap(HostBuffer& other) noexcept {
  std::swap(m_data, other.m_data);
  std::swap(m_size, other.m_size);
  std::swap(m_locked, other.m_locked);
}

DeviceCopier::~DeviceCopier() = default;

void* DeviceCopier::stream(int, const std::string& what) {
  throw DeviceError(what + ": " + no_cuda);
}

void DeviceCopier::to_host(int device, void*, const void*, std::size_t, const std::string& what) {
  stream(device, what);
}

void DeviceCopier::to_device(int device, void*, const void*, std::size_t, const std::string& what) {
  stream(device, what);
}

void DeviceCopier::synchronize(const std::string&) {}

}  // namespace cairn::detail

namespace cairn {

MemorySpace memory_space_of(const void* pointer) {
  return detail::locate(pointer, MemorySpace::Auto).device ? MemorySpace::CudaDevice : MemorySpace::Host;
}

}  // namespace cairn
