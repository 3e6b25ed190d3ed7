// The HDF5 writers' layouts and tuning options: the aggregated layout (part files behind virtual
// datasets) with every grouping of ranks, and the shared file with each Hdf5Options switch. Each
// saves on every rank count up to the world, loads on every rank count with another
// decomposition and checks every element on every rank, in Copy and Bounded staging.
#include "sim_state.hpp"
#include "test_support.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <functional>

using namespace cairn;
using namespace cairn::test;

namespace {

struct WriterCase {
  const char* name;
  std::function<std::shared_ptr<StorageWriter>()> make;
};

std::vector<WriterCase> writer_cases() {
  std::vector<WriterCase> cases;
  cases.push_back(
      {"aggregated_per_node", [] { return std::shared_ptr<StorageWriter>(make_hdf5_aggregated_writer()); }});
  cases.push_back(
      {"aggregated_one_file", [] { return std::shared_ptr<StorageWriter>(make_hdf5_aggregated_writer(1)); }});
  cases.push_back(
      {"aggregated_two_files", [] { return std::shared_ptr<StorageWriter>(make_hdf5_aggregated_writer(2)); }});
  cases.push_back(
      {"aggregated_file_per_rank", [] { return std::shared_ptr<StorageWriter>(make_hdf5_aggregated_writer(64)); }});
  cases.push_back({"hdf5_collective", [] {
                     Hdf5Options o;
                     o.collective_writes = true;
                     return std::shared_ptr<StorageWriter>(make_hdf5_writer(o));
                   }});
  cases.push_back({"hdf5_chunked", [] {
                     Hdf5Options o;
                     o.chunked = true;
                     return std::shared_ptr<StorageWriter>(make_hdf5_writer(o));
                   }});
  cases.push_back({"hdf5_aligned_hints_no_coll_metadata", [] {
                     Hdf5Options o;
                     o.alignment = 1 << 20;
                     o.alignment_threshold = 1;
                     o.collective_metadata = false;
                     o.mpi_hints = {{"cb_nodes", "1"}, {"romio_cb_write", "enable"}, {"no_such_hint", "x"}};
                     return std::shared_ptr<StorageWriter>(make_hdf5_writer(o));
                   }});
  return cases;
}

struct ArraySpec {
  const char* name;
  DType dtype;
  Extents shape;
  int seed;
};

const ArraySpec specs[] = {{"one_d", DType::Float64, {37}, 1},
                           {"grid/two_d", DType::Int32, {13, 11}, 2},
                           {"grid/three_d", DType::Float32, {7, 6, 5}, 3}};
const Decomposition kinds[] = {Decomposition::Slabs, Decomposition::Grid, Decomposition::EmptyFirst,
                               Decomposition::TwoPerRank};

// Every array's value at a global linear index, exact in all three dtypes.
double value_at(std::int64_t linear, int seed) {
  return static_cast<double>(linear % 1000) * 4.0 + seed;
}

// Holds one rank's chunks of the three arrays (as doubles, converted on add), a replicated array,
// rank-local bytes and scalars.
struct LayoutState {
  LayoutState(MPI_Comm comm, int variant, bool with_rank_local) {
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    for (std::size_t a = 0; a < std::size(specs); ++a) {
      const ArraySpec& spec = specs[a];
      ArrayEntry& entry = state.add_array(spec.name, spec.dtype, spec.shape);
      for (const Block& b : decompose(spec.shape, size, rank, kinds[(static_cast<std::size_t>(variant) + a) % 4])) {
        blocks.push_back({a, b});
        buffers.emplace_back(static_cast<std::size_t>(detail_volume(b.shape)) * 8, std::byte{0});
        entry.add_chunk(b.offset, b.shape, buffers.back().data());
      }
    }
    replicated.resize(300);
    state.add_replicated_array<std::int64_t>("replicated", {300}, replicated.data());
    state.add_scalar("step", step);
    // Rank-local entries load only onto as many ranks as saved them.
    rng.resize(static_cast<std::size_t>(5 + rank));
    if (!with_rank_local) return;
    state.add_bytes("rng", rng.data(), rng.size());
    state.add_scalar("rank_time", rank_time, Distribution::RankLocal);
  }

  static std::int64_t detail_volume(const Extents& shape) {
    std::int64_t n = 1;
    for (auto e : shape) n *= e;
    return n;
  }

  template <class T>
  void for_values(std::size_t k, const std::function<void(T&, double)>& visit) {
    const auto& [a, b] = blocks[k];
    T* data = reinterpret_cast<T*>(buffers[k].data());
    for_each_element(b, [&](const Extents& l, std::int64_t pos) {
      visit(data[pos], value_at(global_linear(specs[a].shape, b, l), specs[a].seed));
    });
  }

  template <class Visit>
  void each(Visit&& visit) {
    for (std::size_t k = 0; k < blocks.size(); ++k) {
      switch (specs[blocks[k].first].dtype) {
        case DType::Float64: for_values<double>(k, [&](double& v, double want) { visit(v, want); }); break;
        case DType::Int32: for_values<std::int32_t>(k, [&](std::int32_t& v, double want) { visit(v, want); }); break;
        case DType::Float32: for_values<float>(k, [&](float& v, double want) { visit(v, want); }); break;
        default: break;
      }
    }
  }

  void fill() {
    each([](auto& v, double want) { v = static_cast<std::remove_reference_t<decltype(v)>>(want); });
    for (std::size_t i = 0; i < replicated.size(); ++i) replicated[i] = static_cast<std::int64_t>(i * i);
    for (std::size_t i = 0; i < rng.size(); ++i) rng[i] = static_cast<unsigned char>(17 * rank + static_cast<int>(i));
    step = 42;
    rank_time = 0.25 * rank;
  }

  void clear() {
    each([](auto& v, double) { v = static_cast<std::remove_reference_t<decltype(v)>>(-3); });
    std::fill(replicated.begin(), replicated.end(), -1);
    std::fill(rng.begin(), rng.end(), 0);
    step = -1;
    rank_time = -1.0;
  }

  // Mismatching values on this rank (bytes and rank-local scalars only when saved and loaded on
  // the same number of ranks: they are per rank).
  std::int64_t mismatches(bool same_ranks) {
    std::int64_t bad = 0;
    each([&](auto& v, double want) { bad += static_cast<double>(v) != want; });
    for (std::size_t i = 0; i < replicated.size(); ++i) bad += replicated[i] != static_cast<std::int64_t>(i * i);
    bad += step != 42;
    if (same_ranks) {
      for (std::size_t i = 0; i < rng.size(); ++i)
        bad += rng[i] != static_cast<unsigned char>(17 * rank + static_cast<int>(i));
      bad += rank_time != 0.25 * rank;
    }
    return bad;
  }

  int rank = 0, size = 1;
  std::vector<std::pair<std::size_t, Block>> blocks;
  std::vector<std::vector<std::byte>> buffers;
  std::vector<std::int64_t> replicated;
  std::vector<unsigned char> rng;
  std::int64_t step = 0;
  double rank_time = 0.0;
  State state;
};

MPI_Comm sub_communicator(int n) {
  MPI_Comm comm = MPI_COMM_NULL;
  MPI_Comm_split(MPI_COMM_WORLD, world_rank() < n ? 0 : MPI_UNDEFINED, world_rank(), &comm);
  return comm;
}

class Layouts : public ::testing::TestWithParam<std::size_t> {
 protected:
  WriterCase writer_case() const { return writer_cases()[GetParam()]; }
};

TEST_P(Layouts, EverySaveAndLoadRankCount) {
  TempDir dir;
  const int world = world_size();
  const WriterCase wc = writer_case();
  for (StagingMode staging : {StagingMode::Copy, StagingMode::Bounded}) {
    for (int n = 1; n <= world; ++n) {
      for (int m = 1; m <= world; ++m) {
        const int variant = n + m;
        const std::string id = dir / (std::string(wc.name) + (staging == StagingMode::Copy ? "_copy" : "_bounded") +
                                      "_n" + std::to_string(n) + "_m" + std::to_string(m));
        MPI_Comm save_comm = sub_communicator(n);
        if (save_comm != MPI_COMM_NULL) {
          LayoutState saved(save_comm, variant, true);
          saved.fill();
          SaveOptions options;
          options.writer = wc.make();
          options.staging = staging;
          options.staging_budget_bytes = std::size_t{2} << 20;
          Checkpointer ck(save_comm);
          ck.save(saved.state, id, options);
          MPI_Comm_free(&save_comm);
        }
        MPI_Comm load_comm = sub_communicator(m);
        if (load_comm != MPI_COMM_NULL) {
          LayoutState loaded(load_comm, variant + 1, n == m);
          loaded.clear();
          Checkpointer ck(load_comm);
          ck.load(loaded.state, id);
          EXPECT_EQ(loaded.mismatches(n == m), 0)
              << wc.name << ": saved on " << n << " ranks, loaded on " << m << ", rank " << loaded.rank;
          const VerifyReport report = ck.verify(id);
          EXPECT_TRUE(report.ok()) << wc.name << " " << id;
          EXPECT_GT(report.chunks_checked, 0);
          MPI_Comm_free(&load_comm);
        }
        MPI_Barrier(MPI_COMM_WORLD);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Writers, Layouts, ::testing::Range(std::size_t{0}, writer_cases().size()),
                         [](const ::testing::TestParamInfo<std::size_t>& param) {
                           return std::string(writer_cases()[param.param].name);
                         });

// A large array in the aggregated layout: bytes equal on every rank after a Bounded save whose
// pieces split the items, loaded with another decomposition.
TEST(AggregatedLayout, BoundedPiecesOfLargeChunks) {
  TempDir dir;
  Sim saved(Decomposition::Slabs, 7);
  SaveOptions options;
  options.writer = make_hdf5_aggregated_writer();
  options.staging = StagingMode::Bounded;
  options.staging_budget_bytes = std::size_t{2} << 20;
  Checkpointer ck(MPI_COMM_WORLD);
  ck.save(saved.state, dir / "big", options);
  Sim loaded(Decomposition::TwoPerRank, 0);
  loaded.clear();
  ck.load(loaded.state, dir / "big");
  EXPECT_TRUE(all_ranks(loaded.holds(7)));
}

// Damage in a part file is found by the checksums; a missing part file is named, not read as zeros.
TEST(AggregatedLayout, DamagedOrMissingPartFile) {
  TempDir dir;
  Sim saved(Decomposition::Slabs, 3);
  SaveOptions options;
  options.writer = make_hdf5_aggregated_writer(1);
  Checkpointer ck(MPI_COMM_WORLD);
  ck.save(saved.state, dir / "a", options);
  ck.save(saved.state, dir / "b", options);
  flip_byte(dir / "a/part_000000.h5", "/r000000/i000000", 8);
  Sim loaded(Decomposition::Slabs, 0);
  expect_error<CorruptCheckpointError>([&] { ck.load(loaded.state, dir / "a"); }, "checksum");
  const VerifyReport report = ck.verify(dir / "a");
  EXPECT_EQ(report.bad_chunks.size(), 1u);

  if (world_rank() == 0) std::remove((dir / "b/part_000000.h5").c_str());
  MPI_Barrier(MPI_COMM_WORLD);
  expect_error<StorageError>([&] { ck.load(loaded.state, dir / "b"); }, "part_000000.h5");

  // A truncated part file is named too, also by a load that skips the checksums.
  ck.save(saved.state, dir / "c", options);
  if (world_rank() == 0) {
    const std::string part = dir / "c/part_000000.h5";
    struct stat st {};
    ASSERT_EQ(::stat(part.c_str(), &st), 0);
    ASSERT_EQ(::truncate(part.c_str(), st.st_size / 2), 0);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  LoadOptions unchecked;
  unchecked.verify_checksums = false;
  expect_error<Error>([&] { ck.load(loaded.state, dir / "c", unchecked); }, "part_000000.h5");
  expect_error<Error>([&] { ck.load(loaded.state, dir / "c"); }, "part_000000.h5");
}

// The aggregated layout groups ranks into the requested number of part files.
TEST(AggregatedLayout, PartFilesPerGroup) {
  TempDir dir;
  Sim saved(Decomposition::Slabs, 1);
  Checkpointer ck(MPI_COMM_WORLD);
  for (int files : {1, 2, 3}) {
    SaveOptions options;
    options.writer = make_hdf5_aggregated_writer(files);
    const std::string id = dir / ("f" + std::to_string(files));
    ck.save(saved.state, id, options);
    const int expected = std::min(files, world_size());
    struct stat st {};
    for (int p = 0; p < 4; ++p) {
      char name[32];
      std::snprintf(name, sizeof name, "/part_%06d.h5", p);
      EXPECT_EQ(::stat((id + name).c_str(), &st) == 0, p < expected) << id << name;
    }
  }
  expect_error<UsageError>([] { (void)make_hdf5_aggregated_writer(-1); }, "files");
}

}  // namespace

// Large chunks split into slabs by the planner (DefaultPlanner's max_item_bytes, tiny here): every
// backend and staging mode saves them, and a load onto another decomposition gets every byte.
TEST(SplitItems, EveryBackendAndStagingMode) {
  TempDir dir;
  const std::pair<const char*, std::function<std::shared_ptr<StorageWriter>()>> writers[] = {
      {"hdf5", [] { return std::shared_ptr<StorageWriter>(make_hdf5_writer()); }},
      {"hdf5_collective",
       [] {
         Hdf5Options o;
         o.collective_writes = true;
         return std::shared_ptr<StorageWriter>(make_hdf5_writer(o));
       }},
      {"aggregated", [] { return std::shared_ptr<StorageWriter>(make_hdf5_aggregated_writer(2)); }},
      {"posix", [] { return std::shared_ptr<StorageWriter>(make_posix_writer()); }}};
  Checkpointer ck(MPI_COMM_WORLD);
  for (const auto& [name, make] : writers) {
    for (StagingMode staging : {StagingMode::Copy, StagingMode::ZeroCopy, StagingMode::Bounded}) {
      const std::string id = dir / (std::string(name) + "_" + std::to_string(static_cast<int>(staging)));
      Sim saved(Decomposition::Slabs, 11);
      SaveOptions options;
      options.writer = make();
      options.staging = staging;
      options.staging_budget_bytes = std::size_t{2} << 20;
      options.planner = std::make_shared<DefaultPlanner>(std::int64_t{1} << 20, 2048);
      ck.save(saved.state, id, options);
      Sim loaded(Decomposition::Grid, 0);
      loaded.clear();
      ck.load(loaded.state, id);
      EXPECT_TRUE(all_ranks(loaded.holds(11))) << name << " staging " << static_cast<int>(staging);
      const VerifyReport report = ck.verify(id);
      EXPECT_TRUE(report.ok()) << name;
      // The 96 x 40 float64 field (30 KiB) alone is more than 15 slabs of at most 2 KiB.
      EXPECT_GT(report.chunks_checked, 15) << name;
    }
  }
}
