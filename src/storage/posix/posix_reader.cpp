// Reader of the posix layout: rank 0 reads and checks metadata.cairn and broadcasts it; each rank
// then reads the pieces its requests intersect straight from the rank files with pread.
#include <cairn/error.hpp>
#include <cairn/process_group.hpp>
#include <cairn/storage.hpp>

#include "comm/agree.hpp"
#include "comm/broadcast.hpp"
#include "core/byte_codec.hpp"
#include "core/checksum.hpp"
#include "core/compression.hpp"
#include "core/metadata_codec.hpp"
#include "core/region.hpp"
#include "core/strided_copy.hpp"
#include "storage/common/coalesced_reads.hpp"
#include "storage/common/publish.hpp"
#include "storage/posix/posix_storage.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <string>
#include <vector>

namespace cairn {

// ---------------------------------------------------------------------------------------------
// Element conversion.

namespace detail::posix {

namespace {

float half_to_float(std::uint16_t h) {
  const bool negative = (h & 0x8000u) != 0;
  const int exponent = (h >> 10) & 0x1F;
  const int mantissa = h & 0x3FF;
  float value;
  if (exponent == 0)
    value = std::ldexp(static_cast<float>(mantissa), -24);
  else if (exponent == 31)
    value = mantissa ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  else
    value = std::ldexp(static_cast<float>(mantissa + 1024), exponent - 25);
  return negative ? -value : value;
}

std::uint16_t double_to_half(double value) {
  const std::uint16_t sign = std::signbit(value) ? 0x8000u : 0u;
  if (std::isnan(value)) return static_cast<std::uint16_t>(sign | 0x7E00u);
  const double a = std::fabs(value);
  if (a >= 65520.0) return static_cast<std::uint16_t>(sign | 0x7C00u);  // rounds to infinity
  if (a < std::ldexp(1.0, -14)) {                                       // subnormal (or rounds up to the least normal)
    const auto m = static_cast<std::uint16_t>(std::nearbyint(std::ldexp(a, 24)));
    return static_cast<std::uint16_t>(sign | m);
  }
  int e = 0;
  const double m = std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
  int exponent = e - 1 + 15;
  auto mantissa = static_cast<int>(std::nearbyint((2.0 * m - 1.0) * 1024.0));  // ties to even
  if (mantissa == 1024) {
    mantissa = 0;
    ++exponent;
  }
  if (exponent >= 31) return static_cast<std::uint16_t>(sign | 0x7C00u);
  return static_cast<std::uint16_t>(sign | (exponent << 10) | mantissa);
}

float bfloat16_to_float(std::uint16_t b) {
  const std::uint32_t bits = static_cast<std::uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

std::uint16_t float_to_bfloat16(float f) {
  std::uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  if (std::isnan(f)) return static_cast<std::uint16_t>((bits >> 16) | 0x0040u);
  bits += 0x7FFFu + ((bits >> 16) & 1u);  // round to nearest, ties to even
  return static_cast<std::uint16_t>(bits >> 16);
}

// One element on its way between dtypes: exact for every integer, a double for floats.
struct Value {
  enum Kind { Signed, Unsigned, Float } kind = Signed;
  std::int64_t i = 0;
  std::uint64_t u = 0;
  double f = 0;
};

template <class T>
T load_as(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

Value load(DType dtype, const std::byte* p) {
  Value v;
  switch (dtype) {
    case DType::Int8: v.i = load_as<std::int8_t>(p); break;
    case DType::Int16: v.i = load_as<std::int16_t>(p); break;
    case DType::Int32: v.i = load_as<std::int32_t>(p); break;
    case DType::Int64: v.i = load_as<std::int64_t>(p); break;
    case DType::Bool: v.i = load_as<std::uint8_t>(p) != 0 ? 1 : 0; break;
    case DType::UInt8: v.kind = Value::Unsigned, v.u = load_as<std::uint8_t>(p); break;
    case DType::UInt16: v.kind = Value::Unsigned, v.u = load_as<std::uint16_t>(p); break;
    case DType::UInt32: v.kind = Value::Unsigned, v.u = load_as<std::uint32_t>(p); break;
    case DType::UInt64: v.kind = Value::Unsigned, v.u = load_as<std::uint64_t>(p); break;
    case DType::Float32: v.kind = Value::Float, v.f = load_as<float>(p); break;
    case DType::Float64: v.kind = Value::Float, v.f = load_as<double>(p); break;
    case DType::Float16: v.kind = Value::Float, v.f = half_to_float(load_as<std::uint16_t>(p)); break;
    case DType::BFloat16: v.kind = Value::Float, v.f = bfloat16_to_float(load_as<std::uint16_t>(p)); break;
  }
  return v;
}

// The value clamped into [lo, hi] (integer targets of `bits` bits).
std::int64_t to_signed(const Value& v, std::int64_t lo, std::int64_t hi) {
  switch (v.kind) {
    case Value::Signed: return std::clamp(v.i, lo, hi);
    case Value::Unsigned: return v.u > static_cast<std::uint64_t>(hi) ? hi : static_cast<std::int64_t>(v.u);
    case Value::Float:
      if (std::isnan(v.f)) return 0;
      if (v.f <= static_cast<double>(lo)) return lo;
      if (v.f >= static_cast<double>(hi)) return hi;
      return static_cast<std::int64_t>(std::nearbyint(v.f));
  }
  return 0;
}

std::uint64_t to_unsigned(const Value& v, std::uint64_t hi) {
  switch (v.kind) {
    case Value::Signed: return v.i < 0 ? 0 : std::min(static_cast<std::uint64_t>(v.i), hi);
    case Value::Unsigned: return std::min(v.u, hi);
    case Value::Float:
      if (std::isnan(v.f) || v.f <= 0) return 0;
      if (v.f >= static_cast<double>(hi)) return hi;
      return static_cast<std::uint64_t>(std::nearbyint(v.f));
  }
  return 0;
}

double to_double(const Value& v) {
  switch (v.kind) {
    case Value::Signed: return static_cast<double>(v.i);
    case Value::Unsigned: return static_cast<double>(v.u);
    case Value::Float: return v.f;
  }
  return 0;
}

float to_float(const Value& v) {
  switch (v.kind) {
    case Value::Signed: return static_cast<float>(v.i);  // one rounding, not two through double
    case Value::Unsigned: return static_cast<float>(v.u);
    case Value::Float: return static_cast<float>(v.f);
  }
  return 0;
}

template <class T>
void store_as(std::byte* p, T v) {
  std::memcpy(p, &v, sizeof v);
}

template <class T>
void store_signed(std::byte* p, const Value& v) {
  store_as(p, static_cast<T>(to_signed(v, std::numeric_limits<T>::min(), std::numeric_limits<T>::max())));
}

template <class T>
void store_unsigned(std::byte* p, const Value& v) {
  store_as(p, static_cast<T>(to_unsigned(v, std::numeric_limits<T>::max())));
}

void store(DType dtype, std::byte* p, const Value& v) {
  switch (dtype) {
    case DType::Int8: store_signed<std::int8_t>(p, v); break;
    case DType::Int16: store_signed<std::int16_t>(p, v); break;
    case DType::Int32: store_signed<std::int32_t>(p, v); break;
    case DType::Int64: store_signed<std::int64_t>(p, v); break;
    case DType::UInt8: store_unsigned<std::uint8_t>(p, v); break;
    case DType::UInt16: store_unsigned<std::uint16_t>(p, v); break;
    case DType::UInt32: store_unsigned<std::uint32_t>(p, v); break;
    case DType::UInt64: store_unsigned<std::uint64_t>(p, v); break;
    case DType::Bool: {
      const bool b = v.kind == Value::Signed ? v.i != 0 : v.kind == Value::Unsigned ? v.u != 0 : v.f != 0;
      store_as<std::uint8_t>(p, b ? 1 : 0);
      break;
    }
    case DType::Float32: store_as(p, to_float(v)); break;
    case DType::Float64: store_as(p, to_double(v)); break;
    case DType::Float16: store_as(p, double_to_half(to_double(v))); break;
    case DType::BFloat16: store_as(p, float_to_bfloat16(to_float(v))); break;
  }
}

}  // namespace

void convert_elements(const void* src, DType from, void* dst, DType to, std::size_t count) {
  const std::size_t in = dtype_size(from), out = dtype_size(to);
  const auto* s = static_cast<const std::byte*>(src);
  auto* d = static_cast<std::byte*>(dst);
  if (from == to) {
    std::memcpy(d, s, count * in);
    return;
  }
  for (std::size_t k = 0; k < count; ++k) store(to, d + k * out, load(from, s + k * in));
}

}  // namespace detail::posix

// ---------------------------------------------------------------------------------------------
// The reader.

namespace {

namespace px = detail::posix;

constexpr std::size_t read_buffer_bytes = std::size_t{16} << 20;  // most bytes read at once through a buffer
constexpr std::uint64_t gap_bytes = std::uint64_t{256} << 10;     // smaller gaps are read over, not skipped
constexpr std::uint64_t direct_bytes = std::uint64_t{1} << 20;    // runs this large go straight to the caller

// True when the entry's pieces are stored compressed (a piece then decompresses to its region's
// bytes); otherwise they are stored as they lie in memory, and can be read straight to it.
bool stored_compressed(const EntryInfo& e) {
  return e.kind == EntryKind::Array && e.compression != Compression::None;
}

// Everything metadata.cairn holds.
struct Layout {
  Metadata metadata;
  std::uint32_t files = 0;
  std::vector<px::Piece> pieces;
};

// Decodes and checks metadata.cairn. Throws CorruptCheckpointError naming `path` (UnsupportedError
// for a newer layout).
Layout parse_layout(const std::vector<std::byte>& bytes, const std::string& path) {
  auto corrupt = [&](const std::string& why) { return CorruptCheckpointError("'" + path + "' is damaged: " + why); };
  constexpr std::size_t header = sizeof px::layout_magic + 4 + 4 + 8 + 8;
  if (bytes.size() < header + 8 + 8 || std::memcmp(bytes.data(), px::layout_magic, sizeof px::layout_magic) != 0)
    throw CorruptCheckpointError("'" + path + "' is not a Cairn posix metadata file (bad magic or too short)");
  std::uint64_t stored;
  std::memcpy(&stored, bytes.data() + bytes.size() - sizeof stored, sizeof stored);
  if (detail::checksum(bytes.data(), bytes.size() - sizeof stored) != stored)
    throw corrupt("checksum mismatch (damaged or truncated)");

  detail::ByteReader in(bytes.data() + sizeof px::layout_magic, bytes.size() - sizeof px::layout_magic - sizeof stored,
                        "'" + path + "'");
  const std::uint32_t version = in.u32();
  if (version > px::layout_version)
    throw UnsupportedError("'" + path + "' has posix layout version " + std::to_string(version) +
                           ", newer than this library's (" + std::to_string(px::layout_version) + ")");
  Layout out;
  out.files = in.u32();
  if (out.files < 1) throw corrupt("it records no rank files");
  (void)in.u64();  // the alignment the save used: not needed to read
  const std::uint64_t blob_size = in.u64();
  if (blob_size > in.remaining()) throw corrupt("the metadata blob runs past the end");
  std::vector<std::byte> blob(static_cast<std::size_t>(blob_size));
  in.raw(blob.data(), blob.size());
  out.metadata = detail::decode_metadata(blob.data(), blob.size(), "'" + path + "'");
  const Metadata& md = out.metadata;

  std::vector<std::int64_t> chunk_volume(md.entries.size(), 0), piece_volume(md.entries.size(), 0);
  for (const ChunkRecord& c : md.chunks)
    if (c.source.empty() && !detail::add_volume(chunk_volume[static_cast<std::size_t>(c.entry)], c.region.shape))
      throw corrupt("the chunks of entry '" + md.entries[static_cast<std::size_t>(c.entry)].name +
                    "' add up to more than 2^63 elements");
  const std::size_t n = in.count(36);
  out.pieces.reserve(n);
  constexpr auto max_offset = static_cast<std::uint64_t>(std::numeric_limits<off_t>::max());
  for (std::size_t i = 0; i < n; ++i) {
    px::Piece p;
    p.entry = in.i32();
    p.rank = in.i32();
    p.region = detail::decode_region(in);
    p.offset = in.u64();
    p.length = in.u64();
    const std::string what = "piece " + std::to_string(i);
    if (p.entry < 0 || static_cast<std::size_t>(p.entry) >= md.entries.size())
      throw corrupt(what + " names entry " + std::to_string(p.entry));
    if (p.rank < 0 || static_cast<std::uint32_t>(p.rank) >= out.files)
      throw corrupt(what + " names rank file " + std::to_string(p.rank) + " of " + std::to_string(out.files));
    const EntryInfo& e = md.entries[static_cast<std::size_t>(p.entry)];
    bool inside = p.region.shape.size() == e.global_shape.size();
    for (std::size_t d = 0; inside && d < e.global_shape.size(); ++d) {
      // Without additions, so that hostile values cannot overflow.
      const std::int64_t off = p.region.offset[d], ext = p.region.shape[d], extent = e.global_shape[d];
      inside = off >= 0 && ext >= 0 && ext <= extent && off <= extent - ext;
    }
    if (!inside) throw corrupt(what + " of entry '" + e.name + "' lies outside its global shape");
    std::int64_t elements = 0;
    if (!detail::add_volume(elements, p.region.shape)) throw corrupt(what + " of entry '" + e.name + "' is too large");
    const std::uint64_t esize = dtype_size(e.dtype);
    // A compressed piece's length is what it takes on disk; it decompresses to the region's bytes.
    const bool compressed = stored_compressed(e);
    if (static_cast<std::uint64_t>(elements) > std::numeric_limits<std::uint64_t>::max() / esize ||
        (compressed ? p.length == 0 && elements != 0 : p.length != static_cast<std::uint64_t>(elements) * esize))
      throw corrupt(what + " of entry '" + e.name + "' has " + std::to_string(p.length) + " bytes for " +
                    std::to_string(elements) + " elements");
    if (p.offset > max_offset || p.length > max_offset - p.offset)
      throw corrupt(what + " of entry '" + e.name + "' lies beyond the largest file offset");
    if (!detail::add_volume(piece_volume[static_cast<std::size_t>(p.entry)], p.region.shape))
      throw corrupt("the pieces of entry '" + e.name + "' add up to more than 2^63 elements");
    out.pieces.push_back(std::move(p));
  }
  if (in.remaining() != 0) throw corrupt("trailing bytes after the piece index");
  // Pieces and the chunk records of this checkpoint's own chunks cover the same elements (a
  // bounded save cuts chunks into pieces; an incremental one leaves out the referenced chunks).
  for (std::size_t e = 0; e < md.entries.size(); ++e)
    if (chunk_volume[e] != piece_volume[e])
      throw corrupt("entry '" + md.entries[e].name + "' has " + std::to_string(chunk_volume[e]) +
                    " elements in its chunk records but " + std::to_string(piece_volume[e]) + " in its pieces");
  return out;
}

std::vector<std::byte> read_metadata_file(const std::string& directory, const std::string& path) {
  struct stat st {};
  if (::stat(directory.c_str(), &st) != 0)
    throw StorageError("checkpoint '" + directory + "' cannot be opened: " + detail::errno_text(errno));
  if (!S_ISDIR(st.st_mode)) throw UsageError("checkpoint id '" + directory + "' is a file, not a checkpoint directory");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    throw StorageError("checkpoint '" + directory + "' has no readable posix metadata '" + path +
                       "': " + detail::errno_text(errno));
  std::vector<std::byte> bytes;
  int err = 0;
  if (::fstat(fd, &st) != 0) {
    err = errno;
  } else {
    bytes.resize(static_cast<std::size_t>(st.st_size));
    bytes.resize(detail::read_at(fd, bytes.data(), bytes.size(), 0, err));  // shorter: the checksum says so
  }
  ::close(fd);
  if (err != 0) throw StorageError("cannot read '" + path + "': " + detail::errno_text(err));
  return bytes;
}

class PosixReader final : public StorageReader {
 public:
  ~PosixReader() override { close(); }
  PosixReader() = default;
  // Node-local copies: each rank's directory holds only some rank files, so no rank checks them
  // all at open; a read that needs a file this node lacks fails naming it.
  explicit PosixReader(bool files_spread_over_nodes) : m_files_spread(files_spread_over_nodes) {}
  PosixReader(const PosixReader&) = delete;
  PosixReader& operator=(const PosixReader&) = delete;

  void open(const std::string& directory, ProcessGroup& group) override {
    close();
    m_group = &group;
    m_directory = directory;
    const std::string path = directory + "/" + px::metadata_file_name;
    std::vector<std::byte> bytes;
    Layout layout;
    // Rank 0 alone reads and checks the metadata and the rank files' sizes, then broadcasts.
    detail::agree_on(group, "opening posix checkpoint '" + directory + "'", [&] {
      if (group.rank() != 0) return;
      bytes = read_metadata_file(directory, path);
      layout = parse_layout(bytes, path);
      if (!m_files_spread) check_rank_files(layout);
    });
    detail::broadcast_bytes(group, bytes, 0);
    if (group.rank() != 0) layout = parse_layout(bytes, path);  // the bytes rank 0 checked
    m_metadata = std::move(layout.metadata);
    m_pieces = std::move(layout.pieces);
    m_inflated_piece = nullptr;
    m_by_entry.assign(m_metadata.entries.size(), {});
    for (std::size_t i = 0; i < m_pieces.size(); ++i)
      m_by_entry[static_cast<std::size_t>(m_pieces[i].entry)].push_back(i);
    m_fds.assign(layout.files, -1);
  }

  const Metadata& metadata() const override { return m_metadata; }

  void read(const std::vector<ReadRequest>& requests) override {
    std::exception_ptr failure;
    try {
      if (m_group == nullptr) throw UsageError("read from a posix checkpoint reader that was never opened");
      for (const ReadRequest& r : requests) read_one(r);
      m_direct.flush([this](int rank, std::byte* out, std::uint64_t bytes, std::uint64_t offset) {
        pread_all(rank, out, bytes, offset);
      });
    } catch (...) {
      m_direct.clear();
      failure = std::current_exception();
    }
    if (m_group == nullptr) std::rethrow_exception(failure);
    // Independent reads above; one agreement so that every rank reports the same outcome.
    detail::agree(*m_group, "reading posix checkpoint '" + m_directory + "'", failure);
  }

  void close() noexcept override {
    for (int& fd : m_fds) {
      if (fd >= 0) ::close(fd);
      fd = -1;
    }
    m_fds.clear();
    m_inflated_piece = nullptr;
    std::vector<std::byte>().swap(m_inflated);
  }

 private:
  std::string file_path(int rank) const { return m_directory + "/" + px::rank_data_file_name(rank); }

  // Rank 0 at open: every rank file exists and holds the pieces the index puts in it.
  void check_rank_files(const Layout& layout) const {
    std::vector<std::uint64_t> end(layout.files, 0);
    for (const px::Piece& p : layout.pieces)
      end[static_cast<std::size_t>(p.rank)] = std::max(end[static_cast<std::size_t>(p.rank)], p.offset + p.length);
    for (std::uint32_t r = 0; r < layout.files; ++r) {
      const std::string path = file_path(static_cast<int>(r));
      struct stat st {};
      if (::stat(path.c_str(), &st) != 0)
        throw StorageError("posix checkpoint '" + m_directory + "' lacks rank file '" + path + "' of rank " +
                           std::to_string(r) + ": " + detail::errno_text(errno));
      if (static_cast<std::uint64_t>(st.st_size) < end[r])
        throw CorruptCheckpointError("rank file '" + path + "' is truncated: " + std::to_string(st.st_size) +
                                     " bytes, its pieces end at " + std::to_string(end[r]));
    }
  }

  int fd_of(int rank) {
    int& fd = m_fds.at(static_cast<std::size_t>(rank));
    if (fd < 0) {
      fd = ::open(file_path(rank).c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0)
        throw StorageError("cannot open rank file '" + file_path(rank) + "' of rank " + std::to_string(rank) + ": " +
                           detail::errno_text(errno));
    }
    return fd;
  }

  void pread_all(int rank, std::byte* out, std::uint64_t bytes, std::uint64_t offset) {
    int error = 0;
    const std::size_t done = detail::read_at(fd_of(rank), out, static_cast<std::size_t>(bytes), offset, error);
    if (error != 0)
      throw StorageError("cannot read " + std::to_string(bytes) + " bytes at offset " + std::to_string(offset) +
                         " of rank file '" + file_path(rank) + "' of rank " + std::to_string(rank) + ": " +
                         detail::errno_text(error));
    if (done < bytes)
      throw CorruptCheckpointError("rank file '" + file_path(rank) + "' ends at byte " + std::to_string(offset + done) +
                                   ", before the pieces its index records (truncated?)");
  }

  // `bytes` of `piece` at `offset`, an offset into the rank file as if the piece were stored
  // uncompressed. A compressed piece is read and decompressed whole, once, and kept for the runs
  // that follow (a region's runs come piece by piece).
  void fetch(const px::Piece& piece, const EntryInfo& info, std::byte* out, std::uint64_t bytes, std::uint64_t offset) {
    if (!stored_compressed(info)) {
      pread_all(piece.rank, out, bytes, offset);
      return;
    }
    if (m_inflated_piece != &piece) {
      m_inflated_piece = nullptr;
      const auto logical = static_cast<std::size_t>(detail::volume(piece.region.shape)) * dtype_size(info.dtype);
      std::vector<std::byte> stored(static_cast<std::size_t>(piece.length));
      pread_all(piece.rank, stored.data(), piece.length, piece.offset);
      m_inflated.resize(logical);
      detail::decompress_exactly(info.compression, stored.data(), stored.size(), m_inflated.data(), logical,
                                 "a piece of '" + info.name + "' in rank file '" + file_path(piece.rank) +
                                     "' at byte " + std::to_string(piece.offset));
      m_inflated_piece = &piece;
    }
    std::memcpy(out, m_inflated.data() + (offset - piece.offset), static_cast<std::size_t>(bytes));
  }

  // A contiguous stretch of a piece in its file: `rows` indexes of dimension d0 (whole in the
  // dimensions after d0), landing at element `dest` of the request's row-major buffer.
  struct Run {
    std::uint64_t file_offset = 0;
    std::uint64_t bytes = 0;
    std::int64_t dest = 0;
    std::int64_t rows = 0;
  };

  void read_one(const ReadRequest& request) {
    if (request.entry < 0 || static_cast<std::size_t>(request.entry) >= m_by_entry.size())
      throw UsageError("a read request names entry " + std::to_string(request.entry) + " of checkpoint '" +
                       m_directory + "', which has " + std::to_string(m_by_entry.size()));
    const EntryInfo& info = m_metadata.entries[static_cast<std::size_t>(request.entry)];
    if (request.region.offset.size() != info.global_shape.size() ||
        request.region.shape.size() != info.global_shape.size())
      throw UsageError("a read request of entry '" + info.name + "' has the wrong number of dimensions");
    if (!dtype_is_valid(request.dtype))
      throw UsageError("a read request of entry '" + info.name + "' asks for an invalid dtype");
    // A 0-d entry is read as one element of a 1-d one.
    const bool scalar = info.global_shape.empty();
    const Region want = scalar ? Region{{0}, {1}} : request.region;
    for (std::size_t i : m_by_entry[static_cast<std::size_t>(request.entry)]) {
      const px::Piece& piece = m_pieces[i];
      const Region have = scalar ? Region{{0}, {1}} : piece.region;
      Region part;
      if (!detail::intersect(have, want, part)) continue;
      read_part(request, info, piece, have, want, part);
    }
  }

  void read_part(const ReadRequest& request, const EntryInfo& info, const px::Piece& piece, const Region& have,
                 const Region& want, const Region& part) {
    const std::size_t n = have.shape.size();
    const std::size_t in_size = dtype_size(info.dtype);
    const std::size_t out_size = dtype_size(request.dtype);
    const bool convert = request.dtype != info.dtype;
    const Extents piece_strides = detail::row_major_strides(have.shape);
    const Extents want_strides = detail::row_major_strides(want.shape);
    // d0: the first dimension after which the part spans the piece whole, so that every index of
    // the dimensions up to d0 starts one contiguous run of the file.
    std::size_t d0 = n - 1;
    while (d0 > 0 && part.shape[d0] == have.shape[d0]) --d0;
    const std::uint64_t row_bytes = static_cast<std::uint64_t>(piece_strides[d0]) * in_size;
    // Rows also contiguous in the destination: large runs are read into it in place.
    bool dest_contiguous = !convert;
    for (std::size_t k = d0 + 1; k < n; ++k) dest_contiguous = dest_contiguous && part.shape[k] == want.shape[k];
    const std::int64_t run_bytes = part.shape[d0] * static_cast<std::int64_t>(row_bytes);
    const bool in_place = dest_contiguous && static_cast<std::uint64_t>(run_bytes) >= direct_bytes;
    const std::int64_t rows_per_run =
        in_place ? part.shape[d0] : std::max<std::int64_t>(1, static_cast<std::int64_t>(read_buffer_bytes / row_bytes));

    std::vector<Run> runs;
    Extents index(d0, 0);  // odometer over the dimensions before d0
    while (true) {
      std::int64_t file_element = 0, dest_element = 0;
      for (std::size_t k = 0; k < n; ++k) {
        const std::int64_t at = part.offset[k] + (k < d0 ? index[k] : 0);
        file_element += (at - have.offset[k]) * piece_strides[k];
        dest_element += (at - want.offset[k]) * want_strides[k];
      }
      for (std::int64_t row = 0; row < part.shape[d0]; row += rows_per_run) {
        Run run;
        run.rows = std::min(rows_per_run, part.shape[d0] - row);
        run.file_offset = piece.offset + static_cast<std::uint64_t>(file_element + row * piece_strides[d0]) * in_size;
        run.bytes = static_cast<std::uint64_t>(run.rows) * row_bytes;
        run.dest = dest_element + row * want_strides[d0];
        runs.push_back(run);
      }
      std::size_t k = d0;
      while (k > 0 && ++index[k - 1] == part.shape[k - 1]) index[--k] = 0;
      if (k == 0) break;
    }

    auto* dest = static_cast<std::byte*>(request.destination);
    if (in_place) {
      const bool compressed = stored_compressed(info);
      for (const Run& run : runs) {
        std::byte* out = dest + run.dest * static_cast<std::int64_t>(out_size);
        if (!compressed)
          m_direct.add(piece.rank, out, run.bytes, run.file_offset);  // read at the end of read(), merged
        else
          fetch(piece, info, out, run.bytes, run.file_offset);
      }
      return;
    }
    // Coalesce neighbouring runs into one read through the buffer; copy (and convert) each out.
    Extents sub_shape(part.shape.begin() + static_cast<std::ptrdiff_t>(d0), part.shape.end());
    const Extents src_strides(piece_strides.begin() + static_cast<std::ptrdiff_t>(d0), piece_strides.end());
    const Extents dst_strides(want_strides.begin() + static_cast<std::ptrdiff_t>(d0), want_strides.end());
    std::size_t first = 0;
    while (first < runs.size()) {
      std::size_t last = first + 1;
      const std::uint64_t start = runs[first].file_offset;
      std::uint64_t end = start + runs[first].bytes;
      while (last < runs.size() && runs[last].file_offset >= end && runs[last].file_offset - end <= gap_bytes &&
             runs[last].file_offset + runs[last].bytes - start <= read_buffer_bytes) {
        end = runs[last].file_offset + runs[last].bytes;
        ++last;
      }
      if (m_buffer.size() < end - start) m_buffer.resize(static_cast<std::size_t>(end - start));
      fetch(piece, info, m_buffer.data(), end - start, start);
      for (std::size_t r = first; r < last; ++r) {
        const Run& run = runs[r];
        const std::byte* src = m_buffer.data() + (run.file_offset - start);
        if (convert) {
          const auto elements = static_cast<std::size_t>(run.bytes / in_size);
          if (m_converted.size() < elements * out_size) m_converted.resize(elements * out_size);
          px::convert_elements(src, info.dtype, m_converted.data(), request.dtype, elements);
          src = m_converted.data();
        }
        sub_shape[0] = run.rows;
        detail::strided_copy(src, src_strides, dest + run.dest * static_cast<std::int64_t>(out_size), dst_strides,
                             sub_shape, out_size);
      }
      first = last;
    }
  }

  bool m_files_spread = false;
  detail::CoalescedReads m_direct;  // in-place reads of the current read() call
  ProcessGroup* m_group = nullptr;
  std::string m_directory;
  Metadata m_metadata;
  std::vector<px::Piece> m_pieces;
  std::vector<std::vector<std::size_t>> m_by_entry;  // indexes into m_pieces
  std::vector<int> m_fds;                            // by rank file, opened on first use
  std::vector<std::byte> m_buffer;
  std::vector<std::byte> m_converted;
  const px::Piece* m_inflated_piece = nullptr;  // the piece m_inflated holds, decompressed
  std::vector<std::byte> m_inflated;
};

}  // namespace

std::unique_ptr<StorageReader> make_posix_reader() {
  return std::make_unique<PosixReader>();
}

std::unique_ptr<StorageReader> detail::posix::make_node_local_reader() {
  return std::make_unique<PosixReader>(true);
}

}  // namespace cairn
