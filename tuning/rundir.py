"""A run directory: its definition file, provenance, overwrite and staged folders.

``<directory>/<project-name>/`` holds one search (``run.json`` with its definition) and
what later steps add to it (``final/``, ``ablation/``, ``plots/``, ``report.md``).
Everything here that deletes goes through :func:`delete_for_overwrite`, and everything
that is assembled in several steps is staged in ``<name>.partial/`` and renamed at the end.
"""

from __future__ import annotations

import datetime as _dt
import platform
import shlex
import shutil
import sys
from pathlib import Path

from tuning import records
from tuning.errors import ProjectError, UsageError

RUN_FILE = "run.json"


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
    """The search's ``run.json``, or {} for a directory without one."""
    path = Path(run_dir) / RUN_FILE
    return records.read_json(path) if path.is_file() else {}


def check_writable(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        records.atomic_write_text(directory / ".write-check", "ok\n")
        (directory / ".write-check").unlink()
    except OSError as exc:
        raise ProjectError(f"run directory {directory} is not writable ({exc.strerror})") from None


def delete_for_overwrite(path: Path, what: str) -> None:
    """The one place ``--overwrite`` deletes: say what goes, then remove it."""
    print(f"--overwrite: deleting {path} ({what})", flush=True)
    shutil.rmtree(path)


def prepare_search_dir(run_dir: Path, definition: dict, overwrite: bool) -> str:
    """Make run_dir ready for a search: "new", "resume" (same definition) or "overwritten"."""
    if not (run_dir.exists() and any(run_dir.iterdir())):
        check_writable(run_dir)
        return "new"
    run_file = run_dir / RUN_FILE
    if not run_file.is_file():
        if not overwrite:
            raise UsageError(
                f"{run_dir} exists and is not a search run of this tool; "
                "choose another --project-name/--directory or pass --overwrite"
            )
    else:
        diffs = differences(records.read_json(run_file).get("definition", {}), definition)
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
    delete_for_overwrite(run_dir, f"{n_trials} trial folders{final}")
    check_writable(run_dir)
    return "overwritten"


class StagedFolder:
    """``<name>.partial/`` while a result is assembled, renamed to ``<name>/`` at the end.

    An interrupted step never leaves a half-written ``<name>/``; a stale ``.partial`` from
    an earlier interruption is cleared when the next one starts.
    """

    def __init__(self, final: Path, overwrite: bool) -> None:
        self.final = Path(final)
        self.partial = self.final.with_name(self.final.name + ".partial")
        self.overwrite = overwrite

    def check(self) -> None:
        """Refuse before any work is done if the result exists and may not be replaced."""
        if self.final.exists() and not self.overwrite:
            raise UsageError(f"{self.final} already exists; pass --overwrite to replace it")

    def start(self) -> Path:
        self.check()
        if self.partial.exists():
            shutil.rmtree(self.partial)
        self.partial.mkdir(parents=True)
        return self.partial

    def commit(self) -> Path:
        if self.final.exists():  # only reachable with --overwrite
            print(f"--overwrite: replacing {self.final}")
            shutil.rmtree(self.final)
        self.partial.rename(self.final)
        return self.final
