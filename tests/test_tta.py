"""Flip test-time augmentation: the mean of an image's and its mirror's probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from tuning.config import FinalizeConfig
from tuning.errors import UsageError


@pytest.fixture(scope="module")
def lopsided_model():
    """A tiny model that is not mirror-symmetric: it looks at the left columns only."""
    import keras

    inputs = keras.Input((28, 28))
    left = keras.layers.Lambda(lambda t: t[:, :, :14] / 255.0, dtype="float32")(inputs)
    x = keras.layers.Flatten(dtype="float32")(left)
    # float32 whatever policy an earlier test left: the sums to 1 are checked exactly
    outputs = keras.layers.Dense(
        10, activation="softmax", kernel_initializer="he_normal", dtype="float32"
    )(x)
    keras.utils.set_random_seed(3)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (64, 28, 28), dtype=np.uint8), rng.integers(0, 10, 64)


def test_flip_averages_the_image_and_its_mirror(lopsided_model, images):
    from tuning.retrain.training import predict

    x, _ = images
    single = predict(lopsided_model, x)
    mirror = lopsided_model.predict(x[:, :, ::-1].copy(), verbose=0)
    flip = predict(lopsided_model, x, "flip")
    assert not np.allclose(single, mirror, atol=1e-4)  # the model sees the difference
    np.testing.assert_allclose(flip, (single + mirror) / 2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(flip.sum(axis=1), 1.0, rtol=1e-5)


def test_evaluate_reports_both_views_from_one_look(lopsided_model, images):
    from tuning.retrain.training import evaluate, predict, scores

    x, y = images
    with_flip = evaluate(lopsided_model, x, y, "flip")
    plain = evaluate(lopsided_model, x, y)
    assert with_flip["tta"] == "flip" and plain["tta"] == "none"
    assert with_flip["test_accuracy_single_view"] == plain["test_accuracy"]
    assert with_flip["test_loss_single_view"] == pytest.approx(plain["test_loss"])
    assert with_flip["test_accuracy"] == scores(predict(lopsided_model, x, "flip"), y)[0]
    assert "test_accuracy_single_view" not in plain
    matrix = np.array(with_flip["confusion_matrix"])
    assert matrix.trace() / len(y) == pytest.approx(with_flip["test_accuracy"])


def test_predict_takes_a_channel_axis_and_an_empty_batch(lopsided_model, images):
    from tuning.retrain.training import predict

    x, _ = images
    for tta in ("none", "flip"):
        np.testing.assert_array_equal(predict(lopsided_model, x[..., None], tta),
                                      predict(lopsided_model, x, tta))  # fmt: skip
        assert predict(lopsided_model, x[:0], tta).shape == (0, 10)


def test_unknown_tta_is_refused(lopsided_model, images):
    from tuning.retrain.training import evaluate, predict

    with pytest.raises(ValueError, match="test-time augmentation"):
        predict(lopsided_model, images[0], "rotate")
    with pytest.raises(ValueError, match="test-time augmentation"):
        evaluate(lopsided_model, *images, "rotate")
    with pytest.raises(UsageError, match="--tta"):
        FinalizeConfig(tta="rotate")


def test_finalize_cli_refuses_an_unknown_tta(tmp_path, capsys):
    from tuning.cli import run_cli
    from tuning.finalize import main

    assert run_cli("finalize", main, ["--run-dir", str(tmp_path / "r"), "--tta", "x"]) == 2
    assert "--tta" in capsys.readouterr().err


def test_auto_tta_follows_the_training_and_a_mismatch_is_refused():
    from tuning.config import resolve_tta

    assert resolve_tta("auto", ("flip", "translate")) == "flip"
    assert resolve_tta("auto", ("translate",)) == "none"
    assert resolve_tta("auto", ()) == "none"
    assert resolve_tta("none", ("flip",)) == "none"
    assert resolve_tta("flip", ("flip",)) == "flip"
    with pytest.raises(UsageError, match="never saw"):
        resolve_tta("flip", ())


@pytest.mark.slow  # 14 s; the rule that refuses flip TTA: test_auto_tta_follows_the_training...
def test_finalize_without_flips_reports_the_single_view_and_refuses_flip_tta(tmp_path, data_dir):
    """Issue 25.3, as a user runs it: ``--augment none`` (the lab's setting) is tested on the
    single view, and says so; asking for flip TTA on it is a usage error that writes nothing."""
    from conftest import run_module

    hp = '{"blocks": 1, "filters": 8, "skip": true, "learning_rate": 0.01}'
    common = ["--data-dir", str(data_dir), "--hyperparameters", hp, "--epochs", "1", "--subset",
              "300", "--augment", "none", "--precision", "float32", "--verbose", "0"]  # fmt: skip
    refused = run_module("tuning.finalize", "--run-dir", str(tmp_path / "a"), *common,
                         "--tta", "flip")  # fmt: skip
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "never saw" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "a" / "final").exists()
    proc = run_module("tuning.finalize", "--run-dir", str(tmp_path / "b"), *common)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = __import__("json").loads((tmp_path / "b/final/report.json").read_text())
    assert report["tta"] == "none" and "test_accuracy_single_view" not in report
    assert "single view" in proc.stdout
