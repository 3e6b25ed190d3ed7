// Save on N ranks, load on M ranks with another decomposition, for every N and M up to the world
// size; 1-D, 2-D and 3-D arrays, uneven blocks, ranks holding nothing and ranks holding several.
#include "sim_state.hpp"
#include "test_support.hpp"

using namespace cairn;
using namespace cairn::test;

namespace {

struct ArraySpec {
  const char* name;
  Extents shape;
  int seed;
};

const ArraySpec specs[] = {{"one_d", {37}, 1}, {"grid/two_d", {13, 11}, 2}, {"grid/three_d", {7, 6, 5}, 3}};
const Decomposition kinds[] = {Decomposition::Slabs, Decomposition::Grid, Decomposition::EmptyFirst,
                               Decomposition::TwoPerRank};
const char* kind_name(Decomposition k) {
  switch (k) {
    case Decomposition::Slabs: return "slabs";
    case Decomposition::Grid: return "grid";
    case Decomposition::EmptyFirst: return "empty-first";
    case Decomposition::TwoPerRank: return "two-per-rank";
  }
  return "?";
}

// Collective over `comm`: saves the three arrays, array i decomposed with kinds[(variant + i) % 4].
void save_on(MPI_Comm comm, const std::string& id, int variant) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  std::vector<std::vector<double>> storage;
  State state;
  for (std::size_t a = 0; a < std::size(specs); ++a) {
    const ArraySpec& spec = specs[a];
    const auto blocks = decompose(spec.shape, size, rank, kinds[(static_cast<std::size_t>(variant) + a) % 4]);
    for (const Block& b : blocks) {
      std::vector<double> data;
      for_each_element(b, [&](const Extents& l, std::int64_t) {
        data.push_back(pattern(global_linear(spec.shape, b, l), spec.seed));
      });
      storage.push_back(std::move(data));
    }
  }
  std::size_t next = 0;
  for (std::size_t a = 0; a < std::size(specs); ++a) {
    const ArraySpec& spec = specs[a];
    ArrayEntry& entry = state.add_array(spec.name, DType::Float64, spec.shape);
    for (const Block& b : decompose(spec.shape, size, rank, kinds[(static_cast<std::size_t>(variant) + a) % 4]))
      entry.add_chunk(b.offset, b.shape, storage[next++].data());
  }
  Checkpointer ck(comm);
  ck.save(state, id);
}

// Collective over `comm`: loads with decomposition kinds[(variant + i + 1) % 4] (column-major for
// odd variants) and checks every element against the pattern.
void load_and_check(MPI_Comm comm, const std::string& id, int variant, int saved_on) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  const Layout layout = variant % 2 ? Layout::ColumnMajor : Layout::RowMajor;
  std::vector<std::vector<double>> storage;
  std::vector<std::vector<Block>> all_blocks;
  State state;
  for (std::size_t a = 0; a < std::size(specs); ++a) {
    const auto blocks = decompose(specs[a].shape, size, rank, kinds[(static_cast<std::size_t>(variant) + a + 1) % 4]);
    for (const Block& b : blocks) {
      std::int64_t n = 1;
      for (auto e : b.shape) n *= e;
      storage.emplace_back(static_cast<std::size_t>(n), -7.0);
    }
    all_blocks.push_back(blocks);
  }
  std::size_t next = 0;
  for (std::size_t a = 0; a < std::size(specs); ++a) {
    ArrayEntry& entry = state.add_array(specs[a].name, DType::Float64, specs[a].shape);
    for (const Block& b : all_blocks[a]) entry.add_chunk(b.offset, b.shape, storage[next++].data(), layout);
  }
  Checkpointer ck(comm);
  ck.load(state, id);
  next = 0;
  for (std::size_t a = 0; a < std::size(specs); ++a) {
    for (const Block& b : all_blocks[a]) {
      const std::vector<double>& data = storage[next++];
      std::size_t mismatches = 0;
      for_each_element(b, [&](const Extents& l, std::int64_t pos) {
        const auto at = layout == Layout::ColumnMajor ? column_major_position(b.shape, l) : pos;
        if (data[static_cast<std::size_t>(at)] != pattern(global_linear(specs[a].shape, b, l), specs[a].seed))
          ++mismatches;
      });
      EXPECT_EQ(mismatches, 0u) << specs[a].name << ": saved on " << saved_on << " ranks ("
                                << kind_name(kinds[(static_cast<std::size_t>(variant) + a) % 4]) << "), loaded on "
                                << size << " (" << kind_name(kinds[(static_cast<std::size_t>(variant) + a + 1) % 4])
                                << ", " << (layout == Layout::ColumnMajor ? "column-major" : "row-major") << "), rank "
                                << rank;
    }
  }
}

MPI_Comm sub_communicator(int n) {
  MPI_Comm comm = MPI_COMM_NULL;
  MPI_Comm_split(MPI_COMM_WORLD, world_rank() < n ? 0 : MPI_UNDEFINED, world_rank(), &comm);
  return comm;
}

}  // namespace

TEST(Reshard, EverySaveAndLoadRankCount) {
  TempDir dir;
  const int world = world_size();
  for (int n = 1; n <= world; ++n) {
    for (int m = 1; m <= world; ++m) {
      for (int variant = 0; variant < 4; ++variant) {
        const std::string id =
            dir / ("n" + std::to_string(n) + "_m" + std::to_string(m) + "_v" + std::to_string(variant));
        MPI_Comm save_comm = sub_communicator(n);
        if (save_comm != MPI_COMM_NULL) {
          save_on(save_comm, id, variant);
          MPI_Comm_free(&save_comm);
        }
        MPI_Comm load_comm = sub_communicator(m);
        if (load_comm != MPI_COMM_NULL) {
          load_and_check(load_comm, id, variant, n);
          MPI_Comm_free(&load_comm);
        }
      }
    }
  }
}

// Float64 array "field" of `rows` × `cols` per rank, each rank saving its own slab of rows,
// element i of the whole array pattern(i, seed).
struct SavedSlabs {
  std::vector<double> saved;
  State state;
  SavedSlabs(std::int64_t rows, std::int64_t cols, int seed) : saved(static_cast<std::size_t>(rows * cols)) {
    const std::int64_t rank = world_rank();
    for (std::size_t i = 0; i < saved.size(); ++i)
      saved[i] = pattern(rank * rows * cols + static_cast<std::int64_t>(i), seed);
    state.add_array("field", DType::Float64, {rows * world_size(), cols})
        .add_chunk({rank * rows, 0}, {rows, cols}, saved.data());
  }
};

// A saved chunk that a load splits among several requests is read straight into each request's
// rows (no buffer), yet checked whole: a flipped byte in any part fails the load on every rank.
TEST(Reshard, ChunksSplitAmongRequestsAreCheckedWhole) {
  TempDir dir;
  const int rank = world_rank();
  const std::int64_t rows = 48, cols = 16;  // per saving rank
  const Extents shape{rows * world_size(), cols};
  const SavedSlabs field(rows, cols, 3);
  const std::vector<double>& saved = field.saved;
  const State& state = field.state;
  Checkpointer ck(MPI_COMM_WORLD);
  // Loaded as three uneven pieces of rows per rank, each inside this rank's saved chunk.
  const std::int64_t cut[] = {0, rows / 3, rows / 3 + 1, rows};
  auto load = [&](const std::string& id, std::vector<double>& back) {
    State target;
    ArrayEntry& entry = target.add_array("field", DType::Float64, shape);
    for (int p = 0; p < 3; ++p)
      entry.add_chunk({rank * rows + cut[p], 0}, {cut[p + 1] - cut[p], cols}, back.data() + cut[p] * cols);
    ck.load(target, id);
  };
  ck.save(state, dir / "good");
  std::vector<double> back(saved.size(), -1.0);
  load(dir / "good", back);
  EXPECT_TRUE(back == saved) << "on rank " << rank;

  // Rank 0's chunk starts the dataset: flip a byte in its first piece, then in its last.
  for (const std::int64_t byte : {std::int64_t{5}, (rows - 1) * cols * 8 + 2}) {
    const std::string id = dir / ("damaged" + std::to_string(byte));
    ck.save(state, id);
    flip_byte(id + "/data.h5", "field", byte);
    std::string message;
    try {
      load(id, back);
    } catch (const Error& e) {
      message = e.what();
    }
    EXPECT_FALSE(message.empty()) << "byte " << byte << ": the load succeeded on rank " << rank;
    if (rank == 0) {
      EXPECT_NE(message.find("checksum mismatch"), std::string::npos) << message;
    }
  }
}

// Counts the bytes this rank asks the default reader for.
class CountingReader : public StorageReader {
 public:
  void open(const std::string& directory, ProcessGroup& group) override {
    m_inner->open(directory, group);
    chunks = m_inner->metadata().chunks;
  }
  const Metadata& metadata() const override { return m_inner->metadata(); }
  void read(const std::vector<ReadRequest>& requests) override {
    for (const ReadRequest& r : requests) {
      std::int64_t n = static_cast<std::int64_t>(dtype_size(r.dtype));
      for (std::int64_t extent : r.region.shape) n *= extent;
      bytes += n;
    }
    m_inner->read(requests);
  }
  void close() noexcept override { m_inner->close(); }

  std::int64_t bytes = 0;
  std::vector<ChunkRecord> chunks;

 private:
  std::unique_ptr<StorageReader> m_inner = make_reader();
};

// A large saved chunk is checksummed in blocks of rows: a load that needs part of it (another
// decomposition) reads and checks only the blocks that hold those rows, and a damaged block fails
// the loads that need it and no other.
TEST(Reshard, LargeChunksAreReadAndCheckedOnlyInTheBlocksALoadNeeds) {
  TempDir dir;
  const int rank = world_rank();
  const int ranks = world_size();
  // 8.6 MiB per saving rank: blocks of 512 rows (4 MiB), 512 and 76 rows.
  const std::int64_t rows = 1100, cols = 1024, block_rows = 512;
  const std::int64_t row_bytes = cols * 8;
  const Extents shape{rows * ranks, cols};
  const SavedSlabs field(rows, cols, 5);
  const State& state = field.state;
  Checkpointer ck(MPI_COMM_WORLD);

  // Rank r loads the last 50 rows of chunk r and the first 50 of chunk r + 1: the last block of
  // one and the first block of the other.
  const std::int64_t first = rank * rows + 1050;
  const std::int64_t last = std::min((rank + 1) * rows + 50, rows * ranks);
  const std::int64_t expected_bytes = (rows - 2 * block_rows + (rank + 1 < ranks ? block_rows : 0)) * row_bytes;
  // `columns` > 0: the first columns only (not rows of the chunk: read through the buffers).
  auto load = [&](const std::string& id, std::vector<double>& back, std::int64_t columns = 0) {
    if (columns == 0) columns = cols;
    auto counting = std::make_shared<CountingReader>();
    State target;
    target.add_array("field", DType::Float64, shape).add_chunk({first, 0}, {last - first, columns}, back.data());
    LoadOptions options;
    options.reader = counting;
    ck.load(target, id, options);
    return counting;
  };
  auto expect_loaded = [&](const std::vector<double>& back, const std::string& what) {
    bool same = true;
    for (std::size_t i = 0; i < back.size() && same; ++i)
      same = back[i] == pattern(first * cols + static_cast<std::int64_t>(i), 5);
    EXPECT_TRUE(same) << what << ": wrong bytes on rank " << rank;
  };

  // Every backend, and a bounded save whose pieces (2 MiB) do not line up with the blocks.
  std::vector<double> back(static_cast<std::size_t>((last - first) * cols), -1.0);
  for (const char* how : {"hdf5", "hdf5-bounded", "posix", "hdf5-aggregated"}) {
    SaveOptions options;
    if (std::string(how) == "hdf5-bounded") {
      options.staging = StagingMode::Bounded;
      options.staging_budget_bytes = std::size_t{2} << 20;
    }
    if (std::string(how) == "posix") options.writer = make_posix_writer();
    if (std::string(how) == "hdf5-aggregated") options.writer = make_hdf5_aggregated_writer(2);
    const std::string id = dir / how;
    ck.save(state, id, options);
    std::fill(back.begin(), back.end(), -1.0);
    const auto counting = load(id, back);
    expect_loaded(back, how);
    EXPECT_EQ(counting->bytes, expected_bytes) << how << " on rank " << rank;
    ASSERT_EQ(counting->chunks.size(), static_cast<std::size_t>(ranks)) << how;
    for (const ChunkRecord& c : counting->chunks) {
      EXPECT_EQ(c.block_rows, block_rows) << how;
      EXPECT_EQ(c.block_checksums.size(), 3u) << how;
    }
    std::vector<double> left(back.size() / 2, -1.0);
    const auto columns = load(id, left, cols / 2);
    bool same = true;
    for (std::int64_t r = 0; r < last - first && same; ++r)
      for (std::int64_t c = 0; c < cols / 2 && same; ++c)
        same = left[static_cast<std::size_t>(r * (cols / 2) + c)] == pattern((first + r) * cols + c, 5);
    EXPECT_TRUE(same) << how << ", half the columns: wrong bytes on rank " << rank;
    EXPECT_EQ(columns->bytes, expected_bytes) << how << ", half the columns, on rank " << rank;
  }

  // A damaged byte in a block no rank loads (rank 0's first): every load succeeds; verify finds it.
  const std::string unread = dir / "unread";
  ck.save(state, unread);
  flip_byte(unread + "/data.h5", "field", 5);
  std::fill(back.begin(), back.end(), -1.0);
  EXPECT_NO_THROW(load(unread, back)) << "on rank " << rank;
  expect_loaded(back, "unread");
  const VerifyReport report = ck.verify(unread);
  ASSERT_EQ(report.bad_chunks.size(), 1u);
  EXPECT_NE(report.bad_chunks[0].message.find("block 0 (rows 0 to 511"), std::string::npos)
      << report.bad_chunks[0].message;

  // A damaged byte in rank 0's last block, which rank 0 loads: the load fails on every rank.
  const std::string needed = dir / "needed";
  ck.save(state, needed);
  flip_byte(needed + "/data.h5", "field", (rows - 10) * row_bytes + 3);
  std::string message;
  try {
    load(needed, back);
  } catch (const CorruptCheckpointError& e) {
    message = e.what();
  }
  EXPECT_FALSE(message.empty()) << "the load succeeded on rank " << rank;
  if (rank == 0) {
    EXPECT_NE(message.find("checksum mismatch in its block 2 (rows 1024 to 1099"), std::string::npos) << message;
  }
}
