// Compression per array entry (ArrayEntry::compress): every dtype round-trips bit-exactly with
// deflate and zstd on the HDF5 shared file, the aggregated HDF5 layout, the HDF5 rank files and
// posix; resharded loads; compressed and plain entries side by side; bounded staging; files that
// are actually smaller; and clear, agreed errors that leave an earlier checkpoint loadable.
#include "test_support.hpp"

#include <hdf5.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <numeric>

using namespace cairn;
using namespace cairn::test;
namespace fs = std::filesystem;

namespace {

enum class Backend { Hdf5, Aggregated, RankFiles, Posix };

const char* backend_name(Backend b) {
  switch (b) {
    case Backend::Hdf5: return "hdf5";
    case Backend::Aggregated: return "aggregated";
    case Backend::RankFiles: return "rank_files";
    case Backend::Posix: return "posix";
  }
  return "?";
}

SaveOptions save_with(Backend b) {
  SaveOptions s;
  if (b == Backend::Aggregated) s.writer = make_hdf5_aggregated_writer(world_size() > 2 ? 2 : 1);
  if (b == Backend::Posix) s.writer = make_posix_writer();
  if (b == Backend::RankFiles) s.use_collectives = false;
  return s;
}

// Bytes of element `linear` of an array in `dtype`: a slowly varying value (compressible), bools
// 0 or 1, floats finite.
void fill_element(DType dtype, std::int64_t linear, int seed, std::byte* out) {
  // Bools change every fifth element.
  const auto v = static_cast<std::uint64_t>(dtype == DType::Bool ? linear / 5 : linear / 3 + seed);
  store_element(dtype, v, static_cast<float>(linear % 1000) * 0.25f + static_cast<float>(seed), pattern(linear, seed),
                out);
}

// One array as this rank holds it: blocks and their bytes (the pattern, or 0x5A when blank).
struct Held {
  std::string name;
  DType dtype;
  Extents shape;
  int seed;
  std::vector<Block> blocks;
  std::vector<std::vector<std::byte>> data;

  std::vector<std::byte> expected(const Block& b) const {
    const std::size_t esize = dtype_size(dtype);
    std::vector<std::byte> out(static_cast<std::size_t>(std::accumulate(b.shape.begin(), b.shape.end(), std::int64_t{1},
                                                                        std::multiplies<>())) *
                               esize);
    for_each_element(b, [&](const Extents& local, std::int64_t pos) {
      fill_element(dtype, global_linear(shape, b, local), seed, out.data() + static_cast<std::size_t>(pos) * esize);
    });
    return out;
  }
  int wrong_blocks() const {
    int wrong = 0;
    for (std::size_t i = 0; i < blocks.size(); ++i) wrong += data[i] != expected(blocks[i]) ? 1 : 0;
    return wrong;
  }
};

Held hold(const std::string& name, DType dtype, const Extents& shape, Decomposition kind, int seed, bool blank) {
  Held h{name, dtype, shape, seed, decompose(shape, world_size(), world_rank(), kind), {}};
  for (const Block& b : h.blocks) {
    h.data.push_back(h.expected(b));
    if (blank) std::fill(h.data.back().begin(), h.data.back().end(), std::byte{0x5A});
  }
  return h;
}

ArrayEntry& add(State& state, Held& h) {
  ArrayEntry& entry = state.add_array(h.name, h.dtype, h.shape);
  for (std::size_t i = 0; i < h.blocks.size(); ++i)
    entry.add_chunk(h.blocks[i].offset, h.blocks[i].shape, h.data[i].data());
  return entry;
}

// The bytes the files of a checkpoint take (their sizes; the checkpoints here have no holes).
std::uintmax_t directory_bytes(const std::string& dir) {
  std::uintmax_t total = 0;
  for (const auto& f : fs::directory_iterator(dir))
    if (f.is_regular_file()) total += f.file_size();
  return total;
}

// Zstd where this build has libzstd (tests/CMakeLists.txt passes CAIRN_HAVE_ZSTD); else deflate,
// and Zstd saves must be refused clearly.
constexpr bool zstd_built = CAIRN_HAVE_ZSTD != 0;
constexpr Compression fast = zstd_built ? Compression::Zstd : Compression::Deflate;

// Saves every dtype compressed with `method` through `backend`, loads it back onto the same or
// another decomposition, and checks every byte on every rank.
void round_trip(Backend backend, Compression method, int level, Decomposition save_kind, Decomposition load_kind) {
  TempDir dir;
  const Extents shape{static_cast<std::int64_t>(world_size()) * 6 + 1, 9};
  State state, back;
  std::vector<Held> saved, loaded;
  for (std::size_t i = 0; i < all_dtypes.size(); ++i) {
    const std::string name = "dtypes/" + std::string(dtype_name(all_dtypes[i]));
    saved.push_back(hold(name, all_dtypes[i], shape, save_kind, static_cast<int>(i), false));
    loaded.push_back(hold(name, all_dtypes[i], shape, load_kind, static_cast<int>(i), true));
  }
  for (std::size_t i = 0; i < all_dtypes.size(); ++i) {
    add(state, saved[i]).compress(method, level);
    add(back, loaded[i]);
  }
  Checkpointer ck(MPI_COMM_WORLD);
  if (method == Compression::Zstd && !zstd_built) {
    expect_error<UnsupportedError>([&] { ck.save(state, dir / "ckpt", save_with(backend)); }, "install libzstd-dev");
    EXPECT_FALSE(fs::exists(dir / "ckpt"));
    return;
  }
  ck.save(state, dir / "ckpt", save_with(backend));
  ck.load(back, dir / "ckpt");
  for (const Held& h : loaded)
    EXPECT_EQ(h.wrong_blocks(), 0) << h.name << " (" << backend_name(backend) << ", "
                                   << (method == Compression::Zstd ? "zstd" : "deflate") << ") on rank "
                                   << world_rank();
  EXPECT_TRUE(ck.verify(dir / "ckpt").ok());
}

const Backend all_backends[] = {Backend::Hdf5, Backend::Aggregated, Backend::RankFiles, Backend::Posix};

}  // namespace

TEST(Compression, EveryDtypeDeflate) {
  for (Backend b : all_backends) round_trip(b, Compression::Deflate, 0, Decomposition::Slabs, Decomposition::Slabs);
}

TEST(Compression, EveryDtypeZstd) {
  for (Backend b : all_backends) round_trip(b, Compression::Zstd, 0, Decomposition::Slabs, Decomposition::Slabs);
}

TEST(Compression, ResharedLoadAndLevels) {
  for (Backend b : all_backends) {
    round_trip(b, Compression::Deflate, 1, Decomposition::TwoPerRank, Decomposition::Grid);
    round_trip(b, Compression::Zstd, 19, Decomposition::Slabs, Decomposition::EmptyFirst);
    round_trip(b, Compression::Deflate, 0, Decomposition::EmptyFirst, Decomposition::Slabs);  // a rank holds none
  }
}

// Compressed and plain entries in one state, saved with bounded staging (pieces of chunks).
TEST(Compression, MixedEntriesBoundedStaging) {
  for (Backend b : {Backend::Hdf5, Backend::Aggregated, Backend::Posix}) {
    TempDir dir;
    // About 3 MiB per rank and entry: the 2 MiB staging budget cuts chunks into pieces.
    const Extents shape{static_cast<std::int64_t>(world_size()) * 96 + 5, 4096};
    Held plain = hold("plain", DType::Float64, shape, Decomposition::Slabs, 1, false);
    Held deflated = hold("deflated", DType::Float64, shape, Decomposition::Slabs, 2, false);
    Held zstd = hold("zstd", DType::Int32, shape, Decomposition::Slabs, 3, false);
    State state;
    add(state, plain);
    add(state, deflated).compress(Compression::Deflate, 1);
    add(state, zstd).compress(fast);
    SaveOptions options = save_with(b);
    options.staging = StagingMode::Bounded;
    options.staging_budget_bytes = std::size_t{2} << 20;
    Checkpointer ck(MPI_COMM_WORLD);
    ck.save(state, dir / "ckpt", options);

    Held plain_back = hold("plain", DType::Float64, shape, Decomposition::Grid, 1, true);
    Held deflated_back = hold("deflated", DType::Float64, shape, Decomposition::Grid, 2, true);
    Held zstd_back = hold("zstd", DType::Int32, shape, Decomposition::Grid, 3, true);
    State back;
    add(back, plain_back);
    add(back, deflated_back);
    add(back, zstd_back);
    ck.load(back, dir / "ckpt");
    for (const Held* h : {&plain_back, &deflated_back, &zstd_back})
      EXPECT_EQ(h->wrong_blocks(), 0) << h->name << " (" << backend_name(b) << ") on rank " << world_rank();
  }
}

// posix with O_DIRECT (or its fallback where the file system refuses it) and a large alignment:
// compressed pieces are written in aligned blocks and read back whole.
TEST(Compression, PosixDirectIo) {
  TempDir dir;
  const Extents shape{static_cast<std::int64_t>(world_size()) * 300 + 7, 2048};  // ~4.7 MiB per rank
  Held field = hold("field", DType::Float32, shape, Decomposition::TwoPerRank, 3, false);
  State state;
  add(state, field).compress(Compression::Deflate, 1);
  PosixOptions posix;
  posix.alignment = 1 << 16;
  posix.direct_io = true;
  SaveOptions options;
  options.writer = make_posix_writer(posix);
  Checkpointer ck(MPI_COMM_WORLD);
  ck.save(state, dir / "ckpt", options);
  Held back = hold("field", DType::Float32, shape, Decomposition::Grid, 3, true);
  State loaded;
  add(loaded, back);
  ck.load(loaded, dir / "ckpt");
  EXPECT_EQ(back.wrong_blocks(), 0) << "rank " << world_rank();
}

// A save without MPI (no_dist: HDF5's POSIX driver, serial filters), one checkpoint per rank.
TEST(Compression, NoDistSave) {
  TempDir dir;
  const Extents shape{static_cast<std::int64_t>(world_size()) * 40 + 3, 100};
  for (Backend b : {Backend::Hdf5, Backend::Posix}) {
    Held field = hold("field", DType::UInt16, shape, Decomposition::Slabs, 4, false);
    State state;
    ArrayEntry& entry = state.add_array("field", DType::UInt16, field.blocks[0].shape);
    entry.add_chunk(Extents(2, 0), field.blocks[0].shape, field.data[0].data()).compress(fast, 2);
    SaveOptions options = save_with(b);
    options.no_dist = true;
    const std::string id = dir / (std::string(backend_name(b)) + "_rank" + std::to_string(world_rank()));
    Checkpointer ck(MPI_COMM_WORLD);
    ck.save(state, id, options);
    std::vector<std::byte> back(field.data[0].size(), std::byte{0});
    State loaded;
    loaded.add_array("field", DType::UInt16, field.blocks[0].shape)
        .add_chunk(Extents(2, 0), field.blocks[0].shape, back.data());
    LoadOptions load;
    load.no_dist = true;
    ck.load(loaded, id, load);
    EXPECT_EQ(back, field.data[0]) << backend_name(b) << " on rank " << world_rank();
  }
}

// A damaged byte inside a compressed posix piece is reported as a corrupt checkpoint, on every rank.
TEST(Compression, DamagedPosixPieceIsCorrupt) {
  for (Compression method : {Compression::Deflate, fast}) {
    TempDir dir;
    const Extents shape{static_cast<std::int64_t>(world_size()) * 64, 256};
    Held field = hold("field", DType::Float64, shape, Decomposition::Slabs, 9, false);
    State state;
    add(state, field).compress(method);
    Checkpointer ck(MPI_COMM_WORLD);
    ck.save(state, dir / "ckpt", save_with(Backend::Posix));
    bool flipped = true;
    if (world_rank() == 0) {
      const std::string path = dir / "ckpt/rank_000000.dat";
      std::FILE* f = std::fopen(path.c_str(), "r+b");
      flipped = f != nullptr && std::fseek(f, 200, SEEK_SET) == 0;
      if (flipped) {
        const int c = std::fgetc(f);
        flipped = c != EOF && std::fseek(f, 200, SEEK_SET) == 0 && std::fputc(c ^ 0x5A, f) != EOF;
      }
      if (f != nullptr) std::fclose(f);
    }
    ASSERT_TRUE(all_ranks(flipped));
    Held back = hold("field", DType::Float64, shape, Decomposition::Slabs, 9, true);
    State loaded;
    add(loaded, back);
    expect_error<CorruptCheckpointError>([&] { ck.load(loaded, dir / "ckpt"); }, "field");
  }
}

// Compressible data takes less room on disk compressed than not, for every backend and method.
TEST(Compression, FilesAreSmaller) {
  for (Backend b : all_backends) {
    for (Compression method : {Compression::Deflate, fast}) {
      TempDir dir;
      const Extents shape{static_cast<std::int64_t>(world_size()) * 64, 1024};  // 512 KiB per rank
      Held field = hold("field", DType::Int64, shape, Decomposition::Slabs, 7, false);
      State plain, packed;
      add(plain, field);
      add(packed, field).compress(method);
      Checkpointer ck(MPI_COMM_WORLD);
      ck.save(plain, dir / "plain", save_with(b));
      ck.save(packed, dir / "packed", save_with(b));
      std::uintmax_t plain_bytes = 0, packed_bytes = 0;
      if (world_rank() == 0) {
        plain_bytes = directory_bytes(dir / "plain");
        packed_bytes = directory_bytes(dir / "packed");
      }
      // Slowly varying int64s compress far better than 2:1 with either method.
      EXPECT_LT(packed_bytes * 2, plain_bytes + 1) << backend_name(b) << ": " << packed_bytes << " vs " << plain_bytes;
    }
  }
}

// The HDF5 dataset is chunked, filtered and smaller than its logical size (h5py and h5dump read it:
// tests/external_readers.sh).
TEST(Compression, Hdf5DatasetIsFiltered) {
  TempDir dir;
  const Extents shape{static_cast<std::int64_t>(world_size()) * 64, 512};
  Held field = hold("fields/t", DType::Float64, shape, Decomposition::Slabs, 5, false);
  State state;
  add(state, field).compress(Compression::Deflate);
  Checkpointer ck(MPI_COMM_WORLD);
  ck.save(state, dir / "ckpt");
  if (world_rank() == 0) {
    const hid_t file = H5Fopen((dir / "ckpt/data.h5").c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    ASSERT_GE(file, 0);
    const hid_t dset = H5Dopen2(file, "fields/t", H5P_DEFAULT);
    const hid_t dcpl = H5Dget_create_plist(dset);
    EXPECT_EQ(H5Pget_layout(dcpl), H5D_CHUNKED);
    unsigned flags = 0;
    std::size_t n = 0;
    EXPECT_GE(H5Pget_filter_by_id2(dcpl, H5Z_FILTER_DEFLATE, &flags, &n, nullptr, 0, nullptr, nullptr), 0);
    EXPECT_LT(H5Dget_storage_size(dset), static_cast<hsize_t>(shape[0] * shape[1] * 8) / 2);
    H5Pclose(dcpl);
    H5Dclose(dset);
    H5Fclose(file);
  }
}

TEST(Compression, BadLevelsAreUsageErrors) {
  TempDir dir;
  const Extents shape{static_cast<std::int64_t>(world_size()) * 4, 3};
  Held field = hold("field", DType::Float64, shape, Decomposition::Slabs, 1, false);
  State good;
  add(good, field).compress(fast);
  Checkpointer ck(MPI_COMM_WORLD);
  ck.save(good, dir / "ckpt");
  struct Case {
    Compression method;
    int level;
    const char* needle;
  };
  for (const Case& c :
       {Case{Compression::Deflate, 10, "deflate compression level 10 is outside 1-9"},
        Case{Compression::Zstd, 23, "zstd compression level 23 is outside 1-22"},
        Case{Compression::Deflate, -1, "level -1"}, Case{Compression::None, 3, "without a compression method"},
        Case{static_cast<Compression>(7), 0, "unknown compression method 7"}}) {
    for (Backend b : {Backend::Hdf5, Backend::Posix}) {
      State bad;
      add(bad, field).compress(c.method, c.level);
      SaveOptions options = save_with(b);
      options.overwrite = true;
      expect_error<UsageError>([&] { ck.save(bad, dir / "ckpt", options); }, c.needle);
      expect_error<UsageError>([&] { ck.save(bad, dir / "other", options); },
                               "entry 'field' on rank " + std::to_string(world_rank()));
    }
  }
  EXPECT_FALSE(fs::exists(dir / "other"));
  Held back = hold("field", DType::Float64, shape, Decomposition::Grid, 1, true);
  State loaded;
  add(loaded, back);
  ck.load(loaded, dir / "ckpt");
  EXPECT_EQ(back.wrong_blocks(), 0) << "rank " << world_rank();
}

TEST(Compression, RanksThatDisagreeAreUsageErrors) {
  if (world_size() < 2) GTEST_SKIP() << "needs two ranks";
  TempDir dir;
  const Extents shape{static_cast<std::int64_t>(world_size()) * 4, 3};
  Held field = hold("field", DType::Float64, shape, Decomposition::Slabs, 1, false);
  State good;
  add(good, field).compress(Compression::Deflate);
  Checkpointer ck(MPI_COMM_WORLD);
  ck.save(good, dir / "ckpt", save_with(Backend::Posix));
  for (Backend b : {Backend::Hdf5, Backend::Posix, Backend::Aggregated}) {
    // Rank 1 asks for no compression, the others deflate; then rank 1 for another level.
    for (int variant = 0; variant < 2; ++variant) {
      State bad;
      ArrayEntry& entry = add(bad, field);
      if (world_rank() == 1)
        entry.compress(variant == 0 ? Compression::None : Compression::Deflate, variant == 0 ? 0 : 9);
      else
        entry.compress(Compression::Deflate);
      SaveOptions options = save_with(b);
      options.overwrite = true;
      expect_error<UsageError>([&] { ck.save(bad, dir / "ckpt", options); },
                               "entry 'field': the compression (deflate vs " +
                                   std::string(variant == 0 ? "none" : "deflate level 9") +
                                   ") differs between rank 0 and rank 1");
    }
  }
  Held back = hold("field", DType::Float64, shape, Decomposition::TwoPerRank, 1, true);
  State loaded;
  add(loaded, back);
  ck.load(loaded, dir / "ckpt");
  EXPECT_EQ(back.wrong_blocks(), 0) << "rank " << world_rank();
}

// A compressed checkpoint converted from posix to HDF5 keeps each entry's compression.
TEST(Compression, ConvertKeepsCompression) {
  TempDir dir;
  const Extents shape{static_cast<std::int64_t>(world_size()) * 32, 256};
  Held a = hold("a", DType::Float64, shape, Decomposition::Slabs, 1, false);
  Held c = hold("c", DType::Int16, shape, Decomposition::Slabs, 2, false);
  State state;
  add(state, a).compress(fast, 5);
  add(state, c);
  Checkpointer ck(MPI_COMM_WORLD);
  ck.save(state, dir / "posix", save_with(Backend::Posix));
  MpiProcessGroup group(MPI_COMM_WORLD);
  convert_checkpoint(group, dir / "posix", dir / "h5");
  Held a_back = hold("a", DType::Float64, shape, Decomposition::Grid, 1, true);
  Held c_back = hold("c", DType::Int16, shape, Decomposition::Grid, 2, true);
  State back;
  add(back, a_back);
  add(back, c_back);
  ck.load(back, dir / "h5");
  EXPECT_EQ(a_back.wrong_blocks(), 0);
  EXPECT_EQ(c_back.wrong_blocks(), 0);
  if (world_rank() == 0) {
    const hid_t file = H5Fopen((dir / "h5/data.h5").c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    ASSERT_GE(file, 0);
    for (const char* name : {"a", "c"}) {
      const hid_t dset = H5Dopen2(file, name, H5P_DEFAULT);
      const hid_t dcpl = H5Dget_create_plist(dset);
      EXPECT_EQ(H5Pget_nfilters(dcpl), std::string(name) == "a" ? 1 : 0) << name;
      H5Pclose(dcpl);
      H5Dclose(dset);
    }
    H5Fclose(file);
  }
}
