// Unit tests of the core and plan layers: names, dtypes, regions, copies, the metadata codec and
// the default planner's cross-rank checks, the storage layer's read coalescing. No MPI launch.
#include <cairn/cairn.hpp>

#include "core/byte_codec.hpp"
#include "core/checksum.hpp"
#include "core/metadata_codec.hpp"
#include "core/names.hpp"
#include "core/region.hpp"
#include "core/strided_copy.hpp"
#include "stage/staging.hpp"
#include "storage/common/coalesced_reads.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <numeric>

using namespace cairn;
using namespace cairn::detail;

TEST(Names, Validity) {
  EXPECT_EQ(name_problem("fields/temperature"), "");
  EXPECT_NE(name_problem(""), "");
  EXPECT_NE(name_problem("/a"), "");
  EXPECT_NE(name_problem("a/"), "");
  EXPECT_NE(name_problem("a//b"), "");
  EXPECT_NE(name_problem("a/../b"), "");
  EXPECT_NE(name_problem("_cairn/metadata"), "");
  EXPECT_EQ(name_problem("_cairnish"), "");
}

TEST(Names, GroupCollisions) {
  EXPECT_EQ(group_collision({"a", "b", "a-x", "c/d"}), "");
  EXPECT_NE(group_collision({"a/b/c", "z", "a/b"}), "");
  EXPECT_NE(group_collision({"a", "a-x", "a/b"}), "");
  EXPECT_EQ(parent_groups("a/b/c"), (std::vector<std::string>{"a", "a/b"}));
  EXPECT_EQ(leaf_name("a/b/c"), "c");
}

TEST(DTypes, SizesNamesConversions) {
  EXPECT_EQ(dtype_size(DType::BFloat16), 2u);
  EXPECT_EQ(dtype_size(DType::Bool), 1u);
  EXPECT_EQ(dtype_name(DType::Float16), "float16");
  EXPECT_FALSE(dtype_is_valid(static_cast<DType>(42)));
  EXPECT_THROW(dtype_size(static_cast<DType>(42)), UsageError);
  EXPECT_TRUE(dtype_converts_losslessly(DType::Int32, DType::Int64));
  EXPECT_TRUE(dtype_converts_losslessly(DType::Int32, DType::Float64));
  EXPECT_FALSE(dtype_converts_losslessly(DType::Int64, DType::Float64));
  EXPECT_TRUE(dtype_converts_losslessly(DType::UInt16, DType::Int32));
  EXPECT_FALSE(dtype_converts_losslessly(DType::Int16, DType::UInt32));
  EXPECT_TRUE(dtype_converts_losslessly(DType::Float16, DType::Float32));
  EXPECT_TRUE(dtype_converts_losslessly(DType::BFloat16, DType::Float32));
  EXPECT_FALSE(dtype_converts_losslessly(DType::BFloat16, DType::Float16));
  EXPECT_FALSE(dtype_converts_losslessly(DType::Float64, DType::Float32));
  EXPECT_FALSE(dtype_converts_losslessly(DType::Bool, DType::Int8));
}

TEST(Regions, OverlapSweep) {
  std::vector<Region> disjoint;
  for (int i = 0; i < 100; ++i) disjoint.push_back(Region{{(i % 10) * 4, (i / 10) * 3}, {4, 3}});
  std::size_t a = 0, b = 0;
  EXPECT_FALSE(find_overlap(disjoint, a, b));
  disjoint.push_back(Region{{5, 5}, {1, 1}});
  ASSERT_TRUE(find_overlap(disjoint, a, b));
  EXPECT_TRUE(overlaps(disjoint[a], disjoint[b]));
}

TEST(Regions, RowMajorSlicesFollowRowMajorOrderWithinTheLimit) {
  const Region region{{2, 1, 3}, {5, 4, 6}};
  for (std::size_t limit :
       {std::size_t{8}, std::size_t{40}, std::size_t{48}, std::size_t{200}, std::size_t{1000}, std::size_t{1} << 20}) {
    const std::vector<Region> slices = detail::row_major_slices(region, 8, limit);
    // Concatenated, the slices visit every element once, in the region's row-major order.
    std::vector<Extents> visited;
    for (const Region& s : slices) {
      EXPECT_TRUE(detail::contains(region, s));
      EXPECT_LE(static_cast<std::size_t>(detail::volume(s.shape)) * 8, std::max<std::size_t>(limit, 8));
      for (std::int64_t i = 0; i < s.shape[0]; ++i)
        for (std::int64_t j = 0; j < s.shape[1]; ++j)
          for (std::int64_t k = 0; k < s.shape[2]; ++k)
            visited.push_back({s.offset[0] + i, s.offset[1] + j, s.offset[2] + k});
    }
    std::vector<Extents> expected;
    for (std::int64_t i = 0; i < 5; ++i)
      for (std::int64_t j = 0; j < 4; ++j)
        for (std::int64_t k = 0; k < 6; ++k) expected.push_back({2 + i, 1 + j, 3 + k});
    EXPECT_EQ(visited, expected) << "limit " << limit;
  }
  EXPECT_EQ(detail::row_major_slices(region, 8, std::size_t{1} << 20).size(), 1U);
  EXPECT_EQ(detail::row_major_slices(region, 8, 48).size(), 20U);  // one row of the last dimension each
  EXPECT_TRUE(detail::row_major_slices(Region{{0}, {0}}, 8, 64).empty());
  EXPECT_EQ(detail::row_major_slices(Region{{}, {}}, 8, 64).size(), 1U);  // 0-d: one element
}

TEST(StridedCopy, ColumnMajorToRowMajorAndBack) {
  // A 3x4 column-major chunk read as row-major.
  std::vector<int> col(12);
  std::iota(col.begin(), col.end(), 0);  // col[i + 3*j] = element (i, j)
  Chunk chunk{{0, 0}, {3, 4}, col.data(), Layout::ColumnMajor, {}};
  std::vector<int> row(12, -1);
  strided_copy(col.data(), chunk_strides(chunk), row.data(), row_major_strides({3, 4}), {3, 4}, sizeof(int));
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j) EXPECT_EQ(row[static_cast<std::size_t>(i * 4 + j)], i + 3 * j);
  std::vector<int> col_back(12, -1);
  strided_copy(row.data(), row_major_strides({3, 4}), col_back.data(), chunk_strides(chunk), {3, 4}, sizeof(int));
  EXPECT_EQ(col_back, col);
}

TEST(MetadataCodec, RoundTripAndDamage) {
  Metadata md;
  md.library_version = "0.1.0";
  md.world_size = 3;
  md.created_unix_time = 1700000000;
  EntryInfo e;
  e.name = "fields/t";
  e.dtype = DType::Float32;
  e.global_shape = {4, 5};
  md.entries.push_back(e);
  EntryInfo s;
  s.name = "step";
  s.kind = EntryKind::Scalar;
  s.distribution = Distribution::Replicated;
  s.scalar_type = ScalarType::String;
  s.value = std::string("hello");
  md.entries.push_back(s);
  md.chunks.push_back(ChunkRecord{0, 2, Region{{0, 0}, {1, 5}}, 0x1234, {}, 0, {}});
  const std::vector<std::uint64_t> blocks{0xa1, 0xb2};  // rows 1-2 and row 3
  md.chunks.push_back(ChunkRecord{0, 1, Region{{1, 0}, {3, 5}}, checksum_of_blocks(blocks), {}, 2, blocks});
  std::vector<std::byte> blob = encode_metadata(md);
  Metadata back = decode_metadata(blob.data(), blob.size(), "test");
  EXPECT_EQ(back.format_version, format_version);
  EXPECT_EQ(back.world_size, 3);
  ASSERT_EQ(back.entries.size(), 2u);
  EXPECT_EQ(std::get<std::string>(back.entries[1].value), "hello");
  ASSERT_EQ(back.chunks.size(), 2u);
  EXPECT_EQ(back.chunks[0].checksum, 0x1234u);
  EXPECT_EQ(back.chunks[0].block_rows, 0);
  EXPECT_TRUE(back.chunks[0].block_checksums.empty());
  EXPECT_EQ(back.chunks[1].region, (Region{{1, 0}, {3, 5}}));
  EXPECT_EQ(back.chunks[1].block_rows, 2);
  EXPECT_EQ(back.chunks[1].block_checksums, blocks);

  // Block checksums that do not make up the chunk's, or do not fit its rows, are refused.
  for (auto edit : std::vector<std::function<void(ChunkRecord&)>>{
           [](ChunkRecord& c) { c.block_checksums[1] ^= 1; }, [](ChunkRecord& c) { c.block_checksums.pop_back(); },
           [](ChunkRecord& c) { c.block_rows = 3; }, [](ChunkRecord& c) { c.block_rows = -1; }}) {
    Metadata wrong = md;
    edit(wrong.chunks[1]);
    const std::vector<std::byte> bytes = encode_metadata(wrong);
    EXPECT_THROW(decode_metadata(bytes.data(), bytes.size(), "test"), CorruptCheckpointError);
  }

  for (std::size_t i = 0; i < blob.size(); i += 7) {  // any flipped byte is detected
    std::vector<std::byte> bad = blob;
    bad[i] ^= std::byte{0x40};
    EXPECT_THROW(decode_metadata(bad.data(), bad.size(), "test"), Error) << "byte " << i;
  }
  for (std::size_t n = 0; n < blob.size(); n += 5)  // any truncation is detected
    EXPECT_THROW(decode_metadata(blob.data(), n, "test"), Error) << "length " << n;
  md.format_version = format_version + 1;
  std::vector<std::byte> future = encode_metadata(md);
  EXPECT_THROW(decode_metadata(future.data(), future.size(), "test"), UnsupportedError);
}

// Checkpoints written by older formats (here 1, before compression, references and block
// checksums) still decode: no chunk has blocks.
TEST(Metadata, OlderFormatsStillDecode) {
  std::ifstream in(std::string(CAIRN_FUZZ_CORPUS) + "/metadata/full_format1", std::ios::binary);
  ASSERT_TRUE(in) << "cannot open the format 1 seed";
  std::vector<char> text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> blob(text.size());
  std::memcpy(blob.data(), text.data(), text.size());
  const Metadata md = decode_metadata(blob.data(), blob.size(), "the format 1 seed");
  EXPECT_EQ(md.format_version, 1u);
  EXPECT_EQ(md.world_size, 4);
  ASSERT_FALSE(md.chunks.empty());
  for (const ChunkRecord& c : md.chunks) {
    EXPECT_EQ(c.block_rows, 0);
    EXPECT_TRUE(c.block_checksums.empty());
  }
  // Written back in the current format, it reads the same.
  const std::vector<std::byte> again = encode_metadata(md);
  const Metadata back = decode_metadata(again.data(), again.size(), "re-encoded");
  EXPECT_EQ(back.format_version, format_version);
  EXPECT_EQ(back.chunks.size(), md.chunks.size());
}

TEST(Checksums, LargeChunksAreCheckedInBlocksOfWholeRowsSmallOnesWhole) {
  const std::size_t mib = std::size_t{1} << 20;
  EXPECT_EQ(checksum_block_rows({1023, 1024}, 8), 0);    // under 8 MiB: under two blocks
  EXPECT_EQ(checksum_block_rows({1025, 1024}, 8), 512);  // two 4 MiB blocks and a row
  EXPECT_EQ(checksum_block_rows({1}, 64 * mib), 0);      // one row
  EXPECT_EQ(checksum_block_rows({}, 8), 0);              // 0-d
  // 256 MiB in 16 blocks of 16 MiB; a row that does not divide it rounds the block up.
  EXPECT_EQ(checksum_block_rows({32 * 1024, 1024}, 8), 2048);
  EXPECT_EQ(checksum_block_rows({3000, 1000, 11}, 8), 188);
  EXPECT_EQ(checksum_block_count(3000, 188), 16u);
  EXPECT_EQ(checksum_block_bytes({3000, 1000, 11}, 188, 8), 188u * 1000 * 11 * 8);
  EXPECT_EQ(checksum_block_count(4, 0), 0u);
}

TEST(Checksums, ChunkHasherTakesPiecesOfAnySize) {
  std::vector<unsigned char> bytes(10'000);
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<unsigned char>(i * 7919 % 251);
  const std::size_t block = 3'000;  // blocks 0-2 of 3000 bytes, block 3 of 1000
  std::vector<std::uint64_t> expected;
  for (std::size_t at = 0; at < bytes.size(); at += block)
    expected.push_back(checksum(bytes.data() + at, std::min(block, bytes.size() - at)));
  for (std::size_t piece : {1u, 7u, 1000u, 2999u, 3000u, 3001u, 10'000u}) {
    ChunkHasher blocks(block), whole;
    for (std::size_t at = 0; at < bytes.size(); at += piece) {
      blocks.update(bytes.data() + at, std::min(piece, bytes.size() - at));
      whole.update(bytes.data() + at, std::min(piece, bytes.size() - at));
    }
    EXPECT_EQ(blocks.block_checksums(), expected) << "pieces of " << piece;
    EXPECT_EQ(blocks.digest(), checksum_of_blocks(expected)) << "pieces of " << piece;
    EXPECT_EQ(whole.digest(), checksum(bytes.data(), bytes.size())) << "pieces of " << piece;
    EXPECT_TRUE(whole.block_checksums().empty());
  }
  // The chunk checksum depends on every block's, in order.
  std::vector<std::uint64_t> swapped{expected[1], expected[0], expected[2], expected[3]};
  EXPECT_NE(checksum_of_blocks(swapped), checksum_of_blocks(expected));
}

TEST(DefaultPlanner, CrossRankChecks) {
  DefaultPlanner planner;
  auto local = [&](DType dtype, Extents shape, Extents offset, Extents extent, int rank) {
    std::vector<double> dummy(1);
    State s;
    s.add_array("x", dtype, shape).add_chunk(offset, extent, dummy.data());
    return planner.create_local_plan(s, rank, 2);
  };
  GlobalPlan ok =
      planner.create_global_plan({local(DType::Float64, {8}, {0}, {4}, 0), local(DType::Float64, {8}, {4}, {4}, 1)});
  ASSERT_EQ(ok.items_per_rank.size(), 2u);
  EXPECT_EQ(ok.items_per_rank[1][0].region, (Region{{4}, {4}}));
  EXPECT_EQ(ok.entries[0].max_items_per_rank, 1);
  EXPECT_THROW(
      planner.create_global_plan({local(DType::Float64, {8}, {0}, {5}, 0), local(DType::Float64, {8}, {4}, {4}, 1)}),
      UsageError);
  EXPECT_THROW(
      planner.create_global_plan({local(DType::Float64, {8}, {0}, {4}, 0), local(DType::Float32, {8}, {4}, {4}, 1)}),
      UsageError);
  EXPECT_THROW(
      planner.create_global_plan({local(DType::Float64, {8}, {0}, {4}, 0), local(DType::Float64, {9}, {4}, {4}, 1)}),
      UsageError);
}

TEST(Staging, PiecesCoverEveryItemOnceInRowMajorOrderWithinTheBudget) {
  SavePlan plan;
  EntryInfo info;
  info.name = "a";
  info.dtype = DType::Float64;
  info.global_shape = {7, 9, 11};
  plan.entries.push_back(info);
  plan.items.push_back(WriteItem{0, 0, Region{{1, 2, 3}, {5, 6, 7}}, {1, 2, 3}});  // 1,680 bytes
  plan.items.push_back(WriteItem{0, 1, Region{{0, 0, 0}, {1, 1, 2}}, {0, 0, 0}});  // 16 bytes
  for (std::size_t piece_bytes : {std::size_t{64}, std::size_t{128}, std::size_t{448}, std::size_t{4096}}) {
    const std::vector<Piece> pieces = split_into_pieces(plan, piece_bytes);
    std::vector<Extents> seen;  // every element, in the order the pieces deliver them
    std::vector<std::size_t> owner;
    for (const Piece& piece : pieces) {
      EXPECT_LE(piece.bytes, piece_bytes);
      for (std::size_t k = 0; k < piece.items.size(); ++k) {
        const Region& r = piece.items[k].region;
        for (std::int64_t i = 0; i < r.shape[0]; ++i)
          for (std::int64_t j = 0; j < r.shape[1]; ++j)
            for (std::int64_t l = 0; l < r.shape[2]; ++l) {
              seen.push_back({r.offset[0] + i, r.offset[1] + j, r.offset[2] + l});
              owner.push_back(piece.plan_item[k]);
            }
      }
    }
    // Item 0's elements in row-major order, then item 1's.
    std::vector<Extents> expected;
    for (const WriteItem& item : plan.items)
      for (std::int64_t i = 0; i < item.region.shape[0]; ++i)
        for (std::int64_t j = 0; j < item.region.shape[1]; ++j)
          for (std::int64_t l = 0; l < item.region.shape[2]; ++l)
            expected.push_back({item.region.offset[0] + i, item.region.offset[1] + j, item.region.offset[2] + l});
    EXPECT_EQ(seen, expected) << "piece size " << piece_bytes;
    ASSERT_EQ(owner.size(), 212u);
    EXPECT_EQ(std::count(owner.begin(), owner.end(), 0u), 210);
  }
  EXPECT_THROW(split_into_pieces(plan, 4), UsageError);  // smaller than one element
}

// RegionIndex finds exactly the regions a brute-force scan finds: slabs, uneven 2-D blocks, long
// regions that span many others, and boxes that touch nothing.
TEST(RegionIndex, AgreesWithAScanOfEveryRegion) {
  std::vector<Region> regions;
  std::int64_t row = 0;
  for (int k = 0; k < 40; ++k) {  // 2-D blocks: slabs of uneven rows, each cut in two columns
    const std::int64_t rows = 1 + (k * 7) % 5;
    regions.push_back(Region{{row, 0}, {rows, 3}});
    regions.push_back(Region{{row, 3}, {rows, 5}});
    row += rows;
  }
  regions.push_back(Region{{row, 0}, {50, 8}});  // one long region after them
  RegionIndex index;
  for (std::size_t i = 0; i < regions.size(); ++i) index.add(&regions[i], i);
  index.build();
  const std::int64_t total = row + 50;
  for (std::int64_t lo = -2; lo < total + 2; lo += 3)
    for (std::int64_t rows : {1, 4, 17}) {
      const Region box{{lo, 2}, {rows, 3}};
      std::vector<std::size_t> expected, found;
      Region part;
      for (std::size_t i = 0; i < regions.size(); ++i)
        if (intersect(regions[i], box, part)) expected.push_back(i);
      index.for_each_intersecting(box, [&](std::size_t id, const Region& p) {
        found.push_back(id);
        EXPECT_TRUE(contains(box, p));
      });
      std::sort(found.begin(), found.end());
      EXPECT_EQ(found, expected) << to_string(box);
    }
}

// Two "files" of distinct bytes; the reads copy from them and are recorded.
struct FakeFiles {
  std::vector<std::vector<std::byte>> files;
  struct Call {
    int file;
    std::uint64_t bytes, offset;
  };
  std::vector<Call> calls;
  FakeFiles() : files(2, std::vector<std::byte>(1000)) {
    for (std::size_t f = 0; f < 2; ++f)
      for (std::size_t i = 0; i < 1000; ++i) files[f][i] = static_cast<std::byte>((i * 7 + f * 101) % 251);
  }
  CoalescedReads::ReadFn reader() {
    return [this](int file, std::byte* out, std::uint64_t bytes, std::uint64_t offset) {
      calls.push_back({file, bytes, offset});
      std::copy_n(files[static_cast<std::size_t>(file)].begin() + static_cast<std::ptrdiff_t>(offset), bytes, out);
    };
  }
};

TEST(CoalescedReads, NeighboursInFileAndMemoryBecomeOneRead) {
  FakeFiles fake;
  std::vector<std::byte> out(400);
  CoalescedReads reads;
  // Queued out of order: [100,200) and [200,300) of file 0 into out[0,200) become one read;
  // [300,350) of file 0 lands elsewhere in memory (out[250,300)): a read of its own.
  reads.add(0, out.data() + 100, 100, 200);
  reads.add(0, out.data(), 100, 100);
  reads.add(0, out.data() + 250, 50, 300);
  // File 1: adjacent in memory to the first run, but another file.
  reads.add(1, out.data() + 200, 50, 300);
  reads.add(1, out.data() + 300, 0, 0);  // empty: never read
  reads.flush(fake.reader());
  ASSERT_EQ(fake.calls.size(), 3u);
  EXPECT_EQ(fake.calls[0].file, 0);
  EXPECT_EQ(fake.calls[0].offset, 100u);
  EXPECT_EQ(fake.calls[0].bytes, 200u);
  EXPECT_EQ(fake.calls[1].offset, 300u);
  EXPECT_EQ(fake.calls[2].file, 1);
  for (std::size_t i = 0; i < 200; ++i) EXPECT_EQ(out[i], fake.files[0][100 + i]) << i;
  for (std::size_t i = 0; i < 50; ++i) EXPECT_EQ(out[200 + i], fake.files[1][300 + i]) << i;
  for (std::size_t i = 0; i < 50; ++i) EXPECT_EQ(out[250 + i], fake.files[0][300 + i]) << i;

  // The queue is empty after a flush.
  reads.flush(fake.reader());
  EXPECT_EQ(fake.calls.size(), 3u);
}

TEST(CoalescedReads, MergedReadsStayWithinTheLimitAndClearDropsTheQueue) {
  FakeFiles fake;
  std::vector<std::byte> out(1000);
  CoalescedReads reads;
  for (std::uint64_t at = 0; at < 1000; at += 100) reads.add(0, out.data() + at, 100, at);
  reads.flush(fake.reader(), 300);
  ASSERT_EQ(fake.calls.size(), 4u);  // 300 + 300 + 300 + 100
  for (const auto& call : fake.calls) EXPECT_LE(call.bytes, 300u);
  EXPECT_TRUE(std::equal(out.begin(), out.end(), fake.files[0].begin()));

  fake.calls.clear();
  reads.add(0, out.data(), 10, 0);
  reads.clear();
  reads.flush(fake.reader());
  EXPECT_TRUE(fake.calls.empty());
}

TEST(CoalescedReads, TakeHandsBackTheMergedReadsAndEmptiesTheQueue) {
  std::vector<std::byte> out(600);
  CoalescedReads reads;
  reads.add(1, out.data() + 500, 100, 0);
  for (std::uint64_t at = 400; at > 0; at -= 100) reads.add(0, out.data() + at - 100, 100, at - 100);
  const std::vector<CoalescedReads::Read> taken = reads.take(300);
  ASSERT_EQ(taken.size(), 3u);  // file 0: [0,300) and [300,400); file 1: [0,100)
  EXPECT_EQ(taken[0].file, 0);
  EXPECT_EQ(taken[0].offset, 0u);
  EXPECT_EQ(taken[0].bytes, 300u);
  EXPECT_EQ(taken[0].destination, out.data());
  EXPECT_EQ(taken[1].offset, 300u);
  EXPECT_EQ(taken[1].bytes, 100u);
  EXPECT_EQ(taken[1].destination, out.data() + 300);
  EXPECT_EQ(taken[2].file, 1);
  EXPECT_EQ(taken[2].destination, out.data() + 500);
  EXPECT_TRUE(reads.take().empty());
}
