"""Batch normalization trained with TensorFlow's fused kernel.

Keras 3 trains ``BatchNormalization`` as separate operations: a cast to float32, two
reductions for the batch moments, the normalization's arithmetic, a cast back, and as many
again for the gradient. ``FusedBatchNormV3`` does the forward pass and its gradient in one
kernel each (oneDNN on CPU, cuDNN on GPU) and takes bfloat16/float16 activations with
float32 statistics directly. Same result (tests/test_batchnorm.py compares outputs,
gradients and moving statistics); measured 1.25x more training images per second for the
lab's network on the development CPU (benchmarks/RESULTS.md).

Only training uses the fused kernel; inference, and any configuration the kernel does not
cover (masks, renorm, synchronized statistics, channels not last, inputs not 4-D), runs
Keras' own code. The weights are Keras' own, so a trained model's weights load into a
plain ``BatchNormalization`` (``hypermodels.inference_copy`` does that for saved models).
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="hypermodels")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` whose training step is one fused kernel."""

    def _fusable(self, inputs, mask) -> bool:
        return (
            mask is None
            and not self.renorm
            and not self.synchronized
            and self.center
            and self.scale
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
        )

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable and self._fusable(inputs, mask)):
            return super().call(inputs, training=training, mask=mask)
        outputs, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=inputs,
            scale=tf.cast(self.gamma, "float32"),
            offset=tf.cast(self.beta, "float32"),
            mean=tf.constant([], "float32"),
            variance=tf.constant([], "float32"),
            epsilon=self.epsilon,
            exponential_avg_factor=1.0,
            data_format="NHWC",
            is_training=True,
        )
        # The kernel normalizes with the batch's biased variance but returns the unbiased
        # one; Keras' moving variance averages the biased one, so undo Bessel's factor.
        n = tf.cast(tf.size(inputs) // tf.shape(inputs)[-1], "float32")
        variance = variance * ((n - 1.0) / n)
        momentum = self.momentum
        self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
        self.moving_variance.assign(self.moving_variance * momentum + variance * (1.0 - momentum))
        return tf.cast(outputs, self.compute_dtype)
