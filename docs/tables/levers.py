"""The lever tables: settings of ``benchmarks/accuracy_levers.py`` compared seed by seed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from .core import DocsError, Row, by_seed, mean, num, paired, per_seed, read_rows, table, where


def levers(
    root: Path, relative: str, settings: Sequence[str], reference: Callable[[str], str], **match
) -> str:
    """Per setting: seeds, accuracy per seed, mean, the mean paired difference to the
    setting ``reference(name)`` names, seconds per run."""
    rows = where(read_rows(root, relative), **match)
    out = []
    for name in settings:
        runs = where(rows, setting=name)
        if not runs:
            raise DocsError(f"{relative}: no rows for {name} with {match}")
        accs = by_seed(runs)
        ref = reference(name)
        _, diffs = paired(accs, by_seed(where(rows, setting=ref))) if ref != name else ([], [])
        vs = f"{num(mean(diffs), 4, sign=True)} vs {ref}" if diffs else "-"
        secs = mean([float(r["seconds"]) for r in runs])
        out.append(
            [
                name,
                ",".join(map(str, accs)),
                per_seed(accs.values()),
                num(mean(list(accs.values()))),
                vs,
                num(secs, 0),
            ]
        )
    headers = ["setting", "seeds", "val accuracy per seed", "mean", "vs reference (paired)"]
    return table([*headers, "s/run"], out)


def _cells(groups: list[dict[int, Row]], seeds: list[int], column: str, places: int) -> list[str]:
    return [" / ".join(num(g[s][column], places) if s in g else "–" for s in seeds) for g in groups]


def _diffs(groups: list[dict[int, Row]], seeds: list[int], column: str) -> list[str]:
    ref = {s: float(r[column]) for s, r in groups[0].items()}
    out = ["–"]
    for g in groups[1:]:
        mine = {s: float(r[column]) for s, r in g.items()}
        diff = dict(zip(*paired(mine, ref), strict=True))
        out.append(" / ".join(num(diff[s], 4, sign=True) if s in diff else "–" for s in seeds))
    return out


def compare(
    root: Path, relative: str, label: str, rows: Sequence[tuple[str, dict]], ref: str | None = None
) -> str:
    """One line per (label, match) of a CSV, seed by seed; the first line is the reference
    the paired columns subtract (called ``ref`` in their headers). The TTA columns only where
    every row has a flip score."""
    ref = ref or rows[0][0]
    data = read_rows(root, relative)
    groups = []
    for name, match in rows:
        found = where(data, **match)
        if not found:
            raise DocsError(f"{relative}: no rows for {name!r} ({match})")
        by_seed(found)  # one row per seed, or an error
        groups.append({int(r["seed"]): r for r in found})
    seeds = sorted({s for g in groups for s in g})
    seed_names = " / ".join(map(str, seeds))
    flip = all(r.get("val_accuracy_flip", "") != "" for g in groups for r in g.values())
    columns = {
        f"val accuracy, seed {seed_names}": _cells(groups, seeds, "val_accuracy", 4),
        "with flip TTA": _cells(groups, seeds, "val_accuracy_flip", 4) if flip else None,
        f"paired vs {ref} (single view)": _diffs(groups, seeds, "val_accuracy"),
        f"paired vs {ref} (TTA)": _diffs(groups, seeds, "val_accuracy_flip") if flip else None,
        "training accuracy": _cells(groups, seeds, "train_accuracy", 3),
        "val loss": _cells(groups, seeds, "val_loss", 3),
        "s/run": _cells(groups, seeds, "seconds", 0),
    }
    columns = {k: v for k, v in columns.items() if v is not None}
    body = zip([n for n, _ in rows], *columns.values(), strict=True)
    return table([label, *columns], body)
