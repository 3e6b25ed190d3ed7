// plan_bench: how save planning and metadata scale with the number of entries (see SCALING.md).
//
// The state: N sharded float64 arrays of `--elems` elements per rank (global shape ranks * elems,
// every rank holds one chunk of each), plus a few replicated arrays, an int64 scalar and a
// rank-local blob. For every N, each run builds a fresh Checkpointer and saves the state twice:
//   first    the first save's planning (validate, local plans, gather, global plan, scatter, finish)
//   cached   a second save of the same structure (the cached plan, one small agreement)
// Figures are SaveTimings::plan_seconds on the slowest rank, the median of the runs. Saves go to a
// writer that writes nothing (--writer null, the default) so that the run measures planning and
// commit bookkeeping rather than the file system; --writer posix writes real checkpoints.
// Collectives are counted (calls and bytes, per kind) by a ProcessGroup that forwards to an
// MpiProcessGroup. MPI runs at MPI_THREAD_FUNNELED, so async_save() returns after planning and
// staging and everything after runs inside get(): the counts split cleanly into "plan" and
// "commit". --components also times each planning step alone on rank 0, with R simulated ranks.
//
// Usage: mpirun -np P cairn_plan_bench [--n 1000,10000,100000] [--elems 16] [--runs 5] [--cached 3]
//                                      [--writer null|posix] [--dir DIR] [--components R,...] [--json]
#include <cairn/cairn.hpp>

#include "bench_support.hpp"

#include "core/metadata_codec.hpp"
#include "core/region.hpp"
#include "core/validate.hpp"
#include "plan/plan_codec.hpp"

#include <mpi.h>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

struct Options {
  std::vector<std::int64_t> sizes{1000, 10000, 100000};
  std::int64_t elems = 16;
  int runs = 5;
  int cached = 3;  // cached saves per run
  int replicated = 4;
  std::string writer = "null";
  std::string dir;
  std::vector<std::int64_t> components;  // simulated rank counts for the per-step timings
  bool json = false;
  bool help = false;
};

const char* usage_text =
    "usage: mpirun -np P cairn_plan_bench [--n LIST] [--elems E] [--runs R] [--cached C] [--replicated K]\n"
    "                                     [--writer null|posix] [--dir DIR] [--components LIST] [--json]\n"
    "  --n           comma-separated numbers of sharded arrays; default 1000,10000,100000\n"
    "  --elems       float64 elements per rank of each array; default 16\n"
    "  --runs        runs per size (fresh checkpointer, first save, cached saves); median; default 5\n"
    "  --cached      cached saves per run (same structure as the first); default 3\n"
    "  --replicated  replicated arrays besides the sharded ones; default 4\n"
    "  --writer      null (write nothing, measure planning) or posix (write real checkpoints)\n"
    "  --dir         where checkpoints go (a private subdirectory, removed at the end); default /tmp\n"
    "  --components  also time each planning step alone on rank 0 for these simulated rank counts,\n"
    "                and the overlap check of one array cut into that many blocks\n"
    "  --json        print one JSON object per size as well as the table\n";

bool parse_list(const std::string& text, std::vector<std::int64_t>& out) {
  out.clear();
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = std::min(text.find(',', start), text.size());
    std::int64_t v = 0;
    if (!cairn::bench::parse_int(text.substr(start, comma - start), 1, INT64_MAX, v)) return false;
    out.push_back(v);
    start = comma + 1;
  }
  return !out.empty();
}

std::string parse_args(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    std::int64_t n = 0;
    if (arg == "--help" || arg == "-h") {
      o.help = true;
    } else if (arg == "--json") {
      o.json = true;
    } else if (arg == "--n") {
      if (!parse_list(value(), o.sizes)) return "--n needs a list of positive integers";
    } else if (arg == "--components") {
      if (!parse_list(value(), o.components)) return "--components needs a list of positive integers";
    } else if (arg == "--elems") {
      if (!cairn::bench::parse_int(value(), 1, INT64_MAX, n)) return "--elems needs a positive integer";
      o.elems = n;
    } else if (arg == "--runs") {
      if (!cairn::bench::parse_int(value(), 1, 1000, n)) return "--runs needs an integer from 1 to 1000";
      o.runs = static_cast<int>(n);
    } else if (arg == "--cached") {
      if (!cairn::bench::parse_int(value(), 1, 1000, n)) return "--cached needs an integer from 1 to 1000";
      o.cached = static_cast<int>(n);
    } else if (arg == "--replicated") {
      if (!cairn::bench::parse_int(value(), 0, 1000, n)) return "--replicated needs an integer from 0 to 1000";
      o.replicated = static_cast<int>(n);
    } else if (arg == "--writer") {
      o.writer = value();
      if (o.writer != "null" && o.writer != "posix") return "--writer takes null or posix";
    } else if (arg == "--dir") {
      o.dir = value();
      if (o.dir.empty()) return "--dir needs a directory";
    } else {
      return "unknown argument '" + arg + "'";
    }
  }
  return "";
}

// ---------------------------------------------------------------------------------------------
// A ProcessGroup that counts the calls and bytes of each kind of collective.

enum Kind { Barrier, Broadcast, Allgather, Gather, Scatter, Allreduce, n_kinds };
const char* const kind_names[n_kinds] = {"barrier", "broadcast", "allgather", "gather", "scatter", "allreduce"};

struct Counts {
  std::array<std::int64_t, n_kinds> calls{};
  std::array<std::int64_t, n_kinds> bytes{};
  std::int64_t total_calls() const {
    std::int64_t n = 0;
    for (std::int64_t c : calls) n += c;
    return n;
  }
  std::int64_t total_bytes() const {
    std::int64_t n = 0;
    for (std::int64_t b : bytes) n += b;
    return n;
  }
  Counts operator-(const Counts& o) const {
    Counts d;
    for (int k = 0; k < n_kinds; ++k) {
      d.calls[static_cast<std::size_t>(k)] = calls[static_cast<std::size_t>(k)] - o.calls[static_cast<std::size_t>(k)];
      d.bytes[static_cast<std::size_t>(k)] = bytes[static_cast<std::size_t>(k)] - o.bytes[static_cast<std::size_t>(k)];
    }
    return d;
  }
};

// Bytes are the payload through this rank: what it sends plus what it receives (a root counts
// everything it gathers or scatters).
class CountingGroup final : public cairn::ProcessGroup {
 public:
  explicit CountingGroup(MPI_Comm comm) : m_inner(comm) {}

  Counts snapshot() const {
    Counts c;
    for (std::size_t k = 0; k < n_kinds; ++k) {
      c.calls[k] = m_calls[k].load();
      c.bytes[k] = m_bytes[k].load();
    }
    return c;
  }

  int rank() const noexcept override { return m_inner.rank(); }
  int size() const noexcept override { return m_inner.size(); }
  void barrier() override {
    count(Barrier, 0);
    m_inner.barrier();
  }
  void broadcast(void* data, std::size_t bytes, int root) override {
    count(Broadcast, bytes);
    m_inner.broadcast(data, bytes, root);
  }
  void allgather(const void* send, std::size_t bytes, void* recv) override {
    count(Allgather, bytes * static_cast<std::size_t>(size() + 1));
    m_inner.allgather(send, bytes, recv);
  }
  std::vector<std::vector<std::byte>> gather(const std::vector<std::byte>& send, int root) override {
    auto out = m_inner.gather(send, root);
    std::size_t bytes = send.size();
    for (const auto& part : out) bytes += part.size();
    count(Gather, bytes);
    return out;
  }
  std::vector<std::byte> scatter(const std::vector<std::vector<std::byte>>& send, int root) override {
    auto out = m_inner.scatter(send, root);
    std::size_t bytes = out.size();
    for (const auto& part : send) bytes += part.size();
    count(Scatter, bytes);
    return out;
  }
  void allreduce(std::int64_t* values, std::size_t count_, cairn::ReduceOp op) override {
    count(Allreduce, count_ * sizeof(std::int64_t));
    m_inner.allreduce(values, count_, op);
  }
  MPI_Comm mpi_comm() const noexcept override { return m_inner.mpi_comm(); }

 private:
  void count(Kind k, std::size_t bytes) {
    m_calls[static_cast<std::size_t>(k)].fetch_add(1);
    m_bytes[static_cast<std::size_t>(k)].fetch_add(static_cast<std::int64_t>(bytes));
  }
  cairn::MpiProcessGroup m_inner;
  std::array<std::atomic<std::int64_t>, n_kinds> m_calls{};
  std::array<std::atomic<std::int64_t>, n_kinds> m_bytes{};
};

// ---------------------------------------------------------------------------------------------
// A writer that writes nothing; it records the size of the metadata it is handed.

struct MetadataSize {
  std::int64_t bytes = 0;
  std::int64_t entries = 0;
  std::int64_t chunks = 0;
};

class NullWriter final : public cairn::StorageWriter {
 public:
  explicit NullWriter(MetadataSize* out) : m_out(out) {}
  void open(const std::string&, const std::vector<cairn::EntryInfo>&, cairn::ProcessGroup&) override {}
  void write(const std::vector<cairn::WriteBuffer>&) override {}
  void finish(const cairn::Metadata& md) override {
    if (m_out == nullptr) return;
    m_out->bytes = static_cast<std::int64_t>(cairn::detail::encode_metadata(md).size());
    m_out->entries = static_cast<std::int64_t>(md.entries.size());
    m_out->chunks = static_cast<std::int64_t>(md.chunks.size());
  }
  void abort() noexcept override {}

 private:
  MetadataSize* m_out;
};

// ---------------------------------------------------------------------------------------------
// The state

struct BenchState {
  std::vector<double> data;        // n * elems sharded values, then the replicated arrays
  std::vector<double> replicated;  // replicated * elems
  std::int64_t step = 42;
  std::uint64_t rng = 0;
  cairn::State state;
};

std::string array_name(std::int64_t i) {
  char name[64];
  std::snprintf(name, sizeof name, "fields/g%04lld/a%07lld", static_cast<long long>(i / 1000),
                static_cast<long long>(i));
  return name;
}

void build_state(BenchState& s, std::int64_t n, std::int64_t elems, int replicated, int rank, int world) {
  s.data.assign(static_cast<std::size_t>(n * elems), 0.0);
  for (std::size_t i = 0; i < s.data.size(); ++i) s.data[i] = static_cast<double>(i) + rank * 0.5;
  s.replicated.assign(static_cast<std::size_t>(replicated * elems), 1.0);
  s.rng = 0x9e3779b97f4a7c15ULL * static_cast<std::uint64_t>(rank + 1);
  s.state = cairn::State{};
  for (std::int64_t i = 0; i < n; ++i)
    s.state.add_array(array_name(i), cairn::DType::Float64, {elems * world})
        .add_chunk({elems * rank}, {elems}, s.data.data() + i * elems);
  for (int k = 0; k < replicated; ++k)
    s.state.add_replicated_array("params/r" + std::to_string(k), {elems}, s.replicated.data() + k * elems);
  s.state.add_scalar("step", s.step);
  s.state.add_bytes("rng", &s.rng, sizeof s.rng);
}

// ---------------------------------------------------------------------------------------------

double max_over_ranks(double v) {
  double out = v;
  MPI_Allreduce(&v, &out, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return out;
}

std::int64_t max_over_ranks(std::int64_t v) {
  std::int64_t out = v;
  MPI_Allreduce(&v, &out, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

struct SaveFigures {
  double plan = 0;   // SaveTimings::plan_seconds, slowest rank
  double total = 0;  // async_save() + get(), slowest rank
  Counts plan_counts;
  Counts commit_counts;
};

SaveFigures timed_save(cairn::Checkpointer& checkpointer, const cairn::State& state, const std::string& id,
                       const std::shared_ptr<CountingGroup>& group,
                       const std::shared_ptr<cairn::StorageWriter>& writer) {
  cairn::SaveOptions options;
  options.overwrite = true;
  options.process_group = group;
  options.writer = writer;
  MPI_Barrier(MPI_COMM_WORLD);
  const Counts before = group->snapshot();
  const double start = MPI_Wtime();
  cairn::SaveFuture future = checkpointer.async_save(state, id, options);
  const Counts planned = group->snapshot();
  future.get();
  const double total = MPI_Wtime() - start;
  const Counts after = group->snapshot();
  SaveFigures f;
  f.plan = max_over_ranks(checkpointer.last_save_timings().plan_seconds);
  f.total = max_over_ranks(total);
  f.plan_counts = planned - before;
  f.commit_counts = after - planned;
  return f;
}

std::string counts_json(const Counts& c) {
  std::string s = "{";
  for (int k = 0; k < n_kinds; ++k) {
    const auto i = static_cast<std::size_t>(k);
    if (k) s += ",";
    s += "\"" + std::string(kind_names[k]) + "\":[" + std::to_string(c.calls[i]) + "," + std::to_string(c.bytes[i]) +
         "]";
  }
  return s + "}";
}

std::string counts_text(const Counts& c) {
  std::string s;
  for (int k = 0; k < n_kinds; ++k) {
    const auto i = static_cast<std::size_t>(k);
    if (c.calls[i] == 0) continue;
    if (!s.empty()) s += " ";
    s += std::string(kind_names[k]) + " " + std::to_string(c.calls[i]) + "x/" + std::to_string(c.bytes[i]) + "B";
  }
  return s.empty() ? "-" : s;
}

// ---------------------------------------------------------------------------------------------
// Per-step timings on rank 0 alone, with `world` simulated ranks (each a shifted copy of this
// rank's local plan).

double now() {
  return MPI_Wtime();
}

void components(std::int64_t n, const Options& o, std::int64_t world, bool json) {
  BenchState s;
  build_state(s, n, o.elems, o.replicated, 0, static_cast<int>(world));
  cairn::DefaultPlanner planner;
  {
    // Validation remembers the structure it last passed on this thread: start from another one.
    cairn::State other;
    std::int64_t step = 0;
    other.add_scalar("other", step);
    cairn::detail::validate_state(other, 0, 1, cairn::detail::Purpose::Save);
  }
  double t = now();
  cairn::detail::validate_state(s.state, 0, static_cast<int>(world), cairn::detail::Purpose::Save);
  const double validate = now() - t;
  t = now();
  // Also the plan cache's key (the structure's fingerprint): all a cached plan computes.
  const std::uint64_t fingerprint =
      cairn::detail::validate_state(s.state, 0, static_cast<int>(world), cairn::detail::Purpose::Save);
  const double revalidate = now() - t;
  t = now();
  cairn::SavePlan local = planner.create_local_plan(s.state, 0, static_cast<int>(world));
  const double local_plan = now() - t;
  t = now();
  std::vector<std::byte> encoded = cairn::detail::encode_plan(local);
  const double encode = now() - t;
  std::vector<std::vector<std::byte>> gathered(static_cast<std::size_t>(world));
  for (std::int64_t r = 0; r < world; ++r) {
    cairn::SavePlan shifted = local;
    for (cairn::WriteItem& item : shifted.items) {
      const cairn::EntryInfo& info = shifted.entries[static_cast<std::size_t>(item.entry)];
      if (info.kind == cairn::EntryKind::Array && info.distribution == cairn::Distribution::Sharded) {
        item.region.offset[0] += r * o.elems;
        item.source_offset[0] += r * o.elems;
      } else if (info.kind == cairn::EntryKind::Scalar) {
        item.region.offset[0] = r;
        item.source_offset[0] = r;
      }
    }
    gathered[static_cast<std::size_t>(r)] = cairn::detail::encode_plan(shifted);
  }
  t = now();
  std::vector<cairn::SavePlan> plans;
  plans.reserve(gathered.size());
  for (const auto& bytes : gathered) plans.push_back(cairn::detail::decode_plan(bytes));
  const double decode = now() - t;
  t = now();
  cairn::GlobalPlan global = planner.create_global_plan(std::move(plans));
  const double global_plan = now() - t;
  t = now();
  std::vector<std::byte> entries_blob = cairn::detail::encode_entries(global.entries);
  std::vector<std::vector<std::byte>> item_blobs;
  for (const auto& items : global.items_per_rank) item_blobs.push_back(cairn::detail::encode_items(items));
  const double encode_global = now() - t;
  t = now();
  cairn::SavePlan finished{cairn::detail::decode_entries(entries_blob), cairn::detail::decode_items(item_blobs[0])};
  const double decode_finished = now() - t;
  cairn::Metadata md;
  md.world_size = static_cast<std::int32_t>(world);
  md.entries = global.entries;
  for (std::size_t r = 0; r < global.items_per_rank.size(); ++r)
    for (const cairn::WriteItem& item : global.items_per_rank[r])
      md.chunks.push_back(cairn::ChunkRecord{item.entry, static_cast<std::int32_t>(r), item.region, 0, {}, 0, {}});
  t = now();
  std::vector<std::byte> blob = cairn::detail::encode_metadata(md);
  const double md_encode = now() - t;
  t = now();
  cairn::Metadata back = cairn::detail::decode_metadata(blob.data(), blob.size(), "bench");
  const double md_decode = now() - t;
  const auto chunks = static_cast<double>(md.chunks.size());
  std::size_t gathered_bytes = 0;
  for (const auto& g : gathered) gathered_bytes += g.size();
  std::size_t scattered_bytes = 0;
  for (const auto& b : item_blobs) scattered_bytes += b.size();
  std::printf("\ncomponents on rank 0: N=%lld arrays, %lld simulated ranks, %zu chunks (per-chunk cost in ns)\n",
              static_cast<long long>(n), static_cast<long long>(world), md.chunks.size());
  const std::pair<const char*, double> rows[] = {{"validate (1 rank)", validate},
                                                 {"validate again (+ plan cache key)", revalidate},
                                                 {"local plan (1 rank)", local_plan},
                                                 {"encode local plan (1 rank)", encode},
                                                 {"decode gathered plans", decode},
                                                 {"global plan", global_plan},
                                                 {"encode entries + items", encode_global},
                                                 {"decode finished plan (1 rank)", decode_finished},
                                                 {"metadata encode", md_encode},
                                                 {"metadata decode", md_decode}};
  for (const auto& [name, seconds] : rows)
    std::printf("  %-32s %9.4f s  %8.1f ns/chunk\n", name, seconds, seconds / chunks * 1e9);
  std::printf("  gathered %zu B (%.1f B/chunk), entries blob %zu B, items scattered %zu B, metadata %zu B\n",
              gathered_bytes, static_cast<double>(gathered_bytes) / chunks, entries_blob.size(), scattered_bytes,
              blob.size());
  if (json) {
    std::printf("{\"bench\":\"plan_components\",\"n\":%lld,\"ranks\":%lld,\"chunks\":%zu", static_cast<long long>(n),
                static_cast<long long>(world), md.chunks.size());
    const char* keys[] = {"validate",    "revalidate",    "local_plan",      "encode_local",    "decode_gathered",
                          "global_plan", "encode_global", "decode_finished", "metadata_encode", "metadata_decode"};
    for (std::size_t k = 0; k < std::size(rows); ++k) std::printf(",\"%s_s\":%.6f", keys[k], rows[k].second);
    std::printf(",\"gathered_bytes\":%zu,\"scattered_bytes\":%zu,\"metadata_bytes\":%zu}\n", gathered_bytes,
                scattered_bytes, blob.size());
  }
  if (back.chunks.size() != md.chunks.size() || finished.entries.size() != global.entries.size() || fingerprint == 0)
    std::printf("  MISMATCH after decoding\n");
}

// The overlap check of one array held by `world` ranks, one block each: slabs of dimension 0,
// columns of dimension 1 (every box spans dimension 0), and a 3-D block grid.
void overlap_timings(std::int64_t world, bool json) {
  std::vector<std::pair<const char*, std::vector<cairn::Region>>> cases;
  std::vector<cairn::Region> slabs, columns, grid;
  for (std::int64_t r = 0; r < world; ++r) {
    slabs.push_back(cairn::Region{{16 * r, 0}, {16, 64}});
    columns.push_back(cairn::Region{{0, 16 * r}, {64, 16}});
  }
  std::int64_t side = 1;
  while ((side + 1) * (side + 1) * (side + 1) <= world) ++side;
  for (std::int64_t i = 0; i < side; ++i)
    for (std::int64_t j = 0; j < side; ++j)
      for (std::int64_t k = 0; k < side; ++k) grid.push_back(cairn::Region{{8 * i, 8 * j, 8 * k}, {8, 8, 8}});
  cases.emplace_back("slabs", std::move(slabs));
  cases.emplace_back("columns", std::move(columns));
  cases.emplace_back("3-D grid", std::move(grid));
  for (const auto& [name, boxes] : cases) {
    std::size_t a = 0, b = 0;
    const double t = now();
    const bool found = cairn::detail::find_overlap(boxes, a, b);
    const double seconds = now() - t;
    std::printf("  overlap check, %-8s %8zu boxes: %9.5f s  %8.1f ns/box%s\n", name, boxes.size(), seconds,
                seconds / static_cast<double>(boxes.size()) * 1e9, found ? "  WRONG: overlap found" : "");
    if (json)
      std::printf("{\"bench\":\"overlap\",\"case\":\"%s\",\"boxes\":%zu,\"seconds\":%.6f}\n", name, boxes.size(),
                  seconds);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const cairn::bench::MpiSession mpi(argc, argv, MPI_THREAD_FUNNELED);
  const int rank = mpi.rank(), world = mpi.size();
  Options o;
  const std::string problem = parse_args(argc, argv, o);
  if (o.help || !problem.empty()) return cairn::bench::print_usage(rank, "cairn_plan_bench", problem, usage_text);
  int status = 0;
  std::string root;
  try {
    root = cairn::bench::make_run_dir(o.dir.empty() ? fs::temp_directory_path().string() : o.dir, "cairn_plan_bench");

    auto group = std::make_shared<CountingGroup>(MPI_COMM_WORLD);
    if (rank == 0) {
      std::printf(
          "plan_bench: %d ranks, %lld float64 elements per chunk, %d replicated arrays, %s writer, "
          "median of %d runs (first save) and %d cached saves; times on the slowest rank\n",
          world, static_cast<long long>(o.elems), o.replicated, o.writer.c_str(), o.runs, o.runs * o.cached);
      std::printf("%9s %8s | %10s %10s %8s | %10s %10s | %10s %8s %8s | %s\n", "arrays", "chunks", "plan 1st s",
                  "us/chunk", "save 1st", "plan cache", "save cache", "md bytes", "B/chunk", "B/entry",
                  "collectives (rank 0, plan step)");
    }
    for (std::int64_t n : o.sizes) {
      BenchState s;
      build_state(s, n, o.elems, o.replicated, rank, world);
      std::vector<double> first, cached, first_total, cached_total;
      SaveFigures f1, f2;
      MetadataSize md;
      for (int run = 0; run < o.runs; ++run) {
        std::shared_ptr<cairn::StorageWriter> writer;
        if (o.writer == "null")
          writer = std::make_shared<NullWriter>(run == 0 ? &md : nullptr);
        else
          writer = cairn::make_posix_writer();
        cairn::Checkpointer checkpointer(MPI_COMM_WORLD);
        const std::string base = root + "/n" + std::to_string(n) + "_run" + std::to_string(run);
        f1 = timed_save(checkpointer, s.state, base + "_first", group, writer);
        first.push_back(f1.plan);
        first_total.push_back(f1.total);
        for (int k = 0; k < o.cached; ++k) {
          if (o.writer != "null") writer = cairn::make_posix_writer();
          f2 = timed_save(checkpointer, s.state, base + "_cached", group, writer);
          cached.push_back(f2.plan);
          cached_total.push_back(f2.total);
        }
        if (rank == 0 && o.writer != "null") {
          std::error_code ec;
          md.bytes = static_cast<std::int64_t>(fs::file_size(base + "_first/metadata.cairn", ec));
        }
        if (rank == 0) {
          fs::remove_all(base + "_first");
          fs::remove_all(base + "_cached");
        }
      }
      const std::int64_t chunks = md.chunks > 0 ? md.chunks : n * world + o.replicated + 1 + world;
      const std::int64_t entries = md.entries > 0 ? md.entries : n + o.replicated + 2;
      const std::int64_t max_plan_calls_first = max_over_ranks(f1.plan_counts.total_calls());
      const std::int64_t max_plan_calls_cached = max_over_ranks(f2.plan_counts.total_calls());
      if (rank == 0) {
        const double p1 = median(first), p2 = median(cached);
        std::printf("%9lld %8lld | %10.4f %10.3f %8.3f | %10.5f %10.3f | %10lld %8.1f %8.1f | first: %s\n",
                    static_cast<long long>(n), static_cast<long long>(chunks), p1,
                    p1 / static_cast<double>(chunks) * 1e6, median(first_total), p2, median(cached_total),
                    static_cast<long long>(md.bytes), static_cast<double>(md.bytes) / static_cast<double>(chunks),
                    static_cast<double>(md.bytes) / static_cast<double>(entries), counts_text(f1.plan_counts).c_str());
        std::printf("%9s %8s | %10s %10s %8s | %10s %10s | %10s %8s %8s | cached: %s\n", "", "", "", "", "", "", "", "",
                    "", "", counts_text(f2.plan_counts).c_str());
        std::printf("%9s %8s | %10s %10s %8s | %10s %10s | %10s %8s %8s | commit: %s\n", "", "", "", "", "", "", "", "",
                    "", "", counts_text(f1.commit_counts).c_str());
        if (o.json)
          std::printf(
              "{\"bench\":\"plan\",\"ranks\":%d,\"n\":%lld,\"chunks\":%lld,\"entries\":%lld,\"runs\":%d,"
              "\"plan_first_s\":%.6f,\"plan_cached_s\":%.6f,\"save_first_s\":%.6f,\"save_cached_s\":%.6f,"
              "\"metadata_bytes\":%lld,\"max_plan_collectives_first\":%lld,"
              "\"max_plan_collectives_cached\":%lld,\"rank0_plan_first\":%s,\"rank0_plan_cached\":%s,"
              "\"rank0_commit\":%s}\n",
              world, static_cast<long long>(n), static_cast<long long>(chunks), static_cast<long long>(entries), o.runs,
              p1, p2, median(first_total), median(cached_total), static_cast<long long>(md.bytes),
              static_cast<long long>(max_plan_calls_first), static_cast<long long>(max_plan_calls_cached),
              counts_json(f1.plan_counts).c_str(), counts_json(f2.plan_counts).c_str(),
              counts_json(f1.commit_counts).c_str());
        std::fflush(stdout);
      }
    }
    if (rank == 0)
      for (std::int64_t r : o.components) {
        for (std::int64_t n : o.sizes) components(n, o, r, o.json);
        overlap_timings(r, o.json);
      }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "plan_bench on rank %d: %s\n", rank, e.what());
    status = 1;
  }
  if (!root.empty()) cairn::bench::remove_run_dir(root);
  return status;
}
