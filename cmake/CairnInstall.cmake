# Installation and export: headers, libraries, the CLI, Fortran modules, the CMake package
# (find_package(cairn) -> cairn::cairn, cairn::kokkos, cairn::fortran) and cairn.pc.
# Included once, at the end of the top-level CMakeLists.txt, when every target exists.
get_target_property(_cairn_type cairn TYPE)
if(_cairn_type STREQUAL "STATIC_LIBRARY")
  set(CAIRN_STATIC ON)
else()
  set(CAIRN_STATIC OFF)
  # The public headers carry no export annotations, so a shared libcairn exports its symbols
  # the default way; the hidden preset (src/CMakeLists.txt) suits only the static library,
  # whose objects the application links directly. Set here, before the install switch, so that
  # every shared build gets it.
  set_target_properties(cairn PROPERTIES CXX_VISIBILITY_PRESET default VISIBILITY_INLINES_HIDDEN OFF)
endif()

option(CAIRN_INSTALL "Generate Cairn's install rules (also when Cairn is a subproject)" ON)
if(NOT CAIRN_INSTALL)
  return()
endif()
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(CAIRN_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/cairn" CACHE STRING
    "Where the CMake package files go, relative to the install prefix")
mark_as_advanced(CAIRN_INSTALL_CMAKEDIR)

# ---- Headers: the public API only (kokkos.hpp when the adapter is built).
set(_cairn_header_excludes)
if(NOT TARGET cairn_kokkos)
  list(APPEND _cairn_header_excludes PATTERN "kokkos.hpp" EXCLUDE)
endif()
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/cairn
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        COMPONENT cairn_development
        FILES_MATCHING PATTERN "*.hpp" PATTERN "*.h" ${_cairn_header_excludes})

# ---- The library. Its private dependencies (HDF5, xxHash) reach the export only as
# $<LINK_ONLY:cairn::detail_*> for a static build; cairnConfig.cmake re-creates those targets.
install(TARGETS cairn EXPORT cairnTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT cairn_development
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT cairn_runtime
                NAMELINK_COMPONENT cairn_development
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT cairn_runtime)
install(EXPORT cairnTargets NAMESPACE cairn:: DESTINATION ${CAIRN_INSTALL_CMAKEDIR}
        FILE cairnTargets.cmake COMPONENT cairn_development)

# ---- The Kokkos adapter: header-only, its own export file so that only users of the
# kokkos component need Kokkos. cairn_kokkos_core is the one-name wrapper over Kokkos' targets.
set(CAIRN_HAVE_KOKKOS OFF)
if(TARGET cairn_kokkos)
  set(CAIRN_HAVE_KOKKOS ON)
  set_target_properties(cairn_kokkos PROPERTIES EXPORT_NAME kokkos)
  set_target_properties(cairn_kokkos_core PROPERTIES EXPORT_NAME detail_kokkos_core)
  install(TARGETS cairn_kokkos cairn_kokkos_core EXPORT cairnKokkosTargets)
  install(EXPORT cairnKokkosTargets NAMESPACE cairn:: DESTINATION ${CAIRN_INSTALL_CMAKEDIR}
          FILE cairnKokkosTargets.cmake COMPONENT cairn_development)
  # Debian's Kokkos needs the same mending in the consumer as in this build.
  install(FILES ${PROJECT_SOURCE_DIR}/cmake/CairnMendKokkos.cmake
          DESTINATION ${CAIRN_INSTALL_CMAKEDIR} COMPONENT cairn_development)
endif()

# ---- Fortran: the module library and its .mod files (compiler-specific, so under include/cairn).
set(CAIRN_HAVE_FORTRAN OFF)
set(CAIRN_FORTRAN_NEEDS_MPI OFF)
if(TARGET cairn_fortran)
  set(CAIRN_HAVE_FORTRAN ON)
  set(_cairn_moddir ${CMAKE_INSTALL_INCLUDEDIR}/cairn/fortran)
  set_target_properties(cairn_fortran PROPERTIES EXPORT_NAME fortran)
  target_include_directories(cairn_fortran INTERFACE $<INSTALL_INTERFACE:${_cairn_moddir}>)
  get_target_property(_cairn_fortran_links cairn_fortran LINK_LIBRARIES)
  if(_cairn_fortran_links MATCHES "MPI::MPI_Fortran")
    set(CAIRN_FORTRAN_NEEDS_MPI ON)
  endif()
  install(TARGETS cairn_fortran EXPORT cairnFortranTargets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT cairn_development
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT cairn_runtime
          RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT cairn_runtime)
  install(EXPORT cairnFortranTargets NAMESPACE cairn:: DESTINATION ${CAIRN_INSTALL_CMAKEDIR}
          FILE cairnFortranTargets.cmake COMPONENT cairn_development)
  install(DIRECTORY ${CMAKE_BINARY_DIR}/fortran_modules/ DESTINATION ${_cairn_moddir}
          COMPONENT cairn_development FILES_MATCHING PATTERN "*.mod" PATTERN "*.smod")
endif()

# ---- The command-line tool.
if(TARGET cairn_cli)
  install(TARGETS cairn_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT cairn_runtime)
endif()

# ---- CMake package: cairnConfig.cmake and its version file.
# Until 1.0, minor versions may break the API: 0.1 satisfies requests for 0.1.x only.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(_cairn_compat SameMinorVersion)
else()
  set(_cairn_compat SameMajorVersion)
endif()
set(CAIRN_HAVE_CUDA ${CAIRN_ENABLE_CUDA})
set(CAIRN_HAVE_NCCL ${CAIRN_ENABLE_NCCL})
# Hints for re-finding xxHash where this build found it.
get_filename_component(CAIRN_XXHASH_HINT "${XXHASH_INCLUDE_DIR}" DIRECTORY)
get_filename_component(CAIRN_ZSTD_HINT "${ZSTD_INCLUDE_DIR}" DIRECTORY)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/cairnConfig.cmake.in
  ${PROJECT_BINARY_DIR}/cairnConfig.cmake
  INSTALL_DESTINATION ${CAIRN_INSTALL_CMAKEDIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/cairnConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY ${_cairn_compat})
install(FILES ${PROJECT_BINARY_DIR}/cairnConfig.cmake ${PROJECT_BINARY_DIR}/cairnConfigVersion.cmake
        DESTINATION ${CAIRN_INSTALL_CMAKEDIR} COMPONENT cairn_development)

# ---- pkg-config: cairn.pc, relocatable (paths relative to ${pcfiledir}).
# Dependencies are named by their own .pc modules where this system has ones that match what
# CMake found (same include directory); otherwise by the libraries CMake found.
find_package(PkgConfig QUIET)
# _cairn_pc_module(<out> <include-dir> <candidate>...): the first candidate module whose
# --cflags name <include-dir> (or that add no -I when <include-dir> is a system directory).
function(_cairn_pc_module out include_dir)
  set(${out} "" PARENT_SCOPE)
  if(NOT PKG_CONFIG_EXECUTABLE)
    return()
  endif()
  foreach(_mod IN LISTS ARGN)
    execute_process(COMMAND ${PKG_CONFIG_EXECUTABLE} --cflags-only-I ${_mod}
                    RESULT_VARIABLE _rc OUTPUT_VARIABLE _flags ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(NOT _rc EQUAL 0)
      continue()
    endif()
    if(_flags MATCHES "-I${include_dir}( |$)"
       OR (_flags STREQUAL "" AND include_dir MATCHES "^/usr(/local)?/include/?$"))
      set(${out} ${_mod} PARENT_SCOPE)
      return()
    endif()
  endforeach()
endfunction()

# Turns a list of libraries (paths, -l flags, targets' files) into linker flags.
function(_cairn_pc_libs out)
  set(_flags "")
  foreach(_lib IN LISTS ARGN)
    if(_lib MATCHES "^-")
      list(APPEND _flags "${_lib}")
    elseif(IS_ABSOLUTE "${_lib}")
      list(APPEND _flags "${_lib}")
    elseif(_lib)
      list(APPEND _flags "-l${_lib}")
    endif()
  endforeach()
  list(JOIN _flags " " _flags)
  set(${out} "${_flags}" PARENT_SCOPE)
endfunction()

list(GET MPI_C_INCLUDE_DIRS 0 _cairn_mpi_inc)
list(GET HDF5_C_INCLUDE_DIRS 0 _cairn_h5_inc)
if(NOT _cairn_h5_inc)
  list(GET HDF5_INCLUDE_DIRS 0 _cairn_h5_inc)
endif()
_cairn_pc_module(_cairn_pc_mpi "${_cairn_mpi_inc}" ompi-c mpich mpi-c mpi)
_cairn_pc_module(_cairn_pc_hdf5 "${_cairn_h5_inc}" hdf5-openmpi hdf5-mpich hdf5-mpi hdf5)
_cairn_pc_module(_cairn_pc_xxhash "${XXHASH_INCLUDE_DIR}" libxxhash)

set(CAIRN_PC_REQUIRES "")
set(CAIRN_PC_REQUIRES_PRIVATE "")
set(CAIRN_PC_CFLAGS "-DOMPI_SKIP_MPICXX=1 -DMPICH_SKIP_MPICXX=1")
set(CAIRN_PC_LIBS_PRIVATE "")
# MPI: public (the headers include <mpi.h>).
if(_cairn_pc_mpi)
  set(CAIRN_PC_REQUIRES "${_cairn_pc_mpi}")
else()
  foreach(_d IN LISTS MPI_C_INCLUDE_DIRS)
    string(APPEND CAIRN_PC_CFLAGS " -I${_d}")
  endforeach()
  _cairn_pc_libs(_l ${MPI_C_LIBRARIES})
  set(CAIRN_PC_LIBS_MPI "${_l}")
endif()
# HDF5, xxHash, threads, CUDA: private; needed on the link line of a static libcairn only.
set(_cairn_private_libs)
if(_cairn_pc_hdf5)
  list(APPEND CAIRN_PC_REQUIRES_PRIVATE ${_cairn_pc_hdf5})
else()
  list(APPEND _cairn_private_libs ${HDF5_C_LIBRARIES})
endif()
if(_cairn_pc_xxhash)
  list(APPEND CAIRN_PC_REQUIRES_PRIVATE ${_cairn_pc_xxhash})
else()
  list(APPEND _cairn_private_libs ${XXHASH_LIBRARY})
endif()
list(APPEND _cairn_private_libs ${ZLIB_LIBRARIES})
if(CAIRN_ENABLE_ZSTD)
  list(APPEND _cairn_private_libs ${ZSTD_LIBRARY})
endif()
if(CAIRN_ENABLE_CUDA)
  list(APPEND _cairn_private_libs ${CUDA_cudart_LIBRARY})
endif()
if(CAIRN_ENABLE_NCCL)
  list(APPEND _cairn_private_libs ${NCCL_LIBRARY})
endif()
list(APPEND _cairn_private_libs ${CMAKE_THREAD_LIBS_INIT})
_cairn_pc_libs(CAIRN_PC_LIBS_PRIVATE ${_cairn_private_libs})
list(JOIN CAIRN_PC_REQUIRES_PRIVATE " " CAIRN_PC_REQUIRES_PRIVATE)
if(NOT CAIRN_PC_LIBS_MPI)
  set(CAIRN_PC_LIBS_MPI "")
endif()

if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  message(WARNING "cairn.pc: CMAKE_INSTALL_LIBDIR is absolute; the .pc file will not be relocatable")
  set(CAIRN_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  set(CAIRN_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
else()
  file(RELATIVE_PATH _up "/root/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/root")
  string(REGEX REPLACE "/$" "" _up "${_up}")
  set(CAIRN_PC_PREFIX "\${pcfiledir}/${_up}")
  set(CAIRN_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(CAIRN_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(CAIRN_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file(${PROJECT_SOURCE_DIR}/cmake/cairn.pc.in ${PROJECT_BINARY_DIR}/cairn.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/cairn.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig
        COMPONENT cairn_development)
