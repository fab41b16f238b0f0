"""Rank fidelity: how well each stage of a search ranks network shapes as the yardstick does.

    python benchmarks/fidelity.py runs/seed0/search runs/seed1/search ...
    python benchmarks/fidelity.py --yardstick docs/results/yardstick.csv RUN_DIR [RUN_DIR ...]

The yardstick (``benchmarks/yardstick.py``) trains every shape of the default space under
the finalizer's recipe; a shape's score is its mean over the yardstick's seeds (flip-TTA
validation accuracy by default, ``--column``). For each search run directory (one per search
seed) this compares with it the scores the search ranks by:

- each Hyperband rung (the trials' target epochs, as trials.csv holds them): the best
  validation accuracy per shape among that rung's completed trials;
- the confirmation (confirm.csv): per shape, the best mean over seeds among its
  configurations (a shape confirmed at two learning rates counts at its better one).

Per stage: the Spearman rank correlation over the shapes both have (NaN below 3 shapes),
the stage's own leader and what picking it would have cost. Per run: the shape the
finalizer would train (``tuning.retrain.selection.choose_configuration``: best.json's
confirmed winner, else Hyperband's best trial) and its regret, the yardstick's best mean
minus that shape's mean, in points (0.01 accuracy = 1 point). Writes one CSV row per run x
stage, a plot of Spearman per stage (one line per run), and prints both tables.

No training and no TensorFlow: a second or two.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import yardstick  # noqa: E402

from tuning.errors import ProjectError  # noqa: E402
from tuning.retrain.selection import choose_configuration  # noqa: E402
from tuning.rundir import records  # noqa: E402
from tuning.rundir.folders import read_run  # noqa: E402
from tuning.stats import mean_interval, paired_t  # noqa: E402

DEFAULT_YARDSTICK = yardstick.DEFAULT_OUT
DEFAULT_OUT = "docs/results/fidelity.csv"
DEFAULT_PLOT = "docs/img/fidelity.png"
SCORE_COLUMNS = ("val_accuracy_tta", "val_accuracy")
CONFIRMATION = "confirmation"
MIN_SHAPES = 3  # fewer shapes than this make no rank correlation
# What makes two yardstick rows the same recipe (the key without the shape and the seed).
RECIPE = tuple(k for k in yardstick.KEY if k not in ("blocks", "filters", "skip", "seed"))
OUT_FIELDS: dict[str, type] = {
    "run": str,
    "search_seed": int,
    "stage": str,
    "stage_shapes": int,
    "yardstick_shapes": int,
    "shapes_compared": int,
    "spearman": float,
    "stage_leader": str,
    "stage_leader_regret_points": float,
    "picked_shape": str,
    "regret_points": float,
}

Shape = tuple[int, int, bool]


class InputError(ProjectError):
    """Bad input (a missing or foreign file): one line, exit status 2."""

    exit_code = 2


@dataclass(frozen=True)
class ShapeScore:
    """One shape in the yardstick: its seeds' scores, mean, and gap to the best shape."""

    shape: Shape
    scores: dict[int, float]  # seed -> score
    mean: float
    half_width: float | None  # 95% t interval of the mean (None below 2 seeds)
    gap: float  # best mean - this mean
    gap_low: float | None  # paired by seed, 95% t (None below 2 shared seeds)
    gap_high: float | None


def compact(shape: Shape | None) -> str:
    """``(2, 64, False)`` -> ``2x64off`` (yardstick.py's --shapes form)."""
    if shape is None:
        return ""
    return f"{shape[0]}x{shape[1]}{'on' if shape[2] else 'off'}"


# -- the yardstick ------------------------------------------------------------------------


def read_yardstick(path: Path, column: str, peak: float | None, epochs: int | None) -> dict:
    """{shape: {seed: score}} from a yardstick CSV, of one recipe (``--peak``/``--epochs``
    choose when it holds several)."""
    rows = _yardstick_rows(path)
    rows = [r for r in rows if _matches(r, peak, epochs)]
    recipes = {tuple(r[k] for k in RECIPE) for r in rows}
    if not rows:
        raise InputError(f"{path} holds no training{_filter_text(peak, epochs)}")
    if len(recipes) > 1:
        raise InputError(
            f"{path} mixes {len(recipes)} recipes (peak_lr, epochs, ...: "
            f"{'; '.join(','.join(r) for r in sorted(recipes))}); choose one with --peak/--epochs"
        )
    scores: dict[Shape, dict[int, float]] = {}
    for r in rows:
        seed = _integer(r, "seed", path)
        scores.setdefault(_shape_of_text(r, path), {})[seed] = _number(r, column, path)
    return scores


def _yardstick_rows(path: Path) -> list[dict]:
    if not path.is_file():
        raise InputError(f"yardstick {path} does not exist (run benchmarks/yardstick.py first)")
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames != yardstick.FIELDS:
                raise InputError(
                    f"{path} is not a yardstick CSV (its columns are not yardstick.py's: "
                    f"{','.join(yardstick.FIELDS)})"
                )
            return list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"yardstick {path} is unreadable ({exc})") from None


def _matches(row: dict, peak: float | None, epochs: int | None) -> bool:
    try:
        return (peak is None or math.isclose(float(row["peak_lr"]), peak)) and (
            epochs is None or int(row["epochs"]) == epochs
        )
    except (TypeError, ValueError):
        return False


def _filter_text(peak: float | None, epochs: int | None) -> str:
    parts = ([f"peak_lr {peak:g}"] if peak is not None else []) + (
        [f"epochs {epochs}"] if epochs is not None else []
    )
    return f" with {' and '.join(parts)}" if parts else ""


def _shape_of_text(row: dict, path: Path) -> Shape:
    if row["skip"] not in ("True", "False"):
        raise InputError(f"{path}: skip {row['skip']!r} is not True or False")
    return _integer(row, "blocks", path), _integer(row, "filters", path), row["skip"] == "True"


def _integer(row: dict, column: str, path: Path) -> int:
    try:
        return int(row[column])
    except (TypeError, ValueError):
        raise InputError(f"{path}: {column} {row[column]!r} is not an integer") from None


def _number(row: dict, column: str, path: Path) -> float:
    try:
        value = float(row[column])
    except (TypeError, ValueError):
        raise InputError(f"{path}: {column} {row[column]!r} is not a number") from None
    if not math.isfinite(value):
        raise InputError(f"{path}: {column} {row[column]!r} is not finite")
    return value


def shape_table(scores: dict[Shape, dict[int, float]]) -> list[ShapeScore]:
    """Every shape of the yardstick, best mean first, with its gap to the best shape."""
    means = {shape: sum(s.values()) / len(s) for shape, s in scores.items()}
    best = max(sorted(means), key=means.get)
    table = []
    for shape in sorted(means, key=lambda s: (-means[s], s)):
        low, high = (None, None) if shape == best else gap_interval(scores[best], scores[shape])
        table.append(ShapeScore(shape, scores[shape], means[shape],
                                mean_interval(list(scores[shape].values())),
                                means[best] - means[shape], low, high))  # fmt: skip
    return table


def gap_interval(best: dict[int, float], other: dict[int, float]) -> tuple:
    """95% paired-t interval of best - other over their shared seeds ((None, None) below 2)."""
    seeds = sorted(set(best) & set(other))
    if len(seeds) < 2:
        return None, None
    paired = paired_t([best[s] for s in seeds], [other[s] for s in seeds])
    return paired.ci_low, paired.ci_high


# -- a search run -------------------------------------------------------------------------


def rung_scores(trials: list[dict]) -> dict[int, dict[Shape, float]]:
    """{target epochs: {shape: best val_accuracy among that rung's completed trials}}."""
    rungs: dict[int, dict[Shape, float]] = {}
    for r in trials:
        value = r.get("val_accuracy")
        if r["status"] != "COMPLETED" or r.get("target_epochs") is None or not _finite(value):
            continue
        best = rungs.setdefault(int(r["target_epochs"]), {})
        shape = _shape_of(r)
        best[shape] = max(value, best.get(shape, -math.inf))
    return dict(sorted(rungs.items()))


def confirmation_scores(runs: list[dict]) -> dict[Shape, float]:
    """{shape: best mean over seeds among its confirmed configurations}. A training's score
    is as the search counts it (``tuning.engine.confirm.score``): its last validation
    accuracy, 0 where not finite; a configuration is its hyperparameters, length and peak."""
    by_config: dict[tuple, list[float]] = {}
    for r in runs:
        key = (*_shape_of(r), r["learning_rate"], r["epochs"], r.get("peak_learning_rate"))
        value = r["val_accuracy"]
        by_config.setdefault(key, []).append(value if _finite(value) else 0.0)
    best: dict[Shape, float] = {}
    for key, values in by_config.items():
        best[key[:3]] = max(sum(values) / len(values), best.get(key[:3], -math.inf))
    return best


def candidate_runs(run_dir: Path, runs: list[dict]) -> list[dict]:
    """The confirm.csv rows of the trainings best.json's confirmation counted: a run copied
    from another (the campaign's sizes and both48 runs) also holds its source's rows, of
    other candidates, lengths or image counts."""
    try:
        confirmation = json.loads((run_dir / "best.json").read_text()).get("confirmation") or {}
    except (OSError, ValueError, AttributeError):
        return runs
    candidates = confirmation.get("candidates")
    if not candidates:
        return runs
    count = confirmation.get("train_images")
    images = count if any(r.get("train_images") == count for r in runs) else None
    seeds = confirmation.get("seeds") or math.inf

    def key(hp: dict, epochs) -> tuple:
        return (*_shape_of(hp), f"{float(hp['learning_rate']):.6g}", int(epochs))

    wanted = {key(c["hyperparameters"], c["epochs"]) for c in candidates}
    return [
        r for r in runs
        if key(r, r["epochs"]) in wanted and r.get("train_images") == images
        and r["seed_index"] < seeds
    ]  # fmt: skip


def _shape_of(row: dict) -> Shape:
    return int(row["blocks"]), int(row["filters"]), bool(row["skip"])


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def spearman(stage: dict[Shape, float], means: dict[Shape, float]) -> tuple[int, float]:
    """(shapes both have, Spearman's rho over them): NaN below MIN_SHAPES shapes or where
    either side is constant."""
    from scipy.stats import spearmanr

    shared = sorted(set(stage) & set(means))
    if len(shared) < MIN_SHAPES:
        return len(shared), math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input: NaN, said as 'undefined'
        rho = spearmanr([stage[s] for s in shared], [means[s] for s in shared])[0]
    return len(shared), float(rho)


def picked_shape(run_dir: Path) -> Shape:
    """The shape the finalizer would train by default, chosen as it chooses."""
    return _shape_of(choose_configuration(run_dir, None, None).hyperparameters)


def regret_points(shape: Shape | None, means: dict[Shape, float]) -> float:
    """The yardstick's best mean minus ``shape``'s, in points (NaN: not in the yardstick)."""
    if shape not in means:
        return math.nan
    return round(100 * (max(means.values()) - means[shape]), 4)


def run_rows(run_dir: Path, means: dict[Shape, float]) -> list[dict]:
    """One row per stage of one search run."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"run directory {run_dir} does not exist")
    stages: dict[str, dict[Shape, float]] = {
        str(epochs): scores
        for epochs, scores in rung_scores(records.read_trials_csv(run_dir / "trials.csv")).items()
    }
    confirmed = confirmation_scores(candidate_runs(run_dir, records.read_confirm_runs(run_dir)))
    if confirmed:
        stages[CONFIRMATION] = confirmed
    pick = picked_shape(run_dir)
    seed = read_run(run_dir).get("definition", {}).get("seed")
    rows = []
    for stage, scores in stages.items():
        n, rho = spearman(scores, means)
        leader = max(scores, key=scores.get) if scores else None  # ties: the first seen
        rows.append({
            "run": str(run_dir), "search_seed": seed, "stage": stage,
            "stage_shapes": len(scores), "yardstick_shapes": len(means), "shapes_compared": n,
            "spearman": round(rho, 4), "stage_leader": compact(leader),
            "stage_leader_regret_points": regret_points(leader, means),
            "picked_shape": compact(pick), "regret_points": regret_points(pick, means),
        })  # fmt: skip
    return rows


# -- output -------------------------------------------------------------------------------


def stage_order(rows: list[dict]) -> list[str]:
    """The rungs in epochs order, then the confirmation."""
    stages = {r["stage"] for r in rows}
    return sorted(stages - {CONFIRMATION}, key=int) + [CONFIRMATION] * (CONFIRMATION in stages)


def stage_label(stage: str) -> str:
    return stage if stage == CONFIRMATION else f"{stage} epoch{'s' * (stage != '1')}"


def plot(path: Path, rows: list[dict]) -> None:
    """Spearman per stage, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = stage_order(rows)
    fig, ax = plt.subplots(figsize=(7, 4))
    for run in dict.fromkeys(r["run"] for r in rows):
        mine = {r["stage"]: r for r in rows if r["run"] == run}
        seed = next(iter(mine.values()))["search_seed"]
        ys = [mine[s]["spearman"] if s in mine else math.nan for s in stages]
        ax.plot(range(len(stages)), ys, "o-", label=f"seed {seed} ({run})")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(xticks=range(len(stages)), xticklabels=[stage_label(s) for s in stages],
           xlim=(-0.5, len(stages) - 0.5), ylim=(-1.05, 1.05),
           xlabel="stage of the search (Hyperband rung, confirmation)",
           ylabel="Spearman with the yardstick", title="Rank fidelity per stage")  # fmt: skip
    ax.legend(fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def yardstick_text(table: list[ShapeScore]) -> str:
    """The shapes, best mean first: seeds, mean with its 95% t interval, gap to the best."""
    head = ("rank", "shape", "seeds", "mean (95% CI)", "gap to the best (paired 95% CI)")
    cells = [head] + [
        (str(i), yardstick.shape_name(*s.shape), str(len(s.scores)),
         f"{s.mean:.4f}" + (f" +- {s.half_width:.4f}" if s.half_width is not None else ""),
         "best" if i == 1 else f"{s.gap:+.4f}" + _interval(s.gap_low, s.gap_high))
        for i, s in enumerate(table, 1)
    ]  # fmt: skip
    return f"yardstick: {len(table)} of {len(yardstick.SHAPES)} shapes\n" + columns(cells)


def rows_text(rows: list[dict]) -> str:
    """The run x stage table; shapes: compared (the stage's / the yardstick's)."""
    head = ("run", "seed", "stage", "shapes", "spearman", "stage leader (regret)",
            "pick (regret)")  # fmt: skip
    cells = [head] + [
        (r["run"], _cell(r["search_seed"]), stage_label(r["stage"]),
         f"{r['shapes_compared']} ({r['stage_shapes']}/{r['yardstick_shapes']})", _rho_text(r),
         f"{r['stage_leader']} ({_points(r['stage_leader_regret_points'])})",
         f"{r['picked_shape']} ({_points(r['regret_points'])})")
        for r in rows
    ]  # fmt: skip
    return "shapes: compared (the stage's / the yardstick's); regret in points\n" + columns(cells)


def columns(cells: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in cells)  # fmt: skip


def _interval(low: float | None, high: float | None) -> str:
    return "" if low is None else f" ({low:+.4f} to {high:+.4f})"


def _rho_text(row: dict) -> str:
    if row["shapes_compared"] < MIN_SHAPES:
        return "too few"
    return "undefined" if math.isnan(row["spearman"]) else f"{row['spearman']:+.3f}"


def _points(value: float) -> str:
    return "not in yardstick" if math.isnan(value) else f"{value:.2f}"


def _cell(value) -> str:
    return "?" if value is None else str(value)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        table, rows = evaluate(args)
    except ProjectError as exc:  # every unusable input: a usage error
        print(f"fidelity: {exc}", file=sys.stderr)
        return 2
    try:
        write_outputs(args, rows)
    except OSError as exc:
        print(f"fidelity: cannot write the results ({exc})", file=sys.stderr)
        return 1
    print(yardstick_text(table), rows_text(rows), sep="\n\n")
    print(f"wrote {args.out} and {args.plot}")
    return 0


def evaluate(args) -> tuple[list[ShapeScore], list[dict]]:
    """The yardstick's shape table, and one row per run x stage."""
    scores = read_yardstick(Path(args.yardstick), args.column, args.peak, args.epochs)
    table = shape_table(scores)
    means = {s.shape: s.mean for s in table}
    return table, [row for run in args.runs for row in run_rows(Path(run), means)]


def write_outputs(args, rows: list[dict]) -> None:
    records.write_csv(Path(args.out), OUT_FIELDS, rows)
    plot(Path(args.plot), rows)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="search run directories")
    p.add_argument("--yardstick", default=DEFAULT_YARDSTICK, help="the yardstick's CSV")
    p.add_argument(
        "--column",
        choices=SCORE_COLUMNS,
        default=SCORE_COLUMNS[0],
        help="the yardstick's score (default: with flip TTA, as the finalizer tests)",
    )
    p.add_argument("--peak", type=float, help="only the yardstick's rows at this peak_lr")
    p.add_argument("--epochs", type=int, help="only the yardstick's rows of this length")
    p.add_argument("--out", default=DEFAULT_OUT, help="the CSV written (one row per run x stage)")
    p.add_argument("--plot", default=DEFAULT_PLOT, help="the PNG written")
    return p


if __name__ == "__main__":
    sys.exit(main())
