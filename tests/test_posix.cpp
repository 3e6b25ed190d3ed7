// The posix backend (make_posix_writer / make_posix_reader): round trips of every dtype, blobs and
// scalars, resharded loads, every staging mode, alignments, O_DIRECT, damaged files, dtype
// conversion on load, and a failed save that leaves the earlier checkpoint loadable. Every test
// compares the bytes read back on every rank.
#include "test_support.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <numeric>

using namespace cairn;
using namespace cairn::test;
namespace fs = std::filesystem;

namespace {

// Deterministic bytes of element `linear` in `dtype`: bools 0 or 1, floats finite and normal.
void fill_element(DType dtype, std::int64_t linear, int seed, std::byte* out) {
  const auto v = static_cast<std::uint64_t>(linear * 2654435761u + static_cast<std::uint64_t>(seed) * 97u);
  store_element(dtype, v, static_cast<float>(linear % 100000) * 0.5f + static_cast<float>(seed), pattern(linear, seed),
                out);
}

std::int64_t count(const Extents& shape) {
  return std::accumulate(shape.begin(), shape.end(), std::int64_t{1}, std::multiplies<>());
}

// The bytes `block` of a global array of `shape` holds, row-major.
std::vector<std::byte> block_bytes(DType dtype, const Extents& shape, const Block& block, int seed) {
  const std::size_t esize = dtype_size(dtype);
  std::vector<std::byte> data(static_cast<std::size_t>(count(block.shape)) * esize);
  for_each_element(block, [&](const Extents& local, std::int64_t pos) {
    fill_element(dtype, global_linear(shape, block, local), seed, data.data() + static_cast<std::size_t>(pos) * esize);
  });
  return data;
}

// One array as a rank holds it: its blocks and their bytes.
struct Held {
  std::string name;
  DType dtype;
  Extents shape;
  int seed;
  std::vector<Block> blocks;
  std::vector<std::vector<std::byte>> data;
};

// This rank's part of an array under `kind` among `parts` ranks; zeroed when `blank`.
Held hold(const std::string& name, DType dtype, const Extents& shape, Decomposition kind, int seed, int parts, int part,
          bool blank) {
  Held h{name, dtype, shape, seed, decompose(shape, parts, part, kind), {}};
  for (const Block& b : h.blocks) {
    h.data.push_back(block_bytes(dtype, shape, b, seed));
    if (blank) std::fill(h.data.back().begin(), h.data.back().end(), std::byte{0x5A});
  }
  return h;
}

void add(State& state, Held& h) {
  ArrayEntry& entry = state.add_array(h.name, h.dtype, h.shape);
  for (std::size_t i = 0; i < h.blocks.size(); ++i)
    entry.add_chunk(h.blocks[i].offset, h.blocks[i].shape, h.data[i].data());
}

// Number of blocks whose bytes differ from the pattern.
int wrong_blocks(const Held& h) {
  int wrong = 0;
  for (std::size_t i = 0; i < h.blocks.size(); ++i)
    if (h.data[i] != block_bytes(h.dtype, h.shape, h.blocks[i], h.seed)) ++wrong;
  return wrong;
}

SaveOptions posix_save(PosixOptions options = {}) {
  SaveOptions s;
  s.writer = make_posix_writer(options);
  return s;
}

LoadOptions posix_load() {
  LoadOptions l;
  l.reader = make_posix_reader();
  return l;
}

VerifyOptions posix_verify() {
  VerifyOptions v;
  v.reader = make_posix_reader();
  return v;
}

// Rank 0 edits a file; true on every rank when that worked.
template <class Edit>
bool on_rank0(Edit&& edit) {
  bool ok = true;
  if (world_rank() == 0) ok = edit();
  return all_ranks(ok);
}

bool flip_byte(const std::string& path, off_t offset) {
  const int fd = ::open(path.c_str(), O_RDWR);
  if (fd < 0) return false;
  unsigned char c = 0;
  bool ok = ::pread(fd, &c, 1, offset) == 1;
  c ^= 0x10;
  ok = ok && ::pwrite(fd, &c, 1, offset) == 1;
  ::close(fd);
  return ok;
}

bool truncate_to(const std::string& path, off_t size) {
  return ::truncate(path.c_str(), size) == 0;
}

std::string rank_file(const std::string& id, int rank) {
  char name[32];
  std::snprintf(name, sizeof name, "/rank_%06d.dat", rank);
  return id + name;
}

// A small state of one float64 field in slabs: saved, then checked by a load.
struct Field {
  explicit Field(bool blank, Decomposition kind = Decomposition::Slabs)
      : held(hold("field", DType::Float64, {static_cast<std::int64_t>(world_size()) * 8 + 3, 33}, kind, 4, world_size(),
                  world_rank(), blank)) {
    add(state, held);
  }
  Held held;
  State state;
};

}  // namespace

TEST(Posix, EveryDtypeRoundTrip) {
  TempDir dir;
  const Extents shape{static_cast<std::int64_t>(world_size()) * 3 + 1, 5};
  State state, back;
  std::vector<Held> saved, loaded;
  for (std::size_t i = 0; i < all_dtypes.size(); ++i) {
    const std::string name = "dtypes/" + std::string(dtype_name(all_dtypes[i]));
    saved.push_back(
        hold(name, all_dtypes[i], shape, Decomposition::Slabs, static_cast<int>(i), world_size(), world_rank(), false));
    loaded.push_back(
        hold(name, all_dtypes[i], shape, Decomposition::Slabs, static_cast<int>(i), world_size(), world_rank(), true));
  }
  for (std::size_t i = 0; i < all_dtypes.size(); ++i) {
    add(state, saved[i]);
    add(back, loaded[i]);
  }

  Checkpointer ck(MPI_COMM_WORLD);
  ck.save(state, dir / "ckpt", posix_save());
  ASSERT_TRUE(fs::exists(dir / "ckpt/metadata.cairn"));
  for (int r = 0; r < world_size(); ++r) EXPECT_TRUE(fs::exists(rank_file(dir / "ckpt", r))) << r;
  EXPECT_FALSE(fs::exists(dir / "ckpt/data.h5"));
  ck.load(back, dir / "ckpt", posix_load());
  for (const Held& h : loaded) EXPECT_EQ(wrong_blocks(h), 0) << h.name << " on rank " << world_rank();
  const VerifyReport report = ck.verify(dir / "ckpt", posix_verify());
  EXPECT_TRUE(report.ok());
  EXPECT_GT(report.chunks_checked, 0);
}

TEST(Posix, BlobsAndScalars) {
  TempDir dir;
  const int rank = world_rank();
  std::vector<std::byte> rng(static_cast<std::size_t>(10 + 7 * rank));
  for (std::size_t i = 0; i < rng.size(); ++i) rng[i] = static_cast<std::byte>(rank * 31 + static_cast<int>(i));
  char config[] = "replicated-config-blob";
  std::int64_t step = 420, cursor = 1000 + rank;
  double time = 3.25, residual = 0.5 * rank;
  std::string units = "kelvin";
  std::vector<std::byte> empty;
  std::vector<double> table(300);
  std::iota(table.begin(), table.end(), 1.0);
  State state;
  state.add_bytes("rng", rng);
  state.add_bytes("config", config, sizeof config, Distribution::Replicated);
  state.add_bytes("empty", empty);
  state.add_scalar("step", step);
  state.add_scalar("sim/time", time);
  state.add_scalar("sim/units", units);
  state.add_scalar("cursor", cursor, Distribution::RankLocal);
  state.add_scalar("sim/residual", residual, Distribution::RankLocal);
  state.add_replicated_array("table", {300}, table.data());
  Checkpointer ck(MPI_COMM_WORLD);
  ck.save(state, dir / "ckpt", posix_save());

  std::vector<std::byte> rng_back{std::byte{1}}, empty_back(3);
  char config_back[sizeof config] = {};
  std::int64_t step_back = 0, cursor_back = 0;
  double time_back = 0, residual_back = -1;
  std::string units_back;
  std::vector<double> table_back(300, 0.0);
  State back;
  back.add_bytes("rng", rng_back);
  back.add_bytes("config", config_back, sizeof config_back, Distribution::Replicated);
  back.add_bytes("empty", empty_back);
  back.add_scalar("step", step_back);
  back.add_scalar("sim/time", time_back);
  back.add_scalar("sim/units", units_back);
  back.add_scalar("cursor", cursor_back, Distribution::RankLocal);
  back.add_scalar("sim/residual", residual_back, Distribution::RankLocal);
  back.add_replicated_array("table", {300}, table_back.data());
  ck.load(back, dir / "ckpt", posix_load());
  EXPECT_EQ(rng_back, rng);
  EXPECT_EQ(std::memcmp(config_back, config, sizeof config), 0);
  EXPECT_TRUE(empty_back.empty());
  EXPECT_EQ(step_back, 420);
  EXPECT_EQ(time_back, 3.25);
  EXPECT_EQ(units_back, "kelvin");
  EXPECT_EQ(cursor_back, 1000 + rank);
  EXPECT_EQ(residual_back, 0.5 * rank);
  EXPECT_EQ(table_back, table);

  std::vector<std::vector<std::byte>> every_rng;
  std::int64_t last_cursor = 0;
  State all;
  all.add_bytes_from_all_ranks("rng", every_rng);
  all.add_scalar("cursor", last_cursor, Distribution::RankLocal);
  all.load_from_rank("cursor", world_size() - 1);
  ck.load(all, dir / "ckpt", posix_load());
  ASSERT_EQ(every_rng.size(), static_cast<std::size_t>(world_size()));
  for (int r = 0; r < world_size(); ++r) {
    const auto& blob = every_rng[static_cast<std::size_t>(r)];
    ASSERT_EQ(blob.size(), static_cast<std::size_t>(10 + 7 * r));
    for (std::size_t i = 0; i < blob.size(); ++i)
      EXPECT_EQ(blob[i], static_cast<std::byte>(r * 31 + static_cast<int>(i)));
  }
  EXPECT_EQ(last_cursor, 1000 + world_size() - 1);
}

// Saved on every rank in one decomposition, loaded on 1..world ranks in others, row- and
// column-major, with and without checksum verification (which reads whole chunks).
TEST(Posix, ReshardedLoad) {
  TempDir dir;
  const int world = world_size();
  // "big" has rows of 8 KiB and about 1.3 MiB per rank: whole-slab loads read in place.
  const Extents big{static_cast<std::int64_t>(world) * 160 + 3, 1024};
  const Extents two_d{13, 11}, three_d{7, 6, 5};
  {
    Held a = hold("big", DType::Float64, big, Decomposition::Slabs, 1, world, world_rank(), false);
    Held b = hold("grid/two_d", DType::Int32, two_d, Decomposition::Grid, 2, world, world_rank(), false);
    Held c = hold("grid/three_d", DType::UInt16, three_d, Decomposition::TwoPerRank, 3, world, world_rank(), false);
    State state;
    add(state, a);
    add(state, b);
    add(state, c);
    Checkpointer ck(MPI_COMM_WORLD);
    ck.save(state, dir / "ckpt", posix_save());
  }
  const Decomposition kinds[] = {Decomposition::Grid, Decomposition::TwoPerRank, Decomposition::Slabs,
                                 Decomposition::EmptyFirst};
  for (int m = 1; m <= world; ++m) {
    MPI_Comm comm = MPI_COMM_NULL;
    MPI_Comm_split(MPI_COMM_WORLD, world_rank() < m ? 0 : MPI_UNDEFINED, world_rank(), &comm);
    if (comm == MPI_COMM_NULL) continue;
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    for (int variant = 0; variant < 4; ++variant) {
      Held a = hold("big", DType::Float64, big, kinds[variant], 1, m, rank, true);
      Held b = hold("grid/two_d", DType::Int32, two_d, kinds[(variant + 1) % 4], 2, m, rank, true);
      Held c = hold("grid/three_d", DType::UInt16, three_d, kinds[(variant + 2) % 4], 3, m, rank, true);
      State state;
      add(state, a);
      add(state, b);
      add(state, c);
      LoadOptions options = posix_load();
      options.verify_checksums = variant % 2 == 0;
      Checkpointer ck(comm);
      ck.load(state, dir / "ckpt", options);
      for (const Held* h : {&a, &b, &c})
        EXPECT_EQ(wrong_blocks(*h), 0) << h->name << " loaded on " << m << " ranks, variant " << variant << ", rank "
                                       << rank;
    }
    // Column-major destinations.
    std::vector<std::vector<std::uint16_t>> cm;
    const auto blocks = decompose(three_d, m, rank, Decomposition::Grid);
    State state;
    ArrayEntry& entry = state.add_array("grid/three_d", DType::UInt16, three_d);
    cm.reserve(blocks.size());
    for (const Block& blk : blocks) {
      cm.emplace_back(static_cast<std::size_t>(count(blk.shape)), 0);
      entry.add_chunk(blk.offset, blk.shape, cm.back().data(), Layout::ColumnMajor);
    }
    Checkpointer ck(comm);
    ck.load(state, dir / "ckpt", posix_load());
    for (std::size_t i = 0; i < blocks.size(); ++i) {
      const std::vector<std::byte> expected = block_bytes(DType::UInt16, three_d, blocks[i], 3);
      int wrong = 0;
      for_each_element(blocks[i], [&](const Extents& l, std::int64_t pos) {
        std::uint16_t want;
        std::memcpy(&want, expected.data() + pos * 2, 2);
        if (cm[i][static_cast<std::size_t>(column_major_position(blocks[i].shape, l))] != want) ++wrong;
      });
      EXPECT_EQ(wrong, 0) << "column-major load on " << m << " ranks";
    }
    MPI_Comm_free(&comm);
  }
}

TEST(Posix, EveryStagingMode) {
  TempDir dir;
  // About 6 MiB per rank: a 2 MiB bounded budget splits it into pieces.
  const Extents shape{static_cast<std::int64_t>(world_size()) * 96, 8192};
  const std::shared_ptr<StorageWriter> writer = make_posix_writer();  // one writer for every save
  const StagingMode modes[] = {StagingMode::Copy, StagingMode::ZeroCopy, StagingMode::Bounded};
  Checkpointer ck(MPI_COMM_WORLD);
  for (StagingMode mode : modes) {
    const std::string id = dir / ("mode" + std::to_string(static_cast<int>(mode)));
    Held a = hold("a", DType::Float64, shape, Decomposition::Slabs, 7, world_size(), world_rank(), false);
    Held b = hold("b", DType::Int16, {11, 7}, Decomposition::TwoPerRank, 8, world_size(), world_rank(), false);
    State state;
    add(state, a);
    add(state, b);
    SaveOptions options;
    options.writer = writer;
    options.staging = mode;
    options.staging_budget_bytes = std::size_t{2} << 20;
    ck.async_save(state, id, options).get();

    Held a2 = hold("a", DType::Float64, shape, Decomposition::Grid, 7, world_size(), world_rank(), true);
    Held b2 = hold("b", DType::Int16, {11, 7}, Decomposition::Slabs, 8, world_size(), world_rank(), true);
    State back;
    add(back, a2);
    add(back, b2);
    ck.load(back, id, posix_load());
    EXPECT_EQ(wrong_blocks(a2), 0) << "staging mode " << static_cast<int>(mode);
    EXPECT_EQ(wrong_blocks(b2), 0) << "staging mode " << static_cast<int>(mode);
    const VerifyReport report = ck.verify(id, posix_verify());
    EXPECT_TRUE(report.ok()) << "staging mode " << static_cast<int>(mode);
  }
}

TEST(Posix, Alignments) {
  TempDir dir;
  for (std::size_t alignment : {std::size_t{512}, std::size_t{1} << 20}) {
    const std::string id = dir / ("a" + std::to_string(alignment));
    Held a = hold("a", DType::Int32, {static_cast<std::int64_t>(world_size()) * 5 + 2, 9}, Decomposition::Slabs, 1,
                  world_size(), world_rank(), false);
    Held b = hold("b", DType::UInt8, {static_cast<std::int64_t>(world_size()) * 3, 3}, Decomposition::Slabs, 2,
                  world_size(), world_rank(), false);
    State state;
    add(state, a);
    add(state, b);
    PosixOptions options;
    options.alignment = alignment;
    Checkpointer ck(MPI_COMM_WORLD);
    ck.save(state, id, posix_save(options));
    // Every rank wrote two pieces: the second starts at the alignment, and the file ends with it.
    const auto size = fs::file_size(rank_file(id, world_rank()));
    EXPECT_GT(size, alignment);
    EXPECT_LT(size, 2 * alignment);
    Held a2 = hold("a", DType::Int32, a.shape, Decomposition::Grid, 1, world_size(), world_rank(), true);
    Held b2 = hold("b", DType::UInt8, b.shape, Decomposition::TwoPerRank, 2, world_size(), world_rank(), true);
    State back;
    add(back, a2);
    add(back, b2);
    ck.load(back, id, posix_load());
    EXPECT_EQ(wrong_blocks(a2), 0) << "alignment " << alignment;
    EXPECT_EQ(wrong_blocks(b2), 0) << "alignment " << alignment;
  }
  // Not a power of two: refused before anything is published.
  Field f(false);
  PosixOptions bad;
  bad.alignment = 1000;
  Checkpointer ck(MPI_COMM_WORLD);
  expect_error<UsageError>([&] { ck.save(f.state, dir / "bad", posix_save(bad)); }, "alignment");
  EXPECT_FALSE(fs::exists(dir / "bad"));
}

// /tmp may or may not allow O_DIRECT: either way the bytes must come back.
TEST(Posix, DirectIo) {
  TempDir dir(MPI_COMM_WORLD, "/tmp");
  for (std::size_t alignment : {std::size_t{4096}, std::size_t{512}}) {
    const std::string id = dir / ("d" + std::to_string(alignment));
    // A piece larger than the 4 MiB bounce buffer, and sizes that are no multiple of a block.
    Held a = hold("a", DType::Float64, {static_cast<std::int64_t>(world_size()) * 70 + 1, 8191}, Decomposition::Slabs,
                  1, world_size(), world_rank(), false);
    Held b = hold("b", DType::Int8, {static_cast<std::int64_t>(world_size()) * 3, 5}, Decomposition::Slabs, 2,
                  world_size(), world_rank(), false);
    State state;
    add(state, a);
    add(state, b);
    PosixOptions options;
    options.direct_io = true;
    options.alignment = alignment;
    Checkpointer ck(MPI_COMM_WORLD);
    ck.save(state, id, posix_save(options));
    // The tail padding of the last piece is cut off again.
    const auto size = fs::file_size(rank_file(id, world_rank()));
    EXPECT_NE(size % alignment, 0u);
    Held a2 = hold("a", DType::Float64, a.shape, Decomposition::TwoPerRank, 1, world_size(), world_rank(), true);
    Held b2 = hold("b", DType::Int8, b.shape, Decomposition::Slabs, 2, world_size(), world_rank(), true);
    State back;
    add(back, a2);
    add(back, b2);
    ck.load(back, id, posix_load());
    EXPECT_EQ(wrong_blocks(a2), 0) << "alignment " << alignment;
    EXPECT_EQ(wrong_blocks(b2), 0) << "alignment " << alignment;
  }
}

TEST(Posix, FlippedByteIsDetected) {
  TempDir dir;
  const std::string id = dir / "ckpt";
  Field saved(false);
  Checkpointer ck(MPI_COMM_WORLD);
  ck.save(saved.state, id, posix_save());
  // The first piece of the last rank starts at byte 0 of its file.
  ASSERT_TRUE(on_rank0([&] { return flip_byte(rank_file(id, world_size() - 1), 100); }));
  Field back(true);
  expect_error<CorruptCheckpointError>([&] { ck.load(back.state, id, posix_load()); },
                                       "saved by rank " + std::to_string(world_size() - 1));
  VerifyReport report;
  ASSERT_NO_THROW(report = ck.verify(id, posix_verify()));
  ASSERT_EQ(report.bad_chunks.size(), 1u);
  EXPECT_EQ(report.bad_chunks[0].entry, "field");
  EXPECT_EQ(report.bad_chunks[0].saving_rank, world_size() - 1);
}

TEST(Posix, DamagedMetadataAndMissingFiles) {
  TempDir dir;
  Checkpointer ck(MPI_COMM_WORLD);
  Field saved(false);
  auto fresh = [&](const std::string& name) {
    const std::string id = dir / name;
    ck.save(saved.state, id, posix_save());
    return id;
  };
  auto load = [&](const std::string& id) {
    Field back(true);
    ck.load(back.state, id, posix_load());
  };
  {
    const std::string id = fresh("flipped");
    ASSERT_TRUE(on_rank0([&] { return flip_byte(id + "/metadata.cairn", 40); }));
    expect_error<CorruptCheckpointError>([&] { load(id); }, id + "/metadata.cairn");
    expect_error<CorruptCheckpointError>([&] { ck.verify(id, posix_verify()); }, "checksum");
  }
  {
    const std::string id = fresh("truncated");
    ASSERT_TRUE(on_rank0([&] { return truncate_to(id + "/metadata.cairn", 60); }));
    expect_error<CorruptCheckpointError>([&] { load(id); }, id + "/metadata.cairn");
    ASSERT_TRUE(on_rank0([&] { return truncate_to(id + "/metadata.cairn", 3); }));
    expect_error<CorruptCheckpointError>([&] { load(id); }, "bad magic");
  }
  {
    const std::string id = fresh("no_metadata");
    ASSERT_TRUE(on_rank0([&] { return ::unlink((id + "/metadata.cairn").c_str()) == 0; }));
    expect_error<StorageError>([&] { load(id); }, id + "/metadata.cairn");
  }
  {
    const std::string id = fresh("no_rank_file");
    const std::string gone = rank_file(id, world_size() - 1);
    ASSERT_TRUE(on_rank0([&] { return ::unlink(gone.c_str()) == 0; }));
    expect_error<StorageError>([&] { load(id); }, gone);
  }
  {
    const std::string id = fresh("short_rank_file");
    const std::string cut = rank_file(id, 0);
    ASSERT_TRUE(on_rank0([&] { return truncate_to(cut, 10); }));
    expect_error<CorruptCheckpointError>([&] { load(id); }, cut);
  }
  expect_error<StorageError>([&] { load(dir / "never_saved"); }, dir / "never_saved");
}

TEST(Posix, LosslessConversionOnLoad) {
  TempDir dir;
  const Extents shape{static_cast<std::int64_t>(world_size()) * 4 + 1, 6};
  const std::pair<DType, DType> pairs[] = {{DType::Int32, DType::Int64},      {DType::UInt16, DType::Int32},
                                           {DType::Float32, DType::Float64},  {DType::Float16, DType::Float32},
                                           {DType::BFloat16, DType::Float32}, {DType::Int8, DType::Float16},
                                           {DType::UInt8, DType::UInt64}};
  State state;
  std::vector<Held> saved;
  for (std::size_t i = 0; i < std::size(pairs); ++i)
    saved.push_back(hold("v" + std::to_string(i), pairs[i].first, shape, Decomposition::Slabs, static_cast<int>(i),
                         world_size(), world_rank(), false));
  for (Held& h : saved) add(state, h);
  Checkpointer ck(MPI_COMM_WORLD);
  ck.save(state, dir / "ckpt", posix_save());

  for (bool verify : {true, false}) {
    // Loaded in the wider dtype, in another decomposition; every element compared as a double.
    std::vector<Block> blocks = decompose(shape, world_size(), world_rank(), Decomposition::Grid);
    std::vector<std::vector<std::vector<std::byte>>> data(std::size(pairs));
    State back;
    for (std::size_t i = 0; i < std::size(pairs); ++i) {
      ArrayEntry& entry = back.add_array("v" + std::to_string(i), pairs[i].second, shape);
      for (const Block& b : blocks) {
        data[i].emplace_back(static_cast<std::size_t>(count(b.shape)) * dtype_size(pairs[i].second));
        entry.add_chunk(b.offset, b.shape, data[i].back().data());
      }
    }
    LoadOptions options = posix_load();
    options.verify_checksums = verify;
    ck.load(back, dir / "ckpt", options);
    auto as_double = [](DType dtype, const std::byte* p) -> double {
      switch (dtype) {
        case DType::Int8: return static_cast<std::int8_t>(p[0]);
        case DType::UInt8: return std::to_integer<std::uint8_t>(p[0]);
        case DType::UInt16: {
          std::uint16_t v;
          std::memcpy(&v, p, 2);
          return v;
        }
        case DType::Int32: {
          std::int32_t v;
          std::memcpy(&v, p, 4);
          return v;
        }
        case DType::Int64: {
          std::int64_t v;
          std::memcpy(&v, p, 8);
          return static_cast<double>(v);
        }
        case DType::UInt64: {
          std::uint64_t v;
          std::memcpy(&v, p, 8);
          return static_cast<double>(v);
        }
        case DType::Float32: {
          float v;
          std::memcpy(&v, p, 4);
          return v;
        }
        case DType::Float64: {
          double v;
          std::memcpy(&v, p, 8);
          return v;
        }
        case DType::BFloat16: {
          std::uint32_t bits = std::uint32_t{static_cast<std::uint16_t>(std::to_integer<unsigned>(p[0]) |
                                                                        (std::to_integer<unsigned>(p[1]) << 8))}
                               << 16;
          float v;
          std::memcpy(&v, &bits, 4);
          return v;
        }
        case DType::Float16: {
          std::uint16_t h;
          std::memcpy(&h, p, 2);
          const int e = (h >> 10) & 0x1F, m = h & 0x3FF;
          const double mag = e == 0 ? std::ldexp(m, -24) : std::ldexp(m + 1024, e - 25);
          return (h & 0x8000) ? -mag : mag;
        }
        default: return 0;
      }
    };
    for (std::size_t i = 0; i < std::size(pairs); ++i) {
      int wrong = 0;
      for (std::size_t k = 0; k < blocks.size(); ++k) {
        const std::vector<std::byte> expected = block_bytes(pairs[i].first, shape, blocks[k], static_cast<int>(i));
        const std::size_t in = dtype_size(pairs[i].first), out = dtype_size(pairs[i].second);
        for (std::int64_t e = 0; e < count(blocks[k].shape); ++e)
          if (as_double(pairs[i].first, expected.data() + e * static_cast<std::int64_t>(in)) !=
              as_double(pairs[i].second, data[i][k].data() + e * static_cast<std::int64_t>(out)))
            ++wrong;
      }
      EXPECT_EQ(wrong, 0) << dtype_name(pairs[i].first) << " loaded as " << dtype_name(pairs[i].second)
                          << (verify ? " (verified)" : "") << " on rank " << world_rank();
    }
  }
}

// Sets CAIRN_FAULT for its lifetime (no save in flight when it changes).
struct ScopedFault {
  explicit ScopedFault(const std::string& spec) { ::setenv("CAIRN_FAULT", spec.c_str(), 1); }
  ~ScopedFault() { ::unsetenv("CAIRN_FAULT"); }
};

TEST(Posix, FailedSaveLeavesEarlierCheckpoint) {
  TempDir dir;
  const std::string id = dir / "ckpt";
  Checkpointer ck(MPI_COMM_WORLD);
  Field first(false);
  ck.save(first.state, id, posix_save());
  const std::string who = std::to_string(world_size() - 1);
  for (const char* step : {"open", "write", "metadata", "commit"}) {
    // A different state under the same id, with overwrite: it must fail and change nothing.
    Held other =
        hold("field", DType::Float64, first.held.shape, Decomposition::Slabs, 99, world_size(), world_rank(), false);
    State state;
    add(state, other);
    SaveOptions options = posix_save();
    options.overwrite = true;
    {
      ScopedFault fault(who + ":" + step);
      expect_error<StorageError>([&] { ck.save(state, id, options); }, std::string("in step ") + step);
    }
    Field back(true);
    ASSERT_NO_THROW(ck.load(back.state, id, posix_load())) << step;
    EXPECT_EQ(wrong_blocks(back.held), 0) << "after a fault in step " << step;
    EXPECT_FALSE(fs::exists(dir / ".ckpt.partial")) << step;
  }
  // A save into a path under a regular file cannot even begin.
  ASSERT_TRUE(on_rank0([&] {
    const int fd = ::open((dir / "file").c_str(), O_WRONLY | O_CREAT, 0644);
    return fd >= 0 && ::close(fd) == 0;
  }));
  expect_error<Error>([&] { ck.save(first.state, dir / "file/ckpt", posix_save()); }, "file");
  Field back(true);
  ck.load(back.state, id, posix_load());
  EXPECT_EQ(wrong_blocks(back.held), 0);
}

// A real full disk (a small tmpfs, where this process may mount one): the save fails on every rank
// with the file and the errno text, before data moves, and the earlier checkpoint still loads.
TEST(Posix, FullDisk) {
  TempDir dir;
  const std::string mount_point = dir / "small";
  int mounted = 0;
  if (world_rank() == 0) {
    fs::create_directories(mount_point);
    mounted = ::mount("tmpfs", mount_point.c_str(), "tmpfs", 0, "size=4m") == 0 ? 1 : 0;
  }
  MPI_Bcast(&mounted, 1, MPI_INT, 0, MPI_COMM_WORLD);
  if (!mounted) GTEST_SKIP() << "cannot mount a tmpfs here";
  {
    const std::string id = mount_point + "/ckpt";
    Checkpointer ck(MPI_COMM_WORLD);
    Field first(false);
    ck.save(first.state, id, posix_save());
    // About 8 MiB in all: more than the disk holds.
    Held big = hold("big", DType::Float64, {static_cast<std::int64_t>(world_size()) * 16, 65536 / world_size()},
                    Decomposition::Slabs, 5, world_size(), world_rank(), false);
    State state;
    add(state, big);
    expect_error<StorageError>([&] { ck.save(state, mount_point + "/big", posix_save()); }, "No space left on device");
    EXPECT_FALSE(fs::exists(mount_point + "/big"));
    Field back(true);
    ASSERT_NO_THROW(ck.load(back.state, id, posix_load()));
    EXPECT_EQ(wrong_blocks(back.held), 0);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  if (world_rank() == 0) ::umount2(mount_point.c_str(), MNT_DETACH);
  MPI_Barrier(MPI_COMM_WORLD);
}
