"""Callbacks every trial trains with: per-epoch records and an atomic best-epoch checkpoint."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import keras
import keras_tuner

from tuning.kt_internals import SaveBestEpochAdapter
from tuning.rundir import records


class AtomicSaveBestEpoch(SaveBestEpochAdapter):
    """KerasTuner's best-epoch checkpoint, written to a temporary file and renamed."""

    def save_best(self):
        path = Path(self.filepath)
        tmp = path.with_name(f".{path.stem}.tmp.weights.h5")
        try:
            self.model.save_weights(tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


# What history.json keeps per epoch besides the metrics: not handed to KerasTuner as metrics
# (a metric "learning_rate" would clash with the hyperparameter in TensorBoard's HParams).
NOT_METRICS = ("epoch", "seconds", "lr_at_end")


class EpochRecorder(keras.callbacks.Callback):
    """Writes per-epoch metrics to history.json and fails the trial on a NaN/inf loss.

    Each epoch also records the optimizer's learning rate after its last step
    (``lr_at_end``): with ``--trial-schedule budget`` it reaches 0 at the trial's end.
    """

    def __init__(self, path: str | Path, values: dict) -> None:
        super().__init__()
        self.path = Path(path)
        self.values = values
        self.epochs: list[dict] = []
        self._t0 = 0.0

    def save(self, **extra) -> None:
        records.atomic_write_json(
            self.path, {"values": self.values, "epochs": self.epochs, **extra}
        )

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self._fail(
                f"loss became {float(loss)} in epoch {len(self.epochs) + 1} batch {batch + 1}"
            )

    def on_epoch_end(self, epoch, logs=None):
        entry = {"epoch": epoch + 1, "seconds": round(time.perf_counter() - self._t0, 3)}
        entry.update({k: float(v) for k, v in (logs or {}).items()})
        entry["lr_at_end"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self.epochs.append(entry)
        self.save()
        for key in ("loss", "val_loss"):
            if key in entry and not math.isfinite(entry[key]):
                self._fail(f"{key} became {entry[key]} in epoch {epoch + 1}")

    def _fail(self, reason: str) -> None:
        self.save(failure=reason)
        raise keras_tuner.errors.FailedTrialError(reason)


def history_from(epochs: list[dict]) -> keras.callbacks.History:
    """A keras History over recorded epochs, as KerasTuner expects from fit()."""
    history = keras.callbacks.History()
    keys = [k for k in (epochs[0] if epochs else {}) if k not in NOT_METRICS]
    history.history = {k: [e[k] for e in epochs] for k in keys}
    history.epoch = [e["epoch"] - 1 for e in epochs]
    return history


def read_history(path: Path) -> dict:
    """A trial's history.json; {} when missing or damaged (no recorded epochs)."""
    try:
        return records.read_json(path)
    except Exception:
        return {}
