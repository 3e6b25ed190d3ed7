#!/usr/bin/env bash
# Writes a reference checkpoint on 3 ranks, then reads it without Cairn: h5py and h5dump. Both
# HDF5 layouts: the shared file, and the aggregated one (part files behind virtual datasets), read
# from another working directory so that the part files are found beside data.h5.
# Usage: external_readers.sh "<mpiexec -n 3 ...>" WRITER PYTHON H5DUMP CHECK_SCRIPT
set -euo pipefail
launcher=$1 writer=$2 python=$3 h5dump=$4 check=$5
dir=$(mktemp -d "${TMPDIR:-/tmp}/cairn-interop-XXXXXX")
trap 'rm -rf "$dir"' EXIT
for layout in shared aggregated compressed compressed-aggregated; do
$launcher "$writer" "$dir/$layout" "$layout"
file="$dir/$layout/data.h5"
test -f "$file"
cd /

if [ -n "$python" ] && "$python" -c "import h5py, numpy" 2>/dev/null; then
  "$python" "$check" "$file" 3 "$layout"
else
  echo "h5py is not installed for $python: install python3-h5py" >&2
  exit 1
fi

if [ -z "$h5dump" ]; then echo "h5dump not found (install hdf5-tools)" >&2; exit 1; fi
out=$("$h5dump" -d /fields/pressure "$file")
values=$(echo "$out" | sed -n '/DATA {/,/}/p' | grep -o '([0-9]*): .*' | sed 's/([0-9]*): //' | tr -d ' \n')
if [ "$values" != "0,1,2,3,4,5,6,7,8" ]; then
  echo "h5dump -d /fields/pressure gave '$values'" >&2
  echo "$out" >&2
  exit 1
fi
out=$("$h5dump" -d /fields/temperature -s "2,6,4" -c "1,1,1" "$file")
# Element (2,6,4) of a (7,7,5) array has linear index (2*7+6)*5+4 = 104, value 52.
echo "$out" | grep -q "52" || { echo "h5dump -d /fields/temperature gave: $out" >&2; exit 1; }
echo "h5dump read the global arrays of the $layout layout correctly"
done
