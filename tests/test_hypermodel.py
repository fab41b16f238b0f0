"""The ResNet and its search space."""

from __future__ import annotations

import itertools

import keras_tuner
import numpy as np
import pytest

from hypermodels import ResNetHyperModel, SearchSpace, build_resnet, count_adds
from hypermodels.space import parse_float_range, parse_int_list, parse_int_range

SPACE = SearchSpace(blocks_min=1, blocks_max=3, filters=(8, 16, 32), lr_min=1e-3, lr_max=1e-1)


def build(values: dict, space: SearchSpace = SPACE):
    hp = keras_tuner.HyperParameters()
    for name, value in values.items():
        hp.Fixed(name, value)
    return ResNetHyperModel(space).build(hp)


@pytest.mark.parametrize(
    "blocks, filters, skip",
    list(itertools.product((1, 3), (8, 32), (True, False))),
)
def test_every_corner_builds(blocks, filters, skip):
    model = build({"blocks": blocks, "filters": filters, "skip": skip, "learning_rate": 0.1})
    assert model.output_shape == (None, 10)
    assert count_adds(model) == (blocks if skip else 0)
    convs = [layer for layer in model.layers if layer.__class__.__name__ == "Conv2D"]
    assert len(convs) == 1 + 2 * blocks
    assert all(c.filters == filters for c in convs)


@pytest.mark.parametrize("blocks", [1, 2, 4])
def test_skip_on_and_off_have_the_same_parameters(blocks):
    on = build_resnet(blocks=blocks, filters=16, skip=True)
    off = build_resnet(blocks=blocks, filters=16, skip=False)
    assert on.count_params() == off.count_params()
    assert count_adds(on) == blocks and count_adds(off) == 0


def test_lab_model_parameter_count():
    # stem 64*(9+1) + per block 2 convs (64*64*9+64) + 2 BN (4*64); head dense 7*7*64*256+256;
    # softmax 256*10+10. BatchNorm has 4 weights per channel, 2 of them trainable.
    model = build_resnet(blocks=2, filters=64, skip=True)
    block = 2 * (64 * 64 * 9 + 64) + 2 * 4 * 64
    expected = 64 * 10 + 2 * block + (7 * 7 * 64 * 256 + 256) + (256 * 10 + 10)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == expected - 2 * 2 * 2 * 64  # BN moving mean/var are not trainable


def test_model_standardizes_raw_uint8_inside():
    rng = np.random.default_rng(0)
    mean = rng.uniform(0, 255, (28, 28)).astype(np.float32)
    var = rng.uniform(1, 100, (28, 28)).astype(np.float32)
    model = build_resnet(blocks=1, filters=8, mean=mean, variance=var)
    images = rng.integers(0, 256, (4, 28, 28)).astype(np.uint8)
    # after the channel axis is added (augmentation, when on, sits between the two)
    standardized = model.get_layer("standardize")(images[..., None].astype(np.float32))
    np.testing.assert_allclose(
        np.asarray(standardized)[..., 0], (images - mean) / np.sqrt(var), rtol=1e-5
    )
    assert model.predict(images, verbose=0).shape == (4, 10)


def test_hyperparameters_are_declared_from_the_space():
    hp = keras_tuner.HyperParameters()
    ResNetHyperModel(SPACE).build(hp)
    names = {p.name: type(p).__name__ for p in hp.space}
    assert names == {
        "blocks": "Int",
        "filters": "Choice",
        "skip": "Boolean",
        "learning_rate": "Float",
    }
    lr = hp._hps["learning_rate"][0]
    assert lr.sampling == "log" and (lr.min_value, lr.max_value) == (1e-3, 1e-1)

    fixed = SearchSpace(
        blocks_min=2, blocks_max=2, filters=(64,), skip="off", lr_min=1e-3, lr_max=1e-3
    )
    hp = keras_tuner.HyperParameters()
    model = ResNetHyperModel(fixed).build(hp)
    assert {p.name: type(p).__name__ for p in hp.space} == dict.fromkeys(names, "Fixed")
    assert hp.values == {"blocks": 2, "filters": 64, "skip": False, "learning_rate": 1e-3}
    assert count_adds(model) == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"blocks_min": 4, "blocks_max": 1},
        {"blocks_min": 0, "blocks_max": 2},
        {"filters": ()},
        {"filters": (16, -8)},
        {"skip": "maybe"},
        {"lr_min": 0.0},
        {"lr_min": 0.1, "lr_max": 0.01},
    ],
)
def test_invalid_spaces_are_refused(kwargs):
    with pytest.raises(ValueError):
        SearchSpace(**kwargs)


def test_range_parsers():
    assert parse_int_range("1:4", "x") == (1, 4)
    assert parse_int_range("3", "x") == (3, 3)
    assert parse_float_range("1e-4:3e-1", "x") == (1e-4, 0.3)
    assert parse_int_list("16, 32,64", "x") == (16, 32, 64)
    for bad in ("a:b", "1:2:3", ""):
        with pytest.raises(ValueError):
            parse_int_range(bad, "x")
    with pytest.raises(ValueError):
        parse_int_list(" , ", "x")


def test_training_many_models_registers_no_gradient_functions():
    # Keras' optimizer used to leave one tf.custom_gradient (and its whole graph) in a
    # process-wide registry per compiled model: ~6 MB per trial. See hypermodels/_leakfix.py.
    import keras
    from tensorflow.python.framework import ops

    def custom_gradients() -> int:
        return sum(k.startswith("CustomGradient") for k in ops._gradient_registry._registry)

    x = np.random.default_rng(0).integers(0, 256, (64, 28, 28)).astype(np.uint8)
    y = np.arange(64) % 10
    before = custom_gradients()
    for _ in range(3):
        keras.backend.clear_session()
        build_resnet(blocks=1, filters=4).fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert custom_gradients() == before


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_precision_policy_survives_clear_session(policy):
    import keras

    keras.backend.clear_session()  # KerasTuner does this before every trial
    model = build_resnet(blocks=1, filters=8, precision=policy)
    compute = "float32" if policy == "float32" else "bfloat16"
    assert model.get_layer("block1_conv1").compute_dtype == compute
    assert model.get_layer("block1_conv1").kernel.dtype == "float32"  # weights stay float32
    assert model.get_layer("standardize").compute_dtype == "float32"
    assert model.get_layer("probs").compute_dtype == "float32"
    keras.mixed_precision.set_global_policy("float32")


def test_auto_precision_follows_the_hardware(monkeypatch, tmp_path):
    # auto times the candidates of this device (tests/test_precision.py); which ones:
    from tuning.errors import UsageError
    from tuning.machine import precision

    monkeypatch.setattr(precision, "gpu_names", lambda: [])
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    assert precision.candidates() == ("float32", "mixed_bfloat16")
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx2"})
    assert precision.candidates() == ("float32",)
    assert precision.resolve("auto") == "float32"  # nothing to measure
    monkeypatch.setattr(precision, "gpu_names", lambda: ["NVIDIA H200"])
    assert precision.candidates() == ("float32", "mixed_float16")
    asked = []

    def measure(candidates):
        asked.append(candidates)
        return {"float32": 1000.0, "mixed_float16": 2500.0}

    assert precision.choose("auto", measure=measure, cache_dir=tmp_path).policy == "mixed_float16"
    assert asked == [("float32", "mixed_float16")]
    assert precision.resolve("float32") == "float32"
    with pytest.raises(UsageError):
        precision.resolve("int8")
