# shellcheck shell=bash
# Debian/Ubuntu packages that Cairn builds, tests and runs its demo with. Source this file.
#
#   source scripts/lib/packages.sh
#   cairn_ensure_packages [EXTRA_PACKAGE...] || exit 1
#
# cairn_ensure_packages checks with dpkg-query which of CAIRN_PACKAGES (and any extra packages
# named) are missing. Nothing missing: returns 0. Some missing, running as root: apt-get update,
# then installs only the missing ones. Some missing, not root: prints the exact command to run and
# returns 1. On a system without dpkg it only warns and returns 0 (dependencies may come from Spack
# or modules; CMake then says what it cannot find).

CAIRN_PACKAGES=(
  build-essential
  gfortran
  cmake
  pkg-config
  openmpi-bin
  libopenmpi-dev
  libhdf5-openmpi-dev
  hdf5-tools
  libxxhash-dev
  zlib1g-dev
  libzstd-dev
  libgtest-dev
  libcli11-dev
  python3-h5py
  python3-numpy
  libtrilinos-kokkos-dev
)

# Prints, one per line, the packages among the arguments that are not installed.
cairn_missing_packages() {
  local pkg status
  for pkg in "$@"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || printf '%s\n' "$pkg"
  done
}

cairn_ensure_packages() {
  local wanted=("${CAIRN_PACKAGES[@]}" "$@")
  if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "cairn: no dpkg-query here (not Debian/Ubuntu); not checking packages." >&2
    echo "cairn: Cairn needs a C++17 compiler, CMake >= 3.20, MPI, parallel HDF5 and xxHash." >&2
    return 0
  fi
  local missing
  mapfile -t missing < <(cairn_missing_packages "${wanted[@]}")
  if ((${#missing[@]} == 0)); then
    echo "cairn: all ${#wanted[@]} required packages are installed."
    return 0
  fi
  echo "cairn: missing packages: ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    echo "cairn: not root; install them with:" >&2
    echo "sudo apt-get install -y ${missing[*]}" >&2
    return 1
  fi
  apt-get update || return 1
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" || return 1
  mapfile -t missing < <(cairn_missing_packages "${wanted[@]}")
  if ((${#missing[@]} != 0)); then
    echo "cairn: still missing after apt-get install: ${missing[*]}" >&2
    return 1
  fi
  echo "cairn: installed the missing packages."
}
