// Kokkos Views as state: every rank 1-8 layout round-trips through async_save, a strided interior
// of a haloed array is saved and loaded in place, a checkpoint reshards into other decompositions,
// layouts and rank counts, and the host-mirror path copies to and from the View.
#include "test_support.hpp"

#include <cairn/kokkos.hpp>

#include <gtest/gtest.h>
#include <mpi.h>
#include <Kokkos_Core.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>

namespace cairn::test {
namespace {

// Kokkos is initialized once per process, after MPI (mpi_main.cpp) and finalized before it.
class KokkosEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { Kokkos::initialize(); }
  void TearDown() override { Kokkos::finalize(); }
};
::testing::Environment* const kokkos_environment = ::testing::AddGlobalTestEnvironment(new KokkosEnvironment);

template <class T, class L, int R>
using HostView = Kokkos::View<typename kokkos::detail::dynamic_data<T, R>::type, L, Kokkos::HostSpace>;

template <class View, std::size_t... I>
View make_view_impl(const std::string& label, const Extents& shape, std::index_sequence<I...>) {
  return View(label, static_cast<std::size_t>(shape[I])...);
}

// A View of type `View` with extents `shape`, zero-filled.
template <class View>
View make_view(const std::string& label, const Extents& shape) {
  return make_view_impl<View>(label, shape,
                              std::make_index_sequence<static_cast<std::size_t>(kokkos::detail::view_rank<View>())>());
}

// Element `local` of host View `view`, whatever its layout.
template <class View>
typename View::value_type& element(const View& view, const Extents& local) {
  std::size_t at = 0;
  for (std::size_t d = 0; d < local.size(); ++d) at += static_cast<std::size_t>(local[d]) * view.stride(d);
  return view.data()[at];
}

// The slab of `global` rank `part` of `parts` holds, cut along dimension `dim` (uneven pieces).
Block slab(const Extents& global, std::size_t dim, int parts, int part) {
  Block b{Extents(global.size(), 0), global};
  const std::int64_t n = global[dim];
  const std::int64_t base = n / parts;
  const std::int64_t extra = n % parts;
  b.offset[dim] = part * base + std::min<std::int64_t>(part, extra);
  b.shape[dim] = base + (part < extra ? 1 : 0);
  return b;
}

template <class T>
T value_at(const Extents& global, const Block& block, const Extents& local, int seed) {
  return static_cast<T>(pattern(global_linear(global, block, local), seed));
}

// Sets every element of `view` (holding `block` of `global`) to the pattern for `seed`.
template <class View>
void fill(const View& view, const Extents& global, const Block& block, int seed) {
  using T = typename View::non_const_value_type;
  for_each_element(block,
                   [&](const Extents& l, std::int64_t) { element(view, l) = value_at<T>(global, block, l, seed); });
}

// The number of elements of `view` that differ from the pattern for `seed`.
template <class View>
std::int64_t mismatches(const View& view, const Extents& global, const Block& block, int seed) {
  using T = typename View::non_const_value_type;
  std::int64_t bad = 0;
  for_each_element(block, [&](const Extents& l, std::int64_t) {
    if (element(view, l) != value_at<T>(global, block, l, seed)) ++bad;
  });
  return bad;
}

MPI_Comm sub_communicator(int n) {
  MPI_Comm comm = MPI_COMM_NULL;
  MPI_Comm_split(MPI_COMM_WORLD, world_rank() < n ? 0 : MPI_UNDEFINED, world_rank(), &comm);
  return comm;
}

// Collective over the world: saves a View of type `Saved` (slabs of `global` along `save_dim`) with
// async_save, changes it while the save is in flight, then loads into a fresh View of type `Loaded`
// (slabs along `load_dim`) and checks every element on every rank.
template <class Saved, class Loaded = Saved>
void roundtrip(const Extents& global, std::size_t save_dim, std::size_t load_dim, const std::string& what) {
  TempDir dir;
  Checkpointer ck(MPI_COMM_WORLD);
  const std::string id = dir / "ckpt";
  const Block saved_block = slab(global, save_dim, world_size(), world_rank());
  Saved src = make_view<Saved>("src", saved_block.shape);
  fill(src, global, saved_block, 1);
  {
    State state;
    kokkos::add_view(state, "arrays/a", src, global, saved_block.offset);
    EXPECT_TRUE(state.mirrors().empty()) << what << ": a host View needs no mirror";
    SaveFuture future = ck.async_save(state, id);
    fill(src, global, saved_block, 2);  // the caller may change the View once async_save returns
    future.get();
  }
  const Block loaded_block = slab(global, load_dim, world_size(), world_rank());
  Loaded dst = make_view<Loaded>("dst", loaded_block.shape);
  Kokkos::deep_copy(dst, typename Loaded::non_const_value_type(-1));
  State state;
  kokkos::add_view(state, "arrays/a", dst, global, loaded_block.offset);
  ck.load(state, id);
  const std::int64_t bad = mismatches(dst, global, loaded_block, 1);
  EXPECT_EQ(bad, 0) << what << ": rank " << world_rank();
  EXPECT_TRUE(all_ranks(bad == 0)) << what;
}

TEST(KokkosViews, Rank1RoundTrips) {
  roundtrip<HostView<double, Kokkos::LayoutRight, 1>>({101}, 0, 0, "rank 1, LayoutRight, double");
  roundtrip<HostView<std::int32_t, Kokkos::LayoutLeft, 1>>({57}, 0, 0, "rank 1, LayoutLeft, int32");
}

TEST(KokkosViews, Rank2RoundTrips) {
  roundtrip<HostView<double, Kokkos::LayoutRight, 2>>({13, 11}, 0, 0, "rank 2, LayoutRight");
  roundtrip<HostView<double, Kokkos::LayoutLeft, 2>>({13, 11}, 1, 1, "rank 2, LayoutLeft");
}

TEST(KokkosViews, Rank3RoundTrips) {
  roundtrip<HostView<double, Kokkos::LayoutRight, 3>>({7, 6, 5}, 0, 0, "rank 3, LayoutRight");
  roundtrip<HostView<float, Kokkos::LayoutLeft, 3>>({7, 6, 5}, 2, 2, "rank 3, LayoutLeft, float");
}

TEST(KokkosViews, Rank8RoundTrips) {
  const Extents global{5, 2, 3, 1, 2, 2, 3, 2};
  roundtrip<HostView<double, Kokkos::LayoutRight, 8>>(global, 0, 0, "rank 8, LayoutRight");
  roundtrip<HostView<std::int64_t, Kokkos::LayoutLeft, 8>>(global, 0, 0, "rank 8, LayoutLeft, int64");
}

TEST(KokkosViews, LayoutLeftSavedLoadsIntoLayoutRight) {
  roundtrip<HostView<double, Kokkos::LayoutLeft, 2>, HostView<double, Kokkos::LayoutRight, 2>>(
      {9, 14}, 0, 1, "rank 2, saved LayoutLeft slabs of dim 0, loaded LayoutRight slabs of dim 1");
  roundtrip<HostView<double, Kokkos::LayoutRight, 3>, HostView<double, Kokkos::LayoutLeft, 3>>(
      {6, 5, 8}, 2, 0, "rank 3, saved LayoutRight slabs of dim 2, loaded LayoutLeft slabs of dim 0");
}

TEST(KokkosViews, ConstViewSaves) {
  using View = HostView<double, Kokkos::LayoutRight, 2>;
  const Extents global{8, 3};
  const Block block = slab(global, 0, world_size(), world_rank());
  TempDir dir;
  Checkpointer ck(MPI_COMM_WORLD);
  View src = make_view<View>("src", block.shape);
  fill(src, global, block, 4);
  Kokkos::View<const double**, Kokkos::LayoutRight, Kokkos::HostSpace> readonly = src;
  State save_state;
  kokkos::add_view(save_state, "c", readonly, global, block.offset);
  ck.async_save(save_state, dir / "ckpt").get();
  View dst = make_view<View>("dst", block.shape);
  State load_state;
  kokkos::add_view(load_state, "c", dst, global, block.offset);
  ck.load(load_state, dir / "ckpt");
  EXPECT_EQ(mismatches(dst, global, block, 4), 0);
}

// The interior of an array with one halo cell on every side, as a strided subview.
template <class Parent>
auto interior(const Parent& parent) {
  using range = std::pair<std::size_t, std::size_t>;
  return Kokkos::subview(parent, range(1, parent.extent(0) - 1), range(1, parent.extent(1) - 1),
                         range(1, parent.extent(2) - 1));
}

template <class Parent>
void strided_interior_roundtrip(const std::string& what) {
  const Extents global{9, 6, 7};
  const Block block = slab(global, 0, world_size(), world_rank());
  const Extents padded{block.shape[0] + 2, block.shape[1] + 2, block.shape[2] + 2};
  TempDir dir;
  Checkpointer ck(MPI_COMM_WORLD);
  Parent src = make_view<Parent>("src", padded);
  Kokkos::deep_copy(src, -5.0);
  auto src_inside = interior(src);
  static_assert(std::is_same_v<typename decltype(src_inside)::array_layout, Kokkos::LayoutStride>);
  fill(src_inside, global, block, 3);
  {
    State state;
    ArrayEntry& entry = kokkos::add_view(state, "fields/u", src_inside, global, block.offset);
    ASSERT_EQ(entry.chunks.size(), 1u);
    EXPECT_EQ(entry.chunks[0].strides.size(), 3u) << what << ": a strided interior needs chunk strides";
    EXPECT_EQ(entry.chunks[0].data, static_cast<void*>(src_inside.data())) << what << ": saved in place";
    SaveFuture future = ck.async_save(state, dir / "ckpt");
    fill(src_inside, global, block, 8);
    future.get();
  }
  Parent dst = make_view<Parent>("dst", padded);
  Kokkos::deep_copy(dst, -9.0);
  auto dst_inside = interior(dst);
  State state;
  kokkos::add_view(state, "fields/u", dst_inside, global, block.offset);
  ck.load(state, dir / "ckpt");
  EXPECT_EQ(mismatches(dst_inside, global, block, 3), 0) << what << ": rank " << world_rank();
  // The halo cells around the interior are not touched by the load.
  std::int64_t halo_changed = 0;
  for_each_element(Block{Extents(3, 0), padded}, [&](const Extents& l, std::int64_t) {
    bool halo = false;
    for (std::size_t d = 0; d < 3; ++d) halo = halo || l[d] == 0 || l[d] == padded[d] - 1;
    if (halo && element(dst, l) != -9.0) ++halo_changed;
  });
  EXPECT_EQ(halo_changed, 0) << what << ": the load wrote into halo cells";
}

TEST(KokkosViews, StridedInteriorOfHaloedArray) {
  strided_interior_roundtrip<HostView<double, Kokkos::LayoutRight, 3>>("LayoutRight parent");
  strided_interior_roundtrip<HostView<double, Kokkos::LayoutLeft, 3>>("LayoutLeft parent");
}

// Saved on every rank with slabs of dimension 0; loaded on 1 .. world ranks (a sub-communicator
// with its own Checkpointer) with slabs of dimension 1, into LayoutLeft Views.
TEST(KokkosViews, ReshardsOntoFewerRanks) {
  using Saved = HostView<double, Kokkos::LayoutRight, 3>;
  using Loaded = HostView<double, Kokkos::LayoutLeft, 3>;
  const Extents global{11, 8, 5};
  TempDir dir;
  const std::string id = dir / "ckpt";
  {
    const Block block = slab(global, 0, world_size(), world_rank());
    Saved src = make_view<Saved>("src", block.shape);
    fill(src, global, block, 6);
    Checkpointer ck(MPI_COMM_WORLD);
    State state;
    kokkos::add_view(state, "u", src, global, block.offset);
    ck.async_save(state, id).get();
  }
  for (int m = 1; m <= world_size(); ++m) {
    MPI_Comm comm = sub_communicator(m);
    if (comm == MPI_COMM_NULL) continue;
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    const Block block = slab(global, 1, m, rank);
    Loaded dst = make_view<Loaded>("dst", block.shape);
    {
      Checkpointer ck(comm);
      State state;
      kokkos::add_view(state, "u", dst, global, block.offset);
      ck.load(state, id);
    }
    EXPECT_EQ(mismatches(dst, global, block, 6), 0)
        << "saved on " << world_size() << " ranks, loaded on " << m << ", rank " << rank;
    MPI_Comm_free(&comm);
  }
}

TEST(KokkosViews, ReplicatedView) {
  using View = HostView<double, Kokkos::LayoutLeft, 2>;
  const Extents shape{6, 4};
  const Block whole{Extents{0, 0}, shape};
  TempDir dir;
  Checkpointer ck(MPI_COMM_WORLD);
  View src = make_view<View>("src", shape);
  fill(src, shape, whole, 5);
  State save_state;
  ArrayEntry& entry = kokkos::add_replicated_view(save_state, "table", src);
  EXPECT_EQ(save_state.find("table")->distribution, Distribution::Replicated);
  EXPECT_EQ(entry.global_shape, shape);
  ck.async_save(save_state, dir / "ckpt").get();
  View dst = make_view<View>("dst", shape);
  State load_state;
  kokkos::add_replicated_view(load_state, "table", dst);
  ck.load(load_state, dir / "ckpt");
  EXPECT_EQ(mismatches(dst, shape, whole, 5), 0);
}

TEST(KokkosViews, WholeViewOnOneRank) {
  using View = HostView<std::int32_t, Kokkos::LayoutRight, 2>;
  const Extents shape{5, 3};
  const Block whole{Extents{0, 0}, shape};
  TempDir dir;
  Checkpointer ck(MPI_COMM_WORLD);
  View src = make_view<View>("src", shape);
  fill(src, shape, whole, 7);
  const std::string name = "per_rank/r" + std::to_string(world_rank());
  State save_state;
  ArrayEntry& entry = kokkos::add_view(save_state, name, src);
  EXPECT_EQ(entry.global_shape, shape);
  EXPECT_EQ(entry.chunks.at(0).offset, (Extents{0, 0}));
  // Every rank names its own entry; the other ranks' entries have no chunks here.
  for (int r = 0; r < world_size(); ++r)
    if (r != world_rank()) save_state.add_array("per_rank/r" + std::to_string(r), DType::Int32, shape);
  ck.async_save(save_state, dir / "ckpt").get();
  View dst = make_view<View>("dst", shape);
  State load_state;
  kokkos::add_view(load_state, name, dst);
  for (int r = 0; r < world_size(); ++r)
    if (r != world_rank()) load_state.add_array("per_rank/r" + std::to_string(r), DType::Int32, shape);
  ck.load(load_state, dir / "ckpt");
  EXPECT_EQ(mismatches(dst, shape, whole, 7), 0);
}

// The host-mirror path, forced on a host View: the checkpoint holds what the View held when
// async_save staged (copy_to_host ran), and a load writes it back into the View (copy_from_host).
template <class Make>
void mirror_roundtrip(const Extents& global, Make&& make_inner, const std::string& what) {
  const Block block = slab(global, 0, world_size(), world_rank());
  TempDir dir;
  Checkpointer ck(MPI_COMM_WORLD);
  auto [owner, view] = make_inner(block.shape);
  fill(view, global, block, 1);
  State state;
  ArrayEntry& entry = kokkos::detail::add_view_through_mirror(state, "m", view, global, block.offset);
  ASSERT_EQ(state.mirrors().size(), 1u) << what;
  ASSERT_EQ(entry.chunks.size(), 1u);
  EXPECT_NE(entry.chunks[0].data, static_cast<const void*>(view.data())) << what << ": the chunk must be the mirror";
  EXPECT_TRUE(entry.chunks[0].strides.empty()) << what << ": the mirror is contiguous";
  SaveFuture future = ck.async_save(state, dir / "ckpt");
  fill(view, global, block, 2);
  future.get();
  EXPECT_EQ(mismatches(view, global, block, 2), 0) << what << ": the save changed the View";
  ck.load(state, dir / "ckpt");
  EXPECT_EQ(mismatches(view, global, block, 1), 0) << what << ": rank " << world_rank();

  // The same checkpoint read in place, without a mirror, holds the values staged at save.
  using Plain = HostView<double, Kokkos::LayoutRight, 3>;
  Plain plain = make_view<Plain>("plain", block.shape);
  State direct;
  kokkos::add_view(direct, "m", plain, global, block.offset);
  ck.load(direct, dir / "ckpt");
  EXPECT_EQ(mismatches(plain, global, block, 1), 0) << what;
  (void)owner;
}

TEST(KokkosViews, MirrorPathCopiesToAndFromHost) {
  using Right = HostView<double, Kokkos::LayoutRight, 3>;
  using Left = HostView<double, Kokkos::LayoutLeft, 3>;
  const Extents global{10, 4, 3};
  mirror_roundtrip(
      global,
      [](const Extents& shape) {
        Right v = make_view<Right>("contiguous", shape);
        return std::make_pair(v, v);
      },
      "contiguous LayoutRight");
  mirror_roundtrip(
      global,
      [](const Extents& shape) {
        Left v = make_view<Left>("contiguous", shape);
        return std::make_pair(v, v);
      },
      "contiguous LayoutLeft");
  mirror_roundtrip(
      global,
      [](const Extents& shape) {
        Right parent = make_view<Right>("haloed", Extents{shape[0] + 2, shape[1] + 2, shape[2] + 2});
        return std::make_pair(parent, interior(parent));
      },
      "strided interior (through a contiguous temporary)");
}

TEST(KokkosViews, BadBlocksNameTheEntry) {
  using View = HostView<double, Kokkos::LayoutRight, 2>;
  View v = make_view<View>("v", Extents{4, 3});
  State state;
  expect_error<UsageError>([&] { kokkos::add_view(state, "bad/shape", v, Extents{4}, Extents{0, 0}); }, "'bad/shape'");
  expect_error<UsageError>(
      [&] {
        kokkos::add_view(state, "bad/offset", v, Extents{4, 3}, Extents{0});
      },
      "'bad/offset'");
  expect_error<UsageError>(
      [&] {
        kokkos::add_view(state, "bad/outside", v, Extents{8, 3}, Extents{5, 0});
      },
      "'bad/outside'");
  expect_error<UsageError>(
      [&] {
        kokkos::add_view(state, "bad/negative", v, Extents{8, 3}, Extents{-1, 0});
      },
      "'bad/negative'");
  expect_error<UsageError>(
      [&] {
        kokkos::detail::add_view_through_mirror(state, "bad/mirror", v, Extents{4, 2}, Extents{0, 0});
      },
      "'bad/mirror'");
  EXPECT_TRUE(state.empty()) << "a rejected View must not leave an entry behind";
  EXPECT_TRUE(state.mirrors().empty());
}

}  // namespace
}  // namespace cairn::test
