#!/usr/bin/env bash
# The real `cairn` executable: --help of the tool and of every subcommand, exit statuses, and
# --json output on checkpoints written by write_sample.
# Usage: cli_smoke.sh CAIRN WRITE_SAMPLE WORKDIR
set -u
cairn=$1 write_sample=$2 work=$3
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# expect STATUS COMMAND...: runs COMMAND, checks its exit status, leaves its stdout in $output.
expect() {
  local want=$1
  shift
  output=$("$@" 2>"$work/stderr")
  local got=$?
  [[ $got == "$want" ]] || fail "'$*' exited $got, expected $want; stderr: $(cat "$work/stderr")"
}

rm -rf "$work" && mkdir -p "$work"
"$write_sample" "$work" || { echo "FAIL: write_sample"; exit 1; }

expect 0 "$cairn" --help
[[ $output == *"Usage:"* && $output == *"Exit status"* ]] || fail "cairn --help: $output"
for cmd in ls info verify diff convert; do
  expect 0 "$cairn" "$cmd" --help
  [[ $output == *"Usage:"* && $output == *"--json"* ]] || fail "cairn $cmd --help: $output"
done
expect 0 "$cairn" --version
[[ $output == cairn\ * ]] || fail "cairn --version: $output"
expect 2 "$cairn"
expect 2 "$cairn" frobnicate
expect 2 "$cairn" info
expect 2 "$cairn" convert "$work/ckpt" "$work/x" --to zarr

expect 0 "$cairn" info "$work/ckpt" --json
[[ $output == *'"name":"fields/u","kind":"array"'*'"shape":[64,32],"chunks":2'* ]] || fail "info --json: $output"
expect 0 "$cairn" verify "$work/ckpt" --json
[[ $output == *'"ok":true'* ]] || fail "verify --json: $output"
expect 0 "$cairn" diff "$work/ckpt" "$work/px"
[[ $output == *"identical"* ]] || fail "diff: $output"
expect 0 "$cairn" ls "$work" --json
[[ $output == *'"name":"ckpt"'* && $output == *'"status":"complete"'* ]] || fail "ls --json: $output"
expect 0 "$cairn" convert "$work/px" "$work/flat.h5" --to serial-hdf5
expect 2 "$cairn" convert "$work/px" "$work/flat.h5" --to serial-hdf5
expect 0 "$cairn" convert "$work/px" "$work/flat.h5" --to serial-hdf5 --force
expect 2 "$cairn" verify "$work/missing"
[[ -z $output ]] || fail "verify of a missing checkpoint printed to stdout: $output"
grep -q "missing" "$work/stderr" || fail "verify of a missing checkpoint does not name it: $(cat "$work/stderr")"

rm -rf "$work"
if ((failures > 0)); then
  echo "$failures failure(s)"
  exit 1
fi
echo "all cairn executable checks passed"
