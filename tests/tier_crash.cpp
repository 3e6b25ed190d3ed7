// tier_crash: a kill -9 in the middle of a drain of the node-local tier, and the restart after it.
//
//   tier_crash save  DIR   saves step 1 into the tier under DIR; the last rank kills itself once its
//                          file is copied to the root, before the copy is published (never returns)
//   tier_crash check DIR   the root holds no published checkpoint, the node-local copy restores
//                          with the bytes of step 1 on every rank, and the next save drains and
//                          removes the partial directory the kill left
//
// Nodes are simulated with ranks_per_node ((P + 1) / 2 ranks each); partner copies are on.
// tier_crash.sh runs both; check exits 0 only when all holds.
#include <cairn/manager.hpp>

#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace {

constexpr std::int64_t rows_per_rank = 1000;

double value(std::int64_t step, std::int64_t index) {
  return static_cast<double>(step) * 1e6 + static_cast<double>(index) * 0.25;
}

bool everywhere(bool ok) {
  int flag = ok ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &flag, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return flag == 1;
}

bool root_has_partial(const std::string& root) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(root, ec))
    if (e.path().filename().string().find(".partial") != std::string::npos) return true;
  return false;
}

int run(const std::string& mode, const std::string& dir) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  cairn::ManagerOptions options;
  options.local_root = dir + "/local/node{node}";
  options.ranks_per_node = (size + 1) / 2;
  options.partner_copies = true;
  const std::string root = dir + "/root";
  std::vector<double> data(static_cast<std::size_t>(rows_per_rank));
  cairn::State state;
  state.add_array("field", cairn::Extents{rows_per_rank * size}, cairn::Extents{rows_per_rank * rank},
                  cairn::Extents{rows_per_rank}, data.data());
  auto fill = [&](std::int64_t step) {
    for (std::int64_t i = 0; i < rows_per_rank; ++i)
      data[static_cast<std::size_t>(i)] = value(step, rows_per_rank * rank + i);
  };
  auto holds = [&](std::int64_t step) {
    bool ok = true;
    for (std::int64_t i = 0; i < rows_per_rank; ++i)
      ok = ok && data[static_cast<std::size_t>(i)] == value(step, rows_per_rank * rank + i);
    return ok;
  };
  cairn::CheckpointManager manager(MPI_COMM_WORLD, root, options);
  if (mode == "save") {
    const std::string fault = std::to_string(size - 1) + ":drain:kill";
    ::setenv("CAIRN_FAULT", fault.c_str(), 1);
    fill(1);
    manager.save(state, 1);
    manager.wait();  // the drain: the last rank dies in it
    return 3;
  }
  const bool nothing_published = everywhere(manager.list().empty());
  const bool partial_left = everywhere(rank != 0 || root_has_partial(root));
  const std::optional<cairn::CheckpointInfo> newest = manager.latest();
  const bool local = everywhere(newest && newest->step == 1 && newest->tier == "node-local");
  fill(-1);
  const bool restored = everywhere(manager.restore_or_start(state).value_or(-1) == 1 && holds(1));
  fill(2);
  manager.save(state, 2);
  manager.wait();
  const std::vector<cairn::CheckpointInfo> drained = manager.list();
  const bool caught_up =
      everywhere(drained.size() == 1 && drained[0].step == 2 && (rank != 0 || !root_has_partial(root)));
  const bool ok = nothing_published && partial_left && local && restored && caught_up;
  if (rank == 0)
    std::printf(
        "TIER CRASH CHECK ranks=%d nothing_published=%d partial_left=%d local=%d restored=%d caught_up=%d: %s\n", size,
        nothing_published, partial_left, local, restored, caught_up, ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int status = 2;
  if (argc != 3 || (std::string(argv[1]) != "save" && std::string(argv[1]) != "check")) {
    std::fprintf(stderr, "usage: tier_crash save|check DIR\n");
  } else {
    try {
      status = run(argv[1], argv[2]);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "tier_crash: %s\n", e.what());
      status = 1;
    }
  }
  MPI_Finalize();
  return status;
}
