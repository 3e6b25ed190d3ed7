#include <cairn/error.hpp>
#include <cairn/process_group.hpp>
#include <cairn/storage.hpp>

#include "comm/agree.hpp"
#include "comm/broadcast.hpp"
#include "core/metadata_codec.hpp"
#include "core/region.hpp"
#include "storage/common/publish.hpp"
#include "storage/hdf5/hdf5_aggregated.hpp"
#include "storage/hdf5/hdf5_compression.hpp"
#include "storage/hdf5/hdf5_handle.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <exception>
#include <set>
#include <string>
#include <vector>

namespace cairn {

namespace {

using detail::h5::Handle;
namespace h5 = detail::h5;

void check_readable(const std::string& path, const std::string& what) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);  // as the effective user
  if (fd < 0) throw StorageError("cannot read " + what + " '" + path + "': " + detail::errno_text(errno));
  ::close(fd);
}

class Hdf5AggregatedReader final : public StorageReader {
 public:
  void open(const std::string& directory, ProcessGroup& group) override {
    h5::QuietErrors quiet;
    m_group = &group;
    m_path = directory + "/" + h5::data_file_name;
    // Rank 0 reads the metadata and checks that every part file is there (a missing source file
    // would read as zeros through a virtual dataset), then tells the others.
    std::vector<std::byte> blob;
    detail::agree_on(group, "opening '" + m_path + "'", [&] {
      if (group.rank() != 0) return;
      check_readable(m_path, "the checkpoint file");
      Handle file = open_file();
      blob = read_1d_bytes(file.get(), h5::metadata_dataset);
      const Metadata md = detail::decode_metadata(blob.data(), blob.size(), m_path);
      std::vector<std::int32_t> parts = read_parts(file.get(), md);
      for (std::int32_t p : std::set<std::int32_t>(parts.begin(), parts.end()))
        check_readable(directory + "/" + h5::part_file_name(p), "part file");
    });
    detail::broadcast_bytes(group, blob, 0);
    m_metadata = detail::decode_metadata(blob.data(), blob.size(), m_path);
  }

  const Metadata& metadata() const override { return m_metadata; }

  void read(const std::vector<ReadRequest>& requests) override {
    h5::QuietErrors quiet;
    if (requests.empty()) return;
    if (!m_file.valid()) m_file = open_file();
    // Kept open across calls: a checked load reads in many small rounds, and opening a virtual
    // dataset opens its part files.
    std::vector<Handle>& datasets = m_datasets;
    datasets.resize(m_metadata.entries.size());
    for (const ReadRequest& r : requests) {
      const auto e = static_cast<std::size_t>(r.entry);
      const EntryInfo& info = m_metadata.entries.at(e);
      if (detail::volume(r.region.shape) == 0) continue;
      h5::check_filter_available(info);  // registers Cairn's zstd filter, or says clearly why not
      if (!datasets[e].valid())
        datasets[e] = h5::dataset(h5::check(H5Dopen2(m_file.get(), info.name.c_str(), H5P_DEFAULT),
                                            "checkpoint file '" + m_path + "' lacks dataset '" + info.name + "'"));
      Handle space = h5::dataspace(h5::check(H5Dget_space(datasets[e].get()), "H5Dget_space"));
      h5::check_extent(space.get(), info, m_path);
      h5::select_region(space.get(), r.region.offset, r.region.shape);
      std::vector<hsize_t> dims(r.region.shape.begin(), r.region.shape.end());
      Handle mem = h5::dataspace(
          h5::check(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), "H5Screate_simple"));
      Handle type = h5::memory_type(r.dtype);
      if (H5Dread(datasets[e].get(), type.get(), mem.get(), space.get(), H5P_DEFAULT, r.destination) < 0)
        throw StorageError("cannot read '" + info.name + "' " + detail::to_string(r.region) + " through '" + m_path +
                           "': " + h5::error_stack());
    }
  }

  void close() noexcept override {
    h5::QuietErrors quiet;
    m_datasets.clear();
    m_file.close();
  }

 private:
  // HDF5's POSIX driver, on this rank alone; virtual datasets open their part files the same way.
  Handle open_file() const {
    if (H5Fis_hdf5(m_path.c_str()) <= 0) {
      H5Eclear2(H5E_DEFAULT);
      throw CorruptCheckpointError("'" + m_path + "' is not an HDF5 file (damaged, truncated or not written by Cairn)");
    }
    const hid_t id = H5Fopen(m_path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (id < 0)
      throw CorruptCheckpointError("cannot open '" + m_path + "' (damaged or truncated?): " + h5::error_stack());
    return h5::file(id);
  }

  std::vector<std::byte> read_1d_bytes(hid_t file, const char* name) const {
    if (H5Lexists(file, "/_cairn", H5P_DEFAULT) <= 0 || H5Lexists(file, name, H5P_DEFAULT) <= 0) {
      H5Eclear2(H5E_DEFAULT);
      throw CorruptCheckpointError("'" + m_path + "' is an HDF5 file but not a Cairn checkpoint (no " + name + ")");
    }
    Handle dset = h5::dataset(h5::check(H5Dopen2(file, name, H5P_DEFAULT), "cannot open '" + std::string(name) + "'"));
    Handle space = h5::dataspace(h5::check(H5Dget_space(dset.get()), "H5Dget_space"));
    if (H5Sget_simple_extent_ndims(space.get()) != 1)
      throw CorruptCheckpointError("'" + std::string(name) + "' of '" + m_path + "' is not one-dimensional");
    hsize_t n = 0;
    H5Sget_simple_extent_dims(space.get(), &n, nullptr);
    std::vector<std::byte> out(static_cast<std::size_t>(n));
    Handle type = h5::memory_type(DType::UInt8);
    if (H5Dread(dset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0)
      throw CorruptCheckpointError("cannot read '" + std::string(name) + "' of '" + m_path + "': " + h5::error_stack());
    return out;
  }

  std::vector<std::int32_t> read_parts(hid_t file, const Metadata& md) const {
    if (H5Lexists(file, h5::part_of_rank_dataset, H5P_DEFAULT) <= 0) {
      H5Eclear2(H5E_DEFAULT);
      throw CorruptCheckpointError("'" + m_path + "' has part files but no " + h5::part_of_rank_dataset);
    }
    Handle dset = h5::dataset(
        h5::check(H5Dopen2(file, h5::part_of_rank_dataset, H5P_DEFAULT), "cannot open the part of each rank"));
    Handle space = h5::dataspace(h5::check(H5Dget_space(dset.get()), "H5Dget_space"));
    hsize_t n = 0;
    if (H5Sget_simple_extent_ndims(space.get()) != 1 || H5Sget_simple_extent_dims(space.get(), &n, nullptr) < 0 ||
        n != static_cast<hsize_t>(md.world_size))
      throw CorruptCheckpointError("'" + std::string(h5::part_of_rank_dataset) + "' of '" + m_path +
                                   "' does not have one element per saved rank");
    std::vector<std::int32_t> parts(static_cast<std::size_t>(n));
    Handle type = h5::memory_type(DType::Int32);
    if (H5Dread(dset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, parts.data()) < 0)
      throw CorruptCheckpointError("cannot read the part of each rank from '" + m_path + "': " + h5::error_stack());
    for (std::int32_t p : parts)
      if (p < 0 || p >= md.world_size)
        throw CorruptCheckpointError("'" + m_path + "' names part file " + std::to_string(p) + " of " +
                                     std::to_string(md.world_size) + " saved ranks");
    return parts;
  }

  ProcessGroup* m_group = nullptr;
  std::string m_path;
  Handle m_file;
  std::vector<Handle> m_datasets;  // by entry, opened on first use
  Metadata m_metadata;
};

}  // namespace

namespace detail::h5 {
std::unique_ptr<StorageReader> make_hdf5_aggregated_reader() {
  return std::make_unique<Hdf5AggregatedReader>();
}
}  // namespace detail::h5

}  // namespace cairn
