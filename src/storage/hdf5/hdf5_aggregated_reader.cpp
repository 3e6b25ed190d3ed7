#include <cairn/error.hpp>
#include <cairn/process_group.hpp>
#include <cairn/storage.hpp>

#include "comm/agree.hpp"
#include "comm/broadcast.hpp"
#include "core/metadata_codec.hpp"
#include "core/region.hpp"
#include "storage/common/coalesced_reads.hpp"
#include "storage/common/publish.hpp"
#include "storage/hdf5/hdf5_aggregated.hpp"
#include "storage/hdf5/hdf5_compression.hpp"
#include "storage/hdf5/hdf5_handle.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <exception>
#include <map>
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
    m_directory = directory;
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
      m_part_of_rank = read_parts(file.get(), md);
      for (std::int32_t p : std::set<std::int32_t>(m_part_of_rank.begin(), m_part_of_rank.end()))
        check_readable(directory + "/" + h5::part_file_name(p), "part file");
    });
    detail::broadcast_bytes(group, blob, 0);
    m_metadata = detail::decode_metadata(blob.data(), blob.size(), m_path);
    std::vector<std::int32_t> parts(static_cast<std::size_t>(m_metadata.world_size));
    if (group.rank() == 0) parts = m_part_of_rank;
    if (!parts.empty()) group.broadcast(parts.data(), parts.size() * sizeof(std::int32_t), 0);
    m_part_of_rank = std::move(parts);
    m_item_index = h5::item_index_of_chunks(m_metadata);
    m_chunk_offset.assign(m_metadata.chunks.size(), unknown_offset);
    m_chunks_of.assign(m_metadata.entries.size(), detail::RegionIndex{});
    for (std::size_t c = 0; c < m_metadata.chunks.size(); ++c)
      if (detail::volume(m_metadata.chunks[c].region.shape) > 0)
        m_chunks_of[static_cast<std::size_t>(m_metadata.chunks[c].entry)].add(&m_metadata.chunks[c].region, c);
    for (detail::RegionIndex& index : m_chunks_of) index.build();
  }

  const Metadata& metadata() const override { return m_metadata; }

  void read(const std::vector<ReadRequest>& requests) override {
    h5::QuietErrors quiet;
    try {
      for (const ReadRequest& r : requests) {
        if (detail::volume(r.region.shape) == 0) continue;
        const EntryInfo& info = m_metadata.entries.at(static_cast<std::size_t>(r.entry));
        if (!queue_direct(r, info)) read_virtual(r, info);
      }
      m_direct.flush([this](int part, std::byte* out, std::uint64_t bytes, std::uint64_t at) {
        pread_part(part, out, bytes, at);
      });
    } catch (...) {
      m_direct.clear();  // their destinations may be gone by the next call
      throw;
    }
  }

  void close() noexcept override {
    h5::QuietErrors quiet;
    m_datasets.clear();
    m_file.close();
    for (auto& [part, open] : m_parts)
      if (open.fd >= 0) ::close(open.fd);
    m_parts.clear();
    m_chunk_offset.assign(m_chunk_offset.size(), unknown_offset);
  }

  ~Hdf5AggregatedReader() override { close(); }

 private:
  // Reads `r` through its virtual dataset (HDF5 finds the part files and converts the type).
  void read_virtual(const ReadRequest& r, const EntryInfo& info) {
    const auto e = static_cast<std::size_t>(r.entry);
    h5::check_filter_available(info);  // registers Cairn's zstd filter, or says clearly why not
    if (!m_file.valid()) m_file = open_file();
    // Kept open across calls: a checked load reads in many rounds, and opening a virtual dataset
    // opens its part files.
    m_datasets.resize(m_metadata.entries.size());
    Handle& dataset = m_datasets[e];
    if (!dataset.valid())
      dataset = h5::dataset(h5::check(H5Dopen2(m_file.get(), info.name.c_str(), H5P_DEFAULT),
                                      "checkpoint file '" + m_path + "' lacks dataset '" + info.name + "'"));
    Handle space = h5::dataspace(h5::check(H5Dget_space(dataset.get()), "H5Dget_space"));
    h5::check_extent(space.get(), info, m_path);
    h5::select_region(space.get(), r.region.offset, r.region.shape);
    std::vector<hsize_t> dims(r.region.shape.begin(), r.region.shape.end());
    Handle mem = h5::dataspace(
        h5::check(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), "H5Screate_simple"));
    Handle type = h5::memory_type(r.dtype);
    if (H5Dread(dataset.get(), type.get(), mem.get(), space.get(), H5P_DEFAULT, r.destination) < 0)
      throw StorageError("cannot read '" + info.name + "' " + detail::to_string(r.region) + " through '" + m_path +
                         "': " + h5::error_stack());
  }

  // Queues `r` for plain preads from its part files when every saved chunk it touches holds its
  // part as a slab of the chunk's rows that is also a slab of the request's rows, in the stored
  // type, in a contiguous (uncompressed) dataset: a same-layout load, a checked load's rounds,
  // chunks saved as several items. Reading through the virtual dataset costs HDF5's selection
  // machinery on every call, and its reads are neither merged nor larger than one item.
  bool queue_direct(const ReadRequest& r, const EntryInfo& info) {
    if (info.kind != EntryKind::Array || info.compression != Compression::None || r.dtype != info.dtype ||
        r.region.shape.empty())
      return false;
    struct Part {
      std::size_t chunk;
      Region region;
    };
    std::vector<Part> parts;
    std::int64_t covered = 0;
    m_chunks_of.at(static_cast<std::size_t>(r.entry))
        .for_each_intersecting(r.region, [&](std::size_t c, const Region& part) {
          parts.push_back(Part{c, part});
          covered += detail::volume(part.shape);
        });
    if (covered != detail::volume(r.region.shape)) return false;  // HDF5 reports what is missing
    std::vector<detail::CoalescedReads::Read> reads;
    const auto esize = static_cast<std::int64_t>(dtype_size(info.dtype));
    for (const Part& part : parts) {
      const ChunkRecord& record = m_metadata.chunks[part.chunk];
      if (!detail::row_slab_of(part.region, record.region) || !detail::row_slab_of(part.region, r.region)) return false;
      const std::uint64_t base = chunk_data_offset(part.chunk, info);
      if (base == HADDR_UNDEF) return false;
      reads.push_back(
          {part_of(record.rank),
           static_cast<std::byte*>(r.destination) + detail::row_major_index(r.region, part.region.offset) * esize,
           static_cast<std::uint64_t>(detail::volume(part.region.shape) * esize),
           base + static_cast<std::uint64_t>(detail::row_major_index(record.region, part.region.offset) * esize)});
    }
    for (const auto& read : reads) m_direct.add(read.file, read.destination, read.bytes, read.offset);
    return true;
  }

  int part_of(std::int32_t rank) const { return m_part_of_rank.at(static_cast<std::size_t>(rank)); }

  // Where chunk `c`'s bytes start in its part file; HADDR_UNDEF when HDF5 must read them. Looked
  // up once per chunk.
  std::uint64_t chunk_data_offset(std::size_t c, const EntryInfo& info) {
    if (m_chunk_offset[c] != unknown_offset) return m_chunk_offset[c];
    const ChunkRecord& record = m_metadata.chunks[c];
    PartFile& part = open_part(part_of(record.rank));
    const std::string name = h5::item_dataset_name(record.rank, m_item_index[c]);
    Handle dataset = h5::dataset(
        h5::check(H5Dopen2(part.file.get(), name.c_str(), H5P_DEFAULT),
                  "part file '" + part.path + "' lacks dataset '" + name + "' of entry '" + info.name + "'"));
    Handle space = h5::dataspace(h5::check(H5Dget_space(dataset.get()), "H5Dget_space"));
    std::vector<hsize_t> dims(record.region.shape.size());
    const bool same_shape = H5Sget_simple_extent_ndims(space.get()) == static_cast<int>(dims.size()) &&
                            H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr) >= 0 &&
                            std::equal(dims.begin(), dims.end(), record.region.shape.begin(),
                                       [](hsize_t a, std::int64_t b) { return a == static_cast<hsize_t>(b); });
    if (!same_shape)
      throw CorruptCheckpointError("dataset '" + name + "' of part file '" + part.path + "' does not have the shape " +
                                   detail::to_string(record.region.shape) + " of the chunk of entry '" + info.name +
                                   "' it holds");
    m_chunk_offset[c] = h5::plain_data_offset(dataset.get(), info.dtype);
    return m_chunk_offset[c];
  }

  struct PartFile {
    std::string path;
    Handle file;
    int fd = -1;
  };

  PartFile& open_part(int part) {
    auto found = m_parts.find(part);
    if (found != m_parts.end()) return found->second;
    PartFile open;
    open.path = m_directory + "/" + h5::part_file_name(part);
    const hid_t id = H5Fopen(open.path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (id < 0)
      throw CorruptCheckpointError("cannot open part file '" + open.path +
                                   "' (damaged or truncated?): " + h5::error_stack());
    open.file = h5::file(id);
    open.fd = ::open(open.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (open.fd < 0) throw StorageError("cannot read part file '" + open.path + "': " + detail::errno_text(errno));
    return m_parts.emplace(part, std::move(open)).first->second;
  }

  void pread_part(int part, std::byte* out, std::uint64_t bytes, std::uint64_t at) {
    const PartFile& open = m_parts.at(part);
    int error = 0;
    const std::size_t done = detail::read_at(open.fd, out, static_cast<std::size_t>(bytes), at, error);
    if (done < bytes)
      throw StorageError(
          "cannot read part file '" + open.path + "' at byte " + std::to_string(at + done) + ": " +
          (error == 0 ? std::string("the file is shorter than its datasets say") : detail::errno_text(error)));
  }

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

  static constexpr std::uint64_t unknown_offset = ~std::uint64_t{0} - 1;  // not HADDR_UNDEF

  ProcessGroup* m_group = nullptr;
  std::string m_directory;
  std::string m_path;
  Handle m_file;
  std::vector<Handle> m_datasets;  // virtual datasets by entry, opened on first use
  Metadata m_metadata;
  std::vector<std::int32_t> m_part_of_rank;      // by saving rank
  std::vector<std::size_t> m_item_index;         // by chunk: its dataset in its part file
  std::vector<detail::RegionIndex> m_chunks_of;  // by entry; points into m_metadata.chunks
  std::vector<std::uint64_t> m_chunk_offset;     // by chunk: chunk_data_offset, once looked up
  std::map<int, PartFile> m_parts;               // opened for direct reads
  detail::CoalescedReads m_direct;               // direct reads of the current read() call
};

}  // namespace

namespace detail::h5 {
std::unique_ptr<StorageReader> make_hdf5_aggregated_reader() {
  return std::make_unique<Hdf5AggregatedReader>();
}
}  // namespace detail::h5

}  // namespace cairn
