// Writes a checkpoint with known contents for external readers (h5py, h5dump) to check:
//   mpiexec -n P write_reference_checkpoint DIR
// Each rank holds slabs of the arrays in a different memory layout (row-major, column-major,
// strided), so readers prove that the file holds plain row-major global arrays.
#include <cairn/cairn.hpp>

#include <mpi.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const std::string layout = argc == 3 ? argv[2] : "shared";
  // compressed, compressed-aggregated: the same, every array deflate-compressed (HDF5 chunks);
  // zstd, zstd-aggregated, zstd-rank-files: zstd-compressed, for Cairn's own readers.
  const bool zstd = layout == "zstd" || layout == "zstd-aggregated" || layout == "zstd-rank-files";
  const bool compressed = layout == "compressed" || layout == "compressed-aggregated" || zstd;
  if ((argc != 2 && argc != 3) || (layout != "shared" && layout != "aggregated" && !compressed)) {
    if (rank == 0)
      std::fprintf(stderr,
                   "usage: write_reference_checkpoint DIR [shared|aggregated|compressed|compressed-aggregated|"
                   "zstd|zstd-aggregated|zstd-rank-files]\n");
    MPI_Finalize();
    return 2;
  }
  int status = 0;
  try {
    // temperature[i][j][k] = 0.5 * (row-major linear index), shape (2P+1, 7, 5), slabs of i.
    const std::int64_t ni = 2 * size + 1, nj = 7, nk = 5;
    const std::int64_t begin = ni * rank / size, end = ni * (rank + 1) / size, rows = end - begin;
    const int layout_kind = rank % 3;  // 0 row-major, 1 column-major, 2 strided inside a halo
    std::vector<double> field(static_cast<std::size_t>((rows + 2) * (nj + 2) * (nk + 2)), -1.0);
    cairn::Chunk chunk{{begin, 0, 0}, {rows, nj, nk}, field.data(), cairn::Layout::RowMajor, {}};
    for (std::int64_t i = 0; i < rows; ++i)
      for (std::int64_t j = 0; j < nj; ++j)
        for (std::int64_t k = 0; k < nk; ++k) {
          const double value = 0.5 * static_cast<double>(((begin + i) * nj + j) * nk + k);
          std::size_t at = 0;
          if (layout_kind == 0) at = static_cast<std::size_t>((i * nj + j) * nk + k);
          if (layout_kind == 1) at = static_cast<std::size_t>((k * nj + j) * rows + i);
          if (layout_kind == 2) at = static_cast<std::size_t>(((i + 1) * (nj + 2) + j + 1) * (nk + 2) + k + 1);
          field[at] = value;
        }
    if (layout_kind == 1) chunk.layout = cairn::Layout::ColumnMajor;
    if (layout_kind == 2) {
      chunk.data = field.data() + ((nj + 2) * (nk + 2) + (nk + 2) + 1);
      chunk.strides = {(nj + 2) * (nk + 2), nk + 2, 1};
    }
    // pressure[n] = n as float32, 3 per rank; flags[n] = n % 3 == 0.
    std::vector<float> pressure(3);
    bool flags[3];
    for (int n = 0; n < 3; ++n) {
      pressure[static_cast<std::size_t>(n)] = static_cast<float>(3 * rank + n);
      flags[n] = (3 * rank + n) % 3 == 0;
    }
    // IEEE half and bfloat16 bit patterns of 1, -2, 0.5.
    cairn::float16_t half[3] = {{0x3C00}, {0xC000}, {0x3800}};
    cairn::bfloat16_t bf[3] = {{0x3F80}, {0xC000}, {0x3F00}};
    std::int64_t step = 42;
    double time = 1.5;
    std::string units = "kelvin";
    char rng[8];
    std::memset(rng, 'a' + rank, sizeof rng);

    cairn::State state;
    state.add_array("fields/temperature", cairn::DType::Float64, {ni, nj, nk}).chunks.push_back(chunk);
    state.add_array("fields/pressure", {3 * static_cast<std::int64_t>(size)}, {3 * rank}, {3}, pressure.data());
    state.add_array("flags", {3 * static_cast<std::int64_t>(size)}, {3 * rank}, {3}, flags);
    state.add_replicated_array("half", {3}, half);
    state.add_replicated_array("bf", {3}, bf);
    state.add_scalar("step", step);
    state.add_scalar("sim/time", time);
    state.add_scalar("sim/units", units);
    state.add_bytes("rng", rng, sizeof rng);
    cairn::Checkpointer checkpointer(MPI_COMM_WORLD);
    cairn::SaveOptions options;
    // Aggregated: two part files, so that one of them holds several ranks' chunks.
    if (layout == "aggregated" || layout == "compressed-aggregated" || layout == "zstd-aggregated")
      options.writer = cairn::make_hdf5_aggregated_writer(2);
    if (layout == "zstd-rank-files") options.use_collectives = false;
    if (compressed)
      for (cairn::Entry& entry : state.entries())
        if (auto* array = std::get_if<cairn::ArrayEntry>(&entry.value))
          array->compress(zstd ? cairn::Compression::Zstd : cairn::Compression::Deflate, 1);
    checkpointer.save(state, argv[1], options);
  } catch (const cairn::Error& e) {
    std::fprintf(stderr, "rank %d: %s\n", rank, e.what());
    status = 1;
  }
  MPI_Finalize();
  return status;
}
