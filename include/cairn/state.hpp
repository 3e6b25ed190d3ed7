// The State: an ordered map from names to the arrays, blobs and scalars a checkpoint holds.
#pragma once

#include <cairn/dtype.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace cairn {

/// Memory order of a chunk's elements.
enum class Layout : std::uint8_t {
  RowMajor = 0,     ///< C order: the last index varies fastest.
  ColumnMajor = 1,  ///< Fortran order (Kokkos::LayoutLeft): the first index varies fastest.
};

/// Where a chunk's memory is.
enum class MemorySpace : std::uint8_t {
  Auto = 0,        ///< Asked of CUDA (cudaPointerGetAttributes) when Cairn has CUDA and a device; else host.
  Host = 1,        ///< Host memory, page-locked or not: read and written in place.
  CudaDevice = 2,  ///< CUDA device memory: staged through page-locked host memory on a stream of Cairn's own.
};

/// Where `pointer` points: MemorySpace::CudaDevice for CUDA device memory, MemorySpace::Host for
/// anything else (always Host when Cairn has no CUDA or CUDA no device). Not collective. Throws
/// DeviceError when CUDA fails.
MemorySpace memory_space_of(const void* pointer);

/// How an entry is held across the ranks of the process group.
enum class Distribution : std::uint8_t {
  Sharded = 0,     ///< Each rank holds disjoint chunks of one global array.
  Replicated = 1,  ///< Every rank holds the same value; it is written once.
  RankLocal = 2,   ///< Every rank holds its own value under the same name; saved side by side.
};

/// Shape or index vector; extents and offsets are in elements.
using Extents = std::vector<std::int64_t>;

/// One block of a global array held by this rank.
///
/// `offset` and `shape` are in the array's logical index order, whatever the memory layout: for a
/// column-major chunk of a global (nx, ny) array, element (i, j) of the chunk is global element
/// (offset[0] + i, offset[1] + j). `strides`, when not empty, gives the distance in elements between
/// neighbours along each dimension (a chunk inside a larger array with halo cells); when empty the
/// chunk is contiguous in `layout` order. `memory` says where `data` points; by default CUDA is
/// asked. Device chunks are copied on a non-blocking stream of the library's own: finish the work
/// that writes them (cudaStreamSynchronize or cudaDeviceSynchronize) before a save, as a host
/// code fences its threads.
struct Chunk {
  Extents offset;
  Extents shape;
  void* data = nullptr;
  Layout layout = Layout::RowMajor;
  Extents strides;
  MemorySpace memory = MemorySpace::Auto;
};

/// A lossless filter applied to an array's bytes on disk.
enum class Compression : std::uint8_t {
  None = 0,
  Deflate = 1,  ///< zlib's deflate: HDF5's standard filter, which every HDF5 tool reads.
  Zstd = 2,     ///< Zstandard: faster; HDF5 tools need the zstd filter plugin (id 32015) to read it.
};

/// An n-dimensional array: element type, global shape and the chunks this rank holds (zero or more).
struct ArrayEntry {
  DType dtype = DType::Float64;
  Extents global_shape;
  std::vector<Chunk> chunks;
  /// How the array is compressed on disk; every rank must declare the same.
  Compression compression = Compression::None;
  /// The filter's level (deflate 1-9, zstd 1-22); 0: the filter's default.
  int compression_level = 0;

  /// Compresses this array on disk with `method` at `level` (0: the method's default). Returns
  /// *this for chaining. Checked by the save, on every rank, before anything is written:
  /// UsageError for a level outside the method's range or ranks that declare different methods or
  /// levels, UnsupportedError for Zstd in a build without libzstd. HDF5 stores the array as a
  /// chunked, filtered dataset; posix compresses each piece. Loads need no option.
  ArrayEntry& compress(Compression method, int level = 0) {
    compression = method;
    compression_level = level;
    return *this;
  }

  /// Adds a chunk held at `data`, contiguous in `layout` order. Returns *this for chaining.
  ArrayEntry& add_chunk(Extents offset, Extents shape, void* data, Layout layout = Layout::RowMajor) {
    chunks.push_back(Chunk{std::move(offset), std::move(shape), data, layout, {}});
    return *this;
  }
};

/// An opaque blob. Either a fixed buffer (`data`, `size`) or a vector that a load resizes.
struct BytesEntry {
  void* data = nullptr;
  std::size_t size = 0;
  std::vector<std::byte>* vector = nullptr;
  /// Load only, rank-local blobs: receives every saved rank's blob, indexed by saved rank.
  std::vector<std::vector<std::byte>>* all_ranks = nullptr;
};

/// A scalar attribute (step, time, units). Saved from and loaded into the caller's variable.
struct ScalarEntry {
  std::variant<std::int64_t*, double*, std::string*> target;
};

/// A named entry of a State.
struct Entry {
  std::string name;
  Distribution distribution = Distribution::Sharded;
  std::variant<ArrayEntry, BytesEntry, ScalarEntry> value;
  /// Load only, rank-local entries: which saved rank's value to read; -1 means this rank's own,
  /// which requires the same number of ranks as at save.
  int source_rank = -1;

  bool is_array() const noexcept { return std::holds_alternative<ArrayEntry>(value); }
  bool is_bytes() const noexcept { return std::holds_alternative<BytesEntry>(value); }
  bool is_scalar() const noexcept { return std::holds_alternative<ScalarEntry>(value); }
};

class State;

/// A host copy of memory the library cannot read directly, such as a device-resident Kokkos View.
/// The chunks of the entry point at the host copy; the State calls these around every save and load.
class HostMirror {
 public:
  virtual ~HostMirror() = default;
  /// Caller's thread, while a save stages: fills the host copy from the original and returns when
  /// the copy is complete.
  virtual void copy_to_host() = 0;
  /// Caller's thread, after a load has filled the host copy: copies it back into the original and
  /// returns when that is complete.
  virtual void copy_from_host() = 0;
};

/// An object of the simulation that can be checkpointed: it describes its own entries.
class Stateful {
 public:
  virtual ~Stateful() = default;
  /// Adds this object's entries to `state`; names are relative (the State adds the prefix).
  /// Entries point into the object's own memory, so a load fills the object in place.
  virtual void describe(State& state) = 0;
  /// Called after a load has filled the entries that describe() added.
  virtual void restored() {}
};

/// An ordered map from '/'-separated names to entries. Entries point into caller memory: a State is
/// a description, cheap to build before every save. Names are checked when the State is saved or
/// loaded, where the error can name the rank.
class State {
 public:
  /// Adds an array entry with no chunks yet; add them with add_chunk(). Returns the new entry,
  /// valid until the next entry is added.
  ArrayEntry& add_array(std::string name, DType dtype, Extents global_shape,
                        Distribution distribution = Distribution::Sharded);

  /// Adds a sharded array of which this rank holds one contiguous chunk.
  template <class T>
  ArrayEntry& add_array(std::string name, Extents global_shape, Extents offset, Extents local_shape, T* data,
                        Layout layout = Layout::RowMajor) {
    ArrayEntry& array = add_array(std::move(name), dtype_of<T>(), std::move(global_shape));
    return array.add_chunk(std::move(offset), std::move(local_shape), erase_const(data), layout);
  }

  /// Adds an array that every rank holds whole and identically; it is written once.
  template <class T>
  ArrayEntry& add_replicated_array(std::string name, Extents shape, T* data, Layout layout = Layout::RowMajor) {
    ArrayEntry& array = add_array(std::move(name), dtype_of<T>(), shape, Distribution::Replicated);
    return array.add_chunk(Extents(shape.size(), 0), shape, erase_const(data), layout);
  }

  /// Adds a fixed-size blob. Rank-local by default (each rank its own, e.g. an RNG state).
  void add_bytes(std::string name, void* data, std::size_t size, Distribution distribution = Distribution::RankLocal);
  /// Adds a blob held in a vector, which a load resizes to the saved size.
  void add_bytes(std::string name, std::vector<std::byte>& bytes, Distribution distribution = Distribution::RankLocal);
  /// Load only: receives every saved rank's value of rank-local blob `name`, indexed by saved rank.
  void add_bytes_from_all_ranks(std::string name, std::vector<std::vector<std::byte>>& out);

  /// Adds a scalar. Replicated scalars are written once, from rank 0, as HDF5 attributes.
  void add_scalar(std::string name, std::int64_t& value, Distribution distribution = Distribution::Replicated);
  void add_scalar(std::string name, double& value, Distribution distribution = Distribution::Replicated);
  /// Adds a string attribute; always replicated.
  void add_scalar(std::string name, std::string& value);

  /// Adds the entries of `object` under `prefix` ("solver" gives "solver/<name>").
  void add(const std::string& prefix, Stateful& object);

  /// Adds an entry built by hand.
  Entry& add_entry(Entry entry);

  /// Registers a host copy that some chunks point at; the State keeps it alive.
  void add_mirror(std::shared_ptr<HostMirror> mirror);
  /// Host copies registered with add_mirror().
  const std::vector<std::shared_ptr<HostMirror>>& mirrors() const noexcept { return m_mirrors; }

  /// For a rank-local entry `name`, reads saved rank `saved_rank`'s value on load. Throws
  /// UsageError when there is no such entry.
  void load_from_rank(const std::string& name, int saved_rank);

  const std::vector<Entry>& entries() const noexcept { return m_entries; }
  std::vector<Entry>& entries() noexcept { return m_entries; }
  std::size_t size() const noexcept { return m_entries.size(); }
  bool empty() const noexcept { return m_entries.empty(); }
  /// The entry called `name`, or nullptr.
  const Entry* find(const std::string& name) const noexcept;
  Entry* find(const std::string& name) noexcept;

  /// Stateful objects added with add(); their restored() runs after a load.
  const std::vector<Stateful*>& statefuls() const noexcept { return m_statefuls; }

 private:
  // Saving only reads through the pointer; loading writes, so a State stores it non-const.
  template <class T>
  static void* erase_const(T* data) noexcept {
    return const_cast<void*>(static_cast<const void*>(data));
  }

  std::vector<Entry> m_entries;
  std::vector<Stateful*> m_statefuls;
  std::vector<std::shared_ptr<HostMirror>> m_mirrors;
};

}  // namespace cairn
