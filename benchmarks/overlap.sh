#!/usr/bin/env bash
# How much of a checkpoint's cost asynchronous saving hides behind computation: runs heat3d_kokkos
# for a fixed number of steps with no checkpoints, with synchronous checkpoints every K steps and
# with asynchronous ones every K steps, R times each (interleaved), at each rank count, and prints
# the median elapsed time of each and what checkpointing adds. Builds nothing.
#
#   benchmarks/overlap.sh HEAT3D_KOKKOS [DIR]
#
# HEAT3D_KOKKOS should be a Release build (-DCMAKE_BUILD_TYPE=Release). Arguments win over the
# environment, which wins over the defaults:
#   DIR     where the checkpoints go; a private directory is made in it and removed at the end
#           (default ${TMPDIR:-/tmp}); point it at the file system you want to measure
#   R       runs per mode; figures are medians                     (default 5)
#   P       rank counts, space separated                           (default "1 2")
#   K       steps between checkpoints                              (default 25)
#   C       checkpoints per run                                    (default 4)
#   STEPS   steps per run (default (C + 1) * K - 1: every checkpoint, the last included, has at
#           least K - 1 steps to overlap with)
#   N_<p>   global grid size at p ranks (default: 270 at 1 rank, 340 at 2, 428 at 4, otherwise
#           270 * p^(1/3); each about 150 MiB of field per rank, so that a checkpoint is
#           ~150 MiB per rank)
#   MPIRUN  the launcher (default mpirun); ranks are started with --bind-to none so that each
#           rank's Cairn worker thread can run on another core than its compute thread
#
# Target at 1 rank: async adds at most 20% of what sync adds ("async/sync added" <= 0.20).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

HEAT=${1:-${HEAT3D_KOKKOS:-}}
DIR=${2:-${DIR:-${TMPDIR:-/tmp}}}
R=${R:-5}
P=${P:-"1 2"}
K=${K:-25}
C=${C:-4}
STEPS=${STEPS:-$(((C + 1) * K - 1))}
MPIRUN=${MPIRUN:-mpirun}

if [ -z "$HEAT" ] || [ ! -x "$HEAT" ]; then
  echo "usage: overlap.sh HEAT3D_KOKKOS [DIR]  (a Release build of examples/heat3d_kokkos)" >&2
  exit 2
fi

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_mpi_yield_when_idle=${OMPI_MCA_mpi_yield_when_idle:-1}

grid_for() {
  local np=$1 var="N_$1"
  if [ -n "${!var:-}" ]; then
    echo "${!var}"
    return
  fi
  case $np in
    1) echo 270 ;;
    2) echo 340 ;;
    4) echo 428 ;;
    *) awk -v p="$np" 'BEGIN { printf "%d\n", 270 * p ^ (1 / 3) + 0.5 }' ;;
  esac
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.6f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

mkdir -p "$DIR"
scratch=$(mktemp -d "$DIR/cairn_overlap.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
cores=$(nproc 2>/dev/null || echo 0)

# one NP N MODE RUN: runs heat3d_kokkos once; prints its elapsed_s and records its checksum.
one() {
  local np=$1 n=$2 mode=$3 run=$4 log="$scratch/$3.$1.$4.log" ckdir="$scratch/ckpt"
  local args=(--n "$n" --steps "$STEPS")
  case $mode in
    none) args+=(--no-checkpoint) ;;
    sync) args+=(--checkpoint-every "$K" --dir "$ckdir" --sync) ;;
    async) args+=(--checkpoint-every "$K" --dir "$ckdir") ;;
  esac
  if ! "$MPIRUN" -np "$np" --oversubscribe --bind-to none "$HEAT" "${args[@]}" >"$log" 2>&1; then
    echo "overlap.sh: run failed: $MPIRUN -np $np $HEAT ${args[*]}" >&2
    sed 's/^/    /' "$log" >&2
    exit 1
  fi
  # Outside the timed region: the checkpoints go, and the disk catches up.
  rm -rf "$ckdir"
  sync
  local line
  line=$(grep -E '^heat3d_kokkos: ranks=' "$log")
  sed -E 's/.* checksum=([0-9a-f]+).*/\1/' <<<"$line" >"$scratch/sum.$np.$mode.$run"
  sed -E 's/.* elapsed_s=([0-9.]+).*/\1/' <<<"$line"
}

echo "# heat3d_kokkos overlap: $STEPS steps, a checkpoint every $K steps ($((STEPS / K)) per run), $R runs per mode (medians)"
echo "# $(basename "$HEAT"); checkpoints under $DIR ($(df -PT "$DIR" 2>/dev/null | awk 'NR==2 {print $2}')); $cores core(s)"
echo
printf '| %5s | %4s | %8s | %5s | %8s | %8s | %8s | %11s | %12s | %16s |\n' ranks n MiB/rank ckpts "none s" "sync s" \
  "async s" "sync adds s" "async adds s" "async/sync added"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' ------: -----: ---------: ------: ---------: ---------: ---------: \
  ------------: -------------: -----------------:
status=0
details=""
for np in $P; do
  n=$(grid_for "$np")
  declare -A times=([none]="" [sync]="" [async]="")
  for ((run = 1; run <= R; ++run)); do
    for mode in none sync async; do
      t=$(one "$np" "$n" "$mode" "$run")
      times[$mode]="${times[$mode]} $t"
    done
  done
  if [ "$(cat "$scratch"/sum."$np".* | sort -u | wc -l)" -ne 1 ]; then
    echo "overlap.sh: the runs at $np rank(s) ended with different checksums" >&2
    status=1
  fi
  m_none=$(tr ' ' '\n' <<<"${times[none]}" | grep . | median)
  m_sync=$(tr ' ' '\n' <<<"${times[sync]}" | grep . | median)
  m_async=$(tr ' ' '\n' <<<"${times[async]}" | grep . | median)
  mib=$(awk -v n="$n" -v p="$np" 'BEGIN { printf "%.0f", n * n * n * 8 / p / 1048576 }')
  awk -v np="$np" -v n="$n" -v mib="$mib" -v c="$((STEPS / K))" -v a="$m_none" -v s="$m_sync" -v y="$m_async" 'BEGIN {
    sa = s - a; ya = y - a
    ratio = sa > 0 ? sprintf("%.2f", ya / sa) : "n/a"
    printf "| %5d | %4d | %8s | %5d | %8.3f | %8.3f | %8.3f | %11.3f | %12.3f | %16s |\n", np, n, mib, c, a, s, y, sa, ya, ratio
  }'
  details="$details
# $np rank(s): none:${times[none]}; sync:${times[sync]}; async:${times[async]}"
  if [ "$np" = 1 ]; then
    verdict=$(awk -v a="$m_none" -v s="$m_sync" -v y="$m_async" 'BEGIN {
      sa = s - a; ya = y - a
      if (sa <= 0) print "n/a (sync adds nothing measurable)"
      else if (ya <= 0.2 * sa) printf "PASS (%.2f <= 0.20)", ya / sa
      else printf "FAIL (%.2f > 0.20)", ya / sa
    }')
  fi
  unset times
done
echo
echo "# elapsed_s of every run, in order:$details"
if [ -n "${verdict:-}" ]; then
  echo "# target at 1 rank, async adds <= 20% of what sync adds: $verdict"
fi
if [ "$cores" -gt 0 ]; then
  echo "# with $cores core(s), a rank's worker thread competes with the compute threads of the other ranks once ranks >= cores"
fi
exit "$status"
