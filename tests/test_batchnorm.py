"""The fused batch normalization computes what Keras' own layer computes."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from hypermodels import build_resnet, inference_copy
from hypermodels.batchnorm import FusedBatchNormalization

CHANNELS = 8


def _train_once(layer, x, upstream, gamma, beta):
    """One training call: (outputs, d/dx, d/dgamma, d/dbeta, moving mean, moving variance)."""
    layer.build(x.shape)
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    x = tf.cast(x, layer.compute_dtype)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = layer(x, training=True)
        loss = tf.reduce_sum(tf.cast(out, "float32") * upstream)
    grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
    values = [out, *grads, layer.moving_mean, layer.moving_variance]
    return [np.asarray(tf.cast(v, "float32")) for v in values]


@pytest.mark.parametrize(
    "policy, atol",
    [("float32", 1e-4), ("mixed_bfloat16", 2e-2)],  # bfloat16: 8-bit mantissa, values ~5
)
def test_fused_training_step_matches_keras(policy, atol):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(2.0, 3.0, (32, 7, 7, CHANNELS)), "float32")
    upstream = tf.constant(rng.normal(size=(32, 7, 7, CHANNELS)), "float32")
    gamma, beta = rng.uniform(0.5, 1.5, CHANNELS), rng.normal(size=CHANNELS)
    keras.mixed_precision.set_global_policy(policy)
    try:
        ours = FusedBatchNormalization(momentum=0.9)
        theirs = keras.layers.BatchNormalization(momentum=0.9)
        got = _train_once(ours, x, upstream, gamma, beta)
        want = _train_once(theirs, x, upstream, gamma, beta)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    names = ["outputs", "dx", "dgamma", "dbeta", "moving_mean", "moving_variance"]
    for name, a, b in zip(names, got, want, strict=True):
        scale = max(1.0, float(np.max(np.abs(b))))
        np.testing.assert_allclose(a, b, atol=atol * scale, err_msg=name)
    # The moving variance averages the biased batch variance, as Keras' does: a variance
    # left Bessel-corrected would be off by n/(n-1) = 1568/1567 of the batch part.
    seen = tf.cast(tf.cast(x, "bfloat16" if "bfloat16" in policy else "float32"), "float32")
    batch_var = np.var(np.asarray(seen), axis=(0, 1, 2))
    np.testing.assert_allclose(got[5], 0.9 + 0.1 * batch_var, rtol=1e-5)


def test_inference_and_unfusable_inputs_run_keras_code():
    rng = np.random.default_rng(1)
    layer = FusedBatchNormalization()
    x = tf.constant(rng.normal(size=(4, 5, 5, CHANNELS)), "float32")
    layer.build(x.shape)
    layer.moving_mean.assign(rng.normal(size=CHANNELS))
    layer.moving_variance.assign(rng.uniform(0.5, 2.0, CHANNELS))
    plain = keras.layers.BatchNormalization()
    plain.build(x.shape)
    plain.set_weights(layer.get_weights())
    np.testing.assert_allclose(layer(x, training=False), plain(x, training=False), atol=1e-6)
    flat = FusedBatchNormalization()  # 2-D inputs: the fused kernel wants NHWC
    out = flat(tf.constant(rng.normal(size=(16, CHANNELS)), "float32"), training=True)
    assert out.shape == (16, CHANNELS)


def test_training_models_fuse_and_saved_copies_are_plain_keras(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (64, 28, 28)).astype(np.uint8)
    y = rng.integers(0, 10, 64)
    hp = {"blocks": 1, "filters": 8, "skip": True, "learning_rate": 0.01}
    model = build_resnet(**hp)
    kinds = {type(layer) for layer in model.layers}
    assert FusedBatchNormalization in kinds
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    copy = inference_copy(model, hp)
    assert not any(isinstance(layer, FusedBatchNormalization) for layer in copy.layers)
    assert sum(type(layer) is keras.layers.BatchNormalization for layer in copy.layers) == 2
    np.testing.assert_allclose(copy.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    # A training model (the resume checkpoints save these) reloads as one.
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    assert FusedBatchNormalization in {type(layer) for layer in again.layers}
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
