"""Retrain the chosen configuration from scratch and test it once: the finalizer's engine.

Chooses the hyperparameters (the search's best trial, ``--trial ID``, or explicit
``--hyperparameters``), retrains for ``--epochs-factor`` x the epochs behind that trial's
best weights (its whole Hyperband lineage), on train+valid by default, and evaluates
exactly once on the official 10k test set. Everything lands in ``<run>/final/``:
``model.keras`` (takes raw uint8 28x28 images), ``report.json``, ``report.md`` and
TensorBoard logs, assembled in ``final.partial/`` and renamed at the end.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from tuning.config import VALID_FRACTION, FinalizeConfig, Schedule, resolve_tta
from tuning.data import fit_standardizer, load_arrays, load_splits
from tuning.errors import ProjectError
from tuning.machine.memory import check_fits
from tuning.retrain.selection import (
    Choice,
    choose_configuration,
    confirmation_note,
    epochs_from_lineage,
    inherited_settings,
    resolved,
    searched_trial_schedule,
)
from tuning.retrain.training import Trained, TrainingSettings, evaluate, retrain
from tuning.rundir import records
from tuning.rundir.folders import StagedFolder, provenance
from tuning.rundir.lock import RunLock
from tuning.show.markdown import final_markdown
from tuning.tfstartup import quiet_tensorflow_startup


@dataclass
class FitData:
    """What the final network trains on, and its standardization statistics."""

    x: np.ndarray
    y: np.ndarray
    mean: np.ndarray
    variance: np.ndarray
    validation: tuple[np.ndarray, np.ndarray] | None
    splits: object  # tuning.data.Splits
    load_s: float


def run_finalize(config: FinalizeConfig) -> dict:
    """Retrain and test once; returns the report written to ``final/report.json``.

    The run directory is this process's meanwhile (``tuning.rundir.lock``): a second finalize
    would mix its TensorBoard logs with ours, a search would move trials.csv under us.
    A missing run directory is created only for explicit --hyperparameters.
    """
    with RunLock(config.run_dir, what="finalize", create=config.hyperparameters is not None):
        return finalize_locked(config)


def finalize_locked(config: FinalizeConfig) -> dict:
    """The finalizer's steps, under the run directory's lock."""
    t_start = time.perf_counter()
    choice = choose_configuration(config.run_dir, config.trial, config.hyperparameters)
    staged = StagedFolder(config.run_dir / "final", config.overwrite)
    staged.check()
    epochs, epochs_source = planned_epochs(config, choice)
    trial_schedule = searched_trial_schedule(config.run_dir)
    schedule = config.schedule_for(trial_schedule)
    schedule.check_epochs(epochs)
    settings = inherited_settings(config.run_dir, config.options, resolve=False)
    tta = resolve_tta(config.tta, settings.recipe.augment)
    quiet_tensorflow_startup()  # not before: the checks above need none, so refuse at once
    settings = resolved(settings)  # "auto" probes the devices
    hp = choice.hyperparameters
    data = load_fit_data(settings, config.train_on)
    for warning in (
        confirmation_note(choice, trial_schedule),
        check_fits(hp["blocks"], hp["filters"], settings.batch_size, "the final network",
                   images=len(data.y)),
    ):  # fmt: skip
        if warning:
            print(warning, flush=True)
    folder = staged.start()
    searched = choice.hyperparameters["learning_rate"]
    peak_lr, schedule_text = schedule.peak(searched)[0], schedule.describe(searched, epochs)
    print(
        f"finalize: {choice.hyperparameters} for {epochs} epochs ({epochs_source}) on "
        f"{config.train_on} ({len(data.y):,} images), batch {settings.batch_size}, "
        f"{settings.recipe.describe()}, lr {schedule_text}, seed {settings.seed}, "
        f"precision {settings.precision}; the test set is read once, "
        f"{'with flip TTA' if tta == 'flip' else 'single view'}",
        flush=True,
    )
    trained = train_final(config, schedule, choice, settings, data, epochs, folder)
    check_converged(trained, config, schedule)
    model = saved_model(trained, choice, settings, data, folder)
    validation = validation_summary(trained.history, model, data.validation, tta)
    result, x_test_size, eval_s = test_once(model, settings, tta)
    report = final_report(config, schedule, choice, settings, data, trained,
                          (epochs, epochs_source), (peak_lr, schedule_text))  # fmt: skip
    report.update(result)
    report["sizes"]["test"] = x_test_size
    report["timings"]["eval_s"] = eval_s
    if validation:
        report["validation"] = validation
    report["timings"]["total_s"] = time.perf_counter() - t_start
    records.atomic_write_json(folder / "report.json", report)
    records.atomic_write_text(folder / "report.md", final_markdown(report))
    final_dir = staged.commit()
    print_result(report, final_dir)
    return report


def final_report(config, schedule: Schedule, choice: Choice, settings, data: FitData,
                 trained: Trained, epochs: tuple[int, str],
                 rate: tuple[float, str]) -> dict:  # fmt: skip
    """report.json without the test results: what was trained, how, and from what."""
    (epochs, epochs_source), (peak_lr, schedule_text) = epochs, rate
    return {
        "hyperparameters": choice.hyperparameters,
        "momentum": settings.recipe.momentum,
        "nesterov": settings.recipe.nesterov,
        "schedule": schedule_text,
        "peak_learning_rate": peak_lr,
        "lr_scale": schedule.lr_scale,
        "max_lr": schedule.max_lr,
        "min_lr": schedule.min_lr,
        "weight_decay": settings.recipe.weight_decay,
        "label_smoothing": settings.recipe.label_smoothing,
        "augment": list(settings.recipe.augment),
        "bn_momentum": settings.recipe.bn_momentum,
        "epochs": epochs,
        "epochs_source": epochs_source,
        "batch_size": settings.batch_size,
        "precision": settings.precision,
        "seed": settings.seed,
        "subset": settings.subset,
        "train_on": config.train_on,
        "chosen_from": choice.provenance,
        "sizes": {
            "train": int(len(data.y)),
            "valid": int(len(data.validation[1])) if data.validation else 0,
        },
        "data": data.splits.source.to_dict(),
        "train_history": trained.history,
        "timings": {"load_s": data.load_s, "train_s": trained.seconds},
        **provenance(),
    }


def planned_epochs(config: FinalizeConfig, choice: Choice) -> tuple[int, str]:
    if config.epochs is not None:
        return config.epochs, "--epochs"
    return epochs_from_lineage(choice, config.epochs_factor)


def load_fit_data(settings: TrainingSettings, train_on: str) -> FitData:
    """train+valid (standardization refitted on both) or train with valid held out."""
    t0 = time.perf_counter()
    splits = load_splits(settings.data_dir, settings.seed, VALID_FRACTION, settings.subset)
    if train_on == "train+valid":
        x = np.concatenate([splits.x_train, splits.x_valid])
        y = np.concatenate([splits.y_train, splits.y_valid])
        mean, variance = fit_standardizer(x)  # the model is fitted on both parts
        validation = None
    else:
        x, y = splits.x_train, splits.y_train
        mean, variance = splits.mean, splits.variance
        validation = (splits.x_valid, splits.y_valid)
    return FitData(x, y, mean, variance, validation, splits, time.perf_counter() - t0)


def train_final(config, schedule: Schedule, choice: Choice, settings, data: FitData, epochs,
                folder) -> Trained:  # fmt: skip
    """The one long training, under the finalizer's schedule."""
    return retrain(
        choice.hyperparameters,
        settings,
        schedule,
        (data.x, data.y),
        epochs=epochs,
        seed=settings.seed,
        mean=data.mean,
        variance=data.variance,
        validation=data.validation,
        logdir=folder / "tensorboard",
        verbose=config.verbose,
    )


def saved_model(trained: Trained, choice: Choice, settings, data: FitData, folder):
    """The network without its training-only parts, saved as ``model.keras``.

    What is tested is what is saved: plain Keras layers, so ``keras.models.load_model``
    alone reads it (flip test-time augmentation is two calls of it, ``training.predict``).
    """
    from hypermodels.resnet import inference_copy

    model = inference_copy(
        trained.model, choice.hyperparameters, data.mean, data.variance, settings.precision
    )
    model.save(folder / "model.keras")
    return model


def test_once(model, settings, tta: str) -> tuple[dict, int, float]:
    """The one and only look at the test set: (results, test images, seconds)."""
    x_test, y_test, _ = load_arrays(settings.data_dir, "test")
    t0 = time.perf_counter()
    result = evaluate(model, x_test, y_test, tta)
    return result, int(len(y_test)), time.perf_counter() - t0


def check_converged(trained: Trained, config: FinalizeConfig, schedule: Schedule) -> None:
    """Stop before the one test evaluation if the training diverged (a NaN model is no
    result, and the test set is looked at once)."""
    if not trained.diverged:
        return
    for epoch, loss in enumerate(trained.history["loss"], 1):
        if not math.isfinite(loss):
            raise ProjectError(
                f"training diverged (loss {loss} in epoch {epoch}); the test set was not "
                f"touched and {config.run_dir / 'final'} was not written. Try a lower "
                f"--lr-scale (now {schedule.lr_scale:g}), --max-lr (now {schedule.max_lr:g}) or "
                f"--min-lr (now {schedule.min_lr:g})"
            )


def validation_summary(history: dict, model, validation, tta: str) -> dict | None:
    """With ``--train-on train``: the held-out split's accuracy per epoch's end, and at the
    end with the test-time augmentation the test set will get (None without validation)."""
    if validation is None:
        return None
    val_acc = history["val_accuracy"]
    best = int(np.argmax(val_acc))
    summary = {
        "final_val_accuracy": float(val_acc[-1]),
        "best_val_accuracy": float(val_acc[best]),
        "best_epoch": best + 1,
    }
    if tta != "none":
        summary["final_val_accuracy_tta"] = evaluate(model, *validation, tta)["test_accuracy"]
    return summary


def print_result(report: dict, final_dir) -> None:
    msg = f"test accuracy {report['test_accuracy']:.4f} (loss {report['test_loss']:.4f}"
    if report.get("tta", "none") != "none":
        msg += f"; {report['tta']} TTA, {report['test_accuracy_single_view']:.4f} single view)"
    else:
        msg += "; single view)"
    if report.get("validation"):
        validation = report["validation"]
        msg += f"; val accuracy {validation['final_val_accuracy']:.4f} at the last epoch"
        if "final_val_accuracy_tta" in validation:
            msg += f" ({validation['final_val_accuracy_tta']:.4f} with {report['tta']} TTA)"
    print(msg)
    print(f"wrote {final_dir}/: model.keras, report.json, report.md, tensorboard/")
