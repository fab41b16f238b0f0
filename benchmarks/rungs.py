"""Rung fidelity without whole searches: every shape trained to each Hyperband rung.

    python benchmarks/rungs.py --data-dir ../shared/data/fashion-mnist --recipes constant
    python benchmarks/rungs.py --summary               # Spearman per rung, from the CSVs

A search can only pick the shape the final training rewards if its rungs rank shapes the
way the final training does. Whole searches measure that slowly and noisily (each rung
sees a different subset of shapes, at a different learning rate). This table measures it
directly: each of the 16 shapes of the default space is trained to each rung (1, 3 and 9
epochs by default) on the search's trial images under a candidate *trial recipe*, scored
on the validation split as Hyperband scores a trial (the best epoch's validation
accuracy), and ranked against the yardstick (``benchmarks/yardstick.py``).

The trial recipes:

- ``constant``: today's trials. A constant learning rate, momentum 0.9, no augmentation,
  no weight decay. One training to the last rung gives every rung (rung r's score is the
  best of its first r epochs: a continued trial goes on from its parent's weights).
- ``budget``: the final recipe compressed to the trial's own budget, from scratch for
  every rung: warm-up over the first tenth of the steps, cosine decay to 0 at the rung's
  last epoch (``hypermodels.trial_schedule``), flip + translate + erase, decoupled weight
  decay 1e-2 (the finalizer's).
- ``restart``: the same compressed recipe, but a continued trial goes on from its parent's
  weights with a new warm-up and decay over its own epochs (a warm restart): rung 3 is
  rung 1's network trained 2 more epochs, rung 9 rung 3's trained 6 more. This is what
  the search's ``--trial-schedule budget`` does with KerasTuner's continuation.

Each row is one (recipe, shape, rate, rung, trial images, seed); rows are appended as each
training ends, so an interrupted run resumes where it stopped (rerun the same command).
The test set is never loaded.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import fidelity  # noqa: E402
import yardstick  # noqa: E402

from hypermodels.recipe import Recipe  # noqa: E402
from hypermodels.trial_schedule import budget_steps  # noqa: E402
from tuning.config import (  # noqa: E402
    DEFAULT_BATCH_SIZE,
    DEFAULT_FINAL_AUGMENT,
    DEFAULT_FINAL_WEIGHT_DECAY,
    DEFAULT_RECIPE,
    DEFAULT_TRIAL_IMAGES,
    VALID_FRACTION,
)

DEFAULT_OUT = "docs/results/rungs.csv"
DEFAULT_SUMMARY = "docs/results/rungs_fidelity.csv"
DEFAULT_PLOT = "docs/img/rungs.png"
RECIPES = ("constant", "budget", "restart")
FIELDS = ["recipe", "blocks", "filters", "skip", "seed", "rate", "rung", "train_images",
          "precision", "val_accuracy", "val_accuracy_last", "train_accuracy", "seconds",
          "val_curve"]  # fmt: skip
KEY = ("recipe", "blocks", "filters", "skip", "seed", "rate", "rung", "train_images")
SUMMARY_FIELDS = ["recipe", "train_images", "rate", "rung", "shapes", "spearman",
                  "leader", "leader_regret_points", "top3_best_regret_points",
                  "seconds_all_shapes"]  # fmt: skip


def trial_recipe(name: str) -> Recipe:
    """The training recipe of a candidate (the rate and its schedule apart)."""
    if name == "constant":
        return DEFAULT_RECIPE
    return Recipe(
        momentum=DEFAULT_RECIPE.momentum,
        bn_momentum=DEFAULT_RECIPE.bn_momentum,
        weight_decay=DEFAULT_FINAL_WEIGHT_DECAY,
        augment=DEFAULT_FINAL_AUGMENT,
    )


def segments(recipe: str, rungs: list[int]) -> list[tuple[int, int, bool, list[int]]]:
    """The trainings one (shape, rate) needs: (first epoch, last epoch, whether it goes on
    from the previous one's weights, the rungs it scores). ``constant`` trains once and
    scores every rung on the way; the others score a rung at the end of its own training."""
    if recipe == "constant":
        return [(0, max(rungs), False, list(rungs))]
    if recipe == "budget":
        return [(0, r, False, [r]) for r in rungs]
    starts = [0, *rungs[:-1]]
    return [(a, b, i > 0, [b]) for i, (a, b) in enumerate(zip(starts, rungs, strict=True))]


class EpochClock:
    """Seconds at the end of each epoch since the training began (a Keras callback)."""

    def __new__(cls):
        import keras

        class _Clock(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.t0, self.ends = time.perf_counter(), []

            def on_epoch_end(self, epoch, logs=None):
                self.ends.append(time.perf_counter() - self.t0)

        return _Clock()


def train_segment(data, valid, shape, rate, recipe_name, epochs, seed, stats, precision,
                  weights=None):  # fmt: skip
    """One training of ``epochs`` epochs; returns (model, history, per-epoch end seconds)."""
    import keras

    from hypermodels.inputs import as_dataset
    from hypermodels.optim import warmup_cosine
    from hypermodels.resnet import build_resnet

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    x, y = data
    steps = budget_steps(epochs, math.ceil(len(y) / DEFAULT_BATCH_SIZE))
    lr = rate if recipe_name == "constant" else warmup_cosine(rate, *steps)
    blocks, filters, skip = shape
    model = build_resnet(blocks, filters, skip, lr, trial_recipe(recipe_name), *stats,
                         precision=precision)  # fmt: skip
    if weights is not None:
        model.set_weights(weights)
    clock = EpochClock()
    history = model.fit(
        as_dataset(x, y, DEFAULT_BATCH_SIZE, shuffle=True),
        epochs=epochs,
        shuffle=False,
        validation_data=as_dataset(*valid, DEFAULT_BATCH_SIZE, shuffle=False),
        callbacks=[clock],
        verbose=0,
    ).history
    return model, {k: [float(v) for v in vs] for k, vs in history.items()}, clock.ends


def rows_for(recipe: str, shape, rate: float, seed: int, rungs: list[int], images: int,
             precision: str, run) -> list[dict]:  # fmt: skip
    """Train one (shape, rate) through its segments; one row per rung.

    ``run(first, last, weights)`` trains one segment and returns (model, history, ends).
    A row's seconds are what the trial at that rung costs: its own epochs, plus its
    parents' where it goes on from them (``constant``, ``restart``).
    """
    rows, weights, curve, spent = [], None, [], 0.0
    for first, last, carries, scored in segments(recipe, rungs):
        model, history, ends = run(first, last, weights if carries else None)
        weights = model.get_weights()
        if not carries:
            curve, spent = [], 0.0
        curve += history["val_accuracy"]
        for rung in scored:
            i = rung - first  # epochs of this training up to the rung
            rows.append(
                {
                    "recipe": recipe,
                    "blocks": shape[0],
                    "filters": shape[1],
                    "skip": shape[2],
                    "seed": seed,
                    "rate": rate,
                    "rung": rung,
                    "train_images": images,
                    "precision": precision,
                    # Hyperband's score of a trial: the best of its own epochs
                    "val_accuracy": round(max(history["val_accuracy"][:i]), 5),
                    "val_accuracy_last": round(history["val_accuracy"][i - 1], 5),
                    "train_accuracy": round(history["accuracy"][i - 1], 5),
                    "seconds": round(spent + ends[i - 1], 1),
                    "val_curve": ";".join(f"{v:.5f}" for v in curve[:rung]),
                }  # fmt: skip
            )
        spent += ends[-1]
    return rows


# -- the summary --------------------------------------------------------------------------


def rung_groups(rows: list[dict]) -> dict[tuple, dict[tuple, float]]:
    """{(recipe, images, rate, rung): {shape: score}}. Where a recipe was trained at several
    rates, rate "best" is each shape at its best one (a search that tried every rate)."""
    groups: dict[tuple, dict[tuple, float]] = {}
    rates: dict[tuple, set[str]] = {}
    for r in rows:
        shape = (int(r["blocks"]), int(r["filters"]), str(r["skip"]) == "True")
        where, rate = (r["recipe"], int(r["train_images"])), f"{float(r['rate']):g}"
        rates.setdefault(where, set()).add(rate)
        for name in (rate, "best"):
            group = groups.setdefault((*where, name, int(r["rung"])), {})
            group[shape] = max(float(r["val_accuracy"]), group.get(shape, -math.inf))
    return {k: v for k, v in groups.items() if k[2] != "best" or len(rates[k[:2]]) > 1}


def summarize(rows: list[dict], means: dict[tuple, float]) -> list[dict]:
    """One row per (recipe, images, rate, rung): Spearman against the yardstick's means,
    the rung's leader and its regret, and the best regret among the rung's top 3 (what a
    perfect confirmation of three could reach)."""
    seconds: dict[tuple, float] = {}
    for r in rows:
        k = (r["recipe"], int(r["train_images"]), f"{float(r['rate']):g}", int(r["rung"]))
        seconds[k] = seconds.get(k, 0.0) + float(r["seconds"])
        best = (*k[:2], "best", k[3])  # each shape at its best rate: every rate was paid for
        seconds[best] = seconds.get(best, 0.0) + float(r["seconds"])
    out = []
    for key, scores in sorted(rung_groups(rows).items(), key=lambda kv: _order(kv[0])):
        n, rho = fidelity.spearman(scores, means)
        ranked = sorted((s for s in scores if s in means), key=scores.get, reverse=True)
        leader = ranked[0] if ranked else None
        top3 = [fidelity.regret_points(s, means) for s in ranked[:3]]
        out.append(
            {
                "recipe": key[0],
                "train_images": key[1],
                "rate": key[2],
                "rung": key[3],
                "shapes": n,
                "spearman": round(rho, 3) if math.isfinite(rho) else math.nan,
                "leader": fidelity.compact(leader),
                "leader_regret_points": fidelity.regret_points(leader, means),
                "top3_best_regret_points": min(top3) if top3 else math.nan,
                "seconds_all_shapes": round(seconds.get(key, math.nan), 0),
            }  # fmt: skip
        )
    return out


def _order(key: tuple) -> tuple:
    recipe, images, rate, rung = key
    rank = RECIPES.index(recipe) if recipe in RECIPES else len(RECIPES)
    return rank, images, rate == "best", rate if rate == "best" else float(rate), rung


def summary_text(summary: list[dict]) -> str:
    lines = [
        "| trial recipe | trial images | rate | rung (epochs) | shapes | Spearman | leader "
        "(regret, points) | best of its top 3 (regret) | s, 16 shapes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in summary:
        rho = "too few" if not math.isfinite(s["spearman"]) else f"{s['spearman']:+.2f}"
        lines.append(
            f"| {s['recipe']} | {s['train_images']:,} | {s['rate']} | {s['rung']} | "
            f"{s['shapes']} | {rho} | {s['leader']} ({s['leader_regret_points']:.2f}) | "
            f"{s['top3_best_regret_points']:.2f} | {s['seconds_all_shapes']:.0f} |"
        )
    return "\n".join(lines)


def plot(path: Path, summary: list[dict]) -> None:
    """Spearman against the rung, one line per (recipe, images, rate)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    lines: dict[tuple, list[tuple[int, float]]] = {}
    for s in summary:
        lines.setdefault((s["recipe"], s["train_images"], s["rate"]), []).append(
            (s["rung"], s["spearman"])
        )
    for (recipe, images, rate), points in lines.items():
        xs, ys = zip(*sorted(points), strict=True)
        ax.plot(xs, ys, marker="o", label=f"{recipe}, {images:,} images, rate {rate}")
    ax.set_xscale("log")
    rungs = sorted({s["rung"] for s in summary})
    ax.set_xticks(rungs, [str(r) for r in rungs])
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("rung (epochs of a trial)")
    ax.set_ylabel("Spearman against the yardstick")
    ax.set_title("How each rung ranks the 16 shapes (validation split, seed 0)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -- the command --------------------------------------------------------------------------


def read_rows(path: Path) -> list[dict]:
    from tuning.rundir.records import read_csv_rows

    rows = read_csv_rows(path, FIELDS)
    if rows is None:
        raise SystemExit(f"{path} was written with other columns; give a new --out")
    return rows


def key_of(row: dict) -> tuple:
    return (str(row["recipe"]), int(row["blocks"]), int(row["filters"]), str(row["skip"]),
            int(row["seed"]), float(row["rate"]), int(row["rung"]),
            int(row["train_images"]))  # fmt: skip


def parse_list(text: str, kind, flag: str, parser: argparse.ArgumentParser) -> list:
    """``"1,3,9"`` -> [1, 3, 9]; anything else is a usage error (exit 2)."""
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values:
        parser.error(f"{flag}: not a comma-separated list of numbers: {text!r}")
    return values


def measure(args, rows: list[dict]) -> None:
    """Train what ``--out`` lacks, appending each training's rows as it ends."""
    from tuning.data import load_splits
    from tuning.engine.driver import trial_training_set
    from tuning.machine.precision import resolve
    from tuning.rundir.records import append_csv_row

    precision = resolve(args.precision)
    splits = load_splits(args.data_dir, args.seed, VALID_FRACTION)
    data = trial_training_set(splits, args.trial_images, args.seed)
    images = len(data[1])
    valid, stats = (splits.x_valid, splits.y_valid), (splits.mean, splits.variance)
    done = {key_of(r) for r in rows}
    shapes = yardstick.SHAPES if not args.shapes else [
        yardstick.parse_shape(s) for s in args.shapes.split(",")
    ]  # fmt: skip
    for recipe in args.recipes:
        for rate in args.rates:
            for shape in shapes:
                wanted = {(recipe, *shape[:2], str(shape[2]), args.seed, rate, r, images)
                          for r in args.rungs}  # fmt: skip
                if wanted <= done:
                    continue

                def run(first, last, weights, shape=shape, rate=rate, recipe=recipe):
                    return train_segment(data, valid, shape, rate, recipe, last - first,
                                         args.seed, stats, precision, weights)  # fmt: skip

                new = rows_for(recipe, shape, rate, args.seed, args.rungs, images, precision, run)
                for row in new:
                    if key_of(row) not in done:
                        append_csv_row(Path(args.out), FIELDS, row)
                        rows.append(row)
                        done.add(key_of(row))
                print(
                    f"{recipe} {fidelity.compact(shape)} rate {rate:g}: "
                    + ", ".join(f"rung {r['rung']} {float(r['val_accuracy']):.4f}" for r in new)
                    + f" ({new[-1]['seconds']:.0f} s)",
                    flush=True,
                )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir")
    p.add_argument("--recipes", default="constant", help=f"of {', '.join(RECIPES)}")
    p.add_argument("--rates", default="0.01,0.05", help="the rate (constant) or peak (others)")
    p.add_argument("--rungs", default="1,3,9")
    p.add_argument("--trial-images", type=int, default=DEFAULT_TRIAL_IMAGES)
    p.add_argument("--seed", type=int, default=0, help="the split's and the models' seed")
    p.add_argument("--shapes", help="e.g. 2x64off,3x64on (default: all 16)")
    p.add_argument("--precision", default="auto")
    p.add_argument("--out", default=DEFAULT_OUT)
    p.add_argument("--summary", action="store_true", help="only the table, from --out")
    p.add_argument("--yardstick", default=yardstick.DEFAULT_OUT)
    p.add_argument("--summary-out", default=DEFAULT_SUMMARY)
    p.add_argument("--plot", default=DEFAULT_PLOT)
    args = p.parse_args(argv)
    args.recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    unknown = [r for r in args.recipes if r not in RECIPES]
    if unknown or not args.recipes:
        p.error(f"--recipes: choose from {', '.join(RECIPES)}, not {','.join(unknown) or '-'}")
    args.rates = parse_list(args.rates, float, "--rates", p)
    args.rungs = sorted(set(parse_list(args.rungs, int, "--rungs", p)))
    if args.rungs[0] < 1:
        p.error("--rungs must be positive epochs")
    rows = read_rows(Path(args.out))
    if not args.summary:
        measure(args, rows)
    report(args, rows)
    return 0


def report(args, rows: list[dict]) -> None:
    """The Spearman table against the yardstick, its CSV and plot (when both exist)."""
    if not rows or not Path(args.yardstick).is_file():
        print(f"{len(rows)} rows; no yardstick at {args.yardstick} to rank them against")
        return
    scores = fidelity.read_yardstick(Path(args.yardstick), "val_accuracy_tta", None, None)
    means = {shape: statistics.mean(v.values()) for shape, v in scores.items()}
    summary = summarize(rows, means)
    print(f"yardstick: {len(means)} of 16 shapes")
    print(summary_text(summary))
    from tuning.rundir.records import write_csv_rows

    write_csv_rows(Path(args.summary_out), SUMMARY_FIELDS, summary, "w")
    plot(Path(args.plot), summary)


if __name__ == "__main__":
    sys.exit(main())
