#include <cairn/error.hpp>
#include <cairn/process_group.hpp>
#include <cairn/storage.hpp>

#include "core/metadata_codec.hpp"
#include "core/region.hpp"
#include "storage/common/coalesced_reads.hpp"
#include "storage/common/delegating_reader.hpp"
#include "storage/common/incremental.hpp"
#include "storage/common/publish.hpp"
#include "storage/hdf5/hdf5_aggregated.hpp"
#include "storage/hdf5/hdf5_compression.hpp"
#include "storage/hdf5/hdf5_handle.hpp"
#include "storage/hdf5/hdf5_rank_files.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <exception>
#include <memory>
#include <string>
#include <vector>

namespace cairn {

namespace {

using detail::h5::Handle;
namespace h5 = detail::h5;

class Hdf5Reader final : public StorageReader {
 public:
  void open(const std::string& directory, ProcessGroup& group) override {
    h5::QuietErrors quiet;
    m_group = &group;
    m_path = directory + "/" + h5::data_file_name;
    // Every rank looks before the collective open, so all of them see a missing file alike.
    struct stat st {};
    if (::stat(directory.c_str(), &st) != 0)
      throw StorageError("checkpoint '" + directory + "' cannot be opened: " + detail::errno_text(errno));
    if (!S_ISDIR(st.st_mode))
      throw UsageError("checkpoint id '" + directory + "' is a file, not a checkpoint directory");
    if (::stat(m_path.c_str(), &st) != 0)
      throw StorageError("checkpoint '" + directory + "' has no data file '" + m_path + "' and no rank files ('" +
                         directory + "/" + h5::rank_file_name(0) +
                         "' of saved rank 0 is missing too): " + detail::errno_text(errno));
    if (const int fd = ::open(m_path.c_str(), O_RDONLY | O_CLOEXEC); fd < 0)  // as the effective user
      throw StorageError("cannot read '" + m_path + "': " + detail::errno_text(errno));
    else
      ::close(fd);
    if (H5Fis_hdf5(m_path.c_str()) <= 0) {
      H5Eclear2(H5E_DEFAULT);
      throw CorruptCheckpointError("'" + m_path + "' is not an HDF5 file (damaged, truncated or not written by Cairn)");
    }
    // Up to a few dozen ranks, each opens the file with HDF5's POSIX driver and reads with plain
    // pread: measured faster here than MPI-IO's independent reads (no MPI-IO layer in between,
    // the page cache's read-ahead works). Beyond that, MPI-IO with collective metadata reads, so
    // that thousands of ranks do not each read HDF5's metadata from a parallel file system.
    m_posix_driver = group.size() <= posix_driver_ranks;
    Handle fapl = h5::mpio_file_access(m_posix_driver ? MPI_COMM_NULL : group.mpi_comm());
    const hid_t file_id = H5Fopen(m_path.c_str(), H5F_ACC_RDONLY, fapl.get());
    if (file_id < 0)
      throw CorruptCheckpointError("cannot open '" + m_path + "' (damaged or truncated?): " + h5::error_stack());
    m_file = h5::file(file_id);

    if (H5Lexists(m_file.get(), "/_cairn", H5P_DEFAULT) <= 0 ||
        H5Lexists(m_file.get(), h5::metadata_dataset, H5P_DEFAULT) <= 0) {
      H5Eclear2(H5E_DEFAULT);
      throw CorruptCheckpointError("'" + m_path + "' is an HDF5 file but not a Cairn checkpoint (no " +
                                   h5::metadata_dataset + ")");
    }
    Handle dset = h5::dataset(h5::check(H5Dopen2(m_file.get(), h5::metadata_dataset, H5P_DEFAULT),
                                        "cannot open the metadata of '" + m_path + "'"));
    Handle space = h5::dataspace(h5::check(H5Dget_space(dset.get()), "H5Dget_space"));
    if (H5Sget_simple_extent_ndims(space.get()) != 1)
      throw CorruptCheckpointError("the metadata dataset of '" + m_path + "' is not one-dimensional");
    hsize_t n = 0;
    H5Sget_simple_extent_dims(space.get(), &n, nullptr);
    std::vector<std::byte> blob(static_cast<std::size_t>(n));
    Handle type = h5::memory_type(DType::UInt8);
    Handle dxpl = h5::transfer(true, m_posix_driver ? MPI_COMM_NULL : m_group->mpi_comm());
    if (H5Dread(dset.get(), type.get(), H5S_ALL, H5S_ALL, dxpl.get(), blob.data()) < 0)
      throw CorruptCheckpointError("cannot read the metadata of '" + m_path + "': " + h5::error_stack());
    m_metadata = detail::decode_metadata(blob.data(), blob.size(), m_path);
    m_referenced.assign(m_metadata.entries.size(), false);
    for (const ChunkRecord& c : m_metadata.chunks)
      if (!c.source.empty()) m_referenced[static_cast<std::size_t>(c.entry)] = true;
  }

  const Metadata& metadata() const override { return m_metadata; }

  void read(const std::vector<ReadRequest>& requests) override {
    h5::QuietErrors quiet;
    // Every rank opens the same datasets (collective metadata): agree on which ones are read.
    const std::size_t n_entries = m_metadata.entries.size();
    std::vector<std::int64_t> wanted(n_entries, 0);
    for (const ReadRequest& r : requests) ++wanted.at(static_cast<std::size_t>(r.entry));
    if (n_entries && !m_posix_driver) m_group->allreduce(wanted.data(), n_entries, ReduceOp::Max);

    // Requests of one entry, in the order given.
    std::vector<std::vector<const ReadRequest*>> by_entry(n_entries);
    for (const ReadRequest& r : requests) by_entry[static_cast<std::size_t>(r.entry)].push_back(&r);

    std::exception_ptr failure;
    // Independent reads: each rank reads its own regions in one request per region, without
    // collective buffering's extra copy (measured faster here at 1 to 4 ranks). Datasets are still
    // opened by every rank, as collective metadata reads require.
    Handle dxpl = h5::transfer(false, m_posix_driver ? MPI_COMM_NULL : m_group->mpi_comm());
    for (std::size_t e = 0; e < n_entries; ++e) {
      if (wanted[e] == 0) continue;
      const EntryInfo& info = m_metadata.entries[e];
      try {
        OpenDataset& open = opened(e);
        const hid_t file_space = open.space.get();
        const haddr_t base = open.base;
        for (const ReadRequest* request : by_entry[e]) {
          if (base != HADDR_UNDEF && request->dtype == info.dtype) {
            read_direct(*request, info, base);
            continue;
          }
          herr_t rc;
          {
            const ReadRequest& r = *request;
            h5::select_region(file_space, r.region.offset, r.region.shape);
            std::vector<hsize_t> dims(r.region.shape.begin(), r.region.shape.end());
            Handle mem = h5::dataspace(
                h5::check(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), "H5Screate_simple"));
            Handle type = h5::memory_type(r.dtype);
            rc = H5Dread(open.dataset.get(), type.get(), mem.get(), file_space, dxpl.get(), r.destination);
          }
          if (rc < 0 && !failure)
            failure = std::make_exception_ptr(
                StorageError("cannot read dataset '" + info.name + "' of '" + m_path + "': " + h5::error_stack()));
        }
      } catch (...) {
        if (!failure) failure = std::current_exception();
      }
    }
    if (failure) m_direct.clear();
    read_in_step(failure);
    if (failure) std::rethrow_exception(failure);
  }

  void close() noexcept override {
    h5::QuietErrors quiet;
    if (m_fd >= 0) ::close(m_fd);
    m_fd = -1;
    m_open.clear();
    m_file.close();
  }

  ~Hdf5Reader() override {
    if (m_fd >= 0) ::close(m_fd);
  }

 private:
  // A dataset opened once and kept for later read() calls: checked loads read in rounds of a few
  // MiB, and opening the dataset again for each would cost more than some of the reads.
  struct OpenDataset {
    Handle dataset;
    Handle space;
    haddr_t base = HADDR_UNDEF;  // for direct reads: h5::plain_data_offset
  };

  OpenDataset& opened(std::size_t entry) {
    if (m_open.empty()) m_open.resize(m_metadata.entries.size());
    std::unique_ptr<OpenDataset>& slot = m_open[entry];
    if (slot) return *slot;
    const EntryInfo& info = m_metadata.entries[entry];
    h5::check_filter_available(info);  // a clear message, not HDF5's, when zstd cannot be read here
    auto open = std::make_unique<OpenDataset>();
    // An entry with chunks held by earlier checkpoints: its own chunks, not the virtual dataset
    // (reference_reader.cpp reads the others from their holders).
    const std::string name = m_referenced[entry] ? detail::incremental_dataset_name(info.name) : info.name;
    const Handle access = h5::compressed_access(info);  // a chunk cache for compressed entries
    open->dataset =
        h5::dataset(h5::check(H5Dopen2(m_file.get(), name.c_str(), access.valid() ? access.get() : H5P_DEFAULT),
                              "checkpoint file '" + m_path + "' lacks dataset '" + name + "'"));
    open->space = h5::dataspace(h5::check(H5Dget_space(open->dataset.get()), "H5Dget_space"));
    h5::check_extent(open->space.get(), info, m_path);
    // Direct reads with HDF5's POSIX driver only: MPI-IO may stand for a parallel file system.
    if (m_posix_driver) open->base = h5::plain_data_offset(open->dataset.get(), info.dtype);
    slot = std::move(open);
    return *slot;
  }

  // Queues `r` for pread, one read per contiguous run of the region in the file (one for a slab
  // of the first dimension), straight into the destination; read() issues them, neighbours merged.
  void read_direct(const ReadRequest& r, const EntryInfo& info, haddr_t base) {
    const std::size_t ndim = r.region.shape.size();
    if (ndim == 0 || detail::volume(r.region.shape) == 0) return;
    if (m_fd < 0) {
      m_fd = ::open(m_path.c_str(), O_RDONLY | O_CLOEXEC);
      if (m_fd < 0) throw StorageError("cannot read '" + m_path + "': " + detail::errno_text(errno));
    }
    const auto esize = static_cast<std::int64_t>(dtype_size(info.dtype));
    const Extents& global = info.global_shape;
    // Dimensions from `inner` on are read whole (all but the first of them in full): one run.
    std::size_t inner = ndim - 1;
    while (inner > 0 && r.region.offset[inner] == 0 && r.region.shape[inner] == global[inner]) --inner;
    std::int64_t run = r.region.shape[inner];
    for (std::size_t d = inner + 1; d < ndim; ++d) run *= global[d];
    const auto run_bytes = static_cast<std::size_t>(run * esize);
    Extents index(r.region.offset);  // the first element of the current run
    auto* out = static_cast<std::byte*>(r.destination);
    while (true) {
      std::int64_t linear = 0;
      for (std::size_t d = 0; d < ndim; ++d) linear = linear * global[d] + index[d];
      m_direct.add(static_cast<int>(r.entry), out, run_bytes, base + static_cast<std::uint64_t>(linear * esize));
      out += run_bytes;
      // The next run: count through the dimensions before `inner`.
      std::size_t d = inner;
      while (d > 0) {
        --d;
        if (++index[d] < r.region.offset[d] + r.region.shape[d]) break;
        index[d] = r.region.offset[d];
        if (d == 0) return;
      }
      if (inner == 0) return;
    }
  }

  // Issues the queued direct reads. Ranks go through them in steps of about lockstep_bytes each,
  // every rank the same number of steps, each step after a barrier: the global arrays' layout puts
  // each rank's slab of an array beside the others' slabs of it, and ranks that read their slabs
  // of one array at the same time read this disk markedly faster than ranks that drift onto
  // different arrays (bare test, 2 ranks, 4 arrays of 64 MiB each: 0.95 of per-rank files instead
  // of 0.87; benchmarks/README.md, "Load: how the readers read"), as the collective reads of a
  // hand-written load do.
  void read_in_step(std::exception_ptr& failure) {
    const std::vector<detail::CoalescedReads::Read> reads = m_direct.take(lockstep_bytes);
    std::vector<std::size_t> step_start{0};  // index of each step's first read
    std::uint64_t bytes = 0;
    for (std::size_t i = 0; i < reads.size(); ++i) {
      if (bytes >= lockstep_bytes) {
        step_start.push_back(i);
        bytes = 0;
      }
      bytes += reads[i].bytes;
    }
    step_start.push_back(reads.size());
    std::int64_t steps = static_cast<std::int64_t>(step_start.size()) - 1;
    const bool lockstep = m_posix_driver && m_group->size() > 1;
    if (lockstep) m_group->allreduce(&steps, 1, ReduceOp::Max);  // also the first step's barrier
    for (std::int64_t step = 0; step < steps; ++step) {
      if (lockstep && step > 0) m_group->barrier();
      const auto k = static_cast<std::size_t>(step);
      if (k + 1 >= step_start.size()) continue;  // another rank has more steps
      for (std::size_t i = step_start[k]; i < step_start[k + 1] && !failure; ++i) {
        try {
          pread_exactly(reads[i].destination, static_cast<std::size_t>(reads[i].bytes),
                        static_cast<off_t>(reads[i].offset),
                        m_metadata.entries[static_cast<std::size_t>(reads[i].file)]);
        } catch (...) {
          failure = std::current_exception();
        }
      }
    }
  }

  void pread_exactly(std::byte* out, std::size_t bytes, off_t at, const EntryInfo& info) const {
    int error = 0;
    if (detail::read_at(m_fd, out, bytes, static_cast<std::uint64_t>(at), error) < bytes)
      throw StorageError(
          "cannot read dataset '" + info.name + "' of '" + m_path +
          "': " + (error == 0 ? std::string("the file is shorter than its metadata says") : detail::errno_text(error)));
  }

  // Groups up to this size read with HDF5's POSIX driver, larger ones through MPI-IO.
  static constexpr int posix_driver_ranks = 64;
  // Bytes a rank reads between two barriers of read_in_step (and the largest merged read).
  static constexpr std::uint64_t lockstep_bytes = std::uint64_t{64} << 20;

  ProcessGroup* m_group = nullptr;
  bool m_posix_driver = false;
  int m_fd = -1;                    // the file for direct reads, opened on first use
  detail::CoalescedReads m_direct;  // direct reads of the current read() call
  std::string m_path;
  Handle m_file;
  Metadata m_metadata;
  std::vector<bool> m_referenced;                    // by entry: some of its chunks are held elsewhere
  std::vector<std::unique_ptr<OpenDataset>> m_open;  // by entry; released before the file
};

bool has_rank_file(const std::string& directory) {
  DIR* dir = ::opendir(directory.c_str());
  if (dir == nullptr) return false;
  bool found = false;
  while (const dirent* e = ::readdir(dir)) {
    const std::string name = e->d_name;
    if (name.rfind("rank_", 0) == 0 && name.size() > 3 && name.compare(name.size() - 3, 3, ".h5") == 0) {
      found = true;
      break;
    }
  }
  ::closedir(dir);
  return found;
}

// True when `path` is the top file of the aggregated layout (it says which part file each rank
// wrote). Opened with HDF5's POSIX driver by one rank: the MPI-IO open comes later, if at all.
bool is_aggregated(const std::string& path) {
  h5::QuietErrors quiet;
  const hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id < 0) {
    H5Eclear2(H5E_DEFAULT);
    return false;  // the shared-file reader reports why it cannot be opened
  }
  Handle file = h5::file(id);
  const bool found = H5Lexists(file.get(), "/_cairn", H5P_DEFAULT) > 0 &&
                     H5Lexists(file.get(), h5::part_of_rank_dataset, H5P_DEFAULT) > 0;
  H5Eclear2(H5E_DEFAULT);
  return found;
}

// Picks the layout on open: one shared file, or one file per saving rank (saves without
// collectives). Rank 0 looks and tells the others, so that every rank opens the same way.
class Hdf5LayoutReader final : public detail::DelegatingReader {
 public:
  void open(const std::string& directory, ProcessGroup& group) override {
    enum : std::int64_t { shared_file, rank_files, aggregated };
    std::int64_t layout = shared_file;
    if (group.rank() == 0) {
      struct stat st {};
      const bool shared = ::stat((directory + "/" + h5::data_file_name).c_str(), &st) == 0;
      // Neither present: the shared-file reader reports the missing data.h5. Any rank file will
      // do, so that a missing rank_000000.h5 is reported as such.
      if (!shared && has_rank_file(directory))
        layout = rank_files;
      else if (shared && is_aggregated(directory + "/" + h5::data_file_name))
        layout = aggregated;
    }
    group.broadcast(&layout, sizeof layout, 0);
    if (layout == rank_files)
      m_inner = h5::make_hdf5_rank_files_reader();
    else if (layout == aggregated)
      m_inner = h5::make_hdf5_aggregated_reader();
    else
      m_inner = std::make_unique<Hdf5Reader>();
    m_inner->open(directory, group);
  }
};

}  // namespace

std::unique_ptr<StorageReader> make_hdf5_reader() {
  return std::make_unique<Hdf5LayoutReader>();
}

}  // namespace cairn
