// Fuzz target `opener`: opening a checkpoint whose Cairn-written content comes from the input.
//
// The input describes a checkpoint directory (see opener_input.hpp). The harness writes it as
// well-formed HDF5 files through the HDF5 C API (POSIX driver) in a scratch directory, opens it
// with make_hdf5_reader() over a SerialProcessGroup, reads every chunk and every entry its
// metadata lists (up to a size cap), closes it and removes the files. Only cairn::Error may come
// out. An InternalError, any other exception, a crash, a sanitizer report, or an HDF5 object still
// open after close() is a finding. HDF5's own file format is never fuzzed: HDF5's parser is not
// Cairn's to fix.
#include <cairn/error.hpp>
#include <cairn/process_group.hpp>
#include <cairn/storage.hpp>

#include "core/metadata_codec.hpp"
#include "fuzz_support.hpp"
#include "opener_input.hpp"
#include "storage/hdf5/hdf5_handle.hpp"
#include "storage/hdf5/hdf5_rank_files.hpp"

#include <stdlib.h>
#include <sys/stat.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

namespace {

using namespace cairn;
using detail::h5::Handle;
namespace h5 = detail::h5;

// Caps that keep one run in the millisecond range.
constexpr std::size_t max_dataset_bytes = std::size_t{1} << 20;
constexpr std::size_t max_read_bytes = std::size_t{1} << 20;
constexpr std::size_t max_reads = 64;
constexpr std::size_t max_created_datasets = 64;
constexpr std::size_t max_hdf5_dims = 32;  // H5S_MAX_RANK

// A directory of this process under $TMPDIR, else /dev/shm, removed at exit.
class Scratch {
 public:
  Scratch() {
    const char* tmpdir = std::getenv("TMPDIR");
    struct stat st {};
    const std::string base = tmpdir && *tmpdir                                     ? tmpdir
                             : ::stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm"
                                                                                   : "/tmp";
    std::string name = base + "/cairn-fuzz-XXXXXX";
    if (!::mkdtemp(name.data())) fuzz::finding("the harness cannot create a directory under " + base);
    m_root = name;
    m_checkpoint = m_root + "/checkpoint";
  }
  ~Scratch() {
    std::error_code ignored;
    std::filesystem::remove_all(m_root, ignored);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  // An empty checkpoint directory.
  const std::string& fresh() {
    clear();
    std::error_code error;
    std::filesystem::create_directory(m_checkpoint, error);
    if (error) fuzz::finding("the harness cannot create " + m_checkpoint + ": " + error.message());
    return m_checkpoint;
  }
  void clear() {
    std::error_code error;
    std::filesystem::remove_all(m_checkpoint, error);
    if (error) fuzz::finding("the harness cannot remove " + m_checkpoint + ": " + error.message());
  }

 private:
  std::string m_root;
  std::string m_checkpoint;
};

// The byte size of `shape` in elements of `element_size` into `bytes`; false when an extent is
// negative or the size exceeds `cap`. Never overflows.
bool bytes_within(const Extents& shape, std::size_t element_size, std::size_t cap, std::size_t& bytes) {
  bool empty = false;
  for (std::int64_t e : shape) {
    if (e < 0) return false;
    empty = empty || e == 0;
  }
  if (empty) {
    bytes = 0;
    return true;
  }
  std::size_t n = element_size;
  for (std::int64_t e : shape) {
    if (static_cast<std::uint64_t>(e) > cap / n) return false;
    n *= static_cast<std::size_t>(e);
  }
  bytes = n;
  return n <= cap;
}

Handle make_space(const std::vector<hsize_t>& dims) {
  if (dims.empty()) return h5::dataspace(h5::check(H5Screate(H5S_SCALAR), "H5Screate"));
  return h5::dataspace(
      h5::check(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), "H5Screate_simple"));
}

Handle create_file(const std::string& path) {
  return h5::file(h5::check(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), "H5Fcreate " + path));
}

Handle open_cairn_group(hid_t file) {
  if (H5Lexists(file, "/_cairn", H5P_DEFAULT) > 0)
    return h5::group(h5::check(H5Gopen2(file, "/_cairn", H5P_DEFAULT), "H5Gopen2 /_cairn"));
  return h5::group(h5::check(H5Gcreate2(file, "/_cairn", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "H5Gcreate2"));
}

// A dataset of `count` elements of `dtype` at `name` (1-D, or (count, 1) when `two_d`).
void write_structure(hid_t file, const char* name, DType dtype, const void* data, std::size_t count, bool two_d) {
  std::vector<hsize_t> dims{count};
  if (two_d) dims.push_back(1);
  Handle space = make_space(dims);
  Handle file_type = h5::file_type(dtype);
  Handle dset = h5::dataset(
      h5::check(H5Dcreate2(file, name, file_type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), name));
  Handle memory_type = h5::memory_type(dtype);
  if (count > 0) h5::check_status(H5Dwrite(dset.get(), memory_type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data), name);
}

void write_metadata_blob(hid_t file, std::vector<std::byte> blob, std::uint8_t flags) {
  if (flags & fuzz::repair_checksums) fuzz::repair_checksum(blob);
  open_cairn_group(file);
  write_structure(file, h5::metadata_dataset, DType::UInt8, blob.data(), blob.size(), flags & fuzz::metadata_2d);
}

// The metadata the reader will find in `blob`, when it decodes; nullptr otherwise.
std::unique_ptr<Metadata> try_decode(std::vector<std::byte> blob, std::uint8_t flags) {
  if (flags & fuzz::repair_checksums) fuzz::repair_checksum(blob);
  try {
    return std::make_unique<Metadata>(detail::decode_metadata(blob.data(), blob.size(), "fuzz input"));
  } catch (const Error&) {
    return nullptr;
  }
}

// Creates a data dataset of `dtype` and `shape` (one more row when skewed), with the groups on
// the way. Names and shapes come from the input: a dataset HDF5 refuses, or one over the size cap,
// is left out, and the reader meets a missing dataset.
void create_data_dataset(hid_t file, const std::string& name, DType dtype, Extents shape, bool skew) {
  if (shape.size() > max_hdf5_dims || !dtype_is_valid(dtype)) return;
  if (skew) {
    if (shape.empty())
      shape = {1};
    else if (shape[0] < std::numeric_limits<std::int64_t>::max())
      ++shape[0];
  }
  std::size_t bytes = 0;
  if (!bytes_within(shape, dtype_size(dtype), max_dataset_bytes, bytes)) return;
  Handle space = make_space(std::vector<hsize_t>(shape.begin(), shape.end()));
  Handle type = h5::file_type(dtype);
  Handle lcpl = h5::plist(h5::check(H5Pcreate(H5P_LINK_CREATE), "H5Pcreate(link create)"));
  h5::check_status(H5Pset_create_intermediate_group(lcpl.get(), 1), "H5Pset_create_intermediate_group");
  // Contents stay unwritten: reads return the fill value, and the run stays fast.
  const hid_t id = H5Dcreate2(file, name.c_str(), type.get(), space.get(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT);
  if (id < 0) {
    H5Eclear2(H5E_DEFAULT);
    return;
  }
  H5Dclose(id);
}

// data.h5 with the metadata blob of section 0 and, on request, a dataset per entry.
void write_shared_file(const std::string& directory, std::uint8_t flags,
                       const std::vector<std::vector<std::byte>>& sections) {
  const std::vector<std::byte> blob = sections.empty() ? std::vector<std::byte>{} : sections[0];
  Handle file = create_file(directory + "/" + h5::data_file_name);
  write_metadata_blob(file.get(), blob, flags);
  if (!(flags & fuzz::create_datasets)) return;
  const std::unique_ptr<Metadata> md = try_decode(blob, flags);
  if (!md) return;
  std::size_t created = 0;
  for (const EntryInfo& e : md->entries) {
    if (e.kind == EntryKind::Scalar && e.distribution == Distribution::Replicated) continue;  // an attribute
    if (created++ == max_created_datasets) break;
    create_data_dataset(file.get(), e.name, e.dtype, e.global_shape, flags & fuzz::skew_shapes);
  }
}

// One rank file: its metadata blob, chunk index, rank attribute and, on request, the chunk
// datasets its index lists (in the dtype its metadata gives their entry).
void write_rank_file(const std::string& directory, int rank, std::uint8_t flags, const std::vector<std::byte>& blob,
                     const std::vector<std::byte>& index_bytes) {
  Handle file = create_file(directory + "/" + h5::rank_file_name(rank));
  write_metadata_blob(file.get(), blob, flags);
  std::vector<std::int64_t> index(index_bytes.size() / sizeof(std::int64_t));
  if (!index.empty()) std::memcpy(index.data(), index_bytes.data(), index.size() * sizeof(std::int64_t));
  write_structure(file.get(), h5::chunk_index_dataset, DType::Int64, index.data(), index.size(), false);
  if (!(flags & fuzz::omit_rank_attribute)) {
    Handle group = open_cairn_group(file.get());
    const std::int64_t value = (flags & fuzz::wrong_rank_attribute) ? rank + 1 : rank;
    Handle space = h5::dataspace(h5::check(H5Screate(H5S_SCALAR), "H5Screate"));
    Handle type = h5::file_type(DType::Int64);
    Handle attr = h5::attribute(h5::check(
        H5Acreate2(group.get(), "rank", type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), "H5Acreate2 rank"));
    h5::check_status(H5Awrite(attr.get(), H5T_NATIVE_INT64, &value), "H5Awrite rank");
  }
  if (!(flags & fuzz::create_datasets)) return;
  h5::create_groups(file.get(), std::string(h5::chunks_group) + "/");
  const std::unique_ptr<Metadata> md = try_decode(blob, flags);
  // Walk the index as the reader does, stopping where it stops making sense.
  std::size_t at = 1;
  const std::int64_t count = index.empty() ? 0 : index[0];
  for (std::int64_t k = 0; k < count && static_cast<std::size_t>(k) < max_created_datasets; ++k) {
    if (index.size() < at + 2) break;
    const std::int64_t entry = index[at++];
    const std::int64_t ndims = index[at++];
    if (ndims < 0 || static_cast<std::size_t>(ndims) > max_hdf5_dims ||
        index.size() - at < 2 * static_cast<std::size_t>(ndims))
      break;
    at += static_cast<std::size_t>(ndims);  // the offset
    const Extents shape(index.begin() + static_cast<std::ptrdiff_t>(at),
                        index.begin() + static_cast<std::ptrdiff_t>(at) + ndims);
    at += static_cast<std::size_t>(ndims);
    DType dtype = DType::UInt8;
    if (md && entry >= 0 && static_cast<std::size_t>(entry) < md->entries.size())
      dtype = md->entries[static_cast<std::size_t>(entry)].dtype;
    create_data_dataset(file.get(), std::string(h5::chunks_group) + "/" + std::to_string(k), dtype, shape,
                        flags & fuzz::skew_shapes);
  }
}

void write_rank_files(const std::string& directory, std::uint8_t flags,
                      const std::vector<std::vector<std::byte>>& sections) {
  const std::size_t files = std::min(std::max<std::size_t>((sections.size() + 1) / 2, 1), fuzz::max_rank_files);
  const std::vector<std::byte> none;
  for (std::size_t r = 0; r < files; ++r) {
    const std::vector<std::byte>& blob = 2 * r < sections.size() ? sections[2 * r] : none;
    const std::vector<std::byte>& index = 2 * r + 1 < sections.size() ? sections[2 * r + 1] : none;
    write_rank_file(directory, static_cast<int>(r), flags, blob, index);
  }
}

// With CAIRN_FUZZ_VERBOSE set, what happened to each input goes to stderr (to check seeds).
const bool verbose = std::getenv("CAIRN_FUZZ_VERBOSE") != nullptr;

void expect_not_internal(const Error& e) {
  if (e.code() == ErrorCode::Internal)
    fuzz::finding(std::string("InternalError from a hostile checkpoint: ") + e.what());
  if (verbose) std::fprintf(stderr, "  cairn::Error: %s\n", e.what());
}

// One read of `region` of entry `entry`, into a buffer of its size; skipped above the cap.
void read_region(StorageReader& reader, std::int32_t entry, const Region& region) {
  const EntryInfo& info = reader.metadata().entries.at(static_cast<std::size_t>(entry));
  std::size_t bytes = 0;
  if (!bytes_within(region.shape, dtype_size(info.dtype), max_read_bytes, bytes)) return;
  std::vector<std::byte> buffer(std::max<std::size_t>(bytes, 1));
  ReadRequest request;
  request.entry = entry;
  request.region = region;
  request.dtype = info.dtype;
  request.destination = buffer.data();
  try {
    reader.read({request});
    if (verbose) std::fprintf(stderr, "  read %zu bytes of '%s'\n", bytes, info.name.c_str());
  } catch (const Error& e) {
    expect_not_internal(e);
  }
}

// Reads every chunk the metadata records, then every entry whole, up to max_reads reads.
void read_everything(StorageReader& reader) {
  const Metadata& md = reader.metadata();
  std::size_t reads = 0;
  for (const ChunkRecord& c : md.chunks) {
    if (reads++ == max_reads) return;
    read_region(reader, c.entry, c.region);
  }
  for (std::size_t e = 0; e < md.entries.size(); ++e) {
    if (reads++ == max_reads) return;
    const Extents& shape = md.entries[e].global_shape;
    read_region(reader, static_cast<std::int32_t>(e), Region{Extents(shape.size(), 0), shape});
  }
}

void open_and_read(const std::string& directory) {
  SerialProcessGroup group;
  std::unique_ptr<StorageReader> reader = make_hdf5_reader();
  try {
    reader->open(directory, group);
    if (verbose)
      std::fprintf(stderr, "  opened: %zu entries, %zu chunks\n", reader->metadata().entries.size(),
                   reader->metadata().chunks.size());
    read_everything(*reader);
  } catch (const Error& e) {
    expect_not_internal(e);
  }
  reader->close();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Scratch scratch;
  static const bool quiet = [] { return H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr) >= 0; }();
  (void)quiet;
  if (size == 0) return 0;
  const std::uint8_t flags = data[0];
  const std::vector<std::vector<std::byte>> sections = fuzz::split_sections(data + 1, size - 1);
  const std::string& directory = scratch.fresh();
  try {
    if (flags & fuzz::rank_files_layout)
      write_rank_files(directory, flags, sections);
    else
      write_shared_file(directory, flags, sections);
  } catch (const Error& e) {
    fuzz::finding(std::string("the harness cannot write the checkpoint: ") + e.what());
  }
  open_and_read(directory);
  const ssize_t still_open = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
  if (still_open != 0)
    fuzz::finding(std::to_string(still_open) + " HDF5 objects are still open after the reader closed");
  scratch.clear();
  return 0;
}
