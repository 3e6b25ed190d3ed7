#!/usr/bin/env bash
# Interrupt-and-restart test of the Fortran heat2d example (Cairn's Fortran module).
#
#   heat2d_restart_test.sh HEAT2D [MPIEXEC [NUMPROC_FLAG [MPIEXEC_FLAGS...]]]
#
# An uninterrupted 4-rank run to step 40 writes the reference field. A 4-rank run stopped after
# step 25 leaves checkpoints at steps 10 and 20; resuming from step 20 on 3 and on 2 ranks (other
# column decompositions) must reach the reference field bit for bit, and so must an uninterrupted
# 1-rank run. A run that ends at another step must be told apart from the reference (the
# comparison can fail). When python3 has h5py, the saved global array is checked to have Fortran's
# dimension order: dataset heat/u of shape (n, n) whose [i, j] is the field's (i+1, j+1).
set -euo pipefail

heat2d=${1:?usage: heat2d_restart_test.sh HEAT2D [MPIEXEC [NUMPROC_FLAG [FLAGS...]]]}
# shellcheck source=SCRIPTDIR/restart_test_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/restart_test_lib.sh"
restart_test_init heat2d_restart "${@:2}"

# 31 is prime: every decomposition splits the columns unevenly.
common=(--n 31 --steps 40 --checkpoint-every 10)

# run NAME NP ARGS...: runs heat2d on NP ranks (run_exe).
run() {
  local name=$1 np=$2
  shift 2
  run_exe "$name" "$np" "$heat2d" "$@"
}

# 1. The reference: 4 ranks, uninterrupted, keeping every checkpoint.
run reference 4 "${common[@]}" --dir "$tmp/reference" --out "$tmp/reference.bin" ||
  fail "the reference run failed"
[[ -s $tmp/reference.bin ]] || fail "the reference run wrote no field"
for s in 10 20 30 40; do
  [[ -d $tmp/reference/$(printf 'step_%010d' "$s") ]] || fail "the reference run did not save step $s"
done

# 2. The same on 1 rank, compared with the reference by heat2d itself.
run serial 1 "${common[@]}" --dir "$tmp/serial" --reference "$tmp/reference.bin" ||
  fail "the 1-rank run failed or differs from the reference"
grep -q "bit for bit" "$tmp/serial.log" || fail "the 1-rank run did not report equality"

# 3. Interrupted: 4 ranks stop after step 25; steps 10 and 20 are saved, 30 is not.
run stopped 4 "${common[@]}" --dir "$tmp/stopped" --stop-at 25 || fail "the interrupted run failed"
[[ -d $tmp/stopped/step_0000000020 ]] || fail "the interrupted run left no checkpoint at step 20"
[[ ! -e $tmp/stopped/step_0000000030 ]] || fail "the interrupted run saved step 30"
for np in 2 3; do
  cp -a "$tmp/stopped" "$tmp/restart$np"
done

# 4. Restarts on 3 and 2 ranks from step 20 to step 40 equal the reference.
for np in 3 2; do
  run "restart$np" "$np" "${common[@]}" --dir "$tmp/restart$np" --restart --reference "$tmp/reference.bin" ||
    fail "the restart on $np ranks failed or differs from the reference"
  grep -q "resumed from step 20 on $np ranks" "$tmp/restart$np.log" ||
    fail "the restart on $np ranks did not resume from step 20"
  grep -q "bit for bit" "$tmp/restart$np.log" || fail "the restart on $np ranks did not report equality"
  [[ -d $tmp/restart$np/step_0000000040 ]] || fail "the restart on $np ranks did not save step 40"
done

# 5. --restart with no checkpoint starts from step 0.
run fresh 3 "${common[@]}" --dir "$tmp/empty" --restart --reference "$tmp/reference.bin" ||
  fail "the run with --restart and no checkpoint failed"
grep -q "no checkpoint" "$tmp/fresh.log" || fail "the run without a checkpoint did not say so"

# 6. The comparison can fail: a run to step 39 is not the reference.
if run short 2 --n 31 --steps 39 --checkpoint-every 10 --dir "$tmp/short" --reference "$tmp/reference.bin"; then
  fail "a run to step 39 passed as equal to the reference at step 40"
fi
grep -q "differs from the reference" "$tmp/short.log" || fail "the differing run did not say so"
echo "ok: a different field is detected"

# 7. The layout on disk, read without Cairn (skipped without h5py).
python=${CAIRN_PYTHON:-python3}
if [[ $python != *NOTFOUND ]] && "$python" -c "import h5py, numpy" 2>/dev/null; then
  "$python" - "$tmp/reference/step_0000000040/data.h5" "$tmp/reference.bin" <<'PY' || fail "h5py check failed"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    u = f["heat/u"][...]
field = np.fromfile(sys.argv[2], dtype="<f8").reshape((31, 31), order="F")
assert u.shape == (31, 31), u.shape
assert np.array_equal(u, field), "heat/u is not the Fortran field in Fortran's dimension order"
print("ok: h5py reads heat/u as the (31, 31) field, [i, j] = u(i+1, j+1)")
PY
else
  echo "skip: no h5py, the layout on disk is not checked"
fi

echo "PASS: heat2d interrupted on 4 ranks and resumed on 3 and 2 ranks equals the uninterrupted run"
