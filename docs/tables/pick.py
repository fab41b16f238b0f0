"""The pick campaign (issue 32, docs/results/pick.md): the yardstick and the rung table.

Reads ``docs/results/yardstick.csv`` (``benchmarks/yardstick.py``: every shape under the
finalizer's recipe) and ``docs/results/rungs.csv`` (``benchmarks/rungs.py``: every shape
to each rung under a candidate trial recipe), and ranks the second against the first with
``rungs.summarize``, the benchmark's own function, so the page and the script agree.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path

from .core import interval, mean, num, paired, per_seed, read_rows, shape, table

YARDSTICK = "docs/results/yardstick.csv"
RUNGS = "docs/results/rungs.csv"
SEARCHES = "docs/results/searches"  # {rule}/seed{N}/: trials.csv, confirm.csv, best.json
# How each search was confirmed: --confirm-candidates top (the default), sizes, and both
# with --confirm-images 48000; the last two rerun a copy of the first (the same trials).
RULES = ("top", "sizes", "both48")
# The finalizer trains on train+valid (60,000 images) for 4 x the pick's lineage epochs,
# 36 for a trial of the default 9-epoch rung; the yardstick on 48,000 images for 32.
FINAL_IMAGES, FINAL_EPOCHS = 60000, 36


def _benchmark(name: str):
    """A module of this checkout's benchmarks/ (the pages' root may be a copy of them alone)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    return importlib.import_module(name)


def _not_yet(csv: str, command: str) -> str:
    return f"**Not yet measured.** `{csv}` is not committed yet. To measure:\n\n`{command}`"


def yardstick_scores(root: Path, column: str = "val_accuracy_tta") -> dict[tuple, dict]:
    """{(blocks, filters, skip): {seed: score}} for the default recipe's rows."""
    scores: dict[tuple, dict] = {}
    for r in read_rows(root, YARDSTICK):
        scores.setdefault((r["blocks"], r["filters"], r["skip"]), {})[r["seed"]] = float(r[column])
    return scores


def yardstick(root: Path) -> str:
    if not (root / YARDSTICK).is_file():
        return _not_yet(YARDSTICK, "benchmarks/pick_campaign.sh")
    rows = read_rows(root, YARDSTICK)
    tta, single = yardstick_scores(root), yardstick_scores(root, "val_accuracy")
    seconds: dict[tuple, list[float]] = {}
    for r in rows:
        seconds.setdefault((r["blocks"], r["filters"], r["skip"]), []).append(float(r["seconds"]))
    means = {s: mean(list(v.values())) for s, v in tta.items()}
    order = sorted(means, key=lambda s: -means[s])
    best = order[0]
    lines = []
    for rank, s in enumerate(order, 1):
        seeds, gaps = paired(tta[best], tta[s])
        ci = interval(gaps)
        if s == best:
            gap = "-"
        elif ci is None:
            gap = f"{num(100 * mean(gaps), 2)} (seed {', '.join(map(str, seeds))})"
        else:
            gap = f"{num(100 * mean(gaps), 2)} ({num(100 * ci[0], 2)} to {num(100 * ci[1], 2)})"
        per_run = mean(seconds[s])
        epochs = rows[0]["epochs"]
        final_min = per_run * FINAL_IMAGES / rows[0]["train_images"] * FINAL_EPOCHS / epochs / 60
        lines.append([
            rank, shape({"blocks": s[0], "filters": s[1], "skip": s[2]}),
            per_seed(tta[s].values()), num(means[s]), gap,
            num(mean(list(single[s].values()))), f"{per_run:.0f}", f"{final_min:.0f}",
        ])  # fmt: skip
    precisions = sorted({str(r["precision"]) for r in rows})
    return "\n".join(
        [
            table(
                [
                    "rank",
                    "shape",
                    "val accuracy, flip TTA, per seed",
                    "mean",
                    "gap to the best, points (95% CI)",
                    "single view",
                    "s per training",
                    "finalize, min (est.)",
                ],
                lines,
            ),  # fmt: skip
            "",
            f"Rows: `{YARDSTICK}` ({len(rows)} trainings of {len(order)} of the 16 shapes; "
            f"{rows[0]['epochs']} epochs on {rows[0]['train_images']:,} images, peak "
            f"{rows[0]['peak_lr']}, precision {', '.join(precisions)}). The finalize estimate "
            f"scales a training's seconds to {FINAL_IMAGES:,} images and {FINAL_EPOCHS} epochs.",
        ]
    )


def yardstick_cost(root: Path) -> str:
    """What the yardstick cost, from its own rows: one figure for every page that quotes it."""
    if not (root / YARDSTICK).is_file():
        return "The yardstick's cost: not yet measured (no rows committed)."
    rows = read_rows(root, YARDSTICK)
    per_seed_h: dict[int, list[float]] = {}
    for r in rows:
        per_seed_h.setdefault(int(r["seed"]), []).append(float(r["seconds"]) / 3600)
    parts = [
        f"seed {seed}: {len(h)} of 16 shapes in {sum(h):.1f} h"
        for seed, h in sorted(per_seed_h.items())
    ]
    total = sum(sum(h) for h in per_seed_h.values())
    return (
        f"The yardstick's cost, measured from its rows (`{YARDSTICK}`, the seconds column, "
        f"one training at a time on the 2-core CPU): {'; '.join(parts)}; {total:.1f} h in all."
    )


def _search(root: Path, rule: str, seed: int) -> dict | None:
    """One committed search's pick, candidates and minutes of training (None if absent)."""
    where = root / SEARCHES / rule / f"seed{seed}"
    try:
        best = json.loads((where / "best.json").read_text())
    except (OSError, ValueError):
        return None
    confirm = best.get("confirmation") or {}
    trials = read_rows(root, f"{SEARCHES}/{rule}/seed{seed}/trials.csv")
    fidelity = _benchmark("fidelity")  # puts the checkout's tuning/ on the path
    from tuning.rundir import records

    # only the trainings best.json's confirmation counted: a copied run holds its source's too
    confirms = fidelity.candidate_runs(where, records.read_confirm_runs(where))
    seconds = sum(float(r["seconds"] or 0) for r in trials + confirms)
    key = lambda hp: (hp["blocks"], hp["filters"], hp["skip"])  # noqa: E731
    return {
        "pick": key(best["hyperparameters"]),
        "lr": best["hyperparameters"]["learning_rate"],
        "mean": (confirm.get("winner") or {}).get("mean"),
        "candidates": [key(c["hyperparameters"]) for c in confirm.get("candidates", [])],
        "distinguishable": confirm.get("distinguishable"),
        "minutes": seconds / 60,
    }


def _short(s: tuple) -> str:
    return f"{s[0]}x{s[1]} {'on' if s[2] else 'off'}"


def searches(root: Path) -> str:
    """Per seed and confirmation rule (on the same trials), the pick and its regret on the
    yardstick."""
    seeds = sorted(
        int(d.name[4:]) for d in (root / SEARCHES / "top").glob("seed*") if d.name[4:].isdigit()
    )
    if not seeds or not (root / YARDSTICK).is_file():
        return _not_yet(f"{SEARCHES}/", "benchmarks/pick_campaign.sh")
    means = {s: mean(list(v.values())) for s, v in yardstick_scores(root).items()}
    best = max(means.values())
    lines, regrets = [], {rule: [] for rule in RULES}
    for seed in seeds:
        for rule in RULES:
            run = _search(root, rule, seed)
            if run is None:
                lines.append([seed, rule, "not yet run", "", "", ""])
                continue
            r = 100 * (best - means[run["pick"]]) if run["pick"] in means else None
            regrets[rule].append(r)
            lines.append([
                seed, rule, ", ".join(_short(c) for c in run["candidates"]),
                f"{_short(run['pick'])}, lr {run['lr']:.3g} "
                f"({'unconfirmed' if run['mean'] is None else num(run['mean'])})",
                "-" if r is None else f"{r:.2f}", f"{run['minutes']:.0f}",
            ])  # fmt: skip
    summary = [
        f"{rule}: mean {mean(v):.2f}, worst {max(v):.2f} points "
        f"over {len(v)} seed{'s' * (len(v) > 1)}"
        for rule, v in regrets.items() if v and None not in v
    ]  # fmt: skip
    headers = ["seed", "confirmation", "candidates", "pick (confirmed mean)",
               "regret, points", "min of training"]  # fmt: skip
    return "\n".join([
        table(headers, lines), "",
        "Confirmation: `top`, the trials' top 3; `sizes`, the best of each of 3 size classes; "
        "`both48`, their union on all 48,000 training images (`--confirm-candidates both "
        "--confirm-images 48000`). Regret: the yardstick's best shape mean minus the pick's, "
        f"in points of validation accuracy (flip TTA). {'; '.join(summary) or 'None yet'}. "
        "Minutes: the training seconds of the trials and of the candidates' confirmation "
        "trainings, as the run's CSVs record them (a fresh search's wall time adds start-up "
        "and scoring).",
    ])  # fmt: skip


def rung_summary(root: Path) -> list[dict]:
    rungs = _benchmark("rungs")
    rows = rungs.read_rows(root / RUNGS)
    means = {s: mean(list(v.values())) for s, v in yardstick_scores(root).items()}
    return rungs.summarize(rows, means)


def rung_fidelity(root: Path) -> str:
    if not (root / RUNGS).is_file() or not (root / YARDSTICK).is_file():
        return _not_yet(RUNGS, "benchmarks/pick_campaign.sh")
    lines = []
    for s in rung_summary(root):
        rho = s["spearman"]
        lines.append([
            s["recipe"], f"{s['train_images']:,}", s["rate"], s["rung"], s["shapes"],
            "too few" if not math.isfinite(rho) else f"{rho:+.2f}",
            f"{s['leader']} ({s['leader_regret_points']:.2f})",
            f"{s['top3_best_regret_points']:.2f}", f"{s['seconds_all_shapes'] / 60:.0f}",
        ])  # fmt: skip
    return table(
        ["trial recipe", "trial images", "rate (peak)", "rung, epochs", "shapes", "Spearman",
         "rung's leader (regret, points)", "best of its top 3 (regret)",
         "minutes, all shapes"], lines,
    )  # fmt: skip


def rung_figure(root: Path, path: Path) -> None:
    _benchmark("rungs").plot(path, rung_summary(root))


TABLES = {
    "yardstick": yardstick,
    "yardstick_cost": yardstick_cost,
    "rung_fidelity": rung_fidelity,
    "searches": searches,
}
