// Planning at scale: states of many small arrays save and load with every byte right, the cached
// plan follows every change of structure (on one rank or all), and inconsistent states among
// many entries are still rejected with errors naming the entry and the ranks.
#include "test_support.hpp"

#include "core/region.hpp"

#include <random>

using namespace cairn;
using namespace cairn::test;

namespace {

std::string array_name(std::int64_t i) {
  char name[48];
  std::snprintf(name, sizeof name, "fields/g%03lld/a%05lld", static_cast<long long>(i / 1000),
                static_cast<long long>(i));
  return name;
}

// `n` sharded float64 arrays of `elems` elements per rank. Rank r holds block `(r + shift) % world`
// of each; array i's elements are pattern(global index, seed + i). Plus two replicated arrays, a
// step and a rank-local blob of `blob_bytes` bytes.
struct ManyArrays {
  std::int64_t n;
  std::int64_t elems;
  std::vector<double> data;
  std::vector<double> replicated;
  std::vector<std::byte> blob;
  std::int64_t step = 0;
  State state;

  ManyArrays(std::int64_t n_, std::int64_t elems_, int seed, int shift = 0, std::size_t blob_bytes = 24,
             bool fill = true, std::int64_t renamed = -1)
      : n(n_), elems(elems_) {
    const int rank = world_rank();
    const int world = world_size();
    const std::int64_t block = (rank + shift) % world;
    data.assign(static_cast<std::size_t>(n * elems), -1.0);
    replicated.assign(64, -1.0);
    blob.assign(blob_bytes, std::byte{0});
    if (fill) {
      for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t k = 0; k < elems; ++k)
          data[static_cast<std::size_t>(i * elems + k)] = pattern(block * elems + k, seed + static_cast<int>(i));
      for (std::size_t k = 0; k < replicated.size(); ++k)
        replicated[k] = pattern(static_cast<std::int64_t>(k), seed - 1);
      for (std::size_t k = 0; k < blob.size(); ++k) blob[k] = static_cast<std::byte>((k * 7 + rank + seed) & 0xff);
      step = seed;
    }
    for (std::int64_t i = 0; i < n; ++i)
      state.add_array(i == renamed ? "fields/renamed" : array_name(i), DType::Float64, {elems * world})
          .add_chunk({block * elems}, {elems}, data.data() + i * elems);
    state.add_replicated_array("params/a", Extents{32}, replicated.data());
    state.add_replicated_array("params/b", Extents{4, 8}, replicated.data() + 32);
    state.add_scalar("step", step);
    state.add_bytes("rng", blob);
  }
};

SaveOptions posix_save() {
  SaveOptions options;
  options.overwrite = true;
  options.writer = make_posix_writer();
  return options;
}

// Loads `id` into the same structure as `expected` and compares every byte.
void expect_loads(Checkpointer& ck, const std::string& id, const ManyArrays& expected, int shift = 0) {
  ManyArrays loaded(expected.n, expected.elems, 0, shift, 0, false);
  ck.load(loaded.state, id);
  std::int64_t wrong = 0;
  for (std::size_t k = 0; k < expected.data.size(); ++k) wrong += loaded.data[k] != expected.data[k];
  EXPECT_EQ(wrong, 0) << "elements differ on rank " << world_rank() << " in '" << id << "'";
  EXPECT_EQ(loaded.replicated, expected.replicated) << "rank " << world_rank();
  EXPECT_EQ(loaded.blob, expected.blob) << "rank " << world_rank();
  EXPECT_EQ(loaded.step, expected.step);
}

}  // namespace

TEST(PlanScale, TwentyThousandArraysSaveAndLoadEveryByte) {
  TempDir dir;
  Checkpointer ck(MPI_COMM_WORLD);
  const ManyArrays saved(20000, 4, 11);
  ck.save(saved.state, dir / "many", posix_save());
  expect_loads(ck, dir / "many", saved);
  // Every rank reads another rank's blocks: the chunks of 20,000 entries found by region.
  if (world_size() > 1) {
    const ManyArrays shifted(20000, 4, 11, 1);
    ManyArrays loaded(20000, 4, 0, 1, 0, false);
    ck.load(loaded.state, dir / "many");
    EXPECT_TRUE(loaded.data == shifted.data) << "rank " << world_rank();
  }
}

TEST(PlanScale, ThousandsOfArraysThroughHdf5) {
  TempDir dir;
  Checkpointer ck(MPI_COMM_WORLD);
  const ManyArrays saved(2000, 8, 5);
  ck.save(saved.state, dir / "h5");
  expect_loads(ck, dir / "h5", saved);
}

TEST(PlanScale, CachedPlanFollowsEveryChangeOfStructure) {
  TempDir dir;
  Checkpointer ck(MPI_COMM_WORLD);
  const int last = world_size() - 1;
  const int rank = world_rank();

  const ManyArrays first(3000, 4, 1);
  ck.save(first.state, dir / "first", posix_save());
  expect_loads(ck, dir / "first", first);

  // The same structure with new values: the cached plan, the new bytes.
  const ManyArrays again(3000, 4, 2);
  ck.save(again.state, dir / "again", posix_save());
  expect_loads(ck, dir / "again", again);

  // Only the last rank's blob grows: that rank alone sees a new structure.
  const ManyArrays grown(3000, 4, 3, 0, rank == last ? 100 : 24);
  ck.save(grown.state, dir / "grown", posix_save());
  {
    ManyArrays loaded(3000, 4, 0, 0, 0, false);
    ck.load(loaded.state, dir / "grown");
    EXPECT_EQ(loaded.blob, grown.blob) << "rank " << rank;
    EXPECT_TRUE(loaded.data == grown.data) << "rank " << rank;
  }

  // Every rank holds another block than before.
  const ManyArrays shifted(3000, 4, 4, 1);
  ck.save(shifted.state, dir / "shifted", posix_save());
  expect_loads(ck, dir / "shifted", shifted, 1);
  {
    const ManyArrays unshifted(3000, 4, 4, 0);
    ManyArrays loaded(3000, 4, 0, 0, 0, false);
    ck.load(loaded.state, dir / "shifted");
    EXPECT_TRUE(loaded.data == unshifted.data) << "rank " << rank;
  }

  // One entry renamed: the checkpoint has the new name and not the old one.
  const ManyArrays renamed(3000, 4, 5, 0, 24, true, 1234);
  ck.save(renamed.state, dir / "renamed", posix_save());
  {
    ManyArrays loaded(3000, 4, 0, 0, 0, false, 1234);
    ck.load(loaded.state, dir / "renamed");
    EXPECT_TRUE(loaded.data == renamed.data) << "rank " << rank;
    ManyArrays old_names(3000, 4, 0, 0, 0, false);
    expect_error<UsageError>([&] { ck.load(old_names.state, dir / "renamed"); }, "has no such entry");
  }

  // One dtype changed (on every rank) after a cached save.
  ck.save(first.state, dir / "first", posix_save());
  {
    ManyArrays wider(3000, 4, 6);
    std::vector<float> narrow(4, 2.5f);
    Entry& entry = wider.state.entries()[7];
    auto& array = std::get<ArrayEntry>(entry.value);
    array.dtype = DType::Float32;
    array.chunks[0].data = narrow.data();
    ck.save(wider.state, dir / "dtype", posix_save());
    ManyArrays loaded(3000, 4, 0, 0, 0, false);
    std::vector<float> back(4, 0.0f);
    Entry& loaded_entry = loaded.state.entries()[7];
    auto& loaded_array = std::get<ArrayEntry>(loaded_entry.value);
    loaded_array.dtype = DType::Float32;
    loaded_array.chunks[0].data = back.data();
    ck.load(loaded.state, dir / "dtype");
    EXPECT_EQ(back, narrow);
    EXPECT_EQ(loaded.data[0], wider.data[0]);
  }
}

TEST(PlanScale, SameStructureStillChecksPointers) {
  TempDir dir;
  Checkpointer ck(MPI_COMM_WORLD);
  ManyArrays state(2000, 4, 1);
  ck.save(state.state, dir / "ok", posix_save());
  // The structure the last save validated, with one null pointer on the last rank.
  auto& array = std::get<ArrayEntry>(state.state.entries()[1500].value);
  void* kept = array.chunks[0].data;
  if (world_rank() == world_size() - 1) array.chunks[0].data = nullptr;
  expect_error<UsageError>([&] { ck.save(state.state, dir / "null", posix_save()); }, "null data pointer");
  array.chunks[0].data = kept;
  ck.save(state.state, dir / "ok", posix_save());
  expect_loads(ck, dir / "ok", state);
}

TEST(PlanScale, OverlapsAmongManyEntriesNameTheEntryAndRanks) {
  TempDir dir;
  Checkpointer ck(MPI_COMM_WORLD);
  ManyArrays good(5000, 4, 1);
  ck.save(good.state, dir / "good", posix_save());
  const int world = world_size();
  const int rank = world_rank();
  if (world > 1) {
    // Rank 1 also claims rank 0's block of one entry in 5,000.
    ManyArrays bad(5000, 4, 1);
    if (rank == 1) std::get<ArrayEntry>(bad.state.entries()[3217].value).chunks[0].offset = {0};
    const std::string message =
        "entry '" + array_name(3217) + "': region [0:4] of rank 0 overlaps region [0:4] of rank 1";
    expect_error<UsageError>([&] { ck.save(bad.state, dir / "bad", posix_save()); }, message);
    // The last rank holds a replicated array in two chunks, the others in one.
    ManyArrays extra(5000, 4, 1);
    if (rank == world - 1) {
      auto& array = std::get<ArrayEntry>(extra.state.entries()[5000].value);
      array.chunks[0].shape = {16};
      array.add_chunk({16}, {16}, extra.replicated.data() + 16);
    }
    expect_error<UsageError>(
        [&] { ck.save(extra.state, dir / "bad", posix_save()); },
        "entry 'params/a' is replicated but rank " + std::to_string(world - 1) + " holds different chunks than rank 0");
  }
  // Within one rank: two chunks of one entry overlap.
  ManyArrays within(5000, 4, 1);
  if (rank == 0) {
    auto& array = std::get<ArrayEntry>(within.state.entries()[4999].value);
    array.add_chunk({2}, {1}, within.data.data());
  }
  expect_error<UsageError>([&] { ck.save(within.state, dir / "bad", posix_save()); },
                           "entry '" + array_name(4999) + "' on rank 0: chunks 0 [0:4] and 1 [2:3] overlap");
  // The good checkpoint and the cached plan survive the failures.
  ck.save(good.state, dir / "good", posix_save());
  expect_loads(ck, dir / "good", good);
}

TEST(PlanScale, OverlapSweepAgreesWithAllPairs) {
  // Decompositions along each dimension and block grids, as many ranks would give, and random
  // boxes; find_overlap answers as an all-pairs check would.
  using detail::find_overlap;
  auto all_pairs = [](const std::vector<Region>& r) {
    for (std::size_t i = 0; i < r.size(); ++i)
      for (std::size_t j = i + 1; j < r.size(); ++j)
        if (detail::overlaps(r[i], r[j])) return true;
    return false;
  };
  std::vector<Region> columns;  // 2-D, cut along dimension 1 only: every box spans dimension 0
  for (std::int64_t j = 0; j < 3000; ++j) columns.push_back(Region{{0, 2 * j}, {100, 2}});
  std::size_t a = 0, b = 0;
  EXPECT_FALSE(find_overlap(columns, a, b));
  columns.push_back(Region{{50, 301}, {1, 2}});
  ASSERT_TRUE(find_overlap(columns, a, b));
  EXPECT_TRUE(detail::overlaps(columns[a], columns[b]));
  EXPECT_LT(a, b);

  std::vector<Region> grid;  // 3-D block grid 12 x 12 x 12
  for (std::int64_t i = 0; i < 12; ++i)
    for (std::int64_t j = 0; j < 12; ++j)
      for (std::int64_t k = 0; k < 12; ++k) grid.push_back(Region{{3 * i, 5 * j, 7 * k}, {3, 5, 7}});
  EXPECT_FALSE(find_overlap(grid, a, b));
  grid.push_back(Region{{35, 59, 83}, {1, 1, 1}});  // inside the last block
  ASSERT_TRUE(find_overlap(grid, a, b));
  EXPECT_EQ(b, grid.size() - 1);
  EXPECT_EQ(a, grid.size() - 2);

  std::mt19937 random(1234);
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<Region> boxes;
    const int count = 2 + static_cast<int>(random() % 60);
    for (int i = 0; i < count; ++i) {
      Region r{{0, 0}, {1, 1}};
      for (int d = 0; d < 2; ++d) {
        r.offset[static_cast<std::size_t>(d)] = static_cast<std::int64_t>(random() % 200);
        r.shape[static_cast<std::size_t>(d)] = 1 + static_cast<std::int64_t>(random() % 12);
      }
      boxes.push_back(r);
    }
    const bool found = find_overlap(boxes, a, b);
    ASSERT_EQ(found, all_pairs(boxes)) << "trial " << trial;
    if (found) {
      EXPECT_TRUE(detail::overlaps(boxes[a], boxes[b]));
    }
  }
}
