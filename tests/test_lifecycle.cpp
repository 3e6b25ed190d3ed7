// The checkpoint lifecycle at 1 to 4 ranks: checksums verified on load (resharded, sliced,
// converted), Checkpointer::verify naming bad chunks, and CheckpointManager's naming, schedule,
// retention, fallback to an older checkpoint and removal of leftovers.
#include "sim_state.hpp"

#include <chrono>
#include <filesystem>
#include <thread>

using namespace cairn;
using namespace cairn::test;
namespace fs = std::filesystem;

namespace {

class Lifecycle : public ::testing::Test {
 protected:
  TempDir dir;
};

TEST_F(Lifecycle, ChecksumsAreVerifiedOnAReshardedLoadThroughSmallBuffers) {
  // Saved by rank 0 alone as one chunk of 30 KiB, loaded by every rank in pieces through the
  // smallest buffer, so that chunks are read in slices and copied out.
  const Extents big_shape{512, 40};
  std::vector<double> whole(static_cast<std::size_t>(512 * 40));
  for (std::size_t i = 0; i < whole.size(); ++i) whole[i] = static_cast<double>(i) * 0.25 - 3.0;
  std::vector<std::int32_t> narrow(512);
  for (std::size_t i = 0; i < narrow.size(); ++i) narrow[i] = static_cast<std::int32_t>(i) * -3;
  Checkpointer ck(MPI_COMM_WORLD);
  if (world_rank() == 0) {
    State s;
    s.add_array("big", big_shape, Extents{0, 0}, big_shape, whole.data());
    s.add_array("narrow", Extents{512}, Extents{0}, Extents{512}, narrow.data());
    SaveOptions alone;
    alone.no_dist = true;
    ck.save(s, dir / "alone", alone);
  }
  MPI_Barrier(MPI_COMM_WORLD);

  for (Decomposition kind : {Decomposition::Slabs, Decomposition::Grid, Decomposition::TwoPerRank}) {
    const auto blocks = decompose(big_shape, world_size(), world_rank(), kind);
    std::vector<std::vector<double>> mine(blocks.size());
    State s;
    ArrayEntry& big = s.add_array("big", DType::Float64, big_shape);
    for (std::size_t b = 0; b < blocks.size(); ++b) {
      mine[b].assign(static_cast<std::size_t>(blocks[b].shape[0] * blocks[b].shape[1]), 0.0);
      big.add_chunk(blocks[b].offset, blocks[b].shape, mine[b].data());
    }
    // Stored int32, loaded as int64: checked in the stored type, then read with conversion.
    std::vector<std::int64_t> wide(512, 0);
    s.add_array("narrow", Extents{512}, Extents{0}, Extents{512}, wide.data());
    LoadOptions options;
    options.verify_buffer_bytes = 64 << 10;
    ck.load(s, dir / "alone", options);
    bool ok = true;
    for (std::size_t b = 0; b < blocks.size(); ++b)
      for_each_element(blocks[b], [&](const Extents& l, std::int64_t pos) {
        ok = ok && mine[b][static_cast<std::size_t>(pos)] ==
                       whole[static_cast<std::size_t>(global_linear(big_shape, blocks[b], l))];
      });
    for (std::size_t i = 0; i < wide.size(); ++i) ok = ok && wide[i] == narrow[i];
    EXPECT_TRUE(all_ranks(ok)) << "decomposition " << static_cast<int>(kind);
  }

  LoadOptions tiny;
  tiny.verify_buffer_bytes = 1024;
  State s;
  std::vector<std::int32_t> some(512);
  s.add_array("narrow", Extents{512}, Extents{0}, Extents{512}, some.data());
  expect_error<UsageError>([&] { ck.load(s, dir / "alone", tiny); }, "verification buffer");
}

TEST_F(Lifecycle, AFlippedByteFailsTheLoadOnEveryRankAndVerifyNamesTheChunk) {
  Checkpointer ck(MPI_COMM_WORLD);
  Sim sim(Decomposition::Slabs, 5);
  ck.save(sim.state, dir / "ckpt");
  // Damage the last rank's block of the field: its first element's lowest byte.
  const int last = world_size() - 1;
  const auto blocks = decompose(field_shape, world_size(), last, Decomposition::Slabs);
  const std::int64_t first_row = blocks[0].offset[0];
  flip_byte(dir / "ckpt/data.h5", "field", first_row * field_shape[1] * 8);

  sim.clear();
  const std::string chunk = "[" + std::to_string(first_row) + ":" + std::to_string(first_row + blocks[0].shape[0]) +
                            ", 0:" + std::to_string(field_shape[1]) + "]";
  expect_error<CorruptCheckpointError>([&] { ck.load(sim.state, dir / "ckpt"); },
                                       "chunk " + chunk + " of entry 'field' saved by rank " + std::to_string(last));
  expect_error<CorruptCheckpointError>([&] { ck.load(sim.state, dir / "ckpt"); }, "checksum mismatch");

  const VerifyReport report = ck.verify(dir / "ckpt");
  EXPECT_FALSE(report.ok());
  ASSERT_EQ(report.bad_chunks.size(), 1U);
  EXPECT_EQ(report.bad_chunks[0].entry, "field");
  EXPECT_EQ(report.bad_chunks[0].saving_rank, last);
  EXPECT_EQ(report.bad_chunks[0].offset, (Extents{first_row, 0}));
  EXPECT_EQ(report.bad_chunks[0].shape, (Extents{blocks[0].shape[0], field_shape[1]}));
  EXPECT_NE(report.bad_chunks[0].expected_checksum, report.bad_chunks[0].actual_checksum);
  // Every chunk was read once, by some rank: the field's blocks and the counters' blocks.
  EXPECT_EQ(report.chunks_checked, 2 * world_size());
  EXPECT_EQ(report.bytes_checked, field_shape[0] * field_shape[1] * 8 + 7 * world_size() * 4);

  // Without verification the damaged byte comes through, and only it.
  LoadOptions unchecked;
  unchecked.verify_checksums = false;
  ck.load(sim.state, dir / "ckpt", unchecked);
  EXPECT_FALSE(all_ranks(sim.holds(5)));
  if (world_rank() != last) {
    EXPECT_TRUE(sim.holds(5));
  }
  if (world_rank() == last) {
    EXPECT_NE(sim.data[0][0], field_value(5, first_row * field_shape[1]));
    EXPECT_EQ(sim.data[0][1], field_value(5, first_row * field_shape[1] + 1));
  }
}

TEST_F(Lifecycle, VerifyOfAnIntactCheckpointSharesTheChunksOut) {
  Checkpointer ck(MPI_COMM_WORLD);
  Sim sim(Decomposition::TwoPerRank, 3);
  ck.save(sim.state, dir / "ckpt");
  VerifyOptions small;
  small.buffer_bytes = 64 << 10;
  const VerifyReport report = ck.verify(dir / "ckpt", small);
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.id, dir / "ckpt");
  EXPECT_EQ(report.bytes_checked, field_shape[0] * field_shape[1] * 8 + 7 * world_size() * 4);
  expect_error<StorageError>([&] { ck.verify(dir / "missing"); }, "missing");
}

TEST_F(Lifecycle, ManagerSavesWhenDueAndKeepsTheLastAndEveryMilestone) {
  ManagerOptions options;
  options.every_steps = 2;
  options.keep_last = 2;
  options.keep_every = 4;
  CheckpointManager manager(MPI_COMM_WORLD, dir / "run", options);
  Sim sim(Decomposition::Slabs, 0);
  EXPECT_FALSE(manager.restore_or_start(sim.state).has_value());
  EXPECT_FALSE(manager.latest().has_value());
  int saves = 0;
  for (std::int64_t step = 1; step <= 10; ++step) {
    sim.fill(step);
    SaveFuture f = manager.save_if_due(sim.state, step);
    EXPECT_EQ(f.valid(), step % 2 == 0);
    saves += f.valid() ? 1 : 0;
  }
  manager.wait();
  EXPECT_EQ(saves, 5);
  const std::vector<CheckpointInfo> kept = manager.list();
  std::vector<std::int64_t> steps;
  for (const auto& info : kept) steps.push_back(info.step);
  EXPECT_EQ(steps, (std::vector<std::int64_t>{4, 8, 10}));
  EXPECT_EQ(manager.id_of(8), dir / "run/step_0000000008");
  if (world_rank() == 0) {
    EXPECT_FALSE(fs::exists(dir / "run/step_0000000002"));
    EXPECT_FALSE(fs::exists(dir / "run/step_0000000006"));
  }
  // Every kept checkpoint loads with its step's bytes, on another decomposition.
  Checkpointer& ck = manager.checkpointer();
  for (const auto& info : kept) {
    Sim back(Decomposition::Grid, 0);
    back.clear();
    ck.load(back.state, info.id);
    EXPECT_TRUE(all_ranks(back.holds(info.step))) << info.id;
  }
  Sim restored(Decomposition::TwoPerRank, 0);
  restored.clear();
  EXPECT_EQ(manager.restore_or_start(restored.state), std::optional<std::int64_t>(10));
  EXPECT_TRUE(all_ranks(restored.holds(10)));
  EXPECT_EQ(manager.latest(CheckMode::Deep)->step, 10);
}

TEST_F(Lifecycle, ManagerSkipsDamagedCheckpointsAndRestoresTheNewestGoodOne) {
  CheckpointManager manager(MPI_COMM_WORLD, dir / "run");
  Sim sim(Decomposition::Slabs, 0);
  for (std::int64_t step : {1, 2, 3}) {
    sim.fill(step);
    manager.save(sim.state, step);
  }
  truncate_file(manager.id_of(3) + "/data.h5", 4096);       // torn file: metadata unreadable
  flip_byte(manager.id_of(2) + "/data.h5", "counters", 4);  // readable, but a chunk is damaged
  EXPECT_EQ(manager.list().size(), 3U);
  EXPECT_EQ(manager.latest(CheckMode::Fast)->step, 2);  // 3 fails the fast check, 2 passes it
  EXPECT_EQ(manager.latest(CheckMode::Deep)->step, 1);  // 2 fails the deep one
  const VerifyReport two = manager.verify(2);
  ASSERT_EQ(two.bad_chunks.size(), 1U);
  EXPECT_EQ(two.bad_chunks[0].entry, "counters");
  EXPECT_EQ(two.bad_chunks[0].saving_rank, 0);

  Sim back(Decomposition::Grid, 0);
  back.clear();
  EXPECT_EQ(manager.restore_or_start(back.state), std::optional<std::int64_t>(1));
  EXPECT_TRUE(all_ranks(back.holds(1)));

  // A state that does not fit the checkpoints is the caller's error, not a reason to skip.
  State wrong;
  std::vector<double> other(3);
  wrong.add_array("field", Extents{3 * world_size()}, Extents{3 * world_rank()}, Extents{3}, other.data());
  expect_error<UsageError>([&] { manager.restore_or_start(wrong); }, "field");
}

TEST_F(Lifecycle, TheNextSaveRemovesLeftoversAndRetentionLeavesOtherFilesAlone) {
  ManagerOptions options;
  options.keep_last = 1;
  CheckpointManager manager(MPI_COMM_WORLD, dir / "run", options);
  Sim sim(Decomposition::Slabs, 4);
  manager.save(sim.state, 4);
  if (world_rank() == 0) {
    fs::create_directories(dir / "run/.step_0000000007.partial/sub");
    fs::create_directories(dir / "run/.step_0000000003.removing");
    fs::create_directories(dir / "run/other");
    fs::create_directories(dir / "run/step_12ab");
    // A checkpoint moved aside by a replacement that never arrived comes back.
    fs::rename(dir / "run/step_0000000004", dir / "run/.step_0000000004.old");
  }
  MPI_Barrier(MPI_COMM_WORLD);
  sim.fill(5);
  manager.save(sim.state, 5);  // keeps only itself among the checkpoints
  if (world_rank() == 0) {
    EXPECT_FALSE(fs::exists(dir / "run/.step_0000000007.partial"));
    EXPECT_FALSE(fs::exists(dir / "run/.step_0000000003.removing"));
    EXPECT_FALSE(fs::exists(dir / "run/.step_0000000004.old"));
    EXPECT_TRUE(fs::exists(dir / "run/other"));
    EXPECT_TRUE(fs::exists(dir / "run/step_12ab"));
  }
  std::vector<std::int64_t> steps;
  for (const auto& info : manager.list()) steps.push_back(info.step);
  EXPECT_EQ(steps, (std::vector<std::int64_t>{5}));
  Sim back(Decomposition::Slabs, 0);
  back.clear();
  EXPECT_EQ(manager.restore_or_start(back.state), std::optional<std::int64_t>(5));
  EXPECT_TRUE(all_ranks(back.holds(5)));
}

TEST_F(Lifecycle, TimeScheduleIsRankZerosAndBadOptionsAreRefused) {
  ManagerOptions by_time;
  by_time.every_seconds = 0.05;
  CheckpointManager manager(MPI_COMM_WORLD, dir / "run", by_time);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_TRUE(manager.due(1));  // rank 0's clock, broadcast: the same answer everywhere
  ManagerOptions rarely;
  rarely.every_seconds = 1e9;
  CheckpointManager never(MPI_COMM_WORLD, dir / "never", rarely);
  EXPECT_FALSE(never.due(1));

  ManagerOptions bad;
  bad.keep_last = 0;
  expect_error<UsageError>([&] { CheckpointManager m(MPI_COMM_WORLD, dir / "x", bad); }, "keep_last");
  bad = ManagerOptions{};
  bad.prefix = "a/b";
  expect_error<UsageError>([&] { CheckpointManager m(MPI_COMM_WORLD, dir / "x", bad); }, "prefix");
  bad = ManagerOptions{};
  bad.every_seconds = -1;
  expect_error<UsageError>([&] { CheckpointManager m(MPI_COMM_WORLD, dir / "x", bad); }, "every_seconds");

  Sim sim(Decomposition::Slabs, 1);
  expect_error<UsageError>([&] { manager.save(sim.state, -1); }, "negative");
  if (world_size() > 1) {
    expect_error<UsageError>([&] { manager.save(sim.state, world_rank()); }, "different steps");
    EXPECT_TRUE(manager.list().empty());
  }
}

}  // namespace
