#!/usr/bin/env python3
"""kill -9 trials: crash a checkpointing MPI job at random moments, then restart and check.

    crash_trials.py --mpiexec MPIEXEC [--mpi-flag F]... --sim CRASH_SIM --work DIR
                    [--trials N] [--seed S]

Each trial runs `crash_sim run` on 2 to 4 ranks and kills it in one of three ways, in turn:
  one-rank   SIGKILL to one rank's process after a random delay (Open MPI then ends the job),
  whole-job  SIGKILL to every rank and to mpiexec after a random delay,
  fault      CAIRN_FAULT=<rank>:<step>:kill, the rank killing itself at a chosen step of a save
             (prepare, write, metadata, commit, publish, published, retention).
Then `crash_sim check` runs on 1 to 4 ranks over the same root: latest() must verify (no torn
checkpoint), the journal's last published step must still load (nothing lost), and every loaded
value must be that of the restored step. Roots are reused by the next trial now and then, so that
restarts continue after crashes and meet the leftovers of saves that never published.

Prints a summary and exits non-zero on any torn or lost checkpoint, wrong value or failed check.
"""
import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

FAULT_STEPS = ["prepare", "write", "metadata", "commit", "publish", "published", "retention"]
RANK0_ONLY = {"publish", "published", "retention"}


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mpiexec", required=True)
    p.add_argument("--mpi-flag", action="append", default=[], help="extra mpiexec flag (repeatable)")
    p.add_argument("--sim", required=True, help="the crash_sim executable")
    p.add_argument("--work", required=True, help="a scratch directory (created, emptied at the end)")
    p.add_argument("--trials", type=int, default=24)
    p.add_argument("--seed", type=int, default=20261128)
    return p.parse_args()


def kill_all(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def read_pids(pid_dir, ranks):
    pids = {}
    for r in range(ranks):
        try:
            with open(os.path.join(pid_dir, f"rank{r}.pid")) as f:
                pids[r] = int(f.read().strip())
        except (OSError, ValueError):
            pass
    return pids


def main():
    args = parse()
    rng = random.Random(args.seed)
    os.makedirs(args.work, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("CAIRN_LOG", "error")
    launch = [args.mpiexec] + args.mpi_flag
    tally = {"trials": 0, "one-rank": 0, "whole-job": 0, "fault": 0, "finished_before_kill": 0,
             "checks": 0, "torn": 0, "lost": 0, "wrong_values": 0, "no_checkpoint_yet": 0, "failed_checks": 0}
    kinds = ["one-rank", "whole-job", "fault"]
    root = None
    last_step = {}  # root -> the newest step a check restored from it
    started = time.monotonic()
    for trial in range(args.trials):
        kind = kinds[trial % 3]
        ranks = rng.choice([2, 3, 4])
        # A fresh root two times in three; otherwise the restart continues in the last one.
        if root is None or rng.random() < 0.67:
            root = os.path.join(args.work, f"root{trial}")
            journal = os.path.join(args.work, f"journal{trial}")
        pid_dir = os.path.join(args.work, f"pids{trial}")
        os.makedirs(pid_dir)
        # Runs never reach their last step: every one is killed (the fault kind at its first save).
        steps, every = 10**6, rng.choice([2, 3, 4])
        trial_env = dict(env)
        what = kind
        if kind == "fault":
            step = FAULT_STEPS[(trial // 3) % len(FAULT_STEPS)]
            victim = 0 if step in RANK0_ONLY else rng.randrange(ranks)
            trial_env["CAIRN_FAULT"] = f"{victim}:{step}:kill"
            what = f"fault {victim}:{step}"
        cmd = launch + ["-n", str(ranks), args.sim, "run", "--root", root, "--journal", journal, "--pids", pid_dir,
                        "--steps", str(steps), "--every", str(every), "--keep", "2"]
        if kind == "fault":
            # A clean run first, so that good checkpoints exist when the fault strikes a later save.
            warm = list(cmd)
            warm[warm.index("--steps") + 1] = str(last_step.get(root, 0) + rng.randrange(8, 20))
            subprocess.run(warm, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        proc = subprocess.Popen(cmd, env=trial_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        if kind != "fault":
            # Wait until every rank has started, then strike at a random moment of the run.
            deadline = time.monotonic() + 60
            while len(read_pids(pid_dir, ranks)) < ranks and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.05, 0.9))
            pids = read_pids(pid_dir, ranks)
            if kind == "one-rank":
                victim = rng.randrange(ranks)
                what = f"one-rank {victim}"
                kill_all([pids[victim]] if victim in pids else [])
            else:
                kill_all(list(pids.values()) + [proc.pid])
        try:
            out, _ = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            print(f"trial {trial}: the killed job did not end within 120 s\n{out}", file=sys.stderr)
            tally["failed_checks"] += 1
            continue
        kill_all(read_pids(pid_dir, ranks).values())  # leftovers, should Open MPI have missed one
        if "RUN done" in (out or ""):
            tally["finished_before_kill"] += 1
        tally["trials"] += 1
        tally[kind] += 1

        check_ranks = rng.choice([1, 2, 3, 4])
        check = launch + ["-n", str(check_ranks), args.sim, "check", "--root", root, "--journal", journal]
        try:
            res = subprocess.run(check, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 timeout=120)
        except subprocess.TimeoutExpired:
            print(f"trial {trial}: the check hung", file=sys.stderr)
            tally["failed_checks"] += 1
            continue
        tally["checks"] += 1
        m = re.search(r"CHECK ranks=(\d+) latest=(-?\d+) restored=(-?\d+) journal=(-?\d+) torn=(\d) lost=(\d) "
                      r"mismatched_values=(\d+) latest_differs=(\d)", res.stdout)
        if not m:
            print(f"trial {trial}: the check printed no result (status {res.returncode}):\n{res.stdout}",
                  file=sys.stderr)
            tally["failed_checks"] += 1
            continue
        latest, restored, journal_step = int(m[2]), int(m[3]), int(m[4])
        torn, lost, wrong = int(m[5]), int(m[6]), int(m[7])
        last_step[root] = max(restored, 0)
        tally["torn"] += torn
        tally["lost"] += lost
        tally["wrong_values"] += 1 if wrong else 0
        if restored < 0:
            tally["no_checkpoint_yet"] += 1
        if res.returncode != 0 and not (torn or lost or wrong):
            tally["failed_checks"] += 1
        print(f"trial {trial:2d}: {ranks} ranks, every {every}, killed by {what:<18} -> restart on {check_ranks}: "
              f"latest {latest}, restored {restored}, journal {journal_step}"
              f"{'  TORN' if torn else ''}{'  LOST' if lost else ''}{'  WRONG VALUES' if wrong else ''}")
        if res.returncode != 0:
            print(res.stdout, file=sys.stderr)
        shutil.rmtree(pid_dir, ignore_errors=True)

    elapsed = time.monotonic() - started
    print("SUMMARY " + " ".join(f"{k}={v}" for k, v in tally.items()) + f" seconds={elapsed:.0f}")
    shutil.rmtree(args.work, ignore_errors=True)
    bad = tally["torn"] + tally["lost"] + tally["wrong_values"] + tally["failed_checks"]
    if tally["checks"] < args.trials:
        bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
