"""The balanced sampler: every network shape before any twice, reproducible, resumable."""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections import Counter

import keras_tuner
import pytest

from hypermodels.recipe import Recipe
from hypermodels.resnet import hp_values
from hypermodels.space import SearchSpace
from tuning.config import SearchConfig
from tuning.engine.oracle import AtomicHyperbandOracle
from tuning.engine.sampling import BalancedDesign, van_der_corput
from tuning.errors import UsageError
from tuning.kt_internals import Trial, draw_fresh
from tuning.rundir import folders as rundir

SHAPE = ("blocks", "filters", "skip")


def make_oracle(space: SearchSpace | None = None, seed: int = 0, sampler: str = "balanced"):
    hp = keras_tuner.HyperParameters()
    hp_values(hp, space or SearchSpace())
    return AtomicHyperbandOracle(
        "val_accuracy", max_epochs=9, factor=3, seed=seed + 1, sampler=sampler, hyperparameters=hp
    )


def shape(values: dict) -> tuple:
    return tuple(values[name] for name in SHAPE)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_every_shape_once_before_any_twice(seed):
    values = draw_fresh(make_oracle(seed=seed), 32)
    first, second = Counter(map(shape, values[:16])), Counter(map(shape, values[16:]))
    assert len(first) == 16 and set(first.values()) == {1}  # blocks 1-4 x filters 2 x skip 2
    assert first == second
    space = SearchSpace()
    assert all(space.lr_min <= v["learning_rate"] <= space.lr_max for v in values)


def test_a_shapes_two_learning_rates_lie_half_the_log_range_apart():
    values = draw_fresh(make_oracle(seed=5), 32)
    by_shape: dict[tuple, list[float]] = {}
    for v in values:
        by_shape.setdefault(shape(v), []).append(math.log10(v["learning_rate"]))
    decades = math.log10(SearchSpace().lr_max / SearchSpace().lr_min)
    for first, second in by_shape.values():
        gap = abs(first - second) / decades  # on the circle of the shifted sequence
        assert min(gap, 1 - gap) == pytest.approx(0.5, abs=1e-6)


def test_marginals_stay_uniform_over_seeds():
    """The first draw of many seeds: every shape, and both halves of the rate range."""
    firsts = [draw_fresh(make_oracle(seed=s), 1)[0] for s in range(400)]
    counts = Counter(map(shape, firsts))
    assert len(counts) == 16 and min(counts.values()) >= 10  # 25 expected of each
    low = sum(v["learning_rate"] < 1e-2 for v in firsts)  # the log-uniform median
    assert 150 < low < 250


def test_the_same_seed_draws_the_same_and_another_seed_differs():
    assert draw_fresh(make_oracle(seed=3), 20) == draw_fresh(make_oracle(seed=3), 20)
    assert draw_fresh(make_oracle(seed=3), 20) != draw_fresh(make_oracle(seed=4), 20)


def run_trials(oracle, n: int) -> list[dict]:
    """n trials through KerasTuner's own create/update/end calls, as the tuner makes them."""
    out = []
    with contextlib.redirect_stdout(io.StringIO()):  # KerasTuner's trial display
        for i in range(n):
            trial = oracle.create_trial(f"tuner{i}")
            out.append({k: v for k, v in trial.hyperparameters.values.items() if "/" not in k})
            oracle.update_trial(trial.trial_id, {"val_accuracy": 0.5 + 0.01 * i})
            trial.status = "COMPLETED"
            oracle.end_trial(trial)
        oracle.save()  # as the tuner's next request would
    return out


def on_disk(tmp_path, name: str, seed: int = 2):
    oracle = make_oracle(seed=seed)
    oracle._set_project_dir(str(tmp_path), name)
    return oracle


def test_a_resumed_oracle_continues_the_same_sequence(tmp_path):
    whole = run_trials(on_disk(tmp_path, "whole"), 9)  # bracket 2's first round
    run_trials(on_disk(tmp_path, "resumed"), 5)
    resumed = on_disk(tmp_path, "resumed")
    resumed.reload()  # oracle.json and the trial files, as a restarted search reads them
    assert run_trials(resumed, 4) == whole[5:]


def test_a_trial_file_the_oracle_never_recorded_does_not_shift_the_draws(tmp_path):
    """Killed between KerasTuner's trial.json and oracle.json writes: the resumed run draws
    what the uninterrupted one drew."""
    whole = run_trials(on_disk(tmp_path, "whole"), 7)
    killed = on_disk(tmp_path, "killed")
    run_trials(killed, 5)
    state = (tmp_path / "killed" / "oracle.json").read_bytes()
    run_trials(killed, 1)  # trial 0005 written ...
    (tmp_path / "killed" / "oracle.json").write_bytes(state)  # ... but not its oracle state
    resumed = on_disk(tmp_path, "killed")
    resumed.reload()
    assert "0005" in resumed.trials and "0005" not in resumed.start_order
    assert run_trials(resumed, 2) == whole[5:]


def test_continuations_do_not_count_as_new_samples():
    oracle = make_oracle(seed=0)
    (values,) = draw_fresh(oracle, 1)
    continued = Trial(oracle.hyperparameters.copy(), trial_id="0001")
    continued.hyperparameters.values.update({**values, "tuner/trial_id": "0000"})
    oracle.trials["0001"] = continued
    oracle.start_order.append("0001")
    design = BalancedDesign.of(oracle.hyperparameters.space)
    assert design.counts(oracle.sampled_configurations()) == {shape(values): 1}


def test_neighbouring_seeds_draw_different_sequences():
    """Draw k of seed s+1 must not be draw k+1 of seed s (a seed state that only counts up)."""
    first, second = draw_fresh(make_oracle(seed=0), 9), draw_fresh(make_oracle(seed=1), 9)
    shifted = sum(shape(a) == shape(b) for a, b in zip(first[1:], second, strict=False))
    assert shifted <= 4  # about 8/16 expected by chance; a shift would give all 8


def test_a_stepped_range_is_covered_before_the_space_runs_out():
    hp = keras_tuner.HyperParameters()
    hp.Float("rate", 0.0, 1.0, step=0.25)
    hp.Boolean("flag")
    oracle = AtomicHyperbandOracle("val_accuracy", max_epochs=9, factor=3, seed=1,
                                   hyperparameters=hp)  # fmt: skip
    values = draw_fresh(oracle, 12)
    assert len(values) == 10  # all 5 x 2 configurations, then exhausted
    assert len({(v["rate"], v["flag"]) for v in values}) == 10


def test_random_sampler_is_keras_tuners_draw():
    ours = draw_fresh(make_oracle(seed=6, sampler="random"), 12)
    hp = keras_tuner.HyperParameters()
    hp_values(hp, SearchSpace())
    plain = keras_tuner.oracles.HyperbandOracle(
        "val_accuracy", max_epochs=9, factor=3, seed=7, hyperparameters=hp
    )
    assert ours == draw_fresh(plain, 12)


def test_a_space_without_a_continuous_rate_is_exhausted_after_each_shape():
    space = SearchSpace(blocks_min=1, blocks_max=2, lr_min=0.01, lr_max=0.01)
    values = draw_fresh(make_oracle(space), 10)
    assert len(values) == 8 and len(set(map(shape, values))) == 8  # then None: exhausted


def test_balancing_applies_only_where_it_can():
    assert BalancedDesign.of(keras_tuner.HyperParameters().space) is None  # empty
    hp = keras_tuner.HyperParameters()
    hp.Float("lr", 1e-3, 1e-1, sampling="log")
    assert BalancedDesign.of(hp.space) is None  # nothing discrete to balance
    hp = keras_tuner.HyperParameters()
    kind = hp.Choice("kind", ["a", "b"])
    with hp.conditional_scope("kind", ["a"]):
        hp.Int("units", 1, 4)
    assert kind and BalancedDesign.of(hp.space) is None  # conditional: KerasTuner's draw
    hp = keras_tuner.HyperParameters()
    hp.Int("wide", 1, 10**12)
    assert BalancedDesign.of(hp.space) is None  # too many to enumerate, and never built


def test_van_der_corput():
    assert [van_der_corput(n) for n in range(6)] == [0, 0.5, 0.25, 0.75, 0.125, 0.625]


def test_the_sampler_is_part_of_the_definition():
    config = SearchConfig()
    assert config.sampler == "balanced"
    random_run = SearchConfig(sampler="random").definition({}, "float32")
    assert config.definition({}, "float32") != random_run
    with pytest.raises(UsageError, match="--sampler must be one of balanced, random"):
        SearchConfig(sampler="sobol")


def test_a_run_recorded_before_the_sampler_resumes_only_as_it_was(tmp_path):
    """run.json files from before --sampler and --bn-momentum: KerasTuner's draw, Keras' 0.99."""
    then = SearchConfig(sampler="random", recipe=Recipe(momentum=0.9, bn_momentum=0.99))
    old = then.definition({}, "float32")
    del old["sampler"], old["bn_momentum"]
    (tmp_path / rundir.RUN_FILE).write_text(json.dumps({"definition": old}))
    recorded = rundir.recorded_definition(tmp_path)
    assert recorded["sampler"] == "random" and recorded["bn_momentum"] == 0.99
    assert rundir.differences(recorded, then.definition({}, "float32")) == []
    diffs = rundir.differences(recorded, SearchConfig().definition({}, "float32"))
    assert diffs == ["bn_momentum: 0.99 -> 0.9", "sampler: 'random' -> 'balanced'"]
