#!/usr/bin/env bash
# Runs cairn_bench (save and load) at several rank counts and prints one markdown table.
#
#   benchmarks/run_table.sh [MIB_PER_RANK [RUNS [RANKS...]]]
#
# Arguments win over the environment, which wins over the defaults:
#   M       MiB of state per rank                 (default 256)
#   R       runs per method; figures are medians  (default 5)
#   P       rank counts, space separated          (default "1 2 4")
#   BENCH   the cairn_bench executable            (default <repo>/build/benchmarks/cairn_bench)
#   DIR     where the files go; a private temporary directory is made in it and removed at the end
#           (default ${TMPDIR:-/tmp}; use the file system you want to measure, not a tmpfs)
#   MPIRUN  the launcher                          (default mpirun)
# The raw JSON lines are kept in $JSON_OUT when set.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

M=${1:-${M:-256}}
R=${2:-${R:-5}}
if [ $# -gt 2 ]; then
  shift 2
  P="$*"
else
  P=${P:-"1 2 4"}
fi
BENCH=${BENCH:-$repo/build/benchmarks/cairn_bench}
DIR=${DIR:-${TMPDIR:-/tmp}}
MPIRUN=${MPIRUN:-mpirun}

if [ ! -x "$BENCH" ]; then
  echo "run_table.sh: no executable '$BENCH'; build the cairn_bench target or set BENCH" >&2
  exit 2
fi

# Open MPI: allow root (containers), and more ranks than cores without ranks spinning on them.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_mpi_yield_when_idle=${OMPI_MCA_mpi_yield_when_idle:-1}

mkdir -p "$DIR"
scratch=$(mktemp -d "$DIR/cairn_table.XXXXXX")
json=$(mktemp "${TMPDIR:-/tmp}/cairn_table_json.XXXXXX")
trap 'rm -rf "$scratch" "$json"' EXIT

failed=""
for np in $P; do
  echo "run_table.sh: $np rank(s), $M MiB per rank, $R runs ..." >&2
  if ! "$MPIRUN" -np "$np" --oversubscribe "$BENCH" --op all --mib-per-rank "$M" --runs "$R" --dir "$scratch" --json \
    >>"$json"; then
    failed="$failed $np"
  fi
done
if [ -n "${JSON_OUT:-}" ]; then cp "$json" "$JSON_OUT"; fi

python3 - "$json" <<'PY'
import json
import statistics
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip().startswith("{")]
rows = [r for r in rows if r["op"] in ("save", "load", "load-nocheck")]  # async: run_async_table.sh
if not rows:
    sys.exit("run_table.sh: cairn_bench printed no results")
order = {"save": 0, "load": 1, "load-nocheck": 2}
rows.sort(key=lambda r: (order[r["op"]], r["ranks"]))


def num(value, digits):
    return "n/a" if value is None else f"{value:.{digits}f}"


print("| op | ranks | MiB/rank | cairn MiB/s | posix MiB/s | hdf5 MiB/s | cairn/hdf5 | cairn/posix |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    print(f"| {r['op']} | {r['ranks']} | {r['mib_per_rank']} | {num(r['cairn_mib_s'], 1)} | "
          f"{num(r['posix_mib_s'], 1)} | {num(r['hdf5_mib_s'], 1)} | {num(r['cairn_over_hdf5'], 2)} | "
          f"{num(r['cairn_over_posix'], 2)} |")

runs = rows[0]["runs"]
print()
print(f"Median of {runs} runs per method, runs alternating cairn, posix, hdf5; MiB/s is aggregate "
      "(all ranks' bytes / the slowest rank's wall time between barriers). Cairn "
      f"{rows[0].get('cairn_version', '?')}. load: every byte checked against its chunk's xxh3-64 "
      "(the default); load-nocheck: LoadOptions::verify_checksums off, in the same runs.")
print()
print("Run times in seconds, min / median / max:")
print()
print("| op | ranks | cairn | posix | hdf5 |")
print("|---|---:|---|---|---|")
for r in rows:
    cells = []
    for method in ("cairn", "posix", "hdf5"):
        t = r[f"{method}_s"]
        cells.append(f"{min(t):.3f} / {statistics.median(t):.3f} / {max(t):.3f}")
    print(f"| {r['op']} | {r['ranks']} | " + " | ".join(cells) + " |")

loads = [r for r in rows if r["op"] == "load"]
if loads:
    worst = max(max(v for v in r["resident_after_drop"].values() if v is not None) for r in loads)
    print()
    print("Reads may be served from the page cache: before every load run the files are fsync'd and dropped "
          "with posix_fadvise(POSIX_FADV_DONTNEED), which is best effort; at most "
          f"{100 * worst:.0f}% of a file's pages were still resident after the drop.")
    bad = [r for r in loads if not r.get("verified", False)]
    print("Load check (sampled values of every array, the replicated array and the step): " +
          ("FAILED at " + ", ".join(f"{r['ranks']} ranks" for r in bad) if bad else "passed at every rank count."))
    if bad:
        sys.exit(1)
PY
if [ -n "$failed" ]; then
  echo "run_table.sh: cairn_bench failed at rank count(s):$failed" >&2
  exit 1
fi
