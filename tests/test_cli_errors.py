"""Bad input: one line on stderr, exit 2 for usage errors (1 otherwise), nothing written."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, module_env, run_module

from tuning import finalize, search
from tuning.cli import run_cli


def call(module, argv, capsys):
    code = run_cli(module.__name__, module.main, argv)
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--blocks", "4:1"], "blocks range 4:1"),
        (["--blocks", "0:2"], "blocks range 0:2"),
        (["--blocks", "two"], "--blocks must look like"),
        (["--filters", ""], "--filters needs at least one value"),
        (["--filters", "16,-8"], "filters must be positive"),
        (["--learning-rate", "0:0.1"], "learning-rate range"),
        (["--learning-rate", "0.1:0.01"], "learning-rate range"),
        (["--learning-rate", "-1"], "learning-rate range"),
        (["--factor", "1"], "--factor must be at least 2"),
        (["--max-epochs", "0"], "--max-epochs must be at least 1"),
        (["--batch-size", "0"], "--batch-size must be positive"),
        (["--momentum", "1.5"], "--momentum must be in"),
        (["--subset", "0"], "--subset must be positive"),
        (["--resume-every", "-1"], "--resume-every must be a number of seconds"),
        (["--project-name", "a/b"], "plain folder name"),
        (["--sampler", "sobol"], "--sampler: invalid choice: 'sobol'"),
        (["--bn-momentum", "1"], "--bn-momentum must be in [0, 1)"),
    ],
)
def test_search_usage_errors(argv, message, capsys, tmp_path):
    code, err = call(search, [*argv, "--directory", str(tmp_path)], capsys)
    assert code == 2
    assert message in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_unknown_flag_exits_2_with_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        search.main(["--no-such-flag"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --no-such-flag" in err and err.count("\n") == 1


def test_missing_data_dir(capsys, tmp_path):
    code, err = call(
        search, ["--data-dir", str(tmp_path / "none"), "--directory", str(tmp_path)], capsys
    )
    assert code == 2 and "does not exist" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("subset, message", [(10, "too small"), (50000, "larger than")])
def test_bad_subset_on_real_data(subset, message, data_dir, capsys, tmp_path):
    code, err = call(
        search,
        ["--data-dir", str(data_dir), "--subset", str(subset), "--directory", str(tmp_path)],
        capsys,
    )
    assert code == 2 and message in err
    assert list(tmp_path.iterdir()) == []


def _damage_missing(path):
    path.unlink()


def _damage_truncated(path):
    data = path.resolve().read_bytes()
    path.unlink()
    path.write_bytes(data[: len(data) // 2])


def _damage_corrupt(path):
    path.unlink()
    path.write_bytes(b"\x1f\x8b garbage")


def _damage_checksum(path):
    from conftest import write_idx

    path.unlink()
    write_idx(path, np.tile(np.arange(10), 6000), 2049)


def _damage_shape(path):
    from conftest import write_idx

    path.unlink()
    write_idx(path, np.zeros(50000), 2049)


@pytest.mark.parametrize(
    "damage, message",
    [
        (_damage_missing, "missing data file"),
        (_damage_truncated, "corrupt or truncated"),
        (_damage_corrupt, "corrupt or truncated"),
        (_damage_checksum, "fails its checksum"),
        (_damage_shape, "holds shape (50000,), expected (60000,)"),
    ],
)
def test_bad_data_exits_1_and_writes_nothing(damage, message, data_dir, tmp_path, capsys):
    bad = tmp_path / "data"
    bad.mkdir()
    for f in data_dir.glob("*.gz"):
        (bad / f.name).symlink_to(f)
    damage(bad / "train-labels-idx1-ubyte.gz")
    code, err = call(
        search, ["--data-dir", str(bad), "--directory", str(tmp_path / "runs")], capsys
    )
    assert code == 1 and message in err and "train-labels-idx1-ubyte.gz" in err
    assert err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_unwritable_run_directory(data_dir, tmp_path, capsys):
    import os

    if os.geteuid() == 0:
        target = "/proc/runs"  # not writable even for root
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = str(locked / "runs")
    code, err = call(
        search, ["--data-dir", str(data_dir), "--subset", "100", "--directory", target], capsys
    )
    assert code == 1 and "not writable" in err


def test_foreign_directory_is_not_overwritten(data_dir, tmp_path, capsys):
    (tmp_path / "search").mkdir()
    (tmp_path / "search" / "notes.txt").write_text("mine")
    code, err = call(
        search,
        ["--data-dir", str(data_dir), "--subset", "100", "--directory", str(tmp_path)],
        capsys,
    )
    assert code == 2 and "not a search run" in err
    assert (tmp_path / "search" / "notes.txt").read_text() == "mine"


@pytest.fixture
def fake_run(tmp_path):
    """A run folder with a trials.csv (one completed, one failed trial); no training needed."""
    from tuning.rundir import records

    run = tmp_path / "run"
    base = {"blocks": 1, "filters": 8, "skip": True, "learning_rate": 0.01, "initial_epoch": 0}
    rows = [
        {**base, "trial_id": "0000", "status": "COMPLETED", "best_epoch": 2, "lineage_epochs": 2,
         "val_accuracy": 0.5},
        {**base, "trial_id": "0001", "status": "FAILED", "message": "loss became nan"},
    ]  # fmt: skip
    records.write_trials_csv(run / "trials.csv", rows)
    return run


def hp_json(**changes) -> str:
    return json.dumps({"blocks": 2, "filters": 64, "skip": True, "learning_rate": 0.1, **changes})


@pytest.mark.parametrize(
    "extra, code, message",
    [
        (["--trial", "0042"], 2, "--trial 0042 is not in"),
        (["--trial", "0001"], 1, "did not complete (FAILED)"),
        (["--hyperparameters", "{not json"], 2, "not valid JSON"),
        (["--hyperparameters", "[1, 2]"], 2, "must be a JSON object"),
        (["--hyperparameters", '{"blocks": 2}', "--epochs", "1"], 2, "missing filters, skip"),
        (["--hyperparameters", hp_json(dropout=0.5), "--epochs", "1"], 2, "unknown dropout"),
        (["--hyperparameters", hp_json(blocks=0), "--epochs", "1"], 2, "blocks must"),
        (["--hyperparameters", hp_json(filters=2.5), "--epochs", "1"], 2, "filters must"),
        (["--hyperparameters", hp_json(skip="yes"), "--epochs", "1"], 2, "skip must"),
        (["--hyperparameters", hp_json(learning_rate=-1), "--epochs", "1"], 2, "learning_rate"),
        (["--hyperparameters", hp_json()], 2, "--epochs is required"),
        (["--epochs", "0"], 2, "--epochs must be at least 1"),
        (["--trial", "0000", "--hyperparameters", "{}"], 2, "not both"),
        (["--train-on", "valid"], 2, "invalid choice"),
    ],
)  # fmt: skip
def test_finalize_bad_input(fake_run, extra, code, message, capsys):
    before = sorted(p.name for p in fake_run.iterdir())
    got, err = call(finalize, ["--run-dir", str(fake_run), *extra], capsys)
    assert got == code and message in err, err
    assert err.count("\n") == 1
    assert sorted(p.name for p in fake_run.iterdir()) == before


def test_a_refused_finalize_answers_before_importing_tensorflow(fake_run):
    """Every check that needs no TensorFlow comes before its import (seconds): a fresh
    process refusing a failed trial, a final/ it would replace, an unknown trial or flip
    TTA for a network trained without flips never loads it."""
    (fake_run / "final").mkdir()  # not ours: refused without --overwrite
    code = ("import sys\n"
            "from tuning import finalize\n"
            "from tuning.cli import run_cli\n"
            "for argv in sys.argv[1:]:\n"
            "    print(run_cli('finalize', finalize.main, argv.split()), flush=True)\n"
            "print('tensorflow' in sys.modules)\n")  # fmt: skip
    run, other = f"--run-dir {fake_run}", fake_run.parent / "other"
    hp = '{"blocks":1,"filters":8,"skip":true,"learning_rate":0.01}'  # one word: no spaces
    proc = subprocess.run(
        [sys.executable, "-c", code, f"{run} --trial 0001", run, f"{run} --trial 0042",
         f"--run-dir {other} --hyperparameters {hp} --epochs 1 --augment none --tta flip"],
        cwd=ROOT, env=module_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.stdout.split() == ["1", "2", "2", "2", "False"], proc.stdout + proc.stderr[-2000:]
    assert "did not complete (FAILED)" in proc.stderr and "final already exists" in proc.stderr
    assert "never saw" in proc.stderr and not (other / "final").exists()


def test_finalize_missing_and_empty_runs(tmp_path, capsys):
    code, err = call(finalize, ["--run-dir", str(tmp_path / "nothing")], capsys)
    assert code == 1 and "does not exist" in err
    (tmp_path / "empty").mkdir()
    code, err = call(finalize, ["--run-dir", str(tmp_path / "empty")], capsys)
    assert code == 1 and "trials.csv does not exist" in err


def test_finalize_run_without_success(fake_run, capsys):
    from tuning.rundir import records

    rows = records.read_trials_csv(fake_run / "trials.csv")
    rows[0]["status"] = "FAILED"
    records.write_trials_csv(fake_run / "trials.csv", rows)
    code, err = call(finalize, ["--run-dir", str(fake_run)], capsys)
    assert code == 1 and "no successfully completed trial" in err


def test_module_entry_point_exit_code(tmp_path):
    proc = run_module("tuning.search", "--blocks", "4:1", "--directory", str(tmp_path))
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith("python -m tuning.search: error: blocks range 4:1")
    )
    assert "Traceback" not in proc.stderr


def test_each_command_without_flags_gives_its_default_config():
    """The flags reach the config by name (``cli.config_from_args``): with none given, each
    command's config is the dataclass's own default, so no flag's default drifts apart."""
    from tuning import ablate, finalize, search
    from tuning.config import AblationConfig, FinalizeConfig, SearchConfig

    assert search.config_from_args(search.build_parser().parse_args([])) == SearchConfig()
    assert finalize.config_from_args(finalize.build_parser().parse_args([])) == FinalizeConfig()
    assert ablate.config_from_args(ablate.build_parser().parse_args([])) == AblationConfig()
    given = finalize.build_parser().parse_args(["--min-lr", "0.02", "--tta", "none"])
    assert finalize.config_from_args(given) == FinalizeConfig(min_lr=0.02, tta="none")


# -- a reader that goes away (issue 25.5): stop as on Ctrl-C, quietly, exit 141 ----------
def test_a_search_whose_reader_goes_away_stops_after_the_epoch_quietly(data_dir, tmp_path):
    """`python -m tuning.search ... --verbose 1 | head -1`, the pipe closed mid-trial."""
    from conftest import SEARCH_ARGS, popen_module

    proc = popen_module(
        "tuning.search", "--data-dir", str(data_dir), "--directory", str(tmp_path),
        *SEARCH_ARGS, "--precision", "float32", "--verbose", "1", "--resume-every", "3600",
    )  # fmt: skip
    for line in proc.stdout:
        if line.startswith("[trial 1 of"):
            break
    proc.stdout.close()  # the reader goes away during the first trial's epoch
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == 141, err[-3000:]
    assert err == ""  # no traceback, no "Exception ignored", nothing
    trial = tmp_path / "search" / "trial_0000"
    assert [p.name for p in trial.glob("resume-epoch*.keras")] == ["resume-epoch1.keras"]
    assert json.loads((trial / "trial.json").read_text())["status"] == "RUNNING"  # resumes


@pytest.mark.parametrize("module", ["tuning.finalize", "tuning.ablate", "tuning.report"])
def test_the_other_commands_stop_quietly_when_their_reader_is_gone(module, search_run, tmp_path):
    import shutil
    import signal
    import subprocess
    import sys

    from conftest import ROOT, module_env

    run_dir = tmp_path / "run"
    shutil.copytree(search_run[0], run_dir, ignore=shutil.ignore_patterns("final*"))
    extra = {"tuning.finalize": ["--epochs", "1"], "tuning.ablate": ["--epochs", "1"]}
    env = {**module_env(), "PYTHONUNBUFFERED": ""}  # block-buffered, as in a real pipe
    ignore_ctrl_c = lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)  # noqa: E731
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "--run-dir", str(run_dir), *extra.get(module, [])],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=ignore_ctrl_c,  # as a shell starts a job in the background (`... &`)
    )  # fmt: skip
    proc.stdout.close()  # gone before the first line
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == 141, err[-3000:]
    assert err == ""
    # stopped at its first line: nothing trained
    assert not (run_dir / "final").exists() and not (run_dir / "ablation" / "runs.csv").exists()
