#include "storage/hdf5/hdf5_compression.hpp"

#include <cairn/error.hpp>

#include "core/compression.hpp"

#include <algorithm>

namespace cairn::detail::h5 {

namespace {

// HDF5's filter callback for id 32015: a chunk is one zstd frame that records its content size;
// cd_values[0] is the level. Returns the new size of *buf's data, 0 on failure (HDF5 then fails
// the read or write). Buffers are HDF5's to free, so they come from H5allocate_memory.
std::size_t zstd_filter(unsigned flags, std::size_t cd_nelmts, const unsigned cd_values[], std::size_t nbytes,
                        std::size_t* buf_size, void** buf) {
  if ((flags & H5Z_FLAG_REVERSE) != 0) {
    const std::size_t size = zstd_content_size(*buf, nbytes);
    if (size == 0) return 0;
    void* out = H5allocate_memory(size, false);
    if (out == nullptr) return 0;
    if (zstd_decompress(*buf, nbytes, out, size) != size) {
      H5free_memory(out);
      return 0;
    }
    H5free_memory(*buf);
    *buf = out;
    *buf_size = size;
    return size;
  }
  const int level = cd_nelmts > 0 ? static_cast<int>(cd_values[0]) : 0;
  const std::size_t capacity = zstd_bound(nbytes);
  void* out = H5allocate_memory(capacity, false);
  if (out == nullptr) return 0;
  const std::size_t size = zstd_compress(*buf, nbytes, out, capacity, level);
  if (size == 0) {
    H5free_memory(out);
    return 0;
  }
  H5free_memory(*buf);
  *buf = out;
  *buf_size = capacity;
  return size;
}

bool zstd_filter_ready() {
  static const bool ready = [] {
    QuietErrors quiet;
    if (H5Zfilter_avail(zstd_filter_id) > 0) return true;  // a plugin on HDF5_PLUGIN_PATH, or registered
    H5Eclear2(H5E_DEFAULT);
    if (!compression_built(Compression::Zstd)) return false;
    H5Z_class2_t filter{};
    filter.version = H5Z_CLASS_T_VERS;
    filter.id = zstd_filter_id;
    filter.encoder_present = 1;
    filter.decoder_present = 1;
    filter.name = "zstd (Cairn)";
    filter.filter = zstd_filter;
    const bool registered = H5Zregister(&filter) >= 0;
    H5Eclear2(H5E_DEFAULT);
    return registered;
  }();
  return ready;
}

}  // namespace

bool filter_available(Compression method) {
  switch (method) {
    case Compression::None: return true;
    case Compression::Deflate: return H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0;
    case Compression::Zstd: return zstd_filter_ready();
  }
  return false;
}

void check_filter_available(const EntryInfo& e) {
  if (e.kind != EntryKind::Array || e.compression == Compression::None) return;
  if (filter_available(e.compression)) return;
  if (e.compression == Compression::Zstd)
    throw UnsupportedError("entry '" + e.name +
                           "' is zstd-compressed, but this HDF5 has no zstd filter (id 32015) and this Cairn was "
                           "built without libzstd: install libzstd-dev and rebuild Cairn, put the HDF5 zstd plugin "
                           "on HDF5_PLUGIN_PATH, or save with Compression::Deflate");
  throw UnsupportedError("entry '" + e.name + "' is " + compression_name(e.compression) +
                         "-compressed, which this HDF5 library cannot do (built without zlib?)");
}

std::vector<hsize_t> compressed_chunk_dims(const EntryInfo& e, std::int64_t row_boundary, std::size_t target_bytes) {
  std::vector<hsize_t> dims(e.global_shape.begin(), e.global_shape.end());
  if (dims.empty() || std::find(dims.begin(), dims.end(), hsize_t{0}) != dims.end()) return {};
  hsize_t row_bytes = dtype_size(e.dtype);
  for (std::size_t d = 1; d < dims.size(); ++d) row_bytes *= dims[d];
  const hsize_t target_rows = std::max<hsize_t>(1, target_bytes / row_bytes);
  hsize_t rows = std::min(target_rows, dims[0]);
  // Chunks that end where the ranks' slabs end: each written by one rank, none shared.
  if (row_boundary > 0) {
    const auto boundary = static_cast<hsize_t>(row_boundary);
    if (boundary <= rows) {
      hsize_t multiple = (rows / boundary) * boundary;
      rows = multiple;
    } else {
      for (hsize_t d = rows; d >= std::max<hsize_t>(1, rows / 4); --d)
        if (boundary % d == 0) {
          rows = d;
          break;
        }
    }
  }
  dims[0] = rows;
  // One row alone too large: split the other dimensions as well (HDF5 caps a chunk below 4 GiB).
  auto bytes = [&] {
    hsize_t n = dtype_size(e.dtype);
    for (hsize_t d : dims) n *= d;
    return n;
  };
  while (bytes() > 4 * static_cast<hsize_t>(target_bytes)) {
    const auto largest = std::max_element(dims.begin(), dims.end());
    if (*largest == 1) break;
    *largest = (*largest + 1) / 2;
  }
  return dims;
}

Handle compressed_creation(hid_t base, const EntryInfo& e, const std::vector<hsize_t>& chunk, bool parallel) {
  Handle dcpl = plist(check(H5Pcopy(base), "H5Pcopy"));
  const std::string what = " for '" + e.name + "'";
  check_status(H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()), "H5Pset_chunk" + what);
  // Parallel HDF5 1.10 writes filtered datasets only when they are allocated at creation; serially,
  // chunks are allocated as they are written, at their compressed size.
  check_status(H5Pset_alloc_time(dcpl.get(), parallel ? H5D_ALLOC_TIME_EARLY : H5D_ALLOC_TIME_INCR),
               "H5Pset_alloc_time" + what);
  // HDF5 refuses "never fill" with filters; "if set" writes nothing for the default fill value.
  check_status(H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_IFSET), "H5Pset_fill_time" + what);
  const unsigned level = static_cast<unsigned>(effective_level(e.compression, e.compression_level));
  if (e.compression == Compression::Deflate) {
    check_status(H5Pset_deflate(dcpl.get(), level), "H5Pset_deflate" + what);
  } else if (e.compression == Compression::Zstd) {
    check_filter_available(e);
    const unsigned values[1] = {level};
    check_status(H5Pset_filter(dcpl.get(), zstd_filter_id, H5Z_FLAG_MANDATORY, 1, values),
                 "H5Pset_filter(zstd)" + what);
  }
  return dcpl;
}

Handle compressed_access(const EntryInfo& e) {
  if (e.kind != EntryKind::Array || e.compression == Compression::None) return Handle();
  Handle dapl = plist(check(H5Pcreate(H5P_DATASET_ACCESS), "H5Pcreate(dataset access)"));
  // 16 MiB: four of the ~4 MiB chunks the writers make; w0 = 1: chunks read whole go first.
  check_status(H5Pset_chunk_cache(dapl.get(), 1021, std::size_t{16} << 20, 1.0), "H5Pset_chunk_cache");
  return dapl;
}

}  // namespace cairn::detail::h5
