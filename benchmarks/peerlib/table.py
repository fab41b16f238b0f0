"""The result files: one row per searcher x seed, and each run's picks over time.

Rows are appended as each searcher x seed finishes (flushed and synced), so an interrupted
benchmark keeps every finished row and a rerun skips them. A run's picks are written just
before its row, replacing any left by an earlier attempt that died before its row.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from pathlib import Path

from peerlib.common import Job, Outcome, UsageError, read_csv_rows, write_csv_rows
from peerlib.yardstick import Yardstick

FIELDS = [
    "searcher",
    "seed",
    "subset",
    "trial_images",
    "recipe",
    "precision",
    "budget_s",
    "wall_s",
    "trials_finished",
    "blocks",
    "filters",
    "skip",
    "learning_rate",
    "own_val_accuracy",
    "own_val_kind",
    "yardstick_score",
    "regret",
    "gflops",
    "finished_at",
]
PICK_FIELDS = [
    "searcher",
    "seed",
    "seconds",
    "blocks",
    "filters",
    "skip",
    "learning_rate",
    "own_val_accuracy",
]
# What must be the same in every row of one file (else two experiments would mix).
SETUP = ("subset", "recipe", "precision")


def read(path: Path, fields: list[str] = FIELDS) -> list[dict]:
    rows = read_csv_rows(path, fields)
    if rows is None:
        raise UsageError(f"{path} was written with other columns; give another file")
    return rows


def _write(path: Path, fields: list[str], rows: list[dict], mode: str) -> None:
    write_csv_rows(path, fields, rows, mode)


def append(path: Path, row: dict) -> None:
    _write(path, FIELDS, [row], "a")


def replace_picks(path: Path, searcher: str, seed: int, rows: list[dict]) -> None:
    kept = [
        r for r in read(path, PICK_FIELDS) if (r["searcher"], r["seed"]) != (searcher, str(seed))
    ]
    tmp = path.with_name(f".{path.name}.tmp")
    _write(tmp, PICK_FIELDS, kept + rows, "w")
    os.replace(tmp, path)


def check_setup(path: Path, rows: list[dict], setup: dict) -> None:
    """Refuse to add rows of another setup to a file."""
    for r in rows:
        for k, v in setup.items():
            wanted = "" if v is None else str(v)
            if r[k] != wanted:
                raise UsageError(
                    f"{path} holds rows with {k} {r[k] or 'none'}, not {wanted or 'none'}; "
                    "give another --out"
                )


def cell(value: float | None, digits: int = 5) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def row_of(
    searcher: str,
    job: Job,
    outcome: Outcome,
    trial_images: int | None,
    recipe: str,
    yardstick: Yardstick | None,
    gflops: float | None,
) -> dict:
    best = outcome.picks.best
    picked = best["config"] if best else {}
    score = (
        yardstick.score(**{k: picked[k] for k in ("blocks", "filters", "skip")})
        if yardstick and best
        else None
    )
    return {
        "searcher": searcher,
        "seed": job.seed,
        "subset": job.subset or "",
        "trial_images": trial_images or "",
        "recipe": recipe,
        "precision": job.precision,
        "budget_s": cell(job.budget_s, 1),
        "wall_s": cell(outcome.wall_s, 1),
        "trials_finished": outcome.picks.finished,
        **{k: picked.get(k, "") for k in ("blocks", "filters", "skip")},
        "learning_rate": cell(picked.get("learning_rate"), 6),
        "own_val_accuracy": cell(best["score"] if best else None),
        "own_val_kind": outcome.own_kind,
        "yardstick_score": cell(score),
        "regret": cell(yardstick.best - score if score is not None else None),
        "gflops": cell(gflops, 1),
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def pick_rows(searcher: str, seed: int, outcome: Outcome) -> list[dict]:
    return [
        {
            "searcher": searcher,
            "seed": seed,
            "seconds": cell(p["seconds"], 1),
            **{k: p["config"][k] for k in ("blocks", "filters", "skip")},
            "learning_rate": cell(p["config"]["learning_rate"], 6),
            "own_val_accuracy": cell(p["score"]),
        }
        for p in outcome.picks.history
    ]
