// A program outside Cairn's build: it includes only the installed headers and links cairn::cairn
// (or the pkg-config flags). Collective over MPI_COMM_WORLD: every rank saves its slice of a
// 1-D array, then loads it back into a zeroed buffer and compares the bytes.
//
//   consumer <directory>    the checkpoint is written to <directory>/ckpt
//
// Exits 0 when every rank read back exactly what it saved, non-zero otherwise.
#include <cairn/cairn.hpp>

#include <mpi.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

namespace {

int run(const std::string& dir) {
  int rank = 0;
  int size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);

  constexpr std::int64_t per_rank = 1000;
  const std::int64_t global = per_rank * size;
  const std::int64_t offset = per_rank * rank;
  std::vector<double> field(static_cast<std::size_t>(per_rank));
  for (std::int64_t i = 0; i < per_rank; ++i) {
    field[static_cast<std::size_t>(i)] = 0.25 * static_cast<double>(offset + i);
  }

  cairn::Checkpointer ck(MPI_COMM_WORLD);
  cairn::State state;
  state.add_array("fields/u", cairn::Extents{global}, cairn::Extents{offset}, cairn::Extents{per_rank}, field.data());
  ck.save(state, dir + "/ckpt");

  std::vector<double> back(field.size(), -1.0);
  cairn::State target;
  target.add_array("fields/u", cairn::Extents{global}, cairn::Extents{offset}, cairn::Extents{per_rank}, back.data());
  ck.load(target, dir + "/ckpt");

  int bad = std::memcmp(field.data(), back.data(), field.size() * sizeof(double)) != 0 ? 1 : 0;
  int any_bad = 0;
  MPI_Allreduce(&bad, &any_bad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (bad) std::fprintf(stderr, "consumer: rank %d read back different bytes\n", rank);
  if (rank == 0 && !any_bad) {
    std::printf("consumer: %d ranks saved and loaded %lld doubles\n", size, static_cast<long long>(global));
  }
  return any_bad;
}

}  // namespace

int main(int argc, char** argv) {
  // Cairn's worker thread writes in the background when MPI allows calls from any thread.
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int status = 2;
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <directory>\n", argv[0]);
  } else {
    try {
      status = run(argv[1]);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "consumer: %s\n", e.what());
      status = 3;
    }
  }
  // A failing rank must not leave the others waiting in a collective.
  if (status == 3) MPI_Abort(MPI_COMM_WORLD, status);
  MPI_Finalize();
  return status;
}
