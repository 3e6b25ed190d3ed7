// Saves without collectives (SaveOptions::use_collectives = false): one HDF5 file per rank, loaded
// back with another decomposition, on another rank count, and through the bounded staging path;
// bad rank files and a failing rank give the same error everywhere and publish nothing.
#include "test_support.hpp"

#include <cairn/cairn.hpp>

#include <gtest/gtest.h>
#include <hdf5.h>
#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace cairn::test {
namespace {

namespace fs = std::filesystem;

std::string rank_file(const std::string& id, int rank) {
  char name[32];
  std::snprintf(name, sizeof name, "/rank_%06d.h5", rank);
  return id + name;
}

SaveOptions without_collectives() {
  SaveOptions options;
  options.use_collectives = false;
  return options;
}

std::byte blob_byte(int rank, std::size_t i) {
  return static_cast<std::byte>((rank * 31 + static_cast<int>(i) * 7 + 3) & 0xff);
}
std::size_t blob_size(int rank) {
  return 5 + 3 * static_cast<std::size_t>(rank);
}
std::int32_t table_value(std::int64_t i) {
  return static_cast<std::int32_t>(i * 3 - 7);
}

constexpr std::int64_t cols = 13;
std::int64_t rows() {
  return 7 * world_size() + 3;
}

// What every rank saves: a 2-D field in uneven row slabs, a rank-local blob and scalar, a
// replicated int32 table and a replicated double.
struct Saved {
  Block block;
  std::vector<double> field;
  std::vector<std::byte> rng;
  std::int64_t cursor;
  std::vector<std::int32_t> table = std::vector<std::int32_t>(4 * 6);
  double time = 2.5;
  State state;

  explicit Saved(int seed) {
    const int rank = world_rank();
    const Extents shape{rows(), cols};
    block = decompose(shape, world_size(), rank, Decomposition::Slabs).at(0);
    field.resize(static_cast<std::size_t>(block.shape[0] * block.shape[1]));
    for_each_element(block, [&](const Extents& local, std::int64_t at) {
      field[static_cast<std::size_t>(at)] = pattern(global_linear(shape, block, local), seed);
    });
    rng.resize(blob_size(rank));
    for (std::size_t i = 0; i < rng.size(); ++i) rng[i] = blob_byte(rank, i);
    cursor = 1000 + rank;
    for (std::size_t i = 0; i < table.size(); ++i) table[i] = table_value(static_cast<std::int64_t>(i));
    state.add_array("field", shape, block.offset, block.shape, field.data());
    state.add_bytes("rng", rng);
    state.add_scalar("cursor", cursor, Distribution::RankLocal);
    state.add_replicated_array("table", Extents{4, 6}, table.data());
    state.add_scalar("time", time);
  }
};

class RankFiles : public ::testing::Test {
 protected:
  TempDir dir;
  Checkpointer ck{MPI_COMM_WORLD};
};

TEST_F(RankFiles, WritesOneFilePerRankAndLoadsWithAnotherDecomposition) {
  const std::string id = dir / "ckpt";
  {
    Saved saved(11);
    ck.save(saved.state, id, without_collectives());
  }
  for (int r = 0; r < world_size(); ++r) EXPECT_TRUE(fs::exists(rank_file(id, r))) << rank_file(id, r);
  EXPECT_FALSE(fs::exists(rank_file(id, world_size())));
  EXPECT_FALSE(fs::exists(id + "/data.h5"));

  // Column slabs instead of row slabs, the table widened to int64.
  const int rank = world_rank();
  const Extents shape{rows(), cols};
  const std::int64_t c0 = cols * rank / world_size();
  const std::int64_t c1 = cols * (rank + 1) / world_size();
  const Block block{{0, c0}, {rows(), c1 - c0}};
  std::vector<double> field(static_cast<std::size_t>(rows() * (c1 - c0)), -1.0);
  std::vector<std::byte> rng;
  std::int64_t cursor = -1;
  std::vector<std::int64_t> table(4 * 6, -1);
  double time = 0;
  State state;
  state.add_array("field", shape, block.offset, block.shape, field.data());
  state.add_bytes("rng", rng);
  state.add_scalar("cursor", cursor, Distribution::RankLocal);
  state.add_replicated_array("table", Extents{4, 6}, table.data());
  state.add_scalar("time", time);
  ck.load(state, id);

  std::int64_t wrong = 0;
  for_each_element(block, [&](const Extents& local, std::int64_t at) {
    if (field[static_cast<std::size_t>(at)] != pattern(global_linear(shape, block, local), 11)) ++wrong;
  });
  EXPECT_EQ(wrong, 0) << "rank " << rank;
  ASSERT_EQ(rng.size(), blob_size(rank));
  for (std::size_t i = 0; i < rng.size(); ++i) EXPECT_EQ(rng[i], blob_byte(rank, i)) << "byte " << i;
  EXPECT_EQ(cursor, 1000 + rank);
  for (std::size_t i = 0; i < table.size(); ++i) EXPECT_EQ(table[i], table_value(static_cast<std::int64_t>(i)));
  EXPECT_EQ(time, 2.5);
}

TEST_F(RankFiles, LoadsOnOneRank) {
  const std::string id = dir / "ckpt";
  {
    Saved saved(12);
    ck.save(saved.state, id, without_collectives());
  }
  MPI_Comm one = MPI_COMM_NULL;
  MPI_Comm_split(MPI_COMM_WORLD, world_rank() == 0 ? 0 : MPI_UNDEFINED, 0, &one);
  if (world_rank() == 0) {
    {
      Checkpointer single(one);
      const Extents shape{rows(), cols};
      const Block whole{{0, 0}, shape};
      std::vector<double> field(static_cast<std::size_t>(rows() * cols), -1.0);
      std::vector<std::vector<std::byte>> rngs;
      std::int64_t last_cursor = -1;
      std::vector<std::int32_t> table(4 * 6, -1);
      double time = 0;
      State state;
      state.add_array("field", shape, whole.offset, whole.shape, field.data());
      state.add_bytes_from_all_ranks("rng", rngs);
      state.add_scalar("cursor", last_cursor, Distribution::RankLocal);
      state.load_from_rank("cursor", world_size() - 1);
      state.add_replicated_array("table", Extents{4, 6}, table.data());
      state.add_scalar("time", time);
      single.load(state, id);

      std::int64_t wrong = 0;
      for_each_element(whole, [&](const Extents& local, std::int64_t at) {
        if (field[static_cast<std::size_t>(at)] != pattern(global_linear(shape, whole, local), 12)) ++wrong;
      });
      EXPECT_EQ(wrong, 0);
      ASSERT_EQ(rngs.size(), static_cast<std::size_t>(world_size()));
      for (int r = 0; r < world_size(); ++r) {
        ASSERT_EQ(rngs[static_cast<std::size_t>(r)].size(), blob_size(r)) << "saved rank " << r;
        for (std::size_t i = 0; i < blob_size(r); ++i)
          EXPECT_EQ(rngs[static_cast<std::size_t>(r)][i], blob_byte(r, i)) << "saved rank " << r << " byte " << i;
      }
      EXPECT_EQ(last_cursor, 1000 + world_size() - 1);
      for (std::size_t i = 0; i < table.size(); ++i) EXPECT_EQ(table[i], table_value(static_cast<std::int64_t>(i)));
      EXPECT_EQ(time, 2.5);
    }
    MPI_Comm_free(&one);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST_F(RankFiles, BoundedAsyncSaveRoundTrips) {
  // 4 MiB and more per rank through 2 MiB of staging: every chunk is cut into several datasets.
  const int rank = world_rank();
  const std::int64_t width = 1024;
  std::vector<std::int64_t> starts{0};
  for (int r = 0; r < world_size(); ++r) starts.push_back(starts.back() + 512 + 16 * r);
  const Extents shape{starts.back(), width};
  const Block block{{starts[static_cast<std::size_t>(rank)], 0},
                    {starts[static_cast<std::size_t>(rank) + 1] - starts[static_cast<std::size_t>(rank)], width}};
  std::vector<double> values(static_cast<std::size_t>(block.shape[0] * width));
  for_each_element(block, [&](const Extents& local, std::int64_t at) {
    values[static_cast<std::size_t>(at)] = pattern(global_linear(shape, block, local), 21);
  });
  std::vector<std::byte> rng(blob_size(rank));
  for (std::size_t i = 0; i < rng.size(); ++i) rng[i] = blob_byte(rank, i);
  const std::string id = dir / "bounded";
  {
    State state;
    state.add_array("big", shape, block.offset, block.shape, values.data());
    state.add_bytes("rng", rng);
    SaveOptions options = without_collectives();
    options.staging = StagingMode::Bounded;
    options.staging_budget_bytes = std::size_t{2} << 20;
    SaveFuture future = ck.async_save(state, id, options);
    future.get();
  }
  for (int r = 0; r < world_size(); ++r) EXPECT_TRUE(fs::exists(rank_file(id, r)));

  // Read back shifted by half a slab, so that most requests span two ranks' files.
  const std::int64_t lo = std::min(block.offset[0] + block.shape[0] / 2, shape[0]);
  const std::int64_t hi = rank + 1 == world_size() ? shape[0] : std::min(lo + block.shape[0], shape[0]);
  const Block shifted{{rank == 0 ? 0 : lo, 0}, {hi - (rank == 0 ? 0 : lo), width}};
  std::vector<double> loaded(static_cast<std::size_t>(shifted.shape[0] * width), -1.0);
  std::vector<std::byte> rng_loaded;
  State state;
  state.add_array("big", shape, shifted.offset, shifted.shape, loaded.data());
  state.add_bytes("rng", rng_loaded);
  ck.load(state, id);
  std::int64_t wrong = 0;
  for_each_element(shifted, [&](const Extents& local, std::int64_t at) {
    if (loaded[static_cast<std::size_t>(at)] != pattern(global_linear(shape, shifted, local), 21)) ++wrong;
  });
  EXPECT_EQ(wrong, 0) << "rank " << rank;
  EXPECT_EQ(rng_loaded, rng);
}

TEST_F(RankFiles, MissingRankFileFailsEveryRankNamingIt) {
  if (world_size() < 2) GTEST_SKIP() << "needs a second rank file";
  const std::string id = dir / "ckpt";
  {
    Saved saved(13);
    ck.save(saved.state, id, without_collectives());
  }
  MPI_Barrier(MPI_COMM_WORLD);
  if (world_rank() == 0) {
    ASSERT_TRUE(fs::remove(rank_file(id, 1)));
  }
  MPI_Barrier(MPI_COMM_WORLD);
  Saved target(0);
  expect_error<StorageError>([&] { ck.load(target.state, id); }, "rank_000001.h5");
}

TEST_F(RankFiles, CorruptMetadataFailsEveryRank) {
  const std::string id = dir / "ckpt";
  {
    Saved saved(14);
    ck.save(saved.state, id, without_collectives());
  }
  MPI_Barrier(MPI_COMM_WORLD);
  if (world_rank() == 0) {
    // Flip 8 bytes in the middle of rank 0's metadata blob.
    const hid_t file = H5Fopen(rank_file(id, 0).c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(file, 0);
    const hid_t dset = H5Dopen2(file, "/_cairn/metadata", H5P_DEFAULT);
    ASSERT_GE(dset, 0);
    const hid_t space = H5Dget_space(dset);
    hsize_t n = 0;
    H5Sget_simple_extent_dims(space, &n, nullptr);
    ASSERT_GT(n, 16u);
    std::vector<unsigned char> blob(n);
    ASSERT_GE(H5Dread(dset, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, blob.data()), 0);
    for (hsize_t i = n / 2; i < n / 2 + 8; ++i) blob[i] ^= 0xff;
    ASSERT_GE(H5Dwrite(dset, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, blob.data()), 0);
    H5Sclose(space);
    H5Dclose(dset);
    H5Fclose(file);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  Saved target(0);
  expect_error<CorruptCheckpointError>([&] { ck.load(target.state, id); }, "rank_000000.h5");
}

TEST_F(RankFiles, FailureOnOneRankFailsEveryRankAndPublishesNothing) {
  const int last = world_size() - 1;
  const std::string id = dir / "failed";
  Saved saved(15);
  const std::string fault = std::to_string(last) + ":write";
  setenv("CAIRN_FAULT", fault.c_str(), 1);
  expect_error<StorageError>([&] { ck.save(saved.state, id, without_collectives()); },
                             "on rank " + std::to_string(last));
  unsetenv("CAIRN_FAULT");
  MPI_Barrier(MPI_COMM_WORLD);
  EXPECT_FALSE(fs::exists(id));
  // The failed save left nothing else behind either (no partial directory).
  std::size_t leftovers = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) {
    ADD_FAILURE() << "leftover " << e.path();
    if (e.is_directory())
      for (const auto& f : fs::directory_iterator(e.path())) ADD_FAILURE() << "  holds " << f.path();
    ++leftovers;
  }
  EXPECT_EQ(leftovers, 0u);
  MPI_Barrier(MPI_COMM_WORLD);  // every rank has looked before the next save creates files
  // The same id saves fine afterwards and holds real data.
  ck.save(saved.state, id, without_collectives());
  Saved target(0);
  std::fill(target.field.begin(), target.field.end(), -1.0);
  ck.load(target.state, id);
  EXPECT_EQ(target.field, saved.field);
}

}  // namespace
}  // namespace cairn::test
