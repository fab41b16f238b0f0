"""What every searcher shares: the project's defaults, one seed's data, the clock, the picks.

This is the only module of ``peerlib`` that imports ``tuning``. Public names: ``tuning.config``
(defaults) and ``tuning.data`` (the data and its split). Internal names, imported here alone
so that a move inside ``tuning`` is re-pointed in one place:

- ``tuning.engine.trial_training_set``: which training images a trial sees;
- ``tuning.machine.precision.resolve``: ``--precision auto``'s choice;
- ``tuning.retrain.calibration.calibrate``: the training rate (GFLOP/s), kept with each row;
- ``tuning.errors.ProjectError``: the project's one-line errors (a missing data folder).

Nothing here imports TensorFlow at import time: a bad flag is refused in well under a second.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hypermodels.recipe import Recipe
from hypermodels.space import SearchSpace
from tuning.config import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_FACTOR,
    DEFAULT_MAX_EPOCHS,
    DEFAULT_RECIPE,
    DEFAULT_TRIAL_IMAGES,
    VALID_FRACTION,
)
from tuning.data import load_splits, resolve_source, validate_subset
from tuning.errors import ProjectError
from tuning.rundir.records import read_csv_rows, write_csv_rows  # noqa: F401  (for table)

SPACE = SearchSpace()  # the default four hyperparameters, as the default search has them
SPACE_NAMES = ("blocks", "filters", "skip", "learning_rate")
BATCH_SIZE = DEFAULT_BATCH_SIZE
MAX_EPOCHS = DEFAULT_MAX_EPOCHS
FACTOR = DEFAULT_FACTOR
# How the peers train a network, apart from its learning rate. "search": the recipe of the
# default search's trials (SGD momentum 0.9, batch-norm momentum 0.9), so that the searchers
# differ only in how they search; "lab": the hypermodel's own default (plain SGD, Keras'
# batch-norm momentum), what ``ResNetHyperModel()`` gives a user who passes nothing.
RECIPES: dict[str, Recipe] = {"search": DEFAULT_RECIPE, "lab": Recipe()}


class UsageError(Exception):
    """A bad flag or input file: one line on stderr, exit status 2."""


class RunFailed(Exception):
    """A searcher could not finish (ours' subprocess failed): one line, exit status 1."""


def check_data_args(data_dir: str | None, subset: int | None) -> None:
    """The data folder exists and the subset can be split, before anything is loaded."""
    try:
        resolve_source(data_dir)
        validate_subset(subset, round(60000 * (1 - VALID_FRACTION)), VALID_FRACTION)
    except ProjectError as exc:
        raise UsageError(str(exc)) from None


def resolve_precision(requested: str) -> str:
    """The Keras dtype policy ``tuning.search --precision`` would train with."""
    from tuning.machine.precision import resolve

    try:
        return resolve(requested)
    except ProjectError as exc:
        raise UsageError(str(exc)) from None


def gflops(precision: str) -> float:
    """The project's cost calibration: a few timed training steps of a mid-sized network."""
    from tuning.retrain.calibration import calibrate

    return calibrate(SPACE, BATCH_SIZE, precision).flops_per_second / 1e9


@dataclass
class Data:
    """One seed's data exactly as the default search sees it: the trials' training images
    (a fixed stratified part of the training split) and the whole validation split."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    mean: np.ndarray  # per-pixel statistics of the whole training split, as the search's
    variance: np.ndarray


def load_data(data_dir: str | None, seed: int, subset: int | None) -> Data:
    from tuning.engine import trial_training_set

    splits = load_splits(data_dir, seed, VALID_FRACTION, subset)
    x, y = trial_training_set(splits, DEFAULT_TRIAL_IMAGES, seed)
    return Data(x, y, splits.x_valid, splits.y_valid, splits.mean, splits.variance)


class Clock:
    """A searcher's wall-clock budget, counted from its construction."""

    def __init__(self, budget_s: float | None) -> None:
        self.start = time.monotonic()
        self.budget_s = budget_s
        self.deadline = math.inf if budget_s is None else self.start + budget_s

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline


def config(blocks, filters, skip, learning_rate) -> dict:
    """A picked configuration with plain Python types."""
    return {
        "blocks": int(blocks),
        "filters": int(filters),
        "skip": bool(skip),
        "learning_rate": float(learning_rate),
    }


@dataclass
class Picks:
    """What a searcher would answer if asked now, each time that changes.

    A trial counts once it has finished inside the budget; one still running when the
    budget ends is cut short and left out (its score was not reached in time).
    """

    clock: Clock
    finished: int = 0
    best: dict | None = None  # {"config": ..., "score": ...}
    history: list[dict] = field(default_factory=list)  # {"seconds", "config", "score"}

    def offer(self, values: dict | None, score: float | None) -> bool:
        """A finished trial (``values`` None or ``score`` None: one that gave no score).
        Returns False once the budget is spent (the trial is not counted)."""
        if self.clock.expired():
            return False
        self.finished += 1
        if values is None or score is None or not math.isfinite(score):
            return True
        if self.best is None or score > self.best["score"]:
            self.set(config(*(values[k] for k in SPACE_NAMES)), float(score))
        return True

    def set(self, picked: dict, score: float | None) -> None:
        """The searcher's own answer changed (ours reports it rather than its trials)."""
        self.best = {"config": picked, "score": score}
        self.history.append({"seconds": self.clock.elapsed(), "config": picked, "score": score})


@dataclass
class Outcome:
    """What one searcher x seed run produced (one row of the results CSV)."""

    picks: Picks
    wall_s: float
    own_kind: str  # what the searcher's own validation score is


def deadline_callback(clock: Clock):
    """A Keras callback that stops a training at the first batch past the deadline."""
    import keras

    class Deadline(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if time.monotonic() >= clock.deadline:
                self.model.stop_training = True

    return Deadline()


@dataclass
class Job:
    """One searcher x seed: what a searcher's ``run(job)`` gets."""

    seed: int
    budget_s: float | None  # None: no limit (ours alone, when it sets the budget)
    precision: str  # a Keras dtype policy, the same for every searcher
    recipe: Recipe  # how the peers train a network (RECIPES)
    work_dir: Path  # this searcher x seed's own scratch folder, emptied before the run
    data_dir: str | None
    subset: int | None
    data: Data | None  # the peers' data, loaded once per seed (ours loads its own)
