#!/usr/bin/env bash
# Crash-and-restart test of the heat3d_kokkos example (asynchronous checkpoints of a Kokkos View).
#
#   heat3d_kokkos_restart_test.sh HEAT3D_KOKKOS [HEAT3D [MPIEXEC [NUMPROC_FLAG [MPIEXEC_FLAGS...]]]]
#
# An uninterrupted 2-rank run to step 30 is the reference; it keeps every checkpoint (step_%010d
# directories). heat3d (when given, and not "-") must print the same checksum for the same grid and
# steps. A 2-rank run killed after step 20 leaves its checkpoint at step 10; resuming from it on 1
# and 3 ranks must reach the reference checksum bit for bit. Zero-copy checkpoints (keeping the
# newest 2), bounded synchronous ones and none at all give the same field.
set -euo pipefail

usage="usage: heat3d_kokkos_restart_test.sh HEAT3D_KOKKOS [HEAT3D [MPIEXEC [NUMPROC_FLAG [FLAGS...]]]]"
heat3d_kokkos=${1:?$usage}
heat3d=${2:--}
# shellcheck source=SCRIPTDIR/restart_test_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/restart_test_lib.sh"
restart_test_init heat3d_kokkos_restart "${@:3}"

# 23 is prime: every decomposition splits the grid unevenly.
common=(--n 23 --steps 30 --checkpoint-every 10)

run() { run_exe "$@"; }  # run NAME NP EXE ARGS...

# checksum NAME: the one checksum line of run NAME's output (the value only).
checksum() {
  local lines
  lines=$(grep -E '^checksum: ' "$tmp/$1.log" || true)
  local count
  count=$(grep -c . <<<"$lines" || true)
  ((count == 1)) || fail "run '$1' printed $count checksum lines, not 1"
  [[ $lines =~ ^checksum:\ ([0-9a-f]{16})$ ]] || fail "run '$1': malformed checksum line '$lines'"
  echo "${BASH_REMATCH[1]}"
}

expect_same() {
  local name=$1 got
  got=$(checksum "$name")
  [[ $got == "$reference" ]] ||
    fail "run '$name' ended with checksum $got, the reference is $reference"
  echo "ok: $name matches the reference ($got)"
}

# 1. The reference: 2 ranks, uninterrupted, asynchronous checkpoints.
run reference 2 "$heat3d_kokkos" "${common[@]}" --dir "$tmp/reference" || fail "the reference run failed"
reference=$(checksum reference)
grep -qE "^heat3d_kokkos: ranks=2 steps=30 checkpoints=3 mode=async staging=copy elapsed_s=[0-9.]+ checksum=$reference\$" \
  "$tmp/reference.log" || fail "the reference run did not print its summary line"
for s in 10 20 30; do
  [[ -d $tmp/reference/$(printf 'step_%010d' "$s") ]] || fail "the reference run did not save step $s"
done

# 2. heat3d computes the same field.
if [[ $heat3d != - ]]; then
  run heat3d 2 "$heat3d" "${common[@]}" --dir "$tmp/heat3d" || fail "the heat3d run failed"
  expect_same heat3d
fi

# 3. Crash: rank 0 dies after step 20, before that step's checkpoint; step 10 is the newest.
if run crash 2 "$heat3d_kokkos" "${common[@]}" --dir "$tmp/crash" --crash-at 20; then
  fail "the run with --crash-at 20 exited successfully"
fi
echo "ok: the crashed run failed as intended"
[[ -d $tmp/crash/step_0000000010 ]] || fail "the crashed run left no checkpoint at step 10"
[[ ! -e $tmp/crash/step_0000000020 ]] || fail "the crashed run published step 20 although it died first"
for np in 1 3; do
  cp -a "$tmp/crash" "$tmp/restart$np"
done

# 4. Restarts on 1 and 3 ranks to step 30.
for np in 1 3; do
  run "restart$np" "$np" "$heat3d_kokkos" "${common[@]}" --dir "$tmp/restart$np" --restart ||
    fail "the restart on $np ranks failed"
  grep -q "resumed from .*step_0000000010 at step 10 .*on $np ranks" "$tmp/restart$np.log" ||
    fail "the restart on $np ranks did not report resuming from step 10 on $np ranks"
  [[ -d $tmp/restart$np/step_0000000030 ]] || fail "the restart on $np ranks did not save step 30"
  expect_same "restart$np"
done

# 5. Zero-copy checkpoints every 3 steps (the saved buffer is written again two steps later, after
#    the save completes), bounded synchronous ones, and none at all, give the same field. The
#    zero-copy run keeps the newest 2 checkpoints only.
run zero_copy 2 "$heat3d_kokkos" "${common[@]}" --dir "$tmp/zero_copy" --staging zero-copy --checkpoint-every 3 \
  --keep 2 || fail "the zero-copy run failed"
expect_same zero_copy
left=$(cd "$tmp/zero_copy" && echo *)
[[ $left == "step_0000000027 step_0000000030" ]] ||
  fail "the zero-copy run with --keep 2 left '$left', not the checkpoints of steps 27 and 30"
run bounded_sync 2 "$heat3d_kokkos" "${common[@]}" --dir "$tmp/bounded" --staging bounded --budget-mib 2 --sync ||
  fail "the bounded, synchronous run failed"
expect_same bounded_sync
run none 1 "$heat3d_kokkos" --n 23 --steps 30 --no-checkpoint || fail "the run without checkpoints failed"
grep -qE "^heat3d_kokkos: ranks=1 steps=30 checkpoints=0 mode=none " "$tmp/none.log" ||
  fail "the run without checkpoints did not report mode=none"
expect_same none

echo "PASS: heat3d_kokkos crash and restart on 2 -> 1, 3 ranks reproduce checksum $reference"
