"""Issue 16: --overwrite never deletes outside the run; one process per run directory.

Both are "must not happen" data losses, so the tests try the real commands where it
matters: a second search, finalize or ablation started on a run that is in use, a second
chief on a served port, and ``--project-name ..`` from the user's own folder.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, SEARCH_ARGS, module_env, run_module

from tuning.config import SearchConfig
from tuning.errors import ProjectError, UsageError
from tuning.rundir import records
from tuning.rundir.folders import (
    OVERWRITING,
    StagedFolder,
    delete_for_overwrite,
    is_search_run,
    prepare_search_dir,
)
from tuning.rundir.lock import LOCK_NAME, RunLock

HP = json.dumps({"blocks": 1, "filters": 8, "skip": True, "learning_rate": 0.01})
# The lock's holder in another process: takes it, says so, holds it until stdin closes.
HOLDER = (
    "import sys\nfrom tuning.rundir.lock import RunLock\n"
    "RunLock(sys.argv[1], 'search').acquire()\nprint('held', flush=True)\nsys.stdin.read()\n"
)


def hold(run_dir: Path) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run_dir)],
        cwd=ROOT,
        env=module_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def start_search(args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "w") as out:  # a file, not a pipe: nothing blocks a stopped reader
        return subprocess.Popen(
            [sys.executable, "-m", "tuning.search", *args],
            cwd=ROOT,
            env=module_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_for(condition, proc: subprocess.Popen, log: Path, timeout: float = 150) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.05)


def one_line_error(proc: subprocess.CompletedProcess, code: int) -> str:
    assert proc.returncode == code, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def make_run(folder: Path, definition: dict | None = None) -> Path:
    """A search run as this tool leaves one (run.json, a trial folder, final/)."""
    (folder / "trial_0000").mkdir(parents=True)
    (folder / "trial_0000" / "history.json").write_text("{}")
    records.atomic_write_json(folder / "run.json", {"definition": definition or {"seed": 1}})
    (folder / "final").mkdir()
    (folder / "final" / "report.json").write_text("{}")
    return folder


# -- 1. --overwrite never deletes outside the run ---------------------------------------
@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "/tmp", "a\\b", "runs/.."])
def test_project_name_must_be_one_plain_folder_name(name):
    with pytest.raises(UsageError, match="--project-name must be a plain folder name"):
        SearchConfig(project_name=name)


@pytest.mark.parametrize("name", ["..", "."])
def test_project_name_dot_dot_with_overwrite_touches_nothing(name, data_dir, tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "notes.txt").write_text("runs")
    (tmp_path / "mine.txt").write_text("mine")
    before = snapshot(tmp_path)
    # the default --directory runs: "runs/.." is the user's own folder
    proc = run_module(
        "tuning.search", "--data-dir", str(data_dir), *SEARCH_ARGS, "--project-name", name,
        "--overwrite", cwd=tmp_path,
    )  # fmt: skip
    assert "plain folder name" in one_line_error(proc, 2)
    assert snapshot(tmp_path) == before


def test_delete_for_overwrite_stays_strictly_inside_its_folder(tmp_path):
    runs = tmp_path / "runs"
    run = make_run(runs / "search")
    (tmp_path / "mine.txt").write_text("mine")
    before = snapshot(tmp_path)

    def everything(folder: Path) -> bool:  # only the place is checked here
        return True

    for path in (runs / "..", runs / ".", runs, runs / "search" / "..", tmp_path, Path("/")):
        with pytest.raises(ProjectError, match="not inside"):
            delete_for_overwrite(path, "test", runs, everything)
    assert snapshot(tmp_path) == before
    delete_for_overwrite(run, "test", runs, is_search_run)  # ours, inside: deleted
    assert not run.exists() and (tmp_path / "mine.txt").is_file()


def test_overwrite_refuses_a_symlinked_run_dir(tmp_path):
    target = make_run(tmp_path / "elsewhere" / "precious", {"seed": 1})
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "search").symlink_to(target, target_is_directory=True)
    before = snapshot(target)
    with pytest.raises(ProjectError, match="symbolic link"):
        prepare_search_dir(runs / "search", {"seed": 2}, overwrite=True)
    with pytest.raises(ProjectError, match="symbolic link"):
        delete_for_overwrite(runs / "search", "test", runs, is_search_run)
    assert snapshot(target) == before and (runs / "search").is_symlink()


def test_overwrite_never_deletes_a_folder_that_is_not_a_run(tmp_path):
    folder = tmp_path / "runs" / "search"
    folder.mkdir(parents=True)
    (folder / "thesis.tex").write_text("years of work")
    (folder / "run.json").write_text("[1, 2]")  # not ours: no definition
    before = snapshot(tmp_path)
    with pytest.raises(UsageError, match="choose another --project-name/--directory"):
        prepare_search_dir(folder, {"seed": 1}, overwrite=True)
    with pytest.raises(ProjectError, match="does not look like one this tool wrote"):
        delete_for_overwrite(folder, "test", folder.parent, is_search_run)
    assert snapshot(tmp_path) == before


def test_overwrite_of_our_run_keeps_the_lock_and_kerastuner_runs_count(tmp_path):
    run = make_run(tmp_path / "search", {"seed": 1})
    with RunLock(run, "search"):
        assert prepare_search_dir(run, {"seed": 2}, overwrite=True) == "overwritten"
        assert [p.name for p in run.iterdir()] == [LOCK_NAME]
    assert not run.exists() or not any(run.iterdir())
    kt = tmp_path / "kt"  # KerasTuner's oracle.json without our run.json: ours too
    kt.mkdir()
    (kt / "oracle.json").write_text("{}")
    with pytest.raises(UsageError, match="--overwrite to delete it"):
        prepare_search_dir(kt, {"seed": 1}, overwrite=False)
    assert prepare_search_dir(kt, {"seed": 1}, overwrite=True) == "overwritten"
    only_lock = tmp_path / "fresh"  # a run killed right after taking its lock
    only_lock.mkdir()
    (only_lock / LOCK_NAME).write_text("")
    assert prepare_search_dir(only_lock, {"seed": 1}, overwrite=False) == "new"


@pytest.mark.slow  # 14 s; an overwrite's steps in process: the tests above
def test_a_killed_overwrite_is_finished_by_the_next_and_nothing_else(search_run, tmp_path):
    """Killed after deleting two entries: run.json and oracle.json are deleted last and the
    marker first, so the folder stays recognizably ours; only --overwrite goes on."""
    run = tmp_path / "tiny"
    shutil.copytree(search_run[0], run, ignore=shutil.ignore_patterns("final*"))
    args = ["--data-dir", search_run[1][1], "--directory", str(tmp_path), "--project-name",
            "tiny", *SEARCH_ARGS, "--max-epochs", "1"]  # another definition: 1 trial  # fmt: skip
    killed = run_module("tuning.search", *args, "--overwrite", kill_at="overwrite.deleting:2")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert (run / OVERWRITING).is_file() and (run / "run.json").is_file()
    left = {p.name for p in run.iterdir()} - {LOCK_NAME, OVERWRITING}
    assert left < {p.name for p in search_run[0].iterdir()} - {"final"}  # one entry gone
    before = snapshot(run)
    with pytest.raises(UsageError, match="rerun with --overwrite to finish deleting it"):
        prepare_search_dir(run, {"seed": 1}, overwrite=False)  # the command: exit 2, one line
    assert snapshot(run) == before
    again = run_module("tuning.search", *args, "--overwrite")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    assert "the rest of an interrupted --overwrite" in again.stdout
    assert [r["trial_id"] for r in records.read_trials_csv(run / "trials.csv")] == ["0000"]
    assert not (run / OVERWRITING).exists()


def test_what_an_older_killed_overwrite_left_is_reusable_with_overwrite_only(tmp_path):
    """An older version deleted in directory order: run.json and oracle.json could go
    first, leaving the lock, confirm.csv and trial folders. Recognized, never guessed."""
    run = tmp_path / "left"
    (run / "trial_0000").mkdir(parents=True)
    (run / "trial_0000" / "trial.json").write_text("{}")
    (run / "trial_0001").mkdir()  # emptied already
    (run / LOCK_NAME).write_text("")
    records.write_confirm_runs(run, [])
    before = snapshot(run)
    with pytest.raises(UsageError, match="rerun with --overwrite to finish deleting it"):
        prepare_search_dir(run, {"seed": 1}, overwrite=False)
    assert snapshot(run) == before
    with RunLock(run, "search"):
        assert prepare_search_dir(run, {"seed": 1}, overwrite=True) == "overwritten"
        assert [p.name for p in run.iterdir()] == [LOCK_NAME]
    # the same shape with one file that is not ours: refused, even with --overwrite
    (run / "trial_0000").mkdir()
    (run / "trial_0000" / "trial.json").write_text("{}")
    (run / "thesis.tex").write_text("years of work")
    before = snapshot(run)
    for overwrite in (False, True):
        with pytest.raises(UsageError, match="is not a search run of this tool"):
            prepare_search_dir(run, {"seed": 1}, overwrite=overwrite)
    (run / "thesis.tex").unlink()
    (run / "trial_0000" / "notes.txt").write_text("mine")  # nor inside a trial folder
    with pytest.raises(UsageError, match="is not a search run of this tool"):
        prepare_search_dir(run, {"seed": 1}, overwrite=True)
    assert (run / "trial_0000" / "notes.txt").read_text() == "mine"


def test_a_folder_deleted_whole_goes_in_one_rename(tmp_path):
    """final/ or ablation/: renamed to bookkeeping first, so a kill never leaves half of
    one under its name (a half ablation/ without ablation.json would take new rows)."""
    run = make_run(tmp_path / "run")
    (run / ".final.deleting.tmp").mkdir()  # what a kill left during an earlier deletion
    (run / ".final.deleting.tmp" / "model.keras").write_text("half")
    delete_for_overwrite(run / "final", "test", run, lambda folder: True)
    assert sorted(p.name for p in run.iterdir()) == ["run.json", "trial_0000"]
    (run / ".ablation.deleting.tmp" / "runs").mkdir(parents=True)  # killed in its rmtree
    assert records.remove_stale_temporaries(run) == 1  # a resume clears it
    assert sorted(p.name for p in run.iterdir()) == ["run.json", "trial_0000"]


def test_staged_final_replaces_only_a_final_of_ours(tmp_path):
    run = tmp_path / "run"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(parents=True)
    (elsewhere / "report.json").write_text("theirs")
    run.mkdir()
    (run / "final").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(ProjectError, match="symbolic link"):
        StagedFolder(run / "final", overwrite=True).check()
    (run / "final").unlink()
    (run / "final").mkdir()
    (run / "final" / "notes.txt").write_text("mine")
    with pytest.raises(ProjectError, match="does not look like one this tool wrote"):
        StagedFolder(run / "final", overwrite=True).start()
    assert (run / "final" / "notes.txt").read_text() == "mine"
    assert (elsewhere / "report.json").read_text() == "theirs"
    # ours: replaced; a stale final.partial of ours is cleared, a foreign one is not
    (run / "final" / "notes.txt").unlink()
    (run / "final" / "report.json").write_text("old")
    (run / "final.partial" / "tensorboard").mkdir(parents=True)
    staged = StagedFolder(run / "final", overwrite=True)
    (staged.start() / "report.json").write_text("new")
    assert (staged.commit() / "report.json").read_text() == "new"
    (run / "final.partial").mkdir()
    (run / "final.partial" / "thesis.tex").write_text("mine")
    with pytest.raises(ProjectError, match="final.partial"):
        StagedFolder(run / "final", overwrite=True).start()
    assert (run / "final.partial" / "thesis.tex").read_text() == "mine"


def test_a_file_as_project_name_is_a_one_line_error(data_dir, tmp_path):
    (tmp_path / "search").write_text("a file, not a run")
    proc = run_module(
        "tuning.search", "--data-dir", str(data_dir), "--directory", str(tmp_path),
        *SEARCH_ARGS, "--precision", "float32", "--overwrite",
    )  # fmt: skip
    assert "exists and is not a folder" in one_line_error(proc, 2)
    assert (tmp_path / "search").read_text() == "a file, not a run"


def test_a_symlinked_run_dir_is_not_overwritten_by_the_command(data_dir, tmp_path):
    target = make_run(tmp_path / "elsewhere", {"seed": 1})
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "search").symlink_to(target, target_is_directory=True)
    before = snapshot(target)
    proc = run_module(
        "tuning.search", "--data-dir", str(data_dir), "--directory", str(tmp_path / "runs"),
        *SEARCH_ARGS, "--precision", "float32", "--overwrite",
    )  # fmt: skip
    assert "is a symbolic link" in one_line_error(proc, 1)
    assert snapshot(target) == before


# -- 2. one process per run directory -----------------------------------------------------
def test_the_lock_refuses_a_second_process_and_goes_with_the_first(tmp_path):
    run = tmp_path / "run"
    holder = hold(run)
    try:
        written = json.loads((run / LOCK_NAME).read_text())
        assert written["pid"] == holder.pid and written["what"] == "search"
        with pytest.raises(ProjectError) as refused:
            RunLock(run, "finalize").acquire()
        message = str(refused.value)
        assert f"{run} is in use by process {holder.pid} on host " in message
        assert "wait for it to finish, or stop it" in message and "\n" not in message
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    with RunLock(run, "finalize"):  # released when its holder exited
        assert json.loads((run / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert not (run / LOCK_NAME).exists()  # the file lives as long as the lock
    killed = hold(run)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    assert (run / LOCK_NAME).is_file()  # left behind by the killed holder ...
    with RunLock(run, "search"):  # ... and taken over
        pass


def test_the_lock_leaves_no_trace(tmp_path):
    with RunLock(tmp_path / "none", "finalize", create=False):
        assert not (tmp_path / "none").exists()  # nothing to protect: not created
    with RunLock(tmp_path / "new" / "run", "search"):
        assert (tmp_path / "new" / "run" / LOCK_NAME).is_file()
    assert not (tmp_path / "new" / "run").exists()  # made for the lock, still empty
    with RunLock(tmp_path / "new" / "run", "search"):
        (tmp_path / "new" / "run" / "run.json").write_text("{}")
    assert [p.name for p in (tmp_path / "new" / "run").iterdir()] == ["run.json"]


def test_a_second_search_is_refused_and_a_killed_one_resumes(data_dir, tmp_path):
    args = [
        "--data-dir", str(data_dir), "--directory", str(tmp_path), "--project-name", "twice",
        *SEARCH_ARGS, "--precision", "float32", "--resume-every", "0",
    ]  # fmt: skip
    run, log = tmp_path / "twice", tmp_path / "first.log"
    first = start_search(args, log)

    def training() -> bool:
        try:
            holder = json.loads((run / LOCK_NAME).read_text())
            return holder["pid"] == first.pid and bool(records.read_trials_csv(run / "trials.csv"))
        except Exception:
            return False

    try:
        wait_for(training, first, log)
        first.send_signal(signal.SIGSTOP)  # still holding its lock: nothing moves now
        before = snapshot(run)
        t0 = time.monotonic()
        second = run_module("tuning.search", *args, timeout=150)
        error = one_line_error(second, 1)
        assert f"{run} is in use by process {first.pid} on host " in error
        assert "python -m tuning.search" in error and "wait for it to finish" in error
        assert time.monotonic() - t0 < 120
        assert snapshot(run) == before  # wrote nothing: trials.csv, checkpoints unchanged
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    # the killed holder's lock is taken over (a resume's trials: tests/test_kill_points.py)
    again = run_module("tuning.search", *args, timeout=400, kill_at="search.before_trials")
    assert again.returncode == -signal.SIGKILL, again.stdout[-2000:] + again.stderr[-3000:]
    assert "(resume)" in again.stdout and "in use" not in again.stderr


@pytest.mark.parametrize(
    "module, extra, result",
    [
        ("tuning.finalize", ["--epochs", "1"], "final"),
        ("tuning.ablate", ["--epochs", "1", "--seeds", "1"], "ablation"),
    ],
)
def test_finalize_and_ablate_are_refused_while_the_run_is_in_use(
    module, extra, result, data_dir, tmp_path
):
    run = tmp_path / "run"
    holder = hold(run)
    try:
        proc = run_module(
            module, "--run-dir", str(run), "--data-dir", str(data_dir), "--subset", "300",
            "--hyperparameters", HP, *extra, timeout=150,
        )  # fmt: skip
        assert f"is in use by process {holder.pid}" in one_line_error(proc, 1)
        assert sorted(p.name for p in run.iterdir()) == [LOCK_NAME]  # nothing of its own
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert not (run / result).exists()


# 12 s; not covered in CI: a port another chief serves (a second search on one run, refused
# by the lock: the test above)
@pytest.mark.slow
def test_a_second_chief_on_a_served_port_is_refused(data_dir, tmp_path):
    from tuning.engine import free_port

    port = free_port()

    def chief_args(name: str) -> list[str]:
        return [
            "--data-dir", str(data_dir), "--directory", str(tmp_path), "--project-name", name,
            *SEARCH_ARGS, "--precision", "float32", "--role", "chief",
            "--oracle", f"127.0.0.1:{port}",
        ]  # fmt: skip

    log = tmp_path / "chief1.log"
    first = start_search(chief_args("one"), log)
    try:
        wait_for(lambda: "chief: serving trials on" in log.read_text(), first, log)
        t0 = time.monotonic()
        second = run_module("tuning.search", *chief_args("two"), timeout=150)
        assert f"cannot listen on 127.0.0.1:{port}" in one_line_error(second, 1)
        assert time.monotonic() - t0 < 120
        assert first.poll() is None  # the first chief serves on
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
