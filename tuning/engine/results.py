"""The search's result tables: trials.csv and best.json from the oracle's trials.

Rebuilt from KerasTuner's state and each trial's ``history.json`` after every trial, so
the tables are always current and never the only copy of anything.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tuning.engine.callbacks import read_history
from tuning.errors import ProjectError
from tuning.faults import fault_point
from tuning.kt_internals import TrialStatus
from tuning.rundir import records


def describe_hyperparameters(values: dict) -> str:
    """``blocks=2, filters=64, skip=True, learning_rate=0.0125`` for progress lines."""
    return ", ".join(f"{k}={_short(values.get(k))}" for k in records.HP_NAMES)


def last_line(message: str | None) -> str | None:
    """The last non-empty line of a (traceback) message, at most 300 characters."""
    if not message:
        return None
    lines = [line for line in str(message).strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else None


def trial_disk_bytes(run_dir: Path, trial_id: str) -> int:
    total = 0
    for folder in (run_dir / f"trial_{trial_id}", run_dir / "tensorboard" / trial_id):
        for path in folder.rglob("*"):
            if path.is_file():
                total += path.stat().st_size
    return total


def trial_rows(oracle, run_dir: Path, history_path: Callable[[str], Path]) -> list[dict]:
    """One trials.csv row per trial of the oracle, in trial-id order."""
    rows = [
        _row(trial_id, trial, read_history(history_path(trial_id)), run_dir)
        for trial_id, trial in sorted(oracle.trials.items())
    ]
    by_id = {r["trial_id"]: r for r in rows}
    for row in rows:
        row["lineage_epochs"] = records.lineage_epochs(by_id, row["trial_id"])
    return rows


def _row(trial_id: str, trial, history: dict, run_dir: Path) -> dict:
    values = trial.hyperparameters.values
    epochs = history.get("epochs", [])
    initial = int(values.get("tuner/initial_epoch", 0) or 0)
    row = {
        "trial_id": trial_id,
        "status": trial.status,
        **{name: values.get(name) for name in records.HP_NAMES},
        "bracket": values.get("tuner/bracket"),
        "round": values.get("tuner/round"),
        "parent_trial_id": values.get("tuner/trial_id"),
        "initial_epoch": initial,
        "target_epochs": values.get("tuner/epochs"),
        "epochs_trained": len(epochs),
        "seconds": history.get("seconds"),
        "disk_mb": round(trial_disk_bytes(run_dir, trial_id) / 2**20, 3),
        "message": history.get("failure") or last_line(trial.message),
    }
    if trial.status == TrialStatus.COMPLETED and trial.best_step is not None:
        best = int(trial.best_step)  # index into this trial's own epochs
        row["best_epoch"] = initial + best + 1
        if best < len(epochs):
            for key in ("val_accuracy", "val_loss", "accuracy", "loss"):
                row[key] = epochs[best].get(key)
        if trial.score is not None:
            row["val_accuracy"] = float(trial.score)
    return row


def write_results(run_dir: Path, rows: list[dict]) -> list[dict]:
    """trials.csv and (once a trial completed) best.json; returns the rows.

    best.json keeps the confirmation it holds (``tuning.engine.confirm``): the trials'
    tables are rewritten on every rerun, and a kill before the confirmation stage
    rewrites it must not leave the finalizer on Hyperband's draw for a while.
    """
    records.write_trials_csv(run_dir / "trials.csv", rows)
    write_best(run_dir, rows, recorded_confirmation(run_dir))
    fault_point("results.written")
    return rows


def recorded_confirmation(run_dir: Path) -> dict | None:
    """best.json's ``confirmation``, if it has a readable one (the stage rewrites it)."""
    path = run_dir / "best.json"
    if not path.is_file():
        return None
    try:
        best = records.read_json(path)
    except ProjectError:
        return None  # a damaged best.json is rewritten from the trials below
    confirmation = best.get("confirmation") if isinstance(best, dict) else None
    return confirmation if isinstance(confirmation, dict) else None


def best_record(rows: list[dict], confirmation: dict | None = None) -> dict | None:
    """best.json's content: Hyperband's best trial, or the confirmed winner with its evidence.

    The confirmed winner is named only while trials.csv still holds its trial, completed
    and with the same hyperparameters; otherwise best.json falls back to Hyperband's best.
    """
    best = records.best_row(rows)
    if best is None:
        return None
    winner = _confirmed_row(rows, confirmation)
    record = {
        "trial_id": (winner or best)["trial_id"],
        "hyperparameters": records.hyperparameters_of(winner or best),
        "val_accuracy": (winner or best)["val_accuracy"],
        "val_loss": (winner or best).get("val_loss"),
        "best_epoch": (winner or best)["best_epoch"],
        "lineage_epochs": (winner or best)["lineage_epochs"],
        "trials_completed": sum(r["status"] == "COMPLETED" for r in rows),
        "trials_failed": sum(r["status"] in ("FAILED", "INVALID") for r in rows),
    }
    if winner is not None:
        record["hyperband_best_trial_id"] = best["trial_id"]
        record["confirmation"] = confirmation
    return record


def _confirmed_row(rows: list[dict], confirmation: dict | None) -> dict | None:
    winner = (confirmation or {}).get("winner")
    if not isinstance(winner, dict):
        return None
    row = next((r for r in rows if r["trial_id"] == winner.get("trial_id")), None)
    if (
        row is None
        or row["status"] != "COMPLETED"
        or row.get("val_accuracy") is None
        or records.hyperparameters_of(row) != winner.get("hyperparameters")
    ):
        return None
    return row


def write_best(run_dir: Path, rows: list[dict], confirmation: dict | None) -> None:
    """best.json as :func:`best_record` makes it (nothing before a trial completed)."""
    record = best_record(rows, confirmation)
    if record is not None:
        records.atomic_write_json(run_dir / "best.json", record)


def summary_table(rows: list[dict], top: int = 5) -> str:
    """The end-of-search table: counts, the best trials, and every failure's reason."""
    done = sorted(
        (r for r in rows if r["status"] == "COMPLETED" and r.get("val_accuracy") is not None),
        key=lambda r: -r["val_accuracy"],
    )
    failed = [r for r in rows if r["status"] in ("FAILED", "INVALID")]
    lines = [f"{len(rows)} trials: {len(done)} completed, {len(failed)} failed"]
    if done:
        lines.append("top trials (val_accuracy, lineage epochs, blocks, filters, skip, lr):")
        for r in done[:top]:
            lines.append(
                f"  {r['trial_id']}  {r['val_accuracy']:.4f}  {r['lineage_epochs']:>3}  "
                f"{r['blocks']:>2}  {r['filters']:>4}  {'on ' if r['skip'] else 'off'}  "
                f"{r['learning_rate']:.3g}"
            )
    for r in failed:
        lines.append(f"  failed {r['trial_id']}: {r.get('message') or 'no reason recorded'}")
    return "\n".join(lines)


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
