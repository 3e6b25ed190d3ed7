#!/usr/bin/env bash
# Runs cairn_bench --op async (async_save stall and memory) at several rank counts and prints the
# tables one after the other. Builds nothing.
#
#   benchmarks/run_async_table.sh [CAIRN_BENCH [DIR]]
#
# Arguments win over the environment, which wins over the defaults:
#   CAIRN_BENCH  (or BENCH) the cairn_bench executable  (default <repo>/build/benchmarks/cairn_bench)
#   DIR     where the checkpoints go; a private temporary directory is made in it and removed at the
#           end (default ${TMPDIR:-/tmp})
#   M       MiB of state per rank                       (default 256)
#   R       steady saves per mode; figures are medians  (default 5)
#   P       rank counts, space separated                (default "1 2 4")
#   BUDGET  staging budget of the bounded mode, MiB     (default 64)
#   MPIRUN  the launcher                                (default mpirun)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

BENCH=${1:-${BENCH:-$repo/build/benchmarks/cairn_bench}}
DIR=${2:-${DIR:-${TMPDIR:-/tmp}}}
M=${M:-256}
R=${R:-5}
P=${P:-"1 2 4"}
BUDGET=${BUDGET:-64}
MPIRUN=${MPIRUN:-mpirun}

if [ ! -x "$BENCH" ]; then
  echo "run_async_table.sh: no executable '$BENCH'; build the cairn_bench target or pass its path" >&2
  exit 2
fi

# Open MPI: allow root (containers), and more ranks than cores without ranks spinning on them.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_mpi_yield_when_idle=${OMPI_MCA_mpi_yield_when_idle:-1}

cores=$(nproc 2>/dev/null || echo 0)
mkdir -p "$DIR"
scratch=$(mktemp -d "$DIR/cairn_async_table.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

echo "# async_save: stall and memory; $M MiB per rank, $R steady saves per mode, bounded budget $BUDGET MiB"
echo "# checkpoints under $DIR ($(df -PT "$DIR" 2>/dev/null | awk 'NR==2 {print $2}')); $cores core(s)"
failed=""
for np in $P; do
  echo
  note=""
  # Each rank also has a worker thread writing in the background between the timed calls.
  if [ "$cores" -gt 0 ] && [ "$np" -gt "$cores" ]; then
    note=" (oversubscribed: $np ranks on $cores cores)"
  fi
  echo "## $np rank(s)$note"
  echo
  if ! "$MPIRUN" -np "$np" --oversubscribe "$BENCH" --op async --mib-per-rank "$M" --runs "$R" \
    --budget-mib "$BUDGET" --dir "$scratch"; then
    failed="$failed $np"
  fi
done
if [ -n "$failed" ]; then
  echo "run_async_table.sh: cairn_bench failed at rank count(s):$failed" >&2
  exit 1
fi
