// Ownership of HDF5 identifiers and conversion of HDF5's error stack into exceptions.
#pragma once

#include <cairn/dtype.hpp>
#include <cairn/state.hpp>
#include <cairn/storage.hpp>

#include <hdf5.h>

#include <string>
#include <utility>

namespace cairn::detail::h5 {

/// A move-only owner of one hid_t, closed with the function that matches its kind.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() noexcept = default;
  Handle(hid_t id, Closer closer) noexcept : m_id(id), m_closer(closer) {}
  ~Handle() { reset(); }
  Handle(Handle&& other) noexcept : m_id(std::exchange(other.m_id, H5I_INVALID_HID)), m_closer(other.m_closer) {}
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      reset();
      m_id = std::exchange(other.m_id, H5I_INVALID_HID);
      m_closer = other.m_closer;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  hid_t get() const noexcept { return m_id; }
  bool valid() const noexcept { return m_id >= 0; }
  /// Closes now; returns false (and keeps quiet) when HDF5 reports an error.
  bool close() noexcept {
    if (m_id < 0) return true;
    const herr_t rc = m_closer(m_id);
    m_id = H5I_INVALID_HID;
    return rc >= 0;
  }
  void reset() noexcept { close(); }

 private:
  hid_t m_id = H5I_INVALID_HID;
  Closer m_closer = nullptr;
};

/// The messages on HDF5's error stack, most specific last, and clears the stack.
std::string error_stack();

/// Throws StorageError "<what>: <HDF5 messages>" when `id` is negative; returns it otherwise.
hid_t check(hid_t id, const std::string& what);
/// herr_t flavour.
void check_status(herr_t status, const std::string& what);

/// Turns off HDF5's automatic printing of errors while alive (Cairn reports them itself), and
/// restores the caller's setting afterwards.
class QuietErrors {
 public:
  QuietErrors() noexcept;
  ~QuietErrors();
  QuietErrors(const QuietErrors&) = delete;
  QuietErrors& operator=(const QuietErrors&) = delete;

 private:
  H5E_auto2_t m_func = nullptr;
  void* m_data = nullptr;
};

Handle file(hid_t id) noexcept;
Handle group(hid_t id) noexcept;
Handle dataset(hid_t id) noexcept;
Handle dataspace(hid_t id) noexcept;
Handle datatype(hid_t id) noexcept;
Handle attribute(hid_t id) noexcept;
Handle plist(hid_t id) noexcept;

/// The HDF5 type Cairn stores `dtype` as: little-endian standard integers and IEEE floats, an
/// 8-bit enum {FALSE, TRUE} for bool (h5py reads numpy bool), and 16-bit floats with IEEE half's
/// and bfloat16's bit layouts. Used as both file and memory type.
Handle file_type(DType dtype);

/// The dtype a stored HDF5 type corresponds to; false when Cairn does not know it.
bool dtype_of_type(hid_t type, DType& out);

/// Creates the property list for an MPI-IO file access on `comm` with collective metadata; with
/// MPI_COMM_NULL (no MPI), one for HDF5's default POSIX driver.
Handle mpio_file_access(MPI_Comm comm);
/// The same for a file a writer creates in `directory`, tuned by `options` (alignment, MPI-IO
/// hints, collective metadata).
Handle tuned_file_access(MPI_Comm comm, const Hdf5Options& options, const std::string& directory);
/// Collective (or independent) MPI-IO data transfer properties; defaults when `comm` is MPI_COMM_NULL.
Handle transfer(bool collective, MPI_Comm comm);

/// Creates every missing group on the way to `path` ("a/b/c" creates "a" and "a/b").
void create_groups(hid_t file, const std::string& path);

}  // namespace cairn::detail::h5

namespace cairn::detail::h5 {

/// The in-memory HDF5 type of `dtype` (native byte order).
Handle memory_type(DType dtype);

/// Name of the HDF5 file inside a checkpoint directory.
inline constexpr const char* data_file_name = "data.h5";
/// Dataset that holds Cairn's binary metadata blob.
inline constexpr const char* metadata_dataset = "/_cairn/metadata";

/// Selects `region` of the dataspace `space` (or nothing, for an empty region).
void select_region(hid_t space, const Extents& offset, const Extents& shape);

}  // namespace cairn::detail::h5

namespace cairn::detail::h5 {
/// A one-element memory dataspace with nothing selected, for ranks that join a collective
/// transfer without data (HDF5 1.10 mishandles an H5S_NULL memory space there).
Handle empty_selection_space();
}  // namespace cairn::detail::h5

namespace cairn::detail::h5 {
/// Entries stored as datasets: everything but replicated scalars, which are attributes.
bool is_dataset(const EntryInfo& e);
/// Throws CorruptCheckpointError when the dataspace `space` of entry `info` in file `path` does
/// not have the global shape the metadata records.
void check_extent(hid_t space, const EntryInfo& info, const std::string& path);
/// Writes a scalar attribute `name` on `target` (int64, float64 or a UTF-8 string h5py reads as str).
void write_attribute(hid_t target, const std::string& name, const ScalarValue& value);
/// Where the bytes of dataset `dset` start in its file when they can be read there with plain
/// pread: a contiguous, allocated dataset stored exactly as the memory type of `dtype` on this
/// (little-endian) host. HADDR_UNDEF otherwise (HDF5 must read it). Clears HDF5's error stack.
haddr_t plain_data_offset(hid_t dset, DType dtype);
}  // namespace cairn::detail::h5
