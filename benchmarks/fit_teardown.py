"""How long ``fit`` takes to return after its last callback, per input pipeline.

    python benchmarks/fit_teardown.py --data-dir ../shared/data/fashion-mnist [--fits 12]

Each round trains a fresh small network for one epoch (3,000 images, validation on 3,000)
with each pipeline in turn, and times from ``on_train_end`` to ``fit`` returning: the
teardown of the pipeline's iterators. Pipelines:

- ``keras-arrays``: NumPy arrays handed to ``fit`` (Keras builds an autotuned tf.data
  pipeline from them), what the search used before ``tuning.data.as_dataset``;
- ``ours+autotune``: ``as_dataset`` with tf.data's autotuning switched back on;
- ``ours``: ``as_dataset`` as the search uses it (autotuning off).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PIPELINES = ("keras-arrays", "ours+autotune", "ours")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir")
    p.add_argument("--fits", type=int, default=12, help="rounds (one fit per pipeline each)")
    p.add_argument("--images", type=int, default=3000)
    a = p.parse_args()

    import keras
    import tensorflow as tf

    from hypermodels import build_resnet
    from hypermodels.inputs import as_dataset
    from hypermodels.recipe import Recipe
    from tuning.data import load_splits

    s = load_splits(a.data_dir, 0)
    x, y = s.x_train[: a.images], s.y_train[: a.images]
    xv, yv = s.x_valid[: a.images], s.y_valid[: a.images]

    class Mark(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            self.t = time.perf_counter()

    def autotuned(ds):
        options = tf.data.Options()
        options.autotune.enabled = True
        return ds.with_options(options)

    waits: dict[str, list[float]] = {name: [] for name in PIPELINES}
    for _ in range(a.fits):
        for name in PIPELINES:  # alternate, so drifts in machine speed hit all alike
            keras.backend.clear_session(free_memory=False)
            model = build_resnet(1, 16, True, 0.01, Recipe(momentum=0.9), s.mean, s.variance)
            mark = Mark()
            if name == "keras-arrays":
                model.fit(x, y, batch_size=256, epochs=1, validation_data=(xv, yv),
                          callbacks=[mark], verbose=0)  # fmt: skip
            else:
                train, valid = as_dataset(x, y, 256, True), as_dataset(xv, yv, 256, False)
                if name == "ours+autotune":
                    train, valid = autotuned(train), autotuned(valid)
                model.fit(train, epochs=1, validation_data=valid, shuffle=False,
                          callbacks=[mark], verbose=0)  # fmt: skip
            waits[name].append(time.perf_counter() - mark.t)
    print(f"{a.fits} fits per pipeline, {len(y)} training images, batch 256")
    print("pipeline        total s   median s   max s   fits > 0.1 s")
    for name, w in waits.items():
        slow = sum(v > 0.1 for v in w)
        print(f"{name:14} {sum(w):8.2f} {statistics.median(w):10.3f} {max(w):7.2f} {slow:8d}")
    ours = sum(waits["ours"])
    print(f"keras-arrays waits {sum(waits['keras-arrays']) / max(ours, 1e-3):.0f}x as long as ours")
    return 0


if __name__ == "__main__":
    sys.exit(main())
