"""KerasTuner's Hyperband with the bookkeeping and crash safety users expect: hooks only.

On top of ``keras_tuner.Hyperband`` this tuner
- installs the atomic oracle (``engine.oracle``) and writes its own state atomically;
- seeds every trial from the run seed and the trial id (weights and shuffling);
- records each epoch in ``trial_<id>/history.json`` and fails a trial whose loss turns
  NaN/inf (``engine.callbacks``), marking it in TensorBoard (``engine.hparams``);
- resumes an interrupted trial from its last saved epoch (``tuning.rundir.resume``);
- rewrites ``trials.csv``/``best.json`` after every trial (``engine.results``), prunes
  checkpoints no later round can load, and prints one line per trial
  (``engine.progress``).
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

from tuning.engine.callbacks import AtomicSaveBestEpoch, EpochRecorder, history_from, read_history
from tuning.engine.hparams import log_trial_failure
from tuning.engine.oracle import AtomicHyperbandOracle, count_finished
from tuning.engine.progress import Progress, trial_plan
from tuning.engine.results import last_line, trial_rows, write_results
from tuning.engine.worker import ChiefLost, Heartbeat, is_rpc_error, polite_client
from tuning.errors import EnvironmentFailure, environment_failure
from tuning.kt_internals import FINISHED, SaveBestEpoch, TrialStatus, TunerAdapter
from tuning.rundir import records
from tuning.rundir.resume import (
    CHECKPOINT,
    PRUNED,
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


class MachineFailure(EnvironmentFailure, keras_tuner.errors.FatalError):
    """Disk full, read-only, no permission during a trial: KerasTuner must not record the
    trial as failed (it stays running and resumes); the search stops with one line."""


class ResNetHyperband(TunerAdapter):
    """Hyperband that keeps trials.csv/best.json current, seeds and resumes trials."""

    def __init__(
        self,
        hypermodel,
        *,
        objective: str = "val_accuracy",
        max_epochs: int = 9,
        factor: int = 3,
        hyperband_iterations: int = 1,
        sampler: str = "balanced",
        seed: int = 0,
        max_consecutive_failed_trials: int = 3,
        planned_trials: int | None = None,
        planned_epochs: int | None = None,
        prune_checkpoints: bool = False,
        resume_every_s: float = 0.0,
        **kwargs,
    ):
        self.run_seed = seed
        self.progress = Progress(planned_trials, planned_epochs)
        self.prune_checkpoints = prune_checkpoints
        self.resume_every_s = resume_every_s
        self.stop = GracefulStop()
        self._started: dict[str, float] = {}
        self._seconds_before: dict[str, float] = {}  # training time before a resume
        oracle = AtomicHyperbandOracle(
            objective,
            max_epochs=max_epochs,
            factor=factor,
            hyperband_iterations=hyperband_iterations,
            sampler=sampler,
            # KerasTuner replaces a falsy seed (our default 0) by a random one.
            seed=seed + 1,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
        )
        super().__init__(oracle, hypermodel, **kwargs)
        self._heartbeat = None
        self.trials_run = 0
        if self.is_worker:
            self.oracle = polite_client(self.oracle)

    def tuner_file(self):
        # One state file for a run searched alone or by a chief (KerasTuner would name
        # it after the tuner id), so a run can switch between the two and resume.
        if self.is_worker:
            return super().tuner_file()
        return os.path.join(str(self.project_dir), "tuner0.json")

    # -- paths and state ----------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        return Path(self.project_dir)

    def history_path(self, trial_id: str) -> Path:
        return Path(self.get_trial_dir(trial_id)) / records.HISTORY_FILE

    def save(self):
        if not self.is_worker:
            self.oracle.save()
        records.atomic_write_json(self.tuner_file(), self.get_state())

    def search(self, *fit_args, **fit_kwargs):
        with frozen_startup_objects():
            return super().search(*fit_args, **fit_kwargs)

    def finished_trials(self) -> int:
        return count_finished(self.oracle)

    # -- hooks --------------------------------------------------------------------------
    def on_search_begin(self):
        super().on_search_begin()
        # Our one-line progress replaces KerasTuner's per-trial tables; the fit
        # verbosity (per-epoch lines) is still the user's --verbose.
        self.oracle.verbose = 0
        if not self.is_worker:
            self.progress.restart(self.trial_rows())

    def on_trial_begin(self, trial):
        if self.stop.requested:
            raise SearchInterrupted("stopped before the next trial")
        super().on_trial_begin(trial)
        self._started[trial.trial_id] = time.perf_counter()
        values = trial.hyperparameters.values
        if self.is_worker:
            self._heartbeat = Heartbeat(self.oracle, trial.trial_id).start()
            line = f"[{self.tuner_id}] trial id {trial.trial_id}: " + trial_plan(values)
        else:
            line = self.progress.trial_started(self.finished_trials() + 1, trial.trial_id, values)
        print(line, flush=True)

    def run_trial(self, trial, *args, **kwargs):
        # Same seed + same trial id -> same initial weights and same shuffling.
        keras.utils.set_random_seed(self.trial_seed(trial.trial_id))
        kwargs["callbacks"] = [
            *kwargs.get("callbacks", []),
            EpochRecorder(self.history_path(trial.trial_id), dict(trial.hyperparameters.values)),
        ]
        return super().run_trial(trial, *args, **kwargs)

    def build_and_fit(self, trial, *args, **kwargs):
        """Build (or resume) and fit one trial; KerasTuner's documented override point."""
        trial_dir = Path(self.get_trial_dir(trial.trial_id))
        callbacks = kwargs["callbacks"]
        recorder = next(c for c in callbacks if isinstance(c, EpochRecorder))
        # Swap KerasTuner's best-epoch checkpoint for the atomic one.
        for i, c in enumerate(callbacks):
            if type(c) is SaveBestEpoch:
                callbacks[i] = saver = AtomicSaveBestEpoch(c.objective, c.filepath)
        resumed = self._load_resume(trial, trial_dir)
        if resumed is not None:
            model, done = resumed
            previous = read_history(recorder.path).get("epochs", [])
            recorder.epochs = [e for e in previous if e["epoch"] <= done]
            if recorder.epochs:
                saver.best_value = max(e.get("val_accuracy", -math.inf) for e in recorder.epochs)
            kwargs["initial_epoch"] = done
            self._seconds_before[trial.trial_id] = sum(e["seconds"] for e in recorder.epochs)
            print(f"trial {trial.trial_id}: resuming from epoch {done}", flush=True)
        else:
            model = self.try_build(trial.hyperparameters)  # a continuation loads its parent
            recorder.epochs = []
        recorder.save()
        # What KerasTuner reads to rebuild this model for a continuation trial.
        records.atomic_write_json(self.build_config_file(trial.trial_id), model.get_build_config())
        callbacks.append(ResumeCheckpoint(trial_dir, self.stop, self.resume_every_s))
        self.hypermodel.fit(trial.hyperparameters, model, *args, **kwargs)
        # KerasTuner scores the trial from the whole trial's epochs, resumed or not.
        return history_from(recorder.epochs)

    def _load_resume(self, trial, trial_dir: Path):
        if not resume_files(trial_dir):
            return None
        keras.backend.clear_session()  # _try_build does it on the other path
        strategy = self.distribution_strategy
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            return load_resume(trial_dir, trial.trial_id)

    def run_and_update(self, trial, *fit_args, **fit_kwargs):
        try:
            return super().run_and_update(trial, *fit_args, **fit_kwargs)
        except Exception as exc:
            if is_rpc_error(exc):  # not the trial's fault: keep it running on the chief
                raise ChiefLost(str(exc)) from exc
            what = environment_failure(exc)
            if what is not None:  # not the trial's fault either: stop, it resumes later
                raise MachineFailure(what, exc) from exc
            raise

    def on_trial_end(self, trial):
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
        history, seconds = self._close_history(trial.trial_id)
        clear_resume_files(Path(self.get_trial_dir(trial.trial_id)))
        super().on_trial_end(trial)  # the oracle records the trial and saves its state
        self.trials_run += 1
        if trial.status != TrialStatus.COMPLETED:
            reason = history.get("failure") or last_line(trial.message)
            log_trial_failure(self.run_dir / "tensorboard", trial.trial_id, reason)
        if self.is_worker:  # the chief keeps the tables
            epochs = history.get("epochs", [])
            best = max((e.get("val_accuracy", 0.0) for e in epochs), default=float("nan"))
            print(
                f"[{self.tuner_id}] trial {trial.trial_id} {trial.status.lower()}: best "
                f"val_accuracy {best:.4f} ({seconds:.0f} s)",
                flush=True,
            )
            return
        print(self.trial_finished(trial.trial_id), flush=True)

    def _close_history(self, trial_id: str) -> tuple[dict, float]:
        """Record the trial's training time (before a resume too) in its history.json."""
        seconds = time.perf_counter() - self._started.pop(trial_id, time.perf_counter())
        seconds += self._seconds_before.pop(trial_id, 0.0)
        path = self.history_path(trial_id)
        history = read_history(path)
        history["seconds"] = round(seconds, 3)
        records.atomic_write_json(path, history)
        return history, seconds

    def on_search_end(self):
        super().on_search_end()
        if self.is_worker:
            return
        if self.prune_checkpoints:
            self.prune()
        self.write_results()

    # -- results ------------------------------------------------------------------------
    def trial_finished(self, trial_id: str) -> str:
        """After a trial ends (here or on a worker): prune, rewrite the tables, one line."""
        if self.prune_checkpoints:
            self.prune()
        return self.progress.trial_ended(trial_id, self.write_results())

    def prune(self) -> list[str]:
        """Delete best-epoch checkpoints that no remaining round can load."""
        needed = self.oracle.checkpoints_needed()
        pruned = []
        for trial_id, trial in self.oracle.trials.items():
            if trial.status in FINISHED and trial_id not in needed:
                path = Path(self.get_trial_dir(trial_id)) / CHECKPOINT
                if path.exists():
                    # The marker first: a rerun must not take the gap for damage.
                    records.atomic_write_text(path.with_name(PRUNED), "pruned\n")
                    path.unlink()
                    pruned.append(trial_id)
        return pruned

    def trial_seed(self, trial_id: str) -> int:
        digits = "".join(ch for ch in str(trial_id) if ch.isdigit()) or "0"
        return (self.run_seed * 100_003 + int(digits)) % (2**31 - 1)

    def trial_rows(self) -> list[dict]:
        return trial_rows(self.oracle, self.run_dir, self.history_path)

    def write_results(self) -> list[dict]:
        return write_results(self.run_dir, self.trial_rows())
