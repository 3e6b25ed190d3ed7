#include <cairn/error.hpp>
#include <cairn/process_group.hpp>
#include <cairn/storage.hpp>

#include "comm/agree.hpp"
#include "core/metadata_codec.hpp"
#include "core/names.hpp"
#include "core/region.hpp"
#include "storage/common/publish.hpp"
#include "storage/hdf5/hdf5_aggregated.hpp"
#include "storage/hdf5/hdf5_compression.hpp"
#include "storage/hdf5/hdf5_handle.hpp"

#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace cairn {

namespace detail::h5 {

std::string part_file_name(int part) {
  char name[32];
  std::snprintf(name, sizeof name, "part_%06d.h5", part);
  return name;
}

std::string item_dataset_name(int rank, std::size_t item) {
  char name[48];
  std::snprintf(name, sizeof name, "/r%06d/i%06zu", rank, item);
  return name;
}

std::vector<std::size_t> item_index_of_chunks(const Metadata& metadata) {
  // Chunk records come rank by rank in plan order: the k-th record of a rank is its item k.
  std::vector<std::size_t> item_index(metadata.chunks.size());
  std::map<std::int32_t, std::size_t> next_of_rank;
  for (std::size_t c = 0; c < metadata.chunks.size(); ++c) item_index[c] = next_of_rank[metadata.chunks[c].rank]++;
  return item_index;
}

}  // namespace detail::h5

namespace {

using detail::h5::Handle;
namespace h5 = detail::h5;

// An item of a rank of this part: where its dataset goes.
struct PartItem {
  int rank = 0;
  std::size_t index = 0;  // among that rank's items
  std::int32_t entry = 0;
  Region region;
};

// int64 encoding of a rank's items for the exchange inside a part: entry, ndim, offset, shape.
std::vector<std::int64_t> encode_items(const std::vector<WriteItem>& items) {
  std::vector<std::int64_t> out;
  for (const WriteItem& item : items) {
    out.push_back(item.entry);
    out.push_back(static_cast<std::int64_t>(item.region.shape.size()));
    out.insert(out.end(), item.region.offset.begin(), item.region.offset.end());
    out.insert(out.end(), item.region.shape.begin(), item.region.shape.end());
  }
  return out;
}

void check_mpi(int rc, const char* what) {
  if (rc != MPI_SUCCESS) throw CommunicationError(std::string(what) + " failed (MPI error " + std::to_string(rc) + ")");
}

class Hdf5AggregatedWriter final : public StorageWriter, public detail::EarlyWriteback {
 public:
  Hdf5AggregatedWriter(int files, Hdf5Options options) : m_files(files), m_options(std::move(options)) {}
  ~Hdf5AggregatedWriter() override { free_part_comm(); }

  void set_local_items(const std::vector<WriteItem>& items) override { m_items = items; }

  void open(const std::string& directory, const std::vector<EntryInfo>& entries, ProcessGroup& group) override {
    h5::QuietErrors quiet;
    m_group = &group;
    m_entries = &entries;
    m_directory = directory;
    assign_parts();
    m_part_path = directory + "/" + h5::part_file_name(m_part);
    const std::vector<PartItem> items = exchange_items();
    detail::agree_on(group, "creating '" + m_part_path + "'", [&] { create_part_file(items); });
    detail::agree_on(group, "reserving space for '" + m_part_path + "'", [&] {
      if (m_part_rank == 0) detail::reserve_space(m_part_path, m_end + (1LL << 20));
    });
  }

  void write(const std::vector<WriteBuffer>& buffers) override {
    h5::QuietErrors quiet;
    std::exception_ptr failure;
    std::vector<const WriteBuffer*> filtered;  // compressed: written collectively, after the others
    try {
      write_independently(buffers, filtered);
    } catch (...) {
      failure = std::current_exception();
    }
    write_filtered(filtered, failure);  // collective within the part, even after a failure
    if (failure) std::rethrow_exception(failure);
    if (early_writeback())
      detail::start_writeback(m_part_path);  // the disk starts while the save checksums; finish() fsyncs
  }

  // Every rank writes its own uncompressed datasets: independent, large, contiguous requests.
  // Buffers of compressed entries are left in `filtered`.
  void write_independently(const std::vector<WriteBuffer>& buffers, std::vector<const WriteBuffer*>& filtered) {
    Handle dxpl = h5::transfer(false, m_part_comm);
    for (const WriteBuffer& buffer : buffers) {
      const WriteItem& piece = *buffer.item;
      const std::size_t k = containing_item(piece);
      const WriteItem& item = m_items[k];
      const EntryInfo& info = (*m_entries)[static_cast<std::size_t>(item.entry)];
      if (detail::volume(piece.region.shape) == 0) continue;
      if (info.compression != Compression::None) {
        filtered.push_back(&buffer);
        continue;
      }
      Handle space = h5::dataspace(h5::check(H5Dget_space(m_own[k].get()), "H5Dget_space"));
      if (write_piece(m_own[k].get(), space.get(), buffer, item, info.dtype, dxpl.get()) < 0)
        throw StorageError("cannot write '" + info.name + "' to '" + m_part_path + "': " + h5::error_stack());
    }
  }

  // Writes `buffer` (a piece of `item`) into `dset`, whose dataspace `space` is the item's.
  static herr_t write_piece(hid_t dset, hid_t space, const WriteBuffer& buffer, const WriteItem& item, DType dtype,
                            hid_t dxpl) {
    const WriteItem& piece = *buffer.item;
    Extents offset(piece.region.offset.size());
    for (std::size_t d = 0; d < offset.size(); ++d) offset[d] = piece.region.offset[d] - item.region.offset[d];
    h5::select_region(space, offset, piece.region.shape);
    std::vector<hsize_t> dims(piece.region.shape.begin(), piece.region.shape.end());
    Handle mem = h5::dataspace(
        h5::check(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), "H5Screate_simple"));
    Handle type = h5::memory_type(dtype);
    return H5Dwrite(dset, type.get(), mem.get(), space, dxpl, buffer.data);
  }

  // Parallel HDF5 writes filtered datasets only collectively: the ranks of the part learn each
  // other's compressed pieces and write each one together, its owner with the data, the others
  // with an empty selection. Every rank makes every call, whatever failed; the first failure is
  // kept in `failure`.
  void write_filtered(const std::vector<const WriteBuffer*>& filtered, std::exception_ptr& failure) {
    // (owner rank, item index) of every compressed piece of the part, in rank order.
    std::vector<std::int64_t> mine;
    for (const WriteBuffer* b : filtered) {
      mine.push_back(m_group->rank());
      mine.push_back(static_cast<std::int64_t>(containing_item(*b->item)));
    }
    std::vector<std::int64_t> all = mine;
    if (m_part_comm != MPI_COMM_NULL) {
      int n = 0;
      check_mpi(MPI_Comm_size(m_part_comm, &n), "MPI_Comm_size");
      const int count = static_cast<int>(mine.size());
      std::vector<int> counts(static_cast<std::size_t>(n)), displs(static_cast<std::size_t>(n));
      check_mpi(MPI_Allgather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, m_part_comm), "MPI_Allgather");
      int total = 0;
      for (int i = 0; i < n; ++i) {
        displs[static_cast<std::size_t>(i)] = total;
        total += counts[static_cast<std::size_t>(i)];
      }
      all.assign(static_cast<std::size_t>(total), 0);
      check_mpi(MPI_Allgatherv(mine.data(), count, MPI_INT64_T, all.data(), counts.data(), displs.data(), MPI_INT64_T,
                               m_part_comm),
                "MPI_Allgatherv");
    }
    Handle dxpl = h5::transfer(true, m_part_comm);
    Handle none_space = h5::empty_selection_space();
    std::size_t own = 0;  // the next of this rank's filtered buffers
    for (std::size_t at = 0; at + 1 < all.size(); at += 2) {
      const auto rank = static_cast<int>(all[at]);
      const auto k = static_cast<std::size_t>(all[at + 1]);
      const std::string name = h5::item_dataset_name(rank, k);
      try {
        Handle dset = h5::dataset(h5::check(H5Dopen2(m_file.get(), name.c_str(), H5P_DEFAULT),
                                            "cannot open '" + name + "' in '" + m_part_path + "'"));
        Handle space = h5::dataspace(h5::check(H5Dget_space(dset.get()), "H5Dget_space"));
        herr_t rc = 0;
        if (rank == m_group->rank() && own < filtered.size()) {
          const WriteItem& item = m_items[k];
          rc = write_piece(dset.get(), space.get(), *filtered[own++], item,
                           (*m_entries)[static_cast<std::size_t>(item.entry)].dtype, dxpl.get());
        } else {
          Handle type = h5::datatype(h5::check(H5Dget_type(dset.get()), "H5Dget_type"));
          h5::check_status(H5Sselect_none(space.get()), "H5Sselect_none");
          rc = H5Dwrite(dset.get(), type.get(), none_space.get(), space.get(), dxpl.get(), nullptr);
        }
        if (rc < 0) throw StorageError("cannot write '" + name + "' to '" + m_part_path + "': " + h5::error_stack());
      } catch (...) {
        if (!failure) failure = std::current_exception();
      }
    }
  }

  void finish(const Metadata& metadata) override {
    h5::QuietErrors quiet;
    // Part files first: closed (collectively within each part) and synced by every rank, whose
    // page cache holds what it wrote. Only then does data.h5 point at them.
    m_own.clear();
    const bool closed = m_file.close();
    free_part_comm();
    detail::agree_on(*m_group, "closing '" + m_part_path + "'", [&] {
      if (!closed) throw StorageError("cannot close '" + m_part_path + "': " + h5::error_stack());
      detail::fsync_path(m_part_path);
    });
    const std::string top = m_directory + "/" + h5::data_file_name;
    detail::agree_on(*m_group, "writing '" + top + "'", [&] {
      if (m_group->rank() != 0) return;
      write_top_file(top, metadata);
      detail::fsync_path(top);
    });
  }

  void abort() noexcept override {
    h5::QuietErrors quiet;
    m_own.clear();
    m_file.close();
    free_part_comm();
  }

 private:
  // Collective. Which part every rank writes: consecutive ranks in `files` groups, or one group
  // per node (ranks sharing memory, numbered in order of their lowest rank).
  void assign_parts() {
    const int size = m_group->size();
    const int rank = m_group->rank();
    const MPI_Comm comm = m_group->mpi_comm();
    m_part_of_rank.assign(static_cast<std::size_t>(size), 0);
    if (m_files > 0) {
      const long long files = std::min(m_files, size);
      for (int r = 0; r < size; ++r)
        m_part_of_rank[static_cast<std::size_t>(r)] = static_cast<std::int32_t>(r * files / size);
    } else {
      std::int32_t node_first = rank;
      if (comm != MPI_COMM_NULL) {
        MPI_Comm node = MPI_COMM_NULL;
        check_mpi(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node), "MPI_Comm_split_type");
        int first = rank;
        const int rc = MPI_Allreduce(&rank, &first, 1, MPI_INT, MPI_MIN, node);
        MPI_Comm_free(&node);
        check_mpi(rc, "MPI_Allreduce");
        node_first = first;
      }
      std::vector<std::int32_t> firsts(static_cast<std::size_t>(size));
      m_group->allgather(&node_first, sizeof node_first, firsts.data());
      std::vector<std::int32_t> distinct = firsts;
      std::sort(distinct.begin(), distinct.end());
      distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
      for (int r = 0; r < size; ++r)
        m_part_of_rank[static_cast<std::size_t>(r)] = static_cast<std::int32_t>(
            std::lower_bound(distinct.begin(), distinct.end(), firsts[static_cast<std::size_t>(r)]) - distinct.begin());
    }
    m_part = m_part_of_rank[static_cast<std::size_t>(rank)];
    m_part_rank = 0;
    if (comm != MPI_COMM_NULL) {
      check_mpi(MPI_Comm_split(comm, m_part, rank, &m_part_comm), "MPI_Comm_split");
      check_mpi(MPI_Comm_rank(m_part_comm, &m_part_rank), "MPI_Comm_rank");
    }
  }

  // Collective within the part. Every item of every rank of this part, in rank then plan order.
  std::vector<PartItem> exchange_items() const {
    const std::vector<std::int64_t> mine = encode_items(m_items);
    std::vector<std::int64_t> all = mine;
    std::vector<int> ranks{m_group->rank()};
    std::vector<int> counts{static_cast<int>(mine.size())};
    if (m_part_comm != MPI_COMM_NULL) {
      int n = 0;
      check_mpi(MPI_Comm_size(m_part_comm, &n), "MPI_Comm_size");
      const int my[2] = {m_group->rank(), static_cast<int>(mine.size())};
      std::vector<int> pairs(2 * static_cast<std::size_t>(n));
      check_mpi(MPI_Allgather(my, 2, MPI_INT, pairs.data(), 2, MPI_INT, m_part_comm), "MPI_Allgather");
      ranks.assign(static_cast<std::size_t>(n), 0);
      counts.assign(static_cast<std::size_t>(n), 0);
      std::vector<int> displs(static_cast<std::size_t>(n), 0);
      int total = 0;
      for (int i = 0; i < n; ++i) {
        ranks[static_cast<std::size_t>(i)] = pairs[2 * static_cast<std::size_t>(i)];
        counts[static_cast<std::size_t>(i)] = pairs[2 * static_cast<std::size_t>(i) + 1];
        displs[static_cast<std::size_t>(i)] = total;
        total += counts[static_cast<std::size_t>(i)];
      }
      all.assign(static_cast<std::size_t>(total), 0);
      check_mpi(MPI_Allgatherv(mine.data(), static_cast<int>(mine.size()), MPI_INT64_T, all.data(), counts.data(),
                               displs.data(), MPI_INT64_T, m_part_comm),
                "MPI_Allgatherv");
    }
    std::vector<PartItem> out;
    std::size_t at = 0;
    for (std::size_t i = 0; i < ranks.size(); ++i) {
      const std::size_t end = at + static_cast<std::size_t>(counts[i]);
      std::size_t index = 0;
      while (at < end) {
        PartItem item;
        item.rank = ranks[i];
        item.index = index++;
        item.entry = static_cast<std::int32_t>(all[at++]);
        const auto ndim = static_cast<std::size_t>(all[at++]);
        item.region.offset.assign(all.begin() + static_cast<std::ptrdiff_t>(at),
                                  all.begin() + static_cast<std::ptrdiff_t>(at + ndim));
        at += ndim;
        item.region.shape.assign(all.begin() + static_cast<std::ptrdiff_t>(at),
                                 all.begin() + static_cast<std::ptrdiff_t>(at + ndim));
        at += ndim;
        out.push_back(std::move(item));
      }
    }
    return out;
  }

  // Collective within the part: the part file and one contiguous dataset per item, allocated at
  // creation and never filled. This rank's own datasets stay open for write().
  void create_part_file(const std::vector<PartItem>& items) {
    for (const EntryInfo& e : *m_entries) h5::check_filter_available(e);  // before the file exists
    Handle fapl = h5::tuned_file_access(m_part_comm, m_options, m_directory);
    m_file = h5::file(h5::check(H5Fcreate(m_part_path.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, fapl.get()),
                                "cannot create HDF5 file '" + m_part_path + "'"));
    Handle dcpl = h5::plist(h5::check(H5Pcreate(H5P_DATASET_CREATE), "H5Pcreate(dataset create)"));
    h5::check_status(H5Pset_alloc_time(dcpl.get(), H5D_ALLOC_TIME_EARLY), "H5Pset_alloc_time");
    h5::check_status(H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER), "H5Pset_fill_time");
    m_own.clear();
    m_own.resize(m_items.size());
    int last_rank = -1;
    for (const PartItem& item : items) {
      const std::string name = h5::item_dataset_name(item.rank, item.index);
      if (item.rank != last_rank) {
        h5::create_groups(m_file.get(), name);
        last_rank = item.rank;
      }
      if (item.entry < 0 || static_cast<std::size_t>(item.entry) >= m_entries->size())
        throw InternalError("rank " + std::to_string(item.rank) + " has an item of entry " +
                            std::to_string(item.entry));
      const EntryInfo& info = (*m_entries)[static_cast<std::size_t>(item.entry)];
      std::vector<hsize_t> dims(item.region.shape.begin(), item.region.shape.end());
      Handle space = h5::dataspace(h5::check(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                                             "H5Screate_simple for '" + info.name + "'"));
      Handle type = h5::file_type(info.dtype);
      Handle filtered_dcpl;
      if (info.kind == EntryKind::Array && info.compression != Compression::None) {
        EntryInfo shape_of_item = info;  // HDF5 chunks of the item's own dataset
        shape_of_item.global_shape = item.region.shape;
        const std::vector<hsize_t> chunk = h5::compressed_chunk_dims(shape_of_item, 0);
        if (!chunk.empty())
          filtered_dcpl = h5::compressed_creation(dcpl.get(), info, chunk, m_part_comm != MPI_COMM_NULL);
      }
      Handle dset = h5::dataset(
          h5::check(H5Dcreate2(m_file.get(), name.c_str(), type.get(), space.get(), H5P_DEFAULT,
                               filtered_dcpl.valid() ? filtered_dcpl.get() : dcpl.get(), H5P_DEFAULT),
                    "cannot create dataset '" + name + "' for '" + info.name + "' in '" + m_part_path + "'"));
      const haddr_t offset = H5Dget_offset(dset.get());
      if (offset != HADDR_UNDEF)
        m_end = std::max(m_end, static_cast<long long>(offset + H5Dget_storage_size(dset.get())));
      if (item.rank == m_group->rank()) m_own[item.index] = std::move(dset);
    }
  }

  // The item of this rank that contains `piece` (the item itself, or a bounded save's piece of it).
  std::size_t containing_item(const WriteItem& piece) const {
    const Region& r = piece.region;
    for (std::size_t k = 0; k < m_items.size(); ++k) {
      const WriteItem& item = m_items[k];
      if (item.entry == piece.entry && item.region.offset.size() == r.offset.size() && detail::contains(item.region, r))
        return k;
    }
    throw InternalError("write buffer " + detail::to_string(r) + " of entry " + std::to_string(piece.entry) +
                        " lies in none of rank " + std::to_string(m_group->rank()) + "'s items");
  }

  // Rank 0, no MPI: data.h5 with a virtual dataset per array that maps every chunk to its part file.
  void write_top_file(const std::string& path, const Metadata& metadata) const {
    Handle fapl = h5::tuned_file_access(MPI_COMM_NULL, m_options, m_directory);
    Handle file = h5::file(
        h5::check(H5Fcreate(path.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, fapl.get()), "cannot create '" + path + "'"));
    const std::vector<std::size_t> item_index = h5::item_index_of_chunks(metadata);
    std::vector<std::vector<std::size_t>> chunks_of_entry(metadata.entries.size());
    for (std::size_t c = 0; c < metadata.chunks.size(); ++c)
      chunks_of_entry.at(static_cast<std::size_t>(metadata.chunks[c].entry)).push_back(c);
    for (std::size_t e = 0; e < metadata.entries.size(); ++e) {
      const EntryInfo& info = metadata.entries[e];
      h5::create_groups(file.get(), info.name);
      if (!h5::is_dataset(info)) continue;
      std::vector<hsize_t> dims(info.global_shape.begin(), info.global_shape.end());
      Handle vspace = h5::dataspace(h5::check(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                                              "H5Screate_simple for '" + info.name + "'"));
      Handle dcpl = h5::plist(h5::check(H5Pcreate(H5P_DATASET_CREATE), "H5Pcreate(dataset create)"));
      std::size_t mapped = 0;
      for (std::size_t c : chunks_of_entry[e]) {
        const ChunkRecord& record = metadata.chunks[c];
        if (detail::volume(record.region.shape) == 0) continue;
        std::vector<hsize_t> src_dims(record.region.shape.begin(), record.region.shape.end());
        Handle src = h5::dataspace(h5::check(
            H5Screate_simple(static_cast<int>(src_dims.size()), src_dims.data(), nullptr), "H5Screate_simple"));
        h5::select_region(vspace.get(), record.region.offset, record.region.shape);
        const std::string source_file = h5::part_file_name(m_part_of_rank.at(static_cast<std::size_t>(record.rank)));
        const std::string source_dataset = h5::item_dataset_name(record.rank, item_index[c]);
        // A relative file name: HDF5 looks for it beside data.h5, wherever the checkpoint is moved.
        h5::check_status(
            H5Pset_virtual(dcpl.get(), vspace.get(), source_file.c_str(), source_dataset.c_str(), src.get()),
            "cannot map '" + info.name + "' to " + source_file + ":" + source_dataset);
        ++mapped;
      }
      if (mapped == 0) {  // nothing stored (an empty array): an ordinary empty dataset
        h5::check_status(H5Pset_layout(dcpl.get(), H5D_CONTIGUOUS), "H5Pset_layout");
      }
      h5::check_status(H5Sselect_all(vspace.get()), "H5Sselect_all");
      Handle type = h5::file_type(info.dtype);
      Handle dset = h5::dataset(h5::check(
          H5Dcreate2(file.get(), info.name.c_str(), type.get(), vspace.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
          "cannot create virtual dataset '" + info.name + "' in '" + path + "'"));
    }
    Handle meta_group = h5::group(
        h5::check(H5Gcreate2(file.get(), "/_cairn", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "cannot create '/_cairn'"));
    const std::vector<std::byte> blob = detail::encode_metadata(metadata);
    write_1d(file.get(), h5::metadata_dataset, DType::UInt8, blob.data(), blob.size());
    write_1d(file.get(), h5::part_of_rank_dataset, DType::Int32, m_part_of_rank.data(), m_part_of_rank.size());
    h5::write_attribute(meta_group.get(), "format_version", std::int64_t{metadata.format_version});
    h5::write_attribute(meta_group.get(), "library_version", metadata.library_version);
    h5::write_attribute(meta_group.get(), "world_size", std::int64_t{metadata.world_size});
    h5::write_attribute(meta_group.get(), "created_unix_time", metadata.created_unix_time);
    h5::write_attribute(meta_group.get(), "layout", std::string("aggregated"));
    for (const EntryInfo& e : metadata.entries) {
      if (h5::is_dataset(e)) continue;
      const std::vector<std::string> parents = detail::parent_groups(e.name);
      const std::string parent = parents.empty() ? "/" : parents.back();
      Handle target =
          h5::group(h5::check(H5Gopen2(file.get(), parent.c_str(), H5P_DEFAULT), "cannot open group '" + parent + "'"));
      h5::write_attribute(target.get(), std::string(detail::leaf_name(e.name)), e.value);
    }
    meta_group.close();
    if (!file.close()) throw StorageError("cannot close '" + path + "': " + h5::error_stack());
  }

  static void write_1d(hid_t file, const char* name, DType dtype, const void* data, std::size_t count) {
    const hsize_t n = count;
    Handle space = h5::dataspace(h5::check(H5Screate_simple(1, &n, nullptr), "H5Screate_simple"));
    Handle type = h5::file_type(dtype);
    Handle dset =
        h5::dataset(h5::check(H5Dcreate2(file, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                              std::string("cannot create '") + name + "'"));
    Handle mem_type = h5::memory_type(dtype);
    h5::check_status(H5Dwrite(dset.get(), mem_type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data),
                     std::string("cannot write '") + name + "'");
  }

  void free_part_comm() noexcept {
    if (m_part_comm != MPI_COMM_NULL) MPI_Comm_free(&m_part_comm);
  }

  int m_files;
  Hdf5Options m_options;
  std::vector<WriteItem> m_items;
  ProcessGroup* m_group = nullptr;
  const std::vector<EntryInfo>* m_entries = nullptr;
  std::string m_directory;
  std::vector<std::int32_t> m_part_of_rank;
  std::int32_t m_part = 0;
  int m_part_rank = 0;
  MPI_Comm m_part_comm = MPI_COMM_NULL;
  std::string m_part_path;
  Handle m_file;
  std::vector<Handle> m_own;  // this rank's item datasets, by item index
  long long m_end = 0;
};

}  // namespace

std::unique_ptr<StorageWriter> make_hdf5_aggregated_writer(int files, const Hdf5Options& options) {
  if (files < 0)
    throw UsageError("make_hdf5_aggregated_writer: files must be 0 (one per node) or more, not " +
                     std::to_string(files));
  return std::make_unique<Hdf5AggregatedWriter>(files, options);
}

}  // namespace cairn
