// Bad input: every case gives a cairn::Error on every rank that names what was wrong, and leaves an
// existing checkpoint exactly as it was.
#include "test_support.hpp"

#include <hdf5.h>

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

using namespace cairn;
using namespace cairn::test;

namespace {

// A small valid state: one sharded float64 array, 16 elements per rank, and a step.
struct Good {
  std::vector<double> values;
  std::int64_t step = 7;
  State state;
  explicit Good(double base) : values(16) {
    const int rank = world_rank();
    for (std::size_t i = 0; i < values.size(); ++i) values[i] = base + rank * 16 + static_cast<double>(i);
    state.add_array("field", Extents{16 * static_cast<std::int64_t>(world_size())}, Extents{16 * rank}, Extents{16},
                    values.data());
    state.add_scalar("step", step);
  }
};

// Loads `id` and checks it holds Good(base)'s bytes on every rank.
void expect_intact(Checkpointer& ck, const std::string& id, double base) {
  Good expected(base);
  Good loaded(-1.0);
  loaded.step = 0;
  ck.load(loaded.state, id);
  EXPECT_EQ(loaded.values, expected.values) << "checkpoint '" << id << "' changed on rank " << world_rank();
  EXPECT_EQ(loaded.step, 7);
}

class BadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    Good good(1.0);
    ck.save(good.state, dir / "good");
  }
  void TearDown() override {
    expect_intact(ck, dir / "good", 1.0);
    // A failed save publishes nothing and leaves no partial directory behind.
    if (world_rank() == 0) {
      for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
        const std::string name = e.path().filename().string();
        EXPECT_TRUE(name == "good" || name == "file" || name == "foreign" || name == "truncated" ||
                    name == "readonly" || name == "full" || name == "garbage")
            << "unexpected leftover " << name;
      }
    }
  }

  // Saves `state` onto the good checkpoint with overwrite, expecting error E with `needle`.
  template <class E>
  void expect_rejected(const State& state, const std::string& needle) {
    SaveOptions overwrite;
    overwrite.overwrite = true;
    expect_error<E>([&] { ck.save(state, dir / "good", overwrite); }, needle);
  }

  TempDir dir;
  Checkpointer ck{MPI_COMM_WORLD};
};

}  // namespace

TEST_F(BadInput, UnknownDtype) {
  std::vector<double> v(4);
  State s;
  s.add_array("x", static_cast<DType>(99), Extents{4}).add_chunk({0}, {4}, v.data());
  expect_rejected<UsageError>(s, "entry 'x' on rank");
  expect_rejected<UsageError>(s, "unknown dtype");
}

TEST_F(BadInput, NonPositiveExtents) {
  std::vector<double> v(4);
  State zero;
  zero.add_array("x", DType::Float64, Extents{0, 4});
  expect_rejected<UsageError>(zero, "global extent 0 in dimension 0 is not positive");
  State negative;
  negative.add_array("x", DType::Float64, Extents{4, -2});
  expect_rejected<UsageError>(negative, "global extent -2 in dimension 1");
  State empty_chunk;
  empty_chunk.add_array("x", DType::Float64, Extents{4}).add_chunk({0}, {0}, v.data());
  expect_rejected<UsageError>(empty_chunk, "extent 0 in dimension 0");
}

TEST_F(BadInput, ChunkOutsideGlobalShape) {
  std::vector<double> v(4);
  State s;
  s.add_array("x", DType::Float64, Extents{4}).add_chunk({2}, {4}, v.data());
  expect_rejected<UsageError>(s, "lies outside the global shape");
  State negative;
  negative.add_array("x", DType::Float64, Extents{4}).add_chunk({-1}, {2}, v.data());
  expect_rejected<UsageError>(negative, "lies outside the global shape");
}

TEST_F(BadInput, OverlappingChunks) {
  std::vector<double> v(8);
  State within;
  within.add_array("x", DType::Float64, Extents{16}).add_chunk({0}, {4}, v.data()).add_chunk({2}, {4}, v.data() + 4);
  expect_rejected<UsageError>(within, "overlap");
  if (world_size() > 1) {
    // Every rank claims the first four elements: ranks overlap.
    State across;
    across.add_array("x", DType::Float64, Extents{16}).add_chunk({0}, {4}, v.data());
    expect_rejected<UsageError>(across, "overlaps region");
  }
}

TEST_F(BadInput, ShapeOrDtypeDiffersAcrossRanks) {
  if (world_size() == 1) GTEST_SKIP() << "needs two ranks";
  const int rank = world_rank();
  std::vector<double> v(4);
  State shape;
  shape.add_array("x", DType::Float64, Extents{rank == 1 ? 9 : 8}).add_chunk({rank}, {1}, v.data());
  expect_rejected<UsageError>(shape, "global shape");
  State dtype;
  dtype.add_array("x", rank == 1 ? DType::Float32 : DType::Float64, Extents{8}).add_chunk({rank}, {1}, v.data());
  expect_rejected<UsageError>(dtype, "dtype (float64 vs float32) differs between rank 0 and rank 1");
}

TEST_F(BadInput, BadNames) {
  std::vector<double> v(4);
  const int rank = world_rank();
  const auto n = static_cast<std::int64_t>(world_size());
  for (const char* name : {"", "a//b", "/a", "a/", "_cairn/x"}) {
    State s;
    s.add_array(name, Extents{4 * n}, Extents{4 * rank}, Extents{4}, v.data());
    expect_rejected<UsageError>(s, "invalid name");
  }
  State collision;
  collision.add_array("a", Extents{4 * n}, Extents{4 * rank}, Extents{4}, v.data());
  collision.add_array("a/b", Extents{4 * n}, Extents{4 * rank}, Extents{4}, v.data());
  expect_rejected<UsageError>(collision, "entry 'a' is also the group of entry 'a/b'");
  State duplicate;
  duplicate.add_array("a", Extents{4 * n}, Extents{4 * rank}, Extents{4}, v.data());
  duplicate.add_array("a", Extents{4 * n}, Extents{4 * rank}, Extents{4}, v.data());
  expect_rejected<UsageError>(duplicate, "used by two entries");
}

TEST_F(BadInput, CheckpointIdIsAFile) {
  if (world_rank() == 0) std::ofstream(dir / "file") << "not a checkpoint";
  MPI_Barrier(MPI_COMM_WORLD);
  Good good(2.0);
  expect_error<UsageError>([&] { ck.save(good.state, dir / "file"); }, "is an existing file");
  SaveOptions overwrite;
  overwrite.overwrite = true;
  expect_error<UsageError>([&] { ck.save(good.state, dir / "file", overwrite); }, "is an existing file");
  expect_error<UsageError>([&] { ck.load(good.state, dir / "file"); }, "is a file");
}

TEST_F(BadInput, OverwriteRefusesForeignDirectories) {
  if (world_rank() == 0) std::filesystem::create_directory(dir / "foreign");
  MPI_Barrier(MPI_COMM_WORLD);
  Good good(2.0);
  SaveOptions overwrite;
  overwrite.overwrite = true;
  expect_error<UsageError>([&] { ck.save(good.state, dir / "foreign", overwrite); }, "is not a Cairn checkpoint");
}

TEST_F(BadInput, DirectoryWithoutWritePermission) {
  if (world_rank() == 0) {
    std::filesystem::create_directory(dir / "readonly");
    ::chmod((dir / "readonly").c_str(), 0555);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  // Root ignores permission bits; take an unprivileged identity for the attempt, process-wide
  // (glibc applies seteuid to every thread, the checkpointer's worker included).
  const bool root = ::geteuid() == 0;
  if (root) {
    ASSERT_EQ(::seteuid(65534), 0);
  }
  Good good(2.0);
  expect_error<StorageError>([&] { ck.save(good.state, dir / "readonly/ckpt"); }, "readonly");
  if (root) {
    ASSERT_EQ(::seteuid(0), 0);
  }
}

TEST_F(BadInput, FullDisk) {
  // A real full file system: a 256 KiB tmpfs, when this process may mount one (root on Linux).
  int mounted = 0;
  if (world_rank() == 0) {
    std::filesystem::create_directory(dir / "full");
    mounted = ::mount("tmpfs", (dir / "full").c_str(), "tmpfs", 0, "size=256k") == 0 ? 1 : 0;
  }
  MPI_Bcast(&mounted, 1, MPI_INT, 0, MPI_COMM_WORLD);
  std::vector<double> big(static_cast<std::size_t>(64 * 1024), 1.5);  // 512 KiB per rank
  State s;
  const int rank = world_rank();
  s.add_array("big", Extents{65536 * static_cast<std::int64_t>(world_size())}, Extents{65536 * rank}, Extents{65536},
              big.data());
  if (mounted) {
    expect_error<StorageError>([&] { ck.save(s, dir / "full/ckpt"); }, "failed on rank");
    if (rank == 0) {
      EXPECT_FALSE(std::filesystem::exists(dir / "full/ckpt")) << "nothing published on a full disk";
      ::umount((dir / "full").c_str());
    }
  } else {
    // No mount privilege: inject the failure into the write step of the last rank instead.
    ::setenv("CAIRN_FAULT", (std::to_string(world_size() - 1) + ":write").c_str(), 1);
    expect_error<StorageError>([&] { ck.save(s, dir / "full/ckpt"); }, "injected fault");
    ::unsetenv("CAIRN_FAULT");
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST_F(BadInput, FailureOnOneRankAtEveryStep) {
  const int last = world_size() - 1;
  for (const char* step : {"validate", "plan", "stage", "prepare", "open", "write", "metadata", "publish"}) {
    // Rank 0 alone publishes, so a publish failure is rank 0's.
    const int who = std::string(step) == "publish" ? 0 : last;
    ::setenv("CAIRN_FAULT", (std::to_string(who) + ":" + step).c_str(), 1);
    Good good(3.0);
    expect_rejected<StorageError>(good.state, "failed on rank " + std::to_string(who) + ": injected fault");
    ::unsetenv("CAIRN_FAULT");
  }
  for (const char* step : {"load-open", "load-read"}) {
    ::setenv("CAIRN_FAULT", (std::to_string(last) + ":" + step).c_str(), 1);
    Good target(0.0);
    expect_error<StorageError>([&] { ck.load(target.state, dir / "good"); },
                               "failed on rank " + std::to_string(last) + ": injected fault");
    ::unsetenv("CAIRN_FAULT");
  }
}

TEST_F(BadInput, LoadWithDifferentDtypeOrShape) {
  const int rank = world_rank();
  const auto n = static_cast<std::int64_t>(world_size());
  std::vector<float> narrow(16);
  State dtype;
  dtype.add_array("field", Extents{16 * n}, Extents{16 * rank}, Extents{16}, narrow.data());
  expect_error<UsageError>([&] { ck.load(dtype, dir / "good"); }, "saved as float64, requested as float32");
  std::vector<double> v(16);
  State shape;
  shape.add_array("field", Extents{16 * n + 1}, Extents{16 * rank}, Extents{16}, v.data());
  expect_error<UsageError>([&] { ck.load(shape, dir / "good"); }, "differs from the saved");
  State missing;
  missing.add_array("no/such/entry", Extents{16 * n}, Extents{16 * rank}, Extents{16}, v.data());
  expect_error<UsageError>([&] { ck.load(missing, dir / "good"); }, "entry 'no/such/entry' on rank");
}

TEST_F(BadInput, MissingTruncatedOrForeignFiles) {
  Good target(0.0);
  expect_error<StorageError>([&] { ck.load(target.state, dir / "absent"); }, "absent");
  if (world_rank() == 0) {
    // A truncated copy of the good checkpoint.
    std::filesystem::copy(dir / "good", dir / "truncated", std::filesystem::copy_options::recursive);
    const auto size = std::filesystem::file_size(dir / "truncated/data.h5");
    std::filesystem::resize_file(dir / "truncated/data.h5", size / 2);
    // An HDF5 file that Cairn did not write.
    std::filesystem::create_directory(dir / "foreign");
    const hid_t f = H5Fcreate((dir / "foreign/data.h5").c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(f);
    // Not HDF5 at all.
    std::filesystem::create_directory(dir / "garbage");
    std::ofstream(dir / "garbage/data.h5") << "this is not an HDF5 file";
  }
  MPI_Barrier(MPI_COMM_WORLD);
  expect_error<CorruptCheckpointError>([&] { ck.load(target.state, dir / "truncated"); }, "truncated");
  expect_error<CorruptCheckpointError>([&] { ck.load(target.state, dir / "foreign"); }, "not a Cairn checkpoint");
  expect_error<CorruptCheckpointError>([&] { ck.load(target.state, dir / "garbage"); }, "not an HDF5 file");
}
