"""Train one network from scratch, and evaluate it: the one way this project retrains.

The finalizer, the ablation, the search's confirmation, the search's cost calibration and
the accuracy benchmarks all call ``retrain``: a configuration, a run's settings (recipe,
batch size, precision) and a ``Schedule`` in; the network, its per-epoch curves and its
status (ok or diverged) out. Every training runs on ``hypermodels.inputs.as_dataset``
(the trials' pipeline), is seeded (so ``--deterministic`` holds: a random op without a
seed is an error once op determinism is on) and logs to TensorBoard when given a folder.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hypermodels.recipe import Recipe
from tuning.config import TEST_TIME_AUGMENTATIONS, Schedule
from tuning.data import CLASS_NAMES, NUM_CLASSES


@dataclass(frozen=True)
class TrainingSettings:
    """Everything a retraining needs besides the configuration and its epochs."""

    seed: int
    subset: int | None
    batch_size: int
    recipe: Recipe
    precision: str | None  # a Keras dtype policy, resolved (None: Keras' default)
    data_dir: str | None


@dataclass
class Trained:
    model: object  # keras.Model
    history: dict[str, list[float]]  # per epoch: loss, accuracy (and val_* with validation)
    seconds: float  # inside fit

    @property
    def diverged(self) -> bool:
        """A non-finite training loss in any epoch: the network's weights mean nothing."""
        return not all(math.isfinite(v) for v in self.history.get("loss", []))

    @property
    def status(self) -> str:
        """What a results row records: ``ok`` or ``diverged``."""
        return "diverged" if self.diverged else "ok"

    def last(self, key: str) -> float:
        """The last epoch's value of a curve (NaN when the curve is missing or empty)."""
        values = self.history.get(key) or [math.nan]
        return float(values[-1])


def epochs_times(lineage_epochs: int, factor: float) -> int:
    """``factor`` x a trial's lineage epochs, rounded up, at least one: the one rule by
    which the finalizer, the ablation and the confirmation size a retraining."""
    return max(1, math.ceil(factor * lineage_epochs - 1e-9))


def learning_rate(schedule: Schedule, searched: float, n_images: int, batch_size: int,
                  epochs: int):  # fmt: skip
    """The schedule as ``fit`` takes it: a number, or Keras' warm-up + cosine decay."""
    peak = schedule.peak(searched)[0]
    if schedule.kind != "cosine":
        return peak
    from hypermodels.optim import warmup_cosine

    steps_per_epoch = math.ceil(n_images / batch_size)
    return warmup_cosine(peak, steps_per_epoch * epochs, steps_per_epoch * schedule.warmup_epochs)


def retrain(
    hp: dict,
    settings: TrainingSettings,
    schedule: Schedule,
    data: tuple[np.ndarray, np.ndarray],
    *,
    epochs: int,
    seed: int,
    mean: np.ndarray | None = None,
    variance: np.ndarray | None = None,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    logdir: Path | None = None,
    callbacks: list | None = None,
    verbose: int = 0,
) -> Trained:
    """``hp``'s network built with ``settings.recipe`` and trained from scratch under
    ``schedule`` for ``epochs`` epochs, every random choice drawn from ``seed``."""
    import keras  # late: TensorFlow's import takes seconds, and only training needs it

    from hypermodels.inputs import as_dataset
    from hypermodels.resnet import build_resnet

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    n_images, batch_size = len(data[1]), settings.batch_size
    rate = learning_rate(schedule, hp["learning_rate"], n_images, batch_size, epochs)
    model = build_resnet(**{**hp, "learning_rate": rate}, recipe=settings.recipe, mean=mean,
                         variance=variance, precision=settings.precision)  # fmt: skip
    callbacks = list(callbacks or [])
    if logdir is not None:
        callbacks.append(keras.callbacks.TensorBoard(str(logdir), write_graph=False))
    if validation is not None:
        validation = as_dataset(*validation, batch_size, shuffle=False)
    t0 = time.perf_counter()
    history = model.fit(
        as_dataset(*data, batch_size, shuffle=True),
        epochs=epochs,
        shuffle=False,  # the dataset reshuffles itself every epoch
        validation_data=validation,
        callbacks=callbacks,
        verbose=verbose,
    ).history
    seconds = time.perf_counter() - t0
    return Trained(model, {k: [float(v) for v in vals] for k, vals in history.items()}, seconds)


def predict(model, x: np.ndarray, tta: str = "none", batch_size: int = 1000) -> np.ndarray:
    """Class probabilities; with ``tta="flip"`` the mean of the image's and its mirror's.

    A mirrored garment is the same garment (the finalizer trains with flips), so the two
    views are two looks at one image; averaging their probabilities is the usual flip
    test-time augmentation. Takes (N, 28, 28) and (N, 28, 28, 1) arrays alike, and an
    empty one (which ``model.predict`` itself cannot take).
    """
    if tta not in TEST_TIME_AUGMENTATIONS:
        raise ValueError(f"unknown test-time augmentation {tta!r}")
    x = np.asarray(x)
    if x.ndim == 4 and x.shape[-1] == 1:  # the saved model's input is (N, 28, 28)
        x = x[..., 0]
    if len(x) == 0:
        return np.zeros((0, NUM_CLASSES))
    probs = model.predict(x, batch_size=batch_size, verbose=0).astype(np.float64)
    return probs if tta == "none" else mirrored_mean(model, x, probs, batch_size)


def scores(probs: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of probabilities against labels."""
    loss = float(np.mean(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0))))
    return float(np.mean(probs.argmax(axis=1) == y)), loss


def evaluate(model, x: np.ndarray, y: np.ndarray, tta: str = "none",
             batch_size: int = 1000) -> dict:  # fmt: skip
    """One look at a labelled set: accuracy, loss, per-class accuracy, confusion matrix.

    With ``tta="flip"`` the headline numbers are the two views' average, and the single
    view's accuracy and loss are reported beside them (computed in the same look).
    """
    if tta not in TEST_TIME_AUGMENTATIONS:
        raise ValueError(f"unknown test-time augmentation {tta!r}")
    single = predict(model, x, "none", batch_size)
    probs = single if tta == "none" else mirrored_mean(model, x, single, batch_size)
    accuracy, loss = scores(probs, y)
    pred = probs.argmax(axis=1)
    confusion = np.bincount(y * NUM_CLASSES + pred, minlength=NUM_CLASSES**2).reshape(
        NUM_CLASSES, NUM_CLASSES
    )
    per_class = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    result = {
        "test_accuracy": accuracy,
        "test_loss": loss,
        "tta": tta,
        "per_class_accuracy": {
            name: float(a) for name, a in zip(CLASS_NAMES, per_class, strict=True)
        },
        "confusion_matrix": confusion.tolist(),
    }
    if tta != "none":
        result["test_accuracy_single_view"], result["test_loss_single_view"] = scores(single, y)
    return result


def mirrored_mean(model, x: np.ndarray, single: np.ndarray, batch_size: int):
    """The flip average, reusing the single view's probabilities already computed."""
    mirrored = np.ascontiguousarray(x[:, :, ::-1])
    mirror = model.predict(mirrored, batch_size=batch_size, verbose=0).astype(np.float64)
    return (single.astype(np.float64) + mirror) / 2.0
