// The node-local tier of CheckpointManager (ManagerOptions::local_root): saves written with the
// posix backend into each node's own directory and published there, drained to the manager's root
// by the worker, restarted from when complete on the same nodes, and, with partner copies, rebuilt
// after the loss of one node from the copies its partner node keeps.
//
// Layout of one checkpoint in the tier, on every node: "<local root>/<name>/" holds the posix
// metadata (metadata.cairn, the same on every node), the rank files of the node's ranks, the
// CAIRN marker, "tier.cairn" (world size and, per rank, node, host, rank file size and checksum)
// and, with partner copies, "partner/rank_<r>.dat" for the ranks whose partner is on this node.
#pragma once

#include <cairn/checkpointer.hpp>
#include <cairn/manager.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace cairn::detail {

struct SaveHooks;

/// Which node each rank is on, and each rank's partner.
struct NodeMap {
  int nodes = 1;
  std::vector<int> node_of;   ///< by rank
  std::vector<int> local_of;  ///< the rank's index among its node's ranks
  /// The ranks of each node, in rank order.
  std::vector<std::vector<int>> ranks_of;

  /// The rank with the same local index on the next node (wrapping; the index wraps on a node
  /// with fewer ranks); -1 with one node.
  int partner_of(int rank) const;
  /// The first rank of `node`: it creates, publishes and cleans the node's directories.
  int leader_of(int node) const { return ranks_of[static_cast<std::size_t>(node)].front(); }
};

/// Collective over `comm` (0 ranks_per_node: MPI_COMM_TYPE_SHARED).
NodeMap make_node_map(MPI_Comm comm, int ranks_per_node);

class NodeLocalTier {
 public:
  /// Collective over the checkpointer's communicator, which it duplicates. Throws UsageError for
  /// bad options (the same on every rank).
  NodeLocalTier(Checkpointer& checkpointer, std::string root, const ManagerOptions& options);
  ~NodeLocalTier();
  NodeLocalTier(const NodeLocalTier&) = delete;
  NodeLocalTier& operator=(const NodeLocalTier&) = delete;

  /// This rank's node's copy of checkpoint `name`. Not collective.
  std::string local_id(const std::string& name) const;

  /// Turns the options and hooks of the manager's save of `name` into those of a save into the
  /// tier: the writer, and the remote retention, which moves to after the drain.
  void prepare_save(SaveOptions& options, SaveHooks& hooks, const std::string& name);

  /// Collective. Queues the drain of `name` on the worker after `save`, which must be the save of
  /// `name`; it does nothing when that save failed. A failed drain is logged, never thrown: the
  /// checkpoint stays in the tier.
  void post_drain(const SaveFuture& save, const std::string& name);

  /// Waits for the drain in flight (collective under a low MPI thread level).
  void wait();

  /// Collective. The newest checkpoint usable from the tier or from `remote` (the published ones
  /// under the root, oldest first); a local copy wins at an equal step. `check_remote` says why a
  /// remote one fails the check, or "".
  std::optional<CheckpointInfo> latest(const std::vector<CheckpointInfo>& remote, CheckMode mode,
                                       const std::function<std::string(const CheckpointInfo&)>& check_remote);

  /// Collective. Loads the newest checkpoint that loads into `state`, from the tier when it can;
  /// `load_remote` loads a remote one (false: damaged, logged). std::nullopt when none loads.
  std::optional<std::int64_t> restore(State& state, const std::vector<CheckpointInfo>& remote, CheckMode mode,
                                      const LoadOptions& load,
                                      const std::function<bool(const CheckpointInfo&)>& load_remote);

  struct Shared;

 private:
  std::shared_ptr<Shared> m_shared;
  SaveFuture m_drain;
  std::function<void()> m_retention;  // the root's retention of the save whose drain is posted next
};

}  // namespace cairn::detail
