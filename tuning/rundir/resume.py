"""Crash safety: per-epoch resume checkpoints and a graceful Ctrl-C.

KerasTuner already re-runs a trial that was interrupted, but from its first epoch. Here
every epoch but a trial's last leaves ``trial_<id>/resume-epoch<k>.keras`` (the model with
its optimizer state, written atomically), so a rerun continues the interrupted trial from
its last saved epoch: at most one epoch is lost.

Repairing a run before the tuner reloads it (damaged and half-written trials):
``tuning.rundir.repair``.
"""

from __future__ import annotations

import math
import os
import re
import signal
import time
from pathlib import Path

import keras

from tuning.faults import armed, fault_point

RESUME_PATTERN = re.compile(r"^resume-epoch(\d+)\.keras$")
CHECKPOINT = "checkpoint.weights.h5"


class SearchInterrupted(KeyboardInterrupt):
    """Raised after a Ctrl-C once the current epoch is saved; KerasTuner lets it through."""


class GracefulStop:
    """First Ctrl-C: finish and save the current epoch, then stop. Second: stop at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(
            "\nCtrl-C: stopping after the current epoch is saved (press Ctrl-C again to stop now)",
            flush=True,
        )

    def __enter__(self) -> GracefulStop:
        try:
            self._previous = signal.signal(signal.SIGINT, self._handler)
        except ValueError:  # not the main thread: keep Python's default
            self._previous = None
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def resume_files(trial_dir: Path) -> list[tuple[int, Path]]:
    found = []
    for path in Path(trial_dir).glob("resume-epoch*.keras"):
        match = RESUME_PATTERN.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def clear_resume_files(trial_dir: Path) -> None:
    for _, path in resume_files(trial_dir):
        path.unlink(missing_ok=True)


class ResumeCheckpoint(keras.callbacks.Callback):
    """Saves model + optimizer after an epoch; stops after it on Ctrl-C.

    A checkpoint is written once ``every_s`` seconds of training have passed since the
    trial started or since the last one (0: after every epoch), never after the trial's
    last epoch, and always on Ctrl-C. A kill loses at most ``every_s`` plus one epoch.
    """

    def __init__(
        self, trial_dir: Path, stop: GracefulStop | None = None, every_s: float = 0.0
    ) -> None:
        super().__init__()
        self.trial_dir = Path(trial_dir)
        self.stop = stop
        self.every_s = every_s
        self._last = time.monotonic()
        if armed("trial.batch"):  # the crash tests' mid-epoch kill; no batch hook otherwise
            self.on_train_batch_end = lambda batch, logs=None: fault_point("trial.batch")

    def on_train_begin(self, logs=None):
        self._last = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        done = epoch + 1  # absolute number of epochs behind these weights
        stopping = self.stop is not None and self.stop.requested
        if done >= self.params.get("epochs", math.inf) and not stopping:
            # The trial's last epoch: the trial ends next and deletes its resume files, so
            # this save would only cost time (~0.1 s). A kill before the trial is
            # recorded loses this one epoch, as anywhere else.
            return
        if not stopping and time.monotonic() - self._last < self.every_s:
            return  # short epochs: ~0.1 s per save would be a few % of the search
        final = self.trial_dir / f"resume-epoch{done}.keras"
        tmp = self.trial_dir / f".resume-epoch{done}.tmp.keras"
        try:
            self.model.save(tmp)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        self._last = time.monotonic()
        for k, path in resume_files(self.trial_dir):
            if k < done:
                path.unlink(missing_ok=True)
        if stopping:
            raise SearchInterrupted(f"stopped after epoch {done}")


def load_resume(trial_dir: Path, trial_id: str) -> tuple[keras.Model, int] | None:
    """The newest loadable resume checkpoint: (model, epochs done), or None."""
    import hypermodels.resnet  # noqa: F401  (registers the custom layers the file names)

    for epoch, path in reversed(resume_files(trial_dir)):
        try:
            model = keras.models.load_model(path)
        except Exception as exc:  # damaged file: say so, try an older one or start over
            print(
                f"trial {trial_id}: resume checkpoint {path.name} is unreadable ({exc}); "
                "trying an older one, else re-running the trial from its start",
                flush=True,
            )
            path.unlink(missing_ok=True)
            continue
        return model, epoch
    return None


PRUNED = "pruned"  # marker: the best checkpoint was deleted on purpose (--prune-checkpoints)
