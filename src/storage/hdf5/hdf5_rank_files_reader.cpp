// Reader of the rank-files layout: rank 0 merges every saving rank's metadata into the global
// metadata of the checkpoint, and each rank then reads what it needs from the rank files alone.
#include <cairn/error.hpp>
#include <cairn/process_group.hpp>
#include <cairn/storage.hpp>

#include "comm/agree.hpp"
#include "comm/broadcast.hpp"
#include "core/byte_codec.hpp"
#include "core/metadata_codec.hpp"
#include "core/region.hpp"
#include "storage/common/publish.hpp"
#include "storage/hdf5/hdf5_compression.hpp"
#include "storage/hdf5/hdf5_handle.hpp"
#include "storage/hdf5/hdf5_rank_files.hpp"

#include <sys/stat.h>

#include <fcntl.h>
#include <unistd.h>
#include <algorithm>

#include <cerrno>
#include <cstring>
#include <exception>
#include <limits>
#include <string>
#include <unordered_map>
#include <vector>

namespace cairn {

namespace {

using detail::h5::Handle;
namespace h5 = detail::h5;

// One chunk dataset: which rank file holds it, its index there, and its merged entry and region.
struct DatasetRef {
  std::int32_t rank = 0;
  std::int64_t index = 0;
  std::int32_t entry = 0;
  Region region;
};

// What one rank file records about itself.
struct RankFile {
  Metadata metadata;
  std::vector<DatasetRef> datasets;  // entry and region as in the file (before merging)
};

std::vector<std::byte> read_whole_dataset(hid_t file, const char* name, DType dtype, std::size_t element_size,
                                          const std::string& path) {
  if (H5Lexists(file, "/_cairn", H5P_DEFAULT) <= 0 || H5Lexists(file, name, H5P_DEFAULT) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    throw CorruptCheckpointError("'" + path + "' is an HDF5 file but not a Cairn rank file (no " + name + ")");
  }
  Handle dset = h5::dataset(h5::check(H5Dopen2(file, name, H5P_DEFAULT),
                                      "cannot open dataset '" + std::string(name) + "' of '" + path + "'"));
  Handle space = h5::dataspace(h5::check(H5Dget_space(dset.get()), "H5Dget_space"));
  if (H5Sget_simple_extent_ndims(space.get()) != 1)
    throw CorruptCheckpointError("dataset '" + std::string(name) + "' of '" + path + "' is not one-dimensional");
  hsize_t n = 0;
  H5Sget_simple_extent_dims(space.get(), &n, nullptr);
  std::vector<std::byte> out(static_cast<std::size_t>(n) * element_size);
  Handle type = h5::memory_type(dtype);
  if (n > 0 && H5Dread(dset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0)
    throw CorruptCheckpointError("cannot read dataset '" + std::string(name) + "' of '" + path +
                                 "': " + h5::error_stack());
  return out;
}

// Opens one rank file read-only with the default driver. Throws StorageError when it is missing,
// CorruptCheckpointError when it is not HDF5.
Handle open_rank_file(const std::string& directory, int rank) {
  const std::string path = directory + "/" + h5::rank_file_name(rank);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw StorageError("checkpoint '" + directory + "' lacks rank file '" + path + "' of saved rank " +
                       std::to_string(rank) + ": " + detail::errno_text(errno));
  if (const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC); fd >= 0)  // as the effective user
    ::close(fd);
  else
    throw StorageError("cannot read rank file '" + path + "' of saved rank " + std::to_string(rank) + ": " +
                       detail::errno_text(errno));
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    throw CorruptCheckpointError("'" + path + "' is not an HDF5 file (damaged, truncated or not written by Cairn)");
  }
  Handle fapl = h5::mpio_file_access(MPI_COMM_NULL);
  const hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get());
  if (id < 0) throw CorruptCheckpointError("cannot open '" + path + "' (damaged or truncated?): " + h5::error_stack());
  return h5::file(id);
}

RankFile read_rank_file(const std::string& directory, int rank) {
  const std::string path = directory + "/" + h5::rank_file_name(rank);
  Handle file = open_rank_file(directory, rank);
  RankFile out;
  const std::vector<std::byte> blob = read_whole_dataset(file.get(), h5::metadata_dataset, DType::UInt8, 1, path);
  out.metadata = detail::decode_metadata(blob.data(), blob.size(), path);
  // A file copied or renamed from another rank would merge its chunks in the wrong place.
  std::int64_t stored_rank = -1;
  const hid_t attr_id = H5Aopen_by_name(file.get(), "/_cairn", "rank", H5P_DEFAULT, H5P_DEFAULT);
  if (attr_id >= 0) {
    Handle attr = h5::attribute(attr_id);
    if (H5Aread(attr.get(), H5T_NATIVE_INT64, &stored_rank) < 0) stored_rank = -1;
  }
  H5Eclear2(H5E_DEFAULT);
  if (stored_rank != rank)
    throw CorruptCheckpointError("'" + path + "' is the file of saved rank " + std::to_string(rank) +
                                 " but its /_cairn 'rank' attribute " +
                                 (attr_id >= 0 ? "says " + std::to_string(stored_rank) : std::string("is missing")));

  const std::vector<std::byte> raw = read_whole_dataset(file.get(), h5::chunk_index_dataset, DType::Int64, 8, path);
  std::vector<std::int64_t> index(raw.size() / 8);
  if (!index.empty()) std::memcpy(index.data(), raw.data(), raw.size());
  auto bad = [&](const std::string& why) {
    return CorruptCheckpointError("the chunk index of '" + path + "' is damaged: " + why);
  };
  std::size_t at = 0;
  auto next = [&]() -> std::int64_t {
    if (at >= index.size()) throw bad("it ends early");
    return index[at++];
  };
  const std::int64_t count = next();
  if (count < 0 || static_cast<std::uint64_t>(count) > index.size()) throw bad("bad dataset count");
  for (std::int64_t k = 0; k < count; ++k) {
    DatasetRef ref;
    ref.rank = rank;
    ref.index = k;
    const std::int64_t entry = next();
    if (entry < 0 || static_cast<std::size_t>(entry) >= out.metadata.entries.size()) throw bad("bad entry index");
    ref.entry = static_cast<std::int32_t>(entry);
    const std::int64_t ndims = next();
    if (ndims != static_cast<std::int64_t>(out.metadata.entries[static_cast<std::size_t>(entry)].global_shape.size()))
      throw bad("dataset " + std::to_string(k) + " does not have its entry's number of dimensions");
    for (std::int64_t d = 0; d < ndims; ++d) ref.region.offset.push_back(next());
    for (std::int64_t d = 0; d < ndims; ++d) ref.region.shape.push_back(next());
    out.datasets.push_back(std::move(ref));
  }
  if (at != index.size()) throw bad("trailing values");
  return out;
}

std::string kind_text(const EntryInfo& e) {
  const char* kind = e.kind == EntryKind::Array ? "array" : e.kind == EntryKind::Bytes ? "blob" : "scalar";
  const char* dist = e.distribution == Distribution::Sharded      ? "sharded"
                     : e.distribution == Distribution::Replicated ? "replicated"
                                                                  : "rank-local";
  return std::string(dist) + " " + kind + " of " + std::string(dtype_name(e.dtype)) + " " +
         detail::to_string(e.global_shape);
}

bool is_rank_local_blob(const EntryInfo& e) {
  return e.kind == EntryKind::Bytes && e.distribution == Distribution::RankLocal;
}

// Merges the rank files' metadata into the metadata of a shared-file checkpoint of the same save,
// and locates every chunk dataset in the merged index space. Throws CorruptCheckpointError.
void merge(const std::string& directory, std::vector<RankFile>& files, Metadata& merged,
           std::vector<DatasetRef>& datasets) {
  const auto world = static_cast<std::int32_t>(files.size());
  auto path_of = [&](int r) { return directory + "/" + h5::rank_file_name(r); };
  const Metadata& first = files[0].metadata;
  merged.format_version = first.format_version;
  merged.library_version = first.library_version;
  merged.world_size = world;
  merged.created_unix_time = first.created_unix_time;

  std::unordered_map<std::string, std::int32_t> index_of;
  std::vector<int> first_rank;                        // by merged entry: the file that introduced it
  std::vector<std::vector<std::int64_t>> blob_sizes;  // by merged entry: each rank's blob size
  std::vector<std::vector<std::int32_t>> to_merged(files.size());
  for (int r = 0; r < world; ++r) {
    const Metadata& md = files[static_cast<std::size_t>(r)].metadata;
    if (md.world_size != world)
      throw CorruptCheckpointError("'" + path_of(r) + "' was saved by " + std::to_string(md.world_size) + " ranks, '" +
                                   path_of(0) + "' by " + std::to_string(world));
    for (const EntryInfo& e : md.entries) {
      auto [it, added] = index_of.emplace(e.name, static_cast<std::int32_t>(merged.entries.size()));
      const auto m = static_cast<std::size_t>(it->second);
      to_merged[static_cast<std::size_t>(r)].push_back(it->second);
      if (is_rank_local_blob(e) && e.global_shape.size() != 1)
        throw CorruptCheckpointError("entry '" + e.name + "' of '" + path_of(r) + "' is a blob that is not 1-D");
      if (added) {
        merged.entries.push_back(e);
        first_rank.push_back(r);
        blob_sizes.emplace_back();
        if (is_rank_local_blob(e)) blob_sizes.back().assign(files.size(), 0);
      } else {
        EntryInfo& have = merged.entries[m];
        bool same = have.kind == e.kind && have.distribution == e.distribution && have.dtype == e.dtype &&
                    have.scalar_type == e.scalar_type;
        if (same && e.kind == EntryKind::Array) same = have.global_shape == e.global_shape;
        if (!same)
          throw CorruptCheckpointError("entry '" + e.name + "' is a " + kind_text(e) + " in '" + path_of(r) +
                                       "' but a " + kind_text(have) + " in '" + path_of(first_rank[m]) + "'");
        have.max_items_per_rank = std::max(have.max_items_per_rank, e.max_items_per_rank);
      }
      if (is_rank_local_blob(e)) blob_sizes[m][static_cast<std::size_t>(r)] = e.global_shape[0];
    }
  }
  // Rank-local blobs side by side in saved-rank order, as one shared file stores them.
  for (std::size_t m = 0; m < merged.entries.size(); ++m) {
    EntryInfo& e = merged.entries[m];
    if (!is_rank_local_blob(e)) continue;
    e.rank_offsets.assign(files.size() + 1, 0);
    for (std::size_t r = 0; r < files.size(); ++r) {
      if (blob_sizes[m][r] > std::numeric_limits<std::int64_t>::max() - e.rank_offsets[r])
        throw CorruptCheckpointError("the blobs of entry '" + e.name + "' of checkpoint '" + directory +
                                     "' add up to more than 2^63 bytes");
      e.rank_offsets[r + 1] = e.rank_offsets[r] + blob_sizes[m][r];
    }
    e.global_shape = {e.rank_offsets.back()};
  }

  // Re-indexes and shifts a region of rank r's entry `local` into the merged index space.
  auto place = [&](int r, std::int32_t local, Region& region, std::int32_t& entry, const std::string& what) {
    const auto& map = to_merged[static_cast<std::size_t>(r)];
    if (local < 0 || static_cast<std::size_t>(local) >= map.size())
      throw CorruptCheckpointError(what + " of '" + path_of(r) + "' names entry " + std::to_string(local));
    entry = map[static_cast<std::size_t>(local)];
    const EntryInfo& info = merged.entries[static_cast<std::size_t>(entry)];
    if (region.offset.size() != info.global_shape.size() || region.shape.size() != info.global_shape.size())
      throw CorruptCheckpointError(what + " of entry '" + info.name + "' in '" + path_of(r) +
                                   "' has the wrong number of dimensions");
    // Inside the entry (a rank-local blob: inside this rank's own part, in its own coordinates),
    // checked without additions so that hostile values cannot overflow.
    const bool blob = is_rank_local_blob(info);
    const auto rank = static_cast<std::size_t>(r);
    bool inside = true;
    for (std::size_t d = 0; inside && d < region.shape.size(); ++d) {
      const std::int64_t n = blob ? info.rank_offsets[rank + 1] - info.rank_offsets[rank] : info.global_shape[d];
      const std::int64_t off = region.offset[d], ext = region.shape[d];
      inside = off >= 0 && ext >= 0 && ext <= n && off <= n - ext;
    }
    if (!inside)
      throw CorruptCheckpointError(what + " of entry '" + info.name + "' in '" + path_of(r) + "' lies outside it");
    if (blob) region.offset[0] += info.rank_offsets[rank];
  };

  // Chunks as the checkpointer checks them; datasets as the reader reads them. Both cover the
  // same elements of each entry (a bounded save cuts a chunk into several datasets).
  std::vector<std::int64_t> chunk_volume(merged.entries.size(), 0);
  std::vector<std::int64_t> dataset_volume(merged.entries.size(), 0);
  for (int r = 0; r < world; ++r) {
    RankFile& file = files[static_cast<std::size_t>(r)];
    for (ChunkRecord c : file.metadata.chunks) {
      if (c.rank != r)
        throw CorruptCheckpointError("'" + path_of(r) + "' records a chunk of rank " + std::to_string(c.rank));
      place(r, c.entry, c.region, c.entry, "a chunk record");
      if (!detail::add_volume(chunk_volume[static_cast<std::size_t>(c.entry)], c.region.shape))
        throw CorruptCheckpointError("the chunk records of entry '" +
                                     merged.entries[static_cast<std::size_t>(c.entry)].name + "' (up to '" +
                                     path_of(r) + "') add up to more than 2^63 elements");
      merged.chunks.push_back(std::move(c));
    }
    for (DatasetRef d : file.datasets) {
      place(r, d.entry, d.region, d.entry, "chunk dataset " + std::to_string(d.index));
      if (!detail::add_volume(dataset_volume[static_cast<std::size_t>(d.entry)], d.region.shape))
        throw CorruptCheckpointError("the chunk datasets of entry '" +
                                     merged.entries[static_cast<std::size_t>(d.entry)].name + "' (up to '" +
                                     path_of(r) + "') add up to more than 2^63 elements");
      datasets.push_back(std::move(d));
    }
  }
  for (std::size_t m = 0; m < merged.entries.size(); ++m)
    if (chunk_volume[m] != dataset_volume[m])
      throw CorruptCheckpointError("entry '" + merged.entries[m].name + "' of checkpoint '" + directory + "' has " +
                                   std::to_string(chunk_volume[m]) + " elements in its chunk records but " +
                                   std::to_string(dataset_volume[m]) + " in its chunk datasets");
}

class Hdf5RankFilesReader final : public StorageReader {
 public:
  void open(const std::string& directory, ProcessGroup& group) override {
    h5::QuietErrors quiet;
    m_group = &group;
    m_directory = directory;
    std::vector<std::byte> blob;
    // Rank 0 alone reads the rank files' metadata: N small reads instead of N per rank.
    detail::agree_on(group, "opening the rank files of '" + directory + "'", [&] {
      if (group.rank() != 0) return;
      std::vector<RankFile> files;
      files.push_back(read_rank_file(directory, 0));
      const std::int32_t world = files[0].metadata.world_size;
      if (world < 1)
        throw CorruptCheckpointError("'" + directory + "/" + h5::rank_file_name(0) + "' records a world size of " +
                                     std::to_string(world));
      for (int r = 1; r < world; ++r) files.push_back(read_rank_file(directory, r));
      Metadata merged;
      std::vector<DatasetRef> datasets;
      merge(directory, files, merged, datasets);
      detail::ByteWriter out;
      const std::vector<std::byte> md = detail::encode_metadata(merged);
      out.u64(md.size());
      out.raw(md.data(), md.size());
      out.u64(datasets.size());
      for (const DatasetRef& d : datasets) {
        out.i32(d.rank);
        out.i64(d.index);
        out.i32(d.entry);
        detail::encode_region(out, d.region);
      }
      blob = std::move(out.bytes());
    });
    detail::broadcast_bytes(group, blob, 0);

    detail::ByteReader in(blob.data(), blob.size(), "the merged metadata of '" + directory + "'");
    std::vector<std::byte> md(static_cast<std::size_t>(in.u64()));
    if (md.size() > in.remaining()) in.fail("metadata size");
    in.raw(md.data(), md.size());
    m_metadata = detail::decode_metadata(md.data(), md.size(), directory);
    m_by_entry.assign(m_metadata.entries.size(), {});
    m_datasets.clear();
    const std::size_t n = in.count(16);
    for (std::size_t i = 0; i < n; ++i) {
      DatasetRef d;
      d.rank = in.i32();
      d.index = in.i64();
      d.entry = in.i32();
      d.region = detail::decode_region(in);
      m_by_entry.at(static_cast<std::size_t>(d.entry)).push_back(m_datasets.size());
      m_datasets.push_back(std::move(d));
    }
    m_files.clear();
    m_files.resize(static_cast<std::size_t>(m_metadata.world_size));
  }

  const Metadata& metadata() const override { return m_metadata; }

  void read(const std::vector<ReadRequest>& requests) override {
    h5::QuietErrors quiet;
    std::exception_ptr failure;
    try {
      for (const ReadRequest& r : requests) read_one(r);
    } catch (...) {
      failure = std::current_exception();
    }
    // Independent reads above; one agreement here so that every rank reports the same outcome.
    detail::agree(*m_group, "reading checkpoint '" + m_directory + "'", failure);
  }

  void close() noexcept override {
    h5::QuietErrors quiet;
    for (Handle& f : m_files) f.close();
    m_files.clear();
  }

 private:
  void read_one(const ReadRequest& request) {
    if (request.entry < 0 || static_cast<std::size_t>(request.entry) >= m_by_entry.size())
      throw UsageError("a read request names entry " + std::to_string(request.entry) + " of checkpoint '" +
                       m_directory + "', which has " + std::to_string(m_by_entry.size()));
    const EntryInfo& info = m_metadata.entries[static_cast<std::size_t>(request.entry)];
    h5::check_filter_available(info);  // registers Cairn's zstd filter, or says clearly why not
    const Region& want = request.region;
    if (want.offset.size() != info.global_shape.size() || want.shape.size() != info.global_shape.size())
      throw UsageError("a read request of entry '" + info.name + "' has the wrong number of dimensions");
    Handle mem_type = h5::memory_type(request.dtype);
    for (std::size_t i : m_by_entry[static_cast<std::size_t>(request.entry)]) {
      const DatasetRef& d = m_datasets[i];
      Region part;
      if (!detail::intersect(d.region, want, part)) continue;
      const std::string path = m_directory + "/" + h5::rank_file_name(d.rank);
      const std::string name = std::string(h5::chunks_group) + "/" + std::to_string(d.index);
      Handle& file = m_files.at(static_cast<std::size_t>(d.rank));
      if (!file.valid()) file = open_rank_file(m_directory, d.rank);
      Handle dset =
          h5::dataset(h5::check(H5Dopen2(file.get(), name.c_str(), H5P_DEFAULT),
                                "rank file '" + path + "' lacks dataset '" + name + "' of entry '" + info.name + "'"));
      herr_t rc;
      if (want.shape.empty()) {  // a 0-d array: the whole value
        rc = H5Dread(dset.get(), mem_type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, request.destination);
      } else {
        Handle file_space = h5::dataspace(h5::check(H5Dget_space(dset.get()), "H5Dget_space"));
        check_extent(file_space.get(), d.region.shape, path, name);
        Extents in_file(part.offset.size()), in_memory(part.offset.size());
        for (std::size_t k = 0; k < part.offset.size(); ++k) {
          in_file[k] = part.offset[k] - d.region.offset[k];
          in_memory[k] = part.offset[k] - want.offset[k];
        }
        h5::select_region(file_space.get(), in_file, part.shape);
        std::vector<hsize_t> dims(want.shape.begin(), want.shape.end());
        Handle mem = h5::dataspace(
            h5::check(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), "H5Screate_simple"));
        h5::select_region(mem.get(), in_memory, part.shape);
        rc = H5Dread(dset.get(), mem_type.get(), mem.get(), file_space.get(), H5P_DEFAULT, request.destination);
      }
      if (rc < 0)
        throw StorageError("cannot read dataset '" + name + "' (entry '" + info.name + "') of '" + path +
                           "': " + h5::error_stack());
    }
  }

  static void check_extent(hid_t space, const Extents& shape, const std::string& path, const std::string& name) {
    const int ndims = H5Sget_simple_extent_ndims(space);
    std::vector<hsize_t> dims(ndims > 0 ? static_cast<std::size_t>(ndims) : 0);
    if (ndims > 0) H5Sget_simple_extent_dims(space, dims.data(), nullptr);
    bool same = dims.size() == shape.size();
    for (std::size_t d = 0; same && d < dims.size(); ++d) same = dims[d] == static_cast<hsize_t>(shape[d]);
    if (!same)
      throw CorruptCheckpointError("dataset '" + name + "' of '" + path +
                                   "' does not have the shape its chunk index records");
  }

  ProcessGroup* m_group = nullptr;
  std::string m_directory;
  Metadata m_metadata;
  std::vector<DatasetRef> m_datasets;                // merged coordinates
  std::vector<std::vector<std::size_t>> m_by_entry;  // indexes into m_datasets, by entry
  std::vector<Handle> m_files;                       // by saved rank, opened on first use
};

}  // namespace

namespace detail::h5 {
std::unique_ptr<StorageReader> make_hdf5_rank_files_reader() {
  return std::make_unique<Hdf5RankFilesReader>();
}
}  // namespace detail::h5

}  // namespace cairn
