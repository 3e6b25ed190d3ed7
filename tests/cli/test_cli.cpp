// The `cairn` command's functions (src/cli/commands.hpp) on real checkpoints saved by one process
// without MPI: a manager root with several steps, posix and HDF5 checkpoints, a damaged one.
#include "cli/commands.hpp"
#include "cli/json.hpp"
#include "cli/progress.hpp"

#include <cairn/cairn.hpp>

#include <gtest/gtest.h>
#include <hdf5.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace fs = std::filesystem;
using namespace cairn;
using namespace cairn::cli;

namespace {

// What one save holds; `variant` changes one temperature value, the step, and the entry set.
struct Sim {
  explicit Sim(int variant = 0) {
    for (std::size_t i = 0; i < temperature.size(); ++i) temperature[i] = 0.5 * static_cast<double>(i);
    for (std::size_t i = 0; i < count.size(); ++i) count[i] = static_cast<std::int32_t>(3 * i);
    for (std::size_t i = 0; i < rng.size(); ++i) rng[i] = static_cast<std::byte>(i * 7);
    if (variant == 1) {
      temperature[4 * 5 + 1] += 2.5;  // element (4, 1)
      temperature[0] -= 0.25;         // element (0, 0): a smaller difference
      step = 43;
    }
    // Two chunks of one rank: rows 0-2 and 3-5.
    ArrayEntry& t = state.add_array("fields/temperature", DType::Float64, {6, 5});
    t.add_chunk({0, 0}, {3, 5}, temperature.data());
    t.add_chunk({3, 0}, {3, 5}, temperature.data() + 15);
    if (variant == 1) {
      state.add_array("fields/mask", Extents{10}, Extents{0}, Extents{10}, mask64.data());  // int64 now
      state.add_array("extra", Extents{4}, Extents{0}, Extents{4}, extra.data());
    } else {
      state.add_array("fields/mask", Extents{10}, Extents{0}, Extents{10}, count.data());
      state.add_array("fields/count", Extents{10}, Extents{0}, Extents{10}, count.data());
    }
    state.add_scalar("step", step);
    state.add_scalar("time", time);
    state.add_scalar("units", units);
    state.add_bytes("rng", rng.data(), rng.size());
    state.add_scalar("cursor", cursor, Distribution::RankLocal);
  }
  std::vector<double> temperature = std::vector<double>(30);
  std::vector<std::int32_t> count = std::vector<std::int32_t>(10);
  std::vector<std::int64_t> mask64 = std::vector<std::int64_t>(10, 1);
  std::vector<float> extra = std::vector<float>(4, 1.5f);
  std::vector<std::byte> rng = std::vector<std::byte>(16);
  std::int64_t step = 42;
  double time = 1.25;
  std::string units = "kelvin \"SI\"";
  std::int64_t cursor = 7;
  State state;
};

bool contains(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

// Flips one bit of byte `byte` of the (contiguous) data of dataset `name` in HDF5 file `file`.
void flip_byte(const std::string& file, const std::string& name, std::int64_t byte) {
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(f, 0) << file;
  const hid_t d = H5Dopen2(f, name.c_str(), H5P_DEFAULT);
  ASSERT_GE(d, 0) << name;
  const haddr_t base = H5Dget_offset(d);
  H5Dclose(d);
  H5Fclose(f);
  ASSERT_NE(base, HADDR_UNDEF);
  const int fd = ::open(file.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  const auto at = static_cast<off_t>(base) + static_cast<off_t>(byte);
  unsigned char c = 0;
  ASSERT_EQ(::pread(fd, &c, 1, at), 1);
  c = static_cast<unsigned char>(c ^ 0x10U);
  ASSERT_EQ(::pwrite(fd, &c, 1, at), 1);
  ::close(fd);
}

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* base = std::getenv("TMPDIR");
    std::string templ = std::string(base ? base : "/tmp") + "/cairn-cli-XXXXXX";
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir = templ;
  }
  void TearDown() override { fs::remove_all(dir); }

  std::string save(const std::string& name, int variant = 0, bool posix = false) {
    Sim sim(variant);
    SaveOptions options;
    if (posix) options.writer = make_posix_writer();
    checkpointer.save(sim.state, dir + "/" + name, options);
    return dir + "/" + name;
  }

  std::string dir;
  Checkpointer checkpointer;  // one process, no MPI
  std::ostringstream out, err;
};

TEST(CliFormat, RankRangesAgesAndJsonStrings) {
  EXPECT_EQ(rank_ranges({5, 0, 1, 2, 3, 7, 8, 3}), "0-3,5,7-8");
  EXPECT_EQ(rank_ranges({4}), "4");
  EXPECT_EQ(rank_ranges({}), "");
  EXPECT_EQ(human_age(42), "42 s");
  EXPECT_EQ(human_age(5 * 60 + 3), "5 min");
  EXPECT_EQ(human_age(3 * 3600), "3 h");
  EXPECT_EQ(human_age(2 * 86400 + 5), "2 d");
  EXPECT_EQ(human_bytes(830), "830 B");
  EXPECT_EQ(human_bytes(1536), "1.5 KiB");
  EXPECT_EQ(json_quote("a\"b\\c\nd\x01"), "\"a\\\"b\\\\c\\nd\\u0001\"");
  std::ostringstream s;
  JsonWriter json(s);
  json.begin_object().field("a", std::int64_t{1}).key("b").begin_array().value("x").value(2.5).end_array();
  json.field("c", std::numeric_limits<double>::quiet_NaN()).end_object();
  EXPECT_EQ(s.str(), "{\"a\":1,\"b\":[\"x\",2.5],\"c\":null}");
}

TEST(CliFormat, ProgressBarDrawsOnlyWhenEnabledAndErasesItself) {
  std::ostringstream bar;
  {
    Progress progress(bar, true, "verify", 1000);
    progress.add(500);
    EXPECT_TRUE(contains(bar.str(), "\rverify [###############...............] 50%  500 B / 1000 B")) << bar.str();
    progress.add(500);  // the last update is drawn however soon it comes
    EXPECT_TRUE(contains(bar.str(), "100%  1000 B / 1000 B")) << bar.str();
  }
  EXPECT_EQ(bar.str().back(), '\r') << "erased at the end";
  std::ostringstream quiet;
  {
    Progress progress(quiet, false, "verify", 1000);
    progress.add(1000);
  }
  EXPECT_TRUE(quiet.str().empty()) << quiet.str();
}

TEST_F(Cli, LsShowsStepsSizesAndStatusOfAManagerRoot) {
  const std::string root = dir + "/run";
  {
    ManagerOptions options;
    options.keep_last = 5;
    CheckpointManager manager(checkpointer, root, options);
    for (const std::int64_t step : {10, 20, 30}) {
      Sim sim;
      sim.step = step;
      manager.save(sim.state, step);
    }
  }
  fs::create_directories(root + "/.step_0000000040.partial");  // a save that never published
  fs::create_directories(root + "/step_0000000050");           // no marker
  fs::create_directories(root + "/logs");                      // not a checkpoint: not listed

  LsArgs args;
  args.root = root;
  ASSERT_EQ(run_ls(args, out, err), exit_ok) << err.str();
  const std::string text = out.str();
  EXPECT_TRUE(contains(text, "STEP")) << text;
  const std::size_t s10 = text.find("step_0000000010"), s20 = text.find("step_0000000020"),
                    s30 = text.find("step_0000000030"), s40 = text.find(".step_0000000040.partial");
  ASSERT_NE(s10, std::string::npos) << text;
  ASSERT_NE(s40, std::string::npos) << text;
  EXPECT_LT(s10, s20);
  EXPECT_LT(s20, s30);
  EXPECT_LT(s30, s40);
  EXPECT_FALSE(contains(text, "logs")) << text;
  EXPECT_TRUE(contains(text, "complete")) << text;
  EXPECT_TRUE(contains(text, "incomplete")) << text;
  EXPECT_TRUE(contains(text, "KiB")) << text;
  EXPECT_TRUE(contains(text, "s  ")) << "an age in seconds: " << text;

  out.str("");
  args.common.json = true;
  ASSERT_EQ(run_ls(args, out, err), exit_ok) << err.str();
  const std::string json = out.str();
  EXPECT_TRUE(contains(json, "\"root\":\"" + root + "\"")) << json;
  EXPECT_TRUE(contains(json, "\"name\":\"step_0000000020\",\"path\":\"" + root + "/step_0000000020\",\"step\":20"))
      << json;
  EXPECT_TRUE(contains(json, "\"status\":\"complete\",\"published\":true,\"entries\":8")) << json;
  EXPECT_TRUE(contains(json, "\"step\":40")) << json;
  EXPECT_TRUE(contains(json, "\"step\":50")) << json;
  EXPECT_TRUE(contains(json, "\"status\":\"incomplete\",\"published\":false")) << json;

  // A damaged checkpoint: complete by its marker and metadata, corrupt when verified (exit 1).
  flip_byte(root + "/step_0000000020/data.h5", "/fields/temperature", 8);
  out.str("");
  args.common.json = false;
  args.verify = true;
  EXPECT_EQ(run_ls(args, out, err), exit_found) << out.str();
  EXPECT_TRUE(contains(out.str(), "verified")) << out.str();
  EXPECT_TRUE(contains(out.str(), "corrupt")) << out.str();
  EXPECT_TRUE(contains(out.str(), "step_0000000020: 1 of ")) << out.str();

  LsArgs missing;
  missing.root = dir + "/nowhere";
  EXPECT_EQ(run_ls(missing, out, err), exit_error);
  EXPECT_TRUE(contains(err.str(), "cannot list '" + dir + "/nowhere'")) << err.str();
}

TEST_F(Cli, InfoListsEntriesWithDtypeShapeChunksRanksAndValues) {
  const std::string id = save("ckpt");
  InfoArgs args;
  args.checkpoint = id;
  ASSERT_EQ(run_info(args, out, err), exit_ok) << err.str();
  const std::string text = out.str();
  EXPECT_TRUE(contains(text, "layout           hdf5\n")) << text;
  EXPECT_TRUE(contains(text, "format version   " + std::to_string(cairn::format_version) + "\n")) << text;
  EXPECT_TRUE(contains(text, "world size       1\n")) << text;
  EXPECT_TRUE(contains(text, "entries          8")) << text;
  EXPECT_TRUE(contains(text, "fields/temperature  array")) << text;
  EXPECT_TRUE(contains(text, "(6, 5)")) << text;
  EXPECT_TRUE(contains(text, "\"kelvin \\\"SI\\\"\"")) << text;
  EXPECT_TRUE(contains(text, "[7]")) << "the rank-local scalar's value: " << text;

  out.str("");
  args.common.json = true;
  ASSERT_EQ(run_info(args, out, err), exit_ok) << err.str();
  const std::string json = out.str();
  EXPECT_TRUE(contains(json, "\"layout\":\"hdf5\"")) << json;
  EXPECT_TRUE(contains(json, "\"world_size\":1")) << json;
  EXPECT_TRUE(contains(json,
                       "\"name\":\"fields/temperature\",\"kind\":\"array\",\"distribution\":\"sharded\","
                       "\"dtype\":\"float64\",\"shape\":[6,5],\"chunks\":2,\"bytes\":240,\"ranks\":[0]"))
      << json;
  EXPECT_TRUE(contains(json,
                       "\"name\":\"step\",\"kind\":\"scalar\",\"distribution\":\"replicated\",\"dtype\":"
                       "\"int64\",\"shape\":[],\"chunks\":0,\"bytes\":8,\"ranks\":[],\"value\":42"))
      << json;
  EXPECT_TRUE(contains(json, "\"value\":1.25")) << json;
  EXPECT_TRUE(contains(json, "\"value\":\"kelvin \\\"SI\\\"\"")) << json;
  EXPECT_TRUE(contains(json, "\"values\":[7]")) << json;
  EXPECT_TRUE(contains(json,
                       "\"name\":\"rng\",\"kind\":\"bytes\",\"distribution\":\"rank-local\",\"dtype\":"
                       "\"uint8\",\"shape\":[16]"))
      << json;

  const std::string posix = save("px", 0, true);
  out.str("");
  args.checkpoint = posix;
  ASSERT_EQ(run_info(args, out, err), exit_ok) << err.str();
  EXPECT_TRUE(contains(out.str(), "\"layout\":\"posix\"")) << out.str();

  // Saved without collectives: one HDF5 file per rank.
  {
    Sim sim;
    SaveOptions options;
    options.use_collectives = false;
    checkpointer.save(sim.state, dir + "/rf", options);
  }
  out.str("");
  args.checkpoint = dir + "/rf";
  ASSERT_EQ(run_info(args, out, err), exit_ok) << err.str();
  EXPECT_TRUE(contains(out.str(), "\"layout\":\"hdf5-rank-files\"")) << out.str();
  EXPECT_TRUE(contains(out.str(), "\"values\":[7]")) << out.str();

  InfoArgs missing;
  missing.checkpoint = dir + "/none";
  EXPECT_EQ(run_info(missing, out, err), exit_error);
  EXPECT_TRUE(contains(err.str(), "checkpoint '" + dir + "/none' cannot be opened")) << err.str();
  fs::create_directories(dir + "/unpublished");
  missing.checkpoint = dir + "/unpublished";
  EXPECT_EQ(run_info(missing, out, err), exit_error);
  EXPECT_TRUE(contains(err.str(), "not a published Cairn checkpoint")) << err.str();
}

TEST_F(Cli, VerifyNamesTheDamagedChunkAndExitsOne) {
  const std::string id = save("ckpt");
  VerifyArgs args;
  args.checkpoint = id;
  ASSERT_EQ(run_verify(args, out, err), exit_ok) << err.str();
  EXPECT_TRUE(contains(out.str(), "OK, ")) << out.str();
  EXPECT_TRUE(contains(out.str(), "match their checksums")) << out.str();
  EXPECT_TRUE(err.str().empty()) << "no progress bar unless asked: " << err.str();

  // Row 4 lies in the second chunk, rows 3-5.
  flip_byte(id + "/data.h5", "/fields/temperature", (4 * 5 + 2) * 8);
  out.str("");
  ASSERT_EQ(run_verify(args, out, err), exit_found) << err.str();
  const std::string text = out.str();
  EXPECT_TRUE(contains(text, "BAD entry 'fields/temperature' chunk [3:6, 0:5] saved by rank 0: expected checksum 0x"))
      << text;
  EXPECT_TRUE(contains(text, "1 of ")) << text;
  EXPECT_TRUE(contains(text, "chunks are damaged")) << text;

  out.str("");
  args.common.json = true;
  ASSERT_EQ(run_verify(args, out, err), exit_found);
  const std::string json = out.str();
  EXPECT_TRUE(contains(json, "\"ok\":false")) << json;
  EXPECT_TRUE(contains(json,
                       "\"bad_chunks\":[{\"entry\":\"fields/temperature\",\"offset\":[3,0],\"shape\":[3,5],"
                       "\"saving_rank\":0,\"expected_checksum\":\"0x"))
      << json;
  EXPECT_EQ(json.find("\"entry\":", json.find("\"entry\":") + 1), std::string::npos) << "one bad chunk: " << json;

  VerifyArgs missing;
  missing.checkpoint = dir + "/none";
  missing.common.json = true;
  out.str("");
  EXPECT_EQ(run_verify(missing, out, err), exit_error);
  EXPECT_TRUE(contains(err.str(), "cairn verify: checkpoint '" + dir + "/none' cannot be opened")) << err.str();
  EXPECT_TRUE(contains(out.str(), "{\"error\":")) << out.str();
}

TEST_F(Cli, DiffReportsAddedRemovedAndChangedEntriesWithTheLargestDifference) {
  const std::string a = save("a"), b = save("b", 1), a2 = save("a2", 0, true);  // a2: a, in posix
  DiffArgs args;
  args.first = a;
  args.second = b;
  ASSERT_EQ(run_diff(args, out, err), exit_found) << err.str();
  const std::string text = out.str();
  EXPECT_TRUE(contains(text, "- fields/count (array, sharded, int32 (10))\n")) << text;
  EXPECT_TRUE(contains(text, "+ extra (array, sharded, float32 (4))\n")) << text;
  EXPECT_TRUE(contains(text, "~ fields/mask: dtype int32 -> int64\n")) << text;
  EXPECT_TRUE(
      contains(text, "~ fields/temperature: 2 of 30 elements differ, largest absolute difference 2.5 at (4, 1)\n"))
      << text;
  EXPECT_TRUE(contains(text, "~ step: value 42 -> 43\n")) << text;
  EXPECT_TRUE(contains(text, "1 added, 1 removed, 3 changed, 4 unchanged")) << text;

  out.str("");
  args.common.json = true;
  args.buffer_bytes = 16;  // two rows of temperature at a time: the slices must add up
  ASSERT_EQ(run_diff(args, out, err), exit_found) << err.str();
  const std::string json = out.str();
  EXPECT_TRUE(contains(json, "\"identical\":false")) << json;
  EXPECT_TRUE(contains(json, "\"removed\":[{\"name\":\"fields/count\"")) << json;
  EXPECT_TRUE(contains(json, "\"added\":[{\"name\":\"extra\"")) << json;
  EXPECT_TRUE(contains(json,
                       "{\"name\":\"fields/temperature\",\"notes\":[],\"elements\":30,\"differing_elements\":2,"
                       "\"nan_mismatches\":0,\"max_abs_difference\":2.5,\"max_at\":[4,1]}"))
      << json;
  EXPECT_TRUE(contains(json, "\"notes\":[\"value 42 -> 43\"]")) << json;
  EXPECT_TRUE(contains(json, "\"unchanged\":4")) << json;

  // The same content in two layouts is identical.
  out.str("");
  args.common.json = false;
  args.second = a2;
  EXPECT_EQ(run_diff(args, out, err), exit_ok) << out.str() << err.str();
  EXPECT_TRUE(contains(out.str(), "identical: 0 added, 0 removed, 0 changed, 8 unchanged")) << out.str();

  args.second = dir + "/none";
  EXPECT_EQ(run_diff(args, out, err), exit_error);
  EXPECT_TRUE(contains(err.str(), dir + "/none")) << err.str();
}

// Loads checkpoint `id` into a fresh Sim and checks that every entry came back.
void expect_loads_like_the_original(Checkpointer& checkpointer, const std::string& id) {
  Sim original;
  Sim loaded;
  std::fill(loaded.temperature.begin(), loaded.temperature.end(), 0.0);
  std::fill(loaded.count.begin(), loaded.count.end(), 0);
  std::fill(loaded.rng.begin(), loaded.rng.end(), std::byte{0});
  loaded.step = 0;
  loaded.units.clear();
  loaded.cursor = 0;
  checkpointer.load(loaded.state, id);
  EXPECT_EQ(loaded.temperature, original.temperature);
  EXPECT_EQ(loaded.count, original.count);
  EXPECT_EQ(loaded.rng, original.rng);
  EXPECT_EQ(loaded.step, 42);
  EXPECT_EQ(loaded.time, 1.25);
  EXPECT_EQ(loaded.units, original.units);
  EXPECT_EQ(loaded.cursor, 7);
}

TEST_F(Cli, ConvertsPosixToHdf5AndBackWithoutOverwriting) {
  const std::string source = save("px", 0, true);
  ConvertArgs args;
  args.source = source;
  args.target = dir + "/h5";
  ASSERT_EQ(run_convert(args, out, err), exit_ok) << err.str();
  EXPECT_TRUE(contains(out.str(), "converted '" + source + "' to hdf5 '" + dir + "/h5'")) << out.str();
  EXPECT_TRUE(fs::exists(dir + "/h5/data.h5"));
  expect_loads_like_the_original(checkpointer, dir + "/h5");

  // An existing target stays unless --force.
  const auto before = fs::last_write_time(dir + "/h5/data.h5");
  EXPECT_EQ(run_convert(args, out, err), exit_error);
  EXPECT_TRUE(contains(err.str(), "'" + dir + "/h5' exists; pass --force")) << err.str();
  EXPECT_EQ(fs::last_write_time(dir + "/h5/data.h5"), before);
  args.force = true;
  args.common.json = true;
  out.str("");
  ASSERT_EQ(run_convert(args, out, err), exit_ok) << err.str();
  EXPECT_TRUE(contains(out.str(), "\"format\":\"hdf5\",\"bytes\":")) << out.str();

  ConvertArgs back;
  back.source = dir + "/h5";
  back.target = dir + "/px2";
  back.to = "posix";
  ASSERT_EQ(run_convert(back, out, err), exit_ok) << err.str();
  EXPECT_TRUE(fs::exists(dir + "/px2/metadata.cairn"));
  expect_loads_like_the_original(checkpointer, dir + "/px2");

  back.to = "zarr";
  EXPECT_EQ(run_convert(back, out, err), exit_error);
  EXPECT_TRUE(contains(err.str(), "unknown target format 'zarr'")) << err.str();
}

// Reads a whole dataset of T.
template <class T>
std::vector<T> read_dataset(hid_t file, const std::string& name, hid_t memtype, std::vector<hsize_t>& dims) {
  std::vector<T> values;
  const hid_t d = H5Dopen2(file, name.c_str(), H5P_DEFAULT);
  if (d < 0) {
    ADD_FAILURE() << "no dataset " << name;
    return values;
  }
  const hid_t space = H5Dget_space(d);
  dims.assign(static_cast<std::size_t>(H5Sget_simple_extent_ndims(space)), 0);
  H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  values.resize(static_cast<std::size_t>(H5Sget_simple_extent_npoints(space)));
  EXPECT_GE(H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), 0) << name;
  H5Sclose(space);
  H5Dclose(d);
  return values;
}

TEST_F(Cli, ExportsOneSerialHdf5FileWithDatasetsAndAttributes) {
  const std::string source = save("px", 0, true);
  ConvertArgs args;
  args.source = source;
  args.target = dir + "/flat.h5";
  args.to = "serial-hdf5";
  args.buffer_bytes = 24;  // several slices per chunk
  ASSERT_EQ(run_convert(args, out, err), exit_ok) << err.str();

  const Sim original;
  const hid_t f = H5Fopen(args.target.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  std::vector<hsize_t> dims;
  EXPECT_EQ(read_dataset<double>(f, "/fields/temperature", H5T_NATIVE_DOUBLE, dims), original.temperature);
  EXPECT_EQ(dims, (std::vector<hsize_t>{6, 5}));
  EXPECT_EQ(read_dataset<std::int32_t>(f, "/fields/count", H5T_NATIVE_INT32, dims), original.count);
  EXPECT_EQ(read_dataset<std::uint8_t>(f, "/rng", H5T_NATIVE_UINT8, dims).size(), 16u);
  EXPECT_EQ(read_dataset<std::int64_t>(f, "/cursor", H5T_NATIVE_INT64, dims), std::vector<std::int64_t>{7});
  std::int64_t step = 0;
  const hid_t a = H5Aopen(f, "step", H5P_DEFAULT);
  ASSERT_GE(a, 0);
  EXPECT_GE(H5Aread(a, H5T_NATIVE_INT64, &step), 0);
  H5Aclose(a);
  EXPECT_EQ(step, 42);
  double time = 0;
  const hid_t t = H5Aopen(f, "time", H5P_DEFAULT);
  ASSERT_GE(t, 0);
  EXPECT_GE(H5Aread(t, H5T_NATIVE_DOUBLE, &time), 0);
  H5Aclose(t);
  EXPECT_EQ(time, 1.25);
  EXPECT_GT(H5Aexists(f, "units"), 0);
  EXPECT_EQ(H5Lexists(f, "/_cairn", H5P_DEFAULT), 0) << "a plain file: no Cairn metadata";
  H5Fclose(f);

  // No overwrite without --force; no temporary file left behind.
  EXPECT_EQ(run_convert(args, out, err), exit_error);
  EXPECT_TRUE(contains(err.str(), "'" + args.target + "' exists; pass --force")) << err.str();
  args.force = true;
  EXPECT_EQ(run_convert(args, out, err), exit_ok) << err.str();
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string().find(".flat.h5.partial"), std::string::npos) << e.path();

  // A damaged source: nothing written, the checksum mismatch named.
  const std::string bad = save("bad");
  flip_byte(bad + "/data.h5", "/fields/temperature", 8);
  ConvertArgs damaged;
  damaged.source = bad;
  damaged.target = dir + "/bad.h5";
  damaged.to = "serial-hdf5";
  EXPECT_EQ(run_convert(damaged, out, err), exit_error);
  EXPECT_TRUE(contains(err.str(), "entry 'fields/temperature'")) << err.str();
  EXPECT_TRUE(contains(err.str(), "does not match its checksum")) << err.str();
  EXPECT_FALSE(fs::exists(dir + "/bad.h5"));
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string().find(".bad.h5.partial"), std::string::npos) << e.path();
}

}  // namespace

namespace {

TEST_F(Cli, DiffTreatsEqualNaNsAsEqualAndCountsOneSidedNaNs) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<double> first{1.0, nan, 3.0, nan, 0.0};
  std::vector<double> second{1.0, nan, 4.0, 5.0, -0.0};  // -0 equals 0
  for (auto [name, values] : {std::pair{"a", &first}, std::pair{"b", &second}}) {
    State state;
    state.add_array("v", Extents{5}, Extents{0}, Extents{5}, values->data());
    checkpointer.save(state, dir + "/" + name);
  }
  DiffArgs args;
  args.first = dir + "/a";
  args.second = dir + "/b";
  ASSERT_EQ(run_diff(args, out, err), exit_found) << err.str();
  EXPECT_TRUE(contains(out.str(),
                       "~ v: 2 of 5 elements differ, largest absolute difference 1 at (2), 1 NaN on one "
                       "side only\n"))
      << out.str();
}

}  // namespace
