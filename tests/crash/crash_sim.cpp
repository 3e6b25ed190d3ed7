// crash_sim: the simulation that crash_trials.py kills with SIGKILL, and the checker of what a
// restart finds afterwards.
//
//   crash_sim run   --root DIR --steps N --every K [--keep L] [--pidfile-dir D] [--journal FILE]
//                   [--mib M] [--step-ms T] [--fault SPEC [--fault-after S]]
//   crash_sim check --root DIR --journal FILE [--mib M] [--expect-offset D]
//
// The state: a global 2-D double field (its shape depends on --mib only, the rows cut in blocks
// over the ranks), a global 1-D int64 array (cut the same way), a replicated int64 scalar "step"
// and a replicated blob "note". Every value is a function of (step, global index), so a checker
// can recompute the state of any step on any rank count.
//
// run: each rank writes its pid to D/rank<r>.pid, restores the newest good checkpoint (checking its
// bytes) or starts at step 0, then advances: each step fills in the values of the step, sleeps T ms
// of "computation" and calls save_if_due() (asynchronous, every K steps, keeping the last L). Rank 0
// appends "published <s>" to the journal, fsync'd, only once the future of the save of step s
// returned without error. --fault sets CAIRN_FAULT=SPEC once S saves of this run have published,
// between saves, so that the fault strikes a later save while older checkpoints exist.
//
// check: on any rank count, latest(Fast) must name a checkpoint that verifies, every listed
// checkpoint must verify, and restore_or_start() into a fresh state must return that step and load
// exactly its values on every rank (--expect-offset compares with another step's values instead:
// the checker's self-test). Nothing is lost when the restored step is at least the journal's last.
// Rank 0 prints one line
//   CHECK ranks=<p> step=<latest> restored=<s> journal=<j> listed=<n> listed_bad=<n> torn=<0|1>
//         lost=<0|1> bytes_ok=<0|1> mismatches=<n>
// (-1 for none) and the exit status is 0 only when all holds.
#include <cairn/manager.hpp>

#include <mpi.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

// Thrown for a bad command line; every rank parses the same arguments, so every rank throws it.
class ArgumentError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

constexpr const char* kUsage =
    "usage: crash_sim run --root DIR --steps N --every K [--keep L] [--pidfile-dir D] [--journal FILE]\n"
    "                     [--mib M] [--step-ms T] [--fault SPEC [--fault-after S]]\n"
    "       crash_sim check --root DIR --journal FILE [--mib M] [--expect-offset D]";

struct Options {
  std::string mode;
  std::string root;
  std::string journal;
  std::string pidfile_dir;
  std::int64_t steps = -1;
  std::int64_t every = -1;
  int keep = 2;
  double mib = 8;
  std::int64_t step_ms = 10;
  std::string fault;
  std::int64_t fault_after = 0;
  std::int64_t expect_offset = 0;
};

std::int64_t parse_int(const std::string& flag, const std::string& text) {
  std::size_t used = 0;
  std::int64_t value = 0;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || text.empty()) throw ArgumentError(flag + " needs an integer, not '" + text + "'");
  return value;
}

Options parse(int argc, char** argv) {
  if (argc < 2) throw ArgumentError("a mode (run or check) is required");
  Options o;
  o.mode = argv[1];
  if (o.mode != "run" && o.mode != "check") throw ArgumentError("unknown mode '" + o.mode + "'");
  for (int i = 2; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) throw ArgumentError(flag + " needs a value");
    const std::string value = argv[i + 1];
    if (flag == "--root") {
      o.root = value;
    } else if (flag == "--journal") {
      o.journal = value;
    } else if (flag == "--pidfile-dir") {
      o.pidfile_dir = value;
    } else if (flag == "--steps") {
      o.steps = parse_int(flag, value);
    } else if (flag == "--every") {
      o.every = parse_int(flag, value);
    } else if (flag == "--keep") {
      o.keep = static_cast<int>(parse_int(flag, value));
    } else if (flag == "--mib") {
      o.mib = std::strtod(value.c_str(), nullptr);
    } else if (flag == "--step-ms") {
      o.step_ms = parse_int(flag, value);
    } else if (flag == "--fault") {
      o.fault = value;
    } else if (flag == "--fault-after") {
      o.fault_after = parse_int(flag, value);
    } else if (flag == "--expect-offset") {
      o.expect_offset = parse_int(flag, value);
    } else {
      throw ArgumentError("unknown option " + flag);
    }
  }
  if (o.root.empty()) throw ArgumentError("--root is required");
  if (!(o.mib > 0) || !std::isfinite(o.mib)) throw ArgumentError("--mib must be a positive number of MiB");
  if (o.mode == "run" && (o.steps < 0 || o.every < 1)) throw ArgumentError("run needs --steps N and --every K >= 1");
  if (o.mode == "check" && o.journal.empty()) throw ArgumentError("check needs --journal FILE");
  if (o.fault_after < 0 || o.step_ms < 0) throw ArgumentError("--fault-after and --step-ms must not be negative");
  return o;
}

// The global shape: `rows` x `cols` doubles of about --mib MiB, and `length` int64s.
struct Shape {
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::int64_t length = 0;
};

Shape shape_for(double mib) {
  Shape shape;
  shape.cols = 512;
  const double rows = std::round(mib * 1024 * 1024 / static_cast<double>(shape.cols * 8));
  shape.rows = std::max<std::int64_t>(8, static_cast<std::int64_t>(rows));
  shape.length = 3 * shape.rows + 5;  // not a multiple of the rank count, mostly
  return shape;
}

// A contiguous block [first, first + count) of `n` elements, rank `rank` of `size`.
struct Block {
  std::int64_t first = 0;
  std::int64_t count = 0;
};

Block block_of(std::int64_t n, int rank, int size) {
  const std::int64_t first = n * rank / size;
  return Block{first, n * (rank + 1) / size - first};
}

std::uint64_t mix(std::uint64_t x) {  // splitmix64's finalizer
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// Every bit of each value depends on both the step and the global index.
double field_value(std::int64_t step, std::int64_t index) {
  const std::uint64_t bits = mix(mix(static_cast<std::uint64_t>(step)) ^ static_cast<std::uint64_t>(index));
  return static_cast<double>(step) + static_cast<double>(bits >> 11) * 0x1p-53;
}

std::int64_t counter_value(std::int64_t step, std::int64_t index) {
  return static_cast<std::int64_t>(
      mix(mix(static_cast<std::uint64_t>(step) + 0x51ED) ^ static_cast<std::uint64_t>(index)));
}

// A blob whose length and bytes depend on the step.
std::vector<std::byte> note_value(std::int64_t step) {
  std::string text = "crash_sim note of step " + std::to_string(step) + ":";
  const std::uint64_t words = 1 + mix(static_cast<std::uint64_t>(step)) % 16;
  for (std::uint64_t i = 0; i < words; ++i) {
    char hex[24];
    std::snprintf(hex, sizeof hex, " %016" PRIx64, mix(static_cast<std::uint64_t>(step) * 131 + i));
    text += hex;
  }
  std::vector<std::byte> bytes(text.size());
  std::memcpy(bytes.data(), text.data(), text.size());
  return bytes;
}

template <class T>
bool same_bits(const T& a, const T& b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

// This rank's part of the state, and the State that describes it.
class SimState {
 public:
  SimState(const Shape& shape, int rank, int size)
      : m_shape(shape), m_rows(block_of(shape.rows, rank, size)), m_range(block_of(shape.length, rank, size)) {
    m_field.resize(static_cast<std::size_t>(m_rows.count * m_shape.cols));
    m_counters.resize(static_cast<std::size_t>(m_range.count));
    m_state.add_array("field", cairn::Extents{m_shape.rows, m_shape.cols}, cairn::Extents{m_rows.first, 0},
                      cairn::Extents{m_rows.count, m_shape.cols}, m_field.data());
    m_state.add_array("counters", cairn::Extents{m_shape.length}, cairn::Extents{m_range.first},
                      cairn::Extents{m_range.count}, m_counters.data());
    m_state.add_scalar("step", m_step);
    m_state.add_bytes("note", m_note, cairn::Distribution::Replicated);
  }
  SimState(const SimState&) = delete;  // the State points into the members
  SimState& operator=(const SimState&) = delete;

  cairn::State& state() noexcept { return m_state; }

  // The values of `step`.
  void fill(std::int64_t step) {
    m_step = step;
    const std::int64_t base = m_rows.first * m_shape.cols;
    for (std::size_t i = 0; i < m_field.size(); ++i)
      m_field[i] = field_value(step, base + static_cast<std::int64_t>(i));
    for (std::size_t i = 0; i < m_counters.size(); ++i)
      m_counters[i] = counter_value(step, m_range.first + static_cast<std::int64_t>(i));
    m_note = note_value(step);
  }

  // Values that no step has, so that a load that leaves anything out shows.
  void poison() {
    m_step = -1;
    std::fill(m_field.begin(), m_field.end(), -1.0);
    std::fill(m_counters.begin(), m_counters.end(), -1);
    m_note.clear();
  }

  // The number of values (elements, the scalar, the blob) whose bytes differ from those of `step`.
  std::int64_t mismatches(std::int64_t step) const {
    std::int64_t bad = m_step == step ? 0 : 1;
    const std::int64_t base = m_rows.first * m_shape.cols;
    for (std::size_t i = 0; i < m_field.size(); ++i)
      bad += same_bits(m_field[i], field_value(step, base + static_cast<std::int64_t>(i))) ? 0 : 1;
    for (std::size_t i = 0; i < m_counters.size(); ++i)
      bad += m_counters[i] == counter_value(step, m_range.first + static_cast<std::int64_t>(i)) ? 0 : 1;
    bad += m_note == note_value(step) ? 0 : 1;
    return bad;
  }

 private:
  Shape m_shape;
  Block m_rows;
  Block m_range;
  std::vector<double> m_field;
  std::vector<std::int64_t> m_counters;
  std::int64_t m_step = -1;
  std::vector<std::byte> m_note;
  cairn::State m_state;
};

std::string errno_text() {
  return std::strerror(errno);
}

// Written under a temporary name and renamed, so that the driver never reads half a pid.
void write_pid_file(const std::string& dir, int rank) {
  const std::string path = dir + "/rank" + std::to_string(rank) + ".pid";
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary);
    out << ::getpid() << "\n";
    if (!out) throw std::runtime_error("cannot write '" + temporary + "'");
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0)
    throw std::runtime_error("cannot rename '" + temporary + "': " + errno_text());
}

// Appends "published <step>" to the journal and makes it durable before returning.
void append_journal(const std::string& path, std::int64_t step) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot open journal '" + path + "': " + errno_text());
  const std::string line = "published " + std::to_string(step) + "\n";
  const bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && ::fsync(fd) == 0;
  const std::string why = errno_text();
  ::close(fd);
  if (!ok) throw std::runtime_error("cannot append to journal '" + path + "': " + why);
}

// The newest step the journal lists, or -1 (no journal yet: nothing was published).
std::int64_t journal_newest(const std::string& path) {
  std::ifstream in(path);
  std::string word;
  std::int64_t step = -1;
  std::int64_t newest = -1;
  while (in >> word >> step)
    if (word == "published") newest = std::max(newest, step);
  return newest;
}

std::int64_t sum_over_ranks(std::int64_t value) {
  MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
  return value;
}

int run(const Options& o, int rank, int size) {
  if (!o.pidfile_dir.empty()) write_pid_file(o.pidfile_dir, rank);
  cairn::ManagerOptions options;
  options.every_steps = o.every;
  options.keep_last = o.keep;
  cairn::CheckpointManager manager(MPI_COMM_WORLD, o.root, options);
  SimState sim(shape_for(o.mib), rank, size);
  sim.poison();
  const std::optional<std::int64_t> restored = manager.restore_or_start(sim.state());
  const std::int64_t bad = sum_over_ranks(restored ? sim.mismatches(*restored) : 0);
  const std::int64_t start = restored.value_or(0);
  if (rank == 0) {
    std::printf("RUN ranks=%d start=%" PRId64 " restored_bytes_ok=%d\n", size, start, bad == 0 ? 1 : 0);
    std::fflush(stdout);
  }
  if (bad != 0) return 4;

  std::int64_t published = 0;
  auto arm_fault = [&] {
    if (!o.fault.empty() && published == o.fault_after) ::setenv("CAIRN_FAULT", o.fault.c_str(), 1);
  };
  arm_fault();
  cairn::SaveFuture pending;
  std::int64_t pending_step = -1;
  // Journals the save in flight once its future returned; the worker is idle afterwards, so the
  // environment may change.
  auto settle = [&] {
    if (!pending.valid()) return;
    pending.get();  // a failed save throws here and is never journaled
    pending = cairn::SaveFuture();
    if (rank == 0 && !o.journal.empty()) append_journal(o.journal, pending_step);
    ++published;
    arm_fault();
  };
  for (std::int64_t step = start + 1; step <= o.steps; ++step) {
    sim.fill(step);
    std::this_thread::sleep_for(std::chrono::milliseconds(o.step_ms));
    if (pending.valid() && pending.test()) settle();
    if (manager.due(step)) settle();  // journal the previous save before the next one begins
    cairn::SaveFuture future = manager.save_if_due(sim.state(), step);
    if (future.valid()) {
      pending = future;
      pending_step = step;
    }
  }
  settle();
  if (rank == 0) {
    std::printf("RUN done step=%" PRId64 " published=%" PRId64 "\n", o.steps, published);
    std::fflush(stdout);
  }
  return 0;
}

int check(const Options& o, int rank, int size) {
  std::int64_t journal = rank == 0 ? journal_newest(o.journal) : -1;
  MPI_Bcast(&journal, 1, MPI_INT64_T, 0, MPI_COMM_WORLD);
  cairn::CheckpointManager manager(MPI_COMM_WORLD, o.root);
  std::string problems;

  // Every published checkpoint must verify, not only the newest: the trials must not leave a torn
  // one behind a good one either.
  const std::vector<cairn::CheckpointInfo> listed = manager.list();
  std::vector<std::int64_t> bad_steps;
  for (const cairn::CheckpointInfo& info : listed) {
    std::string why;
    try {
      const cairn::VerifyReport report = manager.verify(info.step);
      if (!report.ok()) why = report.bad_chunks.front().message;
    } catch (const std::exception& e) {
      why = e.what();
    }
    if (!why.empty()) {
      bad_steps.push_back(info.step);
      problems += "  listed checkpoint '" + info.id + "' does not verify: " + why + "\n";
    }
  }

  const std::optional<cairn::CheckpointInfo> latest = manager.latest(cairn::CheckMode::Fast);
  bool torn = false;
  if (latest) {
    std::string why;
    try {
      const cairn::VerifyReport report = manager.verify(latest->step);
      if (!report.ok()) why = report.bad_chunks.front().message;
    } catch (const std::exception& e) {
      why = e.what();
    }
    if (!why.empty()) {
      torn = true;
      problems += "  latest() returned '" + latest->id + "', which does not verify: " + why + "\n";
    }
  }

  SimState sim(shape_for(o.mib), rank, size);
  sim.poison();
  const std::optional<std::int64_t> restored = manager.restore_or_start(sim.state());
  const std::int64_t latest_step = latest ? latest->step : -1;
  const std::int64_t restored_step = restored.value_or(-1);
  if (restored_step != latest_step) {
    torn = torn || latest.has_value();  // latest() named a checkpoint that does not load
    problems += "  latest() returned step " + std::to_string(latest_step) + " but restore_or_start() step " +
                std::to_string(restored_step) + "\n";
  }
  const std::int64_t mismatches = sum_over_ranks(restored ? sim.mismatches(restored_step + o.expect_offset) : 0);
  if (mismatches != 0)
    problems += "  " + std::to_string(mismatches) + " loaded values differ from those of step " +
                std::to_string(restored_step + o.expect_offset) + "\n";
  const bool lost = journal >= 0 && restored_step < journal;
  if (lost)
    problems += "  the journal lists step " + std::to_string(journal) + " as published, but restore_or_start() " +
                (restored ? "returned the older step " + std::to_string(restored_step) : std::string("found none")) +
                "\n";

  if (rank == 0) {
    std::printf("CHECK ranks=%d step=%" PRId64 " restored=%" PRId64 " journal=%" PRId64
                " listed=%zu listed_bad=%zu torn=%d lost=%d bytes_ok=%d mismatches=%" PRId64 "\n",
                size, latest_step, restored_step, journal, listed.size(), bad_steps.size(), torn ? 1 : 0, lost ? 1 : 0,
                mismatches == 0 ? 1 : 0, mismatches);
    if (!problems.empty()) std::printf("%s", problems.c_str());
    std::fflush(stdout);
  }
  return problems.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int rank = 0;
  int size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  int status = 0;
  try {
    const Options o = parse(argc, argv);
    status = o.mode == "run" ? run(o, rank, size) : check(o, rank, size);
  } catch (const ArgumentError& e) {
    if (rank == 0) std::fprintf(stderr, "crash_sim: %s\n%s\n", e.what(), kUsage);
    status = 2;
  } catch (const std::exception& e) {
    // A failure on one rank alone (the journal) would leave the others in a collective: end the job.
    std::fprintf(stderr, "crash_sim: rank %d: %s\n", rank, e.what());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 5);
  }
  MPI_Finalize();
  return status;
}
