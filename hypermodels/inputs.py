"""In-memory arrays as the ``tf.data`` pipeline every training here runs on.

Keras turns arrays given to ``fit`` into an autotuned ``tf.data`` pipeline; deleting an
autotuned iterator joins its optimization thread, which stalled the end of ``fit`` by up
to 5 s at random (up to 20 s per trial in a search; benchmarks/RESULTS.md). Ours has
autotuning off, shuffles only indices and gathers each batch in one op.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def as_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool) -> tf.data.Dataset:
    """Arrays as a batched pipeline for ``fit``.

    Batched like Keras' own handling of arrays (every image once per epoch in a new order
    from the global seed, the last batch partial), with the same batch sizes.
    """
    images, labels = tf.constant(x), tf.constant(y)
    order = tf.data.Dataset.range(len(y))
    if shuffle:
        order = order.shuffle(len(y), reshuffle_each_iteration=True)
    ds = order.batch(batch_size).map(lambda i: (tf.gather(images, i), tf.gather(labels, i)))
    options = tf.data.Options()
    options.autotune.enabled = False
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.prefetch(1).with_options(options)


def arrays_as_datasets(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """``fit(x, y, batch_size=, shuffle=, validation_data=(x, y))`` on :func:`as_dataset`.

    Anything but two arrays passes through untouched; the caller's dict is not changed.
    """
    if len(args) != 2 or not all(isinstance(a, np.ndarray) for a in args):
        return args, kwargs
    kwargs = dict(kwargs)
    batch_size = kwargs.pop("batch_size", None) or 32  # Keras' default
    shuffle = kwargs.pop("shuffle", True)
    kwargs["shuffle"] = False  # the dataset shuffles itself (fit's default would warn)
    fit_args = (as_dataset(*args, batch_size, shuffle=bool(shuffle)),)
    valid = kwargs.get("validation_data")
    if isinstance(valid, tuple) and len(valid) == 2:
        kwargs["validation_data"] = as_dataset(*valid, batch_size, shuffle=False)
    return fit_args, kwargs
