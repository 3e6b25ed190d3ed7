// GoogleTest main for MPI tests: every rank runs every test; rank 0 prints the usual report and
// the other ranks print only their failures, each line tagged with the rank.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

class RankFailurePrinter : public testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : m_rank(rank) {}
  void OnTestPartResult(const testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: failure\n%s\n", m_rank, result.file_name() ? result.file_name() : "?",
                 result.line_number(), result.summary());
  }

 private:
  int m_rank;
};

}  // namespace

int main(int argc, char** argv) {
  // CAIRN_TEST_MPI_THREAD_LEVEL=funneled|serialized runs the suite below MPI_THREAD_MULTIPLE.
  int wanted = MPI_THREAD_MULTIPLE;
  if (const char* level = std::getenv("CAIRN_TEST_MPI_THREAD_LEVEL")) {
    if (std::strcmp(level, "funneled") == 0) wanted = MPI_THREAD_FUNNELED;
    if (std::strcmp(level, "serialized") == 0) wanted = MPI_THREAD_SERIALIZED;
  }
  int provided = 0;
  MPI_Init_thread(&argc, &argv, wanted, &provided);
  testing::InitGoogleTest(&argc, argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) {
    auto& listeners = testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter(rank));
  }
  const int local = RUN_ALL_TESTS();
  int any = local;
  MPI_Allreduce(&local, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return any;
}
