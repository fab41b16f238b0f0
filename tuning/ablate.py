"""``python -m tuning.ablate``: do the skip connections help? A paired, seeded ablation.

Trains one configuration (the search's best, ``--trial ID``, or ``--hyperparameters``) with
skip on and skip off, for K seeds each (the same seeds for both arms: same split, same
initial weights, same shuffling), at one or more depths (``--blocks 2,4,8``), all with the
same data and epochs. Each network is trained on the train split and scored on the
validation split after its last epoch; the test set stays reserved for the finalizer.

Results land in ``<run>/ablation/`` after every single training (``runs.csv`` and
``histories/``), so an interrupted ablation resumes where it stopped, and a rerun with more
seeds or depths only trains what is missing. At the end the report and plots are rebuilt
(``python -m tuning.report`` does the same from saved results, without training).
"""

from __future__ import annotations

import datetime as _dt
import math
import shlex
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tuning import records
from tuning.config import RECIPE_OFF, add_data_args, add_retraining_args, versions
from tuning.errors import ArgumentParser, UsageError, run_cli
from tuning.finalize import choose, run_settings

ABLATION_DIR = "ablation"
# ablation/runs.csv columns, in order, with the type each cell is read back as.
RUN_FIELD_TYPES: dict[str, type] = {
    "blocks": int,
    "skip": bool,
    "seed": int,
    "status": str,
    "params": int,
    "epochs": int,
    "val_accuracy": float,
    "val_loss": float,
    "best_val_accuracy": float,
    "train_loss": float,
    "train_accuracy": float,
    "seconds": float,
}


def arm_name(skip: bool) -> str:
    return "skip" if skip else "plain"


def history_path(out: Path, blocks: int, skip: bool, seed: int) -> Path:
    return out / "histories" / f"b{blocks}_{arm_name(skip)}_s{seed}.json"


def read_runs(out: Path) -> list[dict]:
    path = out / "runs.csv"
    if not path.is_file():
        return []
    rows = records.read_csv(path, RUN_FIELD_TYPES)
    for row in rows:  # a diverged run's non-finite metrics were written as empty cells
        for k, kind in RUN_FIELD_TYPES.items():
            if kind is float and row[k] is None:
                row[k] = math.nan
    return rows


def write_runs(out: Path, rows: list[dict]) -> None:
    ordered = sorted(rows, key=lambda r: (r["blocks"], r["seed"], not r["skip"]))
    records.write_csv(out / "runs.csv", RUN_FIELD_TYPES, ordered)


def parse_blocks(text: str) -> list[int]:
    try:
        blocks = sorted({int(p) for p in text.split(",") if p.strip()})
    except ValueError:
        raise UsageError(f"--blocks must be comma-separated integers, not {text!r}") from None
    if not blocks or blocks[0] < 1:
        raise UsageError(f"--blocks needs positive depths, not {text!r}")
    return blocks


def train_one(splits, hp: dict, blocks: int, skip: bool, seed: int, settings: dict,
              epochs: int, logdir: Path, verbose: int) -> tuple[dict, dict]:  # fmt: skip
    """Train one network from scratch; return its runs.csv row and its per-epoch history."""
    import keras

    from hypermodels import build_resnet
    from tuning.data import as_dataset

    keras.backend.clear_session()
    # The same seed for both arms: same initial weights (the add has none) and shuffling.
    keras.utils.set_random_seed(seed * 1000 + blocks)
    model = build_resnet(
        blocks=blocks,
        filters=hp["filters"],
        skip=skip,
        learning_rate=hp["learning_rate"],
        momentum=settings["momentum"],
        nesterov=settings["nesterov"],
        precision=settings["precision"],
        mean=splits.mean,
        variance=splits.variance,
        weight_decay=settings["weight_decay"],
        label_smoothing=settings["label_smoothing"],
        augment=settings["augment"],
    )
    t0 = time.perf_counter()
    batch_size = settings["batch_size"]
    history = model.fit(
        as_dataset(splits.x_train, splits.y_train, batch_size, shuffle=True),
        epochs=epochs,
        shuffle=False,  # the dataset reshuffles itself every epoch
        validation_data=as_dataset(splits.x_valid, splits.y_valid, batch_size, shuffle=False),
        callbacks=[keras.callbacks.TensorBoard(str(logdir), write_graph=False)],
        verbose=verbose,
    ).history
    seconds = time.perf_counter() - t0
    curves = {k: [float(v) for v in vals] for k, vals in history.items()}
    finite = all(math.isfinite(v) for v in curves["loss"])
    row = {
        "blocks": blocks,
        "skip": skip,
        "seed": seed,
        "status": "ok" if finite else "diverged",
        "params": model.count_params(),
        "epochs": epochs,
        "val_accuracy": curves["val_accuracy"][-1],
        "val_loss": curves["val_loss"][-1],
        "best_val_accuracy": max(curves["val_accuracy"]),
        "train_loss": curves["loss"][-1],
        "train_accuracy": curves["accuracy"][-1],
        "seconds": round(seconds, 3),
    }
    return row, {"blocks": blocks, "skip": skip, "seed": seed, "seconds": seconds, **curves}


def run_ablation(
    run_dir: str | Path,
    *,
    trial: str | None = None,
    hyperparameters: str | None = None,
    blocks: str | None = None,
    seeds: int = 5,
    epochs: int | None = None,
    data_dir: str | None = None,
    subset: int | None = None,
    batch_size: int | None = None,
    momentum: float | None = None,
    precision: str | None = None,
    weight_decay: float | None = None,
    label_smoothing: float | None = None,
    augment: str | None = None,
    overwrite: bool = False,
    verbose: int = 0,
) -> list[dict]:
    """Train what is missing of the ablation, then rebuild the reports; returns all rows."""
    run_dir = Path(run_dir)
    if seeds < 1:
        raise UsageError(f"--seeds must be at least 1, not {seeds}")
    if epochs is not None and epochs < 1:
        raise UsageError(f"--epochs must be at least 1, not {epochs}")
    hp, chosen = choose(run_dir, trial, hyperparameters)
    depths = parse_blocks(blocks) if blocks else [hp["blocks"]]
    if epochs is None:
        if chosen.get("lineage_epochs") is None:
            raise UsageError("--epochs is required with --hyperparameters")
        epochs = int(chosen["lineage_epochs"])
    settings = run_settings(
        run_dir, None, subset, batch_size, momentum, data_dir, precision,
        weight_decay=weight_decay, label_smoothing=label_smoothing, augment=augment,
    )  # fmt: skip

    from tuning.data import load_splits

    splits = load_splits(settings["data_dir"], settings["seed"], subset=settings["subset"])
    out = run_dir / ABLATION_DIR
    # What must match for results to be comparable; seeds and depths may grow.
    definition = {
        "filters": hp["filters"],
        "learning_rate": hp["learning_rate"],
        "epochs": epochs,
        "batch_size": settings["batch_size"],
        "momentum": settings["momentum"],
        "nesterov": settings["nesterov"],
        "weight_decay": settings["weight_decay"],
        "label_smoothing": settings["label_smoothing"],
        "augment": list(settings["augment"]),
        "precision": settings["precision"],
        "split_seed": settings["seed"],
        "subset": settings["subset"],
        "data_sha256": splits.source.sha256,
    }
    meta_path = out / "ablation.json"
    if meta_path.is_file():
        old = records.read_json(meta_path)
        # Ablations recorded before the recipe options existed trained without them.
        recorded = {**RECIPE_OFF, **old["definition"]}
        diffs = [
            f"{k}: {recorded.get(k)!r} -> {v!r}"
            for k, v in definition.items()
            if recorded.get(k) != v
        ]
        if diffs and not overwrite:
            raise UsageError(
                f"{out} holds an ablation with other settings ({'; '.join(diffs)}); "
                "pass --overwrite to delete it"
            )
        if diffs:
            print(f"--overwrite: deleting {out} ({len(read_runs(out))} trainings)")
            shutil.rmtree(out)
    meta = {
        "definition": definition,
        "chosen_from": chosen,
        "blocks": depths,
        "seeds": list(range(seeds)),
        "sizes": splits.sizes(),
        "data": splits.source.to_dict(),
        "versions": versions(),
        "precision": settings["precision"],
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(sys.argv),
    }
    if meta_path.is_file():  # keep every depth and seed trained so far
        old = records.read_json(meta_path)
        meta["blocks"] = sorted(set(old["blocks"]) | set(depths))
        meta["seeds"] = sorted(set(old["seeds"]) | set(meta["seeds"]))
        meta["created"] = old.get("created", meta["created"])
    records.atomic_write_json(meta_path, meta)

    rows = read_runs(out)
    done = {(r["blocks"], r["skip"], r["seed"]) for r in rows}
    todo = [
        (b, skip, s)
        for s in range(seeds)
        for b in depths
        for skip in (True, False)
        if (b, skip, s) not in done
    ]
    sizes = splits.sizes()
    print(
        f"ablation of {hp} at blocks {depths}, seeds 0..{seeds - 1}, {epochs} epochs, "
        f"train {sizes['train']} / valid {sizes['valid']} images: "
        f"{len(todo)} trainings to run, {len(done)} already done",
        flush=True,
    )
    t_start = time.perf_counter()
    for i, (b, skip, s) in enumerate(todo, 1):
        logdir = out / "tensorboard" / f"b{b}_{arm_name(skip)}_s{s}"
        row, history = train_one(splits, hp, b, skip, s, settings, epochs, logdir, verbose)
        records.atomic_write_json(history_path(out, b, skip, s), history)
        rows.append(row)
        write_runs(out, rows)  # saved after every single training
        elapsed = time.perf_counter() - t_start
        eta = elapsed / i * (len(todo) - i)
        print(
            f"[{i}/{len(todo)}] blocks {b} {arm_name(skip):>5} seed {s}: val_accuracy "
            f"{row['val_accuracy']:.4f} ({row['seconds']:.0f} s; about {eta / 60:.1f} min left)",
            flush=True,
        )

    from tuning.report import build_reports

    summary = build_reports(run_dir)
    for line in summary.get("verdicts", []):
        print(line)
    print(f"report: {run_dir / 'report.md'}")
    return rows


def build_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python -m tuning.ablate",
        description="Skip on vs off, paired over seeds, at one or more depths (validation split).",
    )
    p.add_argument("--run-dir", default="runs/search", help="search run to take the config from")
    p.add_argument("--trial", help="use this trial's configuration instead of the best")
    p.add_argument("--hyperparameters", help="explicit JSON (needs --epochs), as in finalize")
    p.add_argument("--blocks", help="depths, e.g. 2,4,8 (default: the configuration's)")
    p.add_argument("--seeds", type=int, default=5, help="seeds per arm (%(default)s)")
    p.add_argument("--epochs", type=int, help="default: the best trial's lineage epochs")
    add_data_args(p)
    add_retraining_args(p)
    p.add_argument(
        "--overwrite", action="store_true", help="replace an ablation with other settings"
    )
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=0)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    run_ablation(args.pop("run_dir"), **args)  # flag names match the keyword arguments
    return 0


if __name__ == "__main__":
    sys.exit(run_cli("python -m tuning.ablate", main))
