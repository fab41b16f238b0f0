"""``--precision auto``: the decision from injected timings, the per-machine cache, and
one real measurement (slow)."""

from __future__ import annotations

import json

import pytest

from tuning.errors import UsageError
from tuning.machine import precision
from tuning.machine import timing as precision_timing

F32, BF16, F16 = "float32", "mixed_bfloat16", "mixed_float16"


@pytest.fixture
def machine(monkeypatch):
    """A CPU with bfloat16 instructions and no GPU; nothing here imports TensorFlow."""
    state = {"cpu": "Test CPU 9000", "tensorflow": "2.99.0", "gpus": []}
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    monkeypatch.setattr(precision, "cpu_model", lambda: state["cpu"])
    monkeypatch.setattr(precision, "cpu_cores", lambda: 8)
    monkeypatch.setattr(precision, "tensorflow_version", lambda: state["tensorflow"])
    monkeypatch.setattr(precision, "gpu_names", lambda: state["gpus"])
    return state


class Timings:
    """An injected measurement: fixed images/s per policy, counting its calls."""

    def __init__(self, rates: dict[str, float]):
        self.rates = rates
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, cands: tuple[str, ...]) -> dict[str, float]:
        self.calls.append(cands)
        return {c: self.rates[c] for c in cands if c in self.rates}


def test_faster_bfloat16_is_chosen(machine, tmp_path):
    choice = precision.choose(
        "auto", measure=Timings({F32: 1000.0, BF16: 1600.0}), cache_dir=tmp_path
    )
    assert choice.policy == BF16
    assert choice.ratio() == pytest.approx(1.6)
    assert choice.describe() == "mixed_bfloat16 (auto: 1.60x float32 measured)"
    assert choice.to_json() == {
        "policy": BF16,
        "requested": "auto",
        "rates": {F32: 1000.0, BF16: 1600.0},
        "ratio": 1.6,
        "cached": False,
    }


def test_slower_bfloat16_keeps_float32(machine, tmp_path):
    # Intel Xeons with AVX512-BF16 but no AMX: the flag is there, the speed is not.
    choice = precision.choose(
        "auto", measure=Timings({F32: 1000.0, BF16: 660.0}), cache_dir=tmp_path
    )
    assert choice.policy == F32
    assert choice.describe() == "float32 (auto: bfloat16 0.66x float32)"


def test_a_gain_within_the_margin_keeps_float32(machine, tmp_path):
    assert precision.MIN_SPEEDUP == 1.10
    small = Timings({F32: 1000.0, BF16: 1050.0})
    choice = precision.choose("auto", measure=small, cache_dir=tmp_path / "a")
    assert choice.policy == F32
    assert choice.describe() == "float32 (auto: bfloat16 1.05x float32, under the 1.10x margin)"
    enough = Timings({F32: 1000.0, BF16: 1100.0})
    assert precision.choose("auto", measure=enough, cache_dir=tmp_path / "b").policy == BF16


def test_the_verdict_is_cached_per_machine(machine, tmp_path):
    timings = Timings({F32: 1000.0, BF16: 1600.0})
    first = precision.choose("auto", measure=timings, cache_dir=tmp_path)
    second = precision.choose("auto", measure=timings, cache_dir=tmp_path)
    assert len(timings.calls) == 1
    assert (first.cached, second.cached) == (False, True)
    assert second.policy == BF16 and second.rates == first.rates
    assert second.describe() == "mixed_bfloat16 (auto: 1.60x float32 measured, cached)"
    assert second.to_json()["cached"] is True

    machine["tensorflow"] = "3.0.0"  # another TensorFlow: measure again
    precision.choose("auto", measure=timings, cache_dir=tmp_path)
    assert len(timings.calls) == 2
    machine["cpu"] = "Other CPU"  # another machine (a shared home folder): measure again
    precision.choose("auto", measure=timings, cache_dir=tmp_path)
    assert len(timings.calls) == 3
    machine["cpu"], machine["tensorflow"] = "Test CPU 9000", "2.99.0"  # each machine keeps its own
    assert precision.choose("auto", measure=timings, cache_dir=tmp_path).cached
    assert len(timings.calls) == 3


def test_the_cache_dir_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(precision.CACHE_ENV, str(tmp_path / "mine"))
    assert precision.cache_path() == tmp_path / "mine" / "precision.json"
    assert precision.cache_path(tmp_path / "arg") == tmp_path / "arg" / "precision.json"
    monkeypatch.delenv(precision.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert precision.cache_path() == tmp_path / "xdg" / "fashion-resnet-tuner" / "precision.json"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    expected = tmp_path / "home" / ".cache" / "fashion-resnet-tuner" / "precision.json"
    assert precision.cache_path() == expected


def test_the_environment_cache_dir_is_used(machine, monkeypatch, tmp_path):
    monkeypatch.setenv(precision.CACHE_ENV, str(tmp_path))
    timings = Timings({F32: 1000.0, BF16: 1600.0})
    precision.choose("auto", measure=timings)
    assert precision.choose("auto", measure=timings).cached
    assert len(timings.calls) == 1
    assert (tmp_path / "precision.json").is_file()


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "",
        "[1, 2]",
        '{"format": 1, "entries": "nope"}',
        '{"format": 1, "entries": [{"key": "x"}, 3]}',
        "\x00\xff garbage",
    ],
)
def test_a_garbled_cache_file_is_ignored_and_rewritten(machine, tmp_path, content):
    (tmp_path / "precision.json").write_text(content, encoding="utf-8", errors="surrogateescape")
    timings = Timings({F32: 1000.0, BF16: 1600.0})
    assert precision.choose("auto", measure=timings, cache_dir=tmp_path).policy == BF16
    assert len(timings.calls) == 1
    data = json.loads((tmp_path / "precision.json").read_text())
    assert data["format"] == precision.CACHE_FORMAT
    assert precision.choose("auto", measure=timings, cache_dir=tmp_path).cached


def test_cached_rates_that_make_no_sense_are_measured_again(machine, tmp_path):
    timings = Timings({F32: 1000.0, BF16: 1600.0})
    precision.choose("auto", measure=timings, cache_dir=tmp_path)
    path = tmp_path / "precision.json"
    data = json.loads(path.read_text())
    data["entries"][0]["rates"][BF16] = -1
    path.write_text(json.dumps(data))
    assert not precision.choose("auto", measure=timings, cache_dir=tmp_path).cached
    assert len(timings.calls) == 2


def test_an_unwritable_cache_dir_just_skips_caching(machine, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    timings = Timings({F32: 1000.0, BF16: 1600.0})
    for _ in range(2):
        choice = precision.choose("auto", measure=timings, cache_dir=blocker / "cache")
        assert choice.policy == BF16 and not choice.cached
    assert len(timings.calls) == 2


def test_a_fixed_precision_never_measures(machine, tmp_path):
    def measure(cands):
        raise AssertionError("a fixed precision must not measure")

    for policy in (F32, BF16, F16):
        choice = precision.choose(policy, measure=measure, cache_dir=tmp_path)
        assert (choice.policy, choice.requested, choice.rates) == (policy, policy, {})
        assert choice.describe() == policy
        assert choice.ratio() is None and choice.to_json()["ratio"] is None
        assert precision.resolve(policy) == policy
    assert not (tmp_path / "precision.json").exists()


def test_an_unknown_precision_is_a_usage_error():
    with pytest.raises(UsageError, match="--precision must be one of auto, float32"):
        precision.choose("int8")
    with pytest.raises(UsageError, match="--precision must be one of"):
        precision.resolve("bfloat16")


def test_a_cpu_without_bfloat16_keeps_float32_without_measuring(machine, monkeypatch, tmp_path):
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx2", "fma"})
    timings = Timings({F32: 1000.0, BF16: 5000.0})
    choice = precision.choose("auto", measure=timings, cache_dir=tmp_path)
    assert choice.policy == F32 and timings.calls == []
    assert choice.describe() == "float32 (auto: no bfloat16 instructions on this CPU)"


def test_a_gpu_chooses_between_float32_and_float16(machine, tmp_path):
    machine["gpus"] = ["NVIDIA H200"]
    timings = Timings({F32: 10000.0, F16: 25000.0})
    choice = precision.choose("auto", measure=timings, cache_dir=tmp_path)
    assert timings.calls == [(F32, F16)]
    assert choice.policy == F16
    assert choice.describe() == "mixed_float16 (auto: 2.50x float32 measured)"
    machine["gpus"] = ["NVIDIA H100"]  # another GPU: measure again
    precision.choose("auto", measure=timings, cache_dir=tmp_path)
    assert len(timings.calls) == 2


def test_a_candidate_that_could_not_be_timed_keeps_float32_uncached(machine, tmp_path):
    timings = Timings({F32: 1000.0})  # the bfloat16 run failed
    choice = precision.choose("auto", measure=timings, cache_dir=tmp_path)
    assert choice.policy == F32
    assert choice.describe() == "float32 (auto: mixed_bfloat16 could not be timed)"
    assert not (tmp_path / "precision.json").exists()
    precision.choose("auto", measure=timings, cache_dir=tmp_path)
    assert len(timings.calls) == 2


@pytest.mark.slow
def test_a_real_measurement_times_both_candidates(tmp_path):
    """The real thing on this machine: a child process times each candidate."""
    import time

    import keras

    t0 = time.perf_counter()
    choice = precision.choose("auto", cache_dir=tmp_path)
    seconds = time.perf_counter() - t0
    print(f"{choice.describe()} in {seconds:.1f} s")
    assert keras.mixed_precision.global_policy().name == F32
    cands = precision.candidates()
    if len(cands) > 1:
        assert set(choice.rates) == set(cands) and all(r > 0 for r in choice.rates.values())
        assert choice.policy == precision.decide(choice.rates)
        assert precision.choose("auto", cache_dir=tmp_path).cached
    # In this process too: a policy Keras does not know is reported, not raised.
    rates, errors = precision_timing.measure_rates([F32, "no_such_policy"], rounds=1, steps=2)
    assert set(rates) == {F32} and rates[F32] > 0
    assert set(errors) == {"no_such_policy"}
    assert keras.mixed_precision.global_policy().name == F32


def test_a_run_keeps_the_auto_choice_it_recorded(tmp_path, monkeypatch):
    """A resumed run, and every worker of a distributed one, reuse run.json's auto choice:
    measuring again near the margin could pick the other precision and change the run's
    definition."""
    from tuning.config import Cluster, SearchConfig
    from tuning.engine.driver import choose_precision
    from tuning.rundir.records import atomic_write_json

    def no_measuring(cands):
        raise AssertionError("auto measured again")

    monkeypatch.setattr(precision, "measure_in_subprocess", no_measuring)
    monkeypatch.setattr(precision, "candidates", lambda: (F32, BF16))
    config = SearchConfig(directory=str(tmp_path), project_name="run")
    recorded = {"policy": F32, "requested": "auto", "rates": {F32: 100.0, BF16: 66.0}}
    run = {"definition": {"precision": F32}, "precision_choice": recorded}  # as a search writes it
    atomic_write_json(config.run_dir / "run.json", run)
    for cluster in (Cluster(), Cluster("worker", "127.0.0.1", 1, "w1")):
        choice = choose_precision(config, cluster)
        assert choice.policy == F32 and choice.cached
        assert choice.describe() == "float32 (auto: bfloat16 0.66x float32, cached)"
    assert choose_precision(config, Cluster()).to_json()["ratio"] == 0.66
