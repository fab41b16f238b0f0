"""Hardening (issue 16): edited and damaged files, pruned and deleted trials, diverged
finalizes, limits, file modes and a full disk. Each test failed before the fix."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import SEARCH_ARGS, run_module

from tuning.errors import ProjectError
from tuning.rundir import records


def _copy_run(search_run, tmp_path: Path, name: str = "run") -> Path:
    run_dir = tmp_path / name
    shutil.copytree(search_run[0], run_dir)
    shutil.rmtree(run_dir / "final", ignore_errors=True)  # other tests finalize the shared run
    return run_dir


def _rerun(run_dir: Path, search_run, *extra: str):
    args = ["--data-dir", search_run[1][1], "--directory", str(run_dir.parent),
            "--project-name", run_dir.name, *SEARCH_ARGS, *extra]  # fmt: skip
    return run_module("tuning.search", *args)


def _one_line_error(proc, code: int = 1) -> str:
    assert proc.returncode == code, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, proc.stderr[-2000:]
    return errors[0]


# -- result files edited by a person or a spreadsheet -----------------------------------
@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.replace(",True,", ",TRUE,", 1), "'TRUE' is not True or False"),
        (lambda t: t.replace(",COMPLETED,", ",completed,", 1), "status 'completed'"),
        (lambda t: t.replace("lineage_epochs,", "", 1), "missing column(s) lineage_epochs"),
        (lambda t: t[: len(t) // 2], "wrong number of cells"),
        (lambda t: t.replace(",1,", ",1.0,", 1), "is not an integer"),
    ],
)
def test_edited_trials_csv_is_refused_in_one_line_never_guessed(
    search_run, tmp_path, edit, message
):
    run_dir = _copy_run(search_run, tmp_path)
    path = run_dir / "trials.csv"
    path.write_text(edit(path.read_text()))
    with pytest.raises(ProjectError, match="trials.csv is unreadable"):
        records.read_trials_csv(path)
    proc = run_module("tuning.finalize", "--run-dir", str(run_dir), "--epochs", "1")
    assert message in _one_line_error(proc)
    assert not (run_dir / "final").exists()


def test_a_spreadsheets_byte_order_mark_reads_the_same(search_run, tmp_path):
    run_dir = _copy_run(search_run, tmp_path)
    path = run_dir / "trials.csv"
    before = records.read_trials_csv(path)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert records.read_trials_csv(path) == before


def test_an_emptied_lineage_cell_names_the_trial_not_the_flags(search_run, tmp_path):
    run_dir = _copy_run(search_run, tmp_path)
    rows = records.read_trials_csv(run_dir / "trials.csv")
    best = records.best_row(rows)
    best["lineage_epochs"] = None
    records.write_trials_csv(run_dir / "trials.csv", rows)
    proc = run_module("tuning.finalize", "--run-dir", str(run_dir))
    line = _one_line_error(proc)
    assert f"trial {best['trial_id']} has no lineage_epochs" in line
    assert "--hyperparameters" not in line


# -- state files damaged in other ways --------------------------------------------------
def test_misshapen_oracle_state_is_a_clear_error(search_run, tmp_path):
    """The command's one line; every content: tests/test_reliability.py."""
    run_dir = _copy_run(search_run, tmp_path)
    (run_dir / "oracle.json").write_text("{}")
    line = _one_line_error(_rerun(run_dir, search_run))
    assert "oracle.json is damaged" in line and "--overwrite" not in line


def test_a_garbled_tuner_file_is_rewritten_and_the_run_resumes(search_run, tmp_path):
    run_dir = _copy_run(search_run, tmp_path)
    (run_dir / "tuner0.json").write_text("{garbled")
    proc = _rerun(run_dir, search_run)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "tuner0.json was damaged; rewritten" in proc.stdout
    assert "already complete" in proc.stdout
    assert json.loads((run_dir / "tuner0.json").read_text()) == {}


# -- finished, pruned and deleted trials --------------------------------------------------
# a finished pruned search reruns nothing: tests/test_kill_points.py
# damaged and deleted trials are re-run: tests/test_reliability.py


# -- a diverged finalize, and valid JSON --------------------------------------------------
def test_a_diverged_finalize_stops_before_the_test_set(data_dir, tmp_path, monkeypatch):
    from tuning.config import FinalizeConfig, RetrainOptions
    from tuning.retrain import finalizer as final

    def no_test_set(*args, **kwargs):
        raise AssertionError("the test set was read")

    monkeypatch.setattr(final, "load_arrays", no_test_set)
    hp = {"blocks": 1, "filters": 8, "skip": False, "learning_rate": 1e9}
    options = RetrainOptions(data_dir=str(data_dir), subset=200, batch_size=64, augment=())
    config = FinalizeConfig(tmp_path / "run", hyperparameters=hp, epochs=1, options=options,
                            schedule="constant", lr_scale=1.0, max_lr=1e9, min_lr=0.0,
                            verbose=0)  # fmt: skip
    with pytest.raises(ProjectError, match=r"training diverged \(loss nan in epoch 1\)"):
        final.run_finalize(config)
    assert not (tmp_path / "run" / "final").exists()


def test_every_json_we_write_is_valid_json(tmp_path):
    records.atomic_write_json(tmp_path / "a.json", {"x": math.nan, "y": [1.0, math.inf]})
    assert json.loads((tmp_path / "a.json").read_text(), parse_constant=None) == {
        "x": None,
        "y": [1.0, None],
    }


def test_result_files_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        records.atomic_write_text(tmp_path / "f.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == records.FILE_MODE


# -- one set of limits for every command --------------------------------------------------
@pytest.mark.parametrize(
    "argv, message",
    [
        (["--blocks", "1:65"], "at most 64"),
        (["--filters", "8,2048"], "at most 1024"),
        (["--seed", str(2**32)], "--seed must be in 0..4294967295"),
    ],
)
def test_the_search_refuses_what_finalize_would_refuse(argv, message, tmp_path):
    proc = run_module("tuning.search", "--directory", str(tmp_path), *argv)
    assert message in _one_line_error(proc, 2)
    assert not any(tmp_path.iterdir())


# -- a full disk ----------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 24 MB tmpfs (root only; skipped where mounting is not allowed)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)],
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or proc.returncode})")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_stops_in_one_line_and_resumes_once_space_is_back(search_run, small_disk):
    filler = small_disk / "filler"
    free = shutil.disk_usage(small_disk).free
    with open(filler, "wb") as fh:  # leave ~1.5 MB: the first trials fit, the rest do not
        fh.truncate(0)
        fh.write(b"\0" * max(0, free - 1_500_000))
    args = ["--data-dir", search_run[1][1], "--directory", str(small_disk), "--project-name", "r"]
    full = run_module("tuning.search", *args, *SEARCH_ARGS)
    line = _one_line_error(full)
    assert "out of disk space" in line and "run the same command again" in line
    filler.unlink()
    again = run_module("tuning.search", *args, *SEARCH_ARGS)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    rows = records.read_trials_csv(small_disk / "r" / "trials.csv")
    assert len(rows) == 6 and all(r["status"] == "COMPLETED" for r in rows)


# -- memory ---------------------------------------------------------------------------------
def test_the_memory_estimate_counts_the_real_networks_weights():
    from hypermodels import build_resnet
    from tuning.machine.memory import parameters, training_bytes

    assert parameters(2, 64) == build_resnet(2, 64).count_params() == 955018
    assert training_bytes(2, 64, 512) > training_bytes(2, 64, 256) > training_bytes(1, 64, 256)


def test_a_network_too_large_for_memory_is_refused_before_anything_is_written(data_dir, tmp_path):
    args = ["--data-dir", str(data_dir), "--directory", str(tmp_path), "--subset", "300",
            "--blocks", "64", "--filters", "1024"]  # fmt: skip
    line = _one_line_error(run_module("tuning.search", *args))
    assert "needs about" in line and "GiB to train" in line and "--batch-size" in line
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "content",
    ["[]", pytest.param('{"data": {}}', marks=pytest.mark.slow)],  # 10 s each
)
def test_a_run_json_of_the_wrong_shape_is_one_line(search_run, tmp_path, content):
    run_dir = _copy_run(search_run, tmp_path)
    (run_dir / "run.json").write_text(content)
    line = _one_line_error(run_module("tuning.finalize", "--run-dir", str(run_dir)))
    assert "run.json is damaged" in line
    line = _one_line_error(_rerun(run_dir, search_run))
    assert "run.json is damaged" in line and f"mv {run_dir} {run_dir}.damaged" in line
    assert "--overwrite" not in line  # it would delete the finished trials


def test_the_memory_check_counts_the_batch_there_can_be(monkeypatch):
    """--batch-size 100000 on 625 images trains batches of 625 (issue 25.6)."""
    from tuning.machine import memory

    monkeypatch.setattr(memory, "available_bytes", lambda: 8 * 2**30)
    with pytest.raises(ProjectError, match=r"batch 100000\) needs about"):
        memory.check_fits(2, 64, 100_000, "the network")
    assert memory.check_fits(2, 64, 100_000, "the network", images=625) is None
    with pytest.raises(ProjectError, match=r"batch 20000\) needs about"):
        memory.check_fits(2, 64, 100_000, "the network", images=20_000)


def _fake_machine(tmp_path, cgroup: str, mounts: list[str], limits: dict[str, str]):
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "meminfo").write_text("MemTotal: 24683792 kB\nMemAvailable: 23068672 kB\n")  # 22 GiB
    (proc / "self" / "cgroup").write_text(cgroup)
    (proc / "self" / "mountinfo").write_text("".join(
        f"{30 + i} 23 0:{28 + i} {m.replace('ROOT', str(tmp_path))}\n" for i, m in enumerate(mounts)
    ))  # fmt: skip
    for path, value in limits.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(value + "\n")
    return proc


V1_UNLIMITED = "9223372036854771712"


@pytest.mark.parametrize(
    "cgroup, mounts, limits, expected",
    [
        # cgroup v1 (this project's machine): the limit is on the process's own cgroup
        ("4:memory:/process_api/abc\n0::/\n",
         ["/ ROOT/cg/memory rw - cgroup cgroup rw,memory",
          "/ ROOT/cg/unified rw - cgroup2 cgroup2 rw"],
         {"cg/memory/memory.limit_in_bytes": V1_UNLIMITED,
          "cg/memory/process_api/memory.limit_in_bytes": V1_UNLIMITED,
          "cg/memory/process_api/abc/memory.limit_in_bytes": "5000000000"}, 5_000_000_000),
        # cgroup v2: the tightest of the process's cgroup and those above it
        ("0::/user.slice/app\n",
         ["/ ROOT/cg rw - cgroup2 cgroup2 rw"],
         {"cg/user.slice/app/memory.max": "max", "cg/user.slice/memory.max": "3000000000"},
         3_000_000_000),
        # a container without a cgroup namespace: its own cgroup is the mount's root
        ("0::/docker/c1\n",
         ["/docker/c1 ROOT/cg rw - cgroup2 cgroup2 rw"],
         {"cg/memory.max": "2000000000"}, 2_000_000_000),
        # no limit anywhere: MemAvailable
        ("4:memory:/a\n0::/b\n",
         ["/ ROOT/cg/memory rw - cgroup cgroup rw,memory", "/ ROOT/cg/u rw - cgroup2 cgroup2 rw"],
         {"cg/memory/a/memory.limit_in_bytes": V1_UNLIMITED, "cg/u/b/memory.max": "max"},
         22 * 2**30),
    ],
)  # fmt: skip
def test_the_memory_limit_is_read_from_the_processs_own_cgroups(
    tmp_path, cgroup, mounts, limits, expected
):
    from tuning.machine.memory import available_bytes

    proc = _fake_machine(tmp_path, cgroup, mounts, limits)
    assert available_bytes(proc, tmp_path / "nowhere") == expected


def test_without_mountinfo_the_usual_cgroup_folders_are_read(tmp_path):
    from tuning.machine.memory import available_bytes

    proc = _fake_machine(tmp_path, "4:memory:/x\n", [], {"cg/memory/x/memory.limit_in_bytes": "7"})
    (proc / "self" / "mountinfo").unlink()
    assert available_bytes(proc, tmp_path / "cg") == 7


def test_a_batch_larger_than_the_data_trains_from_the_command_line(data_dir, tmp_path):
    """Refused as needing tens of GiB before; here also --precision mixed_float16."""
    hp = json.dumps({"blocks": 1, "filters": 8, "skip": True, "learning_rate": 0.05})
    proc = run_module(
        "tuning.ablate", "--run-dir", str(tmp_path / "run"), "--data-dir", str(data_dir),
        "--hyperparameters", hp, "--epochs", "1", "--seeds", "1", "--subset", "200",
        "--batch-size", "100000", "--precision", "mixed_float16",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "2 trainings to run" in proc.stdout and "needs about" not in proc.stdout
    meta = records.read_json(tmp_path / "run" / "ablation" / "ablation.json")
    assert meta["definition"]["precision"] == "mixed_float16"
