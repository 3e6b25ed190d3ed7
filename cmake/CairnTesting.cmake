# cairn_add_mpi_test(<name> TARGET <exe> RANKS <n>... [LABELS <l>...] [TIMEOUT <s>] [ARGS <a>...]
#                    [ENVIRONMENT <VAR=value>...])
# Registers one ctest test per rank count, "<name>.np<n>", each run under mpiexec with a timeout so
# that a hung collective fails the test instead of stalling the suite.
set(CAIRN_MPIEXEC_PREFLAGS "" CACHE STRING "Extra flags for mpiexec in tests")
set(_cairn_mpi_flags ${MPIEXEC_PREFLAGS})
execute_process(COMMAND ${MPIEXEC_EXECUTABLE} --version OUTPUT_VARIABLE _mpiexec_version ERROR_QUIET)
if(_mpiexec_version MATCHES "Open MPI|OpenRTE")
  # More ranks than cores is normal in tests.
  list(APPEND _cairn_mpi_flags --oversubscribe)
endif()
list(APPEND _cairn_mpi_flags ${CAIRN_MPIEXEC_PREFLAGS})
set(CAIRN_TEST_MPI_FLAGS ${_cairn_mpi_flags})

# Environment for tests: root may run Open MPI, and ranks must not spin on shared cores.
set(CAIRN_TEST_ENVIRONMENT
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_mpi_yield_when_idle=1
  OMPI_MCA_btl_vader_single_copy_mechanism=none)

function(cairn_add_mpi_test name)
  cmake_parse_arguments(T "" "TARGET;TIMEOUT" "RANKS;LABELS;ARGS;ENVIRONMENT" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 180)
  endif()
  foreach(np IN LISTS T_RANKS)
    set(test_name ${name}.np${np})
    add_test(NAME ${test_name}
      COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${np} ${CAIRN_TEST_MPI_FLAGS}
              $<TARGET_FILE:${T_TARGET}> ${T_ARGS})
    set_tests_properties(${test_name} PROPERTIES
      TIMEOUT ${T_TIMEOUT} PROCESSORS ${np} LABELS "${T_LABELS}"
      ENVIRONMENT "${CAIRN_TEST_ENVIRONMENT};${T_ENVIRONMENT}")
  endforeach()
endfunction()
