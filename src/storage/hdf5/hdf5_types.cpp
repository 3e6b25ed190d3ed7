#include <cairn/error.hpp>

#include "storage/hdf5/hdf5_handle.hpp"

#include <mpi.h>
#include <sys/stat.h>

#include <variant>
#include <vector>

namespace cairn::detail::h5 {

namespace {
herr_t collect(unsigned n, const H5E_error2_t* err, void* out) {
  auto* text = static_cast<std::string*>(out);
  if (!text->empty()) text->append("; ");
  text->append(err->desc ? err->desc : "?");
  if (err->func_name) text->append(" (").append(err->func_name).append(")");
  (void)n;
  return 0;
}
}  // namespace

std::string error_stack() {
  std::string text;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, collect, &text);
  H5Eclear2(H5E_DEFAULT);
  return text.empty() ? std::string("unknown HDF5 error") : text;
}

hid_t check(hid_t id, const std::string& what) {
  if (id < 0) throw StorageError(what + ": " + error_stack());
  return id;
}

void check_status(herr_t status, const std::string& what) {
  if (status < 0) throw StorageError(what + ": " + error_stack());
}

QuietErrors::QuietErrors() noexcept {
  H5Eget_auto2(H5E_DEFAULT, &m_func, &m_data);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}
QuietErrors::~QuietErrors() {
  H5Eset_auto2(H5E_DEFAULT, m_func, m_data);
}

Handle file(hid_t id) noexcept {
  return Handle(id, H5Fclose);
}
Handle group(hid_t id) noexcept {
  return Handle(id, H5Gclose);
}
Handle dataset(hid_t id) noexcept {
  return Handle(id, H5Dclose);
}
Handle dataspace(hid_t id) noexcept {
  return Handle(id, H5Sclose);
}
Handle datatype(hid_t id) noexcept {
  return Handle(id, H5Tclose);
}
Handle attribute(hid_t id) noexcept {
  return Handle(id, H5Aclose);
}
Handle plist(hid_t id) noexcept {
  return Handle(id, H5Pclose);
}

namespace {

Handle copy_type(hid_t base) {
  return datatype(check(H5Tcopy(base), "H5Tcopy"));
}

// A 16-bit float with sign at bit 15, the exponent above the mantissa (HDF5 1.10 has no native
// half type; h5py maps any 2-byte IEEE-like float to numpy float16).
Handle float16_type(std::size_t exponent_bits, std::size_t mantissa_bits, std::size_t bias) {
  Handle t = copy_type(H5T_IEEE_F32LE);
  check_status(H5Tset_fields(t.get(), 15, mantissa_bits, exponent_bits, 0, mantissa_bits), "H5Tset_fields");
  check_status(H5Tset_precision(t.get(), 16), "H5Tset_precision");
  check_status(H5Tset_size(t.get(), 2), "H5Tset_size");
  check_status(H5Tset_ebias(t.get(), bias), "H5Tset_ebias");
  return t;
}

}  // namespace

Handle file_type(DType dtype) {
  switch (dtype) {
    case DType::Int8: return copy_type(H5T_STD_I8LE);
    case DType::Int16: return copy_type(H5T_STD_I16LE);
    case DType::Int32: return copy_type(H5T_STD_I32LE);
    case DType::Int64: return copy_type(H5T_STD_I64LE);
    case DType::UInt8: return copy_type(H5T_STD_U8LE);
    case DType::UInt16: return copy_type(H5T_STD_U16LE);
    case DType::UInt32: return copy_type(H5T_STD_U32LE);
    case DType::UInt64: return copy_type(H5T_STD_U64LE);
    case DType::Float32: return copy_type(H5T_IEEE_F32LE);
    case DType::Float64: return copy_type(H5T_IEEE_F64LE);
    case DType::Float16: return float16_type(5, 10, 15);
    case DType::BFloat16: return float16_type(8, 7, 127);
    case DType::Bool: {
      Handle t = datatype(check(H5Tenum_create(H5T_STD_I8LE), "H5Tenum_create"));
      const std::int8_t no = 0, yes = 1;
      check_status(H5Tenum_insert(t.get(), "FALSE", &no), "H5Tenum_insert");
      check_status(H5Tenum_insert(t.get(), "TRUE", &yes), "H5Tenum_insert");
      return t;
    }
  }
  throw UsageError("unknown dtype value " + std::to_string(static_cast<unsigned>(dtype)));
}

bool dtype_of_type(hid_t type, DType& out) {
  const H5T_class_t cls = H5Tget_class(type);
  const std::size_t size = H5Tget_size(type);
  if (cls == H5T_INTEGER) {
    const bool is_signed = H5Tget_sign(type) == H5T_SGN_2;
    switch (size) {
      case 1: out = is_signed ? DType::Int8 : DType::UInt8; return true;
      case 2: out = is_signed ? DType::Int16 : DType::UInt16; return true;
      case 4: out = is_signed ? DType::Int32 : DType::UInt32; return true;
      case 8: out = is_signed ? DType::Int64 : DType::UInt64; return true;
      default: return false;
    }
  }
  if (cls == H5T_FLOAT) {
    if (size == 4)
      out = DType::Float32;
    else if (size == 8)
      out = DType::Float64;
    else if (size == 2)
      out = H5Tget_ebias(type) == 127 ? DType::BFloat16 : DType::Float16;
    else
      return false;
    return true;
  }
  if (cls == H5T_ENUM && size == 1) {
    out = DType::Bool;
    return true;
  }
  return false;
}

Handle mpio_file_access(MPI_Comm comm) {
  Handle fapl = plist(check(H5Pcreate(H5P_FILE_ACCESS), "H5Pcreate(file access)"));
  if (comm == MPI_COMM_NULL) return fapl;  // one process without MPI: HDF5's POSIX driver
  check_status(H5Pset_fapl_mpio(fapl.get(), comm, MPI_INFO_NULL), "H5Pset_fapl_mpio");
  // Metadata is read once and broadcast, and written collectively: fewer small requests at scale.
  check_status(H5Pset_all_coll_metadata_ops(fapl.get(), true), "H5Pset_all_coll_metadata_ops");
  check_status(H5Pset_coll_metadata_write(fapl.get(), true), "H5Pset_coll_metadata_write");
  return fapl;
}

Handle tuned_file_access(MPI_Comm comm, const Hdf5Options& options, const std::string& directory) {
  Handle fapl = plist(check(H5Pcreate(H5P_FILE_ACCESS), "H5Pcreate(file access)"));
  hsize_t alignment = options.alignment;
  if (alignment == 0) {
    struct stat st {};
    alignment = ::stat(directory.c_str(), &st) == 0 && st.st_blksize > 0 ? static_cast<hsize_t>(st.st_blksize) : 4096;
  }
  if (alignment > 1)
    check_status(H5Pset_alignment(fapl.get(), static_cast<hsize_t>(options.alignment_threshold), alignment),
                 "H5Pset_alignment");
  if (comm == MPI_COMM_NULL) return fapl;
  MPI_Info info = MPI_INFO_NULL;
  if (!options.mpi_hints.empty()) {
    MPI_Info_create(&info);
    for (const auto& [key, value] : options.mpi_hints) MPI_Info_set(info, key.c_str(), value.c_str());
  }
  const herr_t rc = H5Pset_fapl_mpio(fapl.get(), comm, info);  // HDF5 keeps its own copy of the info
  if (info != MPI_INFO_NULL) MPI_Info_free(&info);
  check_status(rc, "H5Pset_fapl_mpio");
  if (options.collective_metadata) {
    check_status(H5Pset_all_coll_metadata_ops(fapl.get(), true), "H5Pset_all_coll_metadata_ops");
    check_status(H5Pset_coll_metadata_write(fapl.get(), true), "H5Pset_coll_metadata_write");
  }
  return fapl;
}

Handle transfer(bool collective, MPI_Comm comm) {
  Handle dxpl = plist(check(H5Pcreate(H5P_DATASET_XFER), "H5Pcreate(transfer)"));
  if (comm == MPI_COMM_NULL) return dxpl;  // the POSIX driver rejects MPI-IO transfer modes
  check_status(H5Pset_dxpl_mpio(dxpl.get(), collective ? H5FD_MPIO_COLLECTIVE : H5FD_MPIO_INDEPENDENT),
               "H5Pset_dxpl_mpio");
  return dxpl;
}

void create_groups(hid_t file_id, const std::string& path) {
  std::size_t pos = 0;
  while ((pos = path.find('/', pos + 1)) != std::string::npos) {
    const std::string prefix = path.substr(0, pos);
    const htri_t present = H5Lexists(file_id, prefix.c_str(), H5P_DEFAULT);
    if (present > 0) continue;
    Handle g = group(check(H5Gcreate2(file_id, prefix.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                           "cannot create group '" + prefix + "'"));
  }
}

}  // namespace cairn::detail::h5

namespace cairn::detail::h5 {

Handle memory_type(DType dtype) {
  switch (dtype) {
    case DType::Int8: return copy_type(H5T_NATIVE_INT8);
    case DType::Int16: return copy_type(H5T_NATIVE_INT16);
    case DType::Int32: return copy_type(H5T_NATIVE_INT32);
    case DType::Int64: return copy_type(H5T_NATIVE_INT64);
    case DType::UInt8: return copy_type(H5T_NATIVE_UINT8);
    case DType::UInt16: return copy_type(H5T_NATIVE_UINT16);
    case DType::UInt32: return copy_type(H5T_NATIVE_UINT32);
    case DType::UInt64: return copy_type(H5T_NATIVE_UINT64);
    case DType::Float32: return copy_type(H5T_NATIVE_FLOAT);
    case DType::Float64: return copy_type(H5T_NATIVE_DOUBLE);
    default: return file_type(dtype);  // bool, float16, bfloat16: the stored layout is the memory layout
  }
}

void select_region(hid_t space, const Extents& offset, const Extents& shape) {
  bool empty = false;
  for (std::int64_t e : shape) empty = empty || e == 0;
  if (empty) {
    check_status(H5Sselect_none(space), "H5Sselect_none");
    return;
  }
  std::vector<hsize_t> start(offset.begin(), offset.end());
  std::vector<hsize_t> count(shape.begin(), shape.end());
  check_status(H5Sselect_hyperslab(space, H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr),
               "H5Sselect_hyperslab");
}

}  // namespace cairn::detail::h5

namespace cairn::detail::h5 {
Handle empty_selection_space() {
  const hsize_t one = 1;
  Handle space = dataspace(check(H5Screate_simple(1, &one, nullptr), "H5Screate_simple"));
  check_status(H5Sselect_none(space.get()), "H5Sselect_none");
  return space;
}
}  // namespace cairn::detail::h5

namespace cairn::detail::h5 {

// Entries stored as datasets: everything but replicated scalars, which are attributes.
bool is_dataset(const EntryInfo& e) {
  return !(e.kind == EntryKind::Scalar && e.distribution == Distribution::Replicated);
}

haddr_t plain_data_offset(hid_t dset, DType dtype) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  const Handle dcpl = plist(H5Dget_create_plist(dset));
  haddr_t offset = HADDR_UNDEF;
  if (dcpl.valid() && H5Pget_layout(dcpl.get()) == H5D_CONTIGUOUS) {
    const Handle stored = datatype(H5Dget_type(dset));
    const Handle wanted = memory_type(dtype);
    if (stored.valid() && H5Tequal(stored.get(), wanted.get()) > 0) offset = H5Dget_offset(dset);
  }
  H5Eclear2(H5E_DEFAULT);
  return offset;
#else
  (void)dset;
  (void)dtype;
  return HADDR_UNDEF;
#endif
}

void check_extent(hid_t space, const EntryInfo& info, const std::string& path) {
  const int ndims = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> dims(ndims > 0 ? static_cast<std::size_t>(ndims) : 0);
  if (ndims > 0) H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  bool same = dims.size() == info.global_shape.size();
  for (std::size_t d = 0; same && d < dims.size(); ++d) same = dims[d] == static_cast<hsize_t>(info.global_shape[d]);
  if (!same)
    throw CorruptCheckpointError("dataset '" + info.name + "' of '" + path +
                                 "' does not have the shape its metadata records");
}

void write_attribute(hid_t target, const std::string& name, const ScalarValue& value) {
  Handle space = dataspace(check(H5Screate(H5S_SCALAR), "H5Screate"));
  Handle type;
  const void* data = nullptr;
  const char* text = nullptr;
  if (const auto* i = std::get_if<std::int64_t>(&value)) {
    type = file_type(DType::Int64);
    data = i;
  } else if (const auto* d = std::get_if<double>(&value)) {
    type = file_type(DType::Float64);
    data = d;
  } else if (const auto* s = std::get_if<std::string>(&value)) {
    // Variable-length UTF-8: h5py reads it back as a Python str.
    type = datatype(check(H5Tcopy(H5T_C_S1), "H5Tcopy"));
    check_status(H5Tset_size(type.get(), H5T_VARIABLE), "H5Tset_size");
    check_status(H5Tset_cset(type.get(), H5T_CSET_UTF8), "H5Tset_cset");
    text = s->c_str();
    data = &text;
  } else {
    throw InternalError("attribute '" + name + "' has no value");
  }
  Handle attr = attribute(check(H5Acreate2(target, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
                                "cannot create attribute '" + name + "'"));
  check_status(H5Awrite(attr.get(), type.get(), data), "cannot write attribute '" + name + "'");
}

}  // namespace cairn::detail::h5
