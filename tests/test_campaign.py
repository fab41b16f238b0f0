"""benchmarks/campaign_lib.sh: what the pick campaign keeps survives a machine laid anew.

The functions run in bash on a made-up run directory (no training): a finished run's state
leaves out weights, logs and the lock, marks each dropped checkpoint as the tuner's
--prune-checkpoints marks it, and is restored only where the campaign has no such run.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from conftest import ROOT

from tuning.rundir.resume import CHECKPOINT, PRUNED

LIB = ROOT / "benchmarks" / "campaign_lib.sh"


def bash(script: str, cwd: Path, campaign: Path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "CAMPAIGN": str(campaign), "CAMPAIGN_KEPT": str(cwd / "kept")}
    return subprocess.run(
        ["bash", "-c", f"set -euo pipefail\n. {LIB}\n{script}"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.fixture
def finished_run(tmp_path) -> Path:
    """A campaign with one finished run, top/seed0: two trials, one still holding its
    checkpoint (the state drops it), its logs and its lock."""
    run = tmp_path / "campaign" / "searches" / "top" / "seed0"
    for trial in ("trial_0000", "trial_0001"):
        (run / trial).mkdir(parents=True)
        (run / trial / "trial.json").write_text('{"status": "COMPLETED"}')
    (run / "trial_0000" / CHECKPOINT).write_bytes(b"weights")
    (run / "tensorboard" / "0000").mkdir(parents=True)
    (run / "tensorboard" / "0000" / "events").write_bytes(b"log")
    (run / ".lock").write_text("")
    for name in ("trials.csv", "confirm.csv", "best.json", "oracle.json"):
        (run / name).write_text(name)
    return tmp_path / "campaign"


def test_keep_commits_the_small_files_and_a_state_without_weights_or_logs(finished_run, tmp_path):
    proc = bash("keep top 0", tmp_path, finished_run)
    assert proc.returncode == 0, proc.stderr
    kept = tmp_path / "kept" / "top" / "seed0"
    assert sorted(p.name for p in kept.iterdir()) == [
        "best.json", "confirm.csv", "state.tar.gz", "trials.csv"
    ]  # fmt: skip
    with tarfile.open(kept / "state.tar.gz") as tar:
        names = set(tar.getnames())
        marker = tar.extractfile(f"seed0/trial_0000/{PRUNED}").read()
    assert {
        "seed0/oracle.json",
        "seed0/trial_0001/trial.json",
        f"seed0/trial_0000/{PRUNED}",
    } <= names
    assert not [n for n in names if "tensorboard" in n or n.endswith((".lock", CHECKPOINT))]
    assert f"seed0/trial_0001/{PRUNED}" not in names  # it had no checkpoint to drop
    assert marker == b"pruned\n"  # what tuning.engine.tuner writes with --prune-checkpoints
    assert not list(kept.glob("*.tmp"))


def test_restore_brings_a_kept_run_back_only_where_the_campaign_has_none(finished_run, tmp_path):
    assert bash("keep top 0", tmp_path, finished_run).returncode == 0
    run = finished_run / "searches" / "top" / "seed0"
    (run / "oracle.json").write_text("newer")  # a run the campaign holds is left alone
    proc = bash("restore top 0", tmp_path, finished_run)
    assert proc.returncode == 0 and "restoring" not in proc.stdout
    assert (run / "oracle.json").read_text() == "newer"
    shutil.rmtree(finished_run)  # the machine laid anew
    proc = bash("restore top 0", tmp_path, finished_run)
    assert proc.returncode == 0 and "restoring top/seed0" in proc.stdout, proc.stderr
    assert (run / "oracle.json").read_text() == "oracle.json"
    assert (run / "trial_0000" / PRUNED).is_file() and not (
        run / "trial_0000" / CHECKPOINT
    ).exists()
    assert bash("restore both48 0", tmp_path, finished_run).returncode == 0  # none kept: no-op
    assert not (finished_run / "searches" / "both48").exists()


def test_copy_run_copies_a_finished_run_once_and_leaves_a_copy_it_already_has(
    finished_run, tmp_path
):
    assert bash("copy_run top sizes 0", tmp_path, finished_run).returncode == 0
    copy = finished_run / "searches" / "sizes" / "seed0"
    assert (copy / "trial_0000" / CHECKPOINT).read_bytes() == b"weights"
    (copy / "confirm.csv").write_text("its own confirmation")
    assert bash("copy_run top sizes 0", tmp_path, finished_run).returncode == 0
    assert (copy / "confirm.csv").read_text() == "its own confirmation"
    assert not list((finished_run / "searches" / "sizes").glob(".seed0.copy"))
