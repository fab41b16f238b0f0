"""Crash safety, resume, damaged trials, failed trials, reproducibility, pruning."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import SEARCH_ARGS, popen_module, run_module

from tuning.config import SearchConfig
from tuning.errors import ProjectError
from tuning.rundir import records

HP_COLUMNS = ("trial_id", "blocks", "filters", "skip", "learning_rate", "bracket", "round",
              "parent_trial_id", "initial_epoch", "target_epochs")  # fmt: skip


def _hp_table(run_dir: Path) -> list[tuple]:
    rows = records.read_trials_csv(run_dir / "trials.csv")
    return [tuple(r[c] for c in HP_COLUMNS) for r in rows]


def _popen_search(args: list[str]) -> subprocess.Popen:
    return popen_module("tuning.search", *args)


# A SIGKILL at each boundary of a run, mid-trial included, and a Ctrl-C mid-epoch:
# tests/test_kill_points.py.


def test_damaged_trials_are_rerun_and_reported(search_run, tmp_path):
    """Every way a finished trial can be damaged, in one rerun: its best checkpoint (a
    continuation loads it), trial.json, history.json, the whole folder. Each is re-run with
    the hyperparameters and epochs it had, and the run ends as the undamaged one."""
    reference, args, _ = search_run
    run_dir = tmp_path / "tiny"
    shutil.copytree(reference, run_dir, ignore=shutil.ignore_patterns("final*"))
    rows = {r["trial_id"]: r for r in records.read_trials_csv(run_dir / "trials.csv")}
    checkpoint = run_dir / "trial_0001" / "checkpoint.weights.h5"  # 0003 continues 0001
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    (run_dir / "trial_0002" / "trial.json").write_text('{"trial_id": "0002", "hyperpa')
    (run_dir / "trial_0004" / "history.json").write_text("{garbled")
    shutil.rmtree(run_dir / "trial_0000")
    proc = run_module("tuning.search", *[a if a != str(reference.parent) else str(tmp_path)
                                         for a in args], *SEARCH_ARGS)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    for trial_id, reason in [
        ("0000", "its folder or trial.json is missing"),
        ("0001", "its best-epoch checkpoint is damaged"),
        ("0002", "its trial.json is unreadable"),
        ("0004", "its history.json is unreadable"),
    ]:
        assert f"trial {trial_id}: {reason}; it will be re-run" in proc.stdout
    after = {r["trial_id"]: r for r in records.read_trials_csv(run_dir / "trials.csv")}
    assert len(after) == 6 and all(r["status"] == "COMPLETED" for r in after.values())
    assert _hp_table(run_dir) == _hp_table(reference)
    for trial_id in ("0000", "0004"):  # rebuilt from history.json or trials.csv
        assert after[trial_id]["epochs_trained"] == rows[trial_id]["epochs_trained"] > 0


@pytest.mark.parametrize("content, problem", [("{broken", "unreadable"), ("{}", "damaged"),
                                              ("[]", "damaged")])  # fmt: skip
def test_unreadable_oracle_state_is_a_clear_error(tmp_path, content, problem):
    from tuning.rundir.repair import repair_run

    (tmp_path / "oracle.json").write_text(content)
    with pytest.raises(ProjectError, match=f"oracle.json is {problem}"):
        repair_run(tmp_path)
    # the command's one line: tests/test_hardening.py (test_misshapen_oracle_state_...)


def _tiny_config(tmp_path, data_dir, name, **kw) -> SearchConfig:
    from hypermodels import SearchSpace

    space = SearchSpace(blocks_min=1, blocks_max=1, filters=(8,), lr_min=1e-2, lr_max=1e-1)
    base = dict(space=space, data_dir=str(data_dir), directory=str(tmp_path), project_name=name)
    base.update(max_epochs=1, hyperband_iterations=4, batch_size=64, subset=200, verbose=0,
                confirm_top=0)  # these tests are about the trials  # fmt: skip
    return SearchConfig(**{**base, **kw})


# The middle of _tiny_config's log-uniform range 0.01-0.1: the balanced sampler gives each of
# its two shapes (skip on, off) one rate below it and one above, so the four trials always
# hold failures and successes, whatever the seed.
NAN_ABOVE = math.sqrt(0.01 * 0.1)


@pytest.fixture
def nan_for_high_learning_rates(monkeypatch):
    """Networks with a learning rate above NAN_ABOVE get a loss that is NaN from the first
    batch."""
    import keras

    from hypermodels import resnet

    original = resnet.ResNetHyperModel.build

    def build(self, hp):
        model = original(self, hp)
        if hp.values["learning_rate"] > NAN_ABOVE:
            model.compile(optimizer="sgd", loss=lambda y, p: keras.ops.mean(p) * np.nan)
        return model

    monkeypatch.setattr(resnet.ResNetHyperModel, "build", build)


def test_nan_trials_fail_with_a_reason_and_the_search_goes_on(
    data_dir, tmp_path, nan_for_high_learning_rates, capsys
):
    from tuning.engine import run_search

    rows = run_search(_tiny_config(tmp_path, data_dir, "nan", max_consecutive_failures=4))
    failed = [r for r in rows if r["status"] == "FAILED"]
    done = [r for r in rows if r["status"] == "COMPLETED"]
    assert len(rows) == 4 and failed and done
    assert all(r["learning_rate"] > NAN_ABOVE for r in failed)
    assert all(r["learning_rate"] <= NAN_ABOVE for r in done)
    assert len(failed) == len(done) == 2
    assert all(r["message"] == "loss became nan in epoch 1 batch 1" for r in failed)
    out = capsys.readouterr().out
    assert "FAILED: loss became nan in epoch 1 batch 1" in out
    assert f"failed {failed[0]['trial_id']}: loss became nan" in out
    # TensorBoard holds the failure too
    event_dir = tmp_path / "nan" / "tensorboard" / failed[0]["trial_id"] / "execution0"
    assert b"loss became nan" in b"".join(p.read_bytes() for p in event_dir.glob("events*"))


def test_consecutive_failures_stop_with_a_clear_message(data_dir, tmp_path, monkeypatch):
    import keras_tuner

    from hypermodels import SearchSpace
    from tuning.config import FinalizeConfig
    from tuning.engine import run_search
    from tuning.retrain.finalizer import run_finalize

    def fit(self, hp, model, *args, **kwargs):
        raise keras_tuner.errors.FailedTrialError("always broken")

    monkeypatch.setattr("hypermodels.resnet.ResNetHyperModel.fit", fit, raising=False)
    config = _tiny_config(tmp_path, data_dir, "bad", space=SearchSpace(1, 1, (8,), "on", 0.01, 0.1))
    with pytest.raises(ProjectError, match="search stopped: .*consecutive.*trials.csv"):
        run_search(config)
    rows = records.read_trials_csv(tmp_path / "bad" / "trials.csv")
    assert [r["status"] for r in rows] == ["FAILED"] * 3
    # a finalize has nothing to take (a fake run's: tests/test_cli_errors.py)
    with pytest.raises(ProjectError, match="no successfully completed trial"):
        run_finalize(FinalizeConfig(tmp_path / "bad"))


def test_same_seed_same_hyperparameters_and_deterministic_scores(data_dir, tmp_path):
    """--deterministic as a user runs it: two fresh processes, the same scores to the last
    bit (at mixed_bfloat16 here: each precision value runs fresh somewhere in the suite)."""
    args = ["--data-dir", str(data_dir), "--directory", str(tmp_path), "--subset", "200",
            "--max-epochs", "1", "--hyperband-iterations", "2", "--blocks", "1", "--filters", "8",
            "--learning-rate", "1e-2:1e-1", "--batch-size", "64", "--verbose", "0",
            "--confirm-top", "0", "--deterministic", "--precision", "mixed_bfloat16"]  # fmt: skip
    procs = [popen_module("tuning.search", *args, "--project-name", n) for n in ("a", "b")]
    for proc in procs:  # side by side: determinism does not depend on what else runs
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    a, b = (records.read_trials_csv(tmp_path / n / "trials.csv") for n in ("a", "b"))
    keys = ("trial_id", "blocks", "filters", "skip", "learning_rate", "val_accuracy", "val_loss")
    assert len(a) == 2 and [[r[k] for k in keys] for r in a] == [[r[k] for k in keys] for r in b]
    run = json.loads((tmp_path / "a" / "run.json").read_text())
    assert run["definition"]["seed"] == 0 and run["definition"]["deterministic"] is True
    assert run["definition"]["precision"] == "mixed_bfloat16"
    assert {"tensorflow", "keras", "keras_tuner", "numpy"} <= set(run["versions"])


def test_another_seed_draws_other_hyperparameters():
    from tuning.engine.oracle import AtomicHyperbandOracle
    from tuning.kt_internals import draw_fresh

    def draws(seed: int) -> list[float]:
        import keras_tuner

        oracle = AtomicHyperbandOracle("val_accuracy", max_epochs=1, factor=3, seed=seed + 1)
        hp = keras_tuner.HyperParameters()
        hp.Float("learning_rate", 1e-2, 1e-1, sampling="log")
        oracle.hyperparameters = hp
        return [v["learning_rate"] for v in draw_fresh(oracle, 4)]

    assert draws(0) == draws(0) and draws(0) != draws(1)


# --prune-checkpoints: the kill chain of tests/test_kill_points.py runs with it.


def test_checkpoints_needed_follows_hyperband_rounds():
    from tuning.engine.oracle import AtomicHyperbandOracle

    oracle = AtomicHyperbandOracle("val_accuracy", max_epochs=9, factor=3)
    # bracket 2: round 0 has 9 trials, round 1 (size 3) has selected 0000 only so far
    oracle._brackets = [
        {
            "bracket_num": 2,
            "rounds": [
                [{"past_id": None, "id": f"{i:04d}"} for i in range(9)],
                [{"past_id": "0000", "id": "0009"}],
                [],
            ],
        }
    ]
    needed = oracle.checkpoints_needed()
    assert needed == {f"{i:04d}" for i in range(1, 9)} | {"0009"}


def _fit_with_resume_checkpoint(
    trial_dir: Path, stop=None, epochs: int = 3, every_s: float = 0.0
) -> None:
    import keras

    from tuning.rundir.resume import ResumeCheckpoint

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.zeros((8, 4), "float32")
    cb = ResumeCheckpoint(trial_dir, stop, every_s)
    model.fit(x, np.zeros((8, 2), "float32"), epochs=epochs, verbose=0, callbacks=[cb])


def test_resume_checkpoint_keeps_the_newest_epoch_but_skips_the_last(tmp_path):
    from tuning.rundir.resume import resume_files

    _fit_with_resume_checkpoint(tmp_path, epochs=3)
    # Epoch 1's file was replaced by epoch 2's; the last epoch is recorded by the trial.
    assert [k for k, _ in resume_files(tmp_path)] == [2]


def test_resume_checkpoints_wait_for_their_interval_but_not_on_ctrl_c(tmp_path):
    from tuning.rundir.resume import GracefulStop, SearchInterrupted, resume_files

    _fit_with_resume_checkpoint(tmp_path, epochs=3, every_s=3600.0)
    assert resume_files(tmp_path) == []  # three short epochs: no save due yet
    stop = GracefulStop()
    stop.requested = True
    with pytest.raises(SearchInterrupted, match="stopped after epoch 1"):
        _fit_with_resume_checkpoint(tmp_path, stop, epochs=3, every_s=3600.0)
    assert [k for k, _ in resume_files(tmp_path)] == [1]


def test_ctrl_c_in_the_last_epoch_still_saves_it(tmp_path):
    from tuning.rundir.resume import GracefulStop, SearchInterrupted, resume_files

    stop = GracefulStop()
    stop.requested = True
    with pytest.raises(SearchInterrupted, match="stopped after epoch 1"):
        _fit_with_resume_checkpoint(tmp_path, stop, epochs=1)
    assert [k for k, _ in resume_files(tmp_path)] == [1]
