// async_save: the caller regains control before the write ends, staged bytes are a snapshot,
// errors reach every rank, and the worker runs clean under both MPI thread levels.
#include "test_support.hpp"

#include <cairn/cairn.hpp>

#include <gtest/gtest.h>
#include <mpi.h>
#include <xxhash.h>

#include <unistd.h>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

namespace cairn::test {
namespace {

bool background_mpi() {
  int provided = 0;
  MPI_Query_thread(&provided);
  return provided == MPI_THREAD_MULTIPLE;
}

// A field of `rows` x 64 doubles per rank, stacked by rank, with every value derived from the
// global index and `seed`.
struct Field {
  static constexpr std::int64_t cols = 64;
  std::int64_t rows;
  std::vector<double> values;
  State state;
  std::int64_t step = 0;
  std::vector<std::byte> rng;

  explicit Field(std::int64_t rows_per_rank, int seed = 1, int ranks = world_size(), int rank = world_rank())
      : rows(rows_per_rank),
        values(static_cast<std::size_t>(rows_per_rank * cols)),
        rng(16 + static_cast<std::size_t>(rank)) {
    fill(seed, rank);
    state.add_array("field", Extents{rows * ranks, cols}, Extents{rows * rank, 0}, Extents{rows, cols}, values.data());
    state.add_scalar("step", step);
    state.add_bytes("rng", rng);
  }
  void fill(int seed, int rank = world_rank()) {
    for (std::size_t i = 0; i < values.size(); ++i)
      values[i] = pattern(static_cast<std::int64_t>(i) + rows * cols * rank, seed);
    step = seed;
    for (std::size_t i = 0; i < rng.size(); ++i) rng[i] = static_cast<std::byte>(seed * 7 + rank + static_cast<int>(i));
  }
  // True when this rank's data equals what fill(seed) gives.
  bool holds(int seed, int rank = world_rank()) const {
    for (std::size_t i = 0; i < values.size(); ++i)
      if (values[i] != pattern(static_cast<std::int64_t>(i) + rows * cols * rank, seed)) return false;
    for (std::size_t i = 0; i < rng.size(); ++i)
      if (rng[i] != static_cast<std::byte>(seed * 7 + rank + static_cast<int>(i))) return false;
    return step == seed;
  }
  void clear() {
    std::fill(values.begin(), values.end(), -1.0);
    std::fill(rng.begin(), rng.end(), std::byte{0});
    step = -1;
  }
};

class Async : public ::testing::Test {
 protected:
  TempDir dir;
  Checkpointer ck{MPI_COMM_WORLD};
};

TEST_F(Async, ReportsTheThreadLevelItRunsUnder) {
  EXPECT_EQ(ck.background_writes(), background_mpi());
}

TEST_F(Async, CallerRegainsControlBeforeTheWriteEnds) {
  Field f(100, 3);
  auto writer = std::make_shared<BlockingWriter>();
  SaveOptions options;
  options.writer = writer;
  SaveFuture future = ck.async_save(f.state, dir / "ckpt", options);
  // async_save has returned while the write is held (background) or not yet started (deferred).
  if (ck.background_writes()) {
    writer->wait_until_entered();
    EXPECT_FALSE(future.test());
  }
  EXPECT_EQ(writer->writes(), 0);
  EXPECT_FALSE(std::filesystem::exists(dir / "ckpt"));
  f.fill(4);  // the checkpoint must still hold seed 3
  writer->release();
  future.get();
  EXPECT_TRUE(future.test());
  EXPECT_EQ(writer->writes(), 1);
  f.clear();
  ck.load(f.state, dir / "ckpt");
  EXPECT_TRUE(f.holds(3)) << "rank " << world_rank();
}

class AsyncStaging : public Async, public ::testing::WithParamInterface<StagingMode> {};

TEST_P(AsyncStaging, ArraysChangedAfterReturnDoNotChangeTheCheckpoint) {
  // 600 rows x 64 doubles = 300 KiB per rank... and a larger second array, so that a 2 MiB budget
  // needs several pieces and splits an item.
  Field f(600, 5);
  std::vector<float> big(static_cast<std::size_t>(1536 * 1024));  // 6 MiB per rank
  for (std::size_t i = 0; i < big.size(); ++i)
    big[i] = static_cast<float>(i % 9973) + 0.25f * static_cast<float>(world_rank());
  const std::vector<float> saved = big;
  const auto n = static_cast<std::int64_t>(big.size()) / 1024;
  f.state.add_array("big", Extents{n * world_size(), 1024}, Extents{n * world_rank(), 0}, Extents{n, 1024}, big.data());
  SaveOptions options;
  options.staging = GetParam();
  options.staging_budget_bytes = std::size_t{2} << 20;
  SaveFuture future = ck.async_save(f.state, dir / "ckpt", options);
  if (GetParam() != StagingMode::ZeroCopy) {  // copy and bounded: a snapshot at return
    f.fill(6);
    std::fill(big.begin(), big.end(), -3.0f);
  }
  future.get();
  const SaveTimings t = future.timings();
  EXPECT_GE(t.bytes_written, 6u << 20);  // at least this rank's share of "big"
  EXPECT_GE(t.write_seconds, 0.0);
  EXPECT_GE(t.stall_seconds, t.stage_seconds);
  f.clear();
  std::fill(big.begin(), big.end(), 0.0f);
  ck.load(f.state, dir / "ckpt");
  EXPECT_TRUE(f.holds(5)) << "rank " << world_rank();
  EXPECT_EQ(big, saved) << "rank " << world_rank();
}

TEST_P(AsyncStaging, StoredChecksumsMatchTheStoredBytes) {
  // Items larger than half the budget are written in sub-items; their checksum still covers the
  // whole item, in row-major order.
  std::vector<double> values(static_cast<std::size_t>(3 * 131072));  // 3 MiB per rank
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<double>(i) * 0.5 + world_rank();
  std::vector<std::int32_t> halo(12 * 14, 5);
  State s;
  s.add_array("v", Extents{3 * world_size(), 131072}, Extents{3 * world_rank(), 0}, Extents{3, 131072}, values.data());
  ArrayEntry& a = s.add_array("interior", DType::Int32, Extents{10 * world_size(), 12});
  a.chunks.push_back(
      Chunk{Extents{10 * world_rank(), 0}, Extents{10, 12}, &halo[15], Layout::RowMajor, Extents{14, 1}});
  SaveOptions options;
  options.staging = GetParam();
  options.staging_budget_bytes = std::size_t{2} << 20;
  ck.async_save(s, dir / "sums", options).get();

  auto reader = make_hdf5_reader();
  reader->open(dir / "sums", ck.process_group());
  const Metadata& md = reader->metadata();
  std::vector<std::vector<std::byte>> buffers(md.chunks.size());
  std::vector<ReadRequest> requests;
  for (std::size_t c = 0; c < md.chunks.size(); ++c) {
    const ChunkRecord& chunk = md.chunks[c];
    if (chunk.rank != world_rank()) continue;  // each rank checks what it wrote
    const EntryInfo& info = md.entries[static_cast<std::size_t>(chunk.entry)];
    std::int64_t n = 1;
    for (std::int64_t e : chunk.region.shape) n *= e;
    buffers[c].resize(static_cast<std::size_t>(n) * dtype_size(info.dtype));
    requests.push_back(ReadRequest{chunk.entry, chunk.region, info.dtype, buffers[c].data()});
  }
  reader->read(requests);
  reader->close();
  int checked = 0;
  for (std::size_t c = 0; c < md.chunks.size(); ++c) {
    if (md.chunks[c].rank != world_rank()) continue;
    EXPECT_EQ(XXH3_64bits(buffers[c].data(), buffers[c].size()), md.chunks[c].checksum)
        << "chunk " << c << " of entry " << md.entries[static_cast<std::size_t>(md.chunks[c].entry)].name;
    ++checked;
  }
  EXPECT_GE(checked, 2);
}

TEST_P(AsyncStaging, StridedChunksRoundTrip) {
  // A 10 x 12 interior inside a 12 x 14 array with halos: a strided chunk, never written in place.
  std::vector<std::int32_t> halo(12 * 14, -7);
  for (int i = 0; i < 10; ++i)
    for (int j = 0; j < 12; ++j)
      halo[static_cast<std::size_t>((i + 1) * 14 + j + 1)] = world_rank() * 1000 + i * 12 + j;
  State s;
  ArrayEntry& a = s.add_array("interior", DType::Int32, Extents{10 * world_size(), 12});
  a.chunks.push_back(
      Chunk{Extents{10 * world_rank(), 0}, Extents{10, 12}, &halo[15], Layout::RowMajor, Extents{14, 1}});
  SaveOptions options;
  options.staging = GetParam();
  ck.async_save(s, dir / "strided", options).get();
  std::vector<std::int32_t> back(120, 0);
  State r;
  r.add_array("interior", Extents{10 * world_size(), 12}, Extents{10 * world_rank(), 0}, Extents{10, 12}, back.data());
  ck.load(r, dir / "strided");
  for (int k = 0; k < 120; ++k) ASSERT_EQ(back[static_cast<std::size_t>(k)], world_rank() * 1000 + k);
}

INSTANTIATE_TEST_SUITE_P(Modes, AsyncStaging,
                         ::testing::Values(StagingMode::Copy, StagingMode::ZeroCopy, StagingMode::Bounded),
                         [](const auto& param_info) {
                           return std::string(param_info.param == StagingMode::Copy       ? "Copy"
                                              : param_info.param == StagingMode::ZeroCopy ? "ZeroCopy"
                                                                                          : "Bounded");
                         });

TEST_F(Async, BackToBackSaves) {
  Field f(50, 0);
  std::vector<SaveFuture> futures;
  for (int k = 1; k <= 5; ++k) {
    f.fill(k);
    futures.push_back(ck.async_save(f.state, dir / ("ckpt" + std::to_string(k))));  // waits for k - 1
  }
  for (SaveFuture& future : futures) future.get();
  for (int k = 1; k <= 5; ++k) {
    f.clear();
    ck.load(f.state, dir / ("ckpt" + std::to_string(k)));
    EXPECT_TRUE(f.holds(k)) << "checkpoint " << k << " on rank " << world_rank();
  }
}

TEST_F(Async, ErrorOnOneRankAtEachStepReachesEveryRankAndPublishesNothing) {
  Field f(40, 1);
  ck.save(f.state, dir / "ckpt");  // the previous checkpoint, which must survive every failure
  const int culprit = world_size() - 1;
  for (StagingMode mode : {StagingMode::Copy, StagingMode::Bounded}) {
    for (const char* step : {"validate", "plan", "stage", "prepare", "open", "write", "metadata", "publish"}) {
      const int faulty = std::string(step) == "publish" ? 0 : culprit;  // only rank 0 publishes
      const std::string spec = std::to_string(faulty) + ":" + step;
      ::setenv("CAIRN_FAULT", spec.c_str(), 1);
      f.fill(2);
      SaveOptions options;
      options.overwrite = true;
      options.staging = mode;
      options.staging_budget_bytes = std::size_t{2} << 20;
      SaveFuture future = ck.async_save(f.state, dir / "ckpt", options);
      expect_error<StorageError>([&] { future.get(); }, "on rank " + std::to_string(faulty));
      ::unsetenv("CAIRN_FAULT");
      MPI_Barrier(MPI_COMM_WORLD);
      if (world_rank() == 0) {
        EXPECT_FALSE(std::filesystem::exists(dir / ".ckpt.partial")) << "step " << step;
      }
      f.clear();
      ck.load(f.state, dir / "ckpt");
      EXPECT_TRUE(f.holds(1)) << "the previous checkpoint changed after a failure in step " << step << ", rank "
                              << world_rank();
    }
  }
}

TEST_F(Async, DestroyingTheCheckpointerWaitsForTheSaveInFlight) {
  Field f(64, 9);
  auto writer = std::make_shared<BlockingWriter>();
  {
    Checkpointer local(MPI_COMM_WORLD);
    SaveOptions options;
    options.writer = writer;
    local.async_save(f.state, dir / "ckpt", options);  // the future is dropped at once
    f.fill(10);
    if (local.background_writes()) {
      // Released only after the destructor has begun waiting.
      std::thread releaser([&] {
        writer->wait_until_entered();
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        writer->release();
      });
      releaser.detach();
    } else {
      writer->release();
    }
  }
  EXPECT_TRUE(writer->finished());
  f.clear();
  ck.load(f.state, dir / "ckpt");
  EXPECT_TRUE(f.holds(9)) << "rank " << world_rank();
}

TEST_F(Async, LowerThreadLevelFinishesInsideTest) {
  if (ck.background_writes()) GTEST_SKIP() << "MPI_THREAD_MULTIPLE: test() does not write";
  Field f(32, 11);
  SaveFuture future = ck.async_save(f.state, dir / "ckpt");
  EXPECT_FALSE(std::filesystem::exists(dir / "ckpt"));  // nothing written before test()
  MPI_Barrier(MPI_COMM_WORLD);
  EXPECT_TRUE(future.test());  // collective here: every rank calls it
  EXPECT_TRUE(std::filesystem::exists(dir / "ckpt"));
  future.get();
}

TEST_F(Async, ApplicationCollectivesWhileTheWorkerWrites) {
  // The application keeps using MPI on its own communicator during the save.
  Field f(2000, 12);
  SaveFuture future = ck.async_save(f.state, dir / "ckpt");
  long sum = 0;
  for (int k = 0; k < 200; ++k) {
    long one = 1;
    MPI_Allreduce(&one, &sum, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
  }
  EXPECT_EQ(sum, world_size());
  future.get();
  f.clear();
  ck.load(f.state, dir / "ckpt");
  EXPECT_TRUE(f.holds(12));
}

TEST_F(Async, TimingsAreRecorded) {
  Field f(128, 2);
  SaveFuture future = ck.async_save(f.state, dir / "ckpt");
  const SaveTimings t = future.timings();
  const SaveTimings last = ck.last_save_timings();
  EXPECT_EQ(t.bytes_written, last.bytes_written);
  EXPECT_GT(t.write_seconds + t.commit_seconds, 0.0);
  // This rank wrote at least its own field slab (replicated and rank-local bits go to some rank).
  EXPECT_GE(t.bytes_written, static_cast<std::uint64_t>(128 * Field::cols * 8));
}

TEST_F(Async, InvalidFutureSaysSo) {
  SaveFuture none;
  EXPECT_FALSE(none.valid());
  EXPECT_THROW(none.get(), UsageError);
}

TEST_F(Async, BudgetBelowTheMinimumIsAUsageError) {
  Field f(8, 1);
  SaveOptions options;
  options.staging = StagingMode::Bounded;
  options.staging_budget_bytes = 1000;
  SaveFuture future = ck.async_save(f.state, dir / "ckpt", options);
  expect_error<UsageError>([&] { future.get(); }, "staging budget");
}

TEST_F(Async, NoDistSavesEachRankAsAWorldOfOne) {
  // Every rank saves what it holds as its own checkpoint, with no collective at all.
  std::vector<double> mine(100);
  for (std::size_t i = 0; i < mine.size(); ++i) mine[i] = world_rank() * 1000.0 + static_cast<double>(i);
  State s;
  s.add_array("mine", Extents{100}, Extents{0}, Extents{100}, mine.data());
  SaveOptions options;
  options.no_dist = true;
  const std::string id = dir / ("rank" + std::to_string(world_rank()));
  ck.async_save(s, id, options).get();
  std::vector<double> back(100, 0.0);
  State r;
  r.add_array("mine", Extents{100}, Extents{0}, Extents{100}, back.data());
  LoadOptions load_options;
  load_options.no_dist = true;
  ck.load(r, id, load_options);
  EXPECT_EQ(back, mine);
}

// Counts its calls, then plans like the default planner.
class CountingPlanner final : public DefaultPlanner {
 public:
  SavePlan create_local_plan(const State& state, int rank, int world_size) override {
    ++local_plans;
    return DefaultPlanner::create_local_plan(state, rank, world_size);
  }
  int local_plans = 0;
};

TEST_F(Async, PerSaveProcessGroupAndPlanner) {
  // Two halves of the world save separate checkpoints through one checkpointer, each over its own
  // group, with a planner given for that save only.
  const int half = world_rank() < (world_size() + 1) / 2 ? 0 : 1;
  MPI_Comm half_comm = MPI_COMM_NULL;
  MPI_Comm_split(MPI_COMM_WORLD, half, world_rank(), &half_comm);
  int half_rank = 0;
  int half_size = 1;
  MPI_Comm_rank(half_comm, &half_rank);
  MPI_Comm_size(half_comm, &half_size);
  Field f(20, 30 + half, half_size, half_rank);
  auto planner = std::make_shared<CountingPlanner>();
  SaveOptions options;
  options.process_group = std::make_shared<MpiProcessGroup>(half_comm);
  options.planner = planner;
  const std::string id = dir / ("half" + std::to_string(half));
  ck.async_save(f.state, id, options).get();
  EXPECT_EQ(planner->local_plans, 1);
  f.clear();
  LoadOptions load_options;
  load_options.process_group = options.process_group;
  ck.load(f.state, id, load_options);
  EXPECT_TRUE(f.holds(30 + half, half_rank)) << "rank " << world_rank();
  options.process_group.reset();
  load_options.process_group.reset();
  MPI_Comm_free(&half_comm);
}

std::size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t pages = 0;
  std::size_t resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

TEST_F(Async, ThousandSmallSavesKeepMemoryFlat) {
  // tmpfs keeps this about the worker and the library, not the disk.
  const bool shm = std::filesystem::is_directory("/dev/shm");
  std::unique_ptr<TempDir> fast;
  std::string root = dir.path();
  if (shm) {
    fast = std::make_unique<TempDir>(MPI_COMM_WORLD, "/dev/shm");
    root = fast->path();
  }
  const char* count_text = std::getenv("CAIRN_TEST_SAVES");
  const int count = count_text ? std::atoi(count_text) : 1000;
  Field f(16, 0);
  SaveOptions options;
  options.overwrite = true;
  SaveFuture future;
  std::size_t after_warmup = 0;
  for (int k = 1; k <= count; ++k) {
    f.fill(k);
    future = ck.async_save(f.state, root + "/ckpt" + std::to_string(k % 2), options);
    if (k == 20) {
      future.get();
      after_warmup = resident_bytes();
    }
  }
  future.get();
  const std::size_t growth = resident_bytes() > after_warmup ? resident_bytes() - after_warmup : 0;
#if defined(__SANITIZE_ADDRESS__)
  // AddressSanitizer keeps freed memory in quarantine (256 MiB by default): resident memory grows
  // by design. This build still runs the saves; the plain and ThreadSanitizer builds check memory.
  constexpr bool check_memory = false;
#else
  constexpr bool check_memory = true;
#endif
  if (check_memory) {
    EXPECT_LT(growth, std::size_t{16} << 20)
        << "resident memory grew by " << growth << " bytes over " << count << " saves on rank " << world_rank();
  }
  f.clear();
  ck.load(f.state, root + "/ckpt" + std::to_string(count % 2));
  EXPECT_TRUE(f.holds(count));
}

}  // namespace
}  // namespace cairn::test
