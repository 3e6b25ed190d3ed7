#!/usr/bin/env bash
# The benchmark suite: cairn_bench --op all --json (save, load, resharded load, async stall) for
# every backend at every size and rank count, each figure beside its baselines from the same run.
# Writes OUT/suite.jsonl (one JSON line per op and run), OUT/machine.md (what it ran on), then
# OUT/tables.md and the PNG plots with plot_results.py.
#
#   benchmarks/run_suite.sh
#
# Environment (defaults in brackets):
#   SIZES   MiB per rank                        ["16 256 1024"]
#   P       rank counts                         ["1 2 4"]
#   R       runs per method; figures are medians [5]
#   BENCH   the cairn_bench executable          [<repo>/build/benchmarks/cairn_bench]
#   DIR     where checkpoints are written (a private directory is made in it and removed); use
#           the file system you want to measure, not a tmpfs  [${TMPDIR:-/tmp}]
#   OUT     where results go                    [<repo>/benchmarks/results]
#   MPIRUN  the launcher                        [mpirun]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
SIZES=${SIZES:-"16 256 1024"}
P=${P:-"1 2 4"}
R=${R:-5}
BENCH=${BENCH:-$repo/build/benchmarks/cairn_bench}
DIR=${DIR:-${TMPDIR:-/tmp}}
OUT=${OUT:-$here/results}
MPIRUN=${MPIRUN:-mpirun}

if [ ! -x "$BENCH" ]; then
  echo "run_suite.sh: no executable '$BENCH'; build the cairn_bench target (Release) or set BENCH" >&2
  exit 2
fi
# Open MPI: allow root (containers); more ranks than cores without waiting ranks spinning; no
# binding, so that each rank's background writer runs beside it rather than on its core.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_mpi_yield_when_idle=${OMPI_MCA_mpi_yield_when_idle:-1}
mpi_flags=(--oversubscribe)
if "$MPIRUN" --version 2>/dev/null | grep -q "Open MPI"; then mpi_flags+=(--bind-to none); fi

# matplotlib draws the plots (the tables need nothing).
# shellcheck source=../scripts/lib/packages.sh
source "$repo/scripts/lib/packages.sh"
cairn_ensure_packages python3-matplotlib || echo "run_suite.sh: no matplotlib: tables only" >&2

mkdir -p "$OUT" "$DIR"
json="$OUT/suite.jsonl"
: >"$json"
{
  echo "# Machine"
  echo
  echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') with $("$BENCH" --help >/dev/null 2>&1; echo cairn_bench) of $(git -C "$repo" describe --always --dirty 2>/dev/null || echo 'an unknown commit')."
  echo
  echo "- CPU: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
  echo "- Memory: $(free -g | awk '/^Mem:/ {print $2}') GiB"
  echo "- Checkpoint directory: $DIR on $(df -PT "$DIR" | awk 'NR == 2 {print $2 " (" $1 ")"}')"
  echo "- Kernel: $(uname -sr)"
  echo "- MPI: $("$MPIRUN" --version 2>/dev/null | head -1)"
  echo "- HDF5: $(dpkg-query -W -f '${Version}' libhdf5-openmpi-dev 2>/dev/null || h5cc -showconfig 2>/dev/null | sed -n 's/.*HDF5 Version: *//p')"
  echo "- Sizes (MiB per rank): $SIZES; ranks: $P; runs per method: $R"
} >"$OUT/machine.md"

failed=""
for m in $SIZES; do
  for np in $P; do
    echo "run_suite.sh: $np rank(s), $m MiB per rank, $R runs ..." >&2
    if ! "$MPIRUN" -np "$np" "${mpi_flags[@]}" "$BENCH" --op all --json --mib-per-rank "$m" --runs "$R" \
      --dir "$DIR" >>"$json"; then
      failed="$failed ${np}x${m}MiB"
    fi
  done
done

# The system Python, which has the distribution's matplotlib (a pyenv or venv python may not).
python=python3
if [ -x /usr/bin/python3 ] && /usr/bin/python3 -c "import matplotlib" 2>/dev/null; then python=/usr/bin/python3; fi
"$python" "$here/plot_results.py" "$json" "$OUT"
if [ -n "$failed" ]; then
  echo "run_suite.sh: cairn_bench failed at:$failed" >&2
  exit 1
fi
