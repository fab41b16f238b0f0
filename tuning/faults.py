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

Unset (every user's case), a fault point costs one environment lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "TUNING_KILL_AT"
_reached: dict[str, int] = {}


def target() -> tuple[str, int] | None:
    """The point ``TUNING_KILL_AT`` names and the time it is reached to kill at, or None."""
    spec = os.environ.get(ENV, "").strip()
    if not spec:
        return None
    name, _, count = spec.partition(":")
    try:
        n = int(count) if count else 1
    except ValueError:
        raise ValueError(f"{ENV}={spec!r}: expected NAME or NAME:N (N >= 1)") from None
    if n < 1:
        raise ValueError(f"{ENV}={spec!r}: expected NAME or NAME:N (N >= 1)")
    return name, n


def armed(name: str) -> bool:
    """Whether ``TUNING_KILL_AT`` names this point (to hook in a costly one only then)."""
    wanted = target()
    return wanted is not None and wanted[0] == name


def fault_point(name: str) -> None:
    """SIGKILL this process here if ``TUNING_KILL_AT`` names this point and this time."""
    wanted = target()
    if wanted is None or wanted[0] != name:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _reached[name] == wanted[1]:
        os.kill(os.getpid(), signal.SIGKILL)
