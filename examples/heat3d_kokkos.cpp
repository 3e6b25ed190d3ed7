// heat3d_kokkos: heat3d (examples/heat3d.cpp) with Kokkos Views and kernels, checkpointed with
// cairn::kokkos::add_view and a cairn::CheckpointManager.
//
//   mpirun -np P heat3d_kokkos --steps N --checkpoint-every K --dir DIR [--restart] [--n GRID]
//                              [--keep C] [--crash-at STEP] [--sync]
//                              [--staging copy|zero-copy|bounded] [--budget-mib B] [--no-checkpoint]
//
// The same explicit 7-point stencil as heat3d on a GRID^3 global grid with fixed boundary values,
// on the same domain decomposition. The field lives in two Kokkos::Views with one layer of halo
// cells (u and u_new, swapped every step); the update is a Kokkos::parallel_for. Every K steps a
// CheckpointManager over DIR saves the interior of u, a strided subview added with
// cairn::kokkos::add_view, to DIR/step_%010d: asynchronously by default (async_save stages the
// interior and returns; the write overlaps the next K steps, and the next checkpoint first waits
// for it), or with --sync waiting for every save. Every checkpoint is kept unless --keep C asks for
// the newest C only. --staging picks the cairn::StagingMode (zero-copy: the saved buffer is not
// written again until its save completes), --budget-mib the staging budget of bounded mode, and
// --no-checkpoint saves nothing (--checkpoint-every and --dir are then optional). --restart resumes
// from the newest good checkpoint in DIR (a damaged one is skipped for the one before it) on any
// number of ranks.
//
// At the end rank 0 prints
//   heat3d_kokkos: ranks=P steps=S checkpoints=C mode=async|sync|none staging=MODE elapsed_s=T checksum=X
//   checksum: X
// where S is the number of steps this run advanced, C the checkpoints it saved, T the wall time
// of the time loop (slowest rank; the wait for the last save included) and X the checksum of the
// global field, identical in format and value to heat3d's for the same --n and --steps.
//
// Halos are exchanged with MPI directly on View memory when the host can read it, and through a
// host copy otherwise.
#include <cairn/checkpointer.hpp>
#include <cairn/error.hpp>
#include <cairn/kokkos.hpp>
#include <cairn/manager.hpp>
#include <cairn/state.hpp>

#include <mpi.h>
#include <xxhash.h>
#include <Kokkos_Core.hpp>

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
  cairn::StagingMode staging = cairn::StagingMode::Copy;
  std::int64_t budget_mib = 256;
  bool no_checkpoint = false;
  std::int64_t keep = 0;  // 0: keep every checkpoint
};

constexpr const char* kUsage =
    "usage: heat3d_kokkos --steps N --checkpoint-every K --dir DIR [--restart] [--n GRID] [--keep C] "
    "[--crash-at STEP] [--sync] [--staging copy|zero-copy|bounded] [--budget-mib B] [--no-checkpoint]";

const char* staging_name(cairn::StagingMode mode) {
  switch (mode) {
    case cairn::StagingMode::Copy: return "copy";
    case cairn::StagingMode::ZeroCopy: return "zero-copy";
    case cairn::StagingMode::Bounded: return "bounded";
  }
  return "?";
}

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
    } else if (arg == "--staging") {
      const std::string mode = value();
      if (mode == "copy") {
        opt.staging = cairn::StagingMode::Copy;
      } else if (mode == "zero-copy") {
        opt.staging = cairn::StagingMode::ZeroCopy;
      } else if (mode == "bounded") {
        opt.staging = cairn::StagingMode::Bounded;
      } else {
        throw ArgumentError("--staging must be copy, zero-copy or bounded, not '" + mode + "'");
      }
    } else if (arg == "--budget-mib") {
      opt.budget_mib = parse_int(arg, value());
    } else if (arg == "--no-checkpoint") {
      opt.no_checkpoint = true;
    } else if (arg == "-h" || arg == "--help") {
      throw ArgumentError("help");
    } else {
      throw ArgumentError("unknown argument '" + arg + "'");
    }
  }
  if (opt.steps < 0) throw ArgumentError("--steps N (N >= 0) is required");
  if (!opt.no_checkpoint || opt.checkpoint_every != -1) {
    if (opt.checkpoint_every <= 0) throw ArgumentError("--checkpoint-every K (K >= 1) is required");
  }
  if (!opt.no_checkpoint || opt.restart) {
    if (opt.dir.empty()) throw ArgumentError("--dir DIR is required");
  }
  if (opt.n < 1) throw ArgumentError("--n must be at least 1");
  // The global linear index of a cell must fit in int64 and the halo sizes in an MPI int.
  if (opt.n > 100000) throw ArgumentError("--n is too large");
  if (opt.budget_mib < 2 || opt.budget_mib > (std::int64_t{1} << 30))
    throw ArgumentError("--budget-mib must be at least 2");
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

// The field with one layer of halo cells on every side, (i, j, k) with k fastest, as heat3d's.
using Field = Kokkos::View<double***, Kokkos::LayoutRight>;
using HostField = Field::host_mirror_type;  // HostMirror is the older name of the same type
constexpr bool kFieldOnHost = Kokkos::SpaceAccessibility<Kokkos::HostSpace, Field::memory_space>::accessible;

// This rank's block of the global grid and its neighbours (the decomposition of heat3d).
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
  std::int64_t padded(int d) const noexcept { return m_padded[d]; }

  // A zero-filled haloed field.
  Field make_field(const char* label) const {
    return Field(std::string(label), static_cast<std::size_t>(m_padded[0]), static_cast<std::size_t>(m_padded[1]),
                 static_cast<std::size_t>(m_padded[2]));
  }

  // Fills the halo cells of `u` with the neighbours' faces. Halo cells on the outer boundary of
  // the domain have no neighbour (MPI_PROC_NULL) and keep their fixed boundary values.
  void exchange_halos(const Field& u) const {
    if constexpr (kFieldOnHost) {
      exchange_halos_on(u.data());
    } else {
      HostField host = Kokkos::create_mirror_view(u);
      Kokkos::deep_copy(host, u);
      exchange_halos_on(host.data());
      Kokkos::deep_copy(u, host);
    }
  }

 private:
  void exchange_halos_on(double* u) const {
    for (int d = 0; d < 3; ++d) {
      // My high face to the high neighbour; the low neighbour's high face into my low halo.
      MPI_Sendrecv(u, 1, m_face_types[4 * d + 0], m_high[d], 2 * d, u, 1, m_face_types[4 * d + 1], m_low[d], 2 * d,
                   m_cart, MPI_STATUS_IGNORE);
      // My low face to the low neighbour; the high neighbour's low face into my high halo.
      MPI_Sendrecv(u, 1, m_face_types[4 * d + 2], m_low[d], 2 * d + 1, u, 1, m_face_types[4 * d + 3], m_high[d],
                   2 * d + 1, m_cart, MPI_STATUS_IGNORE);
    }
  }

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

// Sets the interior of `u` to the initial condition and its halo cells outside the global grid
// to the boundary values (on the host, then copied to the View).
void fill_initial(const Domain& dom, const Field& u, bool set_interior) {
  HostField host = Kokkos::create_mirror_view(u);
  Kokkos::deep_copy(host, u);
  const std::int64_t n = dom.n();
  for (std::int64_t i = 0; i < dom.padded(0); ++i)
    for (std::int64_t j = 0; j < dom.padded(1); ++j)
      for (std::int64_t k = 0; k < dom.padded(2); ++k) {
        const std::int64_t gi = dom.offset(0) + i - 1;
        const std::int64_t gj = dom.offset(1) + j - 1;
        const std::int64_t gk = dom.offset(2) + k - 1;
        const bool outside = gi < 0 || gi >= n || gj < 0 || gj >= n || gk < 0 || gk >= n;
        const bool inside = i >= 1 && i <= dom.count(0) && j >= 1 && j <= dom.count(1) && k >= 1 && k <= dom.count(2);
        if (outside) host(i, j, k) = boundary_value(gi, gj, gk, n);
        if (inside && set_interior) host(i, j, k) = initial_value(gi, gj, gk, n);
      }
  Kokkos::deep_copy(u, host);
}

// One explicit step: next = u + alpha * laplacian(u), each cell by heat3d's expression in heat3d's
// order, so the field is bitwise heat3d's.
void step_field(const Domain& dom, const Field& u, const Field& next, double alpha) {
  using Policy = Kokkos::MDRangePolicy<Kokkos::Rank<3>, Kokkos::IndexType<std::int64_t>>;
  const Policy policy({1, 1, 1}, {dom.count(0) + 1, dom.count(1) + 1, dom.count(2) + 1});
  Kokkos::parallel_for(
      "heat3d_kokkos::step", policy, KOKKOS_LAMBDA(const std::int64_t i, const std::int64_t j, const std::int64_t k) {
        const double centre = u(i, j, k);
        const double sum =
            ((u(i - 1, j, k) + u(i + 1, j, k)) + (u(i, j - 1, k) + u(i, j + 1, k))) + (u(i, j, k - 1) + u(i, j, k + 1));
        next(i, j, k) = centre + alpha * (sum - 6.0 * centre);
      });
  Kokkos::fence();
}

// Order-independent hash of the global field, as heat3d's: the sum over cells, modulo 2^64, of
// the xxh3 hash of each value seeded with its global linear index.
std::uint64_t checksum(const Domain& dom, const Field& u) {
  HostField host = Kokkos::create_mirror_view(u);
  Kokkos::deep_copy(host, u);
  const std::int64_t n = dom.n();
  std::uint64_t local = 0;
  for (std::int64_t i = 1; i <= dom.count(0); ++i)
    for (std::int64_t j = 1; j <= dom.count(1); ++j)
      for (std::int64_t k = 1; k <= dom.count(2); ++k) {
        const double value = host(i, j, k);
        const std::int64_t g = ((dom.offset(0) + i - 1) * n + (dom.offset(1) + j - 1)) * n + (dom.offset(2) + k - 1);
        local += XXH3_64bits_withSeed(&value, sizeof value, static_cast<XXH64_hash_t>(g));
      }
  std::uint64_t global = 0;
  MPI_Allreduce(&local, &global, 1, MPI_UINT64_T, MPI_SUM, dom.comm());
  return global;
}

// The interior of the haloed field: a strided (LayoutStride) subview.
auto interior(const Field& u) {
  using range = std::pair<std::size_t, std::size_t>;
  return Kokkos::subview(u, range(1, u.extent(0) - 1), range(1, u.extent(1) - 1), range(1, u.extent(2) - 1));
}

// The checkpointed state. Built before every save and load: it points into the current buffer.
cairn::State describe_state(const Domain& dom, const Field& u, std::int64_t& step, double& time, std::int64_t& grid_n) {
  cairn::State state;
  cairn::kokkos::add_view(state, "fields/temperature", interior(u), {dom.n(), dom.n(), dom.n()},
                          {dom.offset(0), dom.offset(1), dom.offset(2)});
  state.add_scalar("step", step);
  state.add_scalar("time", time);
  state.add_scalar("grid/n", grid_n);
  return state;
}

// The manager's options: a checkpoint every `checkpoint_every` steps (none with --no-checkpoint);
// without --keep every checkpoint is kept (every step is a multiple of 1), with --keep C the newest
// C; each save with --staging and --budget-mib.
cairn::ManagerOptions manager_options(const Options& opt) {
  cairn::ManagerOptions options;
  options.every_steps = opt.no_checkpoint ? 0 : opt.checkpoint_every;
  if (opt.keep > 0) {
    options.keep_last = static_cast<int>(opt.keep);
    options.keep_every = 0;
  } else {
    options.keep_every = 1;
  }
  options.save.staging = opt.staging;
  options.save.staging_budget_bytes = static_cast<std::size_t>(opt.budget_mib) << 20;
  return options;
}

int run(const Options& opt, MPI_Comm world) {
  Domain dom(world, opt.n);
  const bool root = dom.rank() == 0;

  Field u = dom.make_field("u");
  Field next = dom.make_field("u_new");
  fill_initial(dom, u, false);
  fill_initial(dom, next, false);

  const bool checkpointing = !opt.no_checkpoint;
  // Names the checkpoints DIR/step_%010d, saves over a duplicate of the domain communicator, and
  // removes the checkpoints --keep no longer keeps once a newer one is published. None without
  // checkpoints or a restart. Declared after the Views, so that its destructor waits for a save in
  // flight (which may read u in place under zero-copy staging) before they are freed.
  std::optional<cairn::CheckpointManager> manager;
  if (checkpointing || opt.restart) manager.emplace(dom.comm(), opt.dir, manager_options(opt));

  // alpha = D dt / h^2 with D = 1; 1/8 is inside the explicit scheme's stability limit of 1/6.
  const double alpha = 0.125;
  const double h = 1.0 / static_cast<double>(opt.n);
  const double dt = alpha * h * h;

  std::int64_t step = 0;
  double time = 0.0;
  std::int64_t grid_n = opt.n;
  const char* mode = !checkpointing ? "none" : opt.sync ? "sync" : "async";

  if (root) {
    std::printf("heat3d_kokkos: %" PRId64 "^3 grid on %d ranks (%d x %d x %d), to step %" PRId64, opt.n, dom.size(),
                dom.dims()[0], dom.dims()[1], dom.dims()[2], opt.steps);
    if (checkpointing) {
      std::printf(", %s checkpoints (staging %s) every %" PRId64 " steps in %s", mode, staging_name(opt.staging),
                  opt.checkpoint_every, opt.dir.c_str());
    } else {
      std::printf(", no checkpoints");
    }
    std::printf("; Kokkos %s\n", Field::execution_space::name());
    if (checkpointing && !manager->checkpointer().background_writes())
      std::printf(
          "heat3d_kokkos: MPI is below MPI_THREAD_MULTIPLE: saves are written inside wait(), not during "
          "the steps\n");
  }

  // The save in flight, reported once it completes (get() throws its error, on every rank), and
  // under zero-copy staging the buffer it may still read.
  cairn::SaveFuture pending;
  std::string pending_id;
  std::int64_t pending_step = 0;
  const double* pending_buffer = nullptr;
  auto finish_pending = [&] {
    if (!pending.valid()) return;
    pending.get();
    const cairn::SaveTimings timings = pending.timings();
    pending = cairn::SaveFuture();
    pending_buffer = nullptr;
    if (root) {
      std::printf("saved step %" PRId64 " to %s (rank 0: call %.3f s, stage %.3f s, write %.3f s, commit %.3f s)\n",
                  pending_step, pending_id.c_str(), timings.stall_seconds, timings.stage_seconds, timings.write_seconds,
                  timings.commit_seconds);
      std::fflush(stdout);
    }
  };

  bool resumed = false;
  if (opt.restart) {
    // The newest checkpoint that is published and whose metadata reads back; damaged ones are
    // skipped (and logged).
    const std::optional<cairn::CheckpointInfo> newest = manager->latest();
    if (!newest) {
      if (root) std::printf("restart: no checkpoint in %s; starting from step 0\n", opt.dir.c_str());
    } else {
      // Check the grid size first, so that a mismatch is reported as such rather than as a
      // shape mismatch of the field.
      std::int64_t saved_n = -1;
      cairn::State header;
      header.add_scalar("grid/n", saved_n);
      manager->checkpointer().load(header, newest->id);
      if (saved_n != opt.n)
        throw cairn::UsageError("checkpoint " + newest->id + " holds a " + std::to_string(saved_n) +
                                "^3 grid but this run has --n " + std::to_string(opt.n));
      // Loads the newest checkpoint that loads whole: one whose data turns out damaged is skipped
      // for the one before it.
      cairn::State state = describe_state(dom, u, step, time, grid_n);
      const std::optional<std::int64_t> restored = manager->restore_or_start(state);
      if (restored) {
        resumed = true;
        if (root)
          std::printf("restart: resumed from %s at step %" PRId64 " (time %.9g) on %d ranks\n",
                      manager->id_of(*restored).c_str(), step, time, dom.size());
      } else {
        // A failed load may have filled part of the state.
        step = 0;
        time = 0.0;
        if (root) std::printf("restart: no checkpoint in %s could be loaded; starting from step 0\n", opt.dir.c_str());
      }
    }
  }
  if (!resumed) fill_initial(dom, u, true);
  if (root) std::fflush(stdout);

  const std::int64_t first_step = step;
  std::int64_t checkpoints = 0;
  MPI_Barrier(dom.comm());
  const double start = MPI_Wtime();
  while (step < opt.steps) {
    // Zero-copy: the save in flight reads u's interior in place; finish it before the step that
    // writes into that buffer again (two swaps after the save; the halo exchange in between only
    // writes halo cells, which are not saved).
    if (pending_buffer != nullptr && pending_buffer == next.data()) finish_pending();
    dom.exchange_halos(u);
    step_field(dom, u, next, alpha);
    std::swap(u, next);
    ++step;
    time += dt;

    // due() then async_save() is save_if_due() in two parts: the previous checkpoint is complete
    // (and reported) before the next one starts, and before a crash at a checkpoint step, so that
    // the crash test knows which checkpoint survives.
    const bool checkpoint_due = checkpointing && manager->due(step);
    if (checkpoint_due) finish_pending();

    if (step == opt.crash_at && root) {
      std::printf("crash: rank 0 kills itself after step %" PRId64 "\n", step);
      std::fflush(stdout);
      std::fflush(stderr);
      std::raise(SIGKILL);
    }

    if (checkpoint_due) {
      cairn::State state = describe_state(dom, u, step, time, grid_n);
      // async_save stages the interior (a host View in place; a device View through its host
      // mirror) and returns; the write overlaps the next steps. The State may go out of scope. A
      // step saved before (a fresh run into a used directory) is replaced atomically.
      pending = manager->async_save(state, step);
      pending_id = manager->id_of(step);
      pending_step = step;
      if (opt.staging == cairn::StagingMode::ZeroCopy) pending_buffer = u.data();
      ++checkpoints;
      if (opt.sync) finish_pending();
    }
  }
  finish_pending();
  double elapsed = MPI_Wtime() - start;
  MPI_Allreduce(MPI_IN_PLACE, &elapsed, 1, MPI_DOUBLE, MPI_MAX, dom.comm());

  const std::uint64_t sum = checksum(dom, u);
  if (root) {
    std::printf("heat3d_kokkos: ranks=%d steps=%" PRId64 " checkpoints=%" PRId64
                " mode=%s staging=%s elapsed_s=%.6f checksum=%016" PRIx64 "\n",
                dom.size(), step - first_step, checkpoints, mode, staging_name(opt.staging), elapsed, sum);
    std::printf("checksum: %016" PRIx64 "\n", sum);
    std::fflush(stdout);
  }
  return 0;
}

// Reports an error that may have happened on this rank only, and takes the whole job down so
// that no other rank waits forever in a collective.
[[noreturn]] void fail(int rank, int size, const char* what) {
  std::fprintf(stderr, "heat3d_kokkos: rank %d: error: %s\n", rank, what);
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
  Kokkos::initialize(argc, argv);

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
        std::fprintf(stderr, "heat3d_kokkos: %s\n%s\n", e.what(), kUsage);
      }
    }
    status = help ? 0 : 2;
  } catch (const cairn::Error& e) {
    fail(rank, size, e.what());
  } catch (const std::exception& e) {
    fail(rank, size, e.what());
  }
  Kokkos::finalize();
  MPI_Finalize();
  return status;
}
