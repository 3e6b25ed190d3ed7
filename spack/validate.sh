#!/usr/bin/env bash
# Validates spack/spack_repo/cairn with Spack itself, offline, on a Debian machine that has Cairn's
# packages installed (scripts/lib/packages.sh). Everything is written under WORK, outside the
# repository; nothing is written into the repository.
#
#   spack/validate.sh [STEP...]
#
# Steps (default: all of them, in this order):
#   setup        clone Spack v1.1.0, spack-packages v2025.11.0 and clingo v5.7.1 from the local
#                mirrors, build clingo's Python module, write the configuration
#   audit        spack audit packages cairn
#   conflict     spack spec --fresh cairn+nccl~cuda must fail with the recipe's message
#   concretize   an environment (unify: false) concretizes the variant matrix
#   install      spack install --test=root of a develop entry: a snapshot of the working tree,
#                built with +tests, its ctest suite run by the recipe's check()
#
# Environment (defaults in brackets):
#   WORK             [/work/spack-validate]   where Spack, its configuration and builds live
#   SPACK_MIRROR     [/work/.mirror/vjranagit+spack/repo]          git dir of Spack (fork with v1.1.0)
#   PACKAGES_MIRROR  [/work/.mirror/spack+spack-packages/repo]     git dir of spack/spack-packages
#   CLINGO_MIRROR    [/work/.mirror/potassco+clingo/repo]          git dir of potassco/clingo
#   INSTALL_SPECS    [cairn@develop+tests]    what the install step installs
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${WORK:-/work/spack-validate}
SPACK_MIRROR=${SPACK_MIRROR:-/work/.mirror/vjranagit+spack/repo}
PACKAGES_MIRROR=${PACKAGES_MIRROR:-/work/.mirror/spack+spack-packages/repo}
CLINGO_MIRROR=${CLINGO_MIRROR:-/work/.mirror/potassco+clingo/repo}
INSTALL_SPECS=${INSTALL_SPECS:-cairn@develop+tests}
case $WORK in "$repo_root"|"$repo_root"/*) echo "WORK must be outside the repository" >&2; exit 2 ;; esac

steps=("$@")
((${#steps[@]})) || steps=(setup audit conflict concretize install)

# Spack sees only this configuration: nothing from ~/.spack or /etc/spack.
export SPACK_DISABLE_LOCAL_CONFIG=1
export SPACK_USER_CONFIG_PATH=$WORK/user-config
export SPACK_USER_CACHE_PATH=$WORK/user-cache
export PYTHONPATH=$WORK/pyclingo${PYTHONPATH:+:$PYTHONPATH}
spack() { "$WORK/spack/bin/spack" -C "$WORK/config" "$@"; }
say() { echo; echo "== $*"; }

checkout() {  # checkout <mirror git dir> <dest> <tag>
  if [[ ! -d $2/.git ]]; then git clone -q "$1" "$2"; fi
  git -C "$2" -c advice.detachedHead=false checkout -q "$3"
  echo "$2: $3 = $(git -C "$2" rev-parse HEAD)"
}

# Versions of the system packages used as externals (Debian names; first field of the version).
deb_version() { dpkg-query -W -f='${Version}' "$1" | sed -E 's/^[0-9]+://; s/[-+~].*//'; }

step_setup() {
  mkdir -p "$WORK"
  say "Sources"
  checkout "$SPACK_MIRROR" "$WORK/spack" v1.1.0
  checkout "$PACKAGES_MIRROR" "$WORK/spack-packages" v2025.11.0
  checkout "$CLINGO_MIRROR" "$WORK/clingo" v5.7.1

  say "clingo's Python module (Spack's solver), built from source"
  if ! PYTHONPATH=$WORK/pyclingo python3 -c 'import clingo' 2>/dev/null; then
    cmake -S "$WORK/clingo" -B "$WORK/clingo/build" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DCLINGO_BUILD_SHARED=OFF -DCLINGO_BUILD_WITH_PYTHON=ON \
      -DCLINGO_BUILD_WITH_LUA=OFF -DCLINGO_BUILD_APPS=OFF -DPython_EXECUTABLE="$(command -v python3)"
    cmake --build "$WORK/clingo/build" --target pyclingo -j "$(nproc)"
    rm -rf "$WORK/pyclingo" && mkdir -p "$WORK/pyclingo"
    cp -r "$WORK/clingo/libpyclingo/clingo" "$WORK/pyclingo/"
    cp "$WORK/clingo/build/bin/python/"_clingo*.so "$WORK/pyclingo/clingo/"
  fi
  python3 -c 'import clingo; print("clingo", clingo.__version__, "for python", __import__("sys").version.split()[0])'

  say "Configuration in $WORK/config"
  mkdir -p "$WORK/config"
  cat >"$WORK/config/repos.yaml" <<EOF
repos::
  cairn: $repo_root/spack/spack_repo/cairn
  builtin: $WORK/spack-packages/repos/spack_repo/builtin
EOF
  cat >"$WORK/config/config.yaml" <<EOF
config:
  install_tree:
    root: $WORK/opt
  build_stage: [$WORK/stage]
  test_stage: $WORK/test-stage
  source_cache: $WORK/source-cache
  misc_cache: $WORK/misc-cache
  build_jobs: $(nproc)
EOF
  cat >"$WORK/config/bootstrap.yaml" <<EOF
bootstrap:
  enable: false
EOF
  local gcc_v
  gcc_v=$(gcc -dumpfullversion)
  # The Debian packages, as externals Spack may not rebuild. Spack removes *_ROOT variables from
  # build environments, so Open MPI's permission to run as root travels with the external.
  cat >"$WORK/config/packages.yaml" <<EOF
packages:
  all:
    providers:
      mpi: [openmpi]
      c: [gcc]
      cxx: [gcc]
      fortran: [gcc]
  gcc:
    buildable: false
    externals:
    - spec: gcc@$gcc_v languages:='c,c++,fortran'
      prefix: /usr
      extra_attributes:
        compilers:
          c: /usr/bin/gcc
          cxx: /usr/bin/g++
          fortran: /usr/bin/gfortran
  openmpi:
    buildable: false
    externals:
    - spec: openmpi@$(deb_version libopenmpi-dev)
      prefix: /usr
      extra_attributes:
        environment:
          set:
            OMPI_ALLOW_RUN_AS_ROOT: '1'
            OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1'
  mpi:
    buildable: false
  hdf5:
    buildable: false
    externals:
    - spec: hdf5@$(deb_version libhdf5-openmpi-dev)+mpi+hl+fortran+cxx~java api=default
      prefix: /usr
  cmake:
    buildable: false
    externals:
    - spec: cmake@$(deb_version cmake)
      prefix: /usr
  gmake:
    buildable: false
    externals:
    - spec: gmake@$(deb_version make)
      prefix: /usr
  pkgconf:
    buildable: false
    externals:
    - spec: pkgconf@$(deb_version pkgconf)
      prefix: /usr
  googletest:
    buildable: false
    externals:
    - spec: googletest@$(deb_version libgtest-dev)+gmock
      prefix: /usr
  xxhash:
    buildable: false
    externals:
    - spec: xxhash@$(deb_version libxxhash-dev)
      prefix: /usr
  cli11:
    buildable: false
    externals:
    - spec: cli11@$(deb_version libcli11-dev)
      prefix: /usr
EOF
  spack bootstrap disable
  spack --version
  spack repo list
}

step_audit() {
  say "spack audit packages cairn"
  spack audit packages cairn
  say "spack info cairn"
  spack info cairn
}

step_conflict() {
  say "spack spec --fresh cairn+nccl~cuda (must fail)"
  local out
  if out=$(spack spec --fresh cairn+nccl~cuda 2>&1); then
    echo "$out"
    echo "cairn+nccl~cuda concretized, but the recipe declares it a conflict" >&2
    return 1
  fi
  echo "$out" | tail -n 8
  grep -q "needs +cuda" <<<"$out" || { echo "failed, but not with the recipe's message" >&2; return 1; }
  echo "refused, as it should be"
}

step_concretize() {
  say "Environment $WORK/env-matrix: the variant matrix, unify: false"
  mkdir -p "$WORK/env-matrix"
  cat >"$WORK/env-matrix/spack.yaml" <<EOF
spack:
  specs:
  - cairn@develop
  - cairn@develop+tests
  - cairn@develop+shared
  - cairn@develop+fortran
  - cairn@develop+kokkos
  - cairn@develop+cuda+nccl cuda_arch=90
  - cairn@develop+kokkos+cuda+nccl cuda_arch=90
  concretizer:
    unify: false
  view: false
EOF
  spack -e "$WORK/env-matrix" concretize --fresh --force
  spack -e "$WORK/env-matrix" find -c -v cairn
}

step_install() {
  say "Snapshot of the working tree in $WORK/src (build folders left out)"
  # Spack builds a develop package inside its source tree (spack-build-<hash>); building a copy
  # keeps the repository free of Spack's build folders.
  rm -rf "$WORK/src/cairn" && mkdir -p "$WORK/src/cairn"
  tar -C "$repo_root" --exclude='./build*' --exclude='./spack-build-*' --exclude='./.git' -cf - . |
    tar -C "$WORK/src/cairn" -xf -
  say "Environment $WORK/env-develop: spack install --test=root $INSTALL_SPECS"
  mkdir -p "$WORK/env-develop"
  cat >"$WORK/env-develop/spack.yaml" <<EOF
spack:
  specs: [$INSTALL_SPECS]
  develop:
    cairn:
      spec: cairn@=develop
      path: $WORK/src/cairn
  view: false
EOF
  spack -e "$WORK/env-develop" concretize --fresh --force
  # A build folder of an earlier run would make Spack skip the configure step: start clean.
  spack -e "$WORK/env-develop" clean cairn
  local start=$SECONDS
  spack -e "$WORK/env-develop" install --test=root --verbose 2>&1 | tee "$WORK/install.log"
  echo "spack install took $((SECONDS - start)) s"
  spack -e "$WORK/env-develop" find -l -v -p cairn

  say "The installed package, used by tests/consumer through find_package(cairn), at 2 ranks"
  local prefix
  prefix=$(spack -e "$WORK/env-develop" location -i cairn)
  rm -rf "$WORK/consumer"
  cmake -S "$repo_root/tests/consumer" -B "$WORK/consumer" -DCMAKE_PREFIX_PATH="$prefix"
  cmake --build "$WORK/consumer"
  mkdir -p "$WORK/consumer/run"
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
    mpiexec -n 2 --oversubscribe "$WORK/consumer/consumer" "$WORK/consumer/run"
  "$prefix/bin/cairn" --help | head -n 3
}

for s in "${steps[@]}"; do
  "step_$s"
done
