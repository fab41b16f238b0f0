"""KerasTuner's Hyperband with the bookkeeping users expect.

On top of ``keras_tuner.Hyperband`` this tuner
- seeds every trial from the run seed and the trial id (weights and shuffling);
- records each epoch's metrics in ``trial_<id>/history.json`` and stops a trial whose
  loss turns NaN/inf, marking it FAILED with the reason;
- rewrites ``trials.csv`` and ``best.json`` after every trial;
- prints "trial k of N" progress lines.

TensorBoard scalars and HParams come from KerasTuner itself: a ``TensorBoard`` callback
passed to ``search`` is copied per trial (``<logdir>/<trial_id>/execution0``) and gets
an HParams callback beside it.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import keras
import keras_tuner
from keras_tuner.src.engine import trial as trial_module

from tuning import records

FINISHED = {
    trial_module.TrialStatus.COMPLETED,
    trial_module.TrialStatus.FAILED,
    trial_module.TrialStatus.INVALID,
}


class EpochRecorder(keras.callbacks.Callback):
    """Writes per-epoch metrics to history.json and fails the trial on a NaN/inf loss."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.epochs: list[dict] = []
        self._t0 = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self._fail(f"loss became {float(loss)} in batch {batch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        entry = {"epoch": epoch + 1, "seconds": round(time.perf_counter() - self._t0, 3)}
        entry.update({k: float(v) for k, v in (logs or {}).items()})
        self.epochs.append(entry)
        records.atomic_write_json(self.path, {"epochs": self.epochs})
        loss = entry.get("loss")
        if loss is not None and not math.isfinite(loss):
            self._fail(f"loss became {loss} in epoch {epoch + 1}")

    def _fail(self, reason: str) -> None:
        records.atomic_write_json(self.path, {"epochs": self.epochs, "failure": reason})
        raise keras_tuner.errors.FailedTrialError(reason)


class ResNetHyperband(keras_tuner.Hyperband):
    """Hyperband that keeps trials.csv/best.json current and seeds each trial."""

    def __init__(self, *args, run_seed: int = 0, planned_trials: int | None = None, **kwargs):
        self.run_seed = run_seed
        self.planned_trials = planned_trials
        self._started: dict[str, float] = {}
        super().__init__(*args, **kwargs)

    # -- paths ------------------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        return Path(self.project_dir)

    def history_path(self, trial_id: str) -> Path:
        return Path(self.get_trial_dir(trial_id)) / records.HISTORY_FILE

    # -- hooks --------------------------------------------------------------------------
    def on_trial_begin(self, trial):
        super().on_trial_begin(trial)
        self._started[trial.trial_id] = time.perf_counter()
        values = trial.hyperparameters.values
        done = sum(t.status in FINISHED for t in self.oracle.trials.values())
        total = f" of {self.planned_trials}" if self.planned_trials else ""
        resume = ""
        if values.get("tuner/initial_epoch"):
            resume = f", continues trial {values.get('tuner/trial_id')}"
        print(
            f"[trial {done + 1}{total}] id {trial.trial_id}: bracket {values.get('tuner/bracket')}"
            f" round {values.get('tuner/round')}, epochs {values.get('tuner/initial_epoch')}"
            f"->{values.get('tuner/epochs')}{resume}; "
            + ", ".join(f"{k}={_short(values.get(k))}" for k in records.HP_NAMES),
            flush=True,
        )

    def run_trial(self, trial, *args, **kwargs):
        # Same seed + same trial id -> same initial weights and same shuffling.
        keras.utils.set_random_seed(self.trial_seed(trial.trial_id))
        kwargs["callbacks"] = [
            *kwargs.get("callbacks", []),
            EpochRecorder(self.history_path(trial.trial_id)),
        ]
        return super().run_trial(trial, *args, **kwargs)

    def on_trial_end(self, trial):
        seconds = time.perf_counter() - self._started.pop(trial.trial_id, time.perf_counter())
        path = self.history_path(trial.trial_id)
        history = _read_history(path)
        history["seconds"] = round(seconds, 3)
        records.atomic_write_json(path, history)
        super().on_trial_end(trial)  # the oracle records the trial and saves its state
        self.write_results()

    def on_search_end(self):
        super().on_search_end()
        self.write_results()

    # -- results ------------------------------------------------------------------------
    def trial_seed(self, trial_id: str) -> int:
        digits = "".join(ch for ch in str(trial_id) if ch.isdigit()) or "0"
        return (self.run_seed * 100_003 + int(digits)) % (2**31 - 1)

    def trial_rows(self) -> list[dict]:
        rows = []
        for trial_id, trial in sorted(self.oracle.trials.items()):
            values = trial.hyperparameters.values
            history = _read_history(self.history_path(trial_id))
            epochs = history.get("epochs", [])
            initial = int(values.get("tuner/initial_epoch", 0) or 0)
            row = {
                "trial_id": trial_id,
                "status": trial.status,
                **{name: values.get(name) for name in records.HP_NAMES},
                "bracket": values.get("tuner/bracket"),
                "round": values.get("tuner/round"),
                "parent_trial_id": values.get("tuner/trial_id"),
                "initial_epoch": initial,
                "target_epochs": values.get("tuner/epochs"),
                "epochs_trained": len(epochs),
                "seconds": history.get("seconds"),
                "message": history.get("failure") or _last_line(trial.message),
            }
            if trial.status == trial_module.TrialStatus.COMPLETED and trial.best_step is not None:
                best = int(trial.best_step)  # index into this trial's own fit() epochs
                row["best_epoch"] = initial + best + 1
                if best < len(epochs):
                    for key in ("val_accuracy", "val_loss", "accuracy", "loss"):
                        row[key] = epochs[best].get(key)
                if trial.score is not None:
                    row["val_accuracy"] = float(trial.score)
            rows.append(row)
        by_id = {r["trial_id"]: r for r in rows}
        for row in rows:
            row["lineage_epochs"] = records.lineage_epochs(by_id, row["trial_id"])
        return rows

    def write_results(self) -> list[dict]:
        rows = self.trial_rows()
        records.write_trials_csv(self.run_dir / "trials.csv", rows)
        best = records.best_row(rows)
        if best is not None:
            records.atomic_write_json(
                self.run_dir / "best.json",
                {
                    "trial_id": best["trial_id"],
                    "hyperparameters": records.hyperparameters_of(best),
                    "val_accuracy": best["val_accuracy"],
                    "val_loss": best.get("val_loss"),
                    "best_epoch": best["best_epoch"],
                    "lineage_epochs": best["lineage_epochs"],
                    "trials_completed": sum(r["status"] == "COMPLETED" for r in rows),
                    "trials_failed": sum(r["status"] in ("FAILED", "INVALID") for r in rows),
                },
            )
        return rows


def _read_history(path: Path) -> dict:
    try:
        return records.read_json(path)
    except Exception:  # missing or damaged: the trial has no recorded epochs
        return {}


def _last_line(message: str | None) -> str | None:
    if not message:
        return None
    lines = [line for line in str(message).strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else None


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
