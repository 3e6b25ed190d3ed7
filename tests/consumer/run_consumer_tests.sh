#!/usr/bin/env bash
# Consumes an installed Cairn three ways and runs each result under MPI at 2 ranks:
#   1. cmake --install <build> into a temporary prefix; a CMake project using find_package(cairn)
#      (tests/consumer/CMakeLists.txt) built against it;
#   2. a CMake project that builds Cairn itself through add_subdirectory (tests/consumer/subdirectory);
#   3. main.cpp compiled by hand with the flags of the installed cairn.pc (pkg-config).
# Each program saves and loads an array and exits non-zero when a byte differs.
#
#   run_consumer_tests.sh --build-dir DIR --source-dir DIR --mpiexec "mpiexec -n 2 FLAGS..."
#                         [--cmake CMAKE] [--c-compiler CC] [--cxx-compiler CXX] [--pkg-config PKGCONF]
#                         [--keep]
# Registered as the ctest "consumer" (label install). The work happens in a temporary directory,
# removed at the end unless --keep is given or a step fails.
set -euo pipefail

build_dir='' source_dir='' mpiexec='' cmake=cmake cc='' cxx='' pkg_config='' keep=0
while (($#)); do
  case $1 in
    --build-dir) build_dir=$2; shift 2 ;;
    --source-dir) source_dir=$2; shift 2 ;;
    --mpiexec) mpiexec=$2; shift 2 ;;
    --cmake) cmake=$2; shift 2 ;;
    --c-compiler) cc=$2; shift 2 ;;
    --cxx-compiler) cxx=$2; shift 2 ;;
    --pkg-config) pkg_config=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "run_consumer_tests.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
if [[ -z $build_dir || -z $source_dir || -z $mpiexec ]]; then
  echo "run_consumer_tests.sh: --build-dir, --source-dir and --mpiexec are required" >&2
  exit 2
fi
[[ $pkg_config == *-NOTFOUND ]] && pkg_config=''
build_dir=$(cd "$build_dir" && pwd)
source_dir=$(cd "$source_dir" && pwd)
jobs=${CAIRN_CONSUMER_JOBS:-2}
compilers=()
[[ -n $cc ]] && compilers+=("-DCMAKE_C_COMPILER=$cc")
[[ -n $cxx ]] && compilers+=("-DCMAKE_CXX_COMPILER=$cxx")
read -r -a launch <<<"$mpiexec"

work=$(mktemp -d "${TMPDIR:-/tmp}/cairn-consumer.XXXXXX")
finish() {
  local rc=$?
  if ((rc == 0 && keep == 0)); then rm -rf "$work"; else echo "== work directory kept: $work"; fi
}
trap finish EXIT
prefix=$work/prefix

# The build tree's own cache says what it was configured with (e.g. Kokkos); the subdirectory
# variant mirrors the optional parts so that it builds what this tree builds.
cache_value() { sed -n "s/^$1:[A-Z]*=//p" "$build_dir/CMakeCache.txt"; }

step() { echo; echo "== $*"; }

step "Installing $build_dir into $prefix"
"$cmake" --install "$build_dir" --prefix "$prefix"
test -f "$prefix/include/cairn/cairn.hpp"
config=$(find "$prefix" -name cairnConfig.cmake -print -quit)
pcfile=$(find "$prefix" -name cairn.pc -print -quit)
[[ -n $config ]] || { echo "no cairnConfig.cmake installed" >&2; exit 1; }
[[ -n $pcfile ]] || { echo "no cairn.pc installed" >&2; exit 1; }
echo "package config: $config"
echo "pkg-config file: $pcfile"

step "1. find_package(cairn): configure, build, run at 2 ranks"
"$cmake" -S "$source_dir/tests/consumer" -B "$work/find_package" "${compilers[@]}" \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=RelWithDebInfo
"$cmake" --build "$work/find_package" -j "$jobs"
mkdir -p "$work/run1"
"${launch[@]}" "$work/find_package/consumer" "$work/run1"

step "1b. find_package(cairn) with a component this build does not have fails"
missing=
for comp in kokkos cuda nccl fortran; do
  case $comp in
    kokkos) [[ $(cache_value CAIRN_ENABLE_KOKKOS) == ON ]] || missing=$comp ;;
    cuda) [[ $(cache_value CAIRN_ENABLE_CUDA) == ON ]] || missing=$comp ;;
    nccl) [[ $(cache_value CAIRN_ENABLE_NCCL) == ON ]] || missing=$comp ;;
    fortran) [[ $(cache_value CAIRN_ENABLE_FORTRAN) == ON ]] || missing=$comp ;;
  esac
  [[ -n $missing ]] && break
done
if [[ -n $missing ]]; then
  mkdir -p "$work/component"
  cat >"$work/component/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.20)
project(cairn_component_check LANGUAGES C CXX)
find_package(cairn REQUIRED COMPONENTS $missing)
CMAKE
  if "$cmake" -S "$work/component" -B "$work/component/build" "${compilers[@]}" \
       -DCMAKE_PREFIX_PATH="$prefix" >"$work/component.log" 2>&1; then
    echo "find_package(cairn COMPONENTS $missing) succeeded, but this build has no $missing" >&2
    exit 1
  fi
  grep -i "component" "$work/component.log" | head -3
  echo "refused as expected: COMPONENTS $missing"
else
  echo "every optional component is built here; nothing to refuse"
fi

if [[ $(cache_value CAIRN_ENABLE_KOKKOS) == ON ]]; then
  step "1c. find_package(cairn COMPONENTS kokkos): cairn::kokkos links"
  mkdir -p "$work/kokkos"
  cat >"$work/kokkos/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.20)
project(cairn_kokkos_check LANGUAGES C CXX)
set(CMAKE_CXX_STANDARD 17)
find_package(cairn REQUIRED COMPONENTS kokkos)
add_executable(consumer_kokkos "$source_dir/tests/consumer/main.cpp")
target_link_libraries(consumer_kokkos PRIVATE cairn::kokkos)
CMAKE
  "$cmake" -S "$work/kokkos" -B "$work/kokkos/build" "${compilers[@]}" -DCMAKE_PREFIX_PATH="$prefix" \
    -DKokkos_DIR="$(cache_value Kokkos_DIR)"
  "$cmake" --build "$work/kokkos/build" -j "$jobs"
  mkdir -p "$work/run1c"
  "${launch[@]}" "$work/kokkos/build/consumer_kokkos" "$work/run1c"
fi

if [[ $(cache_value CAIRN_ENABLE_FORTRAN) == ON ]]; then
  step "1d. find_package(cairn COMPONENTS fortran): a Fortran program uses the installed module"
  mkdir -p "$work/fortran"
  cat >"$work/fortran/main.f90" <<'FORTRAN'
program uses_cairn
  use cairn
  implicit none
  print '(a)', 'consumer: the installed Fortran module compiles and links'
end program uses_cairn
FORTRAN
  cat >"$work/fortran/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.20)
project(cairn_fortran_check LANGUAGES C CXX Fortran)
find_package(cairn REQUIRED COMPONENTS fortran)
add_executable(consumer_fortran main.f90)
target_link_libraries(consumer_fortran PRIVATE cairn::fortran)
CMAKE
  fortran=$(cache_value CMAKE_Fortran_COMPILER)
  "$cmake" -S "$work/fortran" -B "$work/fortran/build" "${compilers[@]}" -DCMAKE_PREFIX_PATH="$prefix" \
    ${fortran:+"-DCMAKE_Fortran_COMPILER=$fortran"}
  "$cmake" --build "$work/fortran/build" -j "$jobs"
  "$work/fortran/build/consumer_fortran"
fi

step "2. add_subdirectory(<cairn source>): configure, build, run at 2 ranks"
options=()
for opt in CAIRN_ENABLE_KOKKOS CAIRN_ENABLE_CUDA CAIRN_ENABLE_NCCL CAIRN_ENABLE_FORTRAN BUILD_SHARED_LIBS; do
  value=$(cache_value "$opt")
  [[ -n $value ]] && options+=("-D$opt=$value")
done
kokkos_root=$(cache_value Kokkos_DIR)
[[ -n $kokkos_root && $kokkos_root != *NOTFOUND ]] && options+=("-DKokkos_DIR=$kokkos_root")
"$cmake" -S "$source_dir/tests/consumer/subdirectory" -B "$work/subdirectory" "${compilers[@]}" \
  -DCAIRN_SOURCE_DIR="$source_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${options[@]}"
"$cmake" --build "$work/subdirectory" -j "$jobs" --target consumer
mkdir -p "$work/run2"
"${launch[@]}" "$work/subdirectory/consumer" "$work/run2"

step "3. pkg-config: compile main.cpp with the flags of cairn.pc, run at 2 ranks"
if [[ -z $pkg_config ]]; then
  echo "no pkg-config here; step skipped"
else
  PKG_CONFIG_PATH="$(dirname "$pcfile")${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  export PKG_CONFIG_PATH
  # A static libcairn needs its private dependencies on the link line: pkg-config --static.
  static=()
  if [[ -n $(find "$prefix" -name libcairn.a -print -quit) ]]; then static=(--static); fi
  "$pkg_config" --print-errors --exists cairn
  echo "pkg-config --modversion cairn: $("$pkg_config" --modversion cairn)"
  read -r -a flags <<<"$("$pkg_config" "${static[@]}" --cflags --libs cairn)"
  echo "pkg-config ${static[*]:+${static[*]} }--cflags --libs cairn: ${flags[*]}"
  "${cxx:-c++}" -std=c++17 -o "$work/pkgconfig_consumer" "$source_dir/tests/consumer/main.cpp" "${flags[@]}" \
    -Wl,-rpath,"$("$pkg_config" --variable=libdir cairn)"
  mkdir -p "$work/run3"
  "${launch[@]}" "$work/pkgconfig_consumer" "$work/run3"
fi

step "All consumers built against Cairn and read back their bytes"
