"""Loss, optimizer and learning-rate schedule of the recipe (``hypermodels.recipe``).

The finalizer uses the warm-up + cosine schedule (it knows its epoch count; a Hyperband
trial does not, so trials keep a constant rate).
"""

from __future__ import annotations

import keras
from keras import ops

from hypermodels.recipe import Recipe

NO_DECAY = ("bias", "gamma", "beta")  # weight decay shrinks kernels only


@keras.saving.register_keras_serializable(package="hypermodels")
class SparseSmoothedCrossentropy(keras.losses.Loss):
    """Cross-entropy on integer labels with label smoothing (Keras' sparse loss has none)."""

    def __init__(
        self, label_smoothing: float = 0.1, name: str = "smoothed_crossentropy", **kwargs
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        one_hot = ops.one_hot(labels, ops.shape(y_pred)[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(
            one_hot, y_pred, label_smoothing=self.label_smoothing
        )

    def get_config(self) -> dict:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def warmup_cosine(
    peak: float, total_steps: int, warmup_steps: int = 0
) -> keras.optimizers.schedules.LearningRateSchedule:
    """Linear warm-up from 0 to ``peak``, then cosine decay to 0 at ``total_steps``."""
    warmup_steps = max(0, min(warmup_steps, total_steps - 1))
    decay_steps = max(1, total_steps - warmup_steps)
    if warmup_steps == 0:
        return keras.optimizers.schedules.CosineDecay(peak, decay_steps)
    return keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps, warmup_target=peak, warmup_steps=warmup_steps
    )


def compile_model(model: keras.Model, learning_rate, recipe: Recipe) -> None:
    """SGD with the recipe's momentum and weight decay, its loss, accuracy as the metric."""
    optimizer = keras.optimizers.SGD(
        learning_rate=learning_rate,
        momentum=recipe.momentum,
        nesterov=recipe.nesterov,
        weight_decay=recipe.weight_decay or None,
    )
    if recipe.weight_decay:
        optimizer.exclude_from_weight_decay(var_names=list(NO_DECAY))
    loss = (
        SparseSmoothedCrossentropy(recipe.label_smoothing)
        if recipe.label_smoothing
        else "sparse_categorical_crossentropy"
    )
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
