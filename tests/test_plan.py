"""The Hyperband plan: exact bracket sizes and epochs, and agreement with KerasTuner."""

from __future__ import annotations

import pytest
from keras_tuner.oracles import HyperbandOracle

from tuning.plan import hyperband_plan, num_brackets


def test_plan_for_max_epochs_9_factor_3_by_hand():
    # brackets 2,1,0; sizes (9,3,1), (5,2), (3); epochs (1,3,9), (3,9), (9)
    plan = hyperband_plan(9, 3)
    got = [(r.bracket, r.round, r.trials, r.initial_epoch, r.epochs) for r in plan.rounds]
    assert got == [
        (2, 0, 9, 0, 1),
        (2, 1, 3, 1, 3),
        (2, 2, 1, 3, 9),
        (1, 0, 5, 0, 3),
        (1, 1, 2, 3, 9),
        (0, 0, 3, 0, 9),
    ]
    assert plan.trials == 23
    # 9*1 + 3*2 + 1*6  +  5*3 + 2*6  +  3*9
    assert plan.epochs == 21 + 27 + 27


def test_iterations_repeat_the_brackets():
    one, two = hyperband_plan(9, 3, 1), hyperband_plan(9, 3, 2)
    assert two.trials == 2 * one.trials and two.epochs == 2 * one.epochs


@pytest.mark.parametrize(
    "max_epochs, factor", [(1, 3), (2, 3), (3, 3), (9, 3), (10, 2), (27, 3), (50, 4)]
)
def test_plan_matches_keras_tuner_oracle(max_epochs, factor):
    oracle = HyperbandOracle(objective="val_accuracy", max_epochs=max_epochs, factor=factor)
    assert num_brackets(max_epochs, factor) == oracle._get_num_brackets()
    for r in hyperband_plan(max_epochs, factor).rounds:
        assert r.trials == oracle._get_size(r.bracket, r.round)
        assert r.epochs == oracle._get_epochs(r.bracket, r.round)


def test_plan_text_names_totals():
    text = hyperband_plan(3, 3).format(train_images=100)
    assert "total: 6 trials, 11 epochs of training (1,100 image passes)" in text


def test_flops_model_by_hand():
    from hypermodels import SearchSpace
    from tuning.machine.cost import forward_flops, mean_training_flops

    # lab network: stem 28*28*64*9 + 2 blocks * 2 convs * 14*14*64*64*9 + 7*7*64*256 + 2560 MACs
    macs = 28 * 28 * 64 * 9 + 2 * 2 * 14 * 14 * 64 * 64 * 9 + 7 * 7 * 64 * 256 + 2560
    assert forward_flops(2, 64) == 2 * macs
    space = SearchSpace(blocks_min=1, blocks_max=2, filters=(16, 32))
    grid = [forward_flops(b, f) for b in (1, 2) for f in (16, 32)]
    assert mean_training_flops(space) == pytest.approx(3 * sum(grid) / 4)


def test_estimate_is_epochs_times_flops_over_rate_plus_trial_start_up():
    from hypermodels import SearchSpace
    from tuning.machine.cost import Calibration, estimate_seconds, mean_training_flops

    space = SearchSpace(blocks_min=1, blocks_max=2, filters=(16, 32))
    measured = Calibration(flops_per_second=2e9, trial_start_s=1.5)
    # 11 epochs of 1,000 training images (3 passes' FLOPs each: forward + 2 backward) and
    # 300 validation images (forward only), plus 6 trials' start-up
    per_epoch = mean_training_flops(space) * (1000 + 300 / 3) / 2e9
    assert estimate_seconds(space, 11, 6, 1000, 300, measured) == pytest.approx(
        11 * per_epoch + 6 * 1.5
    )


class ScriptedClock:
    """``time`` for the calibration: each ``perf_counter()`` returns the next scripted time
    (it runs out, failing the test, if the calibration reads the clock more often)."""

    def __init__(self, times: list[float]) -> None:
        self.times = iter(times)

    def perf_counter(self) -> float:
        return next(self.times)


def test_calibration_turns_its_timestamps_into_a_rate_and_a_start_up(monkeypatch):
    """A real (tiny) training, timed by a scripted clock: started at 0, its five batches
    end at 2.0, 2.5, ... 4.0 (a steady 0.5 s step after a first one with 1.5 s of building
    and tracing) and validation ends at 5.0 (1 s: a third of a step's FLOPs plus its
    tracing)."""
    from hypermodels import SearchSpace
    from tuning.machine.cost import forward_flops
    from tuning.retrain.calibration import calibrate

    clock = ScriptedClock([0.0, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0])
    monkeypatch.setitem(calibrate.__globals__, "time", clock)
    space = SearchSpace(blocks_min=1, blocks_max=3, filters=(8, 16, 32))
    measured = calibrate(space, 16, "float32", steps=4)
    # the middle network (2 blocks x 16 filters): 3 forward passes per image per step
    assert measured.flops_per_second == pytest.approx(3 * forward_flops(2, 16) * 16 / 0.5)
    assert measured.trial_start_s == pytest.approx((2.0 - 0.5) + (5.0 - 4.0 - 0.5 / 3))
    assert next(clock.times, None) is None  # every timestamp was taken
