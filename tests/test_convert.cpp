// convert_checkpoint: a posix checkpoint converted to HDF5 on 1..world ranks loads with the HDF5
// reader in another decomposition and reads whole through the HDF5 C API; a damaged chunk makes
// the conversion fail and publish nothing; HDF5 converts back to posix.
#include "test_support.hpp"

#include <cairn/convert.hpp>

#include <hdf5.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <numeric>
#include <type_traits>

using namespace cairn;
using namespace cairn::test;
namespace fs = std::filesystem;

namespace {

std::int64_t count(const Extents& shape) {
  return std::accumulate(shape.begin(), shape.end(), std::int64_t{1}, std::multiplies<>());
}

template <class T>
T value_at(std::int64_t linear, int seed) {
  if constexpr (std::is_floating_point_v<T>)
    return static_cast<T>(pattern(linear, seed));
  else
    return static_cast<T>(static_cast<std::int64_t>(pattern(linear, seed) * 4));  // wraps in narrow types
}

// One array of T as this rank holds it under a decomposition.
template <class T>
struct Held {
  Held(std::string n, const Extents& s, Decomposition kind, int sd, int parts, int part, bool blank)
      : name(std::move(n)), shape(s), seed(sd), blocks(decompose(s, parts, part, kind)) {
    for (const Block& b : blocks) {
      std::vector<T> d(static_cast<std::size_t>(count(b.shape)));
      for_each_element(b, [&](const Extents& l, std::int64_t pos) {
        d[static_cast<std::size_t>(pos)] = blank ? T{} : value_at<T>(global_linear(shape, b, l), seed);
      });
      data.push_back(std::move(d));
    }
  }
  void add_to(State& state) {
    ArrayEntry& e = state.add_array(name, dtype_of<T>(), shape);
    for (std::size_t i = 0; i < blocks.size(); ++i) e.add_chunk(blocks[i].offset, blocks[i].shape, data[i].data());
  }
  int wrong() const {
    int n = 0;
    for (std::size_t i = 0; i < blocks.size(); ++i)
      for_each_element(blocks[i], [&](const Extents& l, std::int64_t pos) {
        if (data[i][static_cast<std::size_t>(pos)] != value_at<T>(global_linear(shape, blocks[i], l), seed)) ++n;
      });
    return n;
  }
  std::string name;
  Extents shape;
  int seed;
  std::vector<Block> blocks;
  std::vector<std::vector<T>> data;
};

const Extents a_shape_base{6, 7};

Extents a_shape() {
  return {static_cast<std::int64_t>(world_size()) * a_shape_base[0] + 1, a_shape_base[1]};
}
const Extents b_shape{9, 10};
Extents c_shape() {
  return {static_cast<std::int64_t>(world_size()) * 700 + 3};
}

// Collective on the world: saves the test state with the posix writer.
void save_posix(const std::string& id) {
  const int rank = world_rank();
  Held<double> a("fields/a", a_shape(), Decomposition::Slabs, 1, world_size(), rank, false);
  Held<std::int32_t> b("grid/b", b_shape, Decomposition::Grid, 2, world_size(), rank, false);
  Held<std::uint8_t> c("c", c_shape(), Decomposition::TwoPerRank, 3, world_size(), rank, false);
  std::vector<std::byte> rng(static_cast<std::size_t>(5 + 3 * rank), static_cast<std::byte>(rank + 1));
  char config[] = "config";
  std::int64_t step = 77, cursor = 500 + rank;
  std::string units = "m/s";
  State state;
  a.add_to(state);
  b.add_to(state);
  c.add_to(state);
  state.add_bytes("rng", rng);
  state.add_bytes("config", config, sizeof config, Distribution::Replicated);
  state.add_scalar("step", step);
  state.add_scalar("units", units);
  state.add_scalar("cursor", cursor, Distribution::RankLocal);
  SaveOptions options;
  options.writer = make_posix_writer();
  Checkpointer ck(MPI_COMM_WORLD);
  ck.save(state, id, options);
}

// Collective on the world: loads the test state with `reader` (HDF5 when null) in other
// decompositions and checks every byte.
void load_and_check(const std::string& id, std::shared_ptr<StorageReader> reader) {
  const int rank = world_rank();
  Held<double> a("fields/a", a_shape(), Decomposition::TwoPerRank, 1, world_size(), rank, true);
  Held<std::int32_t> b("grid/b", b_shape, Decomposition::Slabs, 2, world_size(), rank, true);
  Held<std::uint8_t> c("c", c_shape(), Decomposition::Grid, 3, world_size(), rank, true);
  std::vector<std::byte> rng;
  char config[7] = {};
  std::int64_t step = 0, cursor = 0;
  std::string units;
  State state;
  a.add_to(state);
  b.add_to(state);
  c.add_to(state);
  state.add_bytes("rng", rng);
  state.add_bytes("config", config, sizeof config, Distribution::Replicated);
  state.add_scalar("step", step);
  state.add_scalar("units", units);
  state.add_scalar("cursor", cursor, Distribution::RankLocal);
  LoadOptions options;
  options.reader = std::move(reader);
  Checkpointer ck(MPI_COMM_WORLD);
  ck.load(state, id, options);
  EXPECT_EQ(a.wrong(), 0) << id << " rank " << rank;
  EXPECT_EQ(b.wrong(), 0) << id << " rank " << rank;
  EXPECT_EQ(c.wrong(), 0) << id << " rank " << rank;
  EXPECT_EQ(rng, std::vector<std::byte>(static_cast<std::size_t>(5 + 3 * rank), static_cast<std::byte>(rank + 1)));
  EXPECT_STREQ(config, "config");
  EXPECT_EQ(step, 77);
  EXPECT_EQ(units, "m/s");
  EXPECT_EQ(cursor, 500 + rank);
}

// Rank 0: reads a dataset of data.h5 whole with plain HDF5, as h5py would; number of wrong values.
template <class T>
int wrong_in_hdf5(const std::string& file, const char* dataset, hid_t type, const Extents& shape, int seed) {
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) return -1;
  std::vector<T> all(static_cast<std::size_t>(count(shape)));
  const hid_t d = H5Dopen2(f, dataset, H5P_DEFAULT);
  int wrong = -1;
  if (d >= 0) {
    const hid_t space = H5Dget_space(d);
    std::vector<hsize_t> dims(shape.size());
    const bool same_shape = H5Sget_simple_extent_ndims(space) == static_cast<int>(shape.size()) &&
                            H5Sget_simple_extent_dims(space, dims.data(), nullptr) >= 0 &&
                            std::equal(dims.begin(), dims.end(), shape.begin(),
                                       [](hsize_t x, std::int64_t y) { return x == static_cast<hsize_t>(y); });
    H5Sclose(space);
    if (same_shape && H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, all.data()) >= 0) {
      wrong = 0;
      for (std::size_t i = 0; i < all.size(); ++i)
        if (all[i] != value_at<T>(static_cast<std::int64_t>(i), seed)) ++wrong;
    }
    H5Dclose(d);
  }
  H5Fclose(f);
  return wrong;
}

MPI_Comm first_ranks(int n) {
  MPI_Comm comm = MPI_COMM_NULL;
  MPI_Comm_split(MPI_COMM_WORLD, world_rank() < n ? 0 : MPI_UNDEFINED, world_rank(), &comm);
  return comm;
}

template <class Edit>
bool on_rank0(Edit&& edit) {
  bool ok = true;
  if (world_rank() == 0) ok = edit();
  return all_ranks(ok);
}

}  // namespace

TEST(Convert, PosixToHdf5OnEveryRankCount) {
  TempDir dir;
  const std::string source = dir / "posix";
  save_posix(source);
  for (int m = 1; m <= world_size(); ++m) {
    const std::string target = dir / ("hdf5_on_" + std::to_string(m));
    MPI_Comm comm = first_ranks(m);
    if (comm != MPI_COMM_NULL) {
      MpiProcessGroup group(comm);
      ConvertOptions options;
      if (m % 2 == 1) options.buffer_bytes = 4096;  // chunks copied in many slices
      EXPECT_NO_THROW(convert_checkpoint(group, source, target, options)) << "on " << m << " ranks";
      MPI_Comm_free(&comm);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    ASSERT_TRUE(fs::exists(target + "/data.h5"));
    EXPECT_FALSE(fs::exists(target + "/metadata.cairn"));
    load_and_check(target, nullptr);
    Checkpointer ck(MPI_COMM_WORLD);
    const VerifyReport report = ck.verify(target);
    EXPECT_TRUE(report.ok()) << target;
    EXPECT_GT(report.chunks_checked, 0);
    if (world_rank() == 0) {
      EXPECT_EQ(wrong_in_hdf5<double>(target + "/data.h5", "fields/a", H5T_NATIVE_DOUBLE, a_shape(), 1), 0);
      EXPECT_EQ(wrong_in_hdf5<std::int32_t>(target + "/data.h5", "grid/b", H5T_NATIVE_INT32, b_shape, 2), 0);
      EXPECT_EQ(wrong_in_hdf5<std::uint8_t>(target + "/data.h5", "c", H5T_NATIVE_UINT8, c_shape(), 3), 0);
    }
  }
  // The source still loads as it was.
  load_and_check(source, make_posix_reader());
}

TEST(Convert, CorruptChunkPublishesNothing) {
  TempDir dir;
  const std::string source = dir / "posix";
  const std::string target = dir / "hdf5";
  save_posix(source);
  // Byte 8 of the last rank's file lies in its first piece, a chunk of "fields/a".
  char name[32];
  std::snprintf(name, sizeof name, "/rank_%06d.dat", world_size() - 1);
  ASSERT_TRUE(on_rank0([&] {
    const int fd = ::open((source + name).c_str(), O_RDWR);
    unsigned char byte = 0;
    bool ok = fd >= 0 && ::pread(fd, &byte, 1, 8) == 1;
    byte ^= 0x01;
    ok = ok && ::pwrite(fd, &byte, 1, 8) == 1;
    if (fd >= 0) ::close(fd);
    return ok;
  }));
  MpiProcessGroup group(MPI_COMM_WORLD);
  expect_error<CorruptCheckpointError>([&] { convert_checkpoint(group, source, target); },
                                       "of entry 'fields/a' saved by rank " + std::to_string(world_size() - 1));
  EXPECT_FALSE(fs::exists(target));
  EXPECT_FALSE(fs::exists(dir / ".hdf5.partial"));
}

TEST(Convert, Hdf5ToPosixAndOverwrite) {
  TempDir dir;
  const std::string source = dir / "posix";
  const std::string middle = dir / "hdf5";
  const std::string back = dir / "posix_again";
  save_posix(source);
  MpiProcessGroup group(MPI_COMM_WORLD);
  convert_checkpoint(group, source, middle);
  ConvertOptions to_posix;
  to_posix.writer = make_posix_writer();
  convert_checkpoint(group, middle, back, to_posix);
  ASSERT_TRUE(fs::exists(back + "/metadata.cairn"));
  load_and_check(back, make_posix_reader());
  expect_error<UsageError>([&] { convert_checkpoint(group, middle, back, to_posix); }, back);
  to_posix.overwrite = true;
  EXPECT_NO_THROW(convert_checkpoint(group, middle, back, to_posix));
  load_and_check(back, make_posix_reader());
  expect_error<UsageError>([&] { convert_checkpoint(group, back, back, to_posix); }, "same checkpoint");
  expect_error<StorageError>([&] { convert_checkpoint(group, dir / "missing", dir / "x"); }, dir / "missing");
  EXPECT_FALSE(fs::exists(dir / "x"));
}
