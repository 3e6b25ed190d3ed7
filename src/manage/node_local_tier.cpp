#include "manage/node_local_tier.hpp"

#include <cairn/error.hpp>

#include "comm/agree.hpp"
#include "comm/broadcast.hpp"
#include "core/byte_codec.hpp"
#include "core/checksum.hpp"
#include "core/fault.hpp"
#include "core/log.hpp"
#include "exec/checkpointer_access.hpp"
#include "manage/tier_files.hpp"
#include "storage/common/publish.hpp"
#include "storage/posix/posix_storage.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <utility>

namespace cairn::detail {

namespace px = detail::posix;

int NodeMap::partner_of(int rank) const {
  if (nodes < 2) return -1;
  const int next = (node_of[static_cast<std::size_t>(rank)] + 1) % nodes;
  const std::vector<int>& there = ranks_of[static_cast<std::size_t>(next)];
  return there[static_cast<std::size_t>(local_of[static_cast<std::size_t>(rank)]) % there.size()];
}

NodeMap make_node_map(MPI_Comm comm, int ranks_per_node) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  std::vector<int> key(static_cast<std::size_t>(size));  // any value shared by exactly a node's ranks
  if (ranks_per_node > 0) {
    for (int r = 0; r < size; ++r) key[static_cast<std::size_t>(r)] = r / ranks_per_node;
  } else {
    MPI_Comm local = MPI_COMM_NULL;
    if (MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &local) != MPI_SUCCESS)
      throw CommunicationError("MPI_Comm_split_type(MPI_COMM_TYPE_SHARED) failed on rank " + std::to_string(rank));
    int leader = rank;
    const int rc = MPI_Allreduce(MPI_IN_PLACE, &leader, 1, MPI_INT, MPI_MIN, local);
    MPI_Comm_free(&local);
    if (rc != MPI_SUCCESS || MPI_Allgather(&leader, 1, MPI_INT, key.data(), 1, MPI_INT, comm) != MPI_SUCCESS)
      throw CommunicationError("finding the ranks of each node failed on rank " + std::to_string(rank));
  }
  // Nodes numbered by their first rank, so that rank 0 is always on node 0.
  NodeMap map;
  std::map<int, int> index_of_key;
  for (int r = 0; r < size; ++r) index_of_key.emplace(key[static_cast<std::size_t>(r)], 0);
  std::vector<std::pair<int, int>> first_rank;  // (first rank, key)
  for (const auto& kv : index_of_key) {
    const auto at = std::find(key.begin(), key.end(), kv.first) - key.begin();
    first_rank.emplace_back(static_cast<int>(at), kv.first);
  }
  std::sort(first_rank.begin(), first_rank.end());
  for (std::size_t n = 0; n < first_rank.size(); ++n) index_of_key[first_rank[n].second] = static_cast<int>(n);
  map.nodes = static_cast<int>(first_rank.size());
  map.ranks_of.assign(first_rank.size(), {});
  for (int r = 0; r < size; ++r) {
    const int node = index_of_key[key[static_cast<std::size_t>(r)]];
    map.node_of.push_back(node);
    map.local_of.push_back(static_cast<int>(map.ranks_of[static_cast<std::size_t>(node)].size()));
    map.ranks_of[static_cast<std::size_t>(node)].push_back(r);
  }
  return map;
}

struct NodeLocalTier::Shared {
  Checkpointer* checkpointer = nullptr;
  // The tier's own duplicate: used on the worker inside saves and drains, and on the caller's
  // thread only once the worker is idle (latest, restore), never by both at once.
  std::unique_ptr<MpiProcessGroup> group;
  int rank = 0;
  int size = 1;
  NodeMap map;
  std::string root;
  std::string local_root;  // this node's
  ManagerOptions options;
  std::string host;

  bool leader() const { return map.leader_of(map.node_of[static_cast<std::size_t>(rank)]) == rank; }
  int node() const { return map.node_of[static_cast<std::size_t>(rank)]; }
  std::string local_dir(const std::string& name) const { return local_root + "/" + name; }
  bool partners() const { return options.partner_copies && map.nodes > 1; }

  std::string name_of(std::int64_t step) const {
    char digits[32];
    std::snprintf(digits, sizeof digits, "%010lld", static_cast<long long>(step));
    return options.prefix + digits;
  }
};

namespace {

using Clock = std::chrono::steady_clock;

std::string rank_file(int rank) {
  return px::rank_data_file_name(rank);
}

// Removes what interrupted saves, recoveries and removals left in this node's tier, except
// `keep_partial`. A leader only.
void remove_local_leftovers(const NodeLocalTier::Shared& s, const std::string& keep_partial) {
  const std::string hidden = "." + s.options.prefix;
  for (const std::string& name : tier::directory_names(s.local_root)) {
    if (name.compare(0, hidden.size(), hidden) != 0 || name == keep_partial) continue;
    if (!tier::ends_with(name, ".partial") && !tier::ends_with(name, ".removing") && !tier::ends_with(name, ".old"))
      continue;
    const std::string path = s.local_root + "/" + name;
    if (tier::ends_with(name, ".old")) {
      const std::string final_name = name.substr(1, name.size() - 1 - 4);
      if (!tier::exists(s.local_root + "/" + final_name) &&
          ::rename(path.c_str(), (s.local_root + "/" + final_name).c_str()) == 0)
        continue;
    }
    remove_tree(path);
  }
}

// Writes the posix layout into this node's directory, then copies the metadata to every node,
// sends the partner copies and records where each rank's file lives ("tier.cairn"); the leaders
// of the nodes other than rank 0's publish their copy, rank 0's is published by the checkpointer.
class TierWriter final : public StorageWriter {
 public:
  TierWriter(std::shared_ptr<NodeLocalTier::Shared> shared, std::string name)
      : m_s(std::move(shared)), m_name(std::move(name)), m_inner(make_posix_writer()) {}

  void set_local_items(const std::vector<WriteItem>& items) override { m_inner->set_local_items(items); }

  void open(const std::string& directory, const std::vector<EntryInfo>& entries, ProcessGroup& group) override {
    NodeLocalTier::Shared& s = *m_s;
    m_paths = checkpoint_paths(s.local_dir(m_name));
    agree_on(*s.group, "preparing the node-local directory '" + m_paths.partial_dir + "'", [&] {
      if (!s.leader()) return;
      remove_local_leftovers(s, "." + m_name + ".partial");
      if (s.rank != 0) begin_checkpoint(m_paths, true);  // rank 0's node: done by the checkpointer
      m_began = true;
    });
    m_inner->open(directory, entries, group);
  }

  void write(const std::vector<WriteBuffer>& buffers) override { m_inner->write(buffers); }

  void finish(const Metadata& metadata) override {
    m_inner->finish(metadata);
    NodeLocalTier::Shared& s = *m_s;
    ProcessGroup& g = *s.group;
    const std::string what = "node-local copy '" + m_paths.final_dir + "'";
    const std::string dir = m_paths.partial_dir;
    std::vector<std::byte> meta;
    std::uint64_t size = 0;
    agree_on(g, what + " (metadata)", [&] {
      if (s.rank == 0) meta = tier::read_whole(dir + "/" + px::metadata_file_name);
      size = tier::file_size(dir + "/" + rank_file(s.rank));
    });
    broadcast_bytes(g, meta, 0);
    std::uint64_t sum = 0;
    if (s.partners()) {
      std::vector<tier::FileTransfer> list;
      for (int r = 0; r < s.size; ++r)
        list.push_back({r, s.map.partner_of(r), dir + "/" + rank_file(r), dir + "/partner/" + rank_file(r)});
      const std::vector<std::uint64_t> sums = tier::transfer_files(g, list, what + " (partner copies)");
      sum = sums[static_cast<std::size_t>(s.rank)];
    }
    detail::ByteWriter mine;
    mine.u64(size);
    mine.u64(sum);
    mine.str(s.host);
    const std::vector<std::vector<std::byte>> all = g.gather(mine.bytes(), 0);
    std::vector<std::byte> record;
    agree_on(g, what + " (tier record)", [&] {
      if (s.rank != 0) return;
      tier::TierRecord rec;
      rec.world = s.size;
      for (int r = 0; r < s.size; ++r) {
        const auto& bytes = all[static_cast<std::size_t>(r)];
        detail::ByteReader in(bytes.data(), bytes.size(), "the tier record of rank " + std::to_string(r));
        tier::RankRecord rr;
        rr.node = s.map.node_of[static_cast<std::size_t>(r)];
        rr.size = in.u64();
        rr.checksum = in.u64();
        rr.host = in.str();
        rec.ranks.push_back(rr);
      }
      const std::string text = tier::format_record(rec);
      record.resize(text.size());
      std::memcpy(record.data(), text.data(), text.size());
    });
    broadcast_bytes(g, record, 0);
    agree_on(g, what + " (node metadata)", [&] {
      if (!s.leader()) return;
      if (s.rank != 0) tier::write_file(dir + "/" + px::metadata_file_name, meta);
      tier::write_file(dir + "/" + tier::record_file_name, record);
    });
    agree_on(g, what + " (publish)", [&] {
      fault_point("local-publish", s.rank);
      if (s.leader() && s.rank != 0) publish_checkpoint(m_paths);
    });
  }

  void abort() noexcept override {
    m_inner->abort();
    if (m_began && m_s->leader() && m_s->rank != 0) discard_checkpoint(m_paths);
  }

 private:
  std::shared_ptr<NodeLocalTier::Shared> m_s;
  std::string m_name;
  std::unique_ptr<StorageWriter> m_inner;
  CheckpointPaths m_paths;
  bool m_began = false;
};

// Published checkpoints in a directory: (step, name), oldest first.
std::vector<std::pair<std::int64_t, std::string>> published_in(const std::string& dir, const std::string& prefix) {
  std::vector<std::pair<std::int64_t, std::string>> found;
  for (const std::string& name : tier::directory_names(dir)) {
    const std::int64_t step = tier::step_of(name, prefix);
    if (step < 0 || !tier::exists(dir + "/" + name + "/" + marker_file_name)) continue;
    found.emplace_back(step, name);
  }
  std::sort(found.begin(), found.end());
  return found;
}

// A leader, after a drain: removes this node's checkpoints beyond the newest keep_local, each only
// once a checkpoint at least as new is published under the root (its own copy, or a newer one
// where retention there has already removed it).
void retain_local(const NodeLocalTier::Shared& s) {
  const auto local = published_in(s.local_root, s.options.prefix);
  const auto remote = published_in(s.root, s.options.prefix);
  const std::int64_t newest_remote = remote.empty() ? -1 : remote.back().first;
  const std::size_t keep = static_cast<std::size_t>(s.options.keep_local);
  for (std::size_t i = 0; i + keep < local.size(); ++i) {
    if (local[i].first > newest_remote) continue;  // not drained yet: kept
    const std::string doomed = s.local_root + "/." + local[i].second + ".removing";
    if (::rename((s.local_root + "/" + local[i].second).c_str(), doomed.c_str()) != 0)
      throw StorageError("cannot remove node-local checkpoint '" + s.local_root + "/" + local[i].second +
                         "': " + errno_text(errno));
    remove_tree(doomed);
  }
}

// The worker's drain of checkpoint `name` from the tier to the root: every rank copies its own
// rank file into the root's partial directory, rank 0 the metadata, then rank 0 publishes it as
// any checkpoint. The local copy is untouched; on failure the partial directory is removed (a
// crash leaves it unpublished, for the next save to remove).
void drain(NodeLocalTier::Shared& s, const std::string& name, const std::function<void()>& remote_retention) {
  ProcessGroup& g = *s.group;
  const CheckpointPaths remote = checkpoint_paths(s.root + "/" + name);
  const std::string local = s.local_dir(name);
  const std::string what = "drain of '" + local + "' to '" + remote.final_dir + "'";
  const auto start = Clock::now();
  try {
    agree_on(g, what + " (prepare)", [&] {
      if (s.rank == 0) begin_checkpoint(remote, true);
    });
    agree_on(g, what + " (copy)", [&] {
      tier::copy_file(local + "/" + rank_file(s.rank), remote.partial_dir + "/" + rank_file(s.rank),
                      s.options.drain_bytes_per_second);
      fault_point("drain", s.rank);
    });
    agree_on(g, what + " (publish)", [&] {
      if (s.rank != 0) return;
      tier::copy_file(local + "/" + px::metadata_file_name, remote.partial_dir + "/" + px::metadata_file_name, 0);
      publish_checkpoint(remote);
    });
  } catch (...) {
    if (s.rank == 0) discard_checkpoint(remote);
    throw;
  }
  if (s.rank == 0) {
    char line[256];
    std::snprintf(line, sizeof line, " in %.3f s", std::chrono::duration<double>(Clock::now() - start).count());
    log(LogLevel::Info, what + " done" + line);
    try {
      if (remote_retention) remote_retention();
    } catch (const std::exception& e) {
      log(LogLevel::Warn, what + ": retention under the root: " + e.what());
    }
  }
  if (s.leader()) {
    try {
      retain_local(s);
    } catch (const std::exception& e) {
      log(LogLevel::Warn, "node-local retention on node " + std::to_string(s.node()) + ": " + e.what());
    }
  }
}

// Collective: per step published somewhere in the tier, how many nodes hold it; newest first.
std::vector<std::pair<std::int64_t, int>> local_steps(NodeLocalTier::Shared& s) {
  ProcessGroup& g = *s.group;
  detail::ByteWriter mine;
  std::vector<std::pair<std::int64_t, std::string>> found;
  agree_on(g, "listing the node-local checkpoints in '" + s.local_root + "'", [&] {
    if (s.leader()) found = published_in(s.local_root, s.options.prefix);
  });
  mine.u64(found.size());
  for (const auto& f : found) mine.i64(f.first);
  const std::vector<std::vector<std::byte>> all = g.gather(mine.bytes(), 0);
  std::vector<std::byte> result;
  if (s.rank == 0) {
    std::map<std::int64_t, int> nodes_with;
    for (const auto& bytes : all) {
      detail::ByteReader in(bytes.data(), bytes.size(), "a node's list of checkpoints");
      const std::size_t n = in.count(8);
      for (std::size_t i = 0; i < n; ++i) ++nodes_with[in.i64()];
    }
    detail::ByteWriter out;
    out.u64(nodes_with.size());
    for (auto it = nodes_with.rbegin(); it != nodes_with.rend(); ++it) {
      out.i64(it->first);
      out.i64(it->second);
    }
    result = std::move(out.bytes());
  }
  broadcast_bytes(g, result, 0);
  detail::ByteReader in(result.data(), result.size(), "the list of node-local checkpoints");
  std::vector<std::pair<std::int64_t, int>> steps(in.count(16));
  for (auto& st : steps) {
    st.first = in.i64();
    st.second = static_cast<int>(in.i64());
  }
  return steps;
}

std::vector<std::int64_t> gather_flags(ProcessGroup& g, std::int64_t mine) {
  std::vector<std::int64_t> all(static_cast<std::size_t>(g.size()));
  g.allgather(&mine, sizeof mine, all.data());
  return all;
}

// Collective. Makes the tier's copy of `name` ready to load on every node, or says why not (on
// every rank the same). With partner copies, a node that lost its copy (or a rank file) gets it
// back from its partner node. Rank files that hold replicated data are fetched to rank 0's node,
// which reads them for everyone.
std::string prepare_local(NodeLocalTier::Shared& s, const std::string& name, bool deep) {
  ProcessGroup& g = *s.group;
  const CheckpointPaths paths = checkpoint_paths(s.local_dir(name));
  const std::string what = "node-local copy of '" + name + "'";
  const std::vector<std::int64_t> has = gather_flags(g, tier::exists(paths.final_dir + "/" + marker_file_name) ? 1 : 0);
  std::vector<bool> node_missing(static_cast<std::size_t>(s.map.nodes), false);
  bool any_missing = false;
  for (int n = 0; n < s.map.nodes; ++n)
    if (has[static_cast<std::size_t>(s.map.leader_of(n))] == 0)
      node_missing[static_cast<std::size_t>(n)] = any_missing = true;
  const bool recovering = node_missing[static_cast<std::size_t>(s.node())];
  if (any_missing) {
    if (!s.partners()) return "missing on some node";
    for (int n = 0; n < s.map.nodes; ++n)
      if (node_missing[static_cast<std::size_t>(n)] && node_missing[static_cast<std::size_t>((n + 1) % s.map.nodes)])
        return "missing on node " + std::to_string(n) + " and on its partner node";
  }
  const std::string dir = recovering ? paths.partial_dir : paths.final_dir;
  auto give_up = [&](const std::string& why) {
    if (recovering && s.leader()) discard_checkpoint(paths);
    return why;
  };
  try {
    if (any_missing) {
      agree_on(g, what + " (recreate)", [&] {
        if (recovering && s.leader()) begin_checkpoint(paths, false);
      });
      std::vector<tier::FileTransfer> list;
      for (int n = 0; n < s.map.nodes; ++n) {
        if (!node_missing[static_cast<std::size_t>(n)]) continue;
        const int from = s.map.leader_of((n + 1) % s.map.nodes);
        for (const char* file : {px::metadata_file_name, tier::record_file_name})
          list.push_back({from, s.map.leader_of(n), dir + "/" + file, dir + "/" + file});
      }
      tier::transfer_files(g, list, what + " (node metadata from the partner node)");
    }
  } catch (const Error& e) {
    return give_up(e.what());
  }
  // 0: ready; 1: this rank's file is missing or damaged; 2: the copy is not for this rank.
  std::int64_t status = 0;
  tier::TierRecord rec;
  try {
    rec = tier::parse_record(tier::read_whole(dir + "/" + tier::record_file_name), dir);
    const tier::RankRecord* mine = rec.world == s.size ? &rec.ranks[static_cast<std::size_t>(s.rank)] : nullptr;
    if (mine == nullptr || mine->node != s.node() || mine->host != s.host) {
      status = 2;
    } else {
      const std::string own = dir + "/" + rank_file(s.rank);
      if (!tier::exists(own) || tier::file_size(own) != mine->size)
        status = 1;
      else if (deep && mine->checksum != 0 && tier::file_checksum(own) != mine->checksum)
        status = 1;
    }
  } catch (const Error&) {
    status = 2;
  }
  const std::vector<std::int64_t> statuses = gather_flags(g, status);
  for (int r = 0; r < s.size; ++r)
    if (statuses[static_cast<std::size_t>(r)] == 2)
      return give_up("saved on other ranks or nodes than rank " + std::to_string(r) + " now runs on");
  try {
    std::vector<tier::FileTransfer> list;
    std::vector<int> lacking;
    for (int r = 0; r < s.size; ++r) {
      if (statuses[static_cast<std::size_t>(r)] != 1) continue;
      if (!s.partners()) return give_up("rank " + std::to_string(r) + "'s file is missing or damaged");
      list.push_back({s.map.partner_of(r), r, dir + "/partner/" + rank_file(r), dir + "/" + rank_file(r)});
      lacking.push_back(r);
    }
    // The partner copies a lost node held are sent again by their owners.
    for (int r = 0; r < s.size && any_missing; ++r) {
      const int p = s.map.partner_of(r);
      if (node_missing[static_cast<std::size_t>(s.map.node_of[static_cast<std::size_t>(p)])] &&
          statuses[static_cast<std::size_t>(r)] == 0)
        list.push_back({r, p, dir + "/" + rank_file(r), dir + "/partner/" + rank_file(r)});
    }
    const std::vector<std::uint64_t> sums = tier::transfer_files(g, list, what + " (rank files from partners)");
    agree_on(g, what + " (check recovered files)", [&] {
      for (std::size_t k = 0; k < lacking.size(); ++k)
        if (lacking[k] == s.rank && rec.ranks[static_cast<std::size_t>(s.rank)].checksum != sums[k])
          throw CorruptCheckpointError("the partner copy of rank " + std::to_string(s.rank) + "'s file has checksum " +
                                       checksum_hex(sums[k]) + ", not " +
                                       checksum_hex(rec.ranks[static_cast<std::size_t>(s.rank)].checksum));
    });
    if (!lacking.empty() && s.rank == 0)
      log(LogLevel::Warn, what + ": the files of " + std::to_string(lacking.size()) +
                              " rank(s) were restored from their partner copies");
    agree_on(g, what + " (publish recovered copy)", [&] {
      if (recovering && s.leader()) publish_checkpoint(paths);
    });
  } catch (const Error& e) {
    return give_up(e.what());
  }
  try {
    // Replicated data is read by rank 0 for every rank: its node needs the files that hold it.
    std::unique_ptr<StorageReader> reader = px::make_node_local_reader();
    reader->open(paths.final_dir, g);
    const Metadata& md = reader->metadata();
    std::vector<bool> needed(static_cast<std::size_t>(s.size), false);
    for (const ChunkRecord& c : md.chunks)
      if (c.rank >= 0 && c.rank < s.size && c.source.empty() &&
          md.entries[static_cast<std::size_t>(c.entry)].distribution == Distribution::Replicated)
        needed[static_cast<std::size_t>(c.rank)] = true;
    reader->close();
    // Rank 0 says which it lacks (an earlier restart may have fetched them).
    std::vector<std::int64_t> fetch(static_cast<std::size_t>(s.size), 0);
    if (s.rank == 0)
      for (int r = 0; r < s.size; ++r)
        fetch[static_cast<std::size_t>(r)] = needed[static_cast<std::size_t>(r)] &&
                                             s.map.node_of[static_cast<std::size_t>(r)] != 0 &&
                                             !tier::exists(paths.final_dir + "/" + rank_file(r));
    g.broadcast(fetch.data(), fetch.size() * sizeof(std::int64_t), 0);
    std::vector<tier::FileTransfer> list;
    for (int r = 0; r < s.size; ++r)
      if (fetch[static_cast<std::size_t>(r)] != 0)
        list.push_back({r, 0, paths.final_dir + "/" + rank_file(r), paths.final_dir + "/" + rank_file(r)});
    tier::transfer_files(g, list, what + " (files with replicated data to rank 0)");
    if (!list.empty() && s.rank == 0)
      log(LogLevel::Info,
          what + ": fetched " + std::to_string(list.size()) + " rank file(s) holding replicated data to rank 0's node");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Collective. Throws UsageError on every rank when two nodes' leaders see the same directory (a
// path on a shared file system without "{node}"): their copies would overwrite each other.
void check_not_shared(NodeLocalTier::Shared& s) {
  if (s.map.nodes < 2) return;
  ProcessGroup& g = *s.group;
  const std::string probe = s.local_root + "/.cairn-node-" + std::to_string(s.node());
  agree_on(g, "probing local_root '" + s.local_root + "'", [&] {
    if (!s.leader()) return;
    tier::make_directories(s.local_root);
    tier::write_file(probe, {});
  });
  std::int64_t shared = 0;
  if (s.leader())
    for (int n = 0; n < s.map.nodes; ++n)
      if (n != s.node() && tier::exists(s.local_root + "/.cairn-node-" + std::to_string(n))) shared = 1;
  g.allreduce(&shared, 1, ReduceOp::Max);  // every leader has looked before any probe goes
  if (s.leader()) ::unlink(probe.c_str());
  if (shared != 0)
    throw UsageError("CheckpointManager: local_root '" + s.options.local_root +
                     "' is one directory for several nodes; use node-local storage, or put \"{node}\" in it");
}

}  // namespace

NodeLocalTier::NodeLocalTier(Checkpointer& checkpointer, std::string root, const ManagerOptions& options)
    : m_shared(std::make_shared<Shared>()) {
  Shared& s = *m_shared;
  const std::string where = "CheckpointManager: local_root '" + options.local_root + "'";
  if (checkpointer.process_group().mpi_comm() == MPI_COMM_NULL)
    throw UsageError(where + ": the node-local tier needs a checkpointer over an MPI communicator");
  if (options.ranks_per_node < 0)
    throw UsageError(where + ": ranks_per_node is " + std::to_string(options.ranks_per_node) + "; 0 or more");
  if (options.keep_local < 1)
    throw UsageError(where + ": keep_local is " + std::to_string(options.keep_local) +
                     "; the newest checkpoint must be kept");
  if (!(options.drain_bytes_per_second >= 0) || !std::isfinite(options.drain_bytes_per_second))
    throw UsageError(where + ": drain_bytes_per_second must be a finite rate, not negative");
  checkpointer.wait();
  s.checkpointer = &checkpointer;
  s.group = std::make_unique<MpiProcessGroup>(checkpointer.process_group().mpi_comm());
  s.rank = s.group->rank();
  s.size = s.group->size();
  s.map = make_node_map(s.group->mpi_comm(), options.ranks_per_node);
  s.root = std::move(root);
  s.options = options;
  s.host = tier::host_name();
  std::string local = options.local_root;
  const std::string mark = "{node}";
  for (std::size_t at = local.find(mark); at != std::string::npos; at = local.find(mark, at))
    local.replace(at, mark.size(), std::to_string(s.node()));
  while (local.size() > 1 && local.back() == '/') local.pop_back();
  s.local_root = local;
  check_not_shared(s);
  if (options.partner_copies && s.map.nodes < 2 && s.rank == 0)
    log(LogLevel::Info, "CheckpointManager: every rank is on one node: no partner copies are kept");
}

NodeLocalTier::~NodeLocalTier() {
  try {
    wait();
  } catch (...) {
    // Never throws; the drain logs its own failure.
  }
}

std::string NodeLocalTier::local_id(const std::string& name) const {
  return m_shared->local_dir(name);
}

void NodeLocalTier::prepare_save(SaveOptions& options, SaveHooks& hooks, const std::string& name) {
  // The tier's layout is posix, written collectively (the nodes publish together).
  options.writer = std::make_shared<TierWriter>(m_shared, name);
  options.use_collectives = true;
  options.no_dist = false;
  options.process_group = nullptr;
  m_retention = std::move(hooks.after_publish);
  hooks.after_publish = nullptr;
}

void NodeLocalTier::post_drain(const SaveFuture& save, const std::string& name) {
  std::shared_ptr<Shared> shared = m_shared;
  std::function<void()> retention = std::move(m_retention);
  m_retention = nullptr;
  m_drain = CheckpointerAccess::run_after(*shared->checkpointer, [shared, future = save, name, retention]() mutable {
    try {
      future.get();  // done already: the drain runs after the save on the same worker
    } catch (const Error&) {
      return;  // nothing published: nothing to drain
    }
    try {
      drain(*shared, name, retention);
    } catch (const std::exception& e) {
      if (shared->rank == 0)
        log(LogLevel::Warn, std::string("the checkpoint stays in the node-local tier only: ") + e.what());
    }
  });
}

void NodeLocalTier::wait() {
  if (m_drain.valid()) m_drain.wait();
  m_drain = SaveFuture();
}

std::optional<CheckpointInfo> NodeLocalTier::latest(
    const std::vector<CheckpointInfo>& remote, CheckMode mode,
    const std::function<std::string(const CheckpointInfo&)>& check_remote) {
  wait();
  Shared& s = *m_shared;
  const std::vector<std::pair<std::int64_t, int>> local = local_steps(s);
  std::map<std::int64_t, int, std::greater<>> steps;  // step -> nodes holding it (-1: root only)
  for (const auto& l : local) steps[l.first] = l.second;
  for (const CheckpointInfo& r : remote) steps.emplace(r.step, -1);
  for (const auto& [step, nodes] : steps) {
    if (nodes == s.map.nodes || (s.partners() && nodes == s.map.nodes - 1)) {
      const std::string why = prepare_local(s, s.name_of(step), mode == CheckMode::Deep);
      if (why.empty()) return CheckpointInfo{step, s.local_dir(s.name_of(step)), "node-local"};
      if (s.rank == 0) log(LogLevel::Info, "node-local copy of step " + std::to_string(step) + " not used: " + why);
    }
    for (auto it = remote.rbegin(); it != remote.rend(); ++it) {
      if (it->step != step) continue;
      const std::string why = check_remote(*it);
      if (why.empty()) return *it;
      if (s.rank == 0) log(LogLevel::Warn, "checkpoint '" + it->id + "' is skipped: " + why);
    }
  }
  return std::nullopt;
}

std::optional<std::int64_t> NodeLocalTier::restore(State& state, const std::vector<CheckpointInfo>& remote,
                                                   CheckMode mode, const LoadOptions& load,
                                                   const std::function<bool(const CheckpointInfo&)>& load_remote) {
  wait();
  Shared& s = *m_shared;
  const std::vector<std::pair<std::int64_t, int>> local = local_steps(s);
  std::map<std::int64_t, int, std::greater<>> steps;
  for (const auto& l : local) steps[l.first] = l.second;
  for (const CheckpointInfo& r : remote) steps.emplace(r.step, -1);
  for (const auto& [step, nodes] : steps) {
    if (nodes == s.map.nodes || (s.partners() && nodes == s.map.nodes - 1)) {
      const std::string name = s.name_of(step);
      std::string why = prepare_local(s, name, mode == CheckMode::Deep);
      if (why.empty()) {
        try {
          LoadOptions local_load = load;
          local_load.reader = px::make_node_local_reader();
          s.checkpointer->load(state, s.local_dir(name), local_load);
          if (s.rank == 0)
            log(LogLevel::Info, "restored step " + std::to_string(step) + " from the node-local tier ('" +
                                    s.local_dir(name) + "' on node 0)");
          return step;
        } catch (const UsageError&) {
          throw;
        } catch (const UnsupportedError&) {
          throw;
        } catch (const Error& e) {
          why = e.what();
        }
      }
      if (s.rank == 0) log(LogLevel::Info, "node-local copy of step " + std::to_string(step) + " not used: " + why);
    }
    for (auto it = remote.rbegin(); it != remote.rend(); ++it)
      if (it->step == step && load_remote(*it)) return step;
  }
  return std::nullopt;
}

}  // namespace cairn::detail
