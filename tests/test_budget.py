"""--time-budget: a plan sized to the budget, a search that stops when it is used up."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import run_module

from tuning.config import SearchConfig
from tuning.engine.budget import ladder, planned_seconds, size_to_budget
from tuning.machine.cost import Calibration, estimate_seconds
from tuning.rundir import records

CAL = Calibration(flops_per_second=50e9, trial_start_s=1.0)


def rung(config: SearchConfig) -> tuple[int, int, int]:
    return config.hyperband_iterations, config.max_epochs, config.trial_images


def test_the_plan_is_the_most_thorough_that_fits():
    config = SearchConfig(time_budget_min=10_000.0)
    rungs = ladder(config.hyperband_iterations)
    default = SearchConfig()
    assert rungs[0] == rung(default)  # a large budget: the default plan
    sized, seconds = size_to_budget(config, CAL, 48000, 12000)
    assert rung(sized) == rungs[0]
    costs = [planned_seconds(SearchConfig(hyperband_iterations=n, max_epochs=e, trial_images=i),
                             CAL, 48000, 12000) for n, e, i in rungs]  # fmt: skip
    assert costs == sorted(costs, reverse=True)  # each rung is cheaper than the one above
    for step, cost in zip(rungs[1:], costs[1:], strict=True):
        budget = SearchConfig(time_budget_min=cost / 60 * 1.01)
        sized, seconds = size_to_budget(budget, CAL, 48000, 12000)
        assert rung(sized) == step and seconds <= cost * 1.01
    tiny = size_to_budget(SearchConfig(time_budget_min=0.01), CAL, 48000, 12000)[0]
    assert rung(tiny) == rungs[-1]  # nothing fits: the smallest


def test_more_iterations_are_tried_before_fewer_epochs():
    assert ladder(2)[:3] == [(2, 9, 12000), (1, 9, 12000), (1, 9, 6000)]
    config = SearchConfig(hyperband_iterations=2)
    two = planned_seconds(config, CAL, 48000, 12000)
    one = planned_seconds(SearchConfig(), CAL, 48000, 12000)
    sized, _ = size_to_budget(dataclasses.replace(config, time_budget_min=(one + two) / 2 / 60),
                              CAL, 48000, 12000)  # fmt: skip
    assert rung(sized) == (1, 9, 12000)  # two iterations do not fit, one does


def test_the_confirmation_is_priced_too():
    with_stage = SearchConfig(confirm_top=3, confirm_seeds=2)
    without = SearchConfig(confirm_top=0)
    assert planned_seconds(with_stage, CAL, 48000, 12000) > planned_seconds(
        without, CAL, 48000, 12000
    )


def test_the_confirmation_is_priced_as_its_candidates_and_images_train():
    """--confirm-candidates both: up to twice the candidates; --confirm-images 48000 after
    12,000-image trials: a quarter of the epochs, rounded up (3 x 2 trainings of 5 epochs)."""
    args = (CAL, 48000, 12000)
    trials = planned_seconds(SearchConfig(confirm_top=0), *args)
    top = planned_seconds(SearchConfig(), *args) - trials
    both = planned_seconds(SearchConfig(confirm_candidates="both"), *args) - trials
    assert both == pytest.approx(2 * top)
    on_all = planned_seconds(SearchConfig(confirm_images=48000), *args) - trials
    space = SearchConfig().space
    assert on_all == pytest.approx(estimate_seconds(space, 6 * 5, 6, 48000, 12000, CAL))
    assert top == pytest.approx(estimate_seconds(space, 6 * 18, 6, 12000, 12000, CAL))


# 18 s; a budget that stops a search and a larger one that resumes it, in CI: the last test
@pytest.mark.slow
def test_a_used_up_budget_stops_the_search_and_a_larger_one_continues_it(
    data_dir, tmp_path, monkeypatch
):
    """The deadline is made to pass after the first trial (deterministic on any machine)."""
    from hypermodels import SearchSpace
    from tuning.config import FinalizeConfig, RetrainOptions
    from tuning.engine import budget, driver
    from tuning.engine.tuner import ResNetHyperband
    from tuning.retrain.finalizer import run_finalize

    space = SearchSpace(1, 2, (8, 16), "both", 1e-3, 1e-1)
    config = SearchConfig(space=space, data_dir=str(data_dir), directory=str(tmp_path),
                          project_name="b", subset=300, batch_size=64, verbose=0,
                          confirm_top=2, confirm_seeds=1, time_budget_min=60.0)  # fmt: skip
    three_epochs = lambda c, *a: (dataclasses.replace(c, max_epochs=3), 1.0)  # noqa: E731
    monkeypatch.setattr(driver, "size_to_budget", three_epochs)
    deadlines = []
    enter, trial_end = budget.Deadline.__enter__, ResNetHyperband.on_trial_end

    def entered(self):
        deadlines.append(self)
        return enter(self)

    def ended(self, trial):
        trial_end(self, trial)
        if not deadlines[-1].expired:
            deadlines[-1].expire()

    monkeypatch.setattr(budget.Deadline, "__enter__", entered)
    monkeypatch.setattr(ResNetHyperband, "on_trial_end", ended)
    rows = driver.run_search(config)
    # stopped before the second trial trained (KerasTuner had created it: it resumes)
    assert [r["status"] for r in rows] in (["COMPLETED"], ["COMPLETED", "RUNNING"])
    best = records.read_json(tmp_path / "b" / "best.json")
    assert "confirmation" not in best  # the stage did not run: Hyperband's best stands
    report = run_finalize(FinalizeConfig(tmp_path / "b", epochs=1, verbose=0,
                                         options=RetrainOptions(augment=())))  # fmt: skip
    # the finalizer works on what was found: the one completed trial
    assert report["chosen_from"]["trial_id"] == rows[0]["trial_id"]
    assert report["hyperparameters"] == {k: rows[0][k] for k in records.HP_NAMES}
    monkeypatch.undo()
    rows = driver.run_search(dataclasses.replace(config, time_budget_min=600.0))
    assert len(rows) == 6 and all(r["status"] == "COMPLETED" for r in rows)
    assert "confirmation" in records.read_json(tmp_path / "b" / "best.json")


class FixedClock:
    """``time`` for ``tuning.engine.budget``: the monotonic clock stands still at ``now``."""

    def __init__(self, now: float) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now


def test_the_deadline_counts_from_the_commands_start(monkeypatch):
    """What is left is the budget less the time since the command started (not since the
    trials started); a budget already used up stops the search at once."""
    from tuning.engine import budget
    from tuning.rundir.resume import GracefulStop

    monkeypatch.setattr(budget, "time", FixedClock(1000.0))
    stop = GracefulStop()
    with budget.Deadline(1.0, stop, started=970.0) as deadline:  # 30 s spent on set-up
        assert deadline._timer.interval == 30.0 and not deadline.expired
    assert not stop.requested
    with budget.Deadline(0.5, stop, started=900.0) as deadline:  # 100 s spent: none left
        assert deadline._timer.interval == 0.0
        deadline._timer.join(timeout=60)
        assert deadline.expired and stop.requested
    with budget.Deadline(None, GracefulStop(), started=0.0) as deadline:  # no budget
        assert deadline._timer is None


def test_a_budget_used_up_before_the_first_trial_stops_and_a_larger_one_continues(
    data_dir, tmp_path
):
    """Fresh processes, as a user runs them; no wall-clock bound (a busy machine would
    break it): 0.01 min is used up by the set-up on any machine, so nothing trains, the
    smallest plan is recorded, and a larger budget continues that plan."""
    args = ["--data-dir", str(data_dir), "--directory", str(tmp_path), "--project-name", "b",
            "--subset", "300", "--blocks", "1:2", "--filters", "8,16", "--batch-size", "64",
            "--verbose", "0", "--confirm-top", "0", "--precision", "mixed_bfloat16",
            "--time-budget"]  # fmt: skip
    used_up = run_module("tuning.search", *args, "0.01")
    assert used_up.returncode == 0, used_up.stderr[-3000:]
    smallest = ladder(1)[-1]
    sized = (f"time budget 0.01 min: plan sized to 1 Hyperband iteration(s), "
             f"max_epochs={smallest[1]}, {smallest[2]:,} images per trial")  # fmt: skip
    assert sized in used_up.stdout
    assert "time budget used: 0 of 1 trials finished" in used_up.stdout
    assert "Traceback" not in used_up.stderr
    more = run_module("tuning.search", *args, "60")
    assert more.returncode == 0, more.stderr[-3000:]
    assert "continuing the plan recorded in run.json (max_epochs=1)" in more.stdout
    rows = records.read_trials_csv(tmp_path / "b" / "trials.csv")
    assert [(r["trial_id"], r["status"]) for r in rows] == [("0000", "COMPLETED")]
    assert records.read_json(tmp_path / "b" / "run.json")["definition"]["precision"] == (
        "mixed_bfloat16"
    )
