// When to checkpoint, at 1 to 4 ranks: the Young/Daly interval, a schedule by the mean time
// between failures from measured saves, the time a job has left (option or environment), and
// should_exit() saving once before it says yes.
#include "sim_state.hpp"

#include <cmath>
#include <cstdlib>
#include <filesystem>

using namespace cairn;
using namespace cairn::test;
namespace fs = std::filesystem;

namespace {

class Interval : public ::testing::Test {
 protected:
  void TearDown() override {
    ::unsetenv("CAIRN_JOB_END_TIME");
    ::unsetenv("SLURM_JOB_END_TIME");
  }
  TempDir dir;
};

TEST(OptimalInterval, FollowsDalyAndYoung) {
  // Daly's estimate, written out: sqrt(2CM) (1 + sqrt(C/2M)/3 + (C/2M)/9) - C.
  const double c = 10, m = 3600;
  const double r = c / (2 * m);
  EXPECT_DOUBLE_EQ(optimal_checkpoint_interval(c, m), std::sqrt(2 * c * m) * (1 + std::sqrt(r) / 3 + r / 9) - c);
  // Young's first-order sqrt(2CM) for a cheap save, within a percent.
  EXPECT_NEAR(optimal_checkpoint_interval(1, 86400) / std::sqrt(2.0 * 86400), 1.0, 0.01);
  // A save costlier than twice the MTBF: once per MTBF.
  EXPECT_DOUBLE_EQ(optimal_checkpoint_interval(100, 40), 40);
  EXPECT_DOUBLE_EQ(optimal_checkpoint_interval(0, 100), 0);
  // A costlier save or more reliable machine: a longer interval.
  EXPECT_LT(optimal_checkpoint_interval(5, 3600), optimal_checkpoint_interval(20, 3600));
  EXPECT_LT(optimal_checkpoint_interval(5, 3600), optimal_checkpoint_interval(5, 7200));
  EXPECT_THROW(optimal_checkpoint_interval(-1, 100), UsageError);
  EXPECT_THROW(optimal_checkpoint_interval(1, 0), UsageError);
  EXPECT_THROW(optimal_checkpoint_interval(std::nan(""), 100), UsageError);
  EXPECT_THROW(optimal_checkpoint_interval(1, INFINITY), UsageError);
}

TEST_F(Interval, TheFirstDueSaveMeasuresAndTheIntervalFollowsTheMtbf) {
  Sim sim(Decomposition::Slabs, 0);
  {
    // Failures every microsecond: the interval is the time of a whole save, so a save is due as
    // soon as the previous one has been measured.
    ManagerOptions often;
    often.mtbf_seconds = 1e-6;
    CheckpointManager manager(MPI_COMM_WORLD, dir / "often", often);
    EXPECT_EQ(manager.checkpoint_interval(), 0.0);  // nothing measured yet
    EXPECT_TRUE(manager.due(1));
    sim.fill(1);
    manager.save(sim.state, 1);
    const double interval = manager.checkpoint_interval();
    EXPECT_GT(interval, 0.0);
    EXPECT_TRUE(all_ranks(interval == manager.checkpoint_interval()));  // rank 0's, on every rank
    // Busy-wait past the interval (a whole save's time): then due, by rank 0's clock, everywhere.
    const auto start = std::chrono::steady_clock::now();
    while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < interval) {
    }
    EXPECT_TRUE(all_ranks(manager.due(2)));
  }
  {
    // Failures once in 30 years: after the first save nothing is due for a long while.
    ManagerOptions rarely;
    rarely.mtbf_seconds = 1e9;
    CheckpointManager manager(MPI_COMM_WORLD, dir / "rarely", rarely);
    int saves = 0;
    for (std::int64_t step = 1; step <= 6; ++step) {
      sim.fill(step);
      SaveFuture f = manager.save_if_due(sim.state, step);
      saves += f.valid() ? 1 : 0;
    }
    manager.wait();
    EXPECT_EQ(saves, 1);
    const double interval = manager.checkpoint_interval();
    EXPECT_GT(interval, 10.0);  // sqrt(2 C M): any stall above 50 ns gives more than 10 s
    EXPECT_FALSE(manager.due(7));
    Sim back(Decomposition::Grid, 0);
    back.clear();
    manager.checkpointer().load(back.state, manager.id_of(1));
    EXPECT_TRUE(all_ranks(back.holds(1)));
  }
}

TEST_F(Interval, TimeLeftComesFromTheOptionOrTheEnvironment) {
  {
    CheckpointManager manager(MPI_COMM_WORLD, dir / "none");
    EXPECT_FALSE(manager.time_left().has_value());
  }
  {
    ManagerOptions limited;
    limited.time_limit_seconds = 100;
    CheckpointManager manager(MPI_COMM_WORLD, dir / "limited", limited);
    const std::optional<double> left = manager.time_left();
    ASSERT_TRUE(left.has_value());
    EXPECT_GT(*left, 90.0);
    EXPECT_LE(*left, 100.0);
  }
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  // Slurm's variable, unless Cairn's own is set too, which wins. Only rank 0's environment counts.
  ::setenv("SLURM_JOB_END_TIME", std::to_string(static_cast<long long>(now) + 500).c_str(), 1);
  if (world_rank() != 0) ::setenv("SLURM_JOB_END_TIME", "garbage on other ranks is never read", 1);
  {
    CheckpointManager manager(MPI_COMM_WORLD, dir / "slurm");
    const std::optional<double> left = manager.time_left();
    ASSERT_TRUE(left.has_value());
    EXPECT_GT(*left, 400.0);
    EXPECT_LE(*left, 501.0);
  }
  ::setenv("CAIRN_JOB_END_TIME", std::to_string(static_cast<long long>(now) + 2000).c_str(), 1);
  {
    CheckpointManager manager(MPI_COMM_WORLD, dir / "cairn");
    EXPECT_GT(manager.time_left().value_or(0), 1500.0);
  }
  // A value that is not Unix seconds: refused on every rank, naming the variable.
  ::setenv("CAIRN_JOB_END_TIME", "tomorrow", 1);
  expect_error<UsageError>([&] { CheckpointManager manager(MPI_COMM_WORLD, dir / "bad"); }, "CAIRN_JOB_END_TIME");
}

TEST_F(Interval, ShouldExitSavesOnceThenSaysYes) {
  Sim sim(Decomposition::Slabs, 0);
  {
    // An hour left and a margin of a minute: no reason to stop, nothing saved.
    ManagerOptions plenty;
    plenty.time_limit_seconds = 3600;
    CheckpointManager manager(MPI_COMM_WORLD, dir / "plenty", plenty);
    sim.fill(3);
    EXPECT_TRUE(all_ranks(!manager.should_exit(sim.state, 3)));
    EXPECT_TRUE(manager.list().empty());
  }
  {
    // A margin longer than the limit: stop now, after saving step 9.
    ManagerOptions tight;
    tight.time_limit_seconds = 600;
    tight.exit_margin_seconds = 3600;
    CheckpointManager manager(MPI_COMM_WORLD, dir / "tight", tight);
    sim.fill(8);
    manager.save(sim.state, 8);
    sim.fill(9);
    EXPECT_TRUE(all_ranks(manager.should_exit(sim.state, 9)));
    std::vector<std::int64_t> steps;
    for (const CheckpointInfo& info : manager.list()) steps.push_back(info.step);
    EXPECT_EQ(steps, (std::vector<std::int64_t>{8, 9}));
    // Saying yes again saves nothing more, even for a later step.
    sim.fill(10);
    EXPECT_TRUE(all_ranks(manager.should_exit(sim.state, 10)));
    EXPECT_EQ(manager.list().size(), 2u);
    // The next job restarts from step 9, on another decomposition.
    Sim back(Decomposition::TwoPerRank, 0);
    back.clear();
    EXPECT_EQ(manager.restore_or_start(back.state), std::optional<std::int64_t>(9));
    EXPECT_TRUE(all_ranks(back.holds(9)));
  }
  {
    // Restored at step 9 and told to stop at once: step 9 is not saved again.
    ManagerOptions tight;
    tight.time_limit_seconds = 600;
    tight.exit_margin_seconds = 3600;
    CheckpointManager manager(MPI_COMM_WORLD, dir / "tight", tight);
    Sim back(Decomposition::Slabs, 0);
    ASSERT_EQ(manager.restore_or_start(back.state), std::optional<std::int64_t>(9));
    const fs::file_time_type before = fs::last_write_time(manager.id_of(9));
    EXPECT_TRUE(all_ranks(manager.should_exit(back.state, 9)));
    EXPECT_EQ(fs::last_write_time(manager.id_of(9)), before);
  }
}

TEST_F(Interval, BadOptionsAreRefusedOnEveryRank) {
  for (auto set : {+[](ManagerOptions& o) { o.mtbf_seconds = -1; }, +[](ManagerOptions& o) { o.mtbf_seconds = NAN; },
                   +[](ManagerOptions& o) { o.time_limit_seconds = -5; },
                   +[](ManagerOptions& o) { o.exit_margin_seconds = INFINITY; }}) {
    ManagerOptions options;
    set(options);
    expect_error<UsageError>([&] { CheckpointManager manager(MPI_COMM_WORLD, dir / "bad", options); },
                             "must be a finite number of seconds");
  }
}

}  // namespace
