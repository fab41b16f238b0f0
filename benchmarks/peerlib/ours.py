"""Ours: the default ``python -m tuning.search`` as a user runs it, in a subprocess.

Only the seed, the data, the precision the peers train at and, where one is given, the
budget (``--time-budget``) are passed; everything else is the default search, its
confirmation stage included. Its pick is best.json's (the confirmed winner once the
confirmation has run), read every second while it runs for the regret-against-minutes
curve. The wall time is the subprocess's, from start to exit, Python's start-up included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from peerlib.common import Clock, Job, Outcome, Picks, RunFailed, config

ROOT = Path(__file__).resolve().parents[2]
POLL_S = 1.0


def command(job: Job) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "tuning.search",
        "--seed",
        str(job.seed),
        "--directory",
        str(job.work_dir),
        "--project-name",
        "search",
        "--overwrite",
        "--precision",
        job.precision,
        "--verbose",
        "0",
    ]
    if job.data_dir:
        cmd += ["--data-dir", str(job.data_dir)]
    if job.subset:
        cmd += ["--subset", str(job.subset)]
    if job.budget_s is not None:
        cmd += ["--time-budget", f"{job.budget_s / 60:g}"]
    return cmd


def read_pick(best_json: Path) -> tuple[dict, float, str, int] | None:
    """best.json's configuration, its score, what that score is, and the trials completed."""
    try:
        best = json.loads(best_json.read_text())
        hp = best["hyperparameters"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # not written yet
    winner = (best.get("confirmation") or {}).get("winner")
    if isinstance(winner, dict) and winner.get("mean") is not None:
        score, kind = float(winner["mean"]), "the confirmation's mean over its seeds"
    else:
        score, kind = float(best["val_accuracy"]), "the trial's best epoch (Hyperband)"
    picked = config(hp["blocks"], hp["filters"], hp["skip"], hp["learning_rate"])
    return picked, score, kind, int(best.get("trials_completed") or 0)


def run(job: Job) -> Outcome:
    job.work_dir.mkdir(parents=True, exist_ok=True)
    log = job.work_dir / "search.log"
    best_json = job.work_dir / "search" / "best.json"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    clock = Clock(None)  # the search keeps its own budget
    picks = Picks(clock)
    with log.open("w") as out:
        proc = subprocess.Popen(
            command(job), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
        seen = None
        while True:
            ended = proc.poll() is not None
            pick = read_pick(best_json)
            if pick and pick[:2] != seen:
                seen = pick[:2]
                picks.set(pick[0], pick[1])
            if ended:
                break
            time.sleep(POLL_S)
    wall = clock.elapsed()
    if proc.returncode != 0:
        lines = [x for x in log.read_text().splitlines() if x.strip()] or ["(no output)"]
        raise RunFailed(
            f"ours (seed {job.seed}) exited {proc.returncode}: {lines[-1]} (log: {log})"
        )
    if pick is None:  # the budget ended before a trial did: no pick, a row all the same
        return Outcome(picks, wall, "none: no trial finished in the budget")
    picks.finished = pick[3]  # Hyperband trials completed (best.json)
    return Outcome(picks, wall, pick[2])
