// A small simulation state for the lifecycle and fault tests, and ways to damage checkpoint files.
#pragma once

#include "test_support.hpp"

#include <hdf5.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

namespace cairn::test {

inline const Extents field_shape{96, 40};

inline double field_value(std::int64_t step, std::int64_t linear) {
  return static_cast<double>(step) * 1000003.0 + static_cast<double>(linear) * 0.5;
}

// A simulation's state at one step: a 2-D field cut among the ranks, a 1-D int32 counter array
// and a replicated step scalar. Every value is a function of the step and the global index.
struct Sim {
  Sim(Decomposition kind, std::int64_t step_value) : blocks(decompose(field_shape, world_size(), world_rank(), kind)) {
    ArrayEntry& field = state.add_array("field", DType::Float64, field_shape);
    data.resize(blocks.size());
    for (std::size_t b = 0; b < blocks.size(); ++b) {
      data[b].resize(static_cast<std::size_t>(blocks[b].shape[0] * blocks[b].shape[1]));
      field.add_chunk(blocks[b].offset, blocks[b].shape, data[b].data());
    }
    const std::int64_t n = 7 * world_size();
    counters.resize(7);
    state.add_array("counters", Extents{n}, Extents{7 * world_rank()}, Extents{7}, counters.data());
    state.add_scalar("step", step);
    fill(step_value);
  }

  void fill(std::int64_t s) {
    step = s;
    for (std::size_t b = 0; b < blocks.size(); ++b)
      for_each_element(blocks[b], [&](const Extents& l, std::int64_t pos) {
        data[b][static_cast<std::size_t>(pos)] = field_value(s, global_linear(field_shape, blocks[b], l));
      });
    for (std::size_t i = 0; i < counters.size(); ++i)
      counters[i] = static_cast<std::int32_t>(s * 100 + 7 * world_rank() + static_cast<std::int64_t>(i));
  }

  void clear() {
    step = -1;
    for (auto& d : data) std::fill(d.begin(), d.end(), -1.0);
    std::fill(counters.begin(), counters.end(), -1);
  }

  // True when every value is that of step `s`.
  bool holds(std::int64_t s) const {
    bool ok = step == s;
    for (std::size_t b = 0; b < blocks.size(); ++b)
      for_each_element(blocks[b], [&](const Extents& l, std::int64_t pos) {
        ok = ok && data[b][static_cast<std::size_t>(pos)] == field_value(s, global_linear(field_shape, blocks[b], l));
      });
    for (std::size_t i = 0; i < counters.size(); ++i)
      ok = ok && counters[i] == static_cast<std::int32_t>(s * 100 + 7 * world_rank() + static_cast<std::int64_t>(i));
    return ok;
  }

  std::vector<Block> blocks;
  std::vector<std::vector<double>> data;
  std::vector<std::int32_t> counters;
  std::int64_t step = 0;
  State state;
};

// Rank 0 flips one byte of dataset `name` in `file`, `byte` bytes into its data.
inline void flip_byte(const std::string& file, const std::string& name, long long byte) {
  if (world_rank() == 0) {
    const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    const hid_t d = H5Dopen2(f, name.c_str(), H5P_DEFAULT);
    ASSERT_GE(d, 0);
    const haddr_t offset = H5Dget_offset(d);
    H5Dclose(d);
    H5Fclose(f);
    ASSERT_NE(offset, HADDR_UNDEF);
    const int fd = ::open(file.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    unsigned char c = 0;
    const auto at = static_cast<off_t>(offset) + static_cast<off_t>(byte);
    ASSERT_EQ(::pread(fd, &c, 1, at), 1);
    c = static_cast<unsigned char>(c ^ 0x10);
    ASSERT_EQ(::pwrite(fd, &c, 1, at), 1);
    ::close(fd);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

inline void truncate_file(const std::string& file, off_t size) {
  if (world_rank() == 0) {
    EXPECT_EQ(::truncate(file.c_str(), size), 0);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

}  // namespace cairn::test
