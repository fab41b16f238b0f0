"""Kill -9 at every boundary a run has, then the same command again (issue 25).

Each kill is a fault point (``tuning.faults``): the command, a fresh process as a user runs
it, SIGKILLs itself exactly there, so every boundary is hit on any machine, however busy.
A resumed run must give the trials and rows of an uninterrupted one, none twice.
The confirmation's kill is in ``tests/test_confirm.py`` (its ``resumed`` fixture), the
finalizer's in ``tests/test_end_to_end.py`` (its ``finalized`` fixture).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys

import pytest
from conftest import ROOT, SEARCH_ARGS, module_env, run_module

from tuning.errors import ProjectError
from tuning.rundir import records

HP_COLUMNS = ("trial_id", "status", "blocks", "filters", "skip", "learning_rate", "bracket",
              "round", "parent_trial_id", "initial_epoch", "target_epochs",
              "epochs_trained")  # fmt: skip
KILLED = -signal.SIGKILL


def _table(run_dir) -> list[tuple]:
    rows = records.read_trials_csv(run_dir / "trials.csv")
    return [tuple(r[c] for c in HP_COLUMNS) for r in rows]


# SEARCH_ARGS's plan: 0000-0002 train 1 epoch, 0003 continues 0001 for 2, 0004 and 0005
# train 3; 300 images in batches of 64 make 5 batches an epoch. Each step starts where
# the one before stopped.
KILL, CTRL_C = "kill_at", "interrupt_at"
CHAIN = [
    # (how, at which fault point, where it lands, what the next run must say)
    (KILL, "search.before_trials", "run.json written, no trial yet", None),
    # KerasTuner made trial_0001/ after 0000's result (the 4th trial file write: 0000's
    # start, its metrics, its end, 0001's start): an empty folder the oracle never recorded
    (KILL, "oracle.trial_folder:4", "between trials, the next folder just made",
     "trial 0001: interrupted while it was being created"),
    # 0001's trial.json written, oracle.json not yet
    (KILL, "oracle.trial_file:1", "the next trial's file written, not recorded",
     "trial 0001: interrupted while it was being created"),
    # 0001 ended in its trial.json (start, metrics, end), oracle.json not yet: not retrained
    (KILL, "oracle.trial_file:3", "a trial's end written, not recorded", "resuming: 2 trials"),
    # batch 23: 0002 (5) and 0003 (10) done, 0004's second epoch (21-25) in progress
    (KILL, "trial.batch:23", "mid-epoch, an epoch saved", "trial 0004: resuming from epoch 1"),
    # Ctrl-C in 0004's second epoch, resumed from the first: that epoch ends, is saved, stop
    (CTRL_C, "trial.batch:3", "Ctrl-C mid-epoch", "trial 0004: resuming from epoch 2"),
]  # fmt: skip


def _stopped_by_ctrl_c(proc) -> None:
    """The Ctrl-C: the epoch finished and saved, the command that resumes, no traceback."""
    assert proc.returncode == 130, proc.stderr[-3000:]
    assert "stopping after the current epoch" in proc.stdout
    assert "interrupted; resume with: python -m tuning.search --data-dir" in proc.stderr
    assert "Traceback" not in proc.stderr


def _pruned_and_finished(run_dir, reference, command: list[str]) -> None:
    """Pruned as it went, without changing the search: no checkpoint or resume file left,
    and a rerun of the finished run trains nothing and takes no pruned checkpoint for
    damage."""
    assert not list(run_dir.glob("trial_*/checkpoint.weights.h5"))
    assert not list(run_dir.glob("trial_*/resume-epoch*.keras"))
    again = run_module("tuning.search", *command)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already complete" in again.stdout and "will be re-run" not in again.stdout
    assert _table(run_dir) == _table(reference)


# 70 s; in CI its mid-epoch kill, its Ctrl-C and its pruned rerun (the next test), a kill
# before the trials (test_hardening_runs), in a confirmation (test_confirm), in the
# finalizer's save (test_end_to_end) and in a worker (test_distributed)
@pytest.mark.slow
def test_a_search_killed_at_every_boundary_resumes_to_the_uninterrupted_run(search_run, tmp_path):
    reference, args, _ = search_run
    args = [*args[:2], "--directory", str(tmp_path), "--project-name", "k"]
    run_dir = tmp_path / "k"
    # a resume checkpoint every epoch; checkpoints no later round loads deleted as it goes
    command = [*args, *SEARCH_ARGS, "--resume-every", "0", "--prune-checkpoints"]
    said = None
    for how, point, where, next_says in CHAIN:
        proc = run_module("tuning.search", *command, **{how: point})
        code = KILLED if how == KILL else 130
        assert proc.returncode == code, f"{point}: {proc.returncode}\n{proc.stderr[-3000:]}"
        if said:
            assert said in proc.stdout, f"after the kill {where}:\n{proc.stdout[-3000:]}"
        said = next_says
    _stopped_by_ctrl_c(proc)
    proc = run_module("tuning.search", *command)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert said in proc.stdout
    assert "resuming: 4 trials already finished" in proc.stdout
    # the trials and rows of the uninterrupted run, each trained once
    assert _table(run_dir) == _table(reference)
    for row in records.read_trials_csv(run_dir / "trials.csv"):
        history = json.loads((run_dir / f"trial_{row['trial_id']}" / "history.json").read_text())
        epochs = [e["epoch"] for e in history["epochs"]]
        assert epochs == list(range(row["initial_epoch"] + 1, row["target_epochs"] + 1)), row
    finals = {"final", "final.partial"}  # what tests/test_end_to_end.py adds to the reference
    assert {p.name for p in run_dir.iterdir()} == {p.name for p in reference.iterdir()} - finals
    assert not list(run_dir.rglob("*.tmp*"))
    rows = records.read_trials_csv(run_dir / "trials.csv")
    assert "disk:" in proc.stdout and all(r["disk_mb"] > 0 for r in rows)
    _pruned_and_finished(run_dir, reference, command)


def test_a_kill_mid_epoch_and_a_ctrl_c_resume_a_pruned_search_to_the_uninterrupted_run(
    search_run, tmp_path
):
    """The chain above cut to what CI runs: a kill -9 mid-epoch (batch 23: 0003's last
    epoch), a Ctrl-C in the resumed epoch, then the same command to the end; pruned as it
    went, a rerun of the finished run trains nothing (what a campaign's restored state is)."""
    reference, args, _ = search_run
    args = [*args[:2], "--directory", str(tmp_path), "--project-name", "k"]
    command = [*args, *SEARCH_ARGS, "--resume-every", "0", "--prune-checkpoints"]
    killed = run_module("tuning.search", *command, kill_at="trial.batch:23")
    assert killed.returncode == KILLED, killed.stderr[-3000:]
    stopped = run_module("tuning.search", *command, interrupt_at="trial.batch:3")
    _stopped_by_ctrl_c(stopped)
    assert "resuming from epoch" in stopped.stdout, stopped.stdout[-3000:]
    done = run_module("tuning.search", *command)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "k"
    assert _table(run_dir) == _table(reference)
    _pruned_and_finished(run_dir, reference, command)


def test_a_fault_point_kills_only_where_and_when_it_is_named():
    code = ("from tuning.faults import fault_point\n"
            "for i in range(3):\n"
            "    fault_point('other'); print(i, flush=True); fault_point('here')\n")  # fmt: skip
    env = {**module_env(), "TUNING_KILL_AT": "here:2"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == KILLED and proc.stdout.split() == ["0", "1"]
    env["TUNING_KILL_AT"] = ""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.split() == ["0", "1", "2"]


# -- what a kill leaves, repaired without training ------------------------------------------
def _copy(search_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(search_run[0], run_dir, ignore=shutil.ignore_patterns("final*"))
    return run_dir


def test_folders_the_oracle_never_recorded_are_dropped_or_moved_aside(search_run, tmp_path):
    from tuning.rundir.repair import repair_run

    run_dir = _copy(search_run, tmp_path)
    oracle = (run_dir / "oracle.json").read_text()
    (run_dir / "trial_0006").mkdir()  # made, then killed
    (run_dir / "trial_0007").mkdir()  # its trial.json written, then killed
    shutil.copy(run_dir / "trial_0005" / "trial.json", run_dir / "trial_0007" / "trial.json")
    (run_dir / "trial_0007" / ".trial.json.x1y2.tmp").write_text("{")
    (run_dir / "trial_0008").mkdir()  # not what KerasTuner leaves: kept, out of the way
    (run_dir / "trial_0008" / "notes.txt").write_text("mine")
    messages = repair_run(run_dir)
    assert [m.split(":")[0] for m in messages] == ["trial 0006", "trial 0007", "trial 0008"]
    assert "its folder was removed and it starts again" in messages[0]
    assert "moved aside to unrecorded-trial_0008/" in messages[2]
    assert not any((run_dir / f"trial_{i}").exists() for i in ("0006", "0007", "0008"))
    assert (run_dir / "unrecorded-trial_0008" / "notes.txt").read_text() == "mine"
    assert (run_dir / "oracle.json").read_text() == oracle  # nothing recorded changed
    assert repair_run(run_dir) == []  # and nothing left to do
    # killed before the first trial was recorded: no oracle.json, the folder dropped
    first = tmp_path / "first"
    (first / "trial_0000").mkdir(parents=True)
    assert "trial 0000: interrupted while it was being created" in repair_run(first)[0]
    assert not (first / "trial_0000").exists()
    # oracle.json lost while trials hold training: refused, nothing moved or deleted
    (run_dir / "oracle.json").unlink()
    before = sorted(p.name for p in run_dir.iterdir())
    with pytest.raises(ProjectError, match="oracle.json is missing, yet trial folders hold"):
        repair_run(run_dir)
    assert sorted(p.name for p in run_dir.iterdir()) == before


def test_a_trial_whose_end_was_written_but_not_recorded_is_not_trained_again(search_run, tmp_path):
    from tuning.rundir.repair import repair_run

    run_dir = _copy(search_run, tmp_path)
    state = json.loads((run_dir / "oracle.json").read_text())
    state["end_order"].remove("0005")  # as oracle.json was before the kill
    state["ongoing_trials"] = {"tuner0": "0005"}
    state["run_times"].pop("0005")
    (run_dir / "oracle.json").write_text(json.dumps(state))
    (run_dir / "tuner0.json").unlink()  # the first trial's end: not written yet either
    assert repair_run(run_dir) == []
    repaired = json.loads((run_dir / "oracle.json").read_text())
    assert repaired["end_order"][-1] == "0005" and repaired["ongoing_trials"] == {}
    assert repaired["run_times"]["0005"] == 1
    assert json.loads((run_dir / "tuner0.json").read_text()) == {}  # KerasTuner reloads


def test_no_damage_message_recommends_overwrite(search_run, tmp_path):
    from tuning.rundir.repair import repair_run

    run_dir = _copy(search_run, tmp_path)
    state = json.loads((run_dir / "oracle.json").read_text())
    state["start_order"].append("0006")  # recorded as started, then its files were lost
    state["ongoing_trials"] = {"tuner0": "0006"}
    (run_dir / "oracle.json").write_text(json.dumps(state))
    with pytest.raises(ProjectError) as lost:
        repair_run(run_dir)
    (run_dir / "oracle.json").write_text("{broken")
    with pytest.raises(ProjectError) as unreadable:
        repair_run(run_dir)
    for error in (lost, unreadable):
        message = str(error.value)
        assert "--overwrite" not in message and f"mv {run_dir} {run_dir}.damaged" in message
        assert "finished trials, trials.csv and best.json are kept" in message
    assert "trial 0006 is damaged" in str(lost.value)
    assert "oracle.json is unreadable" in str(unreadable.value)
