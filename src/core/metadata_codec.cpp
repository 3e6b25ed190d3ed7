#include "core/metadata_codec.hpp"

#include <cairn/error.hpp>

#include "core/checksum.hpp"

#include <algorithm>
#include <cstring>

namespace cairn::detail {

namespace {
constexpr char metadata_magic[8] = {'C', 'A', 'I', 'R', 'N', 'M', 'D', '\0'};
constexpr std::size_t max_rank = 64;  // dimensions; HDF5's own limit is 32
}  // namespace

void encode_region(ByteWriter& out, const Region& region) {
  out.i64s(region.offset);
  out.i64s(region.shape);
}

Region decode_region(ByteReader& in) {
  Region r;
  r.offset = in.i64s();
  r.shape = in.i64s();
  if (r.offset.size() != r.shape.size()) in.fail("a region's offset and shape differ in rank");
  return r;
}

void encode_entry_info(ByteWriter& out, const EntryInfo& e, bool with_value) {
  out.str(e.name);
  out.u8(static_cast<std::uint8_t>(e.kind));
  out.u8(static_cast<std::uint8_t>(e.distribution));
  out.u8(static_cast<std::uint8_t>(e.dtype));
  out.u8(static_cast<std::uint8_t>(e.scalar_type));
  out.i64s(e.global_shape);
  out.i64s(e.rank_offsets);
  out.i32(e.max_items_per_rank);
  if (!with_value) return;
  out.u8(static_cast<std::uint8_t>(e.value.index()));
  if (auto* i = std::get_if<std::int64_t>(&e.value)) out.i64(*i);
  if (auto* d = std::get_if<double>(&e.value)) out.f64(*d);
  if (auto* s = std::get_if<std::string>(&e.value)) out.str(*s);
}

EntryInfo decode_entry_info(ByteReader& in, bool with_value) {
  EntryInfo e;
  e.name = in.str();
  const std::uint8_t kind = in.u8();
  const std::uint8_t distribution = in.u8();
  const std::uint8_t dtype = in.u8();
  const std::uint8_t scalar_type = in.u8();
  if (kind > 2) in.fail("entry '" + e.name + "' has unknown kind " + std::to_string(kind));
  if (distribution > 2) in.fail("entry '" + e.name + "' has unknown distribution " + std::to_string(distribution));
  if (!dtype_is_valid(static_cast<DType>(dtype)))
    in.fail("entry '" + e.name + "' has unknown dtype " + std::to_string(dtype));
  if (scalar_type > 3) in.fail("entry '" + e.name + "' has unknown scalar type " + std::to_string(scalar_type));
  e.kind = static_cast<EntryKind>(kind);
  e.distribution = static_cast<Distribution>(distribution);
  e.dtype = static_cast<DType>(dtype);
  e.scalar_type = static_cast<ScalarType>(scalar_type);
  e.global_shape = in.i64s();
  if (e.global_shape.size() > max_rank) in.fail("entry '" + e.name + "' has too many dimensions");
  for (std::int64_t extent : e.global_shape)
    if (extent < 0) in.fail("entry '" + e.name + "' has a negative extent");
  e.rank_offsets = in.i64s();
  e.max_items_per_rank = in.i32();
  if (!with_value) return e;
  switch (in.u8()) {
    case 0: break;
    case 1: e.value = in.i64(); break;
    case 2: e.value = in.f64(); break;
    case 3: e.value = in.str(); break;
    default: in.fail("entry '" + e.name + "' has an unknown value type");
  }
  return e;
}

std::vector<std::byte> encode_metadata(const Metadata& md) {
  ByteWriter out;
  {
    // One allocation for the whole blob: its size, but for scalar values, is known in advance.
    std::size_t estimate = sizeof metadata_magic + 64 + md.library_version.size();
    for (const EntryInfo& e : md.entries)
      estimate += 48 + e.name.size() + 8 * (e.global_shape.size() + e.rank_offsets.size());
    for (const ChunkRecord& c : md.chunks) estimate += 40 + 8 * (c.region.offset.size() + c.region.shape.size());
    out.bytes().reserve(estimate);
  }
  out.raw(metadata_magic, sizeof metadata_magic);
  // At least the current format, whose fields are written below (a test may ask for a future one).
  out.u32(std::max(md.format_version, format_version));
  out.str(md.library_version);
  out.i32(md.world_size);
  out.i64(md.created_unix_time);
  out.u64(md.entries.size());
  for (const EntryInfo& e : md.entries) encode_entry_info(out, e, true);
  out.u64(md.chunks.size());
  for (const ChunkRecord& c : md.chunks) {
    out.i32(c.entry);
    out.i32(c.rank);
    encode_region(out, c.region);
    out.u64(c.checksum);
  }
  // Version 2: what version 1 lacks, after all of it.
  for (const EntryInfo& e : md.entries) {
    out.u8(static_cast<std::uint8_t>(e.compression));
    out.i32(e.compression_level);
  }
  for (const ChunkRecord& c : md.chunks) out.str(c.source);
  // Version 3: block checksums of large chunks (one byte for a chunk without).
  for (const ChunkRecord& c : md.chunks) {
    out.u8(c.block_rows != 0 ? 1 : 0);
    if (c.block_rows == 0) continue;
    out.i64(c.block_rows);
    out.u64(c.block_checksums.size());
    for (std::uint64_t b : c.block_checksums) out.u64(b);
  }
  const std::uint64_t sum = checksum(out.bytes().data(), out.bytes().size());
  out.u64(sum);
  return std::move(out.bytes());
}

Metadata decode_metadata(const std::byte* data, std::size_t size, const std::string& source) {
  const std::string what = "Cairn metadata in " + source;
  if (size < sizeof metadata_magic + 4 + 8 || std::memcmp(data, metadata_magic, sizeof metadata_magic) != 0)
    throw CorruptCheckpointError(what + ": not Cairn metadata (bad magic or too short)");
  ByteReader header(data + sizeof metadata_magic, size - sizeof metadata_magic, what);
  const std::uint32_t version = header.u32();
  if (version > format_version)
    throw UnsupportedError(what + ": format version " + std::to_string(version) + " is newer than this library's (" +
                           std::to_string(format_version) + "); upgrade Cairn to read it");
  std::uint64_t stored_sum;
  std::memcpy(&stored_sum, data + size - sizeof stored_sum, sizeof stored_sum);
  if (checksum(data, size - sizeof stored_sum) != stored_sum)
    throw CorruptCheckpointError(what + ": checksum mismatch (the metadata is damaged)");

  ByteReader in(data + sizeof metadata_magic, size - sizeof metadata_magic - sizeof stored_sum, what);
  Metadata md;
  md.format_version = in.u32();
  md.library_version = in.str();
  md.world_size = in.i32();
  if (md.world_size < 1) in.fail("world size " + std::to_string(md.world_size) + " is not positive");
  md.created_unix_time = in.i64();
  const std::size_t n_entries = in.count(16);
  md.entries.reserve(n_entries);
  for (std::size_t i = 0; i < n_entries; ++i) md.entries.push_back(decode_entry_info(in, true));
  const std::size_t n_chunks = in.count(32);
  md.chunks.reserve(n_chunks);
  for (std::size_t i = 0; i < n_chunks; ++i) {
    ChunkRecord c;
    c.entry = in.i32();
    c.rank = in.i32();
    c.region = decode_region(in);
    c.checksum = in.u64();
    if (c.entry < 0 || static_cast<std::size_t>(c.entry) >= md.entries.size())
      in.fail("chunk " + std::to_string(i) + " names entry " + std::to_string(c.entry) + " of " +
              std::to_string(md.entries.size()));
    if (c.rank < 0 || c.rank >= md.world_size)
      in.fail("chunk " + std::to_string(i) + " has rank " + std::to_string(c.rank));
    const EntryInfo& e = md.entries[static_cast<std::size_t>(c.entry)];
    bool inside = c.region.shape.size() == e.global_shape.size();
    for (std::size_t d = 0; inside && d < e.global_shape.size(); ++d) {
      // Written without additions so that hostile values cannot overflow.
      const std::int64_t off = c.region.offset[d], ext = c.region.shape[d], n = e.global_shape[d];
      inside = off >= 0 && ext >= 0 && ext <= n && off <= n - ext;
    }
    if (!inside) in.fail("chunk " + std::to_string(i) + " of '" + e.name + "' lies outside its global shape");
    md.chunks.push_back(std::move(c));
  }
  if (md.format_version >= 2) {
    for (EntryInfo& e : md.entries) {
      const std::uint8_t method = in.u8();
      if (method > static_cast<std::uint8_t>(Compression::Zstd))
        in.fail("entry '" + e.name + "' has unknown compression " + std::to_string(method));
      e.compression = static_cast<Compression>(method);
      e.compression_level = in.i32();
    }
    for (ChunkRecord& c : md.chunks) {
      c.source = in.str();
      // A reference names a sibling checkpoint: "../<name>", never a path that leaves the root.
      if (!c.source.empty() &&
          (c.source.rfind("../", 0) != 0 || c.source.size() <= 3 || c.source.find('/', 3) != std::string::npos ||
           c.source == "../.." || c.source == "../."))
        in.fail("a chunk of '" + md.entries[static_cast<std::size_t>(c.entry)].name + "' refers to '" + c.source +
                "', not to a sibling checkpoint");
    }
  }
  if (md.format_version >= 3)
    for (std::size_t i = 0; i < md.chunks.size(); ++i) {
      ChunkRecord& c = md.chunks[i];
      const std::uint8_t has_blocks = in.u8();
      if (has_blocks == 0) continue;
      if (has_blocks != 1) in.fail("chunk " + std::to_string(i) + " has an unknown block marker");
      c.block_rows = in.i64();
      const std::string which =
          "chunk " + std::to_string(i) + " of '" + md.entries[static_cast<std::size_t>(c.entry)].name + "'";
      const std::int64_t rows = c.region.shape.empty() ? 0 : c.region.shape[0];
      if (c.block_rows < 0 || rows < 2 || c.block_rows >= rows)
        in.fail(which + " has blocks of " + std::to_string(c.block_rows) + " rows for its " + std::to_string(rows));
      const std::size_t n = in.count(sizeof(std::uint64_t));
      if (n != checksum_block_count(rows, c.block_rows))
        in.fail(which + " records " + std::to_string(n) + " block checksums for " +
                std::to_string(checksum_block_count(rows, c.block_rows)) + " blocks");
      c.block_checksums.resize(n);
      for (std::uint64_t& b : c.block_checksums) b = in.u64();
      // The chunk checksum is the blocks': a record whose two disagree was not written by Cairn.
      if (checksum_of_blocks(c.block_checksums) != c.checksum)
        in.fail(which + ": its block checksums do not make up its checksum");
    }
  if (in.remaining() != 0) in.fail("trailing bytes after the chunk table");
  return md;
}

}  // namespace cairn::detail

namespace cairn {

const EntryInfo* Metadata::find(const std::string& name) const noexcept {
  for (const EntryInfo& e : entries)
    if (e.name == name) return &e;
  return nullptr;
}

}  // namespace cairn
