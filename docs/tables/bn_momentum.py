"""Batch-norm momentum 0.9 against 0.99 in the final training (docs/results/bn_momentum.md).

Reads ``docs/results/bn_momentum_final.csv`` (``benchmarks/yardstick.py`` rows: one per
training) when it exists; until then the page says the comparison is not yet measured.
"""

from __future__ import annotations

from pathlib import Path

from .core import (
    Row,
    by_seed,
    interval,
    mean,
    num,
    paired,
    per_seed,
    read_rows,
    shape,
    table,
    where,
)

CSV = "docs/results/bn_momentum_final.csv"
COMMAND = (
    "for m in 0.9 0.99; do python benchmarks/yardstick.py --data-dir ../shared/data/fashion-mnist"
    " --shapes 2x32off --seeds 0,1 --bn-momentum $m --out docs/results/bn_momentum_final.csv; done"
)
RECIPE = ("epochs", "peak_lr", "weight_decay", "augment", "train_images", "precision")


def difference(fast: dict[int, float], slow: dict[int, float]) -> str:
    """0.9 minus 0.99, paired by seed, with its 95% interval where there are 2+ seeds."""
    seeds, diffs = paired(fast, slow)
    if not seeds:
        return "no seed was trained at both momenta"
    ci = interval(diffs)
    if ci is None:
        return f"{num(diffs[0], sign=True)} on seed {seeds[0]} alone (one seed: no interval)"
    low, high = (num(c, sign=True) for c in ci)
    return (
        f"{num(mean(diffs), sign=True)} (95% CI {low} to {high}, paired t over seeds "
        f"{', '.join(map(str, seeds))}; per seed {per_seed(diffs, sign=True)})"
    )


def network_lines(rows: list[Row], name: str) -> tuple[list[list[object]], str]:
    """One network under one recipe (``name`` in the table): a line per momentum, and the
    paired difference."""
    by_m = {m: where(rows, bn_momentum=m) for m in sorted({r["bn_momentum"] for r in rows})}
    lines = []
    for m, group in by_m.items():
        acc = by_seed(group)
        tta = by_seed(group, "val_accuracy_tta")
        lines.append(
            [
                name,
                f"{m:g}",
                ",".join(map(str, acc)),
                per_seed(acc.values()),
                num(mean(list(acc.values()))),
                num(mean(list(tta.values()))),
            ]
        )
    if 0.9 in by_m and 0.99 in by_m:
        diff = difference(by_seed(by_m[0.9]), by_seed(by_m[0.99]))
        diff_tta = difference(*(by_seed(by_m[m], "val_accuracy_tta") for m in (0.9, 0.99)))
        note = f"{name}: 0.9 − 0.99 = {diff}; with flip TTA {diff_tta}."
    else:
        note = f"{name}: only momentum {', '.join(f'{m:g}' for m in by_m)} measured."
    return lines, note


def render(root: Path) -> str:
    if not (root / CSV).is_file():
        return (
            f"**Not yet measured.** `{CSV}` is not committed yet; the page fills in when "
            f"it is (`python docs/regenerate.py`). To measure:\n\n`{COMMAND}`"
        )
    rows = read_rows(root, CSV)
    if not rows:
        return f"**Not yet measured.** `{CSV}` has no rows yet."
    keys = ("blocks", "filters", "skip", *(k for k in RECIPE if k in rows[0]))
    groups = sorted({tuple(str(r[k]) for k in keys) for r in rows})
    varying = [k for k in keys[3:] if len({str(r[k]) for r in rows}) > 1]
    lines, notes = [], []
    for group in groups:
        same = [r for r in rows if tuple(str(r[k]) for k in keys) == group]
        name = ", ".join([shape(same[0]), *(f"{k} {same[0][k]}" for k in varying)])
        more, note = network_lines(same, name)
        lines += more
        notes.append(f"- {note}")
    recipe = "; ".join(
        f"{k} {', '.join(sorted({str(r[k]) for r in rows}))}" for k in RECIPE if k in rows[0]
    )
    headers = ["network", "bn momentum", "seeds", "val accuracy per seed", "mean"]
    return "\n".join(
        [
            table([*headers, "with flip TTA, mean"], lines),
            "",
            *notes,
            "",
            f"Rows: `{CSV}` ({len(rows)} trainings; {recipe}).",
        ]
    )


TABLES = {"bn_momentum": render}
