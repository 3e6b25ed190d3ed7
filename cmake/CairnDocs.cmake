# The API reference: `cmake --build <build> --target cairn_docs` writes HTML to <build>/docs/html
# when Doxygen is installed (apt-get install doxygen). Public headers only; every function's
# comment starts by saying whether it is collective ("Collective." / "Not collective."), and
# the reference lists those in its own page too (docs/mainpage.md).
find_package(Doxygen QUIET)
if(NOT DOXYGEN_FOUND)
  message(STATUS "Doxygen not found: no cairn_docs target")
  return()
endif()
set(DOXYGEN_PROJECT_NAME "Cairn")
set(DOXYGEN_PROJECT_NUMBER ${PROJECT_VERSION})
set(DOXYGEN_PROJECT_BRIEF "Asynchronous, crash-safe distributed checkpoints for MPI codes")
set(DOXYGEN_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/docs)
set(DOXYGEN_USE_MDFILE_AS_MAINPAGE ${PROJECT_SOURCE_DIR}/docs/mainpage.md)
set(DOXYGEN_EXTRACT_ALL YES)
set(DOXYGEN_EXCLUDE_SYMBOLS "detail" "cairn::detail" "cairn::kokkos::detail")
set(DOXYGEN_JAVADOC_AUTOBRIEF YES)
set(DOXYGEN_WARN_IF_UNDOCUMENTED NO)
set(DOXYGEN_QUIET YES)
set(DOXYGEN_GENERATE_TREEVIEW YES)
set(DOXYGEN_FULL_PATH_NAMES YES)
set(DOXYGEN_STRIP_FROM_PATH ${PROJECT_SOURCE_DIR}/include)
set(DOXYGEN_STRIP_FROM_INC_PATH ${PROJECT_SOURCE_DIR}/include)
# Header-only parts are conditional on their frameworks; document them all.
set(DOXYGEN_PREDEFINED "KOKKOS_ENABLE_CUDA=1")
set(DOXYGEN_FILE_PATTERNS "*.hpp" "*.h" "*.md")
doxygen_add_docs(cairn_docs ${PROJECT_SOURCE_DIR}/include/cairn ${PROJECT_SOURCE_DIR}/docs/mainpage.md
                 COMMENT "Cairn's API reference (Doxygen) in ${CMAKE_BINARY_DIR}/docs/html")
