"""A tiny real-data search and finalize through the CLIs, as a user runs them."""

from __future__ import annotations

import json
import math
import re
import signal
import sys
from pathlib import Path

import pytest
from conftest import SEARCH_ARGS, run_module

from tuning.config import (
    DEFAULT_EPOCHS_FACTOR,
    DEFAULT_FINAL_AUGMENT,
    DEFAULT_FINAL_WEIGHT_DECAY,
)
from tuning.plan import hyperband_plan
from tuning.rundir import records


def test_search_prints_plan_and_next_step(search_run):
    run_dir, _, proc = search_run
    assert "total: 6 trials, 11 epochs of training" in proc.stdout
    assert f"tensorboard --logdir {run_dir / 'tensorboard'}" in proc.stdout
    assert "next: python -m tuning.finalize --run-dir" in proc.stdout
    searched = json.loads((run_dir / "best.json").read_text())["hyperparameters"]["learning_rate"]
    peak = min(max(4 * searched, 0.05), 0.1)  # what the finalizer's defaults make of it
    assert f"finalize's learning rate for the pick: warm-up to {peak:.4g} (" in proc.stdout
    assert "[trial 6 of 6]" in proc.stdout
    estimate = r"estimated wall time: about \d+ s .* s start-up per trial measured"
    assert re.search(estimate, proc.stdout)
    # --precision auto (SEARCH_ARGS's default) is recorded as what it chose, not "auto"
    from tuning.machine.precision import resolve

    run = json.loads((run_dir / "run.json").read_text())
    assert run["definition"]["precision"] == resolve("auto") != "auto"


def test_trials_csv_matches_the_trials(search_run):
    run_dir, _, _ = search_run
    rows = records.read_trials_csv(run_dir / "trials.csv")
    trial_dirs = sorted(p.name for p in run_dir.glob("trial_*"))
    assert [f"trial_{r['trial_id']}" for r in rows] == trial_dirs
    assert len(rows) == hyperband_plan(3, 3).trials
    assert all(r["status"] == "COMPLETED" for r in rows)
    for r in rows:
        assert 1 <= r["blocks"] <= 2 and r["filters"] in (8, 16)
        assert 1e-3 <= r["learning_rate"] <= 1e-1
        assert r["epochs_trained"] == r["target_epochs"] - r["initial_epoch"]
        assert r["initial_epoch"] < r["best_epoch"] <= r["target_epochs"]
        assert 0.0 <= r["val_accuracy"] <= 1.0 and r["seconds"] > 0
        history = json.loads((run_dir / f"trial_{r['trial_id']}" / "history.json").read_text())
        best = max(e["val_accuracy"] for e in history["epochs"])
        assert r["val_accuracy"] == pytest.approx(best, abs=1e-6)
    # the one continuation trial of bracket 1 picks up its parent's lineage
    (child,) = [r for r in rows if r["parent_trial_id"]]
    parent = next(r for r in rows if r["trial_id"] == child["parent_trial_id"])
    assert child["initial_epoch"] == 1 and child["target_epochs"] == 3
    assert child["lineage_epochs"] == parent["lineage_epochs"] + child["best_epoch"] - 1
    best = json.loads((run_dir / "best.json").read_text())
    assert best["val_accuracy"] == max(r["val_accuracy"] for r in rows)
    assert set(best["hyperparameters"]) == {"blocks", "filters", "skip", "learning_rate"}


def _hparams_sessions(logdir: Path) -> dict[str, dict]:
    """trial id -> hparams written by the HParams plugin, read back from event files."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import plugin_data_pb2

    sessions = {}
    for event_file in logdir.glob("*/execution0/events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name != "hparams":
                    continue
                data = plugin_data_pb2.HParamsPluginData.FromString(
                    value.metadata.plugin_data.content
                )
                if data.HasField("session_start_info"):
                    info = data.session_start_info
                    sessions[event_file.parent.parent.name] = {
                        k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind"))
                        for k, v in info.hparams.items()
                    }
    return sessions


def test_tensorboard_has_scalars_and_hparams_for_every_trial(search_run):
    run_dir, _, _ = search_run
    logdir = run_dir / "tensorboard"
    rows = records.read_trials_csv(run_dir / "trials.csv")
    sessions = _hparams_sessions(logdir)
    assert set(sessions) == {r["trial_id"] for r in rows}
    for r in rows:
        hp = sessions[r["trial_id"]]
        assert hp["blocks"] == r["blocks"] and hp["filters"] == r["filters"]
        assert hp["skip"] == r["skip"]
        assert hp["learning_rate"] == pytest.approx(r["learning_rate"], rel=1e-5)
        assert list((logdir / r["trial_id"] / "execution0" / "validation").glob("events*"))
    assert list(logdir.glob("events.out.tfevents.*")), "the experiment config is missing"


def test_rerun_reports_complete_and_changes_nothing(search_run):
    run_dir, args, _ = search_run
    before = (run_dir / "trials.csv").read_text()
    proc = run_module("tuning.search", *args, *SEARCH_ARGS)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "already complete" in proc.stdout
    assert (run_dir / "trials.csv").read_text() == before


def test_rerun_with_another_definition_is_refused(search_run):
    run_dir, args, _ = search_run
    before = (run_dir / "trials.csv").read_text()
    changed = [a if a != "8,16" else "8,32" for a in SEARCH_ARGS]
    proc = run_module("tuning.search", *args, *changed)
    assert proc.returncode == 2
    assert "different definition" in proc.stderr and "space.filters" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert (run_dir / "trials.csv").read_text() == before


@pytest.fixture(scope="module")
def finalized(search_run):
    """A finalize killed (kill -9) during its save, final.partial/ complete but not yet
    renamed to final/ (fault point staged.commit), then the same command again."""
    run_dir, _, _ = search_run
    args = ["--run-dir", str(run_dir), "--verbose", "0"]
    killed = run_module("tuning.finalize", *args, kill_at="staged.commit")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not (run_dir / "final").exists()
    partial = json.loads((run_dir / "final.partial" / "report.json").read_text())
    proc = run_module("tuning.finalize", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir / "final", proc, partial


def test_a_finalize_killed_during_its_save_gives_the_same_result_again(finalized):
    final, proc, killed = finalized
    assert f"stale: deleting {final.with_name('final.partial')}" in proc.stdout
    report = json.loads((final / "report.json").read_text())
    # the same seed: the same training (without --deterministic, equal up to rounding)
    assert report["test_accuracy"] == pytest.approx(killed["test_accuracy"], abs=0.01)
    assert sorted(p.name for p in final.iterdir()) == [
        "model.keras", "report.json", "report.md", "tensorboard"
    ]  # fmt: skip


def test_finalize_writes_model_and_reports(finalized, search_run):
    final, proc, _ = finalized
    run_dir = search_run[0]
    report = json.loads((final / "report.json").read_text())
    best = json.loads((run_dir / "best.json").read_text())
    assert report["hyperparameters"] == best["hyperparameters"]
    assert report["epochs"] == math.ceil(DEFAULT_EPOCHS_FACTOR * best["lineage_epochs"])
    assert report["tta"] == "flip"  # --tta auto: the network trained with flips
    assert "flip TTA" in proc.stdout.splitlines()[-2]
    assert report["augment"] == list(DEFAULT_FINAL_AUGMENT)
    assert report["weight_decay"] == DEFAULT_FINAL_WEIGHT_DECAY > 0  # the search had none
    assert report["schedule"].startswith("1-epoch")
    searched = best["hyperparameters"]["learning_rate"]  # default --lr-scale 4, --min-lr 0.05,
    # --max-lr 0.1
    assert report["peak_learning_rate"] == pytest.approx(min(max(4 * searched, 0.05), 0.1))
    assert report["chosen_from"]["trial_id"] == best["trial_id"]
    assert report["train_on"] == "train+valid"
    assert report["sizes"] == {"train": 375, "valid": 0, "test": 10000}
    assert report["seed"] == 7
    run = json.loads((run_dir / "run.json").read_text())
    assert report["precision"] == run["definition"]["precision"]  # the search's precision
    assert len(report["per_class_accuracy"]) == 10
    matrix = report["confusion_matrix"]
    assert [sum(row) for row in matrix] == [1000] * 10
    assert sum(matrix[i][i] for i in range(10)) / 10000 == pytest.approx(report["test_accuracy"])
    assert {"load_s", "train_s", "eval_s", "total_s"} <= set(report["timings"])
    assert {"tensorflow", "keras", "keras_tuner"} <= set(report["versions"])
    assert "Test accuracy" in (final / "report.md").read_text()
    assert list((final / "tensorboard" / "train").glob("events*"))
    # the saved model is plain Keras: no augmentation layers
    import keras

    model = keras.models.load_model(final / "model.keras")
    assert not any(layer.name.startswith("aug") for layer in model.layers)
    assert not (run_dir / "final.partial").exists()
    assert f"test accuracy {report['test_accuracy']:.4f}" in proc.stdout


def test_saved_model_reproduces_the_test_accuracy_in_a_fresh_process(finalized, data_dir, tmp_path):
    final, _, _ = finalized
    report = json.loads((final / "report.json").read_text())
    script = tmp_path / "check.py"
    script.write_text(
        "import sys, keras, numpy as np\n"
        "from tuning.data import load_arrays\n"
        "x, y, _ = load_arrays(sys.argv[2], 'test')\n"
        "assert x.dtype == np.uint8 and x.shape == (10000, 28, 28)\n"
        "model = keras.models.load_model(sys.argv[1])\n"
        "probs = model.predict(x, batch_size=1000, verbose=0).astype(np.float64)\n"
        "print(f'ACC {np.mean(probs.argmax(axis=1) == y):.6f}')\n"
        # flip TTA, averaged in float64 as finalize does (float32 can break a near-tie)
        "mirror = model.predict(x[:, :, ::-1], batch_size=1000, verbose=0).astype(np.float64)\n"
        "print(f'FLIP {np.mean(((probs + mirror) / 2).argmax(axis=1) == y):.6f}')\n"
    )
    import subprocess

    proc = subprocess.run(
        [sys.executable, str(script), str(final / "model.keras"), str(data_dir)],
        capture_output=True, text=True, timeout=300,
        env={**__import__("os").environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    acc = float(proc.stdout.split("ACC ")[1].split()[0])
    flip = float(proc.stdout.split("FLIP ")[1])
    if report["tta"] == "flip":  # the default: the headline is the two views' mean
        assert flip == pytest.approx(report["test_accuracy"], abs=1e-6)
        assert acc == pytest.approx(report["test_accuracy_single_view"], abs=1e-6)
    else:
        assert acc == pytest.approx(report["test_accuracy"], abs=1e-6)


def test_finalize_refuses_to_overwrite_final(finalized, search_run):
    final, _, _ = finalized
    before = (final / "report.json").read_bytes()
    from tuning.cli import run_cli
    from tuning.finalize import main

    assert run_cli("finalize", main, ["--run-dir", str(search_run[0])]) == 2
    assert (final / "report.json").read_bytes() == before
