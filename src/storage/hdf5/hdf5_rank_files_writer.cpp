// Writer of the rank-files layout: each rank writes its own file alone, with no communication.
#include <cairn/error.hpp>
#include <cairn/process_group.hpp>
#include <cairn/storage.hpp>

#include "core/metadata_codec.hpp"
#include "core/region.hpp"
#include "storage/common/publish.hpp"
#include "storage/hdf5/hdf5_compression.hpp"
#include "storage/hdf5/hdf5_handle.hpp"
#include "storage/hdf5/hdf5_rank_files.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <vector>

namespace cairn {

namespace detail::h5 {
std::string rank_file_name(int rank) {
  char name[32];
  std::snprintf(name, sizeof name, "rank_%06d.h5", rank);
  return name;
}
}  // namespace detail::h5

namespace {

using detail::h5::Handle;
namespace h5 = detail::h5;

// mkdir -p: every rank may create the same directory at the same moment, so EEXIST is success.
void make_directories(const std::string& path) {
  for (std::size_t end = 1; end <= path.size(); ++end) {
    if (end < path.size() && path[end] != '/') continue;
    const std::string prefix = path.substr(0, end);
    if (::mkdir(prefix.c_str(), 0777) != 0 && errno != EEXIST)
      throw StorageError("cannot create directory '" + prefix + "': " + detail::errno_text(errno));
  }
}

// A dataspace of `shape`; a scalar one for a 0-d shape.
Handle make_space(const Extents& shape, const std::string& what) {
  if (shape.empty()) return h5::dataspace(h5::check(H5Screate(H5S_SCALAR), "H5Screate for " + what));
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  return h5::dataspace(
      h5::check(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), "H5Screate_simple for " + what));
}

void write_string_attribute(hid_t target, const char* name, const std::string& value) {
  // Variable-length UTF-8, as the shared-file writer stores strings: h5py reads a Python str.
  Handle type = h5::datatype(h5::check(H5Tcopy(H5T_C_S1), "H5Tcopy"));
  h5::check_status(H5Tset_size(type.get(), H5T_VARIABLE), "H5Tset_size");
  h5::check_status(H5Tset_cset(type.get(), H5T_CSET_UTF8), "H5Tset_cset");
  Handle space = h5::dataspace(h5::check(H5Screate(H5S_SCALAR), "H5Screate"));
  Handle attr = h5::attribute(h5::check(H5Acreate2(target, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
                                        std::string("cannot create attribute '") + name + "'"));
  const char* text = value.c_str();
  h5::check_status(H5Awrite(attr.get(), type.get(), &text), std::string("cannot write attribute '") + name + "'");
}

void write_int64_attribute(hid_t target, const char* name, const std::vector<std::int64_t>& values, bool scalar) {
  const hsize_t n = values.size();
  Handle space = scalar ? h5::dataspace(h5::check(H5Screate(H5S_SCALAR), "H5Screate"))
                        : h5::dataspace(h5::check(H5Screate_simple(1, &n, nullptr), "H5Screate_simple"));
  Handle file_type = h5::file_type(DType::Int64);
  Handle attr =
      h5::attribute(h5::check(H5Acreate2(target, name, file_type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
                              std::string("cannot create attribute '") + name + "'"));
  Handle mem_type = h5::memory_type(DType::Int64);
  if (!values.empty())
    h5::check_status(H5Awrite(attr.get(), mem_type.get(), values.data()),
                     std::string("cannot write attribute '") + name + "'");
}

// A 1-D dataset of `data` in `dtype`, contiguous.
void write_1d(hid_t file, const char* name, DType dtype, const void* data, std::size_t count) {
  const hsize_t n = count;
  Handle space = h5::dataspace(h5::check(H5Screate_simple(1, &n, nullptr), "H5Screate_simple"));
  Handle type = h5::file_type(dtype);
  Handle dset = h5::dataset(h5::check(
      H5Dcreate2(file, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "cannot create it"));
  Handle mem_type = h5::memory_type(dtype);
  if (count > 0)
    h5::check_status(H5Dwrite(dset.get(), mem_type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data), "cannot write it");
  if (!dset.close()) throw StorageError("cannot close it: " + h5::error_stack());
}

class Hdf5RankFilesWriter final : public StorageWriter {
 public:
  void open(const std::string& directory, const std::vector<EntryInfo>& entries, ProcessGroup& group) override {
    h5::QuietErrors quiet;
    m_rank = group.rank();
    m_entries = entries;
    m_path = directory + "/" + h5::rank_file_name(m_rank);
    m_next = 0;
    m_index.clear();
    make_directories(directory);
    for (const EntryInfo& e : entries) h5::check_filter_available(e);  // before the file exists
    // The default (POSIX) driver: this rank is the file's only writer.
    Handle fapl = h5::mpio_file_access(MPI_COMM_NULL);
    // TRUNC: a stale file of an earlier save that never published may sit in the partial directory.
    m_file = h5::file(h5::check(H5Fcreate(m_path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()),
                                "cannot create HDF5 file '" + m_path + "'"));
    h5::create_groups(m_file.get(), std::string(h5::chunks_group) + "/");
  }

  void write(const std::vector<WriteBuffer>& buffers) override {
    h5::QuietErrors quiet;
    if (!m_file.valid()) throw InternalError("write to '" + m_path + "' before open");
    Handle dxpl = h5::transfer(false, MPI_COMM_NULL);
    for (const WriteBuffer& buffer : buffers) {
      const WriteItem& item = *buffer.item;
      if (item.entry < 0 || static_cast<std::size_t>(item.entry) >= m_entries.size())
        throw InternalError("a write buffer of '" + m_path + "' names entry " + std::to_string(item.entry));
      const EntryInfo& info = m_entries[static_cast<std::size_t>(item.entry)];
      const std::string name = std::string(h5::chunks_group) + "/" + std::to_string(m_next);
      const std::string what = "dataset '" + name + "' (entry '" + info.name + "', region " +
                               detail::to_string(item.region) + ") of '" + m_path + "'";
      try {
        Handle space = make_space(item.region.shape, what);
        Handle type = h5::file_type(info.dtype);
        // Compressed entries: chunked and filtered; serial HDF5 here, so written independently.
        Handle dcpl;
        if (info.kind == EntryKind::Array && info.compression != Compression::None) {
          EntryInfo shape_of_item = info;
          shape_of_item.global_shape = item.region.shape;
          const std::vector<hsize_t> chunk = h5::compressed_chunk_dims(shape_of_item, 0);
          if (!chunk.empty()) {
            Handle base = h5::plist(h5::check(H5Pcreate(H5P_DATASET_CREATE), "H5Pcreate(dataset create)"));
            dcpl = h5::compressed_creation(base.get(), info, chunk, false);
          }
        }
        Handle dset = h5::dataset(h5::check(H5Dcreate2(m_file.get(), name.c_str(), type.get(), space.get(), H5P_DEFAULT,
                                                       dcpl.valid() ? dcpl.get() : H5P_DEFAULT, H5P_DEFAULT),
                                            "cannot create " + what));
        Handle mem_type = h5::memory_type(info.dtype);
        if (detail::volume(item.region.shape) > 0)
          h5::check_status(H5Dwrite(dset.get(), mem_type.get(), H5S_ALL, H5S_ALL, dxpl.get(), buffer.data),
                           "cannot write " + what);
        write_string_attribute(dset.get(), "entry", info.name);
        write_int64_attribute(dset.get(), "offset", item.region.offset, false);
        if (!dset.close()) throw StorageError("cannot close " + what + ": " + h5::error_stack());
      } catch (const StorageError&) {
        throw;
      } catch (const Error& e) {
        throw StorageError(what + ": " + e.what());
      }
      m_index.push_back(item.entry);
      m_index.push_back(static_cast<std::int64_t>(item.region.shape.size()));
      m_index.insert(m_index.end(), item.region.offset.begin(), item.region.offset.end());
      m_index.insert(m_index.end(), item.region.shape.begin(), item.region.shape.end());
      ++m_next;
    }
  }

  void finish(const Metadata& metadata) override {
    h5::QuietErrors quiet;
    if (!m_file.valid()) throw InternalError("finish of '" + m_path + "' before open");
    const std::vector<std::byte> blob = detail::encode_metadata(metadata);
    try {
      write_1d(m_file.get(), h5::metadata_dataset, DType::UInt8, blob.data(), blob.size());
    } catch (const Error& e) {
      throw StorageError("metadata dataset '" + std::string(h5::metadata_dataset) + "' of '" + m_path +
                         "': " + e.what());
    }
    std::vector<std::int64_t> index;
    index.reserve(m_index.size() + 1);
    index.push_back(m_next);
    index.insert(index.end(), m_index.begin(), m_index.end());
    try {
      write_1d(m_file.get(), h5::chunk_index_dataset, DType::Int64, index.data(), index.size());
    } catch (const Error& e) {
      throw StorageError("chunk index dataset '" + std::string(h5::chunk_index_dataset) + "' of '" + m_path +
                         "': " + e.what());
    }
    {
      Handle meta = h5::group(
          h5::check(H5Gopen2(m_file.get(), "/_cairn", H5P_DEFAULT), "cannot open group '/_cairn' of '" + m_path + "'"));
      try {
        write_int64_attribute(meta.get(), "format_version", {std::int64_t{metadata.format_version}}, true);
        write_string_attribute(meta.get(), "library_version", metadata.library_version);
        write_int64_attribute(meta.get(), "world_size", {std::int64_t{metadata.world_size}}, true);
        write_int64_attribute(meta.get(), "created_unix_time", {metadata.created_unix_time}, true);
        write_string_attribute(meta.get(), "layout", "rank_files");
        write_int64_attribute(meta.get(), "rank", {std::int64_t{m_rank}}, true);
      } catch (const Error& e) {
        throw StorageError("attributes of '/_cairn' in '" + m_path + "': " + e.what());
      }
    }
    if (!m_file.close()) throw StorageError("cannot close '" + m_path + "': " + h5::error_stack());
    detail::fsync_path(m_path);
  }

  void abort() noexcept override {
    h5::QuietErrors quiet;
    m_file.close();
  }

 private:
  int m_rank = 0;
  std::vector<EntryInfo> m_entries;
  std::string m_path;
  Handle m_file;
  std::int64_t m_next = 0;            // datasets written so far
  std::vector<std::int64_t> m_index;  // chunk_index_dataset's records, without the count
};

}  // namespace

std::unique_ptr<StorageWriter> make_hdf5_rank_files_writer() {
  return std::make_unique<Hdf5RankFilesWriter>();
}

}  // namespace cairn
