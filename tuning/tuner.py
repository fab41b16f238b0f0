"""KerasTuner's Hyperband with the bookkeeping and crash safety users expect.

On top of ``keras_tuner.Hyperband`` this tuner
- writes KerasTuner's own state (``oracle.json``, ``trial.json``, ``tuner0.json``) and the
  best-epoch checkpoint atomically, so a kill never leaves half a file;
- seeds every trial from the run seed and the trial id (weights and shuffling);
- records each epoch's metrics in ``trial_<id>/history.json``, stops a trial whose loss
  turns NaN/inf and marks it FAILED with the reason (also in TensorBoard);
- resumes an interrupted trial from its last completed epoch (see ``tuning.resume``);
- rewrites ``trials.csv`` and ``best.json`` after every trial, with disk use per trial,
  and can prune checkpoints that no later round can need;
- prints one progress line per trial.

TensorBoard scalars and HParams come from KerasTuner itself: a ``TensorBoard`` callback
passed to ``search`` is copied per trial (``<logdir>/<trial_id>/execution0``) and gets
an HParams callback beside it.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import time
import warnings
from pathlib import Path

import keras
import keras_tuner
import numpy as np
from keras_tuner.src.engine import trial as trial_module
from keras_tuner.src.engine import tuner_utils
from keras_tuner.src.tuners.hyperband import HyperbandOracle

from tuning import records
from tuning.data import as_dataset
from tuning.resume import (
    CHECKPOINT,
    GracefulStop,
    ResumeCheckpoint,
    SearchInterrupted,
    clear_resume_files,
    load_resume,
    resume_files,
)

# A Hyperband continuation loads its parent's weights into a fresh optimizer, as
# KerasTuner intends; Keras warns about the optimizer variables it skips.
warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")

FINISHED = {
    trial_module.TrialStatus.COMPLETED,
    trial_module.TrialStatus.FAILED,
    trial_module.TrialStatus.INVALID,
}


def count_finished(oracle) -> int:
    """How many of the oracle's trials have ended (completed, failed or invalid)."""
    return sum(t.status in FINISHED for t in oracle.trials.values())


def describe_hyperparameters(values: dict) -> str:
    """``blocks=2, filters=64, skip=True, learning_rate=0.0125`` for progress lines."""
    return ", ".join(f"{k}={_short(values.get(k))}" for k in records.HP_NAMES)


@contextlib.contextmanager
def frozen_startup_objects():
    """Keep what exists now (TensorFlow's modules, the data) out of Python's cyclic GC.

    KerasTuner runs a full ``gc.collect()`` twice before building each trial's model; a
    full collection walks every object in the process, ~380k once TensorFlow is imported
    (0.3 s each on a 2-core CPU). Frozen, it walks only what the trials created
    (0.03-0.08 s), and still frees each finished trial's model. Unfrozen on the way out.
    """
    gc.collect()  # freeze only what is alive
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


class ChiefLost(keras_tuner.errors.FatalError):
    """A worker lost its chief; KerasTuner must not record this as a failed trial."""


class AtomicHyperbandOracle(HyperbandOracle):
    """KerasTuner's Hyperband oracle, saving its state and trials atomically."""

    @keras_tuner.synchronized
    def drop_tuner(self, tuner_id: str) -> str | None:
        """Forget a worker that went silent; its running trial goes back to the queue."""
        trial = self.ongoing_trials.pop(tuner_id, None)
        self.tuner_ids.discard(tuner_id)
        if trial is None:
            return None
        self._retry_queue.append(trial.trial_id)
        self.save()
        return trial.trial_id

    def save(self):
        records.atomic_write_json(self._get_oracle_fname(), self.get_state())

    def _save_trial(self, trial):
        path = Path(self._get_trial_dir(trial.trial_id)) / "trial.json"
        records.atomic_write_json(path, trial.get_state())

    def checkpoints_needed(self) -> set[str]:
        """Trials whose best checkpoint a future continuation trial may still load."""
        needed = set()
        for trial in list(self.ongoing_trials.values()) + [
            self.trials[t] for t in self._retry_queue if t in self.trials
        ]:
            parent = trial.hyperparameters.values.get("tuner/trial_id")
            if parent:
                needed.add(parent)
        for bracket in self._brackets:
            rounds = bracket["rounds"]
            for r in range(len(rounds) - 1):
                if len(rounds[r + 1]) < self._get_size(bracket["bracket_num"], r + 1):
                    selected = {info["past_id"] for info in rounds[r + 1]}
                    needed |= {info["id"] for info in rounds[r] if info["id"] not in selected}
        return needed


class AtomicSaveBestEpoch(tuner_utils.SaveBestEpoch):
    """KerasTuner's best-epoch checkpoint, written to a temporary file and renamed."""

    def _save_model(self):
        path = Path(self.filepath)
        tmp = path.with_name(f".{path.stem}.tmp.weights.h5")
        try:
            self.model.save_weights(tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


class EpochRecorder(keras.callbacks.Callback):
    """Writes per-epoch metrics to history.json and fails the trial on a NaN/inf loss."""

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
        self.epochs.append(entry)
        self.save()
        for key in ("loss", "val_loss"):
            if key in entry and not math.isfinite(entry[key]):
                self._fail(f"{key} became {entry[key]} in epoch {epoch + 1}")

    def _fail(self, reason: str) -> None:
        self.save(failure=reason)
        raise keras_tuner.errors.FailedTrialError(reason)


def _history_from(epochs: list[dict]) -> keras.callbacks.History:
    """A keras History over recorded epochs, as KerasTuner expects from fit()."""
    history = keras.callbacks.History()
    keys = [k for k in (epochs[0] if epochs else {}) if k not in ("epoch", "seconds")]
    history.history = {k: [e[k] for e in epochs] for k in keys}
    history.epoch = [e["epoch"] - 1 for e in epochs]
    return history


class ResNetHyperband(keras_tuner.Hyperband):
    """Hyperband that keeps trials.csv/best.json current, seeds and resumes trials."""

    def __init__(
        self,
        hypermodel,
        *,
        objective: str = "val_accuracy",
        max_epochs: int = 9,
        factor: int = 3,
        hyperband_iterations: int = 1,
        seed: int = 0,
        max_consecutive_failed_trials: int = 3,
        planned_trials: int | None = None,
        planned_epochs: int | None = None,
        prune_checkpoints: bool = False,
        resume_every_s: float = 0.0,
        **kwargs,
    ):
        self.run_seed = seed
        self.planned_trials = planned_trials
        self.planned_epochs = planned_epochs
        self._epochs_at_start: int | None = None
        self.prune_checkpoints = prune_checkpoints
        self.resume_every_s = resume_every_s
        self.stop = GracefulStop()
        self._started: dict[str, float] = {}
        self._seconds_before: dict[str, float] = {}  # training time before a resume
        self._search_started = time.perf_counter()
        oracle = AtomicHyperbandOracle(
            objective,
            max_epochs=max_epochs,
            factor=factor,
            hyperband_iterations=hyperband_iterations,
            # KerasTuner replaces a falsy seed (our default 0) by a random one.
            seed=seed + 1,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
        )
        # Skip Hyperband.__init__ (it would build a plain oracle); its methods still apply.
        keras_tuner.Tuner.__init__(self, oracle=oracle, hypermodel=hypermodel, **kwargs)
        self._heartbeat = None
        self.trials_run = 0
        if self._is_worker():
            from tuning.distributed import polite_client

            self.oracle = polite_client(self.oracle)

    def _get_tuner_fname(self):
        # One state file for a run searched alone or by a chief (KerasTuner would name
        # it after the tuner id), so a run can switch between the two and resume.
        if self._is_worker():
            return super()._get_tuner_fname()
        return os.path.join(str(self.project_dir), "tuner0.json")

    # -- paths and state ----------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        return Path(self.project_dir)

    def history_path(self, trial_id: str) -> Path:
        return Path(self.get_trial_dir(trial_id)) / records.HISTORY_FILE

    def save(self):
        if not self._is_worker():
            self.oracle.save()
        records.atomic_write_json(self._get_tuner_fname(), self.get_state())

    def search(self, *fit_args, **fit_kwargs):
        with frozen_startup_objects():
            return super().search(*fit_args, **fit_kwargs)

    # -- hooks --------------------------------------------------------------------------
    def on_search_begin(self):
        super().on_search_begin()
        # Our one-line progress replaces KerasTuner's per-trial tables; the fit
        # verbosity (per-epoch lines) is still the user's --verbose.
        self.oracle.verbose = 0
        self._search_started = time.perf_counter()
        if not self._is_worker():
            self._epochs_at_start = sum(r["epochs_trained"] for r in self.trial_rows())

    def on_trial_begin(self, trial):
        if self.stop.requested:
            raise SearchInterrupted("stopped before the next trial")
        super().on_trial_begin(trial)
        self._started[trial.trial_id] = time.perf_counter()
        values = trial.hyperparameters.values
        if self._is_worker():
            from tuning.distributed import Heartbeat

            self._heartbeat = Heartbeat(self.oracle, trial.trial_id).start()
            head = f"[{self.tuner_id}] trial id {trial.trial_id}"
        else:
            done = count_finished(self.oracle)
            total = f" of {self.planned_trials}" if self.planned_trials else ""
            head = f"[trial {done + 1}{total}] id {trial.trial_id}"
        resume = ""
        if values.get("tuner/initial_epoch"):
            resume = f", continues trial {values.get('tuner/trial_id')}"
        print(
            f"{head}: bracket {values.get('tuner/bracket')}"
            f" round {values.get('tuner/round')}, epochs {values.get('tuner/initial_epoch')}"
            f"->{values.get('tuner/epochs')}{resume}; " + describe_hyperparameters(values),
            flush=True,
        )

    def run_trial(self, trial, *args, **kwargs):
        # Same seed + same trial id -> same initial weights and same shuffling.
        keras.utils.set_random_seed(self.trial_seed(trial.trial_id))
        kwargs["callbacks"] = [
            *kwargs.get("callbacks", []),
            EpochRecorder(self.history_path(trial.trial_id), dict(trial.hyperparameters.values)),
        ]
        return super().run_trial(trial, *args, **kwargs)

    def _build_and_fit_model(self, trial, *args, **kwargs):
        """Build (or resume) and fit one trial; KerasTuner's documented override point."""
        hp = trial.hyperparameters
        trial_dir = Path(self.get_trial_dir(trial.trial_id))
        callbacks = kwargs["callbacks"]
        recorder = next(c for c in callbacks if isinstance(c, EpochRecorder))
        # Swap KerasTuner's best-epoch checkpoint for the atomic one.
        for i, c in enumerate(callbacks):
            if type(c) is tuner_utils.SaveBestEpoch:
                callbacks[i] = saver = AtomicSaveBestEpoch(c.objective, c.filepath)
        strategy = self.distribution_strategy
        resumed = None
        if resume_files(trial_dir):
            keras.backend.clear_session()  # _try_build does it on the other path
            with strategy.scope() if strategy is not None else contextlib.nullcontext():
                resumed = load_resume(trial_dir, trial.trial_id)
        if resumed is not None:
            model, done = resumed
            previous = _read_history(recorder.path).get("epochs", [])
            recorder.epochs = [e for e in previous if e["epoch"] <= done]
            if recorder.epochs:
                saver.best_value = max(e.get("val_accuracy", -math.inf) for e in recorder.epochs)
            kwargs["initial_epoch"] = done
            self._seconds_before[trial.trial_id] = sum(e["seconds"] for e in recorder.epochs)
            print(f"trial {trial.trial_id}: resuming from epoch {done}", flush=True)
        else:
            model = self._try_build(hp)  # a continuation loads its parent's checkpoint here
            recorder.epochs = []
        recorder.save()
        # What KerasTuner reads to rebuild this model for a continuation trial.
        records.atomic_write_json(
            self._get_build_config_fname(trial.trial_id), model.get_build_config()
        )
        callbacks.append(ResumeCheckpoint(trial_dir, self.stop, self.resume_every_s))
        args, kwargs = _arrays_as_datasets(args, kwargs)
        self.hypermodel.fit(hp, model, *args, **kwargs)
        # KerasTuner scores the trial from the whole trial's epochs, resumed or not.
        return _history_from(recorder.epochs)

    def _run_and_update_trial(self, trial, *fit_args, **fit_kwargs):
        try:
            return super()._run_and_update_trial(trial, *fit_args, **fit_kwargs)
        except Exception as exc:
            if _is_rpc_error(exc):  # not the trial's fault: keep it running on the chief
                raise ChiefLost(str(exc)) from exc
            raise

    def on_trial_end(self, trial):
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
        seconds = time.perf_counter() - self._started.pop(trial.trial_id, time.perf_counter())
        path = self.history_path(trial.trial_id)
        history = _read_history(path)
        seconds += self._seconds_before.pop(trial.trial_id, 0.0)
        history["seconds"] = round(seconds, 3)
        records.atomic_write_json(path, history)
        clear_resume_files(Path(self.get_trial_dir(trial.trial_id)))
        super().on_trial_end(trial)  # the oracle records the trial and saves its state
        self.trials_run += 1
        if trial.status != trial_module.TrialStatus.COMPLETED:
            self._log_failure(trial, history.get("failure") or _last_line(trial.message))
        if self._is_worker():  # the chief keeps the tables
            epochs = history.get("epochs", [])
            best = max((e.get("val_accuracy", 0.0) for e in epochs), default=float("nan"))
            print(
                f"[{self.tuner_id}] trial {trial.trial_id} {trial.status.lower()}: best "
                f"val_accuracy {best:.4f} ({seconds:.0f} s)",
                flush=True,
            )
            return
        if self.prune_checkpoints:
            self.prune()
        rows = self.write_results()
        print(self._trial_line(trial.trial_id, rows), flush=True)

    def on_search_end(self):
        super().on_search_end()
        if self._is_worker():
            return
        if self.prune_checkpoints:
            self.prune()
        self.write_results()

    # -- failures, disk ------------------------------------------------------------------
    def _log_failure(self, trial, reason: str | None) -> None:
        """Mark the trial failed in TensorBoard: a text summary and the HParams status."""
        import tensorflow as tf
        from tensorboard.plugins.hparams import api_pb2
        from tensorboard.plugins.hparams import summary as hp_summary

        logdir = self.run_dir / "tensorboard" / trial.trial_id / "execution0"
        writer = tf.summary.create_file_writer(str(logdir))
        with writer.as_default():
            tf.summary.text("failure", f"trial {trial.trial_id} failed: {reason}", step=0)
            pb = hp_summary.session_end_pb(api_pb2.STATUS_FAILURE)
            tf.summary.experimental.write_raw_pb(pb.SerializeToString(), step=0)
        writer.close()

    def prune(self) -> list[str]:
        """Delete best-epoch checkpoints that no remaining round can load."""
        needed = self.oracle.checkpoints_needed()
        pruned = []
        for trial_id, trial in self.oracle.trials.items():
            if trial.status in FINISHED and trial_id not in needed:
                path = Path(self.get_trial_dir(trial_id)) / CHECKPOINT
                if path.exists():
                    path.unlink()
                    pruned.append(trial_id)
        return pruned

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
                "disk_mb": round(self.trial_disk_bytes(trial_id) / 2**20, 3),
                "message": history.get("failure") or _last_line(trial.message),
            }
            if trial.status == trial_module.TrialStatus.COMPLETED and trial.best_step is not None:
                best = int(trial.best_step)  # index into this trial's own epochs
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

    def trial_disk_bytes(self, trial_id: str) -> int:
        total = 0
        for folder in (self.run_dir / f"trial_{trial_id}", self.run_dir / "tensorboard" / trial_id):
            for path in folder.rglob("*"):
                if path.is_file():
                    total += path.stat().st_size
        return total

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

    def _trial_line(self, trial_id: str, rows: list[dict]) -> str:
        row = next(r for r in rows if r["trial_id"] == trial_id)
        elapsed = (time.perf_counter() - self._search_started) / 60
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
        new = done - (self._epochs_at_start or 0)
        if self.planned_epochs and new > 0 and done < self.planned_epochs:
            from tuning.cost import format_duration

            eta = elapsed * 60 / new * (self.planned_epochs - done)
            text += f"; {done}/{self.planned_epochs} epochs, ETA {format_duration(eta)}"
        return text


def _arrays_as_datasets(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """fit(x, y, batch_size=, shuffle=, validation_data=(x, y)) on our own tf.data pipeline.

    Keras turns arrays into an autotuned tf.data pipeline whose teardown at the end of
    each fit stalls at random (tuning.data.as_dataset); ours has autotuning off.
    """
    if len(args) != 2 or not all(isinstance(a, np.ndarray) for a in args):
        return args, kwargs
    kwargs = dict(kwargs)
    batch_size = kwargs.pop("batch_size", None) or 32  # Keras' default
    shuffle = kwargs.pop("shuffle", True)
    kwargs["shuffle"] = False  # the dataset shuffles itself (fit's default would warn)
    fit_args = (as_dataset(*args, batch_size, shuffle=bool(shuffle)),)
    valid = kwargs.get("validation_data")
    if isinstance(valid, tuple) and len(valid) == 2:
        kwargs["validation_data"] = as_dataset(*valid, batch_size, shuffle=False)
    return fit_args, kwargs


def _is_rpc_error(exc: BaseException) -> bool:
    import grpc  # a KerasTuner dependency; imported late like its distribute module

    return isinstance(exc, grpc.RpcError)


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
