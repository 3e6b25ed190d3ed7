// The node-local tier of CheckpointManager at 1 to 4 ranks, with "nodes" simulated by
// ranks_per_node (2 nodes from 2 ranks on; at 3 ranks nodes {0,1} and {2}), each with a directory
// of its own: saves published locally and drained to the root, restarts from the local copy, a
// lost node rebuilt from partner copies, a failed drain, and fallbacks to the root.
#include "sim_state.hpp"

#include <cstdlib>
#include <filesystem>

using namespace cairn;
using namespace cairn::test;
namespace fs = std::filesystem;

namespace {

class Tier : public ::testing::Test {
 protected:
  TempDir dir;

  // Two nodes from two ranks on.
  static int ranks_per_node() { return std::max(1, (world_size() + 1) / 2); }
  static int nodes() { return (world_size() + ranks_per_node() - 1) / ranks_per_node(); }

  ManagerOptions options(bool partners = false) const {
    ManagerOptions o;
    o.local_root = dir / "local/node{node}";
    o.ranks_per_node = ranks_per_node();
    o.partner_copies = partners;
    o.keep_local = 1;
    return o;
  }
  std::string node_dir(int node) const { return dir / ("local/node" + std::to_string(node)); }
  std::string remote() const { return dir / "remote"; }

  // Rank 0 alone; the others wait.
  template <class Body>
  static void on_rank0(Body&& body) {
    if (world_rank() == 0) body();
    MPI_Barrier(MPI_COMM_WORLD);
  }

  // True on every rank when nothing named like a partial save is left under the root.
  bool root_has_no_partial() const {
    bool clean = true;
    if (fs::exists(remote()))
      for (const auto& e : fs::directory_iterator(remote()))
        clean = clean && e.path().filename().string().find(".partial") == std::string::npos;
    return all_ranks(clean);
  }
};

// Sets CAIRN_FAULT for the scope (the drain's fault point is read on the worker).
struct Fault {
  explicit Fault(const char* spec) { ::setenv("CAIRN_FAULT", spec, 1); }
  ~Fault() { ::unsetenv("CAIRN_FAULT"); }
};

// Every rank loads the whole field of the checkpoint at `id` through `comm` and checks it.
bool whole_field_holds(MPI_Comm comm, const std::string& id, std::int64_t step) {
  Checkpointer ck(comm);
  std::vector<double> whole(static_cast<std::size_t>(field_shape[0] * field_shape[1]), -1.0);
  State s;
  s.add_array("field", field_shape, Extents{0, 0}, field_shape, whole.data());
  ck.load(s, id);
  bool ok = true;
  for (std::size_t i = 0; i < whole.size(); ++i) ok = ok && whole[i] == field_value(step, static_cast<std::int64_t>(i));
  return ok;
}

TEST_F(Tier, ASaveIsPublishedLocallyDrainedAndRestoredFromTheNode) {
  // 1 MiB: split among the ranks by the planner, so that rank 0 reads other nodes' files.
  std::vector<double> table(std::size_t{1} << 17);
  for (std::size_t i = 0; i < table.size(); ++i) table[i] = 0.5 * static_cast<double>(i);
  Sim sim(Decomposition::Slabs, 5);
  sim.state.add_replicated_array("table", Extents{std::int64_t{1} << 17}, table.data());
  {
    CheckpointManager manager(MPI_COMM_WORLD, remote(), options());
    manager.save(sim.state, 5);
    manager.wait();  // the drain
    const std::vector<CheckpointInfo> drained = manager.list();
    ASSERT_EQ(drained.size(), 1u);
    EXPECT_EQ(drained[0].step, 5);
    EXPECT_TRUE(root_has_no_partial());
    const std::optional<CheckpointInfo> newest = manager.latest();
    ASSERT_TRUE(newest.has_value());
    EXPECT_EQ(newest->step, 5);
    EXPECT_EQ(newest->tier, "node-local");
    // The root's copy aside: the restart can only come from the nodes' copies.
    on_rank0([&] { fs::rename(remote() + "/step_0000000005", remote() + "/aside"); });
    sim.clear();
    std::fill(table.begin(), table.end(), -1.0);
    const std::optional<std::int64_t> step = manager.restore_or_start(sim.state);
    on_rank0([&] { fs::rename(remote() + "/aside", remote() + "/step_0000000005"); });
    ASSERT_TRUE(step.has_value());
    EXPECT_EQ(*step, 5);
    bool table_ok = true;
    for (std::size_t i = 0; i < table.size(); ++i) table_ok = table_ok && table[i] == 0.5 * static_cast<double>(i);
    EXPECT_TRUE(all_ranks(sim.holds(5) && table_ok));
  }
  // The drained copy is an ordinary checkpoint: it loads on another rank count.
  const int color = world_size() > 1 && world_rank() == world_size() - 1 ? MPI_UNDEFINED : 0;
  MPI_Comm fewer = MPI_COMM_NULL;
  MPI_Comm_split(MPI_COMM_WORLD, color, world_rank(), &fewer);
  bool ok = true;
  if (fewer != MPI_COMM_NULL) {
    ok = whole_field_holds(fewer, remote() + "/step_0000000005", 5);
    MPI_Comm_free(&fewer);
  }
  EXPECT_TRUE(all_ranks(ok));
}

TEST_F(Tier, ALostNodeIsRebuiltFromPartnerCopies) {
  Sim sim(Decomposition::Slabs, 7);
  CheckpointManager manager(MPI_COMM_WORLD, remote(), options(true));
  {
    Fault no_drain("*:drain");  // the node-local copies are all there is
    manager.save(sim.state, 7);
    manager.wait();
  }
  EXPECT_TRUE(manager.list().empty());
  EXPECT_TRUE(root_has_no_partial());
  const int lost = nodes() - 1;
  on_rank0([&] { fs::remove_all(node_dir(lost)); });
  sim.clear();
  const std::optional<std::int64_t> step = manager.restore_or_start(sim.state);
  if (nodes() == 1) {  // no partner: nothing survives the loss of the only node
    EXPECT_FALSE(step.has_value());
    return;
  }
  ASSERT_TRUE(step.has_value());
  EXPECT_EQ(*step, 7);
  EXPECT_TRUE(all_ranks(sim.holds(7)));
  // The lost node's copy is whole again, partner copies included: it survives losing the other.
  EXPECT_TRUE(all_ranks(fs::exists(node_dir(lost) + "/step_0000000007/CAIRN")));
  on_rank0([&] { fs::remove_all(node_dir(0)); });
  sim.clear();
  const std::optional<std::int64_t> again = manager.restore_or_start(sim.state);
  ASSERT_TRUE(again.has_value());
  EXPECT_TRUE(all_ranks(sim.holds(7)));
}

TEST_F(Tier, ADeepCheckReplacesADamagedRankFileWithItsPartnerCopy) {
  if (nodes() == 1) GTEST_SKIP() << "partner copies need two nodes";
  Sim sim(Decomposition::Slabs, 8);
  ManagerOptions deep = options(true);
  deep.check = CheckMode::Deep;
  CheckpointManager manager(MPI_COMM_WORLD, remote(), deep);
  {
    Fault no_drain("*:drain");
    manager.save(sim.state, 8);
    manager.wait();
  }
  // One byte of the last rank's field flipped in its node's copy.
  const int last = world_size() - 1;
  const std::string file = node_dir(last / ranks_per_node()) + "/step_0000000008/rank_" +
                           std::string(6 - std::to_string(last).size(), '0') + std::to_string(last) + ".dat";
  on_rank0([&] {
    std::FILE* f = std::fopen(file.c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    const int c = std::fgetc(f);
    std::fseek(f, 0, SEEK_SET);
    std::fputc(c ^ 0x10, f);
    std::fclose(f);
  });
  sim.clear();
  ASSERT_EQ(manager.restore_or_start(sim.state).value_or(-1), 8);
  EXPECT_TRUE(all_ranks(sim.holds(8)));
}

TEST_F(Tier, AFailedDrainKeepsTheLocalCopyAndTheNextDrainCatchesUp) {
  Sim sim(Decomposition::Grid, 3);
  CheckpointManager manager(MPI_COMM_WORLD, remote(), options());
  {
    const std::string spec = std::to_string(world_size() - 1) + ":drain";
    Fault fault(spec.c_str());
    manager.save(sim.state, 3);
    manager.wait();
  }
  EXPECT_TRUE(manager.list().empty());
  EXPECT_TRUE(root_has_no_partial());
  EXPECT_TRUE(all_ranks(fs::exists(node_dir(world_rank() / ranks_per_node()) + "/step_0000000003/CAIRN")));
  sim.clear();
  ASSERT_EQ(manager.restore_or_start(sim.state).value_or(-1), 3);
  EXPECT_TRUE(all_ranks(sim.holds(3)));

  // What a drain killed mid-copy leaves under the root: an unpublished partial directory.
  on_rank0([&] {
    fs::create_directories(remote() + "/.step_0000000003.partial");
    std::FILE* f = std::fopen((remote() + "/.step_0000000003.partial/rank_000000.dat").c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("half a rank file", f);
    std::fclose(f);
  });
  EXPECT_TRUE(manager.list().empty());
  ASSERT_EQ(manager.latest().value_or(CheckpointInfo{}).tier, "node-local");

  // The next save removes it and drains; keep_local = 1 then retires step 3, older than a drained
  // checkpoint.
  sim.fill(4);
  manager.save(sim.state, 4);
  manager.wait();
  EXPECT_TRUE(root_has_no_partial());
  const std::vector<CheckpointInfo> drained = manager.list();
  ASSERT_EQ(drained.size(), 1u);
  EXPECT_EQ(drained[0].step, 4);
  const std::string mine = node_dir(world_rank() / ranks_per_node());
  EXPECT_TRUE(all_ranks(!fs::exists(mine + "/step_0000000003") && fs::exists(mine + "/step_0000000004/CAIRN")));
  sim.clear();
  ASSERT_EQ(manager.restore_or_start(sim.state).value_or(-1), 4);
  EXPECT_TRUE(all_ranks(sim.holds(4)));
}

TEST_F(Tier, OtherRanksOrNodesRestartFromTheRoot) {
  Sim sim(Decomposition::Slabs, 9);
  {
    CheckpointManager manager(MPI_COMM_WORLD, remote(), options());
    manager.save(sim.state, 9);
  }
  if (world_size() == 1) return;
  // The same ranks placed on other nodes: the local copies are not theirs.
  {
    ManagerOptions moved = options();
    moved.ranks_per_node = world_size();  // one node
    CheckpointManager manager(MPI_COMM_WORLD, remote(), moved);
    const std::optional<CheckpointInfo> newest = manager.latest();
    ASSERT_TRUE(newest.has_value());
    EXPECT_EQ(newest->tier, "root");
    sim.clear();
    ASSERT_EQ(manager.restore_or_start(sim.state).value_or(-1), 9);
    EXPECT_TRUE(all_ranks(sim.holds(9)));
  }
  // Fewer ranks: the root's copy, resharded.
  const int color = world_rank() == world_size() - 1 ? MPI_UNDEFINED : 0;
  MPI_Comm fewer = MPI_COMM_NULL;
  MPI_Comm_split(MPI_COMM_WORLD, color, world_rank(), &fewer);
  bool ok = true;
  if (fewer != MPI_COMM_NULL) {
    {
      CheckpointManager manager(fewer, remote(), options());
      const std::optional<CheckpointInfo> newest = manager.latest();
      ok = newest.has_value() && newest->tier == "root" && newest->step == 9;
      std::vector<double> whole(static_cast<std::size_t>(field_shape[0] * field_shape[1]), -1.0);
      State s;
      s.add_array("field", field_shape, Extents{0, 0}, field_shape, whole.data());
      ok = ok && manager.restore_or_start(s).value_or(-1) == 9;
      for (std::size_t i = 0; i < whole.size(); ++i)
        ok = ok && whole[i] == field_value(9, static_cast<std::int64_t>(i));
    }
    MPI_Comm_free(&fewer);
  }
  EXPECT_TRUE(all_ranks(ok));
}

TEST_F(Tier, BadOptionsAreRefusedOnEveryRank) {
  ManagerOptions bad = options();
  bad.keep_local = 0;
  expect_error<UsageError>([&] { CheckpointManager manager(MPI_COMM_WORLD, remote(), bad); }, "keep_local");
  bad = options();
  bad.drain_bytes_per_second = -1;
  expect_error<UsageError>([&] { CheckpointManager manager(MPI_COMM_WORLD, remote(), bad); }, "drain_bytes_per_second");
  if (nodes() > 1) {  // one directory for both "nodes"
    bad = options();
    bad.local_root = dir / "local/shared";
    expect_error<UsageError>([&] { CheckpointManager manager(MPI_COMM_WORLD, remote(), bad); }, "{node}");
  }
}

}  // namespace
