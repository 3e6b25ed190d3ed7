#!/usr/bin/env bash
# The measurements of the node-local tier, incremental saves and compression, each figure beside
# its baseline from the same run: cairn_tier_bench (a save to a RAM disk tier against a save
# straight to the file system), cairn_incremental_bench (10% of the chunks changed against a full
# save) and cairn_compress_bench (ratio and throughput on a heat3d field and on random data), at
# every rank count. Writes OUT/beyond.md: the benchmarks' own tables, one section per program and
# rank count (run a program with --json for machine-readable lines).
#
#   benchmarks/run_beyond.sh
#
# Environment (defaults in brackets):
#   P        rank counts                                  ["1 2 4"]
#   R        runs per method; figures are medians         [5]
#   MIB      MiB per rank                                 [256]
#   BIN      where the three programs are                 [<repo>/build/benchmarks]
#   DIR      the file-system directory written to         [${TMPDIR:-/tmp}]
#   LOCAL    the node-local tier's directory (a RAM disk) [/dev/shm]
#   OUT      where results go                             [<repo>/benchmarks/results]
#   MPIRUN   the launcher                                 [mpirun]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
P=${P:-"1 2 4"}
R=${R:-5}
MIB=${MIB:-256}
BIN=${BIN:-$repo/build/benchmarks}
DIR=${DIR:-${TMPDIR:-/tmp}}
LOCAL=${LOCAL:-/dev/shm}
OUT=${OUT:-$here/results}
MPIRUN=${MPIRUN:-mpirun}

for program in cairn_tier_bench cairn_incremental_bench cairn_compress_bench; do
  if [ ! -x "$BIN/$program" ]; then
    echo "run_beyond.sh: no executable '$BIN/$program'; build the benchmarks (Release) or set BIN" >&2
    exit 2
  fi
done
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_mpi_yield_when_idle=${OMPI_MCA_mpi_yield_when_idle:-1}
mpi_flags=(--oversubscribe)
if "$MPIRUN" --version 2>/dev/null | grep -q "Open MPI"; then mpi_flags+=(--bind-to none); fi

mkdir -p "$OUT"
tables=$OUT/beyond.md
{
  echo "# Node-local tier, incremental saves, compression"
  echo
  echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') with $(git -C "$repo" describe --always --dirty 2>/dev/null || echo unknown);"
  echo "$MIB MiB per rank, $R runs per method (medians; methods alternate run by run), checkpoints in"
  echo "$DIR ($(df -T "$DIR" | awk 'NR==2 {print $2}')), node-local tier in $LOCAL ($(df -T "$LOCAL" | awk 'NR==2 {print $2}'))."
  echo "Machine: see machine.md."
} >"$tables"

run() {  # program, ranks, extra arguments...
  local program=$1 ranks=$2
  shift 2
  echo "run_beyond.sh: $program at $ranks rank(s), $MIB MiB per rank, $R runs ..." >&2
  {
    echo
    echo "## $program, $ranks rank(s)"
    echo
    echo '```'
    "$MPIRUN" "${mpi_flags[@]}" -np "$ranks" "$BIN/$program" --mib-per-rank "$MIB" --runs "$R" --dir "$DIR" "$@"
    echo '```'
  } >>"$tables"
}

for ranks in $P; do
  run cairn_tier_bench "$ranks" --local-dir "$LOCAL"
  run cairn_incremental_bench "$ranks"
  run cairn_compress_bench "$ranks"
done
echo "run_beyond.sh: wrote $tables" >&2
