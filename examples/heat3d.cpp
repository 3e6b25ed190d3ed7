// heat3d: 3-D heat diffusion on an MPI domain decomposition, checkpointed and restarted with Cairn.
//
//   mpirun -np P heat3d --steps N --checkpoint-every K --dir DIR [--restart] [--n GRID] [--keep C]
//                       [--crash-at STEP] [--sync]
//
// An explicit 7-point stencil advances a double-precision field on a GRID^3 global grid with fixed
// (Dirichlet) boundary values. A cairn::CheckpointManager over DIR saves the field, the step, the
// simulated time and the grid size every K steps to DIR/step_%010d, asynchronously: async_save
// copies the field and returns, and the write overlaps the next K steps (--sync waits for each save
// instead). Every checkpoint is kept unless --keep C asks for the newest C only. With --restart the
// run resumes from the newest good checkpoint in DIR (a damaged one is skipped for the one before
// it) on any number of ranks: Cairn reads the saved global field into this run's decomposition. At
// the end rank 0 prints "checksum: <16 hex digits>" of the global field; the field, and so the
// checksum, is bitwise the same for any rank count and for a run that was interrupted and resumed.
#include <cairn/checkpointer.hpp>
#include <cairn/error.hpp>
#include <cairn/manager.hpp>
#include <cairn/state.hpp>

#include <mpi.h>
#include <xxhash.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace {

// Thrown for a bad command line; every rank parses the same arguments, so every rank throws it.
class ArgumentError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Options {
  std::int64_t steps = -1;
  std::int64_t checkpoint_every = -1;
  std::string dir;
  bool restart = false;
  std::int64_t n = 48;
  std::int64_t crash_at = -1;
  bool sync = false;
  std::int64_t keep = 0;  // 0: keep every checkpoint
};

constexpr const char* kUsage =
    "usage: heat3d --steps N --checkpoint-every K --dir DIR [--restart] [--n GRID] [--keep C] "
    "[--crash-at STEP] [--sync]";

std::int64_t parse_int(const std::string& flag, const char* text) {
  errno = 0;
  char* end = nullptr;
  const long long value = std::strtoll(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0') throw ArgumentError(flag + " needs an integer, not '" + text + "'");
  return static_cast<std::int64_t>(value);
}

Options parse_options(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) throw ArgumentError(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--steps") {
      opt.steps = parse_int(arg, value());
    } else if (arg == "--checkpoint-every") {
      opt.checkpoint_every = parse_int(arg, value());
    } else if (arg == "--dir") {
      opt.dir = value();
    } else if (arg == "--restart") {
      opt.restart = true;
    } else if (arg == "--n") {
      opt.n = parse_int(arg, value());
    } else if (arg == "--crash-at") {
      opt.crash_at = parse_int(arg, value());
    } else if (arg == "--sync") {
      opt.sync = true;
    } else if (arg == "--keep") {
      opt.keep = parse_int(arg, value());
      if (opt.keep < 1 || opt.keep > std::numeric_limits<int>::max())
        throw ArgumentError("--keep C needs C >= 1 (without it every checkpoint is kept)");
    } else if (arg == "-h" || arg == "--help") {
      throw ArgumentError("help");
    } else {
      throw ArgumentError("unknown argument '" + arg + "'");
    }
  }
  if (opt.steps < 0) throw ArgumentError("--steps N (N >= 0) is required");
  if (opt.checkpoint_every <= 0) throw ArgumentError("--checkpoint-every K (K >= 1) is required");
  if (opt.dir.empty()) throw ArgumentError("--dir DIR is required");
  if (opt.n < 1) throw ArgumentError("--n must be at least 1");
  // The global linear index of a cell must fit in int64 and the halo sizes in an MPI int.
  if (opt.n > 100000) throw ArgumentError("--n is too large");
  return opt;
}

// Cells [begin, begin + count) of a global extent `n` split into `parts` near-equal pieces: the
// first n % parts pieces get one extra cell.
std::pair<std::int64_t, std::int64_t> split(std::int64_t n, int parts, int index) {
  const std::int64_t base = n / parts;
  const std::int64_t extra = n % parts;
  const std::int64_t begin = index * base + std::min<std::int64_t>(index, extra);
  const std::int64_t count = base + (index < extra ? 1 : 0);
  return {begin, count};
}

// This rank's block of the global grid, stored with one layer of halo cells on every side in a
// row-major (i, j, k) array: k varies fastest.
class Domain {
 public:
  Domain(MPI_Comm world, std::int64_t n) : m_n(n) {
    int size = 0;
    MPI_Comm_size(world, &size);
    std::array<int, 3> dims{0, 0, 0};
    MPI_Dims_create(size, 3, dims.data());
    for (int d = 0; d < 3; ++d) {
      if (dims[d] > n)
        throw ArgumentError("--n " + std::to_string(n) + " is too small for " + std::to_string(size) + " ranks (" +
                            std::to_string(dims[d]) + " along one axis)");
    }
    const std::array<int, 3> periods{0, 0, 0};
    // No reordering: rank r of the cartesian communicator is rank r of `world`.
    MPI_Cart_create(world, 3, dims.data(), periods.data(), 0, &m_cart);
    MPI_Comm_rank(m_cart, &m_rank);
    m_size = size;
    m_dims = dims;
    std::array<int, 3> coords{0, 0, 0};
    MPI_Cart_coords(m_cart, m_rank, 3, coords.data());
    for (int d = 0; d < 3; ++d) {
      const auto [begin, count] = split(n, dims[d], coords[d]);
      m_offset[d] = begin;
      m_count[d] = count;
      m_padded[d] = count + 2;
      MPI_Cart_shift(m_cart, d, 1, &m_low[d], &m_high[d]);
    }
    m_strides = {m_padded[1] * m_padded[2], m_padded[2], 1};
    make_face_types();
  }

  ~Domain() {
    for (auto& type : m_face_types) MPI_Type_free(&type);
    MPI_Comm_free(&m_cart);
  }
  Domain(const Domain&) = delete;
  Domain& operator=(const Domain&) = delete;

  MPI_Comm comm() const noexcept { return m_cart; }
  int rank() const noexcept { return m_rank; }
  int size() const noexcept { return m_size; }
  std::int64_t n() const noexcept { return m_n; }
  const std::array<int, 3>& dims() const noexcept { return m_dims; }
  std::int64_t offset(int d) const noexcept { return m_offset[d]; }
  std::int64_t count(int d) const noexcept { return m_count[d]; }
  std::size_t padded_size() const noexcept { return static_cast<std::size_t>(m_padded[0] * m_padded[1] * m_padded[2]); }
  // Position in the haloed array of local cell (i, j, k); interior cells are 1..count.
  std::size_t at(std::int64_t i, std::int64_t j, std::int64_t k) const noexcept {
    return static_cast<std::size_t>(i * m_strides[0] + j * m_strides[1] + k);
  }
  const cairn::Extents& strides() const noexcept { return m_strides; }

  // Fills the halo cells of `u` with the neighbours' faces. Halo cells on the outer boundary of
  // the domain have no neighbour (MPI_PROC_NULL) and keep their fixed boundary values.
  void exchange_halos(std::vector<double>& u) const {
    for (int d = 0; d < 3; ++d) {
      // My high face to the high neighbour; the low neighbour's high face into my low halo.
      MPI_Sendrecv(u.data(), 1, m_face_types[4 * d + 0], m_high[d], 2 * d, u.data(), 1, m_face_types[4 * d + 1],
                   m_low[d], 2 * d, m_cart, MPI_STATUS_IGNORE);
      // My low face to the low neighbour; the high neighbour's low face into my high halo.
      MPI_Sendrecv(u.data(), 1, m_face_types[4 * d + 2], m_low[d], 2 * d + 1, u.data(), 1, m_face_types[4 * d + 3],
                   m_high[d], 2 * d + 1, m_cart, MPI_STATUS_IGNORE);
    }
  }

 private:
  // For each axis d, four subarrays of the haloed array, each one cell thick along d and spanning
  // the interior along the other axes: send high face, receive low halo, send low face, receive
  // high halo.
  void make_face_types() {
    const std::array<int, 3> sizes{to_int(m_padded[0]), to_int(m_padded[1]), to_int(m_padded[2])};
    for (int d = 0; d < 3; ++d) {
      std::array<int, 3> sub{to_int(m_count[0]), to_int(m_count[1]), to_int(m_count[2])};
      sub[d] = 1;
      const std::array<int, 4> planes{to_int(m_count[d]), 0, 1, to_int(m_count[d]) + 1};
      for (int f = 0; f < 4; ++f) {
        std::array<int, 3> starts{1, 1, 1};
        starts[d] = planes[f];
        MPI_Datatype& type = m_face_types[4 * d + f];
        MPI_Type_create_subarray(3, sizes.data(), sub.data(), starts.data(), MPI_ORDER_C, MPI_DOUBLE, &type);
        MPI_Type_commit(&type);
      }
    }
  }

  static int to_int(std::int64_t value) { return static_cast<int>(value); }

  std::int64_t m_n = 0;
  MPI_Comm m_cart = MPI_COMM_NULL;
  int m_rank = 0;
  int m_size = 1;
  std::array<int, 3> m_dims{};
  std::array<std::int64_t, 3> m_offset{};
  std::array<std::int64_t, 3> m_count{};
  std::array<std::int64_t, 3> m_padded{};
  std::array<int, 3> m_low{};
  std::array<int, 3> m_high{};
  cairn::Extents m_strides;
  std::array<MPI_Datatype, 12> m_face_types{};
};

constexpr double kPi = 3.14159265358979323846;

// Cell-centre coordinate in [0, 1] of global index g (-1 and n are the boundary layers).
double coordinate(std::int64_t g, std::int64_t n) {
  return (static_cast<double>(g) + 0.5) / static_cast<double>(n);
}

// Initial temperature: a hot sphere off the centre on a smooth, asymmetric background.
double initial_value(std::int64_t gi, std::int64_t gj, std::int64_t gk, std::int64_t n) {
  const double x = coordinate(gi, n);
  const double y = coordinate(gj, n);
  const double z = coordinate(gk, n);
  const double dx = x - 0.35;
  const double dy = y - 0.6;
  const double dz = z - 0.45;
  const bool in_sphere = dx * dx + dy * dy + dz * dz < 0.2 * 0.2;
  return (in_sphere ? 1.0 : 0.0) + 0.25 * std::sin(kPi * x) * std::cos(0.5 * kPi * y) * (1.0 + z) + 0.1 * x * y;
}

// Fixed temperature of the boundary layer around the grid: warm on the x = 0 side, cooling along y.
double boundary_value(std::int64_t gi, std::int64_t gj, std::int64_t gk, std::int64_t n) {
  const double x = coordinate(gi, n);
  const double y = coordinate(gj, n);
  const double z = coordinate(gk, n);
  return 0.5 * (1.0 - x) * (1.0 - 0.5 * y) + 0.1 * z;
}

// Sets every interior cell of `u` to the initial condition.
void fill_initial(const Domain& dom, std::vector<double>& u) {
  for (std::int64_t i = 1; i <= dom.count(0); ++i)
    for (std::int64_t j = 1; j <= dom.count(1); ++j)
      for (std::int64_t k = 1; k <= dom.count(2); ++k)
        u[dom.at(i, j, k)] =
            initial_value(dom.offset(0) + i - 1, dom.offset(1) + j - 1, dom.offset(2) + k - 1, dom.n());
}

// Sets the halo cells of `u` that lie outside the global grid to the boundary values.
void fill_boundary(const Domain& dom, std::vector<double>& u) {
  const std::int64_t n = dom.n();
  for (std::int64_t i = 0; i <= dom.count(0) + 1; ++i)
    for (std::int64_t j = 0; j <= dom.count(1) + 1; ++j)
      for (std::int64_t k = 0; k <= dom.count(2) + 1; ++k) {
        const std::int64_t gi = dom.offset(0) + i - 1;
        const std::int64_t gj = dom.offset(1) + j - 1;
        const std::int64_t gk = dom.offset(2) + k - 1;
        const bool outside = gi < 0 || gi >= n || gj < 0 || gj >= n || gk < 0 || gk >= n;
        if (outside) u[dom.at(i, j, k)] = boundary_value(gi, gj, gk, n);
      }
}

// One explicit step: next = u + alpha * laplacian(u). Every cell is updated by the same expression
// in the same order whatever the decomposition, so the result is bitwise independent of it.
void step_field(const Domain& dom, const std::vector<double>& u, std::vector<double>& next, double alpha) {
  const std::int64_t si = dom.strides()[0];
  const std::int64_t sj = dom.strides()[1];
  for (std::int64_t i = 1; i <= dom.count(0); ++i)
    for (std::int64_t j = 1; j <= dom.count(1); ++j) {
      const double* c = u.data() + dom.at(i, j, 1);
      double* out = next.data() + dom.at(i, j, 1);
      for (std::int64_t k = 0; k < dom.count(2); ++k) {
        const double centre = c[k];
        const double sum = ((c[k - si] + c[k + si]) + (c[k - sj] + c[k + sj])) + (c[k - 1] + c[k + 1]);
        out[k] = centre + alpha * (sum - 6.0 * centre);
      }
    }
}

// Order-independent hash of the global field: the sum over cells, modulo 2^64, of the xxh3 hash of
// each value seeded with its global linear index.
std::uint64_t checksum(const Domain& dom, const std::vector<double>& u) {
  const std::int64_t n = dom.n();
  std::uint64_t local = 0;
  for (std::int64_t i = 1; i <= dom.count(0); ++i)
    for (std::int64_t j = 1; j <= dom.count(1); ++j)
      for (std::int64_t k = 1; k <= dom.count(2); ++k) {
        const double value = u[dom.at(i, j, k)];
        const std::int64_t g = ((dom.offset(0) + i - 1) * n + (dom.offset(1) + j - 1)) * n + (dom.offset(2) + k - 1);
        local += XXH3_64bits_withSeed(&value, sizeof value, static_cast<XXH64_hash_t>(g));
      }
  std::uint64_t global = 0;
  MPI_Allreduce(&local, &global, 1, MPI_UINT64_T, MPI_SUM, dom.comm());
  return global;
}

// The chunk of the global field this rank holds: the interior of its haloed array, described with
// strides so that Cairn reads and writes it in place.
cairn::Chunk interior_chunk(const Domain& dom, std::vector<double>& u) {
  return cairn::Chunk{{dom.offset(0), dom.offset(1), dom.offset(2)},
                      {dom.count(0), dom.count(1), dom.count(2)},
                      u.data() + dom.at(1, 1, 1),
                      cairn::Layout::RowMajor,
                      dom.strides()};
}

// The checkpointed state. Built before every save and load: it points into the current buffers.
cairn::State describe_state(const Domain& dom, std::vector<double>& u, std::int64_t& step, double& time,
                            std::int64_t& grid_n) {
  cairn::State state;
  cairn::ArrayEntry& field = state.add_array("fields/temperature", cairn::DType::Float64, {dom.n(), dom.n(), dom.n()});
  field.chunks.push_back(interior_chunk(dom, u));
  state.add_scalar("step", step);
  state.add_scalar("time", time);
  state.add_scalar("grid/n", grid_n);
  return state;
}

// The manager's options: a checkpoint every `checkpoint_every` steps; without --keep every
// checkpoint is kept (every step is a multiple of 1), with --keep C the newest C.
cairn::ManagerOptions manager_options(const Options& opt) {
  cairn::ManagerOptions options;
  options.every_steps = opt.checkpoint_every;
  if (opt.keep > 0) {
    options.keep_last = static_cast<int>(opt.keep);
    options.keep_every = 0;
  } else {
    options.keep_every = 1;
  }
  return options;
}

int run(const Options& opt, MPI_Comm world) {
  Domain dom(world, opt.n);
  const bool root = dom.rank() == 0;

  std::vector<double> u(dom.padded_size(), 0.0);
  std::vector<double> next(dom.padded_size(), 0.0);
  fill_boundary(dom, u);
  fill_boundary(dom, next);

  // Names the checkpoints DIR/step_%010d, saves over a duplicate of the domain communicator, and
  // removes the checkpoints --keep no longer keeps once a newer one is published. Declared after
  // the field, so that its destructor waits for a save in flight before the field is freed.
  cairn::CheckpointManager manager(dom.comm(), opt.dir, manager_options(opt));

  // alpha = D dt / h^2 with D = 1; 1/8 is inside the explicit scheme's stability limit of 1/6.
  const double alpha = 0.125;
  const double h = 1.0 / static_cast<double>(opt.n);
  const double dt = alpha * h * h;

  std::int64_t step = 0;
  double time = 0.0;
  std::int64_t grid_n = opt.n;

  if (root) {
    std::printf("heat3d: %" PRId64 "^3 grid on %d ranks (%d x %d x %d), to step %" PRId64 ", checkpoint every %" PRId64
                " steps in %s\n",
                opt.n, dom.size(), dom.dims()[0], dom.dims()[1], dom.dims()[2], opt.steps, opt.checkpoint_every,
                opt.dir.c_str());
  }

  // The save in flight, reported once it completes (get() throws its error, on every rank).
  cairn::SaveFuture pending;
  std::string pending_id;
  std::int64_t pending_step = 0;
  auto finish_pending = [&] {
    if (!pending.valid()) return;
    pending.get();
    pending = cairn::SaveFuture();
    if (root) {
      std::printf("saved step %" PRId64 " to %s\n", pending_step, pending_id.c_str());
      std::fflush(stdout);
    }
  };

  bool resumed = false;
  if (opt.restart) {
    // The newest checkpoint that is published and whose metadata reads back; damaged ones are
    // skipped (and logged).
    const std::optional<cairn::CheckpointInfo> newest = manager.latest();
    if (!newest) {
      if (root) std::printf("restart: no checkpoint in %s; starting from step 0\n", opt.dir.c_str());
    } else {
      // Check the grid size first, so that a mismatch is reported as such rather than as a
      // shape mismatch of the field.
      std::int64_t saved_n = -1;
      cairn::State header;
      header.add_scalar("grid/n", saved_n);
      manager.checkpointer().load(header, newest->id);
      if (saved_n != opt.n)
        throw cairn::UsageError("checkpoint " + newest->id + " holds a " + std::to_string(saved_n) +
                                "^3 grid but this run has --n " + std::to_string(opt.n));
      // Loads the newest checkpoint that loads whole: one whose data turns out damaged is skipped
      // for the one before it.
      cairn::State state = describe_state(dom, u, step, time, grid_n);
      const std::optional<std::int64_t> restored = manager.restore_or_start(state);
      if (restored) {
        resumed = true;
        if (root)
          std::printf("restart: resumed from %s at step %" PRId64 " (time %.9g) on %d ranks\n",
                      manager.id_of(*restored).c_str(), step, time, dom.size());
      } else {
        // A failed load may have filled part of the state.
        step = 0;
        time = 0.0;
        if (root) std::printf("restart: no checkpoint in %s could be loaded; starting from step 0\n", opt.dir.c_str());
      }
    }
  }
  if (!resumed) fill_initial(dom, u);
  if (root) std::fflush(stdout);
  // A job with a known end (CAIRN_JOB_END_TIME or SLURM_JOB_END_TIME) saves and stops in time.
  const bool limited = manager.time_left().has_value();

  while (step < opt.steps) {
    dom.exchange_halos(u);
    step_field(dom, u, next, alpha);
    std::swap(u, next);
    ++step;
    time += dt;

    // due() then async_save() is save_if_due() in two parts: the previous checkpoint is complete
    // (and reported) before the next one starts, and before a crash at a checkpoint step, so that
    // the crash test knows which checkpoint survives.
    const bool checkpoint_due = manager.due(step);
    if (checkpoint_due) finish_pending();

    if (step == opt.crash_at && root) {
      std::printf("crash: rank 0 kills itself after step %" PRId64 "\n", step);
      std::fflush(stdout);
      std::fflush(stderr);
      std::raise(SIGKILL);
    }

    if (checkpoint_due) {
      cairn::State state = describe_state(dom, u, step, time, grid_n);
      // async_save copies the field and returns; the write overlaps the next steps. The State may
      // go out of scope at once. A step saved before (a fresh run into a used directory) is
      // replaced atomically.
      pending = manager.async_save(state, step);
      pending_id = manager.id_of(step);
      pending_step = step;
      if (opt.sync) finish_pending();
    }

    if (limited && step < opt.steps) {
      cairn::State state = describe_state(dom, u, step, time, grid_n);
      if (manager.should_exit(state, step)) {
        if (root) {
          std::printf("stopping at step %" PRId64 " before the job's time limit; saved to %s\n", step,
                      manager.id_of(step).c_str());
          std::fflush(stdout);
        }
        break;
      }
    }
  }
  finish_pending();

  const std::uint64_t sum = checksum(dom, u);
  if (root) {
    std::printf("checksum: %016" PRIx64 "\n", sum);
    std::fflush(stdout);
  }
  return 0;
}

// Reports an error that may have happened on this rank only, and takes the whole job down so
// that no other rank waits forever in a collective.
[[noreturn]] void fail(int rank, int size, const char* what) {
  std::fprintf(stderr, "heat3d: rank %d: error: %s\n", rank, what);
  std::fflush(stderr);
  if (size > 1) MPI_Abort(MPI_COMM_WORLD, 1);
  MPI_Finalize();
  std::exit(1);
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
    const Options opt = parse_options(argc, argv);
    status = run(opt, MPI_COMM_WORLD);
  } catch (const ArgumentError& e) {
    // Every rank sees the same arguments and the same rank count: all of them get here.
    const bool help = std::string(e.what()) == "help";
    if (rank == 0) {
      if (help) {
        std::printf("%s\n", kUsage);
      } else {
        std::fprintf(stderr, "heat3d: %s\n%s\n", e.what(), kUsage);
      }
    }
    status = help ? 0 : 2;
  } catch (const cairn::Error& e) {
    fail(rank, size, e.what());
  } catch (const std::exception& e) {
    fail(rank, size, e.what());
  }
  MPI_Finalize();
  return status;
}
