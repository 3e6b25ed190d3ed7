// Kokkos Views as Cairn state: add a View (host or device, any of Kokkos' standard layouts, rank 1
// to 8) to a State as a sharded or replicated array. Header-only; link cairn::kokkos.
//
//   Kokkos::View<double***> u("u", nx, ny, nz);
//   cairn::State state;
//   cairn::kokkos::add_view(state, "fields/u", u, {NX, NY, NZ}, {x0, y0, z0});
//   checkpointer.async_save(state, id);
//
// Host-accessible Views are read and written in place (a strided View, such as the interior of an
// array with halo cells, through chunk strides). Contiguous Views in CUDA device memory, when Cairn
// has CUDA, are device chunks: staged into page-locked memory on Cairn's own stream after a fence
// of the View's execution space, and loaded straight back into the View. Other Views the host
// cannot read (HIP, SYCL, strided device Views, or Cairn without CUDA) go through a host mirror:
// the save copies the View into it with Kokkos::deep_copy on an instance of the View's execution
// space while it stages, and a load copies it back.
#pragma once

#include <cairn/dtype.hpp>
#include <cairn/error.hpp>
#include <cairn/state.hpp>

#include <Kokkos_Core.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

namespace cairn::kokkos {

namespace detail {

/// True for the element types Cairn can store (those with a cairn::dtype_of specialization).
template <class T>
struct is_supported_element
    : std::integral_constant<
          bool, std::is_same_v<T, std::int8_t> || std::is_same_v<T, std::int16_t> || std::is_same_v<T, std::int32_t> ||
                    std::is_same_v<T, std::int64_t> || std::is_same_v<T, std::uint8_t> ||
                    std::is_same_v<T, std::uint16_t> || std::is_same_v<T, std::uint32_t> ||
                    std::is_same_v<T, std::uint64_t> || std::is_same_v<T, float> || std::is_same_v<T, double> ||
                    std::is_same_v<T, bool> || std::is_same_v<T, float16_t> || std::is_same_v<T, bfloat16_t>> {};

/// The rank of a View type as an int (an integral_constant in Kokkos 4, an enum in Kokkos 3).
template <class View>
constexpr int view_rank() noexcept {
  return static_cast<int>(View::rank);
}

/// `T` followed by `R` pointer stars: the data type of a View of rank R with runtime extents only.
template <class T, int R>
struct dynamic_data {
  using type = typename dynamic_data<T, R - 1>::type*;
};
template <class T>
struct dynamic_data<T, 0> {
  using type = T;
};

/// Compile-time checks shared by every entry point.
template <class View>
constexpr void check_view_type() {
  static_assert(Kokkos::is_view<View>::value, "cairn::kokkos: the argument must be a Kokkos::View");
  static_assert(view_rank<View>() >= 1, "cairn::kokkos: rank-0 Views are not supported; use State::add_scalar");
  static_assert(view_rank<View>() <= 8, "cairn::kokkos: Views of rank above 8 are not supported");
  using layout = typename View::array_layout;
  static_assert(std::is_same_v<layout, Kokkos::LayoutLeft> || std::is_same_v<layout, Kokkos::LayoutRight> ||
                    std::is_same_v<layout, Kokkos::LayoutStride>,
                "cairn::kokkos: the View's layout must be LayoutLeft, LayoutRight or LayoutStride");
  static_assert(is_supported_element<typename View::non_const_value_type>::value,
                "cairn::kokkos: the View's element type has no cairn::DType (int8..int64, uint8..uint64, "
                "float, double, bool, cairn::float16_t, cairn::bfloat16_t)");
}

/// The extents of `view` in logical index order.
template <class View>
Extents view_extents(const View& view) {
  Extents extents(static_cast<std::size_t>(view_rank<View>()));
  for (int d = 0; d < view_rank<View>(); ++d)
    extents[static_cast<std::size_t>(d)] = static_cast<std::int64_t>(view.extent(static_cast<std::size_t>(d)));
  return extents;
}

/// Throws UsageError naming `name` when the block [offset, offset + extents) does not lie inside
/// `global_shape`, or when the sizes of the vectors differ from the View's rank.
inline void check_block(const std::string& name, const Extents& extents, const Extents& global_shape,
                        const Extents& offset) {
  const std::string rank = std::to_string(extents.size());
  if (global_shape.size() != extents.size())
    throw UsageError("cairn::kokkos::add_view: entry '" + name + "': the global shape has " +
                     std::to_string(global_shape.size()) + " dimensions but the View has rank " + rank);
  if (offset.size() != extents.size())
    throw UsageError("cairn::kokkos::add_view: entry '" + name + "': the offset has " + std::to_string(offset.size()) +
                     " dimensions but the View has rank " + rank);
  for (std::size_t d = 0; d < extents.size(); ++d) {
    if (offset[d] < 0 || global_shape[d] < 0 || offset[d] + extents[d] > global_shape[d])
      throw UsageError("cairn::kokkos::add_view: entry '" + name + "': along dimension " + std::to_string(d) +
                       " the View covers [" + std::to_string(offset[d]) + ", " +
                       std::to_string(offset[d] + extents[d]) + "), outside the global extent " +
                       std::to_string(global_shape[d]));
  }
}

/// The chunk that describes host-accessible `view` in place: its data pointer, Layout::ColumnMajor
/// for LayoutLeft and Layout::RowMajor otherwise, and element strides when it is not contiguous.
template <class View>
Chunk chunk_in_place(const View& view, Extents offset) {
  Chunk chunk;
  chunk.shape = view_extents(view);
  chunk.offset = std::move(offset);
  chunk.data = const_cast<void*>(static_cast<const void*>(view.data()));
  chunk.memory = MemorySpace::Host;  // replaced by the caller for a device View
  using layout = typename View::array_layout;
  chunk.layout = std::is_same_v<layout, Kokkos::LayoutLeft> ? Layout::ColumnMajor : Layout::RowMajor;
  const bool contiguous = !std::is_same_v<layout, Kokkos::LayoutStride> && view.span_is_contiguous();
  if (!contiguous) {
    const bool empty = view.size() == 0;
    chunk.strides.resize(chunk.shape.size());
    for (std::size_t d = 0; d < chunk.shape.size(); ++d) {
      auto stride = static_cast<std::int64_t>(view.stride(d));
      // A stride only matters along a dimension with more than one element of a non-empty View.
      if (stride <= 0 && (empty || chunk.shape[d] <= 1)) stride = 1;
      chunk.strides[d] = stride;
    }
  }
  return chunk;
}

/// Allocates a View of data type `Data`, layout `Layout_` in `Space` with the extents of `like`,
/// uninitialized.
template <class Data, class Layout_, class Space, class Like, std::size_t... I>
Kokkos::View<Data, Layout_, Space> allocate_like(const std::string& label, const Like& like,
                                                 std::index_sequence<I...>) {
  return Kokkos::View<Data, Layout_, Space>(Kokkos::view_alloc(Kokkos::WithoutInitializing, label), like.extent(I)...);
}

/// The host copy of a View the library reads through a mirror. The mirror is a contiguous host
/// View in the View's layout (row-major for LayoutStride); a non-contiguous View is gathered into a
/// contiguous temporary in its own memory space first, so the copy across memory spaces is one
/// contiguous transfer.
template <class View>
class ViewMirror final : public HostMirror {
 public:
  using value_type = typename View::non_const_value_type;
  using data_type = typename dynamic_data<value_type, view_rank<View>()>::type;
  using layout = std::conditional_t<std::is_same_v<typename View::array_layout, Kokkos::LayoutLeft>, Kokkos::LayoutLeft,
                                    Kokkos::LayoutRight>;
  using memory_space = typename View::memory_space;
  using execution_space = typename View::execution_space;
  using host_view = Kokkos::View<data_type, layout, Kokkos::HostSpace>;
  using device_view = Kokkos::View<data_type, layout, memory_space>;

  // The default instance of the View's execution space: the copy runs after the kernels the caller
  // launched on it, so it sees their results without a global fence.
  ViewMirror(const View& view, const std::string& name) : m_view(view), m_exec() {
    constexpr auto ranks = std::make_index_sequence<static_cast<std::size_t>(view_rank<View>())>();
    m_host = allocate_like<data_type, layout, Kokkos::HostSpace>("cairn mirror " + name, view, ranks);
    m_contiguous = !std::is_same_v<typename View::array_layout, Kokkos::LayoutStride> && view.span_is_contiguous();
    if (!m_contiguous) m_gather = allocate_like<data_type, layout, memory_space>("cairn gather " + name, view, ranks);
  }

  /// The host copy the chunk points at.
  const host_view& host() const noexcept { return m_host; }

  void copy_to_host() override {
    if (m_contiguous) {
      Kokkos::deep_copy(m_exec, m_host, m_view);
    } else {
      Kokkos::deep_copy(m_exec, m_gather, m_view);
      Kokkos::deep_copy(m_exec, m_host, m_gather);
    }
    m_exec.fence();
  }

  void copy_from_host() override {
    if constexpr (std::is_const_v<typename View::value_type>) {
      throw UsageError("cairn::kokkos: cannot load into a View of const elements ('" + std::string(m_view.label()) +
                       "')");
    } else {
      if (m_contiguous) {
        Kokkos::deep_copy(m_exec, m_view, m_host);
      } else {
        Kokkos::deep_copy(m_exec, m_gather, m_host);
        Kokkos::deep_copy(m_exec, m_view, m_gather);
      }
      m_exec.fence();
    }
  }

 private:
  View m_view;
  execution_space m_exec;
  host_view m_host;
  device_view m_gather;
  bool m_contiguous = true;
};

/// Orders Cairn's copies of a device View after the kernels launched on its execution space: a
/// "mirror" whose host copy is Cairn's own staging, so both directions only fence.
template <class View>
class ExecutionFence final : public HostMirror {
 public:
  ExecutionFence() : m_exec() {}
  void copy_to_host() override { m_exec.fence(); }
  void copy_from_host() override { m_exec.fence(); }

 private:
  typename View::execution_space m_exec;
};

/// Not collective. Adds `view` as an array entry through a host mirror, whatever its memory space:
/// allocates a contiguous host copy (and, for a non-contiguous View, a contiguous temporary in the
/// View's memory space), points the chunk at the host copy and registers a cairn::HostMirror with
/// `state.add_mirror()`, so that a save copies the View to the host while it stages and a load
/// copies the host copy back into the View. add_view() uses this for Views the host cannot read;
/// call it directly to force that path. `distribution` is Sharded or Replicated. Throws UsageError
/// naming the entry for a bad global shape or offset, and what Kokkos throws when the allocation
/// fails.
template <class View>
ArrayEntry& add_view_through_mirror(State& state, std::string name, const View& view, Extents global_shape,
                                    Extents offset, Distribution distribution = Distribution::Sharded) {
  check_view_type<View>();
  check_block(name, view_extents(view), global_shape, offset);
  auto mirror = std::make_shared<ViewMirror<View>>(view, name);
  Chunk chunk = chunk_in_place(mirror->host(), std::move(offset));
  ArrayEntry& array = state.add_array(std::move(name), dtype_of<typename View::non_const_value_type>(),
                                      std::move(global_shape), distribution);
  state.add_mirror(std::move(mirror));
  array.chunks.push_back(std::move(chunk));
  return array;
}

/// The shared body of add_view() and add_replicated_view().
template <class View>
ArrayEntry& add_view_as(State& state, std::string name, const View& view, Extents global_shape, Extents offset,
                        Distribution distribution) {
  check_view_type<View>();
  if constexpr (Kokkos::SpaceAccessibility<Kokkos::HostSpace, typename View::memory_space>::accessible) {
    check_block(name, view_extents(view), global_shape, offset);
    Chunk chunk = chunk_in_place(view, std::move(offset));
    ArrayEntry& array = state.add_array(std::move(name), dtype_of<typename View::non_const_value_type>(),
                                        std::move(global_shape), distribution);
    array.chunks.push_back(std::move(chunk));
    return array;
  } else {
    const bool contiguous =
        !std::is_same_v<typename View::array_layout, Kokkos::LayoutStride> && view.span_is_contiguous();
    // Const Views take the mirror path, which refuses to load into them.
    if (!std::is_const_v<typename View::value_type> && contiguous && view.size() > 0 &&
        memory_space_of(view.data()) == MemorySpace::CudaDevice) {
      check_block(name, view_extents(view), global_shape, offset);
      Chunk chunk = chunk_in_place(view, std::move(offset));
      chunk.memory = MemorySpace::CudaDevice;
      ArrayEntry& array = state.add_array(std::move(name), dtype_of<typename View::non_const_value_type>(),
                                          std::move(global_shape), distribution);
      state.add_mirror(std::make_shared<ExecutionFence<View>>());
      array.chunks.push_back(std::move(chunk));
      return array;
    }
    return add_view_through_mirror(state, std::move(name), view, std::move(global_shape), std::move(offset),
                                   distribution);
  }
}

}  // namespace detail

/// Not collective. Adds `view` to `state` as entry `name`: one chunk of a sharded global array of
/// shape `global_shape`, holding global elements [offset, offset + view extents) (logical index
/// order, whatever the layout). Call it on every rank with the same name and global shape; a rank
/// may add further chunks to the returned entry.
///
/// The View has rank 1 to 8, an element type with a cairn::DType, and LayoutLeft, LayoutRight or
/// LayoutStride (a subview such as the interior of an array with halo cells). A View the host can
/// read is read and written in place: fence the kernels that write it (Kokkos::fence()) before
/// saving, and keep it alive, and unchanged under StagingMode::ZeroCopy, until the save completes.
/// A contiguous View in CUDA device memory (Cairn built with CUDA) is a device chunk: the save
/// fences the default instance of its execution space, then copies it into page-locked staging
/// memory on Cairn's own stream; a load copies straight into it. Any other View in device memory
/// is copied into a host mirror while the save stages (Kokkos::deep_copy on the default instance
/// of its execution space, after the kernels already launched there, on the caller's thread), and
/// back after a load. A View of const elements can be saved, not loaded.
///
/// Throws UsageError naming the entry when `global_shape` or `offset` does not have one value per
/// dimension of the View or the block lies outside the global shape; what Kokkos throws when a
/// mirror cannot be allocated.
template <class View>
ArrayEntry& add_view(State& state, std::string name, const View& view, Extents global_shape, Extents offset) {
  return detail::add_view_as(state, std::move(name), view, std::move(global_shape), std::move(offset),
                             Distribution::Sharded);
}

/// Not collective. Adds `view` as the whole of a sharded array on this rank: offset 0, global
/// shape the View's extents. For an array held by one rank only (each rank's own entry must then
/// have its own name), or a single-rank run. Otherwise as the five-argument add_view().
template <class View>
ArrayEntry& add_view(State& state, std::string name, const View& view) {
  Extents shape = detail::view_extents(view);
  Extents offset(shape.size(), 0);
  return add_view(state, std::move(name), view, std::move(shape), std::move(offset));
}

/// Not collective. Adds `view` as a replicated array (cairn::Distribution::Replicated): every rank
/// holds the whole array, identically, and it is written once; a load fills it on every rank. The
/// global shape is the View's extents. Otherwise as add_view(); throws what it throws.
template <class View>
ArrayEntry& add_replicated_view(State& state, std::string name, const View& view) {
  Extents shape = detail::view_extents(view);
  Extents offset(shape.size(), 0);
  return detail::add_view_as(state, std::move(name), view, std::move(shape), std::move(offset),
                             Distribution::Replicated);
}

}  // namespace cairn::kokkos
