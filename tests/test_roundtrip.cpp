// Save then load on the same ranks: every dtype, blobs, scalars, layouts, replicated entries,
// overwrite rules and the plan cache. Every test compares the bytes read back on every rank.
#include "test_support.hpp"

#include <cstring>
#include <numeric>
#include <set>

using namespace cairn;
using namespace cairn::test;

namespace {

// Deterministic bytes for element `linear` of a dtype; bools are 0 or 1, floats are finite.
void fill_element(DType dtype, std::int64_t linear, int seed, std::byte* out) {
  const auto v = static_cast<std::uint64_t>(linear * 2654435761u + static_cast<std::uint64_t>(seed) * 97u);
  store_element(dtype, v, static_cast<float>(linear) * 0.5f + static_cast<float>(seed), pattern(linear, seed), out);
}

struct SavedArray {
  std::vector<std::vector<std::byte>> chunks;
  std::vector<Block> blocks;
};

SavedArray make_array(DType dtype, const Extents& shape, Decomposition kind, int seed) {
  SavedArray a;
  a.blocks = decompose(shape, world_size(), world_rank(), kind);
  const std::size_t esize = dtype_size(dtype);
  for (const Block& b : a.blocks) {
    std::vector<std::byte> data(static_cast<std::size_t>(std::accumulate(b.shape.begin(), b.shape.end(),
                                                                         std::int64_t{1}, std::multiplies<>())) *
                                esize);
    for_each_element(b, [&](const Extents& local, std::int64_t pos) {
      fill_element(dtype, global_linear(shape, b, local), seed, data.data() + static_cast<std::size_t>(pos) * esize);
    });
    a.chunks.push_back(std::move(data));
  }
  return a;
}

void add(State& state, const std::string& name, DType dtype, const Extents& shape, SavedArray& a) {
  ArrayEntry& entry = state.add_array(name, dtype, shape);
  for (std::size_t i = 0; i < a.blocks.size(); ++i)
    entry.add_chunk(a.blocks[i].offset, a.blocks[i].shape, a.chunks[i].data());
}

SavedArray zeroed_like(const SavedArray& a) {
  SavedArray z = a;
  for (auto& c : z.chunks) std::fill(c.begin(), c.end(), std::byte{0x5A});
  return z;
}

}  // namespace

TEST(Roundtrip, EveryDtype) {
  TempDir dir;
  const Extents shape{static_cast<std::int64_t>(world_size()) * 3 + 1, 5};
  State state;
  std::vector<SavedArray> saved;
  saved.reserve(all_dtypes.size());
  for (std::size_t i = 0; i < all_dtypes.size(); ++i)
    saved.push_back(make_array(all_dtypes[i], shape, Decomposition::Slabs, static_cast<int>(i)));
  for (std::size_t i = 0; i < all_dtypes.size(); ++i)
    add(state, "dtypes/" + std::string(dtype_name(all_dtypes[i])), all_dtypes[i], shape, saved[i]);
  Checkpointer ck(MPI_COMM_WORLD);
  ck.save(state, dir / "ckpt");

  State loaded_state;
  std::vector<SavedArray> loaded;
  loaded.reserve(saved.size());
  for (const auto& s : saved) loaded.push_back(zeroed_like(s));
  for (std::size_t i = 0; i < all_dtypes.size(); ++i)
    add(loaded_state, "dtypes/" + std::string(dtype_name(all_dtypes[i])), all_dtypes[i], shape, loaded[i]);
  ck.load(loaded_state, dir / "ckpt");
  for (std::size_t i = 0; i < all_dtypes.size(); ++i)
    EXPECT_EQ(loaded[i].chunks, saved[i].chunks)
        << "dtype " << dtype_name(all_dtypes[i]) << " on rank " << world_rank();
}

TEST(Roundtrip, BlobsAndScalars) {
  TempDir dir;
  const int rank = world_rank();
  std::vector<std::byte> rng_state(static_cast<std::size_t>(10 + 7 * rank));  // sizes differ per rank
  for (std::size_t i = 0; i < rng_state.size(); ++i)
    rng_state[i] = static_cast<std::byte>(rank * 31 + static_cast<int>(i));
  char config[] = "replicated-config-blob";
  std::int64_t step = 420;
  double time = 3.25;
  std::string units = "kelvin";
  std::int64_t cursor = 1000 + rank;
  double residual = 0.5 * rank;
  std::vector<std::byte> empty_blob;  // a zero-byte rank-local blob is allowed

  State state;
  state.add_bytes("rng", rng_state);
  state.add_bytes("config", config, sizeof config, Distribution::Replicated);
  state.add_bytes("empty", empty_blob);
  state.add_scalar("step", step);
  state.add_scalar("sim/time", time);
  state.add_scalar("sim/units", units);
  state.add_scalar("cursor", cursor, Distribution::RankLocal);
  state.add_scalar("sim/residual", residual, Distribution::RankLocal);
  Checkpointer ck(MPI_COMM_WORLD);
  ck.save(state, dir / "ckpt");

  std::vector<std::byte> rng_back{std::byte{1}};
  char config_back[sizeof config] = {};
  std::int64_t step_back = 0, cursor_back = 0;
  double time_back = 0, residual_back = -1;
  std::string units_back;
  std::vector<std::byte> empty_back(3);
  std::vector<std::vector<std::byte>> every_rng;
  State back;
  back.add_bytes("rng", rng_back);
  back.add_bytes("config", config_back, sizeof config_back, Distribution::Replicated);
  back.add_bytes("empty", empty_back);
  back.add_scalar("step", step_back);
  back.add_scalar("sim/time", time_back);
  back.add_scalar("sim/units", units_back);
  back.add_scalar("cursor", cursor_back, Distribution::RankLocal);
  back.add_scalar("sim/residual", residual_back, Distribution::RankLocal);
  ck.load(back, dir / "ckpt");
  EXPECT_EQ(rng_back, rng_state);
  EXPECT_EQ(std::memcmp(config_back, config, sizeof config), 0);
  EXPECT_TRUE(empty_back.empty());
  EXPECT_EQ(step_back, 420);
  EXPECT_EQ(time_back, 3.25);
  EXPECT_EQ(units_back, "kelvin");
  EXPECT_EQ(cursor_back, 1000 + rank);
  EXPECT_EQ(residual_back, 0.5 * rank);

  // Every saved rank's blob at once, and one chosen saved rank's value.
  State all;
  all.add_bytes_from_all_ranks("rng", every_rng);
  std::int64_t last_cursor = 0;
  all.add_scalar("cursor", last_cursor, Distribution::RankLocal);
  all.load_from_rank("cursor", world_size() - 1);
  ck.load(all, dir / "ckpt");
  ASSERT_EQ(every_rng.size(), static_cast<std::size_t>(world_size()));
  for (int r = 0; r < world_size(); ++r) {
    ASSERT_EQ(every_rng[static_cast<std::size_t>(r)].size(), static_cast<std::size_t>(10 + 7 * r));
    for (std::size_t i = 0; i < every_rng[static_cast<std::size_t>(r)].size(); ++i)
      EXPECT_EQ(every_rng[static_cast<std::size_t>(r)][i], static_cast<std::byte>(r * 31 + static_cast<int>(i)));
  }
  EXPECT_EQ(last_cursor, 1000 + world_size() - 1);
}

TEST(Roundtrip, ColumnMajorAndStridedChunks) {
  TempDir dir;
  const Extents shape{6, static_cast<std::int64_t>(world_size()) * 4 + 2, 5};
  const auto blocks = decompose(shape, world_size(), world_rank(), Decomposition::Grid);
  // Column-major chunk of array "f" and a strided chunk (inside a halo of 1) of array "g".
  std::vector<std::vector<double>> colmajor, haloed;
  std::vector<Extents> halo_shapes;
  State state;
  ArrayEntry& f = state.add_array("fields/f", DType::Float64, shape);
  for (const Block& b : blocks) {
    std::vector<double> data(static_cast<std::size_t>(b.shape[0] * b.shape[1] * b.shape[2]));
    for_each_element(b, [&](const Extents& l, std::int64_t) {
      data[static_cast<std::size_t>(column_major_position(b.shape, l))] = pattern(global_linear(shape, b, l), 1);
    });
    colmajor.push_back(std::move(data));
  }
  for (std::size_t i = 0; i < blocks.size(); ++i)
    f.add_chunk(blocks[i].offset, blocks[i].shape, colmajor[i].data(), Layout::ColumnMajor);
  ArrayEntry& g = state.add_array("fields/g", DType::Float64, shape);
  for (const Block& b : blocks) {
    const Extents hs{b.shape[0] + 2, b.shape[1] + 2, b.shape[2] + 2};
    std::vector<double> data(static_cast<std::size_t>(hs[0] * hs[1] * hs[2]), -1.0);
    for_each_element(b, [&](const Extents& l, std::int64_t) {
      data[static_cast<std::size_t>(((l[0] + 1) * hs[1] + l[1] + 1) * hs[2] + l[2] + 1)] =
          pattern(global_linear(shape, b, l), 2);
    });
    haloed.push_back(std::move(data));
    halo_shapes.push_back(hs);
  }
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    const Extents& hs = halo_shapes[i];
    Chunk c{blocks[i].offset,
            blocks[i].shape,
            haloed[i].data() + (hs[1] * hs[2] + hs[2] + 1),
            Layout::RowMajor,
            {hs[1] * hs[2], hs[2], 1}};
    g.chunks.push_back(c);
  }
  Checkpointer ck(MPI_COMM_WORLD);
  ck.save(state, dir / "ckpt");

  // Load "f" (saved column-major) into row-major chunks and "g" (saved strided) into column-major
  // chunks of another decomposition.
  const auto load_blocks = decompose(shape, world_size(), world_rank(), Decomposition::TwoPerRank);
  std::vector<std::vector<double>> f_back, g_back;
  for (const Block& b : load_blocks) {
    const auto n = static_cast<std::size_t>(b.shape[0] * b.shape[1] * b.shape[2]);
    f_back.emplace_back(n, 0.0);
    g_back.emplace_back(n, 0.0);
  }
  State back2;
  ArrayEntry& fb2 = back2.add_array("fields/f", DType::Float64, shape);
  for (std::size_t i = 0; i < load_blocks.size(); ++i)
    fb2.add_chunk(load_blocks[i].offset, load_blocks[i].shape, f_back[i].data());
  ArrayEntry& gb2 = back2.add_array("fields/g", DType::Float64, shape);
  for (std::size_t i = 0; i < load_blocks.size(); ++i)
    gb2.add_chunk(load_blocks[i].offset, load_blocks[i].shape, g_back[i].data(), Layout::ColumnMajor);
  ck.load(back2, dir / "ckpt");
  for (std::size_t i = 0; i < load_blocks.size(); ++i) {
    const Block& b = load_blocks[i];
    for_each_element(b, [&](const Extents& l, std::int64_t pos) {
      const std::int64_t linear = global_linear(shape, b, l);
      EXPECT_EQ(f_back[i][static_cast<std::size_t>(pos)], pattern(linear, 1)) << "f at " << linear;
      EXPECT_EQ(g_back[i][static_cast<std::size_t>(column_major_position(b.shape, l))], pattern(linear, 2))
          << "g at " << linear;
    });
  }
}

TEST(Roundtrip, ReplicatedArraysAreWrittenOnce) {
  TempDir dir;
  // A large one (split among ranks) and a small one (written whole by one rank).
  std::vector<double> big(static_cast<std::size_t>(256 * 1024));  // 2 MiB
  std::vector<std::int32_t> small(10);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = pattern(static_cast<std::int64_t>(i), 5);
  std::iota(small.begin(), small.end(), 7);
  State state;
  state.add_replicated_array("mesh/coords", Extents{512, 512}, big.data());
  state.add_replicated_array("mesh/ids", Extents{10}, small.data());
  Checkpointer ck(MPI_COMM_WORLD);
  ck.save(state, dir / "ckpt");

  auto reader = make_hdf5_reader();
  reader->open(dir / "ckpt", ck.process_group());
  const Metadata md = reader->metadata();
  reader->close();
  for (const char* name : {"mesh/coords", "mesh/ids"}) {
    std::int32_t index = -1;
    for (std::size_t e = 0; e < md.entries.size(); ++e)
      if (md.entries[e].name == name) index = static_cast<std::int32_t>(e);
    ASSERT_GE(index, 0);
    std::int64_t written = 0;
    std::vector<Region> regions;
    std::set<int> writers;
    for (const ChunkRecord& c : md.chunks) {
      if (c.entry != index) continue;
      std::int64_t v = 1;
      for (auto e : c.region.shape) v *= e;
      written += v;
      regions.push_back(c.region);
      writers.insert(c.rank);
    }
    std::int64_t total = 1;
    for (auto e : md.entries[static_cast<std::size_t>(index)].global_shape) total *= e;
    EXPECT_EQ(written, total) << name << ": every element is written exactly once";
    for (std::size_t a = 0; a < regions.size(); ++a)  // and no element twice
      for (std::size_t b = a + 1; b < regions.size(); ++b) {
        bool disjoint = false;
        for (std::size_t d = 0; d < regions[a].shape.size(); ++d)
          disjoint = disjoint || regions[a].offset[d] + regions[a].shape[d] <= regions[b].offset[d] ||
                     regions[b].offset[d] + regions[b].shape[d] <= regions[a].offset[d];
        EXPECT_TRUE(disjoint) << name << ": chunks " << a << " and " << b << " overlap";
      }
    if (std::string(name) == "mesh/coords") {
      EXPECT_EQ(writers.size(), static_cast<std::size_t>(world_size())) << "bytes spread";
    } else {
      EXPECT_EQ(writers.size(), 1u);
    }
  }
  std::vector<double> big_back(big.size());
  std::vector<std::int32_t> small_back(small.size());
  State back;
  back.add_replicated_array("mesh/coords", Extents{512, 512}, big_back.data());
  back.add_replicated_array("mesh/ids", Extents{10}, small_back.data());
  ck.load(back, dir / "ckpt");
  EXPECT_EQ(big_back, big);
  EXPECT_EQ(small_back, small);
}

// Ranks that read one shared file go through their reads in steps of 64 MiB, each rank the same
// number of steps: here rank 0 reads 72 MiB (two steps, the second of 8 MiB) while the others
// read a few KiB, checked and unchecked.
TEST(Roundtrip, UnevenLargeChunksLoadBack) {
  TempDir dir;
  const std::int64_t big = std::int64_t{9} << 20;  // 72 MiB of float64 on rank 0
  const std::int64_t small = 1024;
  const int rank = world_rank();
  const std::int64_t mine = rank == 0 ? big : small;
  const std::int64_t offset = rank == 0 ? 0 : big + (rank - 1) * small;
  const Extents shape{big + (world_size() - 1) * small};
  std::vector<double> saved(static_cast<std::size_t>(mine));
  for (std::size_t i = 0; i < saved.size(); ++i) saved[i] = pattern(offset + static_cast<std::int64_t>(i), 11);
  State state;
  state.add_array("field", DType::Float64, shape).add_chunk({offset}, {mine}, saved.data());
  Checkpointer ck(MPI_COMM_WORLD);
  ck.save(state, dir / "ckpt");
  for (const bool checked : {false, true}) {
    std::vector<double> back(saved.size(), -1.0);
    State target;
    target.add_array("field", DType::Float64, shape).add_chunk({offset}, {mine}, back.data());
    LoadOptions options;
    options.verify_checksums = checked;
    ck.load(target, dir / "ckpt", options);
    EXPECT_TRUE(back == saved) << (checked ? "checked" : "unchecked") << " load on rank " << rank;
  }
}

TEST(Roundtrip, OverwriteRules) {
  TempDir dir;
  std::vector<double> values(8);
  const int rank = world_rank();
  auto fill = [&](double base) {
    for (std::size_t i = 0; i < values.size(); ++i) values[i] = base + rank * 8 + static_cast<double>(i);
  };
  State state;
  state.add_array("x", Extents{8 * static_cast<std::int64_t>(world_size())}, Extents{8 * rank}, Extents{8},
                  values.data());
  Checkpointer ck(MPI_COMM_WORLD);
  fill(0);
  ck.save(state, dir / "ckpt");
  fill(100);
  expect_error<UsageError>([&] { ck.save(state, dir / "ckpt"); }, "already exists");
  std::vector<double> back(8);
  State load_state;
  load_state.add_array("x", Extents{8 * static_cast<std::int64_t>(world_size())}, Extents{8 * rank}, Extents{8},
                       back.data());
  ck.load(load_state, dir / "ckpt");
  for (std::size_t i = 0; i < back.size(); ++i)
    EXPECT_EQ(back[i], rank * 8 + static_cast<double>(i)) << "old checkpoint kept";
  SaveOptions overwrite;
  overwrite.overwrite = true;
  ck.save(state, dir / "ckpt", overwrite);
  ck.load(load_state, dir / "ckpt");
  for (std::size_t i = 0; i < back.size(); ++i)
    EXPECT_EQ(back[i], 100 + rank * 8 + static_cast<double>(i)) << "replaced";
}

TEST(Roundtrip, CachedPlanFollowsStructureChanges) {
  TempDir dir;
  const int rank = world_rank();
  std::vector<float> a(4, static_cast<float>(rank)), b(3, 2.0f * static_cast<float>(rank));
  const auto n = static_cast<std::int64_t>(world_size());
  Checkpointer ck(MPI_COMM_WORLD);
  for (int round = 0; round < 3; ++round) {
    for (auto& v : a) v += 1;
    State state;
    state.add_array("a", Extents{4 * n}, Extents{4 * rank}, Extents{4}, a.data());
    if (round == 2) state.add_array("b", Extents{3 * n}, Extents{3 * rank}, Extents{3}, b.data());  // new structure
    ck.save(state, dir / ("r" + std::to_string(round)));
    std::vector<float> a_back(4), b_back(3);
    State back;
    back.add_array("a", Extents{4 * n}, Extents{4 * rank}, Extents{4}, a_back.data());
    if (round == 2) back.add_array("b", Extents{3 * n}, Extents{3 * rank}, Extents{3}, b_back.data());
    ck.load(back, dir / ("r" + std::to_string(round)));
    EXPECT_EQ(a_back, a) << "round " << round;
    if (round == 2) {
      EXPECT_EQ(b_back, b);
    }
  }
}

TEST(Roundtrip, LosslessConversionOnLoad) {
  TempDir dir;
  const int rank = world_rank();
  const auto n = static_cast<std::int64_t>(world_size());
  std::vector<std::int32_t> ints{-5 + rank, 7, 1 << 30};
  std::vector<float> floats{0.1f, -2.5f, 1e30f};
  State state;
  state.add_array("ints", Extents{3 * n}, Extents{3 * rank}, Extents{3}, ints.data());
  state.add_array("floats", Extents{3 * n}, Extents{3 * rank}, Extents{3}, floats.data());
  Checkpointer ck(MPI_COMM_WORLD);
  ck.save(state, dir / "ckpt");
  std::vector<std::int64_t> wide_ints(3);
  std::vector<double> wide_floats(3);
  State back;
  back.add_array("ints", Extents{3 * n}, Extents{3 * rank}, Extents{3}, wide_ints.data());
  back.add_array("floats", Extents{3 * n}, Extents{3 * rank}, Extents{3}, wide_floats.data());
  ck.load(back, dir / "ckpt");
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(wide_ints[i], ints[i]);
    EXPECT_EQ(wide_floats[i], static_cast<double>(floats[i]));
  }
  std::vector<std::int16_t> narrow(3);
  State lossy;
  lossy.add_array("ints", Extents{3 * n}, Extents{3 * rank}, Extents{3}, narrow.data());
  expect_error<UsageError>([&] { ck.load(lossy, dir / "ckpt"); }, "not a lossless conversion");
}

namespace {
class Particles : public Stateful {
 public:
  std::vector<double> positions;
  std::int64_t count = 0;
  bool was_restored = false;
  void describe(State& state) override {
    const int rank = world_rank();
    state.add_array("positions", Extents{4 * static_cast<std::int64_t>(world_size())}, Extents{4 * rank}, Extents{4},
                    positions.data());
    state.add_scalar("count", count, Distribution::RankLocal);
  }
  void restored() override { was_restored = true; }
};
}  // namespace

TEST(Roundtrip, StatefulObjects) {
  TempDir dir;
  Particles p;
  p.positions = {1.0 + world_rank(), 2.0, 3.0, 4.0};
  p.count = 40 + world_rank();
  State state;
  state.add("particles", p);
  ASSERT_NE(state.find("particles/positions"), nullptr);
  Checkpointer ck(MPI_COMM_WORLD);
  ck.save(state, dir / "ckpt");
  Particles q;
  q.positions.assign(4, 0.0);
  State back;
  back.add("particles", q);
  ck.load(back, dir / "ckpt");
  EXPECT_EQ(q.positions, p.positions);
  EXPECT_EQ(q.count, p.count);
  EXPECT_TRUE(q.was_restored);
}
