"""``--time-budget MINUTES``: a search sized to the time it is given, and stopped when it runs out.

KerasTuner has no time limit (keras-tuner #249); Optuna (``timeout``) and Ray Tune
(``time_budget_s``) do. Two parts:

- sizing, for a new run only: the calibrated cost model (``tuning.machine.cost``) prices the
  Hyperband plan plus the confirmation stage for a ladder of plans, from the default one
  down to a 1-epoch search on 3,000 images per trial, and the first that fits is used. A
  resumed run keeps the plan it recorded (its definition must not change), so rerunning
  with a larger budget continues the same run;
- the deadline: when the budget has passed (counted from the command's start), the search
  stops at the next epoch boundary exactly as on Ctrl-C (the trial's state saved), writes
  its tables and exits 0; the confirmation stage stops between or inside trainings (an
  unfinished training is dropped, the finished ones kept). ``tuning.finalize`` works on
  whatever was found.
"""

from __future__ import annotations

import dataclasses
import threading
import time

import keras

from tuning.config import DEFAULT_CONFIRM_EPOCHS_FACTOR, SearchConfig
from tuning.machine.cost import Calibration, estimate_seconds, format_duration
from tuning.plan import hyperband_plan
from tuning.retrain.training import epochs_times
from tuning.rundir.resume import GracefulStop, SearchInterrupted

# (max_epochs, images per trial), most thorough first; the default plan is the first rung,
# tried with the run's Hyperband iterations, then with fewer; later rungs use one iteration.
LADDER = ((9, 12000), (9, 6000), (6, 6000), (3, 6000), (3, 3000), (2, 3000), (1, 3000))


def ladder(iterations: int) -> list[tuple[int, int, int]]:
    """The plans a budget chooses from, as (iterations, max_epochs, images per trial)."""
    (epochs, images), rest = LADDER[0], LADDER[1:]
    first = [(n, epochs, images) for n in range(iterations, 0, -1)]
    return first + [(1, e, i) for e, i in rest]


def planned_seconds(config: SearchConfig, calibration: Calibration, n_train: int, n_valid: int):
    """What the plan (trials, then the confirmation stage) costs by the cost model."""
    images = n_train if config.trial_images is None else min(config.trial_images, n_train)
    plan = hyperband_plan(config.max_epochs, config.factor, config.hyperband_iterations)
    trials = estimate_seconds(config.space, plan.epochs, plan.trials, images, n_valid, calibration)
    # at most confirm_top candidates per list ("both": the top and the size classes'), each
    # as long as the longest lineage; on --confirm-images, as many image passes as on the
    # trials' images (fewer epochs, so fewer validation passes)
    lists = 2 if config.confirm_candidates == "both" else 1
    trainings = lists * config.confirm_top * config.confirm_seeds
    seen = images if config.confirm_images is None else min(config.confirm_images, n_train)
    epochs = epochs_times(config.max_epochs, DEFAULT_CONFIRM_EPOCHS_FACTOR * images / seen)
    confirm = estimate_seconds(
        config.space, trainings * epochs, trainings, seen, n_valid, calibration
    )
    return trials + (confirm if trainings else 0.0)


def size_to_budget(config: SearchConfig, calibration: Calibration, n_train: int,
                   n_valid: int) -> tuple[SearchConfig, float]:  # fmt: skip
    """The most thorough plan of the ladder that fits the budget (else the smallest), and
    its estimated seconds."""
    budget_s = 60.0 * config.time_budget_min
    sized = config
    for iterations, max_epochs, images in ladder(config.hyperband_iterations):
        sized = dataclasses.replace(
            config, hyperband_iterations=iterations, max_epochs=max_epochs, trial_images=images
        )
        seconds = planned_seconds(sized, calibration, n_train, n_valid)
        if seconds <= budget_s:
            return sized, seconds
    return sized, planned_seconds(sized, calibration, n_train, n_valid)


def describe_sizing(config: SearchConfig, seconds: float) -> str:
    return (
        f"time budget {config.time_budget_min:g} min: plan sized to "
        f"{config.hyperband_iterations} Hyperband iteration(s), max_epochs="
        f"{config.max_epochs}, {config.trial_images:,} images per trial, confirmation "
        f"{config.confirm_top} x {config.confirm_seeds} ({config.confirm_candidates}"
        f"{'' if config.confirm_images is None else f', on {config.confirm_images:,} images'})"
        f"; estimated {format_duration(seconds)}"
    )


class Deadline:
    """When the budget has passed, ask the search to stop after the current epoch."""

    def __init__(self, minutes: float | None, stop: GracefulStop, started: float) -> None:
        self.minutes, self.stop, self.started = minutes, stop, started
        self.expired = False
        self._timer: threading.Timer | None = None

    def __enter__(self) -> Deadline:
        if self.minutes is not None:
            left = max(0.0, self.started + 60.0 * self.minutes - time.monotonic())
            self._timer = threading.Timer(left, self.expire)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def expire(self) -> None:
        """The budget is used up: stop after the current epoch."""
        self.expired = True
        self.stop.requested = True
        print(
            f"time budget of {self.minutes:g} min reached: stopping after the current epoch",
            flush=True,
        )

    def callback(self) -> keras.callbacks.Callback:
        """Stops a training of the confirmation stage at its next epoch boundary."""
        deadline = self

        class StopAtDeadline(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if deadline.expired:
                    raise SearchInterrupted("time budget reached")

        return StopAtDeadline()
