// Writes the seed corpora of the fuzz targets: real metadata encoded with encode_metadata, a few
// damaged variants, and checkpoint descriptions for the opener (see opener_input.hpp).
//
//   fuzz_make_seeds <corpus directory>     # writes <dir>/metadata/* and <dir>/opener/*
//
// The committed seeds under fuzz/corpus were made with it; rerun it after a format change.
#include <cairn/storage.hpp>

#include "core/checksum.hpp"
#include "core/metadata_codec.hpp"
#include "fuzz_support.hpp"
#include "opener_input.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <variant>
#include <vector>

namespace {

using namespace cairn;
namespace fs = std::filesystem;
using Bytes = std::vector<std::byte>;

EntryInfo array(std::string name, DType dtype, Extents shape, Distribution distribution = Distribution::Sharded) {
  EntryInfo e;
  e.name = std::move(name);
  e.kind = EntryKind::Array;
  e.distribution = distribution;
  e.dtype = dtype;
  e.global_shape = std::move(shape);
  e.max_items_per_rank = 1;
  return e;
}

EntryInfo blob(std::string name, Distribution distribution, std::int64_t size,
               std::vector<std::int64_t> rank_offsets = {}) {
  EntryInfo e = array(std::move(name), DType::UInt8, {size}, distribution);
  e.kind = EntryKind::Bytes;
  e.rank_offsets = std::move(rank_offsets);
  return e;
}

EntryInfo scalar(std::string name, Distribution distribution, ScalarValue value, int world) {
  EntryInfo e;
  e.name = std::move(name);
  e.kind = EntryKind::Scalar;
  e.distribution = distribution;
  if (std::holds_alternative<double>(value)) {
    e.scalar_type = ScalarType::Float64;
    e.dtype = DType::Float64;
  } else if (std::holds_alternative<std::string>(value)) {
    e.scalar_type = ScalarType::String;
    e.dtype = DType::UInt8;
  } else {
    e.scalar_type = ScalarType::Int64;
    e.dtype = DType::Int64;
  }
  if (distribution == Distribution::RankLocal)
    e.global_shape = {world};
  else
    e.value = std::move(value);
  return e;
}

ChunkRecord chunk(std::int32_t entry, std::int32_t rank, Extents offset, Extents shape) {
  const auto sum = 0x9e3779b97f4a7c15ull * static_cast<std::uint64_t>(entry * 31 + rank + 1);
  return ChunkRecord{entry, rank, Region{std::move(offset), std::move(shape)}, sum, {}, 0, {}};
}

// `c` checksummed in blocks of `block_rows` rows (format 3), its checksum made of theirs.
ChunkRecord with_blocks(ChunkRecord c, std::int64_t block_rows) {
  c.block_rows = block_rows;
  c.block_checksums.clear();
  for (std::size_t b = 0; b < detail::checksum_block_count(c.region.shape.at(0), block_rows); ++b)
    c.block_checksums.push_back(c.checksum + 0x632be59bd9b4e019ull * (b + 1));
  c.checksum = detail::checksum_of_blocks(c.block_checksums);
  return c;
}

Metadata header(int world) {
  Metadata md;
  md.library_version = "0.1.0";
  md.world_size = world;
  md.created_unix_time = 1700000000;
  return md;
}

// A save of 4 ranks with every kind of entry a simulation holds.
Metadata full_metadata() {
  Metadata md = header(4);
  md.entries = {
      array("fields/temperature", DType::Float64, {8, 6}),
      array("fields/mask", DType::Bool, {4, 4, 2}),
      array("grid/coords", DType::Float32, {5}, Distribution::Replicated),
      array("particles/ids", DType::Int64, {10}),
      array("fields/half", DType::Float16, {3, 2}),
      array("fields/bhalf", DType::BFloat16, {2}),
      array("empty", DType::UInt16, {0}),
      array("zero_d", DType::Int32, {}),
      blob("rng", Distribution::RankLocal, 32, {0, 16, 16, 24, 32}),
      blob("config", Distribution::Replicated, 12),
      scalar("step", Distribution::Replicated, std::int64_t{42}, 4),
      scalar("time", Distribution::Replicated, 0.25, 4),
      scalar("units", Distribution::Replicated, std::string("kelvin"), 4),
      scalar("cursor", Distribution::RankLocal, std::int64_t{0}, 4),
      array("fields/pressure", DType::UInt32, {3, 2, 2, 2}),
  };
  md.entries[3].max_items_per_rank = 2;
  for (std::int32_t r = 0; r < 4; ++r) md.chunks.push_back(chunk(0, r, {2 * r, 0}, {2, 6}));
  md.chunks.push_back(chunk(1, 0, {0, 0, 0}, {2, 4, 2}));
  md.chunks.push_back(chunk(1, 1, {2, 0, 0}, {2, 4, 2}));
  md.chunks.push_back(chunk(2, 2, {0}, {5}));
  md.chunks.push_back(chunk(3, 0, {0}, {3}));
  md.chunks.push_back(with_blocks(chunk(3, 1, {3}, {4}), 3));
  md.chunks.push_back(chunk(3, 1, {7}, {3}));
  md.chunks.push_back(chunk(4, 3, {0, 0}, {3, 2}));
  md.chunks.push_back(chunk(5, 0, {0}, {2}));
  md.chunks.push_back(chunk(7, 0, {}, {}));
  md.chunks.push_back(chunk(8, 0, {0}, {16}));
  md.chunks.push_back(chunk(8, 2, {16}, {8}));
  md.chunks.push_back(chunk(8, 3, {24}, {8}));
  md.chunks.push_back(chunk(9, 1, {0}, {12}));
  for (std::int32_t r = 0; r < 4; ++r) md.chunks.push_back(chunk(13, r, {r}, {1}));
  md.chunks.push_back(with_blocks(chunk(14, 2, {0, 0, 0, 0}, {3, 2, 2, 2}), 2));
  return md;
}

// What rank `rank` of a save without collectives on `world` ranks records in its own file: its
// own entries (a rank-local blob has its own size) and chunks, in its own index space.
Metadata rank_file_metadata(int rank, int world) {
  Metadata md = header(world);
  const std::int64_t rows = 2 * world;
  md.entries = {
      array("fields/temperature", DType::Float64, {rows, 6}),
      blob("rng", Distribution::RankLocal, 8 + 4 * rank),
      scalar("step", Distribution::Replicated, std::int64_t{7}, world),
      scalar("cursor", Distribution::RankLocal, std::int64_t{0}, world),
      array("grid/coords", DType::Float32, {5}, Distribution::Replicated),
  };
  md.chunks.push_back(chunk(0, rank, {2 * rank, 0}, {2, 6}));
  md.chunks.push_back(chunk(1, rank, {0}, {8 + 4 * rank}));
  md.chunks.push_back(chunk(3, rank, {rank}, {1}));
  if (rank == 0) md.chunks.push_back(chunk(4, 0, {0}, {5}));
  return md;
}

// The chunk index of a rank file: one dataset per chunk record, or, with `split`, the first
// chunk cut into one dataset per row (as a bounded save writes it).
Bytes chunk_index(const Metadata& md, bool split) {
  std::vector<std::int64_t> values{0};
  auto add = [&](std::int32_t entry, const Region& region) {
    values.push_back(entry);
    values.push_back(static_cast<std::int64_t>(region.shape.size()));
    values.insert(values.end(), region.offset.begin(), region.offset.end());
    values.insert(values.end(), region.shape.begin(), region.shape.end());
    ++values[0];
  };
  for (std::size_t i = 0; i < md.chunks.size(); ++i) {
    const ChunkRecord& c = md.chunks[i];
    if (split && i == 0 && !c.region.shape.empty()) {
      for (std::int64_t row = 0; row < c.region.shape[0]; ++row) {
        Region piece = c.region;
        piece.offset[0] += row;
        piece.shape[0] = 1;
        add(c.entry, piece);
      }
    } else {
      add(c.entry, c.region);
    }
  }
  const auto* p = reinterpret_cast<const std::byte*>(values.data());
  return Bytes(p, p + values.size() * sizeof(std::int64_t));
}

std::vector<std::uint8_t> opener_input(std::uint8_t flags, const std::vector<Bytes>& sections) {
  std::vector<std::uint8_t> input{flags};
  for (const Bytes& s : sections) fuzz::append_section(input, s.data(), s.size());
  return input;
}

// An opener input of the rank-files layout: `files` rank files of a save on `world` ranks.
// An opener input of the rank-files layout with one rank file per element of `files`.
std::vector<std::uint8_t> rank_files_input(std::uint8_t flags, const std::vector<Metadata>& files, bool split) {
  std::vector<Bytes> sections;
  for (std::size_t r = 0; r < files.size(); ++r) {
    sections.push_back(detail::encode_metadata(files[r]));
    sections.push_back(chunk_index(files[r], split && r == 0));
  }
  return opener_input(static_cast<std::uint8_t>(flags | fuzz::rank_files_layout), sections);
}

// An opener input of the rank-files layout: `files` rank files of a save on `world` ranks.
std::vector<std::uint8_t> rank_files_input(std::uint8_t flags, int world, int files, bool split) {
  std::vector<Metadata> metadata;
  for (int r = 0; r < files; ++r) metadata.push_back(rank_file_metadata(r, world));
  return rank_files_input(flags, metadata, split);
}

// Rank files whose rank-local blob sizes add up to more than 2^63 bytes.
std::vector<Metadata> huge_blobs() {
  std::vector<Metadata> files;
  for (int r = 0; r < 2; ++r) {
    Metadata md = header(2);
    const std::int64_t size = r == 0 ? std::numeric_limits<std::int64_t>::max() - 8 : 16;
    md.entries = {blob("rng", Distribution::RankLocal, size)};
    md.chunks.push_back(chunk(0, r, {0}, {size}));
    files.push_back(std::move(md));
  }
  return files;
}

// A rank file with an array of 2^64 elements, which int64 cannot count.
std::vector<Metadata> huge_array() {
  Metadata md = header(1);
  const std::int64_t n = std::int64_t{1} << 32;
  md.entries = {array("huge", DType::UInt8, {n, n})};
  md.chunks.push_back(chunk(0, 0, {0, 0}, {n, n}));
  return {md};
}

void write(const fs::path& path, const void* data, std::size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!out) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::exit(1);
  }
}

void write(const fs::path& path, const Bytes& bytes) {
  write(path, bytes.data(), bytes.size());
}
void write(const fs::path& path, const std::vector<std::uint8_t>& bytes) {
  write(path, bytes.data(), bytes.size());
}

// `md` encoded, then changed by `damage`, with the checksum repaired when `repair`.
template <class Damage>
Bytes damaged(const Metadata& md, Damage damage, bool repair) {
  Bytes bytes = detail::encode_metadata(md);
  damage(bytes);
  if (repair) fuzz::repair_checksum(bytes);
  return bytes;
}

void metadata_seeds(const fs::path& dir) {
  const Metadata full = full_metadata();
  const Bytes good = detail::encode_metadata(full);
  write(dir / "full", good);
  write(dir / "empty", detail::encode_metadata(header(1)));
  write(dir / "rank_file", detail::encode_metadata(rank_file_metadata(1, 3)));
  write(dir / "truncated", Bytes(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(good.size() / 2)));
  write(dir / "bad_magic", damaged(
                               full, [](Bytes& b) { b[0] = std::byte{'X'}; }, true));
  write(dir / "future_version", damaged(
                                    full, [](Bytes& b) { b[8] = std::byte{9}; }, true));
  write(dir / "bad_checksum", damaged(
                                  full, [](Bytes& b) { b[b.size() / 2] ^= std::byte{0x40}; }, false));
  write(dir / "trailing_bytes", damaged(
                                    full, [](Bytes& b) { b.insert(b.end() - 8, std::byte{0}); }, true));

  Metadata outside = full;
  outside.chunks[0].region.offset = {7, 0};
  write(dir / "chunk_outside", detail::encode_metadata(outside));
  Metadata negative = full;
  negative.entries[1].global_shape = {4, -4, 2};
  write(dir / "negative_extent", detail::encode_metadata(negative));
  Metadata unknown = full;
  unknown.entries[2].dtype = static_cast<DType>(99);
  write(dir / "unknown_dtype", detail::encode_metadata(unknown));
  Metadata no_world = full;
  no_world.world_size = 0;
  write(dir / "zero_world", detail::encode_metadata(no_world));
  Metadata bad_rank = full;
  bad_rank.chunks[2].rank = 4;
  write(dir / "chunk_rank_out_of_range", detail::encode_metadata(bad_rank));
  Metadata bad_blocks = full;
  bad_blocks.chunks.back().block_checksums.back() ^= 1;  // no longer makes up the chunk's checksum
  write(dir / "block_checksums_mismatch", detail::encode_metadata(bad_blocks));
}

void opener_seeds(const fs::path& dir) {
  using namespace fuzz;
  const Bytes good = detail::encode_metadata(full_metadata());
  Bytes bad_sum = good;
  bad_sum[bad_sum.size() / 3] ^= std::byte{1};
  write(dir / "shared_full", opener_input(repair_checksums | create_datasets, {good}));
  write(dir / "shared_no_datasets", opener_input(repair_checksums, {good}));
  write(dir / "shared_skewed", opener_input(repair_checksums | create_datasets | skew_shapes, {good}));
  write(dir / "shared_metadata_2d", opener_input(repair_checksums | create_datasets | metadata_2d, {good}));
  write(dir / "shared_bad_checksum", opener_input(create_datasets, {bad_sum}));
  write(dir / "shared_empty", opener_input(0, {}));
  const auto rc = static_cast<std::uint8_t>(repair_checksums | create_datasets);
  write(dir / "rank_files_4", rank_files_input(rc, 4, 4, false));
  write(dir / "rank_files_1", rank_files_input(rc, 1, 1, false));
  write(dir / "rank_files_2_split", rank_files_input(rc, 2, 2, true));
  write(dir / "rank_files_no_rank_attribute", rank_files_input(rc | omit_rank_attribute, 2, 2, false));
  write(dir / "rank_files_wrong_rank", rank_files_input(rc | wrong_rank_attribute, 2, 2, false));
  write(dir / "rank_files_missing_file", rank_files_input(rc, 3, 2, false));
  write(dir / "rank_files_skewed", rank_files_input(rc | skew_shapes, 2, 2, false));
  write(dir / "rank_files_no_datasets", rank_files_input(repair_checksums, 2, 2, false));
  write(dir / "rank_files_blob_sizes_overflow", rank_files_input(rc, huge_blobs(), false));
  write(dir / "rank_files_volume_overflow", rank_files_input(rc, huge_array(), false));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus directory>\n", argv[0]);
    return 2;
  }
  const fs::path root(argv[1]);
  fs::create_directories(root / "metadata");
  fs::create_directories(root / "opener");
  metadata_seeds(root / "metadata");
  opener_seeds(root / "opener");
  std::printf("seeds written under %s\n", root.c_str());
  return 0;
}
