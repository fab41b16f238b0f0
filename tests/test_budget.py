"""--time-budget: a plan sized to the budget, a search that stops when it is used up."""

from __future__ import annotations

import dataclasses
import time

from conftest import run_module

from tuning.config import SearchConfig
from tuning.engine.budget import ladder, planned_seconds, size_to_budget
from tuning.machine.cost import Calibration
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


def test_a_used_up_budget_stops_the_search_and_a_larger_one_continues_it(
    data_dir, tmp_path, monkeypatch
):
    """The deadline is made to pass after the first trial (deterministic on any machine)."""
    from hypermodels import SearchSpace
    from tuning.config import FinalizeConfig, RetrainOptions
    from tuning.engine import budget
    from tuning.engine import driver as search
    from tuning.engine.tuner import ResNetHyperband
    from tuning.retrain.finalizer import run_finalize

    space = SearchSpace(1, 2, (8, 16), "both", 1e-3, 1e-1)
    config = SearchConfig(space=space, data_dir=str(data_dir), directory=str(tmp_path),
                          project_name="b", subset=300, batch_size=64, verbose=0,
                          confirm_top=2, confirm_seeds=1, time_budget_min=60.0)  # fmt: skip
    three_epochs = lambda c, *a: (dataclasses.replace(c, max_epochs=3), 1.0)  # noqa: E731
    monkeypatch.setattr(search, "size_to_budget", three_epochs)
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
    rows = search.run_search(config)
    # stopped before the second trial trained (KerasTuner had created it: it resumes)
    assert [r["status"] for r in rows] in (["COMPLETED"], ["COMPLETED", "RUNNING"])
    best = records.read_json(tmp_path / "b" / "best.json")
    assert "confirmation" not in best  # the stage did not run: Hyperband's best stands
    report = run_finalize(FinalizeConfig(tmp_path / "b", epochs=1, verbose=0,
                                         options=RetrainOptions(augment=())))  # fmt: skip
    assert 0 <= report["test_accuracy"] <= 1  # the finalizer works on what was found
    monkeypatch.undo()
    rows = search.run_search(dataclasses.replace(config, time_budget_min=600.0))
    assert len(rows) == 6 and all(r["status"] == "COMPLETED" for r in rows)
    assert "confirmation" in records.read_json(tmp_path / "b" / "best.json")


def test_a_budget_bounds_the_wall_time_of_a_real_search(data_dir, tmp_path):
    args = ["--data-dir", str(data_dir), "--directory", str(tmp_path), "--project-name", "b",
            "--subset", "2000", "--blocks", "1:2", "--filters", "8,16", "--batch-size", "64",
            "--verbose", "0", "--time-budget", "0.3"]  # fmt: skip
    t0 = time.monotonic()
    proc = run_module("tuning.search", *args)
    wall = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "time budget 0.3 min: plan sized to 1 Hyperband iteration(s), max_epochs=" in proc.stdout
    assert "Traceback" not in proc.stderr
    # counted from the command's start; an epoch and the process's exit may come after it
    assert wall < 0.3 * 60 + 30, wall
