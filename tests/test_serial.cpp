// A serial code without MPI: Checkpointer() saves and loads with MPI never initialized.
#include <cairn/cairn.hpp>

#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdlib>
#include <filesystem>
#include <numeric>
#include <string>
#include <vector>

namespace {

bool mpi_initialized() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  return initialized != 0;
}

class Serial : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* base = std::getenv("TMPDIR");
    std::string templ = std::string(base ? base : "/tmp") + "/cairn-serial-XXXXXX";
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir = templ;
  }
  void TearDown() override { std::filesystem::remove_all(dir); }
  std::string dir;
};

TEST_F(Serial, SavesAndLoadsWithoutMpi) {
  cairn::Checkpointer ck;
  EXPECT_TRUE(ck.background_writes());
  std::vector<double> field(3000);
  std::iota(field.begin(), field.end(), 0.5);
  std::int64_t step = 42;
  std::vector<std::byte> rng(24, std::byte{7});
  cairn::State state;
  state.add_array("field", cairn::Extents{30, 100}, cairn::Extents{0, 0}, cairn::Extents{30, 100}, field.data());
  state.add_scalar("step", step);
  state.add_bytes("rng", rng);
  for (cairn::StagingMode mode :
       {cairn::StagingMode::Copy, cairn::StagingMode::ZeroCopy, cairn::StagingMode::Bounded}) {
    cairn::SaveOptions options;
    options.staging = mode;
    options.overwrite = true;
    cairn::SaveFuture future = ck.async_save(state, dir + "/ckpt", options);
    future.get();
    std::vector<double> back(3000, 0.0);
    std::int64_t step_back = 0;
    std::vector<std::byte> rng_back;
    cairn::State target;
    target.add_array("field", cairn::Extents{30, 100}, cairn::Extents{0, 0}, cairn::Extents{30, 100}, back.data());
    target.add_scalar("step", step_back);
    target.add_bytes("rng", rng_back);
    ck.load(target, dir + "/ckpt");
    EXPECT_EQ(back, field);
    EXPECT_EQ(step_back, 42);
    EXPECT_EQ(rng_back, rng);
  }
  EXPECT_FALSE(mpi_initialized()) << "Cairn initialized MPI behind a serial code's back";
}

TEST_F(Serial, NoDistOptionNeedsNoMpiEither) {
  cairn::Checkpointer ck;
  std::vector<float> values(64, 1.25f);
  cairn::State state;
  state.add_array("v", cairn::Extents{64}, cairn::Extents{0}, cairn::Extents{64}, values.data());
  cairn::SaveOptions options;
  options.no_dist = true;
  ck.save(state, dir + "/nd", options);
  std::vector<float> back(64, 0.0f);
  cairn::State target;
  target.add_array("v", cairn::Extents{64}, cairn::Extents{0}, cairn::Extents{64}, back.data());
  cairn::LoadOptions load_options;
  load_options.no_dist = true;
  ck.load(target, dir + "/nd", load_options);
  EXPECT_EQ(back, values);
  EXPECT_FALSE(mpi_initialized());
}

}  // namespace
