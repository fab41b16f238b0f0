"""The yardstick (benchmarks/yardstick.py's CSV): what each network shape is worth.

A searcher's pick is scored by the yardstick's mean over seeds for the picked shape (blocks,
filters, skip; the searched rate does not reach the finalizer's recipe as itself); its
regret is the best shape's mean minus that, in accuracy (the report shows points).
"""

from __future__ import annotations

import csv
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from peerlib.common import UsageError

COLUMNS = ("val_accuracy_tta", "val_accuracy")  # with the finalizer's flip TTA, or single view
SHAPE = ("blocks", "filters", "skip", "seed")
# A yardstick CSV must hold one training setting; rows of another would mix two yardsticks.
SETTING = ("peak_lr", "epochs", "train_images", "weight_decay", "augment", "bn_momentum")


def as_bool(text: str) -> bool:
    value = str(text).strip().lower()
    if value not in ("true", "false", "1", "0"):
        raise ValueError(f"not a boolean: {text!r}")
    return value in ("true", "1")


@dataclass(frozen=True)
class Yardstick:
    means: dict[tuple[int, int, bool], float]  # (blocks, filters, skip) -> mean over seeds
    column: str

    @property
    def best(self) -> float:
        return max(self.means.values())

    def score(self, blocks, filters, skip) -> float:
        """The shape's mean, NaN where the yardstick lacks the shape."""
        return self.means.get((int(blocks), int(filters), as_bool(skip)), math.nan)

    def regret(self, blocks, filters, skip) -> float:
        return self.best - self.score(blocks, filters, skip)

    @classmethod
    def read(cls, path: str | Path, column: str = COLUMNS[0]) -> Yardstick:
        path = Path(path)
        if column not in COLUMNS:
            raise UsageError(f"--yardstick-column must be one of {', '.join(COLUMNS)}")
        try:
            with path.open(newline="") as f:
                reader = csv.DictReader(f)
                rows = list(reader)
                names = reader.fieldnames or []
        except OSError as exc:
            raise UsageError(f"cannot read the yardstick {path}: {exc.strerror}") from None
        missing = [c for c in (*SHAPE, column) if c not in names]
        if missing or not rows:
            what = f"lacks column(s) {', '.join(missing)}" if missing else "has no rows"
            raise UsageError(f"the yardstick {path} {what}")
        settings = {tuple(r.get(k) for k in SETTING) for r in rows}
        if len(settings) > 1:
            raise UsageError(
                f"the yardstick {path} mixes {len(settings)} training settings "
                f"({', '.join(SETTING)}); keep the rows of one"
            )
        scores: dict[tuple[int, int, bool], list[float]] = {}
        for line, r in enumerate(rows, 2):
            try:
                key = (int(r["blocks"]), int(r["filters"]), as_bool(r["skip"]))
                value = float(r[column])
            except (TypeError, ValueError):
                raise UsageError(f"the yardstick {path}, line {line}: unreadable row") from None
            scores.setdefault(key, []).append(value)
        return cls({k: statistics.mean(v) for k, v in scores.items()}, column)
