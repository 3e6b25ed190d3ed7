#!/usr/bin/env python3
"""Crash-consistency trials: kill -9 a checkpointing MPI job at random moments, then restart and check.

    crash_trials.py --mpiexec MPIEXEC --sim CRASH_SIM [--mpi-flag=F]... [--trials N] [--seed S]
                    [--work DIR] [--mib M] [--budget SECONDS] [--verbose]

Each trial runs `crash_sim run` on 2, 3 or 4 ranks and kills it in one of three ways, in turn:
  one-rank   SIGKILL to one rank after a random delay (Open MPI then ends the job),
  whole-job  SIGKILL to every rank and to mpiexec after a random delay,
  fault      CAIRN_FAULT=<rank>:<step>:kill, armed after 0 to 2 published saves, so that a rank
             kills itself at that step of a later save (prepare, write, metadata, commit; publish,
             published and retention on rank 0).
Then `crash_sim check` runs on 1 to 4 ranks over the same root: the checkpoint latest() returns
must verify and load (not torn), the journal's last published step must still load (nothing lost),
and every loaded byte must be that of the restored step. Some trials continue in the root of the
previous trial: the run restores what the last crash left, goes on and is killed again, meeting the
leftovers of saves that never published.

Before the trials, controls show that the checker can fail: a clean run must check clean, and the
checker must report wrong bytes (expecting another step's values), a lost checkpoint (the newest
one removed) and a torn one (one byte of the newest flipped).

Prints one line per trial and a SUMMARY line; exits non-zero on any torn or lost checkpoint, wrong
byte, hang, missed fault, failed control, or check that fails for another reason.
"""
import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

FAULT_STEPS = ["prepare", "write", "metadata", "commit", "publish", "published", "retention"]
RANK0_STEPS = {"publish", "published", "retention"}
CHECK_LINE = re.compile(
    r"CHECK ranks=(?P<ranks>\d+) step=(?P<step>-?\d+) restored=(?P<restored>-?\d+) journal=(?P<journal>-?\d+) "
    r"listed=(?P<listed>\d+) listed_bad=(?P<listed_bad>\d+) torn=(?P<torn>[01]) lost=(?P<lost>[01]) "
    r"bytes_ok=(?P<bytes_ok>[01]) mismatches=(?P<mismatches>\d+)")
SANITIZER_REPORT = re.compile(r"(Address|Thread|UndefinedBehavior|Leak)Sanitizer|runtime error:")
RUN_TIMEOUT = 120  # seconds a killed job may take to end
CHECK_TIMEOUT = 180


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mpiexec", required=True, help="the mpiexec to launch with")
    p.add_argument("--mpi-flag", action="append", default=[], help="an mpiexec flag (repeatable; write --mpi-flag=F)")
    p.add_argument("--sim", required=True, help="the crash_sim executable")
    p.add_argument("--trials", type=int, default=24)
    p.add_argument("--seed", type=int, default=4242)
    p.add_argument("--work", help="scratch directory (default: a new one in /dev/shm, or else in TMPDIR)")
    p.add_argument("--mib", type=float, default=8, help="size of the global field in MiB")
    p.add_argument("--budget", type=float, default=480, help="start no trial after this many seconds")
    p.add_argument("--verbose", action="store_true", help="print the output of every run and check")
    return p.parse_args()


def scratch_dir(requested):
    if requested:
        os.makedirs(requested, exist_ok=True)
        return tempfile.mkdtemp(prefix="crash_trials.", dir=requested)
    # tmpfs when it has room: the shared disk is slow, and kill -9 does not lose the page cache.
    try:
        st = os.statvfs("/dev/shm")
        if st.f_bavail * st.f_frsize >= (1 << 30) and os.access("/dev/shm", os.W_OK):
            return tempfile.mkdtemp(prefix="crash_trials.", dir="/dev/shm")
    except OSError:
        pass
    return tempfile.mkdtemp(prefix="crash_trials.")


def is_sim_process(pid, sim_name):
    """True when `pid` is alive (not a zombie) and runs crash_sim: pids are never killed blindly."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv0 = f.read().split(b"\0")[0].decode(errors="replace")
    except (OSError, IndexError):
        return False
    return os.path.basename(argv0) == sim_name


def sigkill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_bounded(cmd, env, timeout):
    """Runs `cmd` in a session of its own; returns (exit status, output), status None when it had to
    be killed after `timeout` seconds (with everything in its process group)."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return None, f"(killed after {timeout} s)\n{out}"


def read_pids(pid_dir, ranks):
    pids = {}
    for r in range(ranks):
        try:
            with open(os.path.join(pid_dir, f"rank{r}.pid")) as f:
                pids[r] = int(f.read().strip())
        except (OSError, ValueError):
            pass
    return pids


class Trials:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.work = scratch_dir(args.work)
        self.sim_name = os.path.basename(args.sim)
        self.env = dict(os.environ)
        self.env.pop("CAIRN_FAULT", None)
        self.env.update({"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
                         "OMPI_MCA_rmaps_base_oversubscribe": "1", "OMPI_MCA_mpi_yield_when_idle": "1"})
        # Ranks killed by SIGKILL never remove their shared-memory segments, nor a killed mpiexec its
        # session directory: keep both in the scratch directory, which is removed at the end.
        mpi_tmp = os.path.join(self.work, "mpi")
        os.makedirs(mpi_tmp)
        for name in ("OMPI_MCA_btl_vader_backing_directory", "OMPI_MCA_btl_sm_backing_directory"):
            self.env.setdefault(name, mpi_tmp)
        if len(mpi_tmp) <= 64:  # unix sockets may live under the session directory: keep its path short
            self.env.setdefault("OMPI_MCA_orte_tmpdir_base", mpi_tmp)
        self.launch = [args.mpiexec] + list(args.mpi_flag)
        try:
            version = subprocess.run([args.mpiexec, "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            version = ""
        if ("Open MPI" in version or "OpenRTE" in version) and "--oversubscribe" not in self.launch:
            self.launch.append("--oversubscribe")
        self.tally = {"trials": 0, "kill_one_rank": 0, "kill_whole_job": 0, "kill_fault": 0,
                      "continued_roots": 0, "restarts_checked": 0, "torn": 0, "lost": 0, "bytes_mismatch": 0,
                      "listed_bad": 0, "left_unpublished_save": 0, "no_checkpoint_yet": 0,
                      "finished_before_kill": 0, "failures": 0}
        self.faults_hit = []
        self.failed_roots = set()
        self.root = None

    def mpi(self, ranks, sim_args):
        return self.launch + ["-n", str(ranks), self.args.sim] + sim_args + ["--mib", str(self.args.mib)]

    def fail(self, trial, why, output=""):
        self.tally["failures"] += 1
        self.failed_roots.add(self.root)
        print(f"trial {trial}: FAILED: {why}", flush=True)
        if output:
            print(output.rstrip(), flush=True)

    def check(self, ranks, root, journal, extra=()):
        """Runs `crash_sim check`; returns (fields of its CHECK line or None, exit status, output)."""
        cmd = self.mpi(ranks, ["check", "--root", root, "--journal", journal] + list(extra))
        status, out = run_bounded(cmd, self.env, CHECK_TIMEOUT)
        m = CHECK_LINE.search(out) if status is not None else None
        fields = {k: int(v) for k, v in m.groupdict().items()} if m else None
        return fields, status, out

    def end_job(self, proc, pid_dir, ranks):
        """Waits for the job to end, then makes sure no rank survives. Returns (output, hung)."""
        hung = False
        try:
            out, _ = proc.communicate(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            hung = True
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        # A rank that outlived mpiexec could still write into the root while the check reads it.
        pids = [p for p in read_pids(pid_dir, ranks).values() if is_sim_process(p, self.sim_name)]
        for pid in pids:
            sigkill(pid)
        deadline = time.monotonic() + 30
        while any(is_sim_process(p, self.sim_name) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.02)
        return out or "", hung

    def controls(self):
        """Shows that the checker detects wrong bytes, a lost and a torn checkpoint. True when all do."""
        root = os.path.join(self.work, "control")
        journal = os.path.join(self.work, "control.journal")
        every = 3
        status, out = run_bounded(self.mpi(2, ["run", "--root", root, "--journal", journal, "--steps",
                                               str(3 * every), "--every", str(every), "--step-ms", "0"]),
                                  self.env, CHECK_TIMEOUT)
        problems = []
        if status != 0 or "RUN done" not in out:
            problems.append(f"the clean run failed (status {status}):\n{out}")
            return self.report_controls(problems)
        newest = os.path.join(root, f"step_{3 * every:010d}")

        f, status, out = self.check(3, root, journal)
        if not f or status != 0 or f["restored"] != 3 * every or f["journal"] != 3 * every:
            problems.append(f"a clean root does not check clean (status {status}):\n{out}")

        f, status, out = self.check(2, root, journal, ["--expect-offset", "1"])
        if not f or status == 0 or f["bytes_ok"] != 0:
            problems.append(f"wrong bytes went unnoticed (status {status}):\n{out}")

        lost_root = os.path.join(self.work, "control_lost")
        shutil.copytree(root, lost_root)
        shutil.rmtree(os.path.join(lost_root, os.path.basename(newest)))
        f, status, out = self.check(2, lost_root, journal)
        if not f or status == 0 or f["lost"] != 1:
            problems.append(f"a lost checkpoint went unnoticed (status {status}):\n{out}")

        torn_root = os.path.join(self.work, "control_torn")
        shutil.copytree(root, torn_root)
        data = os.path.join(torn_root, os.path.basename(newest), "data.h5")
        with open(data, "r+b") as fh:  # the middle of the file: field data
            fh.seek(os.path.getsize(data) // 2)
            byte = fh.read(1)
            fh.seek(-1, os.SEEK_CUR)
            fh.write(bytes([byte[0] ^ 0x10]))
        f, status, out = self.check(4, torn_root, journal)
        if not f or status == 0 or f["torn"] != 1:
            problems.append(f"a torn checkpoint went unnoticed (status {status}):\n{out}")
        return self.report_controls(problems)

    def report_controls(self, problems):
        for p in problems:
            print(f"control FAILED: {p.rstrip()}", flush=True)
        if not problems:
            print("controls: clean root checks clean; wrong bytes, a lost and a torn checkpoint are all reported",
                  flush=True)
        for name in ("control", "control_lost", "control_torn"):
            shutil.rmtree(os.path.join(self.work, name), ignore_errors=True)
        return not problems

    def trial(self, t, root, journal, continued):
        args, rng = self.args, self.rng
        kind = ("one-rank", "whole-job", "fault")[t % 3]
        ranks = rng.choice([2, 3, 4])
        every = rng.choice([2, 3, 4])
        pid_dir = os.path.join(self.work, f"pids{t}")
        os.makedirs(pid_dir)
        start = self.last_step.get(root, 0)
        sim_args = ["run", "--root", root, "--journal", journal, "--pidfile-dir", pid_dir, "--every", str(every),
                    "--keep", "2"]
        if kind == "fault":
            step = FAULT_STEPS[(t // 3) % len(FAULT_STEPS)]
            victim = 0 if step in RANK0_STEPS else rng.randrange(ranks)
            after = rng.choice([0, 1, 2])
            # Room for the armed save and two more: a run that finishes means the fault never struck.
            sim_args += ["--steps", str(start + (after + 3) * every), "--fault", f"{victim}:{step}:kill",
                         "--fault-after", str(after)]
            what = f"fault {victim}:{step} after {after} saves"
        else:
            sim_args += ["--steps", str(start + 400)]  # far more than the kill leaves it time for
            what = kind
        ended_early = False
        proc = subprocess.Popen(self.mpi(ranks, sim_args), env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        if kind != "fault":
            deadline = time.monotonic() + RUN_TIMEOUT
            while len(read_pids(pid_dir, ranks)) < ranks and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 2.0))  # before the first save, or in the middle of any later one
            ended_early = proc.poll() is not None
            pids = read_pids(pid_dir, ranks)
            if kind == "one-rank":
                victim = rng.randrange(ranks)
                what = f"one-rank {victim}"
                if victim in pids and is_sim_process(pids[victim], self.sim_name):
                    sigkill(pids[victim])
            else:
                targets = [p for p in pids.values() if is_sim_process(p, self.sim_name)] + [proc.pid]
                rng.shuffle(targets)
                for pid in targets:
                    sigkill(pid)
        out, hung = self.end_job(proc, pid_dir, ranks)
        shutil.rmtree(pid_dir, ignore_errors=True)
        # The crash struck a save between its start and its publication: the next run and the
        # check meet what it left.
        try:
            leftovers = [n for n in os.listdir(root) if n.startswith(".") and n.endswith(".partial")]
        except OSError:
            leftovers = []
        self.tally["left_unpublished_save"] += 1 if leftovers else 0
        self.tally["trials"] += 1
        self.tally["kill_" + kind.replace("-", "_")] += 1
        self.tally["continued_roots"] += 1 if continued else 0
        if args.verbose:
            print(out.rstrip())
        if hung:
            self.fail(t, f"the job killed by {what} did not end within {RUN_TIMEOUT} s", out)
            return
        if SANITIZER_REPORT.search(out):
            self.fail(t, "a sanitizer reported an error in the run", out)
        if "restored_bytes_ok=0" in out:
            self.tally["bytes_mismatch"] += 1
            self.fail(t, "the run restored wrong bytes", out)
        if "RUN done" in out:
            if kind == "fault":
                self.fail(t, f"the run finished: {what} never struck", out)
                return
            self.tally["finished_before_kill"] += 1
        elif ended_early:
            # Nothing killed it: the run failed by itself (a save that cannot cope with what a crash left?).
            self.fail(t, f"the run ended with status {proc.returncode} before it was killed", out)
            return
        elif kind == "fault":
            self.faults_hit.append(what.split()[1])

        check_ranks = rng.choice([1, 2, 3, 4])
        f, status, check_out = self.check(check_ranks, root, journal)
        if args.verbose:
            print(check_out.rstrip())
        if f is None:
            why = "hung" if status is None else f"printed no result (status {status})"
            self.fail(t, f"the check on {check_ranks} ranks {why}", check_out)
            return
        self.tally["restarts_checked"] += 1
        self.tally["torn"] += f["torn"]
        self.tally["lost"] += f["lost"]
        self.tally["bytes_mismatch"] += 1 - f["bytes_ok"]
        self.tally["listed_bad"] += f["listed_bad"]
        if f["restored"] < 0:
            self.tally["no_checkpoint_yet"] += 1
        self.last_step[root] = max(f["restored"], 0)
        verdict = "ok" if status == 0 else "FAILED"
        left = ", unpublished save left" if leftovers else ""
        print(f"trial {t:2d}: {ranks} ranks, every {every}, {'continued' if continued else 'fresh'} root from step "
              f"{start}, killed by {what:<27} -> check on {check_ranks}: latest {f['step']}, restored "
              f"{f['restored']}, journal {f['journal']}, listed {f['listed']}{left}: {verdict}", flush=True)
        if status != 0:
            self.fail(t, f"the check exited with status {status}", check_out)
        elif SANITIZER_REPORT.search(check_out):
            self.fail(t, "a sanitizer reported an error in the check", check_out)

    def run(self):
        started = time.monotonic()
        print(f"crash trials: {self.args.trials} trials, seed {self.args.seed}, {self.args.mib:g} MiB field, "
              f"in {self.work}", flush=True)
        controls_ok = self.controls()
        self.last_step = {}
        root = journal = None
        for t in range(self.args.trials):
            if time.monotonic() - started > self.args.budget:
                print(f"stopping after {t} trials: the budget of {self.args.budget:g} s is spent", flush=True)
                break
            # Three trials in five continue in the previous trial's root, after its crash.
            continued = root is not None and t % 5 in (1, 2, 4)
            if not continued:
                if root is not None and root not in self.failed_roots:
                    shutil.rmtree(root, ignore_errors=True)
                root = os.path.join(self.work, f"root{t}")
                journal = root + ".journal"
            self.root = root
            self.trial(t, root, journal, continued)
        elapsed = time.monotonic() - started
        tally = self.tally
        enough = tally["trials"] >= min(self.args.trials, 20) and tally["restarts_checked"] == tally["trials"]
        print("faults that struck: " + (", ".join(sorted(set(self.faults_hit))) or "none"))
        print("SUMMARY " + " ".join(f"{k}={v}" for k, v in tally.items()) +
              f" controls_ok={int(controls_ok)} seconds={elapsed:.0f}", flush=True)
        bad = tally["torn"] + tally["lost"] + tally["bytes_mismatch"] + tally["listed_bad"] + tally["failures"]
        ok = bad == 0 and controls_ok and enough
        if ok:
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            print(f"crash trials FAILED; the roots are kept in {self.work}", flush=True)
        return 0 if ok else 1


def main():
    return Trials(parse_args()).run()


if __name__ == "__main__":
    sys.exit(main())
