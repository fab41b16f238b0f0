"""Training throughput of the lab's model: the lab's own Keras code vs our pipeline.

Variants, timed alternately in one process (round-robin, median of the rounds):
- ``lab``: the lab's code path: scikit-learn StandardScaler on the flattened float images,
  a float32 functional ResNet on (28, 28, 1) inputs, ``model.fit`` on the float arrays;
- ``ours``: what search and finalize run: uint8 images in, standardization inside the
  model, bfloat16 mixed precision, fused batch normalization, fed by
  ``tuning.data.as_dataset``, XLA off;
- ``ours-f32``: the same in float32 (separates the precision gain);
- ``ours-keras-bn``: the same with Keras' own BatchNormalization (separates the fused BN);
- ``ours-arrays``: the same network fed NumPy arrays through Keras (separates the input
  pipeline);
- ``ours-xla``: ``ours`` with ``jit_compile=True``.
It also measures the matmul peak of this machine (float32 and bfloat16) and reports the
model's training FLOP rate against it, and runs ``--precision auto``'s own measurement
(with an empty cache, so it really measures) to check that it picks the faster of ``ours``
and ``ours-f32``: auto's rate / the better one's should be >= 0.95.

    python benchmarks/throughput.py --data-dir ../shared/data/fashion-mnist [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def lab_model():
    """The lab's network, written as the lab writes it (float32, no preprocessing inside)."""
    import keras
    from keras import layers

    def block(x):
        y = layers.Conv2D(64, 3, padding="same", kernel_initializer="he_normal")(x)
        y = layers.BatchNormalization()(y)
        y = layers.Activation("relu")(y)
        y = layers.Conv2D(64, 3, padding="same", kernel_initializer="he_normal")(y)
        y = layers.BatchNormalization()(y)
        return layers.Activation("relu")(layers.Add()([y, x]))

    inputs = keras.Input((28, 28, 1))
    x = layers.Conv2D(64, 3, padding="same", activation="relu", kernel_initializer="he_normal")(
        inputs
    )
    x = layers.MaxPooling2D(2)(x)
    x = block(block(x))
    x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(256, activation="relu", kernel_initializer="he_normal")(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def matmul_peak(dtype: str, n: int = 2048, repeats: int = 10) -> float:
    import tensorflow as tf

    a = tf.random.normal((n, n), dtype="float32")
    a = tf.cast(a, dtype)
    tf.matmul(a, a).numpy()
    t0 = time.perf_counter()
    for _ in range(repeats):
        c = tf.matmul(a, a)
    c.numpy()
    return 2 * n**3 * repeats / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir")
    p.add_argument("--images", type=int, default=12800, help="images per timed pass")
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()

    import keras
    from sklearn.preprocessing import StandardScaler

    from hypermodels import build_resnet
    from hypermodels.inputs import as_dataset
    from tuning.data import fit_standardizer, load_arrays
    from tuning.machine import precision
    from tuning.machine.cost import forward_flops

    x, y, _ = load_arrays(a.data_dir, "train")
    x, y = x[: a.images], y[: a.images]
    with tempfile.TemporaryDirectory() as cache:  # an empty cache: auto really measures
        t0 = time.perf_counter()
        auto = precision.choose("auto", cache_dir=cache)
        auto_s = time.perf_counter() - t0

    # The lab's preprocessing, timed once as the lab runs it once.
    t0 = time.perf_counter()
    scaler = StandardScaler().fit(x.reshape(len(x), -1).astype(np.float64))
    x_lab = scaler.transform(x.reshape(len(x), -1)).reshape(-1, 28, 28, 1).astype(np.float32)
    lab_prep = time.perf_counter() - t0

    mean, var = fit_standardizer(x)

    def ours(policy: str = "mixed_bfloat16", fused: bool = True, xla: bool = False):
        model = build_resnet(
            2, 64, True, 1e-3, None, mean, var, precision=policy, fused_batchnorm=fused
        )
        if xla:
            model.compile(
                optimizer=model.optimizer, loss=model.loss, metrics=["accuracy"], jit_compile=True
            )
        return model

    variants = {
        "lab": (lab_model(), x_lab),
        "ours": (ours(), x),
        "ours-f32": (ours(policy="float32"), x),
        "ours-keras-bn": (ours(fused=False), x),
        "ours-arrays": (ours(), x),
        "ours-xla": (ours(xla=True), x),
    }
    keras.mixed_precision.set_global_policy("float32")

    def one_pass(name: str, model, data, labels) -> None:
        if name in ("lab", "ours-arrays"):  # Keras' own handling of NumPy arrays
            model.fit(data, labels, batch_size=256, epochs=1, verbose=0)
        else:
            ds = as_dataset(data, labels, 256, shuffle=True)
            model.fit(ds, epochs=1, verbose=0, shuffle=False)

    for name, (model, data) in variants.items():  # warm-up: tracing and first-step costs
        one_pass(name, model, data[:512], y[:512])
    rates: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(a.rounds):
        for name, (model, data) in variants.items():
            t0 = time.perf_counter()
            one_pass(name, model, data, y)
            rates[name].append(len(data) / (time.perf_counter() - t0))

    peak32 = matmul_peak("float32")
    peak16 = matmul_peak("bfloat16")
    train_flops = 3 * forward_flops(2, 64)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; auto precision = {auto.policy}")
    print(f"{a.images} images per pass, batch 256, {a.rounds} alternating rounds (median)")
    print("variant         images/s   vs lab   model GFLOP/s   rounds (images/s)")
    lab = statistics.median(rates["lab"])
    for name, r in rates.items():
        med = statistics.median(r)
        each = " ".join(f"{v:.0f}" for v in r)
        print(
            f"{name:<14} {med:>9.0f}  {med / lab:>6.2f}x  {med * train_flops / 1e9:>10.1f}   {each}"
        )
    paired = " ".join(f"{o / b:.2f}" for o, b in zip(rates["ours"], rates["lab"], strict=True))
    print(f"ours / lab, round by round: {paired}")
    print(f"lab preprocessing (StandardScaler, once): {lab_prep:.2f} s")
    print(f"matmul peak (2048^2): float32 {peak32 / 1e9:.1f} GFLOP/s, bfloat16 {peak16 / 1e9:.1f}")
    best = statistics.median(rates["ours"]) * train_flops
    print(f"ours reaches {100 * best / peak16:.0f}% of the matmul peak at its precision")
    print(f"auto: {auto.describe()}, decided in {auto_s:.1f} s with an empty cache")
    bf16, f32 = statistics.median(rates["ours"]), statistics.median(rates["ours-f32"])
    picked = {"mixed_bfloat16": bf16, "float32": f32}.get(auto.policy)
    if picked is not None:
        print(
            f"auto's policy trains {picked:.0f} images/s; ours {bf16:.0f}, ours-f32 {f32:.0f} "
            f"({bf16 / f32:.2f}x): auto / best of both = {picked / max(bf16, f32):.2f} "
            "(target >= 0.95)"
        )


if __name__ == "__main__":
    main()
