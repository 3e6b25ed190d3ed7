#!/bin/sh
# Kills a job in the middle of a drain of the node-local tier, then checks the restart.
#   tier_crash.sh MPIEXEC NUMPROC_FLAG NP TIER_CRASH WORKDIR [MPI flags...]
set -u
mpiexec=$1 npflag=$2 np=$3 program=$4 work=$5
shift 5
rm -rf "$work" && mkdir -p "$work" || exit 1
if "$mpiexec" "$npflag" "$np" "$@" "$program" save "$work" >"$work/save.log" 2>&1; then
  echo "tier_crash: the save job was not killed"; cat "$work/save.log"; exit 1
fi
"$mpiexec" "$npflag" "$np" "$@" "$program" check "$work" || exit 1
rm -rf "$work"
