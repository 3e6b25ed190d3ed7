# cairn::kokkos: the header-only Kokkos adapter (include/cairn/kokkos.hpp). Link it to use
# cairn::kokkos::add_view; it brings in Cairn and the Kokkos core library.
add_library(cairn_kokkos INTERFACE)
add_library(cairn::kokkos ALIAS cairn_kokkos)
target_link_libraries(cairn_kokkos INTERFACE cairn cairn_kokkos_core)
