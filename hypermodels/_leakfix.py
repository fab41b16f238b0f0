"""Work around a per-model memory leak in Keras 3's TensorFlow optimizer.

Every compiled train step sums gradients across replicas with
``ReplicaContext.all_reduce``, which TensorFlow implements with ``tf.custom_gradient``.
In graph mode that registers a new gradient function in a process-wide registry that is
never cleared, and the function keeps the whole traced graph alive: about 6 MB per model
with this network, so a long search grows without bound even with
``keras.backend.clear_session()``. With one replica the sum is the identity, so we skip
the call there; with several replicas Keras' own code runs unchanged.
"""

from __future__ import annotations

import tensorflow as tf
from keras.src.backend.tensorflow.optimizer import TFOptimizer

_original = TFOptimizer._all_reduce_sum_gradients


def _all_reduce_sum_gradients(self, grads_and_vars):
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync == 1:
        return list(grads_and_vars)
    return _original(self, grads_and_vars)


def install() -> None:
    TFOptimizer._all_reduce_sum_gradients = _all_reduce_sum_gradients
