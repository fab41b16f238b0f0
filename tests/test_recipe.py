"""The training recipe: augmentation, label smoothing, weight decay, the finalizer's schedule."""

from __future__ import annotations

import json
import math
import shutil

import keras
import numpy as np
import pytest
from conftest import run_module

from hypermodels.augment import RandomErasing, augmentation
from hypermodels.optim import SparseSmoothedCrossentropy, warmup_cosine
from hypermodels.recipe import Recipe, parse_augment
from hypermodels.resnet import build_resnet, inference_copy
from tuning import ablate, finalize
from tuning.config import (
    DEFAULT_FINAL_WEIGHT_DECAY,
    FinalizeConfig,
    RetrainOptions,
    Schedule,
)
from tuning.engine import trial_training_set
from tuning.errors import UsageError
from tuning.retrain.finalizer import run_finalize


def test_parse_augment_is_canonical_and_strict():
    assert parse_augment("translate,flip") == ("flip", "translate")
    assert parse_augment("none") == parse_augment("") == parse_augment(None) == ()
    assert parse_augment(" erase ") == ("erase",)
    with pytest.raises(ValueError, match="unknown rotate"):
        parse_augment("flip,rotate")


def _images(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(1, 256, (n, 28, 28, 1)).astype(np.float32)


def test_augmentation_is_the_identity_at_inference_and_random_in_training():
    keras.utils.set_random_seed(0)
    x = _images()
    stage = augmentation(("flip", "translate", "erase"))
    np.testing.assert_array_equal(np.asarray(stage(x, training=False)), x)
    out = np.asarray(stage(x, training=True))
    assert out.shape == x.shape
    assert (np.abs(out - x).reshape(len(x), -1).max(axis=1) > 0).mean() > 0.5
    assert augmentation(()) is None


def test_flip_only_mirrors():
    keras.utils.set_random_seed(1)
    x = _images(64)
    out = np.asarray(augmentation(("flip",))(x, training=True))
    mirrored = np.all(out == x[:, :, ::-1], axis=(1, 2, 3))
    same = np.all(out == x, axis=(1, 2, 3))
    assert np.all(mirrored | same) and 0 < mirrored.sum() < 64


def test_random_erasing_blacks_out_one_rectangle():
    x = np.full((200, 28, 28, 1), 7.0, np.float32)
    out = np.asarray(RandomErasing(probability=1.0, seed=3)(x, training=True))[..., 0]
    for img in out:
        rows, cols = np.nonzero(img == 0)
        assert len(rows) > 0
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert box == len(rows)  # the zeros form one full rectangle
        assert 0.01 <= len(rows) / 784 <= 0.30
    untouched = np.asarray(RandomErasing(probability=0.0, seed=3)(x, training=True))
    np.testing.assert_array_equal(untouched, x)


def test_label_smoothing_loss_matches_the_formula():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], np.float32)
    labels = np.array([0, 1])
    eps, k = 0.1, 3
    target = np.eye(k)[labels] * (1 - eps) + eps / k
    expected = np.mean(-(target * np.log(probs)).sum(axis=1))
    got = float(SparseSmoothedCrossentropy(eps)(labels, probs))
    assert got == pytest.approx(expected, rel=1e-5)


def test_warmup_cosine_schedule_values():
    s = warmup_cosine(0.1, total_steps=110, warmup_steps=10)
    assert float(s(0)) == pytest.approx(0.0)
    assert float(s(5)) == pytest.approx(0.05)
    assert float(s(10)) == pytest.approx(0.1)
    assert float(s(60)) == pytest.approx(0.05, rel=1e-5)  # half-way through the decay
    assert float(s(110)) == pytest.approx(0.0, abs=1e-7)
    plain = warmup_cosine(0.1, total_steps=100)
    assert float(plain(0)) == pytest.approx(0.1) and float(plain(50)) == pytest.approx(0.05)


def test_weight_decay_spares_biases_and_batch_norm():
    model = build_resnet(1, 8, True, 0.01, Recipe(momentum=0.9, weight_decay=5e-4))
    opt = model.optimizer
    opt.build(model.trainable_variables)
    decayed = {v.path for v in model.trainable_variables if opt._use_weight_decay(v)}
    assert decayed and all("kernel" in p for p in decayed)
    assert any("kernel" in v.path for v in model.trainable_variables if v.path in decayed)
    assert not any(("bias" in p or "gamma" in p or "beta" in p) for p in decayed)


def test_batch_norm_momentum_reaches_every_batch_norm_layer_and_the_record():
    model = build_resnet(2, 8, False, 0.01, Recipe(bn_momentum=0.9))
    bns = [layer for layer in model.layers if "_bn" in layer.name]
    assert len(bns) == 4 and all(layer.momentum == 0.9 for layer in bns)
    assert Recipe.from_dict(Recipe(bn_momentum=0.9).to_dict()).bn_momentum == 0.9
    old = Recipe().to_dict()
    del old["bn_momentum"]  # a record from before the setting existed: Keras' default
    assert Recipe.from_dict(old).bn_momentum == 0.99
    with pytest.raises(ValueError, match="bn_momentum must be in"):
        Recipe(bn_momentum=1.0)
    copy = inference_copy(model, {"blocks": 2, "filters": 8, "skip": False, "learning_rate": 0.01})
    assert {x.momentum for x in copy.layers if isinstance(x, keras.layers.BatchNormalization)} == {
        0.9
    }


def test_a_model_with_the_whole_recipe_trains_saves_and_reloads(tmp_path):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (128, 28, 28)).astype(np.uint8)
    y = rng.integers(0, 10, 128)
    recipe = Recipe(0.9, False, 5e-4, 0.1, ("flip", "translate", "erase"))
    model = build_resnet(1, 8, True, warmup_cosine(0.01, 8, 2), recipe)
    history = model.fit(x, y, epochs=2, batch_size=32, verbose=0).history
    assert all(math.isfinite(v) for v in history["loss"])
    before = model.predict(x[:8], verbose=0)
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(again.predict(x[:8], verbose=0), before, atol=1e-6)
    assert isinstance(again.loss, SparseSmoothedCrossentropy)


def test_trial_images_takes_a_fixed_stratified_part_of_train():
    from tuning.data import Splits

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (1000, 28, 28)).astype(np.uint8)
    y = np.repeat(np.arange(10), 100)
    splits = Splits(x, y, x[:10], y[:10], None, None, None)
    xa, ya = trial_training_set(splits, 200, seed=0)
    xb, yb = trial_training_set(splits, 200, seed=0)
    assert len(ya) == 200 and np.array_equal(xa, xb)
    assert np.bincount(ya).tolist() == [20] * 10
    assert trial_training_set(splits, None, 0)[1] is y
    assert trial_training_set(splits, 5000, 0)[1] is y


def test_finalize_applies_the_recipe_and_the_epoch_factor(search_run, data_dir, tmp_path):
    run_dir = tmp_path / "run"  # a copy: other tests finalize the shared run
    run_dir.mkdir()
    for name in ("run.json", "trials.csv"):
        shutil.copy(search_run[0] / name, run_dir / name)
    options = RetrainOptions(
        data_dir=str(data_dir), augment=("flip", "translate"), label_smoothing=0.05,
        weight_decay=1e-4, bn_momentum=0.8,
    )  # fmt: skip
    report = run_finalize(FinalizeConfig(
        run_dir, options=options, epochs_factor=2.0, schedule="cosine", warmup_epochs=1,
        lr_scale=3.0, max_lr=1.0, min_lr=0.0, overwrite=True, verbose=0,
    ))  # fmt: skip
    searched = report["hyperparameters"]["learning_rate"]
    assert report["peak_learning_rate"] == pytest.approx(3 * searched)
    assert f"3 x the searched {searched:.4g}" in report["schedule"]
    lineage = report["chosen_from"]["lineage_epochs"]
    assert report["epochs"] == 2 * lineage
    assert "2 x the best trial's" in report["epochs_source"]
    assert report["augment"] == ["flip", "translate"]
    assert report["label_smoothing"] == 0.05 and report["weight_decay"] == 1e-4
    assert report["bn_momentum"] == 0.8
    assert report["schedule"].startswith("1-epoch warm-up + cosine decay")
    saved = json.loads((run_dir / "final" / "report.json").read_text())
    assert saved["augment"] == ["flip", "translate"]
    assert "augmentation | flip, translate" in (run_dir / "final" / "report.md").read_text()
    assert "batch-norm momentum | 0.8" in (run_dir / "final" / "report.md").read_text()
    model = keras.models.load_model(run_dir / "final" / "model.keras")
    bns = [x for x in model.layers if isinstance(x, keras.layers.BatchNormalization)]
    assert bns and all(x.momentum == 0.8 for x in bns)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--augment", "rotate"], "--augment: unknown rotate"),
        (["--weight-decay", "-1"], "--weight-decay must be in [0, 1)"),
        (["--label-smoothing", "1.5"], "--label-smoothing must be in [0, 1)"),
        (["--trial-images", "lots"], "--trial-images must be a number or 'all'"),
        (["--trial-images", "3"], "--trial-images must be at least 10"),
    ],
)
def test_bad_recipe_flags_are_usage_errors(args, message, tmp_path):
    proc = run_module("tuning.search", "--directory", str(tmp_path), *args)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not any(tmp_path.iterdir())


def test_finalize_weight_decay_defaults_to_its_own_and_search_takes_the_searchs(tmp_path):
    def options(*argv: str):
        return finalize.config_from_args(finalize.build_parser().parse_args(argv)).options

    assert options().weight_decay == DEFAULT_FINAL_WEIGHT_DECAY > 0
    assert options("--weight-decay", "search").weight_decay is None  # the run's value
    assert options("--weight-decay", "1e-4").weight_decay == 1e-4
    assert options("--weight-decay", "0").weight_decay == 0.0
    ablation = ablate.config_from_args(ablate.build_parser().parse_args([]))
    assert ablation.options.weight_decay is None  # the ablation keeps the search's recipe
    assert options().bn_momentum is None and ablation.options.bn_momentum is None  # the search's
    assert options("--bn-momentum", "0.99").bn_momentum == 0.99
    for bad, message in (("lots", "must be a number or 'search'"), ("2", "must be in [0, 1)")):
        proc = run_module("tuning.finalize", "--run-dir", str(tmp_path), "--weight-decay", bad)
        assert proc.returncode == 2 and f"--weight-decay {message}" in proc.stderr
        assert "Traceback" not in proc.stderr
    proc = run_module("tuning.finalize", "--run-dir", str(tmp_path), "--bn-momentum", "1")
    assert proc.returncode == 2 and "--bn-momentum must be in [0, 1)" in proc.stderr


def peak_learning_rate(searched: float, scale: float, cap: float) -> tuple[float, str]:
    return Schedule("cosine", 1, scale, cap).peak(searched)


def test_peak_learning_rate_is_the_scaled_searched_rate_under_the_cap():
    assert peak_learning_rate(0.0125, 1.0, 0.1) == (0.0125, "0.0125")
    rate, text = peak_learning_rate(0.0125, 4.0, 0.1)
    assert rate == pytest.approx(0.05) and text == "0.05 (4 x the searched 0.0125)"
    rate, text = peak_learning_rate(0.04, 4.0, 0.1)
    assert rate == 0.1 and text == "0.1 (4 x the searched 0.04, capped by --max-lr 0.1)"
    assert peak_learning_rate(0.5, 1.0, 0.1)[0] == 0.1  # the cap holds at scale 1 too


def test_the_peak_has_a_floor():
    floor = Schedule("cosine", 1, 4.0, 0.1, 0.05)
    rate, text = floor.peak(0.006)
    assert rate == 0.05 and text == "0.05 (4 x the searched 0.006 = 0.024, raised to --min-lr 0.05)"
    assert floor.peak(0.02) == (0.08, "0.08 (4 x the searched 0.02)")  # above it: as before
    assert floor.peak(0.04)[0] == 0.1  # the cap still holds
    assert Schedule("cosine", 1, 4.0, 0.1).peak(0.006)[0] == pytest.approx(0.024)  # no floor
    assert FinalizeConfig().lr_schedule.peak(0.006)[0] == 0.05  # the finalizer's default
    low_cap = Schedule("cosine", 1, 4.0, 0.01, 0.05)  # --max-lr 0.01 alone: the cap wins
    text = "0.01 (4 x the searched 0.001 = 0.004, raised to --min-lr 0.05, capped by --max-lr 0.01)"
    assert low_cap.peak(0.001) == (0.01, text)
    assert FinalizeConfig(max_lr=0.01).lr_schedule.peak(0.001)[0] == 0.01
    for bad in (-0.01, math.inf, math.nan):
        with pytest.raises(UsageError, match="--min-lr must be a non-negative number"):
            FinalizeConfig(min_lr=bad)


def test_finalize_rejects_a_bad_schedule_setting(search_run):
    run_dir, _, _ = search_run
    proc = run_module("tuning.finalize", "--run-dir", str(run_dir), "--warmup-epochs", "-1")
    assert proc.returncode == 2 and "--warmup-epochs must be non-negative" in proc.stderr
    proc = run_module("tuning.finalize", "--run-dir", str(run_dir), "--warmup-epochs", "10",
                      "--epochs", "1")  # fmt: skip
    assert proc.returncode == 2 and "--warmup-epochs 10 is longer than the training" in proc.stderr
    proc = run_module("tuning.finalize", "--run-dir", str(run_dir), "--epochs-factor", "0")
    assert proc.returncode == 2 and "--epochs-factor must be in (0, 100]" in proc.stderr
    proc = run_module("tuning.finalize", "--run-dir", str(run_dir), "--lr-scale", "0")
    assert proc.returncode == 2 and "--lr-scale must be in (0, 1000]" in proc.stderr
    proc = run_module("tuning.finalize", "--run-dir", str(run_dir), "--max-lr", "-1")
    assert proc.returncode == 2 and "--max-lr must be a positive number" in proc.stderr
    proc = run_module("tuning.finalize", "--run-dir", str(run_dir), "--min-lr", "inf")
    assert proc.returncode == 2 and "--min-lr must be a non-negative number" in proc.stderr


def test_the_hypermodel_builds_trials_with_the_search_recipe():
    import keras_tuner

    from hypermodels import ResNetHyperModel, SearchSpace

    space = SearchSpace(1, 1, (8,), "on", 0.01, 0.01)
    recipe = Recipe(momentum=0.9, weight_decay=1e-4, label_smoothing=0.1, augment=("erase",))
    hm = ResNetHyperModel(space, recipe=recipe)
    model = hm.build(keras_tuner.HyperParameters())
    assert model.get_layer("augment").layers[0].name == "aug_erase"
    assert model.optimizer.weight_decay == pytest.approx(1e-4)
    assert isinstance(model.loss, SparseSmoothedCrossentropy)
    plain = ResNetHyperModel(space).build(keras_tuner.HyperParameters())
    assert not any(layer.name.startswith("aug") for layer in plain.layers)


def test_the_run_definition_records_the_recipe(search_run):
    definition = json.loads((search_run[0] / "run.json").read_text())["definition"]
    assert definition["augment"] == [] and definition["trial_images"] == 12000
    assert definition["weight_decay"] == 0.0 and definition["label_smoothing"] == 0.0
    assert definition["bn_momentum"] == 0.9 and definition["sampler"] == "balanced"
