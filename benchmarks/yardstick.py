"""The yardstick: every network shape of the default space under the finalizer's recipe.

    python benchmarks/yardstick.py --data-dir ../shared/data/fashion-mnist --seeds 0,1
    python benchmarks/yardstick.py --summary          # the ranking, from the CSV alone

What a search's pick is worth is what its network reaches once the finalizer has trained
it, not what it scored in a short trial. This script trains each of the 16 shapes of the
default space (blocks 1-4 x filters 32, 64 x skip on/off) the way ``tuning.finalize
--train-on train`` would: the finalizer's default recipe (warm-up + cosine, flip +
translate + erase, weight decay, batch-norm momentum of the search) and its default
length, on the 48,000-image training split of seed *s* (model seed *s* too), scored on
that split's 12,000 validation images, single view and with flip test-time augmentation.
The test set is never loaded.

One CSV row per training, appended as each finishes: an interrupted run resumes where it
stopped (rerun the same command; a training cut short is trained again from its start).
Each row also keeps the validation accuracy after every epoch (``val_curve``).
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypermodels.recipe import Recipe  # noqa: E402
from tuning.config import (  # noqa: E402
    DEFAULT_BATCH_SIZE,
    DEFAULT_BN_MOMENTUM,
    DEFAULT_FINAL_AUGMENT,
    DEFAULT_FINAL_WEIGHT_DECAY,
    DEFAULT_MOMENTUM,
    DEFAULT_WARMUP_EPOCHS,
    VALID_FRACTION,
    Schedule,
)

DEFAULT_OUT = "docs/results/yardstick.csv"
DEFAULT_EPOCHS = 32
DEFAULT_PEAK = 0.05
SHAPES = [
    (blocks, filters, skip)
    for filters, blocks, skip in itertools.product((64, 32), (2, 3, 1, 4), (False, True))
]
FIELDS = ["blocks", "filters", "skip", "seed", "peak_lr", "epochs", "train_images",
          "weight_decay", "augment", "bn_momentum", "precision", "val_accuracy",
          "val_accuracy_tta", "val_loss", "train_accuracy", "seconds", "val_curve"]  # fmt: skip
KEY = ("blocks", "filters", "skip", "seed", "peak_lr", "epochs", "train_images",
       "weight_decay", "augment", "bn_momentum")  # fmt: skip
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306}


def key_of(row: dict) -> tuple:
    return tuple(str(row[k]) for k in KEY)


def train_one(splits, shape, seed: int, args) -> dict:
    """One training of ``shape`` under the finalizer's recipe; its validation scores."""
    from tuning.retrain.training import TrainingSettings, predict, retrain, scores

    blocks, filters, skip = shape
    recipe = Recipe(
        momentum=DEFAULT_MOMENTUM,
        weight_decay=args.weight_decay,
        augment=DEFAULT_FINAL_AUGMENT,
        bn_momentum=args.bn_momentum,
    )
    settings = TrainingSettings(seed, None, DEFAULT_BATCH_SIZE, recipe, args.precision, None)
    schedule = Schedule("cosine", DEFAULT_WARMUP_EPOCHS, 1.0, math.inf, 0.0)
    hp = {"blocks": blocks, "filters": filters, "skip": skip, "learning_rate": args.peak}
    t0 = time.perf_counter()
    trained = retrain(
        hp,
        settings,
        schedule,
        (splits.x_train, splits.y_train),
        epochs=args.epochs,
        seed=seed,
        mean=splits.mean,
        variance=splits.variance,
        validation=(splits.x_valid, splits.y_valid),
    )
    seconds = time.perf_counter() - t0
    h = trained.history
    tta = scores(predict(trained.model, splits.x_valid, "flip"), splits.y_valid)[0]
    return {
        "blocks": blocks,
        "filters": filters,
        "skip": skip,
        "seed": seed,
        "peak_lr": args.peak,
        "epochs": args.epochs,
        "train_images": len(splits.y_train),
        "weight_decay": args.weight_decay,
        "augment": ",".join(DEFAULT_FINAL_AUGMENT),
        "bn_momentum": args.bn_momentum,
        "precision": args.precision,
        "val_accuracy": round(h["val_accuracy"][-1], 5),
        "val_accuracy_tta": round(tta, 5),
        "val_loss": round(h["val_loss"][-1], 5),
        "train_accuracy": round(h["accuracy"][-1], 5),
        "seconds": round(seconds, 1),
        "val_curve": ";".join(f"{v:.5f}" for v in h["val_accuracy"]),
    }


def read_rows(path: Path) -> list[dict]:
    from tuning.rundir.records import read_csv_rows

    rows = read_csv_rows(path, FIELDS)
    if rows is None:
        raise SystemExit(f"{path} was written with other columns; give a new --out")
    return rows


def append_row(path: Path, row: dict) -> None:
    from tuning.rundir.records import append_csv_row

    append_csv_row(path, FIELDS, row)


def shape_of(row: dict) -> tuple[int, int, bool]:
    """A row's shape, whether read back from the CSV (text) or just trained (values)."""
    return int(row["blocks"]), int(row["filters"]), str(row["skip"]) == "True"


def shape_name(blocks, filters, skip) -> str:
    return f"{blocks} x {filters}, skip {'on' if str(skip) == 'True' else 'off'}"


def ranking(rows: list[dict], column: str = "val_accuracy_tta") -> list[dict]:
    """Per shape: mean over seeds, and the gap to the best shape, paired by seed, with a
    95% t interval (seeds share the split and the initial draw, so pairing removes both)."""
    by: dict[tuple, dict[str, float]] = {}
    for r in rows:
        by.setdefault(shape_of(r), {})[int(r["seed"])] = float(r[column])
    means = {shape: statistics.mean(v.values()) for shape, v in by.items()}
    best = max(means, key=means.get)
    out = []
    for shape in sorted(means, key=means.get, reverse=True):
        seeds = sorted(set(by[shape]) & set(by[best]))
        diffs = [by[best][s] - by[shape][s] for s in seeds]
        gap = statistics.mean(diffs) if diffs else math.nan
        half = (
            T95.get(len(diffs) - 1, 2.0) * statistics.stdev(diffs) / math.sqrt(len(diffs))
            if len(diffs) > 1
            else math.nan
        )
        out.append(
            {
                "shape": shape,
                "scores": [by[shape][s] for s in sorted(by[shape])],
                "mean": means[shape],
                "gap": gap,
                "gap_half_width": half,
            }
        )
    return out


def contenders(rows: list[dict], points: float) -> set[tuple[int, int, bool]]:
    """The shapes whose mean score is within ``points`` (0.01 accuracy each) of the best."""
    if not rows:
        raise SystemExit("--within needs rows of other seeds in --out to judge by")
    table = ranking(rows)
    best = table[0]["mean"]
    return {r["shape"] for r in table if best - r["mean"] <= points / 100 + 1e-12}


def summary(rows: list[dict]) -> str:
    lines = [
        "| rank | shape | val accuracy with flip TTA, per seed | mean | gap to the best, "
        "paired (95% CI) | single view, mean | s/run |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    single = {tuple(r["shape"]): r["mean"] for r in ranking(rows, "val_accuracy")}
    secs: dict[tuple, list[float]] = {}
    for r in rows:
        secs.setdefault(shape_of(r), []).append(float(r["seconds"]))
    for i, r in enumerate(ranking(rows), 1):
        gap = (
            "-"
            if i == 1
            else f"{r['gap']:+.4f}"
            + (
                f" ({r['gap'] - r['gap_half_width']:+.4f} to {r['gap'] + r['gap_half_width']:+.4f})"
                if not math.isnan(r["gap_half_width"])
                else ""
            )
        )
        lines.append(
            f"| {i} | {shape_name(*r['shape'])} | "
            f"{' / '.join(f'{s:.4f}' for s in r['scores'])} | {r['mean']:.4f} | {gap} | "
            f"{single[r['shape']]:.4f} | {statistics.mean(secs[r['shape']]):.0f} |"
        )
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    p.add_argument("--peak", type=float, default=DEFAULT_PEAK, help="the peak learning rate")
    p.add_argument("--weight-decay", type=float, default=DEFAULT_FINAL_WEIGHT_DECAY)
    p.add_argument("--bn-momentum", type=float, default=DEFAULT_BN_MOMENTUM)
    p.add_argument("--shapes", help="e.g. 2x64off,3x64on (default: all 16)")
    p.add_argument(
        "--within",
        type=float,
        metavar="POINTS",
        help="only the shapes whose mean over the other seeds in --out is within POINTS "
        "of the best (the contenders that another seed should separate)",
    )
    p.add_argument("--precision", default="auto")
    p.add_argument("--out", default=DEFAULT_OUT)
    p.add_argument("--summary", action="store_true", help="only print the ranking from --out")
    args = p.parse_args()
    out = Path(args.out)
    rows = read_rows(out)
    if args.summary:
        print(summary(rows))
        return 0
    shapes = SHAPES if not args.shapes else [parse_shape(s) for s in args.shapes.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.within is not None:  # judged on the other seeds' rows, so a resume agrees
        earlier = [r for r in rows if int(r["seed"]) not in seeds]
        shapes = [s for s in shapes if s in contenders(earlier, args.within)]
    from tuning.data import load_splits
    from tuning.machine.precision import resolve

    args.precision = resolve(args.precision)
    done = {key_of(r) for r in rows}
    for seed in seeds:
        splits = load_splits(args.data_dir, seed, VALID_FRACTION)
        for shape in shapes:
            probe = dict(zip(("blocks", "filters", "skip"), shape, strict=True))
            probe.update(seed=seed, peak_lr=args.peak, epochs=args.epochs,
                         train_images=len(splits.y_train), weight_decay=args.weight_decay,
                         augment=",".join(DEFAULT_FINAL_AUGMENT),
                         bn_momentum=args.bn_momentum)  # fmt: skip
            if key_of(probe) in done:
                continue
            row = train_one(splits, shape, seed, args)
            append_row(out, row)
            rows.append(row)
            print(
                f"{shape_name(*shape)} seed {seed}: val {row['val_accuracy']:.4f} "
                f"(TTA {row['val_accuracy_tta']:.4f}, train {row['train_accuracy']:.4f}) "
                f"{row['seconds']:.0f} s",
                flush=True,
            )
    print(summary(rows))
    return 0


def parse_shape(text: str) -> tuple[int, int, bool]:
    """``2x64off`` -> (2, 64, False)."""
    blocks, rest = text.split("x")
    skip = rest.endswith("on")
    return int(blocks), int(rest.removesuffix("on").removesuffix("off")), skip


if __name__ == "__main__":
    sys.exit(main())
