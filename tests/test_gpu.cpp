// CUDA device arrays as state: a round trip for every dtype and staging mode, resharded loads onto
// device chunks of every layout, replicated entries broadcast device to device, host and device
// chunks in one state, an async save that has staged before it returns (its writer blocked), and
// a CUDA failure on one rank reported on every rank. Without CUDA or a GPU the device tests skip,
// saying why; what such a build must refuse is tested everywhere.
#include "test_support.hpp"

#include <cairn/cairn.hpp>

#include <gtest/gtest.h>
#include <mpi.h>

#ifdef CAIRN_TEST_CUDA
#include <cuda_runtime_api.h>
#endif

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace cairn::test {
namespace {

#ifdef CAIRN_TEST_CUDA

std::int64_t volume_of(const Extents& shape) {
  std::int64_t n = 1;
  for (std::int64_t e : shape) n *= e;
  return n;
}

// Collective: whether every rank has a CUDA device; `why` says what is missing where not.
bool every_rank_has_a_device(std::string& why) {
  int count = 0;
  const cudaError_t code = cudaGetDeviceCount(&count);
  if (code != cudaSuccess) {
    (void)cudaGetLastError();
    why = std::string("CUDA reports ") + cudaGetErrorName(code) + " (" + cudaGetErrorString(code) + ")";
    count = 0;
  } else if (count == 0) {
    why = "CUDA sees no device";
  }
  // A device per rank where there are enough; ranks share them otherwise.
  if (count > 0 && cudaSetDevice(world_rank() % count) != cudaSuccess) {
    why = "cudaSetDevice failed";
    count = 0;
  }
  const bool everywhere = all_ranks(count > 0);
  if (!everywhere && why.empty()) why = "another rank has no CUDA device";
  return everywhere;
}

// Skips the test on every rank unless every rank has a device.
#define REQUIRE_DEVICE()                                            \
  do {                                                              \
    std::string why_not;                                            \
    if (!every_rank_has_a_device(why_not)) GTEST_SKIP() << why_not; \
  } while (0)

void cuda_ok(cudaError_t code, const char* what) {
  ASSERT_EQ(code, cudaSuccess) << what << ": " << cudaGetErrorString(code);
}

// Device memory of one test, freed at the end.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(std::size_t bytes) : m_bytes(bytes) {
    cuda_ok(cudaMalloc(&m_data, bytes == 0 ? 1 : bytes), "cudaMalloc");
  }
  ~DeviceBuffer() { (void)cudaFree(m_data); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* data() const { return m_data; }
  void upload(const std::vector<std::byte>& host) {
    ASSERT_EQ(host.size(), m_bytes);
    cuda_ok(cudaMemcpy(m_data, host.data(), m_bytes, cudaMemcpyHostToDevice), "cudaMemcpy to device");
  }
  std::vector<std::byte> download() const {
    std::vector<std::byte> host(m_bytes);
    cuda_ok(cudaMemcpy(host.data(), m_data, m_bytes, cudaMemcpyDeviceToHost), "cudaMemcpy to host");
    return host;
  }
  void fill(int value) { cuda_ok(cudaMemset(m_data, value, m_bytes), "cudaMemset"); }

 private:
  void* m_data = nullptr;
  std::size_t m_bytes = 0;
};

// The bytes of element `index` (global, row-major) of a `dtype` array with `seed`: valid values of
// every dtype (0 or 1 for bool), different for every element and array.
void element_bytes(DType dtype, std::int64_t index, int seed, std::byte* out) {
  const std::size_t size = dtype_size(dtype);
  if (dtype == DType::Bool) {
    out[0] = std::byte{static_cast<unsigned char>((index + seed) % 2)};
    return;
  }
  std::uint64_t v = static_cast<std::uint64_t>(index) * 0x9e3779b97f4a7c15ull + static_cast<std::uint64_t>(seed);
  if (dtype == DType::Float32) {
    const float f = static_cast<float>(pattern(index, seed));
    std::memcpy(out, &f, size);
    return;
  }
  if (dtype == DType::Float64) {
    const double d = pattern(index, seed);
    std::memcpy(out, &d, size);
    return;
  }
  if (dtype == DType::Float16 || dtype == DType::BFloat16) v &= 0x3fffu;  // finite, not NaN
  std::memcpy(out, &v, size);
}

// Row-major bytes of `block` of a `shape` array.
std::vector<std::byte> block_bytes(DType dtype, const Extents& shape, const Block& block, int seed) {
  const std::size_t esize = dtype_size(dtype);
  std::vector<std::byte> bytes(static_cast<std::size_t>(volume_of(block.shape)) * esize);
  for_each_element(block, [&](const Extents& local, std::int64_t position) {
    element_bytes(dtype, global_linear(shape, block, local), seed,
                  bytes.data() + static_cast<std::size_t>(position) * esize);
  });
  return bytes;
}

#endif  // CAIRN_TEST_CUDA

class Gpu : public ::testing::Test {
 protected:
  TempDir dir;
  Checkpointer ck{MPI_COMM_WORLD};
};

// Everywhere: host memory is host memory, and a chunk declared to be on a device that is not one
// is refused on every rank, naming the entry and the rank, with nothing published.
TEST_F(Gpu, HostMemoryIsNeverTakenForDeviceMemory) {
  std::vector<double> host(10, 1.0);
  EXPECT_EQ(memory_space_of(host.data()), MemorySpace::Host);
  State state;
  ArrayEntry& array = state.add_array("fields/u", DType::Float64, {10 * static_cast<std::int64_t>(world_size())});
  array.add_chunk({10 * static_cast<std::int64_t>(world_rank())}, {10}, host.data());
  const int liar = world_size() - 1;
  if (world_rank() == liar) array.chunks[0].memory = MemorySpace::CudaDevice;
  const std::string id = dir / "declared";
  try {
    ck.save(state, id);
    ADD_FAILURE() << "the save succeeded on rank " << world_rank();
  } catch (const Error& e) {
    const std::string text = e.what();
    EXPECT_NE(text.find("'fields/u'"), std::string::npos) << text;
    EXPECT_NE(text.find("rank " + std::to_string(liar)), std::string::npos) << text;
    EXPECT_NE(text.find("CUDA device memory"), std::string::npos) << text;
  }
  EXPECT_FALSE(std::filesystem::exists(id));
}

#ifdef CAIRN_TEST_CUDA

TEST_F(Gpu, DeviceRoundTripForEveryDtypeAndStagingMode) {
  REQUIRE_DEVICE();
  const Extents shape{5 * static_cast<std::int64_t>(world_size()) + 3, 7};
  const std::vector<Block> blocks = decompose(shape, world_size(), world_rank(), Decomposition::Slabs);
  ASSERT_EQ(blocks.size(), 1u);
  const Block& mine = blocks[0];
  int seed = 0;
  for (const StagingMode staging : {StagingMode::Copy, StagingMode::ZeroCopy, StagingMode::Bounded}) {
    for (const DType dtype : all_dtypes) {
      ++seed;
      SCOPED_TRACE(std::string("dtype ") + std::string(dtype_name(dtype)) + ", staging " +
                   std::to_string(static_cast<int>(staging)));
      const std::vector<std::byte> expected = block_bytes(dtype, shape, mine, seed);
      DeviceBuffer device(expected.size());
      device.upload(expected);
      State state;
      state.add_array("a", dtype, shape).add_chunk(mine.offset, mine.shape, device.data());
      SaveOptions options;
      options.staging = staging;
      options.staging_budget_bytes = std::size_t{2} << 20;
      const std::string id = dir / ("rt" + std::to_string(seed));
      ck.async_save(state, id, options).get();

      device.fill(0);
      ck.load(state, id);
      EXPECT_EQ(device.download(), expected) << "device chunk on rank " << world_rank();

      // The file holds the same bytes, read into host memory.
      std::vector<std::byte> host(expected.size());
      State on_host;
      on_host.add_array("a", dtype, shape).add_chunk(mine.offset, mine.shape, host.data());
      ck.load(on_host, id);
      EXPECT_EQ(host, expected) << "host chunk on rank " << world_rank();
    }
  }
}

TEST_F(Gpu, ResavedOnHostLoadsOntoDeviceChunksOfEveryLayout) {
  REQUIRE_DEVICE();
  const Extents shape{13, 9};
  const DType dtype = DType::Float64;
  const std::size_t esize = dtype_size(dtype);
  // Saved from host slabs.
  const std::vector<Block> saved = decompose(shape, world_size(), world_rank(), Decomposition::Slabs);
  std::vector<std::byte> saved_bytes = block_bytes(dtype, shape, saved[0], 7);
  State save_state;
  save_state.add_array("grid", dtype, shape).add_chunk(saved[0].offset, saved[0].shape, saved_bytes.data());
  const std::string id = dir / "reshard";
  ck.save(save_state, id);

  // Loaded onto a block grid: row-major, column-major, and row-major inside a halo of 1.
  const Block mine = decompose(shape, world_size(), world_rank(), Decomposition::Grid)[0];
  const std::vector<std::byte> expected = block_bytes(dtype, shape, mine, 7);
  const std::int64_t rows = mine.shape[0];
  const std::int64_t cols = mine.shape[1];

  DeviceBuffer row_major(expected.size());
  row_major.fill(0);
  DeviceBuffer column_major(expected.size());
  column_major.fill(0);
  const Extents halo_shape{rows + 2, cols + 2};
  const std::size_t halo_bytes = static_cast<std::size_t>(volume_of(halo_shape)) * esize;
  DeviceBuffer halo(halo_bytes);
  halo.fill(0x5a);
  State state;
  state.add_array("grid", dtype, shape).add_chunk(mine.offset, mine.shape, row_major.data());
  ck.load(state, id);
  EXPECT_EQ(row_major.download(), expected) << "row-major device chunk on rank " << world_rank();

  State col_state;
  col_state.add_array("grid", dtype, shape)
      .add_chunk(mine.offset, mine.shape, column_major.data(), Layout::ColumnMajor);
  ck.load(col_state, id);
  const std::vector<std::byte> col = column_major.download();
  for_each_element(mine, [&](const Extents& local, std::int64_t position) {
    const auto at = static_cast<std::size_t>(column_major_position(mine.shape, local)) * esize;
    EXPECT_EQ(std::memcmp(col.data() + at, expected.data() + static_cast<std::size_t>(position) * esize, esize), 0)
        << "column-major element " << local[0] << "," << local[1] << " on rank " << world_rank();
  });

  State halo_state;
  Chunk inner;
  inner.offset = mine.offset;
  inner.shape = mine.shape;
  inner.data = static_cast<std::byte*>(halo.data()) + static_cast<std::size_t>(halo_shape[1] + 1) * esize;
  inner.strides = {halo_shape[1], 1};
  halo_state.add_array("grid", dtype, shape).chunks.push_back(inner);
  ck.load(halo_state, id);
  const std::vector<std::byte> framed = halo.download();
  for (std::int64_t i = 0; i < halo_shape[0]; ++i)
    for (std::int64_t j = 0; j < halo_shape[1]; ++j) {
      const std::byte* got = framed.data() + static_cast<std::size_t>(i * halo_shape[1] + j) * esize;
      const bool interior = i >= 1 && i <= rows && j >= 1 && j <= cols;
      if (interior) {
        const std::byte* want = expected.data() + static_cast<std::size_t>((i - 1) * cols + (j - 1)) * esize;
        EXPECT_EQ(std::memcmp(got, want, esize), 0) << "interior " << i << "," << j << " on rank " << world_rank();
      } else {
        for (std::size_t b = 0; b < esize; ++b)
          EXPECT_EQ(got[b], std::byte{0x5a}) << "halo " << i << "," << j << " overwritten on rank " << world_rank();
      }
    }

  // And saved from those device chunks of every layout, it reads back on the host the same.
  const std::string again = dir / "from-device";
  State all_layouts;
  ArrayEntry& a = all_layouts.add_array("grid", dtype, shape);
  a.add_chunk(mine.offset, mine.shape, column_major.data(), Layout::ColumnMajor);
  State strided;
  strided.add_array("grid", dtype, shape).chunks.push_back(inner);
  SaveOptions overwrite;
  overwrite.overwrite = true;
  for (State* from : {&all_layouts, &strided}) {
    ck.save(*from, again, overwrite);
    std::vector<std::byte> host(expected.size());
    State back;
    back.add_array("grid", dtype, shape).add_chunk(mine.offset, mine.shape, host.data());
    ck.load(back, again);
    EXPECT_EQ(host, expected) << "saved from a device chunk, rank " << world_rank();
  }
}

TEST_F(Gpu, ReplicatedDeviceEntriesAreBroadcastDeviceToDevice) {
  REQUIRE_DEVICE();
  const Extents shape{1000};
  const Block whole{{0}, shape};
  const std::vector<std::byte> expected = block_bytes(DType::Float32, shape, whole, 3);
  DeviceBuffer device(expected.size());
  device.upload(expected);
  State state;
  state.add_array("table", DType::Float32, shape, Distribution::Replicated).add_chunk({0}, shape, device.data());
  const std::string id = dir / "replicated";
  ck.save(state, id);
  device.fill(0);
  ck.load(state, id);
  EXPECT_EQ(device.download(), expected) << "rank " << world_rank();
  const std::string transport = ck.process_group().device_transport();
  if (world_rank() == 0) std::printf("[gpu] device broadcasts over %d rank(s): %s\n", world_size(), transport.c_str());
#ifdef CAIRN_TEST_NCCL
  int devices = 0;
  (void)cudaGetDeviceCount(&devices);
  // One node: NCCL serves when every rank has a GPU of its own.
  if (world_size() > 1 && devices >= world_size()) {
    EXPECT_EQ(transport, "nccl");
  }
  if (devices < world_size()) {
    EXPECT_EQ(transport, "host");
  }
#else
  EXPECT_EQ(transport, "host");
#endif
}

TEST_F(Gpu, HostAndDeviceChunksInOneState) {
  REQUIRE_DEVICE();
  const Extents shape{8 * static_cast<std::int64_t>(world_size()), 5};
  const std::vector<Block> blocks = decompose(shape, world_size(), world_rank(), Decomposition::TwoPerRank);
  ASSERT_EQ(blocks.size(), 2u);
  const std::vector<std::byte> first = block_bytes(DType::Int32, shape, blocks[0], 11);
  const std::vector<std::byte> second = block_bytes(DType::Int32, shape, blocks[1], 11);
  DeviceBuffer device(first.size());
  device.upload(first);
  std::vector<std::byte> host = second;
  std::int64_t step = 42;
  std::vector<std::byte> blob(17, std::byte{static_cast<unsigned char>(world_rank() + 1)});
  State state;
  ArrayEntry& a = state.add_array("mixed", DType::Int32, shape);
  a.add_chunk(blocks[0].offset, blocks[0].shape, device.data());
  a.add_chunk(blocks[1].offset, blocks[1].shape, host.data());
  state.add_scalar("step", step);
  state.add_bytes("rng", blob.data(), blob.size());
  const std::string id = dir / "mixed";
  ck.save(state, id);

  // Loaded the other way round: the first block into host memory, the second onto the device.
  std::vector<std::byte> host_first(first.size());
  DeviceBuffer device_second(second.size());
  device_second.fill(0);
  std::int64_t step_back = 0;
  std::vector<std::byte> blob_back(blob.size());
  State back;
  ArrayEntry& b = back.add_array("mixed", DType::Int32, shape);
  b.add_chunk(blocks[0].offset, blocks[0].shape, host_first.data());
  b.add_chunk(blocks[1].offset, blocks[1].shape, device_second.data());
  back.add_scalar("step", step_back);
  back.add_bytes("rng", blob_back.data(), blob_back.size());
  ck.load(back, id);
  EXPECT_EQ(host_first, first) << "rank " << world_rank();
  EXPECT_EQ(device_second.download(), second) << "rank " << world_rank();
  EXPECT_EQ(step_back, 42);
  EXPECT_EQ(blob_back, blob);
}

TEST_F(Gpu, AsyncSaveHasCopiedTheDeviceArraysWhenItReturns) {
  REQUIRE_DEVICE();
  const Extents shape{64 * static_cast<std::int64_t>(world_size()), 32};
  const Block mine = decompose(shape, world_size(), world_rank(), Decomposition::Slabs)[0];
  const std::vector<std::byte> expected = block_bytes(DType::Float64, shape, mine, 5);
  DeviceBuffer device(expected.size());
  device.upload(expected);
  State state;
  state.add_array("u", DType::Float64, shape).add_chunk(mine.offset, mine.shape, device.data());
  auto writer = std::make_shared<BlockingWriter>();
  SaveOptions options;
  options.writer = writer;
  const std::string id = dir / "async";
  SaveFuture future = ck.async_save(state, id, options);
  // The writer has not written a byte, yet the arrays may change: the save owns a copy.
  EXPECT_EQ(writer->writes(), 0);
  device.fill(0xff);
  writer->release();
  future.get();
  device.fill(0);
  ck.load(state, id);
  EXPECT_EQ(device.download(), expected) << "rank " << world_rank();
}

TEST_F(Gpu, CudaFailureOnOneRankIsAnErrorOnEveryRank) {
  REQUIRE_DEVICE();
  const Extents shape{10 * static_cast<std::int64_t>(world_size())};
  const Block mine{{10 * static_cast<std::int64_t>(world_rank())}, {10}};
  const std::vector<std::byte> expected = block_bytes(DType::Float64, shape, mine, 9);
  DeviceBuffer device(expected.size());
  device.upload(expected);
  State state;
  state.add_array("u", DType::Float64, shape).add_chunk(mine.offset, mine.shape, device.data());
  const std::string good = dir / "good";
  ck.save(state, good);
  const int failing = world_size() - 1;
  const std::string spec = std::to_string(failing) + ":device-copy:cuda";
  ::setenv("CAIRN_FAULT", spec.c_str(), 1);
  const std::string bad = dir / "bad";
  for (int step = 0; step < 2; ++step) {  // a save, then a load
    try {
      if (step == 0)
        ck.save(state, bad);
      else
        ck.load(state, good);
      ADD_FAILURE() << (step == 0 ? "save" : "load") << " succeeded on rank " << world_rank();
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::Device) << e.what();
      EXPECT_NE(std::string(e.what()).find("rank " + std::to_string(failing)), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("cudaError"), std::string::npos) << e.what();
    }
  }
  ::unsetenv("CAIRN_FAULT");
  EXPECT_FALSE(std::filesystem::exists(bad));
  device.fill(0);
  ck.load(state, good);
  EXPECT_EQ(device.download(), expected) << "rank " << world_rank();
}

#else

TEST_F(Gpu, DeviceArrays) {
  GTEST_SKIP() << "this Cairn was built without CUDA (-DCAIRN_ENABLE_CUDA=ON builds the device tests)";
}

#endif  // CAIRN_TEST_CUDA

}  // namespace
}  // namespace cairn::test
