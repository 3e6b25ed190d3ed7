#include <cairn/error.hpp>
#include <cairn/process_group.hpp>
#include <cairn/storage.hpp>

#include "comm/agree.hpp"
#include "core/metadata_codec.hpp"
#include "core/names.hpp"
#include "storage/common/incremental.hpp"
#include "storage/common/publish.hpp"
#include "storage/hdf5/hdf5_compression.hpp"
#include "storage/hdf5/hdf5_handle.hpp"
#include "storage/hdf5/hdf5_incremental.hpp"

#include <algorithm>
#include <exception>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

namespace cairn {

namespace {

using detail::h5::Handle;
namespace h5 = detail::h5;

using h5::is_dataset;
using h5::write_attribute;

// HDF5 chunk dimensions for `e` under Hdf5Options::chunked: the first dimension split evenly among
// `ranks`, the others whole, shrunk until a chunk is below HDF5's 4 GiB limit. Empty when the
// dataset stays contiguous (no dimensions, or an empty one).
std::vector<hsize_t> chunk_dims(const EntryInfo& e, int ranks) {
  std::vector<hsize_t> dims(e.global_shape.begin(), e.global_shape.end());
  if (dims.empty() || std::find(dims.begin(), dims.end(), hsize_t{0}) != dims.end()) return {};
  dims[0] = (dims[0] + static_cast<hsize_t>(ranks) - 1) / static_cast<hsize_t>(ranks);
  auto bytes = [&] {
    hsize_t n = dtype_size(e.dtype);
    for (hsize_t d : dims) n *= d;
    return n;
  };
  while (bytes() >= (hsize_t{1} << 32) - 1) {
    const auto largest = std::max_element(dims.begin(), dims.end());
    if (*largest == 1) return {};
    *largest = (*largest + 1) / 2;
  }
  return dims;
}

// Per entry: the greatest common divisor of where every rank's items of a compressed entry start
// and end in the first dimension, so that HDF5 chunks can end there too (0: no compressed entry).
// Collective when some entry is compressed; every rank sees the same entries.
std::vector<std::int64_t> row_boundaries(const std::vector<EntryInfo>& entries, const std::vector<WriteItem>& items,
                                         ProcessGroup& group) {
  std::vector<std::int64_t> out(entries.size(), 0);
  if (std::none_of(entries.begin(), entries.end(),
                   [](const EntryInfo& e) { return e.compression != Compression::None; }))
    return out;
  for (const WriteItem& item : items) {
    if (item.entry < 0 || static_cast<std::size_t>(item.entry) >= out.size() || item.region.offset.empty()) continue;
    std::int64_t& g = out[static_cast<std::size_t>(item.entry)];
    g = std::gcd(std::gcd(g, item.region.offset[0]), item.region.offset[0] + item.region.shape[0]);
  }
  std::vector<std::int64_t> all(out.size() * static_cast<std::size_t>(group.size()));
  group.allgather(out.data(), out.size() * sizeof(std::int64_t), all.data());
  for (std::size_t i = 0; i < all.size(); ++i) out[i % out.size()] = std::gcd(out[i % out.size()], all[i]);
  return out;
}

class Hdf5Writer final : public StorageWriter, public detail::IncrementalWriter, public detail::EarlyWriteback {
 public:
  explicit Hdf5Writer(Hdf5Options options) : m_options(std::move(options)) {}

  bool same_layout(const std::string& directory) const override { return h5::is_shared_file_checkpoint(directory); }
  // An incremental save leaves holes in its datasets: reserving their blocks would fill them.
  void set_leaves_out(bool leaves_out) override { m_sparse = leaves_out; }

  // Kept for open(): compressed datasets get HDF5 chunks that end where the ranks' items end.
  void set_local_items(const std::vector<WriteItem>& items) override { m_items = items; }

  void open(const std::string& directory, const std::vector<EntryInfo>& entries, ProcessGroup& group) override {
    h5::QuietErrors quiet;
    m_group = &group;
    m_entries = &entries;
    m_path = directory + "/" + h5::data_file_name;
    // A filter HDF5 lacks is refused before anything is created.
    for (const EntryInfo& e : entries) h5::check_filter_available(e);
    const std::vector<std::int64_t> boundaries = row_boundaries(entries, m_items, group);
    Handle fapl = h5::tuned_file_access(group.mpi_comm(), m_options, directory);
    Handle fcpl = h5::plist(h5::check(H5Pcreate(H5P_FILE_CREATE), "H5Pcreate(file create)"));
    m_file = h5::file(h5::check(H5Fcreate(m_path.c_str(), H5F_ACC_EXCL, fcpl.get(), fapl.get()),
                                "cannot create HDF5 file '" + m_path + "'"));
    // Contiguous datasets allocated at creation, never filled: every byte is written once.
    Handle dcpl = h5::plist(h5::check(H5Pcreate(H5P_DATASET_CREATE), "H5Pcreate(dataset create)"));
    h5::check_status(H5Pset_alloc_time(dcpl.get(), H5D_ALLOC_TIME_EARLY), "H5Pset_alloc_time");
    h5::check_status(H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER), "H5Pset_fill_time");
    for (const EntryInfo& e : entries) {
      h5::create_groups(m_file.get(), e.name);
      if (!is_dataset(e)) continue;
      std::vector<hsize_t> dims(e.global_shape.begin(), e.global_shape.end());
      Handle space = h5::dataspace(h5::check(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                                             "H5Screate_simple for '" + e.name + "'"));
      Handle type = h5::file_type(e.dtype);
      Handle chunked_dcpl;
      if (m_options.chunked) {
        const std::vector<hsize_t> chunk = chunk_dims(e, group.size());
        if (!chunk.empty()) {
          chunked_dcpl = h5::plist(h5::check(H5Pcopy(dcpl.get()), "H5Pcopy"));
          h5::check_status(H5Pset_chunk(chunked_dcpl.get(), static_cast<int>(chunk.size()), chunk.data()),
                           "H5Pset_chunk for '" + e.name + "'");
        }
      }
      if (e.kind == EntryKind::Array && e.compression != Compression::None) {  // filters need chunks
        const std::vector<hsize_t> chunk =
            h5::compressed_chunk_dims(e, boundaries[static_cast<std::size_t>(&e - entries.data())]);
        if (!chunk.empty())
          chunked_dcpl = h5::compressed_creation(dcpl.get(), e, chunk, group.mpi_comm() != MPI_COMM_NULL);
      }
      const hid_t create = chunked_dcpl.valid() ? chunked_dcpl.get() : dcpl.get();
      Handle dset = h5::dataset(
          h5::check(H5Dcreate2(m_file.get(), e.name.c_str(), type.get(), space.get(), H5P_DEFAULT, create, H5P_DEFAULT),
                    "cannot create dataset '" + e.name + "' in '" + m_path + "'"));
      note_extent(dset.get());
      if (!dset.close()) throw StorageError("cannot close dataset '" + e.name + "': " + h5::error_stack());
    }
    reserve(metadata_slack(entries.size()));
  }

  void write(const std::vector<WriteBuffer>& buffers) override {
    h5::QuietErrors quiet;
    std::exception_ptr failure;
    // Collective write rounds per dataset: the most buffers any rank has for it in this call (a
    // bounded save calls write() once per piece, with a different share of each entry each time).
    std::vector<std::int64_t> rounds(m_entries->size(), 0);
    bool misplaced = false;
    for (const WriteBuffer& b : buffers) {
      if (b.item->entry < 0 || static_cast<std::size_t>(b.item->entry) >= rounds.size())
        misplaced = true;  // reported after the collective calls, which every rank must make
      else
        ++rounds[static_cast<std::size_t>(b.item->entry)];
    }
    m_group->allreduce(rounds.data(), rounds.size(), ReduceOp::Max);
    Handle dxpl = h5::transfer(m_options.collective_writes, m_group->mpi_comm());
    // Parallel HDF5 writes filtered (compressed) datasets only collectively.
    Handle filtered_dxpl = h5::transfer(true, m_group->mpi_comm());
    Handle none_space = h5::empty_selection_space();
    std::size_t next = 0;  // buffers arrive grouped by entry, in entry order
    for (std::size_t e = 0; e < m_entries->size(); ++e) {
      const EntryInfo& info = (*m_entries)[e];
      if (rounds[e] == 0) continue;
      std::size_t end = next;
      while (end < buffers.size() && static_cast<std::size_t>(buffers[end].item->entry) == e) ++end;
      // Every rank makes rounds[e] collective calls for this dataset, with an empty selection
      // when it has no buffer left, even after a failure: no rank may be left waiting.
      try {
        Handle dset = h5::dataset(h5::check(H5Dopen2(m_file.get(), info.name.c_str(), H5P_DEFAULT),
                                            "cannot open dataset '" + info.name + "'"));
        Handle file_space = h5::dataspace(h5::check(H5Dget_space(dset.get()), "H5Dget_space"));
        Handle type = h5::memory_type(info.dtype);
        const hid_t transfer = info.compression != Compression::None ? filtered_dxpl.get() : dxpl.get();
        for (std::int64_t round = 0; round < rounds[e]; ++round) {
          const std::size_t index = next + static_cast<std::size_t>(round);
          herr_t rc;
          if (index < end) {
            const WriteBuffer& buffer = buffers[index];
            const Region& region = buffer.item->region;
            h5::select_region(file_space.get(), region.offset, region.shape);
            std::vector<hsize_t> dims(region.shape.begin(), region.shape.end());
            Handle mem = h5::dataspace(
                h5::check(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), "H5Screate_simple"));
            rc = H5Dwrite(dset.get(), type.get(), mem.get(), file_space.get(), transfer, buffer.data);
          } else {
            h5::check_status(H5Sselect_none(file_space.get()), "H5Sselect_none");
            rc = H5Dwrite(dset.get(), type.get(), none_space.get(), file_space.get(), transfer, nullptr);
          }
          if (rc < 0 && !failure)
            failure = std::make_exception_ptr(
                StorageError("cannot write dataset '" + info.name + "' of '" + m_path + "': " + h5::error_stack()));
        }
      } catch (...) {
        if (!failure) failure = std::current_exception();
      }
      next = end;
    }
    if ((misplaced || next != buffers.size()) && !failure)
      failure = std::make_exception_ptr(InternalError("write buffers of '" + m_path + "' are not in entry order"));
    if (failure) std::rethrow_exception(failure);
    if (early_writeback())
      detail::start_writeback(m_path);  // the disk starts while the save checksums; finish() fsyncs
  }

  void finish(const Metadata& metadata) override {
    h5::QuietErrors quiet;
    const std::vector<std::byte> blob = detail::encode_metadata(metadata);
    const hsize_t n = blob.size();
    Handle meta_group;
    Handle dset;
    // Each part is agreed on before the next: a rank that fails alone must not leave the others
    // inside a collective HDF5 call.
    detail::agree_on(*m_group, "creating the metadata of '" + m_path + "'", [&] {
      meta_group = h5::group(h5::check(H5Gcreate2(m_file.get(), "/_cairn", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                                       "cannot create group '/_cairn'"));
      Handle space = h5::dataspace(h5::check(H5Screate_simple(1, &n, nullptr), "H5Screate_simple"));
      Handle type = h5::file_type(DType::UInt8);
      dset = h5::dataset(h5::check(H5Dcreate2(m_file.get(), h5::metadata_dataset, type.get(), space.get(), H5P_DEFAULT,
                                              H5P_DEFAULT, H5P_DEFAULT),
                                   "cannot create the metadata dataset"));
      note_extent(dset.get());
    });
    reserve(metadata_slack(metadata.entries.size()));
    detail::agree_on(*m_group, "writing the metadata of '" + m_path + "'", [&] {
      Handle space = h5::dataspace(h5::check(H5Dget_space(dset.get()), "H5Dget_space"));
      Handle type = h5::file_type(DType::UInt8);
      Handle dxpl = h5::transfer(true, m_group->mpi_comm());
      Handle mem = h5::dataspace(h5::check(H5Screate_simple(1, &n, nullptr), "H5Screate_simple"));
      if (m_group->rank() != 0) {  // rank 0 writes the blob; the others join the collective call
        h5::check_status(H5Sselect_none(space.get()), "H5Sselect_none");
        h5::check_status(H5Sselect_none(mem.get()), "H5Sselect_none");
      }
      h5::check_status(H5Dwrite(dset.get(), type.get(), mem.get(), space.get(), dxpl.get(), blob.data()),
                       "cannot write the metadata to '" + m_path + "'");
      write_attribute(meta_group.get(), "format_version", std::int64_t{metadata.format_version});
      write_attribute(meta_group.get(), "library_version", metadata.library_version);
      write_attribute(meta_group.get(), "world_size", std::int64_t{metadata.world_size});
      write_attribute(meta_group.get(), "created_unix_time", metadata.created_unix_time);
      for (const EntryInfo& e : metadata.entries) {
        if (is_dataset(e)) continue;
        const std::vector<std::string> parents = detail::parent_groups(e.name);
        const std::string parent = parents.empty() ? "/" : parents.back();
        Handle target = h5::group(
            h5::check(H5Gopen2(m_file.get(), parent.c_str(), H5P_DEFAULT), "cannot open group '" + parent + "'"));
        write_attribute(target.get(), std::string(detail::leaf_name(e.name)), e.value);
      }
      dset.close();
      meta_group.close();
    });
    // Close, then fsync on every rank (each node's page cache holds what its ranks wrote). No
    // H5Fflush or MPI_File_sync: after a write error (ENOSPC) on one rank, both can return on that
    // rank before the barrier the others wait in, and the job hangs.
    const bool closed = m_file.close();
    detail::agree_on(*m_group, "closing '" + m_path + "'", [&] {
      if (!closed) throw StorageError("cannot close '" + m_path + "': " + h5::error_stack());
    });
    // Incremental saves: entries with chunks held by earlier checkpoints become virtual datasets.
    detail::agree_on(*m_group, "mapping the referenced chunks of '" + m_path + "'", [&] {
      if (m_group->rank() == 0) h5::map_referenced_chunks(m_path, metadata);
    });
    detail::agree_on(*m_group, "syncing '" + m_path + "' to stable storage", [&] { detail::fsync_path(m_path); });
  }

  void abort() noexcept override {
    h5::QuietErrors quiet;
    m_file.close();
  }

 private:
  // Room for the metadata HDF5 adds after the point where the file's end is read (object headers,
  // attributes, the final superblock), so that it too lands in reserved blocks.
  static long long metadata_slack(std::size_t entries) { return (1LL << 20) + static_cast<long long>(entries) * 1024; }

  // Records where a contiguous dataset's storage ends (allocated early, so known at creation).
  void note_extent(hid_t dset) {
    const haddr_t offset = H5Dget_offset(dset);
    if (offset == HADDR_UNDEF) return;
    m_end = std::max(m_end, static_cast<long long>(offset + H5Dget_storage_size(dset)));
  }

  // Collective. Rank 0 reserves the blocks the file needs up to the end of its datasets plus
  // `slack`; every rank learns whether that worked (a full disk fails here, before data moves).
  void reserve(long long slack) {
    if (m_sparse) return;
    detail::agree_on(*m_group, "reserving space for '" + m_path + "'", [&] {
      if (m_group->rank() == 0) detail::reserve_space(m_path, m_end + slack);
    });
  }

  Hdf5Options m_options;
  bool m_sparse = false;
  std::vector<WriteItem> m_items;
  long long m_end = 0;
  ProcessGroup* m_group = nullptr;
  const std::vector<EntryInfo>* m_entries = nullptr;
  std::string m_path;
  Handle m_file;
};

}  // namespace

std::unique_ptr<StorageWriter> make_hdf5_writer() {
  return std::make_unique<Hdf5Writer>(Hdf5Options{});
}

std::unique_ptr<StorageWriter> make_hdf5_writer(const Hdf5Options& options) {
  return std::make_unique<Hdf5Writer>(options);
}

}  // namespace cairn
