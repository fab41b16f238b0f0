"""--trial-schedule budget: each trial warms up and decays to 0 over its own epochs, a
continued trial over the epochs it adds, and a trial killed mid-epoch resumes on its
schedule (the optimizer's step count comes back with its checkpoint). After such trials the
searched rate is a peak: the confirmation and the finalizer train at it, unscaled."""

from __future__ import annotations

import json
import math
import signal

import pytest
from conftest import SEARCH_ARGS, run_module

from hypermodels.trial_schedule import TrialSchedule, budget_steps
from tuning.config import FinalizeConfig, SearchConfig, confirm_recipe_text, final_schedule
from tuning.errors import UsageError


def test_steps_of_a_fresh_and_a_continued_trial():
    schedule = TrialSchedule("budget", steps_per_epoch=47)
    assert schedule.steps({"tuner/epochs": 1, "tuner/initial_epoch": 0}) == (47, 5)
    assert schedule.steps({"tuner/epochs": 9, "tuner/initial_epoch": 3}) == (282, 29)
    assert schedule.steps({"learning_rate": 0.01}) is None  # a build check: no epochs
    assert TrialSchedule("constant", 47).steps({"tuner/epochs": 9}) is None
    assert budget_steps(1, 1) == (1, 1)
    with pytest.raises(ValueError, match="trial schedule must be one of constant, budget"):
        TrialSchedule("cosine")


def test_the_definition_names_the_schedule_only_when_it_is_not_constant():
    default = SearchConfig().definition({}, "float32")
    assert "trial_schedule" not in default  # as runs made before the option recorded it
    budget = SearchConfig(trial_schedule="budget").definition({}, "float32")
    assert budget["trial_schedule"] == "budget"
    with pytest.raises(UsageError, match="--trial-schedule must be one of constant, budget"):
        SearchConfig(trial_schedule="linear")


def test_after_budgeted_trials_the_searched_rate_is_the_peak():
    final = FinalizeConfig()
    assert final.schedule_for("budget").peak(0.003) == (0.003, "0.003")  # no floor
    assert final.schedule_for("budget").peak(0.1)[0] == 0.1  # no cap below the space's top
    assert final.schedule_for("constant").peak(0.003)[0] == 0.05  # today's rule unchanged
    assert final.lr_schedule == final.schedule_for("constant")
    given = FinalizeConfig(max_lr=0.02, lr_scale=2.0)  # a flag given wins over either rule
    assert given.schedule_for("budget").peak(0.03)[0] == 0.02
    assert given.schedule_for("budget").peak(0.005)[0] == 0.01
    assert final_schedule("budget").peak(0.004)[0] == 0.004
    assert final_schedule("constant").peak(0.004)[0] == 0.05
    assert "from the searched rate;" in confirm_recipe_text("budget")
    assert "4 x the searched rate, at least 0.05" in confirm_recipe_text("constant")


def test_a_budgeted_trial_warms_up_then_decays_to_zero():
    import keras_tuner

    from hypermodels.resnet import ResNetHyperModel
    from hypermodels.space import SearchSpace

    space = SearchSpace(1, 1, (8,), "on", 0.05, 0.05)
    model_of = ResNetHyperModel(space, trial_schedule=TrialSchedule("budget", 10))
    hp = keras_tuner.HyperParameters()
    hp.values.update({"tuner/epochs": 3, "tuner/initial_epoch": 1})  # 2 epochs: 20 steps
    optimizer = model_of.build(hp).optimizer
    rates = []
    for step in (0, 2, 11, 20):
        optimizer.iterations.assign(step)
        rates.append(float(optimizer.learning_rate))
    assert rates[0] == 0.0 and math.isclose(rates[1], 0.05, rel_tol=1e-5)  # 2 warm-up steps
    assert 0.0 < rates[2] < 0.05 and rates[3] == pytest.approx(0.0, abs=1e-9)
    constant = ResNetHyperModel(space).build(hp).optimizer
    assert math.isclose(float(constant.learning_rate), 0.05, rel_tol=1e-6)


@pytest.mark.slow  # 50 s; kills and resumes of a run: test_kill_points in CI
def test_a_budgeted_search_killed_inside_a_continued_trial_resumes_on_its_schedule(
    data_dir, tmp_path
):
    """... and then confirms and finalizes at the searched rate itself."""
    command = ["--data-dir", str(data_dir), "--directory", str(tmp_path), "--project-name",
               "b", *SEARCH_ARGS, "--trial-schedule", "budget", "--resume-every", "0"]  # fmt: skip
    # SEARCH_ARGS's plan: 0000-0002 train 1 epoch (5 batches each), 0003 continues 0001 for
    # 2 epochs (batches 16-25): batch 23 is in its second epoch, its first saved.
    killed = run_module("tuning.search", *command, kill_at="trial.batch:23")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    resumed = run_module("tuning.search", *command)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "trial 0003: resuming from epoch 2" in resumed.stdout
    run_dir = tmp_path / "b"
    assert json.loads((run_dir / "run.json").read_text())["definition"]["trial_schedule"] == (
        "budget"
    )
    for trial_dir in sorted(run_dir.glob("trial_*")):
        history = json.loads((trial_dir / "history.json").read_text())
        values, epochs = history["values"], history["epochs"]
        assert [e["epoch"] for e in epochs] == list(
            range(values["tuner/initial_epoch"] + 1, values["tuner/epochs"] + 1)
        )
        # every trial ends its schedule at 0, the resumed one included: had its step count
        # restarted, its last epoch would end half-way down the decay
        assert epochs[-1]["lr_at_end"] == pytest.approx(0.0, abs=1e-9), trial_dir.name
        if len(epochs) > 1:
            assert 0.0 < epochs[0]["lr_at_end"] < values["learning_rate"]

    # the same run given a confirmation (not part of its definition), then finalized
    confirmed = run_module("tuning.search", *command, "--confirm-top", "2", "--confirm-seeds", "1")
    assert confirmed.returncode == 0, confirmed.stderr[-3000:]
    assert confirm_recipe_text("budget") in confirmed.stdout
    confirm_rows = (run_dir / "confirm.csv").read_text().splitlines()
    header = confirm_rows[0].split(",")
    for line in confirm_rows[1:]:
        row = dict(zip(header, line.split(","), strict=True))
        assert float(row["peak_learning_rate"]) == pytest.approx(float(row["learning_rate"]))
    best = json.loads((run_dir / "best.json").read_text())
    assert best["confirmation"]["recipe"] == confirm_recipe_text("budget")
    final = run_module("tuning.finalize", "--run-dir", str(run_dir), "--data-dir",
                       str(data_dir), "--epochs", "1", "--verbose", "0")  # fmt: skip
    assert final.returncode == 0, final.stderr[-3000:]
    assert "under an older recipe" not in final.stdout
    report = json.loads((run_dir / "final" / "report.json").read_text())
    searched = best["hyperparameters"]["learning_rate"]
    assert report["peak_learning_rate"] == pytest.approx(searched)
    assert (report["lr_scale"], report["min_lr"]) == (1.0, 0.0)
