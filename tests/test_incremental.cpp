// Incremental saves (SaveOptions::incremental_from): unchanged chunks are not written again and
// refer to the checkpoint holding their bytes. Both backends that support them (HDF5 shared file,
// posix): bytes read back on every rank, bytes written, references without chains, a missing or
// damaged holder, verify(), retention by CheckpointManager, and h5py reading the global array.
#include "test_support.hpp"

#include <hdf5.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

using namespace cairn;
using namespace cairn::test;
namespace fs = std::filesystem;

namespace {

constexpr std::int64_t chunks_per_rank = 8;
constexpr std::int64_t rows_per_chunk = 4;
constexpr std::int64_t cols = 32;

// Whether chunk `k` of rank `rank` changes in round `round`: one chunk in 8 of every rank but
// rank 1, another one each round.
bool changes(int rank, std::int64_t k, int round) {
  return rank != 1 && k == (round + rank) % chunks_per_rank;
}

std::uint64_t sum_over_ranks(std::uint64_t value) {
  MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
  return value;
}

// A simulation's state: "fields/u", each rank holding `chunks_per_rank` slabs of rows (cyclic, so
// that a rank's chunks are not neighbours), and "fields/v", which never changes.
struct Sim {
  int rank = world_rank();
  int ranks = world_size();
  std::vector<std::vector<double>> u;  // by local chunk
  std::vector<double> v;
  std::int64_t step = 0;
  std::vector<int> version;  // by local chunk: how often it changed

  Sim()
      : u(chunks_per_rank, std::vector<double>(rows_per_chunk * cols)),
        v(rows_per_chunk * cols),
        version(chunks_per_rank, 0) {
    for (std::int64_t k = 0; k < chunks_per_rank; ++k) fill(k);
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = 1000.0 * rank + static_cast<double>(i);
  }
  std::int64_t global_chunk(std::int64_t k) const { return k * ranks + rank; }
  Extents offset(std::int64_t k) const { return {global_chunk(k) * rows_per_chunk, 0}; }
  Extents shape() const { return {chunks_per_rank * ranks * rows_per_chunk, cols}; }
  void fill(std::int64_t k) {
    const std::int64_t g = global_chunk(k);
    for (std::size_t i = 0; i < u[k].size(); ++i)
      u[k][i] = pattern(g * rows_per_chunk * cols + static_cast<std::int64_t>(i), version[k]);
  }
  // About 10% of the chunks change (see changes()).
  std::int64_t change(int round) {
    std::int64_t changed = 0;
    for (std::int64_t k = 0; k < chunks_per_rank; ++k) {
      if (!changes(rank, k, round)) continue;
      ++version[k];
      fill(k);
      ++changed;
    }
    ++step;
    return changed;
  }
  State state() {
    State s;
    ArrayEntry& array = s.add_array("fields/u", DType::Float64, shape());
    for (std::int64_t k = 0; k < chunks_per_rank; ++k) array.add_chunk(offset(k), {rows_per_chunk, cols}, u[k].data());
    s.add_array("fields/v", Extents{rows_per_chunk * ranks, cols}, Extents{rows_per_chunk * rank, 0},
                Extents{rows_per_chunk, cols}, v.data());
    s.add_scalar("step", step);
    return s;
  }
  // Loads `id` into a fresh copy and checks every byte on this rank.
  void expect_loads(Checkpointer& ckpt, const std::string& id, const LoadOptions& options = {}) const {
    Sim back;
    for (auto& chunk : back.u) std::fill(chunk.begin(), chunk.end(), -1.0);
    std::fill(back.v.begin(), back.v.end(), -1.0);
    State s = back.state();
    ckpt.load(s, id, options);
    for (std::int64_t k = 0; k < chunks_per_rank; ++k)
      EXPECT_EQ(back.u[k], u[k]) << "chunk " << k << " of fields/u on rank " << rank << " from " << id;
    EXPECT_EQ(back.v, v) << "fields/v on rank " << rank;
    EXPECT_EQ(back.step, step);
  }
};

enum class Backend { Hdf5, Posix };

std::string backend_name(Backend b) {
  return b == Backend::Hdf5 ? "hdf5" : "posix";
}

SaveOptions save_options(Backend b, const std::string& base = {}) {
  SaveOptions o;
  if (b == Backend::Posix) o.writer = make_posix_writer();
  o.incremental_from = base;
  return o;
}

// The checkpoint's own metadata, references not followed.
Metadata metadata_of(Backend b, const std::string& id) {
  SerialProcessGroup alone;
  std::unique_ptr<StorageReader> reader = b == Backend::Hdf5 ? make_hdf5_reader() : make_posix_reader();
  reader->open(id, alone);
  Metadata md = reader->metadata();
  reader->close();
  return md;
}

// fields/u's chunk records by first row.
std::map<std::int64_t, ChunkRecord> u_chunks(const Metadata& md) {
  std::map<std::int64_t, ChunkRecord> out;
  const auto u = static_cast<std::int32_t>(md.find("fields/u") - md.entries.data());
  for (const ChunkRecord& c : md.chunks)
    if (c.entry == u) out.emplace(c.region.offset[0], c);
  return out;
}

// Flips one byte of `path` at `offset` (rank 0 only).
void flip_byte(const std::string& path, std::int64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(f) << path;
  f.seekg(offset);
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x5a);
  f.seekp(offset);
  f.write(&c, 1);
}

// Where fields/u's bytes start in `id`'s data.h5 (a contiguous dataset).
std::int64_t hdf5_offset_of_u(const std::string& id) {
  const hid_t file = H5Fopen((id + "/data.h5").c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t dset = H5Dopen2(file, "/fields/u", H5P_DEFAULT);
  const auto offset = static_cast<std::int64_t>(H5Dget_offset(dset));
  H5Dclose(dset);
  H5Fclose(file);
  return offset;
}

class Incremental : public testing::TestWithParam<Backend> {};

TEST_P(Incremental, WritesOnlyChangedChunksAndReadsBackEverything) {
  TempDir dir;
  Checkpointer ckpt(MPI_COMM_WORLD);
  Sim sim;
  const std::string a = dir / "step_a", b = dir / "step_b";
  SaveFuture full = ckpt.async_save(sim.state(), a, save_options(GetParam()));
  full.get();
  const Sim at_a = sim;
  const std::int64_t changed = sim.change(0);
  SaveFuture incremental = ckpt.async_save(sim.state(), b, save_options(GetParam(), a));
  incremental.get();

  const std::uint64_t chunk_bytes = rows_per_chunk * cols * sizeof(double);
  const std::uint64_t full_bytes = sum_over_ranks(full.timings().bytes_written);
  const std::uint64_t incremental_bytes = sum_over_ranks(incremental.timings().bytes_written);
  EXPECT_EQ(incremental.timings().bytes_written, static_cast<std::uint64_t>(changed) * chunk_bytes)
      << "rank " << sim.rank;
  EXPECT_LT(incremental_bytes, full_bytes / 4);
  EXPECT_GE(full_bytes, static_cast<std::uint64_t>(chunks_per_rank * sim.ranks) * chunk_bytes);

  sim.expect_loads(ckpt, b);
  at_a.expect_loads(ckpt, a);
  // Resharded: every rank reads the whole array, across chunks of both checkpoints, unchecked too.
  for (bool verify : {true, false}) {
    std::vector<double> whole(static_cast<std::size_t>(sim.shape()[0] * cols), -1.0);
    State s;
    s.add_array("fields/u", sim.shape(), Extents{0, 0}, sim.shape(), whole.data());
    LoadOptions options;
    options.verify_checksums = verify;
    ckpt.load(s, b, options);
    std::vector<double> expected(whole.size());
    for (int r = 0; r < sim.ranks; ++r)
      for (std::int64_t k = 0; k < chunks_per_rank; ++k) {
        const std::int64_t g = k * sim.ranks + r;
        const bool moved = changes(r, k, 0);
        for (std::int64_t i = 0; i < rows_per_chunk * cols; ++i)
          expected[static_cast<std::size_t>(g * rows_per_chunk * cols + i)] =
              pattern(g * rows_per_chunk * cols + i, moved ? 1 : 0);
      }
    EXPECT_EQ(whole, expected) << "rank " << sim.rank << ", verify_checksums " << verify;
  }

  // The unchanged chunks refer to the base.
  const Metadata md = metadata_of(GetParam(), b);
  std::int64_t referenced = 0;
  for (const auto& [row, c] : u_chunks(md)) {
    const std::int64_t g = row / rows_per_chunk;
    const bool moved = changes(static_cast<int>(g % sim.ranks), g / sim.ranks, 0);
    EXPECT_EQ(c.source, moved ? "" : "../step_a") << "chunk at row " << row;
    referenced += moved ? 0 : 1;
  }
  EXPECT_EQ(referenced, chunks_per_rank * sim.ranks - static_cast<std::int64_t>(sum_over_ranks(changed)));
  const VerifyReport report = ckpt.verify(b);
  EXPECT_TRUE(report.ok()) << (report.ok() ? "" : report.bad_chunks[0].message);
  EXPECT_EQ(report.chunks_checked, static_cast<std::int64_t>(md.chunks.size()));
}

TEST_P(Incremental, ChainsReferToHoldersOnly) {
  TempDir dir;
  Checkpointer ckpt(MPI_COMM_WORLD);
  Sim sim;
  const std::vector<std::string> names = {"c0", "c1", "c2", "c3"};
  std::map<std::int64_t, std::string> holder;  // by global chunk: the checkpoint that wrote it last
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) sim.change(static_cast<int>(i));
    ckpt.save(sim.state(), dir / names[i], save_options(GetParam(), i > 0 ? dir / names[i - 1] : ""));
    for (int r = 0; r < sim.ranks; ++r)
      for (std::int64_t k = 0; k < chunks_per_rank; ++k) {
        const std::int64_t g = k * sim.ranks + r;
        if (i == 0 || changes(r, k, static_cast<int>(i))) holder[g] = names[i];
      }
  }
  for (const auto& [row, c] : u_chunks(metadata_of(GetParam(), dir / "c3"))) {
    const std::string& h = holder.at(row / rows_per_chunk);
    EXPECT_EQ(c.source, h == "c3" ? std::string() : "../" + h) << "chunk at row " << row;
  }
  sim.expect_loads(ckpt, dir / "c3");
  EXPECT_TRUE(ckpt.verify(dir / "c3").ok());
}

TEST_P(Incremental, MissingBaseFailsLoadNamingIt) {
  TempDir dir;
  Checkpointer ckpt(MPI_COMM_WORLD);
  Sim sim;
  ckpt.save(sim.state(), dir / "base", save_options(GetParam()));
  sim.change(0);
  ckpt.save(sim.state(), dir / "next", save_options(GetParam(), dir / "base"));
  MPI_Barrier(MPI_COMM_WORLD);
  if (sim.rank == 0) fs::remove_all(dir / "base");
  MPI_Barrier(MPI_COMM_WORLD);
  Sim back;
  State s = back.state();
  expect_error<StorageError>([&] { ckpt.load(s, dir / "next"); }, dir.path() + "/base");
  expect_error<StorageError>([&] { ckpt.load(s, dir / "next"); }, "fields/");
  expect_error<StorageError>([&] { ckpt.verify(dir / "next"); }, "refers to checkpoint");
}

TEST_P(Incremental, VerifyFollowsReferencesAndFindsDamage) {
  TempDir dir;
  Checkpointer ckpt(MPI_COMM_WORLD);
  Sim sim;
  const std::string a = dir / "a", b = dir / "b";
  ckpt.save(sim.state(), a, save_options(GetParam()));
  sim.change(5);  // not chunk 0 of rank 0
  ckpt.save(sim.state(), b, save_options(GetParam(), a));
  ASSERT_TRUE(ckpt.verify(b).ok());
  // Row 0 of fields/u: global chunk 0 of rank 0, unchanged, so b refers to a for it.
  ASSERT_EQ(u_chunks(metadata_of(GetParam(), b)).at(0).source, "../a");
  MPI_Barrier(MPI_COMM_WORLD);
  if (sim.rank == 0) {
    if (GetParam() == Backend::Posix)
      flip_byte(a + "/rank_000000.dat", 8);
    else
      flip_byte(a + "/data.h5", hdf5_offset_of_u(a) + 8);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  const VerifyReport report = ckpt.verify(b);
  ASSERT_EQ(report.bad_chunks.size(), 1u);
  EXPECT_EQ(report.bad_chunks[0].entry, "fields/u");
  EXPECT_EQ(report.bad_chunks[0].offset, (Extents{0, 0}));
  EXPECT_NE(report.bad_chunks[0].message.find("held by checkpoint '../a'"), std::string::npos)
      << report.bad_chunks[0].message;
  Sim back;
  State s = back.state();
  expect_error<CorruptCheckpointError>([&] { ckpt.load(s, b); }, "fields/u");
}

TEST_P(Incremental, UnusableBaseWritesEverything) {
  TempDir dir;
  Checkpointer ckpt(MPI_COMM_WORLD);
  Sim sim;
  const std::uint64_t all = static_cast<std::uint64_t>(chunks_per_rank) * rows_per_chunk * cols * sizeof(double);
  // A base that does not exist, and one whose fields/u has another shape: full saves that load.
  SaveFuture missing = ckpt.async_save(sim.state(), dir / "one", save_options(GetParam(), dir / "nothing"));
  missing.get();
  EXPECT_GE(missing.timings().bytes_written, all);
  State different;
  std::vector<double> small(8, 1.0);
  different.add_array("fields/u", Extents{2 * sim.ranks, 4}, Extents{2 * sim.rank, 0}, Extents{2, 4}, small.data());
  ckpt.save(different, dir / "other", save_options(GetParam()));
  SaveFuture reshaped = ckpt.async_save(sim.state(), dir / "two", save_options(GetParam(), dir / "other"));
  reshaped.get();
  EXPECT_GE(reshaped.timings().bytes_written, all);
  // The same chunks, bytes and all, saved by rank 0 alone: another rank count, so no references.
  std::vector<std::string> ids = {dir / "one", dir / "two"};
  if (sim.ranks > 1) {
    if (sim.rank == 0) {
      Checkpointer alone(MPI_COMM_SELF);
      std::vector<Sim> parts(static_cast<std::size_t>(sim.ranks));
      State everything;
      ArrayEntry& u = everything.add_array("fields/u", DType::Float64, sim.shape());
      for (int r = 0; r < sim.ranks; ++r) {
        parts[r].rank = r;
        for (std::int64_t k = 0; k < chunks_per_rank; ++k) {
          parts[r].fill(k);
          u.add_chunk(parts[r].offset(k), {rows_per_chunk, cols}, parts[r].u[k].data());
        }
      }
      alone.save(everything, dir / "alone", save_options(GetParam()));
    }
    MPI_Barrier(MPI_COMM_WORLD);
    SaveFuture other_count = ckpt.async_save(sim.state(), dir / "three", save_options(GetParam(), dir / "alone"));
    other_count.get();
    EXPECT_GE(other_count.timings().bytes_written, all);
    ids.push_back(dir / "three");
  }
  for (const std::string& id : ids) {
    sim.expect_loads(ckpt, id);
    for (const ChunkRecord& c : metadata_of(GetParam(), id).chunks) EXPECT_TRUE(c.source.empty());
  }
}

TEST_P(Incremental, WrongUseIsAUsageError) {
  TempDir dir;
  Checkpointer ckpt(MPI_COMM_WORLD);
  Sim sim;
  ckpt.save(sim.state(), dir / "a", save_options(GetParam()));
  expect_error<UsageError>([&] { ckpt.save(sim.state(), dir / "sub/b", save_options(GetParam(), dir / "a")); },
                           "same directory");
  SaveOptions self = save_options(GetParam(), dir / "a");
  self.overwrite = true;
  expect_error<UsageError>([&] { ckpt.save(sim.state(), dir / "a", self); }, "from itself");
  SaveOptions aggregated = save_options(GetParam(), dir / "a");
  aggregated.writer = make_hdf5_aggregated_writer(1);
  expect_error<UsageError>([&] { ckpt.save(sim.state(), dir / "c", aggregated); }, "incremental");
  SaveOptions no_collectives = save_options(Backend::Hdf5, dir / "a");
  no_collectives.use_collectives = false;
  expect_error<UsageError>([&] { ckpt.save(sim.state(), dir / "d", no_collectives); }, "collectives");
  sim.expect_loads(ckpt, dir / "a");  // untouched
}

TEST_P(Incremental, ManagerKeepsReferencedCheckpoints) {
  TempDir dir;
  ManagerOptions options;
  options.keep_last = 1;
  options.incremental = true;
  options.full_every = 3;
  options.save = save_options(GetParam());
  Sim sim;
  std::vector<std::string> names;
  auto present = [&] {
    names.clear();
    for (const CheckpointInfo& info : CheckpointManager(MPI_COMM_WORLD, dir.path(), options).list())
      names.push_back(fs::path(info.id).filename().string());
    return names;
  };
  {
    CheckpointManager manager(MPI_COMM_WORLD, dir.path(), options);
    for (std::int64_t step = 1; step <= 3; ++step) {
      if (step > 1) sim.change(static_cast<int>(step));
      manager.save(sim.state(), step);
    }
  }
  // Step 3 refers to steps 1 and 2: kept although keep_last is 1.
  EXPECT_EQ(present(), (std::vector<std::string>{"step_0000000001", "step_0000000002", "step_0000000003"}));
  {
    CheckpointManager manager(MPI_COMM_WORLD, dir.path(), options);
    Sim back;
    State restored = back.state();
    EXPECT_EQ(manager.restore_or_start(restored), std::optional<std::int64_t>(3));
    for (std::int64_t k = 0; k < chunks_per_rank; ++k) EXPECT_EQ(back.u[k], sim.u[k]);
    // The first save of a manager is full: nothing refers to the older ones any more.
    sim.change(4);
    manager.save(sim.state(), 4);
  }
  EXPECT_EQ(present(), (std::vector<std::string>{"step_0000000004"}));
  Checkpointer ckpt(MPI_COMM_WORLD);
  sim.expect_loads(ckpt, dir / "step_0000000004");
}

TEST_P(Incremental, ManagerSkipsCheckpointsWhoseHolderIsGone) {
  TempDir dir;
  ManagerOptions options;
  options.keep_last = 5;
  options.incremental = true;
  options.save = save_options(GetParam());
  Sim sim;
  Sim at_1;
  {
    CheckpointManager manager(MPI_COMM_WORLD, dir.path(), options);
    manager.save(sim.state(), 1);
    at_1 = sim;
    sim.change(2);
    manager.save(sim.state(), 2);
    sim.change(3);
    manager.save(sim.state(), 3);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  if (sim.rank == 0) fs::remove_all(dir / "step_0000000002");
  MPI_Barrier(MPI_COMM_WORLD);
  CheckpointManager manager(MPI_COMM_WORLD, dir.path(), options);
  const std::optional<CheckpointInfo> latest = manager.latest();
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->step, 1);
  Sim back;
  State restored = back.state();
  EXPECT_EQ(manager.restore_or_start(restored), std::optional<std::int64_t>(1));
  for (std::int64_t k = 0; k < chunks_per_rank; ++k) EXPECT_EQ(back.u[k], at_1.u[k]);
}

TEST_P(Incremental, CompressedEntriesReferToo) {
  TempDir dir;
  Checkpointer ckpt(MPI_COMM_WORLD);
  Sim sim;
  auto compressed = [&](Sim& s) {
    State state = s.state();
    std::get<ArrayEntry>(state.entries().front().value).compress(Compression::Deflate, 1);
    return state;
  };
  ckpt.save(compressed(sim), dir / "a", save_options(GetParam()));
  sim.change(2);
  SaveFuture f = ckpt.async_save(compressed(sim), dir / "b", save_options(GetParam(), dir / "a"));
  f.get();
  EXPECT_LT(sum_over_ranks(f.timings().bytes_written),
            static_cast<std::uint64_t>(sim.ranks) * chunks_per_rank * rows_per_chunk * cols * sizeof(double) / 4);
  sim.expect_loads(ckpt, dir / "b");
  EXPECT_TRUE(ckpt.verify(dir / "b").ok());
}

INSTANTIATE_TEST_SUITE_P(Backends, Incremental, testing::Values(Backend::Hdf5, Backend::Posix),
                         [](const testing::TestParamInfo<Backend>& p) { return backend_name(p.param); });

// h5py reads fields/u of an incremental HDF5 checkpoint whole, from another working directory:
// the virtual dataset finds the base's data.h5 beside it.
TEST(IncrementalHdf5, H5pyReadsTheGlobalArray) {
  const char* python = std::getenv("CAIRN_TEST_PYTHON");
  if (python == nullptr || *python == '\0') GTEST_SKIP() << "CAIRN_TEST_PYTHON (a python3 with h5py) is not set";
  TempDir dir;
  Checkpointer ckpt(MPI_COMM_WORLD);
  Sim sim;
  ckpt.save(sim.state(), dir / "a");
  sim.change(0);
  ckpt.save(sim.state(), dir / "b", save_options(Backend::Hdf5, dir / "a"));
  sim.change(1);
  ckpt.save(sim.state(), dir / "c", save_options(Backend::Hdf5, dir / "b"));
  // Every rank's chunks of fields/u, in a file h5py compares with.
  const std::string expected = dir / ("expected_" + std::to_string(sim.rank) + ".bin");
  {
    std::ofstream out(expected, std::ios::binary);
    for (std::int64_t k = 0; k < chunks_per_rank; ++k) {
      const std::int64_t first = sim.offset(k)[0];
      out.write(reinterpret_cast<const char*>(&first), sizeof first);
      out.write(reinterpret_cast<const char*>(sim.u[k].data()), static_cast<std::streamsize>(sim.u[k].size() * 8));
    }
  }
  MPI_Barrier(MPI_COMM_WORLD);
  if (sim.rank == 0) {
    const std::string script = dir / "check.py";
    std::ofstream(script) << "import sys, h5py, numpy as np\n"
                             "path, expected = sys.argv[1], sys.argv[6]\n"
                             "ranks, rows, cols, chunks = map(int, sys.argv[2:6])\n"
                             "with h5py.File(path, 'r') as f:\n"
                             "    u = f['fields/u'][...]\n"
                             "    assert f['fields/u'].is_virtual\n"
                             "    assert u.shape == (ranks * chunks * rows, cols), u.shape\n"
                             "    for r in range(ranks):\n"
                             "        raw = open(expected % r, 'rb').read()\n"
                             "        step = 8 + rows * cols * 8\n"
                             "        for k in range(chunks):\n"
                             "            first = int(np.frombuffer(raw[k * step:k * step + 8], dtype=np.int64)[0])\n"
                             "            want = np.frombuffer(raw[k * step + 8:(k + 1) * step], dtype=np.float64)\n"
                             "            assert np.array_equal(u[first:first + rows].ravel(), want), (r, k)\n"
                             "    v = f['fields/v'][...]\n"
                             "    assert v.shape == (ranks * rows, cols)\n"
                             "print('h5py read the incremental checkpoint whole')\n";
    const std::string command = "cd / && " + std::string(python) + " " + script + " " + (dir / "c/data.h5") + " " +
                                std::to_string(sim.ranks) + " " + std::to_string(rows_per_chunk) + " " +
                                std::to_string(cols) + " " + std::to_string(chunks_per_rank) + " " +
                                (dir / "expected_%d.bin");
    EXPECT_EQ(std::system(command.c_str()), 0) << command;
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

}  // namespace
