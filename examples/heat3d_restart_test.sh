#!/usr/bin/env bash
# Crash-and-restart test of the heat3d example.
#
#   heat3d_restart_test.sh HEAT3D [MPIEXEC [NUMPROC_FLAG [MPIEXEC_FLAGS...]]]
#
# An uninterrupted 4-rank run to step 40 is the reference; it keeps every checkpoint (step_%010d
# directories). A 4-rank run killed after step 20 leaves its checkpoint at step 10; resuming from
# it on 3, 2 and 1 ranks must reach the reference checksum bit for bit. Also: a restart whose
# newest checkpoint has a damaged data file falls back to the one before it (a run killed after
# step 40 that keeps the newest 2 checkpoints, 20 and 30, with step 30's data.h5 truncated) and
# still reaches the reference; a restart with no checkpoint starts from step 0; a restart with
# another grid size is refused.
set -euo pipefail

heat3d=${1:?usage: heat3d_restart_test.sh HEAT3D [MPIEXEC [NUMPROC_FLAG [FLAGS...]]]}
# shellcheck source=SCRIPTDIR/restart_test_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/restart_test_lib.sh"
restart_test_init heat3d_restart "${@:2}"

# 23 is prime: every decomposition splits the grid unevenly.
common=(--n 23 --steps 40 --checkpoint-every 10)

# run NAME NP ARGS...: runs heat3d on NP ranks (run_exe).
run() {
  local name=$1 np=$2
  shift 2
  run_exe "$name" "$np" "$heat3d" "$@"
}

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

# 1. The reference: 4 ranks, uninterrupted.
run reference 4 "${common[@]}" --dir "$tmp/reference" || fail "the reference run failed"
reference=$(checksum reference)
for s in 10 20 30 40; do
  [[ -d $tmp/reference/$(printf 'step_%010d' "$s") ]] ||
    fail "the reference run did not save step $s"
done

# 2. The same on 1 rank, uninterrupted: the field does not depend on the decomposition.
run serial 1 "${common[@]}" --dir "$tmp/serial" || fail "the 1-rank run failed"
expect_same serial

# 3. Crash: rank 0 dies after step 20, before that step's checkpoint; step 10 is the newest.
if run crash 4 "${common[@]}" --dir "$tmp/crash" --crash-at 20; then
  fail "the run with --crash-at 20 exited successfully"
fi
echo "ok: the crashed run failed as intended"
[[ -d $tmp/crash/step_0000000010 ]] || fail "the crashed run left no checkpoint at step 10"
[[ ! -e $tmp/crash/step_0000000020 ]] ||
  fail "the crashed run published step 20 although it died first"
# Each restart resumes from its own copy of the crashed run's checkpoints.
for np in 1 2 3; do
  cp -a "$tmp/crash" "$tmp/restart$np"
done

# 4. Restarts on 3, 2 and 1 ranks to step 40.
for np in 3 2 1; do
  run "restart$np" "$np" "${common[@]}" --dir "$tmp/restart$np" --restart ||
    fail "the restart on $np ranks failed"
  grep -q "resumed from .*step_0000000010 at step 10 .*on $np ranks" "$tmp/restart$np.log" ||
    fail "the restart on $np ranks did not report resuming from step 10 on $np ranks"
  [[ -d $tmp/restart$np/step_0000000040 ]] || fail "the restart on $np ranks did not save step 40"
  expect_same "restart$np"
done

# 5. A restart from a checkpoint at the last step does no work and still matches.
run restart_at_end 2 "${common[@]}" --dir "$tmp/restart3" --restart ||
  fail "the restart at step 40 failed"
grep -q "resumed from .*step_0000000040 at step 40 .*on 2 ranks" "$tmp/restart_at_end.log" ||
  fail "the restart did not resume at step 40"
expect_same restart_at_end

# 6. --restart without any checkpoint starts from step 0.
mkdir -p "$tmp/empty/.step_0000000030.partial"
run fresh 2 "${common[@]}" --dir "$tmp/empty" --restart ||
  fail "the restart from an empty directory failed"
grep -q "no checkpoint" "$tmp/fresh.log" || fail "the restart from an empty directory did not say so"
expect_same fresh
[[ ! -e $tmp/empty/.step_0000000030.partial ]] || fail "the fresh run left an interrupted save's directory"

# 7. A damaged newest checkpoint is skipped: rank 0 dies after step 40, keeping the newest 2
#    checkpoints (20 and 30); step 30's data file is cut short; the restart resumes from step 20.
if run crash_keep2 4 "${common[@]}" --dir "$tmp/damaged" --keep 2 --crash-at 40; then
  fail "the run with --crash-at 40 exited successfully"
fi
echo "ok: the run killed after step 40 failed as intended"
[[ -d $tmp/damaged/step_0000000020 && -d $tmp/damaged/step_0000000030 ]] ||
  fail "the run killed after step 40 did not leave its checkpoints at steps 20 and 30"
[[ ! -e $tmp/damaged/step_0000000010 ]] || fail "--keep 2 did not remove the checkpoint of step 10"
[[ ! -e $tmp/damaged/step_0000000040 ]] ||
  fail "the run killed after step 40 published step 40 although it died first"
truncate -s 4096 "$tmp/damaged/step_0000000030/data.h5"
run damaged 2 "${common[@]}" --dir "$tmp/damaged" --keep 2 --restart ||
  fail "the restart with a damaged newest checkpoint failed"
# Cairn logs the skipped checkpoint on stderr unless CAIRN_LOG silences warnings.
case ${CAIRN_LOG:-warn} in
  off | error) ;;
  *)
    grep -q "step_0000000030' is skipped" "$tmp/damaged.log" ||
      fail "the restart did not report skipping the damaged checkpoint of step 30"
    ;;
esac
grep -q "resumed from .*step_0000000020 at step 20 .*on 2 ranks" "$tmp/damaged.log" ||
  fail "the restart did not fall back to the checkpoint of step 20"
[[ -d $tmp/damaged/step_0000000040 ]] || fail "the restart from step 20 did not save step 40"
expect_same damaged

# 8. A checkpoint of another grid size is refused with an error that says so.
if run wrong_grid 2 --n 24 --steps 40 --checkpoint-every 10 --dir "$tmp/reference" --restart; then
  fail "a restart with --n 24 from a 23^3 checkpoint succeeded"
fi
grep -q "error: .*23^3 grid but this run has --n 24" "$tmp/wrong_grid.log" ||
  fail "the grid-size mismatch was not reported"
echo "ok: a restart with another grid size is refused"

echo "PASS: heat3d crash and restart on 4 -> 3, 2, 1 ranks, and past a damaged checkpoint, reproduce checksum $reference"
