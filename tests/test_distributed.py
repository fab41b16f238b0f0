"""Distributed search: a chief and workers as real processes on 127.0.0.1."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import SEARCH_ARGS, popen_module, run_module

from tuning.config import Cluster
from tuning.engine import free_port, resolve_cluster
from tuning.errors import UsageError
from tuning.plan import hyperband_plan
from tuning.rundir import records

BOUND_S = 150  # every process must have exited by itself within this


def start(*args: str) -> subprocess.Popen:
    return popen_module("tuning.search", *args, stderr=subprocess.STDOUT)


def finish(procs: dict[str, subprocess.Popen], deadline: float) -> dict[str, str]:
    out = {}
    for name, proc in procs.items():
        try:
            out[name], _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for p in procs.values():
                p.kill()
            pytest.fail(f"{name} did not exit within {BOUND_S} s")
    return out


def common(data_dir: Path, tmp_path: Path, port: int) -> list[str]:
    return [
        "--data-dir", str(data_dir), "--directory", str(tmp_path), "--project-name", "dist",
        *SEARCH_ARGS, "--oracle", f"127.0.0.1:{port}",
        "--resume-every", "0",  # a resume checkpoint after every epoch: the kill tests need one
    ]  # fmt: skip


def assert_each_trial_once(run_dir: Path) -> list[dict]:
    rows = records.read_trials_csv(run_dir / "trials.csv")
    ids = [r["trial_id"] for r in rows]
    assert len(ids) == len(set(ids)) == hyperband_plan(3, 3).trials
    assert all(r["status"] == "COMPLETED" for r in rows)
    for r in rows:  # every epoch of every trial ran exactly once
        assert r["epochs_trained"] == r["target_epochs"] - r["initial_epoch"]
    return rows


def test_chief_and_two_workers_complete_the_search(data_dir, tmp_path):
    t0 = time.monotonic()
    args = common(data_dir, tmp_path, free_port())
    procs = {"chief": start(*args, "--role", "chief")}
    for name in ("w1", "w2"):
        procs[name] = start(*args, "--role", "worker", "--worker-id", name)
    out = finish(procs, t0 + BOUND_S)
    for name, proc in procs.items():
        assert proc.returncode == 0, f"{name}:\n{out[name][-3000:]}"
    run_dir = tmp_path / "dist"
    assert_each_trial_once(run_dir)
    ran = [int(out[w].split("this worker ran ")[1].split()[0]) for w in ("w1", "w2")]
    assert sum(ran) == hyperband_plan(3, 3).trials  # nothing run twice, nothing skipped
    assert "serving trials on 127.0.0.1" in out["chief"]
    assert "search finished" in out["chief"] and "next: python -m tuning.finalize" in out["chief"]
    assert (run_dir / "best.json").is_file()
    # every trial's TensorBoard logs under the one log directory
    rows = records.read_trials_csv(run_dir / "trials.csv")
    for r in rows:
        assert list((run_dir / "tensorboard" / r["trial_id"]).rglob("events.out.tfevents.*"))
    fin = run_module(
        "tuning.finalize", "--run-dir", str(run_dir), "--data-dir", str(data_dir),
        "--epochs", "1", "--verbose", "0", "--precision", "mixed_bfloat16",
    )  # fmt: skip
    assert fin.returncode == 0, fin.stderr[-2000:]
    assert "test accuracy" in fin.stdout
    assert records.read_json(run_dir / "final" / "report.json")["precision"] == "mixed_bfloat16"


def _running_trial_with_a_saved_epoch(run_dir: Path) -> str | None:
    for trial_dir in run_dir.glob("trial_*"):
        if not list(trial_dir.glob("resume-epoch*.keras")):
            continue
        try:
            values = records.read_json(trial_dir / "history.json")["values"]
        except Exception:
            continue
        if values["tuner/epochs"] - values.get("tuner/initial_epoch", 0) >= 2:
            return trial_dir.name.removeprefix("trial_")
    return None


def test_a_worker_killed_mid_trial_loses_nothing(data_dir, tmp_path):
    t0 = time.monotonic()
    args = common(data_dir, tmp_path, free_port())
    run_dir = tmp_path / "dist"
    chief = start(*args, "--role", "chief", "--worker-timeout", "4")
    w1 = start(*args, "--role", "worker", "--worker-id", "w1")
    killed = None
    while killed is None and time.monotonic() < t0 + BOUND_S / 2:
        assert w1.poll() is None, w1.communicate()[0][-3000:]
        killed = _running_trial_with_a_saved_epoch(run_dir)
        time.sleep(0.02)
    assert killed is not None, "no multi-epoch trial started"
    w1.send_signal(signal.SIGKILL)
    w1.communicate()
    w2 = start(*args, "--role", "worker", "--worker-id", "w2")
    out = finish({"chief": chief, "w2": w2}, t0 + BOUND_S)
    assert chief.returncode == 0, out["chief"][-3000:]
    assert w2.returncode == 0, out["w2"][-3000:]
    rows = assert_each_trial_once(run_dir)
    assert killed in {r["trial_id"] for r in rows}
    if f"trial {killed} goes back to the queue" in out["chief"]:  # it was still running
        assert "no word from w1" in out["chief"]
        assert f"trial {killed}: resuming from epoch" in out["w2"]
    history = records.read_json(run_dir / f"trial_{killed}" / "history.json")
    epochs = [e["epoch"] for e in history["epochs"]]
    assert epochs == sorted(set(epochs))  # no epoch recorded twice
    assert not list(run_dir.glob("trial_*/resume-epoch*.keras"))


def test_a_worker_with_other_settings_is_refused(search_run, data_dir):
    run_dir, args, _ = search_run
    changed = [a if a != "8,16" else "8,32" for a in SEARCH_ARGS]
    proc = run_module(
        "tuning.search", *args, *changed, "--role", "worker", "--oracle", "127.0.0.1:1",
        "--worker-id", "w9",
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "differ from the chief's run" in proc.stderr
    assert "space.filters: [8, 16] -> [8, 32]" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_worker_without_a_chief_gives_up_with_a_message(search_run):
    _, args, _ = search_run
    t0 = time.monotonic()
    proc = run_module(
        "tuning.search", *args, *SEARCH_ARGS, "--role", "worker", "--worker-id", "w9",
        "--oracle", f"127.0.0.1:{free_port()}", "--chief-timeout", "3",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "lost the chief at 127.0.0.1:" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert time.monotonic() - t0 < 90


@pytest.mark.slow  # 22 s; the strategy's flags and plan: the unit tests
def test_mirrored_strategy_over_two_logical_cpus(data_dir, tmp_path):
    proc = run_module(
        "tuning.search", "--data-dir", str(data_dir), "--directory", str(tmp_path),
        *SEARCH_ARGS, "--max-epochs", "2", "--factor", "2", "--blocks", "1", "--filters", "8",
        "--strategy", "mirrored", "--cpu-replicas", "2",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "MirroredStrategy, 2 replica(s) on /device:CPU:0, /device:CPU:1" in proc.stdout
    rows = records.read_trials_csv(tmp_path / "search" / "trials.csv")
    assert rows and all(r["status"] == "COMPLETED" for r in rows)


def test_cluster_from_flags_and_from_keras_tuner_variables():
    assert resolve_cluster(environ={}) == Cluster()
    c = resolve_cluster("worker", "10.0.0.5:8000", "gpu-1", environ={})
    assert (c.role, c.host, c.port, c.tuner_id) == ("worker", "10.0.0.5", 8000, "gpu-1")
    assert resolve_cluster("chief", "0.0.0.0:9000", environ={}).tuner_id == "chief"
    env = {
        "KERASTUNER_TUNER_ID": "tuner7",
        "KERASTUNER_ORACLE_IP": "10.1.1.1",
        "KERASTUNER_ORACLE_PORT": "8001",
    }
    c = resolve_cluster(environ=env)
    assert (c.role, c.address, c.worker_id) == ("worker", "10.1.1.1:8001", "tuner7")
    assert resolve_cluster(environ={**env, "KERASTUNER_TUNER_ID": "chief"}).role == "chief"
    with pytest.raises(UsageError, match="KERASTUNER_ORACLE_PORT and KERASTUNER_TUNER_ID"):
        resolve_cluster(environ={"KERASTUNER_ORACLE_IP": "x"})


@pytest.mark.parametrize(
    "args, message",
    [
        (["--role", "worker"], "--role worker needs --oracle HOST:PORT"),
        (["--role", "chief", "--oracle", "localhost"], "--oracle must be HOST:PORT"),
        (["--role", "chief", "--oracle", "h:99999"], "--oracle must be HOST:PORT"),
        (["--oracle", "h:1"], "--oracle and --worker-id need --role chief or --role worker"),
        (["--role", "worker", "--oracle", "h:1", "--worker-id", "chief2"], "without 'chief'"),
        (["--role", "worker", "--oracle", "h:1", "--worker-id", "a/b"], "plain name"),
        (["--role", "chief", "--oracle", "h:1", "--worker-id", "w"], "--worker-id is for"),
        (["--cpu-replicas", "2"], "--cpu-replicas needs --strategy mirrored"),
        (["--role", "worker", "--oracle", "h:1", "--overwrite"], "--overwrite is for the chief"),
    ],
)
def test_bad_cluster_flags_are_usage_errors(args, message, tmp_path):
    proc = run_module("tuning.search", "--directory", str(tmp_path), *args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not any(tmp_path.iterdir())


# 25 s; not covered in CI: a chief that reloads its state (a killed worker's resume is)
@pytest.mark.slow
def test_a_restarted_chief_resumes_and_its_worker_carries_on(data_dir, tmp_path):
    t0 = time.monotonic()
    args = common(data_dir, tmp_path, free_port())
    run_dir = tmp_path / "dist"
    chief = start(*args, "--role", "chief")
    w1 = start(*args, "--role", "worker", "--worker-id", "w1", "--chief-timeout", "60")
    done = 0
    while done < 2 and time.monotonic() < t0 + BOUND_S / 2:
        assert chief.poll() is None, chief.communicate()[0][-3000:]
        try:
            done = len(records.read_trials_csv(run_dir / "trials.csv"))
        except Exception:
            done = 0
        time.sleep(0.05)
    assert done >= 2, "the search did not get going"
    chief.send_signal(signal.SIGKILL)
    first = chief.communicate()[0]
    again = start(*args, "--role", "chief")
    out = finish({"chief": again, "w1": w1}, t0 + BOUND_S)
    assert again.returncode == 0, first[-1500:] + "\n----\n" + out["chief"][-3000:]
    assert w1.returncode == 0, out["w1"][-3000:]
    assert "(resume)" in out["chief"]
    assert_each_trial_once(run_dir)
