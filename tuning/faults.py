"""Fault injection for the crash tests: a kill -9 at a named boundary of a run.

``TUNING_KILL_AT=<name>[:n]`` makes this process SIGKILL itself the n-th time (default: the
first) it reaches ``fault_point(name)``. A SIGKILL is what a power cut, the out-of-memory
killer or ``kill -9`` leave: no handler runs, no buffer is flushed, no file is closed. The
tests set it on a fresh ``python -m tuning.search`` (or ``tuning.finalize``), then run the
same command again and compare with an uninterrupted run (``tests/test_kill_points.py``).

The points, in the order a run reaches them:

- ``search.before_trials``: run.json written, the tuner built, no trial created yet
  (``engine/driver.py``);
- ``oracle.trial_folder``: a trial's folder made, its trial.json not yet written, and
  ``oracle.trial_file``: trial.json written, oracle.json not yet saved (KerasTuner
  writes both when a trial starts and again when it ends; ``engine/oracle.py``);
- ``trial.batch``: after a training batch, mid-epoch (``rundir/resume.py``; only hooked
  in when this variable names it, so a normal run pays nothing per batch);
- ``results.written``: a trial's end recorded and trials.csv/best.json rewritten, before
  the next trial (``engine/results.py``);
- ``confirm.row_written``: a confirmation training's row saved (``rundir/records.py``);
- ``staged.commit``: a finalize's ``final.partial/`` complete, not yet renamed to
  ``final/`` (``rundir/folders.py``);
- ``overwrite.deleting``: ``--overwrite`` has deleted one entry of the run and not the
  rest (``rundir/folders.py``).

``TUNING_INTERRUPT_AT`` (same form) sends a SIGINT instead, a Ctrl-C at an exact point.
Unset (every user's case), a fault point costs two environment lookups.
"""

from __future__ import annotations

import os
import signal

ENV = "TUNING_KILL_AT"
# The same, with a Ctrl-C (SIGINT) instead: the graceful stop, at an exact point.
INTERRUPT_ENV = "TUNING_INTERRUPT_AT"
SIGNALS = {ENV: signal.SIGKILL, INTERRUPT_ENV: signal.SIGINT}
_reached: dict[tuple[str, str], int] = {}


def target(env: str = ENV) -> tuple[str, int] | None:
    """The point ``env`` names and the time it is reached to signal at, or None."""
    spec = os.environ.get(env, "").strip()
    if not spec:
        return None
    name, _, count = spec.partition(":")
    try:
        n = int(count) if count else 1
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{env}={spec!r}: expected NAME or NAME:N (N >= 1)")
    return name, n


def armed(name: str) -> bool:
    """Whether a fault variable names this point (to hook in a costly one only then)."""
    return any((target(env) or ("", 0))[0] == name for env in SIGNALS)


def fault_point(name: str) -> None:
    """Signal this process here if ``TUNING_KILL_AT`` or ``TUNING_INTERRUPT_AT`` names
    this point and this time."""
    for env, signum in SIGNALS.items():
        wanted = target(env)
        if wanted is None or wanted[0] != name:
            continue
        _reached[env, name] = _reached.get((env, name), 0) + 1
        if _reached[env, name] == wanted[1]:
            os.kill(os.getpid(), signum)
