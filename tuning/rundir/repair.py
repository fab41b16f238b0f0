"""Repairing a run before KerasTuner reloads it: what a kill or damage left, closed.

:func:`repair_run` runs when a search resumes. A kill can land between any two of
KerasTuner's writes (a trial's folder, its trial.json, oracle.json), and files can be
damaged or deleted by hand; each case is closed here, or refused in one line that says how
to keep what was finished (never ``--overwrite``, which would delete it). A damaged trial
is sent back to KerasTuner's retry queue, rebuilt from the hyperparameters we keep in
``history.json``, and the user is told.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tuning.errors import ProjectError
from tuning.rundir import records
from tuning.rundir.folders import move_aside_advice
from tuning.rundir.resume import CHECKPOINT, PRUNED, clear_resume_files

ORACLE_KEYS = ("ongoing_trials", "hyperparameters", "start_order", "end_order", "brackets")


def _checkpoint_ok(path: Path) -> bool:
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            fh.visit(lambda name: None)
        return True
    except Exception:
        return False


def repair_run(run_dir: Path) -> list[str]:
    """Make an interrupted or damaged run resumable before KerasTuner reloads it.

    Returns one message per repaired trial (also printed). A kill can land between any
    two of KerasTuner's writes, and each gap is closed here:

    - a trial folder the oracle never recorded (made, or given its trial.json, just
      before a kill) holds no training: it is removed and the trial drawn again, as the
      uninterrupted run would draw it (one holding anything else is moved aside);
    - a trial whose trial.json says it ended, killed before oracle.json said so, is
      recorded as ended, not trained a second time;
    - a trial is re-run when its folder is missing, its ``trial.json`` or
      ``history.json`` cannot be read, or it completed but its best-epoch checkpoint
      cannot be opened (a continuation trial would need it) and was not pruned on
      purpose. Its hyperparameters come from its history.json, else from trials.csv;
      where neither has them the run cannot resume.

    A damaged or missing ``tuner0.json`` (it holds no state of ours; without it
    KerasTuner would not reload the oracle) is rewritten; stale temporary files of killed
    writers are removed.
    """
    run_dir = Path(run_dir)
    oracle_file = run_dir / "oracle.json"
    if not oracle_file.is_file():  # killed before the first trial was recorded, or lost
        on_disk = sorted(_trial_ids_on_disk(run_dir))
        trained = [t for t in on_disk if _work_in(run_dir / f"trial_{t}")]
        if trained:
            raise ProjectError(
                f"{oracle_file} is missing, yet trial folders hold training "
                f"({', '.join(trained)}); the search cannot resume them. Restore it from a "
                f"backup, or {move_aside_advice(run_dir)}"
            )
        return drop_unrecorded(run_dir, set())
    oracle_state = read_oracle_state(oracle_file)
    repair_tuner_file(run_dir / "tuner0.json")
    records.remove_stale_temporaries(run_dir)
    messages = drop_unrecorded(run_dir, set(oracle_state["start_order"]))
    ended = record_ended(run_dir, oracle_state)
    repaired = []
    # Recorded trials whose folder vanished count too (KerasTuner would not reload).
    started = set(oracle_state["start_order"]) | set(oracle_state["end_order"])
    for trial_id in sorted(started | _trial_ids_on_disk(run_dir)):
        trial_dir = run_dir / f"trial_{trial_id}"
        reason = damage(trial_dir)
        if reason is None:
            continue
        requeue(trial_dir, trial_id, reason, oracle_state)
        message = f"trial {trial_id}: {reason}; it will be re-run"
        print(message, flush=True)
        repaired.append(message)
    if ended or repaired:
        records.atomic_write_json(oracle_file, oracle_state)
    return messages + repaired


def _trial_ids_on_disk(run_dir: Path) -> set[str]:
    return {
        d.name[len("trial_") :]
        for d in run_dir.glob("trial_*")
        if d.is_dir() and not d.is_symlink()
    }


# What a trial folder holds before the oracle records the trial: KerasTuner makes the
# folder, then writes trial.json (atomically: a kill can leave its temporary file), then
# oracle.json. Training starts only after that.
BEFORE_RECORDED = ("trial.json",)


def drop_unrecorded(run_dir: Path, recorded: set[str]) -> list[str]:
    """Remove the folders of trials the oracle never recorded; returns what was done.

    Such a trial never trained: its folder, empty or holding only its trial.json, is
    removed, and the trial is drawn again exactly as the uninterrupted run would draw it
    (the draw depends on the saved seed state and the recorded trials only). A folder
    that holds anything more is nobody's we know of: moved aside, never deleted.
    """
    messages = []
    for trial_id in sorted(_trial_ids_on_disk(run_dir) - recorded):
        trial_dir = run_dir / f"trial_{trial_id}"
        extra = _work_in(trial_dir)
        if not extra:
            shutil.rmtree(trial_dir)
            message = (
                f"trial {trial_id}: interrupted while it was being created (the search never "
                "recorded it, it never trained); its folder was removed and it starts again"
            )
        else:
            aside = _free_name(run_dir / f"unrecorded-trial_{trial_id}")
            trial_dir.rename(aside)
            message = (
                f"trial {trial_id}: the search never recorded this trial, yet its folder holds "
                f"{', '.join(sorted(extra)[:3])}; moved aside to {aside.name}/ (look, then delete "
                "it) and the trial starts again"
            )
        print(message, flush=True)
        messages.append(message)
    return messages


def _work_in(trial_dir: Path) -> list[str]:
    """What a trial folder holds beyond what KerasTuner writes before recording the trial."""
    return [
        p.name
        for p in trial_dir.iterdir()
        if p.name not in BEFORE_RECORDED and not records.is_temporary(p.name)
    ]


def _free_name(path: Path) -> Path:
    candidate, n = path, 1
    while candidate.exists() or candidate.is_symlink():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


def record_ended(run_dir: Path, oracle_state: dict) -> list[str]:
    """Trials whose trial.json says they ended, killed before oracle.json said so.

    KerasTuner writes the ended trial's file, then oracle.json: without this the trial
    would be sent back to the queue and trained a second time. Recorded as KerasTuner's
    ``end_trial`` would have (its score and status are in trial.json already).
    """
    ended = []
    for tuner_id, trial_id in list(oracle_state["ongoing_trials"].items()):
        try:
            status = json.loads((run_dir / f"trial_{trial_id}" / "trial.json").read_text())
            status = status.get("status") if isinstance(status, dict) else None
        except (OSError, ValueError):
            continue  # damage: handled by the caller
        if status not in ("COMPLETED", "FAILED"):
            continue
        del oracle_state["ongoing_trials"][tuner_id]
        if trial_id not in oracle_state["end_order"]:
            oracle_state["end_order"].append(trial_id)
        run_times = oracle_state.setdefault("run_times", {})
        run_times[trial_id] = run_times.get(trial_id, 0) + 1
        ended.append(trial_id)
    return ended


def read_oracle_state(oracle_file: Path) -> dict:
    """KerasTuner's oracle.json, or a one-line error when it is unreadable or misshapen."""
    try:
        state = json.loads(oracle_file.read_text())
    except (OSError, ValueError) as exc:
        state, problem = None, f"unreadable ({exc})"
    else:
        missing = [k for k in ORACLE_KEYS if not isinstance(state, dict) or k not in state]
        problem = f"damaged (no {', '.join(missing)})" if missing else None
    if problem:
        raise ProjectError(
            f"{oracle_file} is {problem}; the search cannot resume. Restore it from a backup, "
            f"or {move_aside_advice(oracle_file.parent)}"
        )
    return state


def repair_tuner_file(path: Path) -> None:
    """tuner0.json holds KerasTuner's tuner state, empty for ours: rewrite it if damaged.

    Missing (a kill before the first trial ended), it is written too: KerasTuner reloads
    the oracle only when it exists, and would otherwise start the draw again.
    """
    if not path.exists():
        records.atomic_write_json(path, {})
        return
    try:
        ok = isinstance(json.loads(path.read_text()), dict)
    except (OSError, ValueError):
        ok = False
    if not ok:
        print(f"{path.name} was damaged; rewritten (it holds no results)", flush=True)
        records.atomic_write_json(path, {})


def damage(trial_dir: Path) -> str | None:
    """Why a trial folder cannot be trusted, or None."""
    if not (trial_dir / "trial.json").exists():
        return "its folder or trial.json is missing"
    try:
        state = json.loads((trial_dir / "trial.json").read_text())
        if not isinstance(state, dict):
            raise ValueError("not an object")
    except (OSError, ValueError):
        return "its trial.json is unreadable"
    history = trial_dir / records.HISTORY_FILE
    if history.exists() and not _readable_history(history):
        return "its history.json is unreadable"
    if state.get("status") != "COMPLETED" or (trial_dir / PRUNED).exists():
        return None
    if not _checkpoint_ok(trial_dir / CHECKPOINT):
        return "its best-epoch checkpoint is damaged"
    return None


def _readable_history(path: Path) -> bool:
    try:
        history = json.loads(path.read_text())
        return isinstance(history, dict) and isinstance(history.get("epochs", []), list)
    except (OSError, ValueError):
        return False


def trial_values(trial_dir: Path, trial_id: str) -> dict | None:
    """A trial's hyperparameter values (KerasTuner's tuner/* ones included), from its
    history.json or, when that is lost, from its row in trials.csv."""
    try:
        values = records.read_json(trial_dir / records.HISTORY_FILE)["values"]
        if isinstance(values, dict):
            return values
    except Exception:
        pass
    try:
        rows = records.read_trials_csv(trial_dir.parent / "trials.csv")
    except ProjectError:
        return None
    row = next((r for r in rows if r["trial_id"] == trial_id), None)
    if row is None or any(row[k] is None for k in records.HP_NAMES):
        return None
    values = {k: row[k] for k in records.HP_NAMES}
    values["tuner/epochs"], values["tuner/initial_epoch"] = (
        row["target_epochs"],
        row["initial_epoch"],
    )
    values["tuner/bracket"], values["tuner/round"] = row["bracket"], row["round"]
    if row["parent_trial_id"]:
        values["tuner/trial_id"] = row["parent_trial_id"]
    return values


def requeue(trial_dir: Path, trial_id: str, reason: str, oracle_state: dict) -> None:
    """Rewrite a damaged trial as RUNNING with no epochs, so KerasTuner runs it again."""
    import keras_tuner

    from tuning.kt_internals import Trial

    values = trial_values(trial_dir, trial_id)
    if values is None:
        raise ProjectError(
            f"trial {trial_id} is damaged ({reason[4:]}) and its hyperparameters are lost "
            f"(no history.json, no row in trials.csv). Restore trial_{trial_id} from a backup, "
            f"or {move_aside_advice(trial_dir.parent)}"
        )
    hp = keras_tuner.HyperParameters.from_config(oracle_state["hyperparameters"])
    hp.values = values
    trial = Trial(hp, trial_id=trial_id, status="RUNNING")
    records.atomic_write_json(trial_dir / "trial.json", trial.get_state())
    (trial_dir / CHECKPOINT).unlink(missing_ok=True)
    clear_resume_files(trial_dir)
    records.atomic_write_json(trial_dir / records.HISTORY_FILE, {"values": values, "epochs": []})
    oracle_state["ongoing_trials"][f"repair-{trial_id}"] = trial_id
    oracle_state["end_order"] = [t for t in oracle_state["end_order"] if t != trial_id]
