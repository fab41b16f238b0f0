"""Reading the committed CSVs, the statistics the tables print, markdown helpers."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Sequence
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

Row = dict[str, object]


class DocsError(Exception):
    """A page or a CSV the script cannot use: one line, exit 2."""


def value(text: str) -> object:
    """A CSV cell as the number or boolean it holds; other text (and '') unchanged."""
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def read_rows(root: Path, relative: str) -> list[Row]:
    """Every row of a committed CSV, cells typed by ``value``."""
    path = root / relative
    if not path.is_file():
        raise DocsError(f"{relative}: no such CSV")
    with path.open(newline="") as f:
        return [{k: value(v) for k, v in r.items()} for r in csv.DictReader(f)]


def where(rows: Iterable[Row], **match) -> list[Row]:
    """The rows whose columns equal every ``match`` value."""
    return [r for r in rows if all(r.get(k) == v for k, v in match.items())]


def by_seed(rows: Iterable[Row], column: str = "val_accuracy") -> dict[int, float]:
    """seed -> the column's value (one row per seed expected)."""
    out: dict[int, float] = {}
    for r in rows:
        seed = int(r["seed"])
        if seed in out:
            raise DocsError(f"two rows for seed {seed}: {r}")
        out[seed] = float(r[column])
    return dict(sorted(out.items()))


def mean(values: Sequence[float]) -> float:
    """The mean, exact in the decimals the values were written with."""
    return float(sum(Decimal(repr(float(v))) for v in values) / len(values))


def sd(values: Sequence[float]) -> float:
    """Sample standard deviation (n - 1); 0 for one value."""
    if len(values) < 2:
        return 0.0
    m = mean(values)
    return math.sqrt(math.fsum((v - m) ** 2 for v in values) / (len(values) - 1))


def paired(a: dict[int, float], b: dict[int, float]) -> tuple[list[int], list[float]]:
    """The seeds both have, and a - b seed by seed (exact in the CSV's decimals, so that
    0.94533 - 0.94008 rounds to 0.0053 as on paper, not to binary 0.0052499...)."""
    seeds = sorted(set(a) & set(b))
    return seeds, [float(Decimal(repr(a[s])) - Decimal(repr(b[s]))) for s in seeds]


def num(x: float, places: int = 4, sign: bool = False) -> str:
    """x rounded half up at ``places`` decimals (0.93775 -> 0.9378, as written by hand)."""
    d = Decimal(repr(float(x))).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return format(d, "+f" if sign else "f")


def interval(diffs: Sequence[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """The paired-t interval of the mean difference; None under two seeds."""
    if len(diffs) < 2:
        return None
    from scipy.stats import t

    half = t.ppf(0.5 + confidence / 2, len(diffs) - 1) * sd(diffs) / math.sqrt(len(diffs))
    return mean(diffs) - half, mean(diffs) + half


def per_seed(values: Iterable[float], places: int = 4, sign: bool = False) -> str:
    return " / ".join(num(v, places, sign) for v in values)


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A markdown table; cells are written with str()."""
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


Column = tuple[str, "str | Callable[[Row], str]"]


def transcribed(root: Path, relative: str, columns: Sequence[Column], **match) -> str:
    """A table of one CSV's rows (those matching ``match``), a cell per column: a format
    string over the row (``"{val_accuracy:.4f}"``) or a function of it."""
    rows = where(read_rows(root, relative), **match)
    if not rows:
        raise DocsError(f"{relative}: no rows with {match}")
    return table(
        [h for h, _ in columns],
        ([c(r) if callable(c) else c.format(**r) for _, c in columns] for r in rows),
    )


def shape(row: Row) -> str:
    """'2 × 64, skip off' from a row's blocks, filters and skip."""
    return f"{row['blocks']} × {row['filters']}, skip {'on' if row['skip'] else 'off'}"
