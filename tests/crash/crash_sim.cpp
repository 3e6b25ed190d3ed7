// crash_sim: a small simulation for the kill -9 trials (crash_trials.py), in two modes.
//
//   crash_sim run   --root DIR --journal FILE --pids DIR --steps N --every K [--keep L] [--kib K]
//   crash_sim check --root DIR --journal FILE
//
// run: every rank writes its pid to DIR/rank<r>.pid, restores the newest good checkpoint (or
// starts at step 0), then advances; the state of step s is a function of s and the global index
// only. A CheckpointManager saves asynchronously every K steps. Rank 0 appends "published <s>" to
// the journal, fsync'd, once the save of step s is known to be published (its future returned).
//
// check: on any rank count, latest() must name a checkpoint that verifies (not torn), that is no
// older than the journal's newest entry (nothing lost), and restore_or_start() must load exactly
// the values of its step on every rank. Prints one line "CHECK ..." on rank 0; exit status 0 only
// when all holds.
#include <cairn/manager.hpp>

#include <mpi.h>

#include <fcntl.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Options {
  std::string mode;
  std::string root;
  std::string journal;
  std::string pids;
  std::int64_t steps = 40;
  std::int64_t every = 4;
  int keep = 2;
  std::int64_t kib = 512;  // of the field per rank, roughly
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "crash_sim: %s\nusage: crash_sim run|check --root DIR --journal FILE [--pids DIR] "
               "[--steps N] [--every K] [--keep L] [--kib K]\n",
               why.c_str());
  std::exit(2);
}

Options parse(int argc, char** argv) {
  if (argc < 2) usage("a mode is required");
  Options o;
  o.mode = argv[1];
  if (o.mode != "run" && o.mode != "check") usage("unknown mode '" + o.mode + "'");
  for (int i = 2; i < argc; i += 2) {
    const std::string key = argv[i];
    if (i + 1 >= argc) usage(key + " needs a value");
    const std::string value = argv[i + 1];
    if (key == "--root")
      o.root = value;
    else if (key == "--journal")
      o.journal = value;
    else if (key == "--pids")
      o.pids = value;
    else if (key == "--steps")
      o.steps = std::stoll(value);
    else if (key == "--every")
      o.every = std::stoll(value);
    else if (key == "--keep")
      o.keep = std::stoi(value);
    else if (key == "--kib")
      o.kib = std::stoll(value);
    else
      usage("unknown option " + key);
  }
  if (o.root.empty() || o.journal.empty()) usage("--root and --journal are required");
  return o;
}

// The field: global rows x cols doubles, rows cut in near-equal blocks over the ranks; counters:
// one int64 per global row; "step" a replicated scalar; "note" a replicated blob.
constexpr std::int64_t cols = 256;

double field_value(std::int64_t step, std::int64_t row, std::int64_t col) {
  return static_cast<double>(step) * 1.0e6 + static_cast<double>(row * cols + col) * 0.001;
}
std::int64_t counter_value(std::int64_t step, std::int64_t row) {
  return step * 1000003 + row;
}
std::string note_value(std::int64_t step) {
  return "step " + std::to_string(step) + " of crash_sim";
}

struct Sim {
  Sim(std::int64_t rows_total, int rank, int size) : rows(rows_total) {
    first = rows * rank / size;
    count = rows * (rank + 1) / size - first;
    field.assign(static_cast<std::size_t>(count * cols), 0.0);
    counters.assign(static_cast<std::size_t>(count), 0);
    state.add_array("field", cairn::Extents{rows, cols}, cairn::Extents{first, 0}, cairn::Extents{count, cols},
                    field.data());
    state.add_array("counters", cairn::Extents{rows}, cairn::Extents{first}, cairn::Extents{count}, counters.data());
    state.add_scalar("step", step);
    state.add_bytes("note", note, cairn::Distribution::Replicated);
  }

  void fill(std::int64_t s) {
    step = s;
    for (std::int64_t r = 0; r < count; ++r) {
      for (std::int64_t c = 0; c < cols; ++c)
        field[static_cast<std::size_t>(r * cols + c)] = field_value(s, first + r, c);
      counters[static_cast<std::size_t>(r)] = counter_value(s, first + r);
    }
    const std::string text = note_value(s);
    note.assign(reinterpret_cast<const std::byte*>(text.data()),
                reinterpret_cast<const std::byte*>(text.data()) + text.size());
  }

  void poison() {
    step = -1;
    std::fill(field.begin(), field.end(), -1.0);
    std::fill(counters.begin(), counters.end(), -1);
    note.clear();
  }

  // The number of values that differ from those of step `s`.
  std::int64_t mismatches(std::int64_t s) const {
    std::int64_t bad = step == s ? 0 : 1;
    for (std::int64_t r = 0; r < count; ++r) {
      for (std::int64_t c = 0; c < cols; ++c)
        bad += field[static_cast<std::size_t>(r * cols + c)] != field_value(s, first + r, c) ? 1 : 0;
      bad += counters[static_cast<std::size_t>(r)] != counter_value(s, first + r) ? 1 : 0;
    }
    const std::string text = note_value(s);
    bad += note.size() != text.size() || std::memcmp(note.data(), text.data(), text.size()) != 0 ? 1 : 0;
    return bad;
  }

  std::int64_t rows, first = 0, count = 0;
  std::vector<double> field;
  std::vector<std::int64_t> counters;
  std::int64_t step = 0;
  std::vector<std::byte> note;
  cairn::State state;
};

std::int64_t rows_for(const Options& o) {
  return std::max<std::int64_t>(8, o.kib * 1024 * 4 / (cols * 8));  // about --kib per rank at 4 ranks
}

void append_journal(const std::string& path, std::int64_t step) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    std::perror("crash_sim: journal");
    std::exit(3);
  }
  const std::string line = "published " + std::to_string(step) + "\n";
  if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size()) || ::fsync(fd) != 0) {
    std::perror("crash_sim: journal");
    std::exit(3);
  }
  ::close(fd);
}

// The newest step the journal lists, or -1.
std::int64_t journal_newest(const std::string& path) {
  std::ifstream in(path);
  std::string word;
  std::int64_t step = -1, newest = -1;
  while (in >> word >> step)
    if (word == "published") newest = std::max(newest, step);
  return newest;
}

int run(const Options& o, int rank, int size) {
  if (!o.pids.empty()) {
    std::ofstream(o.pids + "/rank" + std::to_string(rank) + ".pid") << ::getpid() << "\n";
  }
  cairn::ManagerOptions options;
  options.every_steps = o.every;
  options.keep_last = o.keep;
  cairn::CheckpointManager manager(MPI_COMM_WORLD, o.root, options);
  Sim sim(rows_for(o), rank, size);
  const std::int64_t start = manager.restore_or_start(sim.state).value_or(0);
  if (start > 0 && sim.mismatches(start) != 0) {
    std::fprintf(stderr, "crash_sim: rank %d restored step %" PRId64 " with wrong values\n", rank, start);
    return 4;
  }
  if (rank == 0) std::printf("RUN start=%" PRId64 " ranks=%d\n", start, size);
  std::fflush(stdout);
  cairn::SaveFuture pending;
  std::int64_t pending_step = -1;
  auto finish = [&] {
    if (!pending.valid()) return;
    pending.get();
    if (rank == 0) append_journal(o.journal, pending_step);
    pending = cairn::SaveFuture();
  };
  for (std::int64_t step = start + 1; step <= o.steps; ++step) {
    sim.fill(step);
    // "Computation": gives the driver time to strike between and during saves.
    std::this_thread::sleep_for(std::chrono::milliseconds(15));
    if (manager.due(step)) {
      finish();
      pending = manager.async_save(sim.state, step);
      pending_step = step;
    }
  }
  finish();
  if (rank == 0) std::printf("RUN done\n");
  return 0;
}

int check(const Options& o, int rank, int size) {
  cairn::CheckpointManager manager(MPI_COMM_WORLD, o.root);
  const std::int64_t journal = journal_newest(o.journal);  // every rank reads it: a shared file
  const std::optional<cairn::CheckpointInfo> latest = manager.latest(cairn::CheckMode::Fast);
  int torn = 0;
  if (latest) {
    const cairn::VerifyReport report = manager.checkpointer().verify(latest->id);
    torn = report.ok() ? 0 : 1;
    if (!report.ok() && rank == 0)
      std::fprintf(stderr, "crash_sim: latest() returned %s, which does not verify: %s\n", latest->id.c_str(),
                   report.bad_chunks[0].message.c_str());
  }
  Sim sim(rows_for(o), rank, size);
  sim.poison();
  const std::optional<std::int64_t> restored = manager.restore_or_start(sim.state);
  std::int64_t bad = restored ? sim.mismatches(*restored) : 0;
  MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
  const std::int64_t got = restored.value_or(-1);
  const int lost = got < journal ? 1 : 0;
  const int differs = latest && got != latest->step ? 1 : 0;
  if (rank == 0)
    std::printf("CHECK ranks=%d latest=%" PRId64 " restored=%" PRId64 " journal=%" PRId64
                " torn=%d lost=%d mismatched_values=%" PRId64 " latest_differs=%d\n",
                size, latest ? latest->step : -1, got, journal, torn, lost, bad, differs);
  std::fflush(stdout);
  return torn == 0 && lost == 0 && bad == 0 && differs == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  int status = 0;
  try {
    const Options o = parse(argc, argv);
    status = o.mode == "run" ? run(o, rank, size) : check(o, rank, size);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "crash_sim: rank %d: %s\n", rank, e.what());
    status = 5;
  }
  MPI_Finalize();
  return status;
}
