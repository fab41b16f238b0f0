"""Result files of a run: atomic writes, trials.csv, best.json and their readers.

Everything here is plain CSV/JSON so that a user (or a spreadsheet) can open it, and
every file is written through a temporary file and a rename: a kill at any moment
leaves either the old or the new file, never half of one.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypermodels.space import HP_NAMES
from tuning.errors import ProjectError
from tuning.faults import fault_point

# trials.csv columns, in order, with the type each cell is read back as.
FIELD_TYPES: dict[str, type] = {
    "trial_id": str,
    "status": str,
    "blocks": int,
    "filters": int,
    "skip": bool,
    "learning_rate": float,
    "bracket": int,
    "round": int,
    "parent_trial_id": str,
    "initial_epoch": int,
    "target_epochs": int,
    "epochs_trained": int,
    "best_epoch": int,
    "lineage_epochs": int,
    "val_accuracy": float,
    "val_loss": float,
    "accuracy": float,
    "loss": float,
    "seconds": float,
    "disk_mb": float,
    "message": str,
}
TRIAL_FIELDS = tuple(FIELD_TYPES)
HISTORY_FILE = "history.json"
# What KerasTuner writes as a trial's status, and what an ablation training ends as.
TRIAL_STATUSES = ("RUNNING", "IDLE", "INVALID", "STOPPED", "COMPLETED", "FAILED")
ABLATION_STATUSES = ("ok", "diverged")
# Result files get the usual permissions (rw for all, less the umask), not mkstemp's 0600:
# a team shares a run directory.
_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write text to path via a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Valid JSON only: NaN and infinities (a diverged training's metrics) become null."""
    text = json.dumps(_plain(obj), indent=2, sort_keys=False, allow_nan=False)
    atomic_write_text(path, text + "\n")


def _plain(obj: Any) -> Any:
    """obj with numpy values as Python ones and non-finite floats as None."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (str, bool, int)) or obj is None:
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    return _plain(_json_default(obj))


def is_temporary(name: str) -> bool:
    """A temporary file of an atomic write (``.<name>.<random>.tmp``, ``.<name>.tmp.keras``)."""
    return name.startswith(".") and ".tmp" in name


def remove_stale_temporaries(folder: Path) -> int:
    """Delete the temporary files a killed writer left (``.<name>.<random>.tmp`` and the
    ``.tmp`` checkpoints) and the folders a killed deletion left (``.<name>.deleting.tmp``,
    ``tuning.rundir.folders``); only the lock holder may call this. Returns how many."""
    removed = 0
    for path in sorted(Path(folder).rglob(".*.tmp*")):
        if path.is_symlink() or not path.exists():
            continue
        if path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
        elif path.is_dir() and path.name.endswith(".deleting.tmp"):
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"cannot serialize {type(obj).__name__}")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProjectError(f"{path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise ProjectError(f"{path} is unreadable ({exc})") from None


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)  # exact: round-trips to best.json
    return "" if value is None else value


def write_csv(path: str | os.PathLike, field_types: dict[str, type], rows: list[dict]) -> None:
    """Write rows with the columns of field_types, atomically (NaN and None as empty)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(field_types), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row.get(k)) for k in field_types})
    atomic_write_text(path, buf.getvalue())


def append_csv_row(path: str | os.PathLike, fields: list[str], row: dict) -> None:
    """One row appended to a results CSV (its header first when the file is new), flushed:
    what a resumable benchmark writes after each training, so a kill loses at most that one."""
    write_csv_rows(path, fields, [row], "a")


def write_csv_rows(path: str | os.PathLike, fields: list[str], rows: list[dict],
                   mode: str = "a") -> None:  # fmt: skip
    """Rows appended (``mode="a"``) or written anew (``"w"``), the header where the file
    starts, flushed and synced."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = mode == "w" or not path.is_file() or path.stat().st_size == 0
    with path.open(mode, newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        if header:
            writer.writeheader()
        writer.writerows(rows)
        f.flush()
        os.fsync(f.fileno())


def read_csv_rows(path: str | os.PathLike, fields: list[str]) -> list[dict] | None:
    """A benchmark's rows as text ([] for no file), or None when the file holds other
    columns (the caller says what to do: two experiments must not mix in one file)."""
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader) if reader.fieldnames == fields else None


def write_trials_csv(path: str | os.PathLike, rows: list[dict]) -> None:
    write_csv(path, FIELD_TYPES, rows)


def _parse_cell(text: str, kind: type, column: str) -> Any:
    """A cell as we wrote it, or ValueError: a spreadsheet's TRUE or 1.0e0 is not guessed."""
    if text == "":
        return None
    if kind is bool:
        if text not in ("True", "False"):
            raise ValueError(f"column {column}: {text!r} is not True or False")
        return text == "True"
    if kind is str:
        return text
    try:
        return kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise ValueError(f"column {column}: {text!r} is not {what}") from None


def read_csv(path: str | os.PathLike, field_types: dict[str, type],
             added: tuple[str, ...] = ()) -> list[dict]:  # fmt: skip
    """Read rows written by write_csv back with their types (empty cells are None).

    Strict: every column must be there and every row complete, or ValueError names what
    is wrong. A UTF-8 byte-order mark (a spreadsheet's) is the only liberty taken, and
    the ``added`` columns, which files written before them lack (their rows lack the key).
    """
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [k for k in field_types if k not in (reader.fieldnames or []) + list(added)]
        if missing:
            raise ValueError(f"missing column(s) {', '.join(missing)}")
        rows = []
        for row in reader:
            if None in row or None in row.values():
                raise ValueError(f"line {reader.line_num} has the wrong number of cells")
            rows.append({k: _parse_cell(v, field_types.get(k, str), k) for k, v in row.items()})
        return rows


def _check_statuses(rows: list[dict], allowed: tuple[str, ...]) -> None:
    for row in rows:
        if row.get("status") not in allowed:
            raise ValueError(f"status {row.get('status')!r} is not one of {', '.join(allowed)}")


def read_results(path: Path, field_types: dict[str, type], statuses: tuple[str, ...],
                 added: tuple[str, ...] = ()) -> list[dict]:  # fmt: skip
    """One of our result tables, read strictly (``read_csv``, known statuses only); anything
    else is one line naming the file and what is wrong."""
    try:
        rows = read_csv(path, field_types, added)
        _check_statuses(rows, statuses)
        return rows
    except (OSError, ValueError, csv.Error) as exc:
        raise ProjectError(f"{path} is unreadable ({exc})") from None


def _empty_as_nan(rows: list[dict], columns) -> list[dict]:
    """A diverged training's non-finite metrics were written as empty cells: NaN again."""
    for row in rows:
        for k in columns:
            if row[k] is None:
                row[k] = math.nan
    return rows


def read_trials_csv(path: str | os.PathLike) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise ProjectError(f"{path} does not exist: is this a search run directory?")
    return read_results(path, FIELD_TYPES, TRIAL_STATUSES)


def lineage_epochs(rows_by_id: dict[str, dict], trial_id: str) -> int | None:
    """Epochs behind a trial's best weights, counting the Hyperband lineage.

    A continuation trial starts from its parent's *best* checkpoint and then trains
    ``best_epoch - initial_epoch`` more epochs, so its weights carry the parent's
    lineage epochs plus its own epochs up to its best one.
    """
    row = rows_by_id.get(trial_id)
    if row is None or row.get("best_epoch") is None:
        return None
    own = row["best_epoch"] - (row.get("initial_epoch") or 0)
    parent = row.get("parent_trial_id")
    if not parent:
        return own
    before = lineage_epochs(rows_by_id, parent)
    return None if before is None else before + own


def best_row(rows: list[dict]) -> dict | None:
    """The completed trial with the highest val_accuracy (ties: fewer epochs, then first)."""
    done = [r for r in rows if r["status"] == "COMPLETED" and r.get("val_accuracy") is not None]
    if not done:
        return None
    return max(done, key=lambda r: (r["val_accuracy"], -(r.get("lineage_epochs") or 0)))


def hyperparameters_of(row: dict) -> dict:
    return {name: row[name] for name in HP_NAMES}


# -- the ablation's results (tuning.retrain.ablation) ---------------------------------------------
ABLATION_DIR = "ablation"
# ablation/runs.csv columns, in order, with the type each cell is read back as.
ABLATION_FIELD_TYPES: dict[str, type] = {
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


def ablation_history_path(out: Path, blocks: int, skip: bool, seed: int) -> Path:
    return out / "histories" / f"b{blocks}_{arm_name(skip)}_s{seed}.json"


def read_ablation_runs(out: Path) -> list[dict]:
    """ablation/runs.csv of the folder ``out`` ([] before the first training)."""
    path = Path(out) / "runs.csv"
    if not path.is_file():
        return []
    rows = read_results(path, ABLATION_FIELD_TYPES, ABLATION_STATUSES)
    return _empty_as_nan(rows, [k for k, kind in ABLATION_FIELD_TYPES.items() if kind is float])


def read_ablation_history(path: Path) -> dict:
    """One training's curves; a diverged epoch's null (written for NaN) is NaN again."""
    history = read_json(path)
    for key, values in history.items():
        if isinstance(values, list):
            history[key] = [math.nan if v is None else v for v in values]
    return history


def write_ablation_runs(out: Path, rows: list[dict]) -> None:
    ordered = sorted(rows, key=lambda r: (r["blocks"], r["seed"], not r["skip"]))
    write_csv(Path(out) / "runs.csv", ABLATION_FIELD_TYPES, ordered)


# -- the search's confirmation stage (tuning.engine.confirm) ------------------------------
CONFIRM_FILE = "confirm.csv"
# confirm.csv columns, in order, with the type each cell is read back as. A training is
# identified by its configuration and seed_index; rank is Hyperband's when it was trained,
# seed the one it was trained with (derived from the run's seed and seed_index), and
# peak_learning_rate the rate its schedule decayed from.
CONFIRM_FIELD_TYPES: dict[str, type] = {
    "rank": int,
    "trial_id": str,
    "blocks": int,
    "filters": int,
    "skip": bool,
    "learning_rate": float,
    "seed_index": int,
    "seed": int,
    "epochs": int,
    "peak_learning_rate": float,
    "train_images": int,
    "val_accuracy": float,
    "val_loss": float,
    "seconds": float,
    "status": str,
}
CONFIRM_STATUSES = ABLATION_STATUSES  # "ok", or "diverged" (a non-finite loss)
# Columns that files of older runs lack (their rows lack the key): the peak came with its
# floor, train_images with --confirm-images (empty: the trials' images).
CONFIRM_ADDED = ("peak_learning_rate", "train_images")
CONFIRM_EMPTY_OK = ("val_accuracy", "val_loss", "train_images")


def read_confirm_runs(run_dir: Path) -> list[dict]:
    """confirm.csv of a search run ([] before its first confirmation training)."""
    path = Path(run_dir) / CONFIRM_FILE
    if not path.is_file():
        return []
    rows = read_results(path, CONFIRM_FIELD_TYPES, CONFIRM_STATUSES, CONFIRM_ADDED)
    for row in rows:  # an added column may be absent (an older file), but never empty
        missing = [k for k in CONFIRM_FIELD_TYPES
                   if k not in CONFIRM_EMPTY_OK and k in row and row[k] is None]  # fmt: skip
        if missing:
            raise ProjectError(f"{path} is unreadable (empty cell(s) {', '.join(missing)})")
    return _empty_as_nan(rows, ("val_accuracy", "val_loss"))


def write_confirm_runs(run_dir: Path, rows: list[dict]) -> None:
    ordered = sorted(rows, key=lambda r: (r["rank"], r["seed_index"],
                                          r.get("peak_learning_rate") or 0))  # fmt: skip
    write_csv(Path(run_dir) / CONFIRM_FILE, CONFIRM_FIELD_TYPES, ordered)
    fault_point("confirm.row_written")
