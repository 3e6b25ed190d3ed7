// Helpers shared by the MPI tests: a temporary directory per test, decompositions, data patterns.
#pragma once

#include <cairn/cairn.hpp>

#include <gtest/gtest.h>
#include <mpi.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace cairn::test {

int world_rank();
int world_size();

/// Collective over `comm`: a fresh directory made by rank 0 under `base` (default: CAIRN_TEST_TMPDIR,
/// TMPDIR or /tmp), removed when the object dies.
class TempDir {
 public:
  explicit TempDir(MPI_Comm comm = MPI_COMM_WORLD, const char* base = nullptr);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return m_path; }
  std::string operator/(const std::string& name) const { return m_path + "/" + name; }

 private:
  MPI_Comm m_comm;
  std::string m_path;
};

/// A block of a global index space.
struct Block {
  Extents offset;
  Extents shape;
};

/// How a global array is cut among ranks in the tests.
enum class Decomposition {
  Slabs,       ///< uneven slabs of the first dimension, one per rank
  Grid,        ///< a block grid over every dimension, one block per rank (uneven where needed)
  EmptyFirst,  ///< rank 0 holds nothing, the others share slabs
  TwoPerRank,  ///< every rank holds two slabs (cyclic), so a rank has several chunks
};

/// The blocks rank `part` of `parts` holds of `shape` under `kind`.
std::vector<Block> decompose(const Extents& shape, int parts, int part, Decomposition kind);

/// A value determined by an element's global linear index and a per-array seed.
double pattern(std::int64_t linear_index, int seed);

/// Every dtype Cairn stores, for tests that round-trip each one.
extern const std::vector<DType> all_dtypes;

/// Stores one element of `dtype` at `out`: integers take `bits`, bools its lowest bit, half
/// floats a mid-range exponent with `bits` in the mantissa (finite, normal), float32 and float64
/// the values given.
void store_element(DType dtype, std::uint64_t bits, float f32, double f64, std::byte* out);

/// Global linear (row-major) index of local element `local` of `block` inside `shape`.
std::int64_t global_linear(const Extents& shape, const Block& block, const Extents& local);

/// Visits every element of `block`, with the local multi-index and the row-major local position.
void for_each_element(const Block& block, const std::function<void(const Extents&, std::int64_t)>& visit);

/// Position of local element `local` in a column-major buffer of `shape`.
std::int64_t column_major_position(const Extents& shape, const Extents& local);

/// Runs `body` and checks that it throws `E` on this rank with `needle` in the message.
template <class E, class Body>
void expect_error(Body&& body, const std::string& needle) {
  try {
    body();
    ADD_FAILURE() << "expected an error containing '" << needle << "' on rank " << world_rank();
  } catch (const E& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
        << "rank " << world_rank() << ": message was: " << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "rank " << world_rank() << ": wrong exception type; message: " << e.what();
  }
}

/// True on every rank when `local` is true on every rank of `comm`.
bool all_ranks(bool local, MPI_Comm comm = MPI_COMM_WORLD);

// Wraps the HDF5 writer; write() blocks until the test releases it, and counts its calls.
class BlockingWriter final : public StorageWriter {
 public:
  void open(const std::string& directory, const std::vector<EntryInfo>& entries, ProcessGroup& group) override {
    m_inner->open(directory, entries, group);
  }
  void write(const std::vector<WriteBuffer>& buffers) override {
    {
      std::unique_lock<std::mutex> lock(m_mutex);
      m_entered = true;
      m_changed.notify_all();
      m_changed.wait(lock, [this] { return m_released; });
    }
    m_inner->write(buffers);
    m_writes.fetch_add(1);
  }
  void finish(const Metadata& metadata) override {
    m_inner->finish(metadata);
    m_finished.store(true);
  }
  void abort() noexcept override { m_inner->abort(); }

  void release() {
    std::lock_guard<std::mutex> lock(m_mutex);
    m_released = true;
    m_changed.notify_all();
  }
  void wait_until_entered() {
    std::unique_lock<std::mutex> lock(m_mutex);
    m_changed.wait(lock, [this] { return m_entered; });
  }
  int writes() const { return m_writes.load(); }
  bool finished() const { return m_finished.load(); }

 private:
  std::unique_ptr<StorageWriter> m_inner = make_hdf5_writer();
  std::mutex m_mutex;
  std::condition_variable m_changed;
  bool m_entered = false;
  bool m_released = false;
  std::atomic<int> m_writes{0};
  std::atomic<bool> m_finished{false};
};

}  // namespace cairn::test
