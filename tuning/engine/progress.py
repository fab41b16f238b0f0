"""The search's console lines: one when a trial starts, one when it ends, with an ETA.

KerasTuner's per-trial tables are turned off (they cannot time a trial resumed after a
restart); these lines replace them on a single search and on a chief alike.
"""

from __future__ import annotations

import time

from tuning.engine.results import describe_hyperparameters
from tuning.machine.cost import format_duration
from tuning.rundir import records


class Progress:
    """Counts trials and epochs against the plan; the clock starts at :meth:`restart`."""

    def __init__(self, planned_trials: int | None = None, planned_epochs: int | None = None):
        self.planned_trials = planned_trials
        self.planned_epochs = planned_epochs
        self.started = time.perf_counter()
        self.epochs_at_start = 0

    def restart(self, rows: list[dict]) -> None:
        """Count time and epochs from now (a resumed run's earlier epochs excluded)."""
        self.started = time.perf_counter()
        self.epochs_at_start = sum(r["epochs_trained"] for r in rows)

    def trial_started(self, trial_number: int, trial_id: str, values: dict, who: str = "") -> str:
        """``[trial 3 of 23] id 0002: bracket 2 round 0, epochs 0->1; blocks=...``"""
        total = f" of {self.planned_trials}" if self.planned_trials else ""
        return f"[trial {trial_number}{total}] id {trial_id}{who}: " + trial_plan(values)

    def trial_ended(self, trial_id: str, rows: list[dict]) -> str:
        """``  -> val_accuracy 0.8123 at epoch 3 (...); best so far ...; ETA ...``"""
        row = next(r for r in rows if r["trial_id"] == trial_id)
        elapsed = (time.perf_counter() - self.started) / 60
        if row["status"] == "COMPLETED":
            text = f"  -> val_accuracy {row['val_accuracy']:.4f} at epoch {row['best_epoch']}"
        else:
            text = f"  -> {row['status']}: {row.get('message') or 'no reason recorded'}"
        text += f" ({row.get('seconds') or 0:.0f} s, {row['disk_mb']:.1f} MB)"
        best = records.best_row(rows)
        if best is not None:
            text += f"; best so far {best['val_accuracy']:.4f} (trial {best['trial_id']})"
        text += f"; elapsed {elapsed:.1f} min"
        done = sum(r["epochs_trained"] for r in rows)
        new = done - self.epochs_at_start
        if self.planned_epochs and new > 0 and done < self.planned_epochs:
            eta = elapsed * 60 / new * (self.planned_epochs - done)
            text += f"; {done}/{self.planned_epochs} epochs, ETA {format_duration(eta)}"
        return text


def trial_plan(values: dict) -> str:
    """``bracket 1 round 0, epochs 0->3, continues trial 0002; blocks=...``"""
    resume = ""
    if values.get("tuner/initial_epoch"):
        resume = f", continues trial {values.get('tuner/trial_id')}"
    return (
        f"bracket {values.get('tuner/bracket')} round {values.get('tuner/round')}, "
        f"epochs {values.get('tuner/initial_epoch')}->{values.get('tuner/epochs')}{resume}; "
        + describe_hyperparameters(values)
    )
