"""Do the skip connections help? A paired, seeded ablation: the engine of ``tuning.ablate``.

Trains one configuration (the search's best, ``--trial ID``, or ``--hyperparameters``) with
skip on and skip off, for K seeds each (the same seeds for both arms: same split, same
initial weights, same shuffling), at one or more depths, all with the same data and
epochs. Each network is trained on the train split and scored on the validation split
after its last epoch; the test set stays reserved for the finalizer.

Results land in ``<run>/ablation/`` after every single training (``runs.csv`` and
``histories/``), so an interrupted ablation resumes where it stopped, and a rerun with
more seeds or depths only trains what is missing.
"""

from __future__ import annotations

import time
from pathlib import Path

from hypermodels.recipe import Recipe
from tuning.config import AblationConfig, Schedule
from tuning.data import Splits, load_splits
from tuning.errors import UsageError
from tuning.machine.memory import check_fits
from tuning.retrain.selection import (
    Choice,
    choose_configuration,
    epochs_from_lineage,
    inherited_settings,
)
from tuning.retrain.training import TrainingSettings, retrain
from tuning.rundir import records
from tuning.rundir.folders import delete_for_overwrite, holds_any, provenance
from tuning.rundir.lock import RunLock


def run_ablation(config: AblationConfig) -> list[dict]:
    """Train what is missing of the ablation; returns all its rows (runs.csv).

    The run directory is this process's meanwhile (``tuning.rundir.lock``): two ablations would
    train the same networks and each rewrite runs.csv without the other's rows.
    A missing run directory is created only for explicit --hyperparameters.
    """
    with RunLock(config.run_dir, what="ablation", create=config.hyperparameters is not None):
        return ablation_locked(config)


def ablation_locked(config: AblationConfig) -> list[dict]:
    """The ablation's steps, under the run directory's lock."""
    choice = choose_configuration(config.run_dir, config.trial, config.hyperparameters)
    depths = list(config.blocks or [choice.hyperparameters["blocks"]])
    epochs = config.epochs if config.epochs is not None else epochs_from_lineage(choice)[0]
    config.lr_schedule.check_epochs(epochs)
    settings = inherited_settings(config.run_dir, config.options)
    filters = choice.hyperparameters["filters"]
    splits = load_splits(settings.data_dir, settings.seed, subset=settings.subset)
    warning = check_fits(max(depths), filters, settings.batch_size, "the deepest network",
                         images=len(splits.y_train))  # fmt: skip
    if warning:
        print(warning, flush=True)
    out = config.run_dir / records.ABLATION_DIR
    definition = ablation_definition(choice, epochs, settings, splits, config.lr_schedule)
    claim_ablation_dir(out, definition, config.overwrite)
    if records.remove_stale_temporaries(out):  # a killed run's half-written files
        print(f"removed the temporary files a killed ablation left in {out}", flush=True)
    write_meta(out, definition, choice, depths, config.seeds, splits, settings)
    rows = records.read_ablation_runs(out)
    done = {(r["blocks"], r["skip"], r["seed"]) for r in rows}
    todo = [
        (b, skip, s)
        for s in range(config.seeds)
        for b in depths
        for skip in (True, False)
        if (b, skip, s) not in done
    ]
    sizes = splits.sizes()
    print(
        f"ablation of {choice.hyperparameters} at blocks {depths}, seeds "
        f"0..{config.seeds - 1}, {epochs} epochs, train {sizes['train']} / valid "
        f"{sizes['valid']} images: {len(todo)} trainings to run, {len(done)} already done",
        flush=True,
    )
    t_start = time.perf_counter()
    for i, (b, skip, s) in enumerate(todo, 1):
        logdir = out / "tensorboard" / f"b{b}_{records.arm_name(skip)}_s{s}"
        hp = {**choice.hyperparameters, "blocks": b, "skip": skip}
        row, history = train_one(splits, hp, s, settings, epochs, config, logdir)
        records.atomic_write_json(records.ablation_history_path(out, b, skip, s), history)
        rows.append(row)
        records.write_ablation_runs(out, rows)  # saved after every single training
        eta = (time.perf_counter() - t_start) / i * (len(todo) - i)
        print(
            f"[{i}/{len(todo)}] blocks {b} {records.arm_name(skip):>5} seed {s}: val_accuracy "
            f"{row['val_accuracy']:.4f} ({row['seconds']:.0f} s; about {eta / 60:.1f} min left)",
            flush=True,
        )
    return rows


def ablation_definition(choice: Choice, epochs: int, settings: TrainingSettings, splits,
                        schedule: Schedule) -> dict:  # fmt: skip
    """What must match for results to be comparable; seeds and depths may grow."""
    definition = {
        "filters": choice.hyperparameters["filters"],
        "learning_rate": choice.hyperparameters["learning_rate"],
        "epochs": epochs,
        "batch_size": settings.batch_size,
        **settings.recipe.to_dict(),
        "precision": settings.precision,
        "split_seed": settings.seed,
        "subset": settings.subset,
        "data_sha256": splits.source.sha256,
    }
    if schedule != Schedule():  # recorded only when used, so older ablations still match
        definition["schedule"] = schedule.describe(choice.hyperparameters["learning_rate"])
    return definition


def claim_ablation_dir(out: Path, definition: dict, overwrite: bool) -> None:
    """Refuse (or, with --overwrite, delete) an ablation recorded with other settings."""
    meta_path = out / "ablation.json"
    if not meta_path.is_file():
        return
    # Ablations recorded before the recipe options existed trained without them.
    old = records.read_json(meta_path)["definition"]
    recorded = {**old, **Recipe.from_dict(old).to_dict()}
    diffs = [f"{k}: {recorded.get(k)!r} -> {v!r}" for k, v in definition.items()
             if recorded.get(k) != v]  # fmt: skip
    if diffs and not overwrite:
        raise UsageError(
            f"{out} holds an ablation with other settings ({'; '.join(diffs)}); "
            "pass --overwrite to delete it"
        )
    if diffs:
        n = len(records.read_ablation_runs(out))
        delete_for_overwrite(out, f"{n} trainings", out.parent, holds_any("ablation.json"))


def write_meta(out: Path, definition, choice: Choice, depths, seeds: int, splits, settings):
    """ablation.json: the definition and every depth and seed trained so far."""
    meta_path = out / "ablation.json"
    meta = {
        "definition": definition,
        "chosen_from": choice.provenance,
        "blocks": depths,
        "seeds": list(range(seeds)),
        "sizes": splits.sizes(),
        "data": splits.source.to_dict(),
        "precision": settings.precision,
        **provenance(),
    }
    if meta_path.is_file():  # keep every depth and seed trained so far
        old = records.read_json(meta_path)
        meta["blocks"] = sorted(set(old["blocks"]) | set(depths))
        meta["seeds"] = sorted(set(old["seeds"]) | set(meta["seeds"]))
        meta["created"] = old.get("created", meta["created"])
    records.atomic_write_json(meta_path, meta)


def train_one(splits: Splits, hp: dict, seed: int, settings: TrainingSettings, epochs: int,
              config: AblationConfig, logdir: Path) -> tuple[dict, dict]:  # fmt: skip
    """Train one network from scratch; return its runs.csv row and its per-epoch history."""
    # The same seed for both arms: same initial weights (the add has none) and shuffling.
    trained = retrain(
        hp,
        settings,
        config.lr_schedule,
        (splits.x_train, splits.y_train),
        epochs=epochs,
        seed=seed * 1000 + hp["blocks"],
        mean=splits.mean,
        variance=splits.variance,
        validation=(splits.x_valid, splits.y_valid),
        logdir=logdir,
        verbose=config.verbose,
    )
    curves = trained.history
    row = {
        "blocks": hp["blocks"],
        "skip": hp["skip"],
        "seed": seed,
        "status": trained.status,
        "params": trained.model.count_params(),
        "epochs": epochs,
        "val_accuracy": curves["val_accuracy"][-1],
        "val_loss": curves["val_loss"][-1],
        "best_val_accuracy": max(curves["val_accuracy"]),
        "train_loss": curves["loss"][-1],
        "train_accuracy": curves["accuracy"][-1],
        "seconds": round(trained.seconds, 3),
    }
    history = {"blocks": hp["blocks"], "skip": hp["skip"], "seed": seed,
               "seconds": trained.seconds, **curves}  # fmt: skip
    return row, history
