"""``python -m tuning.finalize``: retrain the chosen configuration, test it once.

Chooses the hyperparameters (the search's best trial, ``--trial ID``, or an explicit
``--hyperparameters JSON``), retrains from scratch for the epochs behind that trial's
best weights (its whole Hyperband lineage), on train+valid by default, and evaluates
exactly once on the official 10k test set. Everything lands in ``<run>/final/``:
``model.keras`` (takes raw uint8 28x28 images), ``report.json``, ``report.md`` and
TensorBoard logs. The folder is assembled as ``final.partial/`` and renamed at the end,
so an interrupted finalize never leaves a half-written ``final/``.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import shlex
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tuning import records
from tuning.config import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_DIRECTORY,
    DEFAULT_EPOCHS_FACTOR,
    DEFAULT_FINAL_AUGMENT,
    DEFAULT_LR_SCALE,
    DEFAULT_MAX_LR,
    DEFAULT_MOMENTUM,
    DEFAULT_PROJECT,
    DEFAULT_SCHEDULE,
    DEFAULT_SEED,
    DEFAULT_WARMUP_EPOCHS,
    RECIPE_OFF,
    SCHEDULES,
    VALID_FRACTION,
    add_data_args,
    add_retraining_args,
    check_recipe_args,
    check_training_args,
    parse_augment_arg,
    versions,
)
from tuning.errors import ArgumentParser, ProjectError, UsageError, run_cli
from tuning.precision import resolve as resolve_precision

TRAIN_ON = ("train+valid", "train")
MAX_BLOCKS = 64
MAX_FILTERS = 1024


def parse_hyperparameters(text: str) -> dict:
    """Validate an explicit ``--hyperparameters`` JSON object."""
    try:
        hp = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"--hyperparameters is not valid JSON ({exc})") from None
    if not isinstance(hp, dict):
        raise UsageError("--hyperparameters must be a JSON object")
    return validate_hyperparameters(hp, "--hyperparameters")


def validate_hyperparameters(hp: dict, where: str) -> dict:
    missing = [k for k in records.HP_NAMES if k not in hp]
    unknown = [k for k in hp if k not in records.HP_NAMES]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown {', '.join(unknown)}")
        raise UsageError(f"{where}: {'; '.join(parts)} (needs {', '.join(records.HP_NAMES)})")
    blocks, filters, skip, lr = hp["blocks"], hp["filters"], hp["skip"], hp["learning_rate"]
    if isinstance(blocks, bool) or not isinstance(blocks, int) or not 1 <= blocks <= MAX_BLOCKS:
        raise UsageError(f"{where}: blocks must be an integer in 1..{MAX_BLOCKS}, not {blocks!r}")
    if isinstance(filters, bool) or not isinstance(filters, int) or not 1 <= filters <= MAX_FILTERS:
        raise UsageError(
            f"{where}: filters must be an integer in 1..{MAX_FILTERS}, not {filters!r}"
        )
    if not isinstance(skip, bool):
        raise UsageError(f"{where}: skip must be true or false, not {skip!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (0 < lr < math.inf):
        raise UsageError(f"{where}: learning_rate must be a positive number, not {lr!r}")
    return {"blocks": blocks, "filters": filters, "skip": skip, "learning_rate": float(lr)}


def choose(run_dir: Path, trial: str | None, hyperparameters: str | None) -> tuple[dict, dict]:
    """Return (hyperparameters, provenance) from the run, a trial id or explicit JSON."""
    if hyperparameters is not None:
        if trial is not None:
            raise UsageError("give either --trial or --hyperparameters, not both")
        return parse_hyperparameters(hyperparameters), {"source": "--hyperparameters"}
    if not run_dir.is_dir():
        raise ProjectError(f"run directory {run_dir} does not exist (run tuning.search first)")
    rows = records.read_trials_csv(run_dir / "trials.csv")
    if trial is not None:
        by_id = {r["trial_id"]: r for r in rows}
        row = by_id.get(trial) or by_id.get(trial.zfill(4))
        if row is None:
            known = ", ".join(sorted(by_id)) or "none"
            raise UsageError(
                f"--trial {trial} is not in {run_dir / 'trials.csv'} (trials: {known})"
            )
        if row["status"] != "COMPLETED":
            raise ProjectError(f"trial {row['trial_id']} did not complete ({row['status']})")
    else:
        row = records.best_row(rows)
        if row is None:
            raise ProjectError(f"{run_dir} has no successfully completed trial to finalize")
    hp = validate_hyperparameters(records.hyperparameters_of(row), f"trial {row['trial_id']}")
    return hp, {
        "source": "trial",
        "trial_id": row["trial_id"],
        "val_accuracy": row["val_accuracy"],
        "lineage_epochs": row["lineage_epochs"],
    }


def peak_learning_rate(searched: float, scale: float, cap: float) -> tuple[float, str]:
    """The rate the finalizer trains at (its schedule's peak) and how it was derived.

    Hyperband trials run at a constant rate; under warm-up + cosine decay a higher peak
    trains better (docs/accuracy.md), so the searched rate is scaled, but never beyond
    ``cap`` (a rate where SGD with momentum starts to diverge on these networks).
    """
    rate = min(scale * searched, cap)
    if scale == 1 and rate == searched:
        return rate, f"{rate:.4g}"
    how = f"{scale:g} x the searched {searched:.4g}"
    if rate < scale * searched:
        how += f", capped by --max-lr {cap:g}"
    return rate, f"{rate:.4g} ({how})"


def run_settings(
    run_dir: Path,
    seed: int | None = None,
    subset: int | None = None,
    batch_size: int | None = None,
    momentum: float | None = None,
    data_dir: str | None = None,
    precision: str | None = None,
    *,
    weight_decay: float | None = None,
    label_smoothing: float | None = None,
    augment: str | None = None,
) -> dict:
    """The search's seed, subset, batch size, recipe, precision and data, unless overridden.

    The same seed gives the same train/valid split, so retraining sees the search's data.
    """
    augment_names = parse_augment_arg(augment)
    run_file = Path(run_dir) / "run.json"
    run = records.read_json(run_file) if run_file.is_file() else {}
    definition = run.get("definition", {})
    recipe = {**RECIPE_OFF, **definition}
    settings = {
        "seed": definition.get("seed", DEFAULT_SEED) if seed is None else seed,
        "subset": definition.get("subset") if subset is None else subset,
        "batch_size": definition.get("batch_size", DEFAULT_BATCH_SIZE)
        if batch_size is None
        else batch_size,
        "momentum": definition.get("momentum", DEFAULT_MOMENTUM) if momentum is None else momentum,
        "nesterov": bool(definition.get("nesterov", False)),
        "weight_decay": float(recipe["weight_decay"]) if weight_decay is None else weight_decay,
        "label_smoothing": float(recipe["label_smoothing"])
        if label_smoothing is None
        else label_smoothing,
        "augment": tuple(recipe["augment"]) if augment_names is None else augment_names,
        "data_dir": data_dir,
        "precision": resolve_precision(
            definition.get("precision", "auto") if precision is None else precision
        ),
    }
    check_training_args(settings["batch_size"], settings["momentum"], settings["seed"])
    check_recipe_args(settings["weight_decay"], settings["label_smoothing"])
    if data_dir is None and run.get("data", {}).get("kind") == "dir":
        recorded = run["data"]["path"]
        settings["data_dir"] = recorded if Path(recorded).is_dir() else None
    return settings


def evaluate(model, x: np.ndarray, y: np.ndarray, batch_size: int = 1000) -> dict:
    """One pass over the test set: accuracy, loss, per-class accuracy, confusion matrix."""
    from tuning.data import CLASS_NAMES, NUM_CLASSES

    probs = model.predict(x, batch_size=batch_size, verbose=0).astype(np.float64)
    pred = probs.argmax(axis=1)
    loss = float(np.mean(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0))))
    confusion = np.bincount(y * NUM_CLASSES + pred, minlength=NUM_CLASSES**2).reshape(
        NUM_CLASSES, NUM_CLASSES
    )
    per_class = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    return {
        "test_accuracy": float(np.mean(pred == y)),
        "test_loss": loss,
        "per_class_accuracy": {
            name: float(a) for name, a in zip(CLASS_NAMES, per_class, strict=True)
        },
        "confusion_matrix": confusion.tolist(),
    }


def render_markdown(report: dict) -> str:
    from tuning.data import CLASS_NAMES

    hp, chosen = report["hyperparameters"], report["chosen_from"]
    lines = [
        "# Final model",
        "",
        f"Test accuracy **{report['test_accuracy']:.4f}** (loss {report['test_loss']:.4f}) "
        f"on the {report['sizes']['test']:,} official test images, evaluated once.",
        "",
        "| setting | value |",
        "| --- | --- |",
        f"| blocks | {hp['blocks']} |",
        f"| filters | {hp['filters']} |",
        f"| skip connections | {'on' if hp['skip'] else 'off'} |",
        f"| searched learning rate (SGD) | {hp['learning_rate']:.4g} |",
        f"| momentum | {report['momentum']}{' (Nesterov)' if report['nesterov'] else ''} |",
        f"| learning-rate schedule | {report['schedule']} |",
        f"| weight decay | {report['weight_decay']:g} |",
        f"| label smoothing | {report['label_smoothing']:g} |",
        f"| augmentation | {', '.join(report['augment']) or 'none'} |",
        f"| epochs | {report['epochs']} ({report['epochs_source']}) |",
        f"| batch size | {report['batch_size']} |",
        f"| precision | {report['precision']} |",
        f"| trained on | {report['train_on']} ({report['sizes']['train']:,} images) |",
        f"| seed | {report['seed']} |",
        f"| chosen from | {chosen.get('trial_id', chosen['source'])} |",
        f"| training time | {report['timings']['train_s']:.1f} s |",
        "",
    ]
    if report.get("validation"):
        v = report["validation"]
        lines += [
            f"Validation ({report['sizes']['valid']:,} images): final epoch accuracy "
            f"{v['final_val_accuracy']:.4f}, best {v['best_val_accuracy']:.4f} "
            f"(epoch {v['best_epoch']}).",
            "",
        ]
    lines += ["## Per-class test accuracy", "", "| class | accuracy |", "| --- | --- |"]
    lines += [f"| {n} | {a:.3f} |" for n, a in report["per_class_accuracy"].items()]
    lines += ["", "## Confusion matrix (rows: true class, columns: predicted)", ""]
    short = [n.split("/")[0][:7] for n in CLASS_NAMES]
    lines.append("| true \\ pred | " + " | ".join(short) + " |")
    lines.append("| --- " * (len(short) + 1) + "|")
    for name, row in zip(short, report["confusion_matrix"], strict=True):
        lines.append(f"| {name} | " + " | ".join(str(c) for c in row) + " |")
    lines += ["", f"Library versions: {json.dumps(report['versions'])}", ""]
    return "\n".join(lines)


def finalize(
    run_dir: str | Path,
    *,
    trial: str | None = None,
    hyperparameters: str | None = None,
    epochs: int | None = None,
    train_on: str = "train+valid",
    data_dir: str | None = None,
    seed: int | None = None,
    subset: int | None = None,
    batch_size: int | None = None,
    momentum: float | None = None,
    precision: str | None = None,
    weight_decay: float | None = None,
    label_smoothing: float | None = None,
    augment: str | None = ",".join(DEFAULT_FINAL_AUGMENT) or "none",
    schedule: str = DEFAULT_SCHEDULE,
    warmup_epochs: int = DEFAULT_WARMUP_EPOCHS,
    epochs_factor: float = DEFAULT_EPOCHS_FACTOR,
    lr_scale: float = DEFAULT_LR_SCALE,
    max_lr: float = DEFAULT_MAX_LR,
    overwrite: bool = False,
    verbose: int = 2,
) -> dict:
    """Retrain and test once; returns the report written to ``final/report.json``.

    ``augment`` None or "search" takes the search's augmentation; the other recipe
    settings left None take the search's too.
    """
    if augment == "search":
        augment = None
    t_start = time.perf_counter()
    run_dir = Path(run_dir)
    if train_on not in TRAIN_ON:
        raise UsageError(f"--train-on must be one of {', '.join(TRAIN_ON)}, not {train_on!r}")
    if epochs is not None and epochs < 1:
        raise UsageError(f"--epochs must be at least 1, not {epochs}")
    if schedule not in SCHEDULES:
        raise UsageError(f"--schedule must be one of {', '.join(SCHEDULES)}, not {schedule!r}")
    if warmup_epochs < 0:
        raise UsageError(f"--warmup-epochs must be non-negative, not {warmup_epochs}")
    if not 0 < epochs_factor <= 100:
        raise UsageError(f"--epochs-factor must be in (0, 100], not {epochs_factor}")
    if not 0 < lr_scale <= 1000:
        raise UsageError(f"--lr-scale must be in (0, 1000], not {lr_scale}")
    if not 0 < max_lr < math.inf:
        raise UsageError(f"--max-lr must be a positive number, not {max_lr}")
    hp, chosen = choose(run_dir, trial, hyperparameters)
    peak_lr, lr_text = peak_learning_rate(hp["learning_rate"], lr_scale, max_lr)

    settings = run_settings(
        run_dir, seed, subset, batch_size, momentum, data_dir, precision,
        weight_decay=weight_decay, label_smoothing=label_smoothing, augment=augment,
    )  # fmt: skip
    seed, subset, batch_size = settings["seed"], settings["subset"], settings["batch_size"]
    momentum, nesterov, data_dir = settings["momentum"], settings["nesterov"], settings["data_dir"]
    if epochs is None:
        if chosen.get("lineage_epochs") is None:
            raise UsageError("--epochs is required with --hyperparameters")
        lineage = int(chosen["lineage_epochs"])
        epochs = max(1, math.ceil(epochs_factor * lineage - 1e-9))
        epochs_source = (
            "best trial's lineage epochs"
            if epochs_factor == 1
            else f"{epochs_factor:g} x the best trial's {lineage} lineage epochs"
        )
    else:
        epochs_source = "--epochs"

    final_dir = run_dir / "final"
    if final_dir.exists() and not overwrite:
        raise UsageError(f"{final_dir} already exists; pass --overwrite to replace it")
    partial = run_dir / "final.partial"

    from tuning.data import as_dataset, fit_standardizer, load_arrays, load_splits

    t0 = time.perf_counter()
    splits = load_splits(data_dir, seed, VALID_FRACTION, subset)
    if train_on == "train+valid":
        x_fit = np.concatenate([splits.x_train, splits.x_valid])
        y_fit = np.concatenate([splits.y_train, splits.y_valid])
        mean, variance = fit_standardizer(x_fit)  # the model is fitted on both parts
        validation = None
    else:
        x_fit, y_fit = splits.x_train, splits.y_train
        mean, variance = splits.mean, splits.variance
        validation = (splits.x_valid, splits.y_valid)
    load_s = time.perf_counter() - t0

    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)

    import keras

    from hypermodels import build_resnet
    from hypermodels.recipe import warmup_cosine

    keras.utils.set_random_seed(seed)
    steps_per_epoch = math.ceil(len(y_fit) / batch_size)
    learning_rate = (
        warmup_cosine(peak_lr, steps_per_epoch * epochs, steps_per_epoch * warmup_epochs)
        if schedule == "cosine"
        else peak_lr
    )
    model = build_resnet(
        **{**hp, "learning_rate": learning_rate},
        momentum=momentum,
        nesterov=nesterov,
        mean=mean,
        variance=variance,
        precision=settings["precision"],
        weight_decay=settings["weight_decay"],
        label_smoothing=settings["label_smoothing"],
        augment=settings["augment"],
    )
    schedule_text = (
        f"{warmup_epochs}-epoch warm-up + cosine decay from {lr_text}"
        if schedule == "cosine"
        else f"constant {lr_text}"
    )
    print(
        f"finalize: {hp} for {epochs} epochs ({epochs_source}) on {train_on} "
        f"({len(y_fit):,} images), batch {batch_size}, momentum {momentum}, "
        f"lr {schedule_text}, weight decay {settings['weight_decay']:g}, label smoothing "
        f"{settings['label_smoothing']:g}, augment {','.join(settings['augment']) or 'none'}, "
        f"seed {seed}, precision {settings['precision']}",
        flush=True,
    )
    t0 = time.perf_counter()
    # Our own tf.data pipeline, as the trials use: faster than Keras' handling of arrays
    # and without its iterator-teardown stalls (tuning.data.as_dataset).
    if validation is not None:
        validation = as_dataset(*validation, batch_size, shuffle=False)
    history = model.fit(
        as_dataset(x_fit, y_fit, batch_size, shuffle=True),
        epochs=epochs,
        shuffle=False,  # the dataset reshuffles itself every epoch
        validation_data=validation,
        callbacks=[keras.callbacks.TensorBoard(str(partial / "tensorboard"), write_graph=False)],
        verbose=verbose,
    )
    train_s = time.perf_counter() - t0

    # What is tested is what is saved: the trained network without its training-only
    # augmentation layers, so plain keras.models.load_model reads it.
    from hypermodels import inference_copy

    final_model = inference_copy(model, hp, mean, variance, settings["precision"])
    # The one and only look at the test set.
    x_test, y_test, _ = load_arrays(data_dir, "test")
    t0 = time.perf_counter()
    result = evaluate(final_model, x_test, y_test)
    eval_s = time.perf_counter() - t0
    final_model.save(partial / "model.keras")

    report = {
        "hyperparameters": hp,
        "momentum": momentum,
        "nesterov": nesterov,
        "schedule": schedule_text,
        "peak_learning_rate": peak_lr,
        "lr_scale": lr_scale,
        "max_lr": max_lr,
        "weight_decay": settings["weight_decay"],
        "label_smoothing": settings["label_smoothing"],
        "augment": list(settings["augment"]),
        "epochs": epochs,
        "epochs_source": epochs_source,
        "batch_size": batch_size,
        "precision": settings["precision"],
        "seed": seed,
        "subset": subset,
        "train_on": train_on,
        "chosen_from": chosen,
        "sizes": {
            "train": int(len(y_fit)),
            "valid": int(len(splits.y_valid)) if validation else 0,
            "test": int(len(y_test)),
        },
        "data": splits.source.to_dict(),
        **result,
        "train_history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
        "timings": {"load_s": load_s, "train_s": train_s, "eval_s": eval_s},
        "versions": versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(sys.argv),
    }
    if validation:
        val_acc = history.history["val_accuracy"]
        best = int(np.argmax(val_acc))
        report["validation"] = {
            "final_val_accuracy": float(val_acc[-1]),
            "best_val_accuracy": float(val_acc[best]),
            "best_epoch": best + 1,
        }
    report["timings"]["total_s"] = time.perf_counter() - t_start
    records.atomic_write_json(partial / "report.json", report)
    records.atomic_write_text(partial / "report.md", render_markdown(report))

    if final_dir.exists():  # only reachable with --overwrite
        print(f"--overwrite: replacing {final_dir}")
        shutil.rmtree(final_dir)
    partial.rename(final_dir)
    msg = f"test accuracy {report['test_accuracy']:.4f} (loss {report['test_loss']:.4f})"
    if validation:
        msg += f"; val accuracy {report['validation']['final_val_accuracy']:.4f} at the last epoch"
    print(msg)
    print(f"wrote {final_dir}/: model.keras, report.json, report.md, tensorboard/")
    return report


def build_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python -m tuning.finalize",
        description="Retrain the best (or a chosen) configuration and evaluate it once on test.",
    )
    p.add_argument(
        "--run-dir",
        default=str(Path(DEFAULT_DIRECTORY) / DEFAULT_PROJECT),
        help="the search run to finalize (%(default)s)",
    )
    p.add_argument("--trial", help="finalize this trial id instead of the best one")
    p.add_argument(
        "--hyperparameters",
        help='explicit JSON, e.g. \'{"blocks": 2, "filters": 64, "skip": true, '
        '"learning_rate": 0.001}\' (needs --epochs)',
    )
    p.add_argument("--epochs", type=int, help="override the epoch count")
    p.add_argument(
        "--epochs-factor",
        type=float,
        default=DEFAULT_EPOCHS_FACTOR,
        help="without --epochs: train this many times the best trial's lineage epochs "
        "(%(default)s)",
    )
    p.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default=DEFAULT_SCHEDULE,
        help="learning rate: warm-up then cosine decay to 0 from the chosen rate, or constant "
        "(%(default)s)",
    )
    p.add_argument("--warmup-epochs", type=int, default=DEFAULT_WARMUP_EPOCHS, help="(%(default)s)")
    p.add_argument(
        "--lr-scale",
        type=float,
        default=DEFAULT_LR_SCALE,
        help="train at this many times the searched learning rate (%(default)s) ...",
    )
    p.add_argument(
        "--max-lr",
        type=float,
        default=DEFAULT_MAX_LR,
        help="... but at most this rate (%(default)s)",
    )
    p.add_argument("--train-on", choices=TRAIN_ON, default="train+valid", help="(%(default)s)")
    add_data_args(p)
    p.add_argument("--seed", type=int, help="default: the search's seed")
    add_retraining_args(p, final=True)
    p.add_argument("--overwrite", action="store_true", help="replace an existing final/")
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=2)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    finalize(args.pop("run_dir"), **args)  # flag names match the keyword arguments
    return 0


if __name__ == "__main__":
    sys.exit(run_cli("python -m tuning.finalize", main))
