"""A run directory: its definition file, provenance, overwrite and staged folders.

``<directory>/<project-name>/`` holds one search (``run.json`` with its definition) and
what later steps add to it (``final/``, ``ablation/``, ``plots/``, ``report.md``).
Everything here that deletes goes through :func:`delete_for_overwrite`, and everything
that is assembled in several steps is staged in ``<name>.partial/`` and renamed at the end.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import shutil
import sys
from pathlib import Path

from hypermodels.recipe import KERAS_BN_MOMENTUM
from tuning.errors import ProjectError, UsageError
from tuning.faults import fault_point
from tuning.rundir import records
from tuning.rundir.lock import LOCK_NAME

RUN_FILE = "run.json"
# A search definition's settings that older runs lack, at the value those runs used:
# KerasTuner's independent draw, and Keras' batch-normalization momentum.
RECORDED_BEFORE = {"sampler": "random", "bn_momentum": KERAS_BN_MOMENTUM}


def differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """``key: old -> new`` for every setting that differs, nested keys dotted."""
    diffs = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            diffs.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return diffs


def versions() -> dict[str, str]:
    import keras
    import keras_tuner
    import numpy
    import sklearn
    import tensorflow

    return {
        "python": platform.python_version(),
        "tensorflow": tensorflow.__version__,
        "keras": keras.__version__,
        "keras_tuner": keras_tuner.__version__,
        "numpy": numpy.__version__,
        "scikit_learn": sklearn.__version__,
        "machine": f"{platform.system()} {platform.machine()}",
    }


def provenance() -> dict:
    """Library versions, the time and the command line, for every result file we write."""
    return {
        "versions": versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(sys.argv),
    }


def read_run(run_dir: Path) -> dict:
    """The search's ``run.json``, or {} for a directory without one; one line when it holds
    valid JSON of another shape (``[]``, an object without a definition)."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        return {}
    run = records.read_json(path)
    if not isinstance(run, dict) or not isinstance(run.get("definition"), dict):
        raise ProjectError(
            f"{path} is damaged (it holds no run definition); restore it from a backup, or "
            + move_aside_advice(Path(run_dir), finalize=False)
        )
    return run


def move_aside_advice(run_dir: Path, finalize: bool = True) -> str:
    """What to do with a run that cannot resume, keeping what it finished."""
    aside = shlex.quote(f"{run_dir}.damaged")
    kept = "its finished trials, trials.csv and best.json are kept there"
    if finalize:
        kept += f", and tuning.finalize --run-dir {aside} still trains its best configuration"
    move = f"mv {shlex.quote(str(run_dir))} {aside}"
    return f"move the run aside ({move}: {kept}) and start the search again"


def check_writable(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        records.atomic_write_text(directory / ".write-check", "ok\n")
        (directory / ".write-check").unlink()
    except OSError as exc:
        raise ProjectError(f"run directory {directory} is not writable ({exc.strerror})") from None


# What --overwrite may delete must look like ours: a folder this tool wrote.
OUR_BOOKKEEPING = (LOCK_NAME, ".write-check")  # in a run dir before it holds anything
# Written first and deleted last while --overwrite empties a run directory: a folder a kill
# left half-deleted is still recognizably ours, and the next --overwrite finishes the job.
OVERWRITING = ".overwrite-in-progress"
MARKS_A_RUN = (RUN_FILE, "oracle.json")  # what makes a folder a search run: deleted last
FINAL_MARKERS = ("report.json", "model.keras")  # the finalizer's final/
# All the finalizer writes into final.partial/ (atomic writes leave .<name>.*.tmp files).
FINAL_CONTENTS = ("tensorboard", "report.json", "report.md", "model.keras")


def is_bookkeeping(name: str) -> bool:
    """Our lock, write check, or a temporary file of an atomic write (``.<name>.*.tmp``)."""
    return name in OUR_BOOKKEEPING or records.is_temporary(name)


def is_search_run(folder: Path) -> bool:
    """A search of this tool: run.json with a definition, or KerasTuner's oracle.json."""
    return recorded_definition(folder) is not None or plain_file(folder / "oracle.json")


# Everything else a search run holds (besides MARKS_A_RUN and bookkeeping): how a folder
# whose --overwrite an older version interrupted is recognized, its markers gone first.
SEARCH_FILES = ("tuner0.json", "trials.csv", "best.json", "confirm.csv", "report.md")
SEARCH_FOLDERS = ("tensorboard", "final", "final.partial", "ablation", "plots")
TRIAL_FILES = ("trial.json", records.HISTORY_FILE, "checkpoint.weights.h5", "build_config.json",
               "pruned")  # fmt: skip
CSV_HEADERS = {"trials.csv": "trial_id,status,", "confirm.csv": "rank,trial_id,"}


def interrupted_overwrite(folder: Path) -> bool:
    """What a killed ``--overwrite`` left: its marker (:data:`OVERWRITING`), or, from a
    version that deleted in directory order, a search run's files without the two that
    mark one (nothing else in it, and trial folders or result tables of ours among them)."""
    if plain_file(folder / OVERWRITING):
        return True
    entries = list(folder.iterdir())
    trials = [p for p in entries if _is_trial_folder(p)]
    recorded = [t for t in trials if plain_file(t / "trial.json") or plain_file(t / "history.json")]
    evidence = recorded or any(_our_table(folder / name) for name in CSV_HEADERS)
    return bool(evidence) and all(p in trials or _search_entry(p) for p in entries)


def _is_trial_folder(path: Path) -> bool:
    named = path.name.startswith(("trial_", "unrecorded-trial_"))
    if not named or not path.is_dir() or path.is_symlink():
        return False
    return all(
        q.name in TRIAL_FILES or q.name.startswith("resume-epoch") or is_bookkeeping(q.name)
        for q in path.iterdir()
    )


def _search_entry(path: Path) -> bool:
    if is_bookkeeping(path.name):
        return True
    if path.name in SEARCH_FILES:
        return plain_file(path)
    return path.name in SEARCH_FOLDERS and path.is_dir() and not path.is_symlink()


def _our_table(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8-sig") as fh:
            return plain_file(path) and fh.readline().startswith(CSV_HEADERS[path.name])
    except OSError:
        return False


def plain_file(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def recorded_definition(folder: Path) -> dict | None:
    """run.json's definition, or None where there is no readable run.json holding one."""
    if not plain_file(folder / RUN_FILE):
        return None
    try:
        run = records.read_json(folder / RUN_FILE)
    except ProjectError:
        return None
    definition = run.get("definition") if isinstance(run, dict) else None
    return with_recorded_defaults(definition) if isinstance(definition, dict) else None


def with_recorded_defaults(definition: dict) -> dict:
    """A search definition with the settings it predates, at the values of its time."""
    if "space" not in definition:  # not a search's
        return definition
    return {**RECORDED_BEFORE, **definition}


def holds_any(*names: str):
    """A check that a folder holds one of ``names`` as a plain file."""
    return lambda folder: any(plain_file(folder / name) for name in names)


def only_final_contents(folder: Path) -> bool:
    """A stale final.partial/: nothing in it but what the finalizer writes there."""
    return all(p.name in FINAL_CONTENTS or is_bookkeeping(p.name) for p in folder.iterdir())


def check_deletable(path: Path, what: str, inside: Path, ours, why: str = "--overwrite") -> None:
    """Refuse (one line) unless ``path`` is provably a folder of ours inside ``inside``.

    Not a symlink (it would delete where it points), resolved strictly inside the
    resolved ``inside`` (no ``..`` or absolute name leads out of the folder the user
    named), and ``ours(path)`` says this tool wrote it.
    """
    path = Path(path)
    refuse = f"{why}: refusing to delete {path} ({what})"
    if path.is_symlink():
        raise ProjectError(f"{refuse}: it is a symbolic link (to {os.readlink(path)}); remove it")
    real, parent = path.resolve(), Path(inside).resolve()
    if parent not in real.parents:
        raise ProjectError(f"{refuse}: it resolves to {real}, which is not inside {parent}")
    if not real.is_dir():
        raise ProjectError(f"{refuse}: it is not a folder")
    if not ours(real):
        raise ProjectError(
            f"{refuse}: it does not look like one this tool wrote; move or delete it yourself"
        )


def delete_for_overwrite(
    path: Path, what: str, inside: Path, ours, keep=(), why: str = "--overwrite"
) -> None:
    """The one place ``--overwrite`` deletes: checked (:func:`check_deletable`), said, done.

    A kill part-way must leave something the next ``--overwrite`` recognizes and finishes.
    A whole folder is first renamed, in one step, to ``.<name>.deleting.tmp`` (our
    bookkeeping, which nothing reads), then deleted. ``keep``: names of entries to leave
    (the run directory's lock, held by this process); with it the folder is emptied
    instead, under the marker :data:`OVERWRITING`, written first and deleted last, and
    the files that make a folder a search run (run.json, oracle.json) go just before it.
    """
    path = Path(path)
    check_deletable(path, what, inside, ours, why)
    print(f"{why}: deleting {path} ({what})", flush=True)
    try:
        if not keep:
            trash = path.with_name(f".{path.name}.deleting.tmp")
            _remove_tree(trash)  # left by a kill during an earlier deletion
            path.rename(trash)
            shutil.rmtree(trash)  # never follows symlinks, not even one swapped in just now
            return
        records.atomic_write_text(path / OVERWRITING, f"{why}: deleting {what}\n")
        entries = [p for p in path.iterdir() if p.name not in (*keep, OVERWRITING)]
        entries.sort(key=lambda p: p.name in MARKS_A_RUN)  # those last
        for n, entry in enumerate(entries):
            if n:
                fault_point("overwrite.deleting")
            _remove_tree(entry)
        (path / OVERWRITING).unlink()
    except OSError as exc:
        raise ProjectError(f"{why}: could not delete {path} ({exc})") from None


def _remove_tree(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry)
    elif entry.exists() or entry.is_symlink():
        entry.unlink()


def refuse_unusable_search_dir(run_dir: Path) -> None:
    """Refuse a run directory that is a file, or a folder this tool did not make.

    Called before the lock file is created in it and again under the lock; such a folder
    is never deleted, not even with --overwrite.
    """
    if run_dir.is_symlink() and not run_dir.exists():
        raise UsageError(f"{run_dir} is a broken symbolic link; remove it or choose another name")
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(
            f"{run_dir} exists and is not a folder; choose another --project-name/--directory"
        )
    if not run_dir.is_dir() or is_search_run(run_dir) or interrupted_overwrite(run_dir):
        return
    if not all(is_bookkeeping(p.name) for p in run_dir.iterdir()):
        raise UsageError(
            f"{run_dir} exists and is not a search run of this tool (no run.json or "
            "oracle.json); choose another --project-name/--directory (--overwrite never "
            "deletes a folder this tool did not make)"
        )


def prepare_search_dir(run_dir: Path, definition: dict, overwrite: bool) -> str:
    """Make run_dir ready for a search: "new", "resume" (same definition) or "overwritten".

    The caller holds the run directory's lock (``tuning.rundir.lock``), which the overwrite keeps.
    """
    refuse_unusable_search_dir(run_dir)
    if run_dir.is_dir() and interrupted_overwrite(run_dir):
        if not overwrite:
            raise UsageError(
                f"{run_dir} holds what is left of a search run whose --overwrite was "
                "interrupted (part of it is deleted already, it cannot resume); rerun with "
                "--overwrite to finish deleting it, or choose another --project-name"
            )
        delete_for_overwrite(run_dir, "the rest of an interrupted --overwrite",
                             run_dir.parent, interrupted_overwrite, keep=(LOCK_NAME,))  # fmt: skip
        check_writable(run_dir)
        return "overwritten"
    if not is_search_run(run_dir):  # missing, or nothing in it but our bookkeeping
        check_writable(run_dir)
        return "new"
    recorded = recorded_definition(run_dir)
    if recorded is None:
        diffs = ["no run.json with a definition beside KerasTuner's oracle.json"]
    else:
        diffs = differences(recorded, definition)
    if not diffs:
        check_writable(run_dir)
        return "resume"
    if not overwrite:
        raise UsageError(
            f"{run_dir} holds a search with a different definition ("
            + "; ".join(diffs)
            + "); use another --project-name, or --overwrite to delete it"
        )
    n_trials = len(list(run_dir.glob("trial_*")))
    final = ", final/" if (run_dir / "final").exists() else ""
    delete_for_overwrite(
        run_dir,
        f"{n_trials} trial folders{final}",
        run_dir.parent,
        is_search_run,
        keep=(LOCK_NAME,),
    )
    check_writable(run_dir)
    return "overwritten"


class StagedFolder:
    """``<name>.partial/`` while a result is assembled, renamed to ``<name>/`` at the end.

    An interrupted step never leaves a half-written ``<name>/``; a stale ``.partial`` from
    an earlier interruption is cleared when the next one starts. Both deletions go
    through :func:`delete_for_overwrite`: ``<name>/`` must hold one of ``markers``.
    """

    def __init__(self, final: Path, overwrite: bool, markers=FINAL_MARKERS) -> None:
        self.final = Path(final)
        self.partial = self.final.with_name(self.final.name + ".partial")
        self.overwrite = overwrite
        self.inside = self.final.parent
        self.ours = holds_any(*markers)

    def check(self) -> None:
        """Refuse before any work is done if the result exists and may not be replaced."""
        if not (self.final.exists() or self.final.is_symlink()):
            return
        if not self.overwrite:
            raise UsageError(f"{self.final} already exists; pass --overwrite to replace it")
        check_deletable(self.final, "the previous result", self.inside, self.ours)

    def start(self) -> Path:
        self.check()
        if self.partial.exists() or self.partial.is_symlink():
            what = "left by an interrupted run"
            delete_for_overwrite(self.partial, what, self.inside, only_final_contents, why="stale")
        self.partial.mkdir(parents=True)
        return self.partial

    def commit(self) -> Path:
        fault_point("staged.commit")
        if self.final.exists() or self.final.is_symlink():  # only reachable with --overwrite
            delete_for_overwrite(self.final, "replaced by the new one", self.inside, self.ours)
        self.partial.rename(self.final)
        return self.final
