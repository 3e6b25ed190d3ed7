#!/usr/bin/env bash
# A zstd-compressed checkpoint of each HDF5 layout, written by one program and verified by another
# process (the `cairn` tool): a reader that never wrote must still find the zstd filter.
# Usage: compression_fresh_process.sh "<mpiexec -n 3 ...>" WRITER CAIRN_CLI
set -euo pipefail
launcher=$1 writer=$2 cli=$3
dir=$(mktemp -d "${TMPDIR:-/tmp}/cairn-zstd-XXXXXX")
trap 'rm -rf "$dir"' EXIT
for layout in zstd zstd-aggregated zstd-rank-files; do
  $launcher "$writer" "$dir/$layout" "$layout"
  "$cli" verify "$dir/$layout"
  echo "a fresh process verified the $layout checkpoint"
done
