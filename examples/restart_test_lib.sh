# shellcheck shell=bash
# What the examples' restart tests share. Source it, then:
#
#   restart_test_init NAME [MPIEXEC [NUMPROC_FLAG [MPIEXEC_FLAGS...]]]
#
# sets mpiexec, np_flag and mpi_flags (default: mpiexec -n ... --oversubscribe), Open MPI's
# environment for root and oversubscription, and $tmp, a fresh directory removed on exit.

restart_test_init() {
  local name=$1
  mpiexec=${2:-mpiexec}
  np_flag=${3:--n}
  if (($# > 3)); then
    mpi_flags=("${@:4}")
  else
    mpi_flags=(--oversubscribe)
  fi
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
  export OMPI_MCA_mpi_yield_when_idle=${OMPI_MCA_mpi_yield_when_idle:-1}
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/$name.XXXXXX")
  # shellcheck disable=SC2064 # $tmp is fixed now
  trap "rm -rf '$tmp'" EXIT
}

# run_exe NAME NP EXE ARGS...: runs EXE on NP ranks, output in $tmp/NAME.log (and shown indented);
# returns its exit status.
run_exe() {
  local name=$1 np=$2 exe=$3
  shift 3
  echo "+ $mpiexec $np_flag $np ${mpi_flags[*]} $(basename "$exe") $*"
  local rc=0
  "$mpiexec" "$np_flag" "$np" "${mpi_flags[@]}" "$exe" "$@" >"$tmp/$name.log" 2>&1 || rc=$?
  sed 's/^/    /' "$tmp/$name.log"
  return "$rc"
}

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
