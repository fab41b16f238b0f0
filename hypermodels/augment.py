"""Label-preserving augmentation inside the model, for training batches only.

It runs after the standardization, on z-scores: what it shifts in or erases becomes 0,
the mean image (see ``hypermodels.resnet``). It is the identity at inference.
"""

from __future__ import annotations

import math

import keras
from keras import layers, ops

TRANSLATE_FRACTION = 0.1  # up to ±2.8 pixels: garments are centred, small shifts are realistic
ERASE_PROBABILITY = 0.5
ERASE_MAX_AREA = 0.25


@keras.saving.register_keras_serializable(package="hypermodels")
class RandomErasing(layers.Layer):
    """Random erasing (Zhong et al., 2017): set one random rectangle per image to 0.

    On standardized images 0 is the mean image: the rectangle carries no information.

    With probability ``probability`` an image loses a rectangle covering 2%..``max_area``
    of it, with aspect ratio 0.3..3.3. Training only; the identity at inference.
    """

    def __init__(
        self,
        probability: float = ERASE_PROBABILITY,
        max_area: float = ERASE_MAX_AREA,
        seed: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.probability = probability
        self.max_area = max_area
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=None):
        if not training:
            return x
        h, w = x.shape[1], x.shape[2]
        u = keras.random.uniform((ops.shape(x)[0], 5), seed=self.seed_generator)
        area = 0.02 + u[:, 0] * (self.max_area - 0.02)
        aspect = ops.exp(math.log(0.3) + u[:, 1] * (math.log(3.3) - math.log(0.3)))
        eh = ops.clip(ops.round(ops.sqrt(area * aspect) * h), 1, h)
        ew = ops.clip(ops.round(ops.sqrt(area / aspect) * w), 1, w)
        y0 = ops.floor(u[:, 2] * (h - eh + 1))
        x0 = ops.floor(u[:, 3] * (w - ew + 1))
        rows = ops.cast(ops.arange(h), u.dtype)[None, :]
        cols = ops.cast(ops.arange(w), u.dtype)[None, :]
        in_rows = (rows >= y0[:, None]) & (rows < (y0 + eh)[:, None])
        in_cols = (cols >= x0[:, None]) & (cols < (x0 + ew)[:, None])
        mask = (
            in_rows[:, :, None] & in_cols[:, None, :] & (u[:, 4] < self.probability)[:, None, None]
        )
        return ops.where(mask[..., None], ops.zeros_like(x), x)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "probability": self.probability,
            "max_area": self.max_area,
            "seed": self.seed,
        }


def augmentation(names: tuple[str, ...] | list[str]) -> keras.Layer | None:
    """The augmentation stage for standardized images shaped (28, 28, 1), or None."""
    stages: list[keras.Layer] = []
    # float32, like the standardization they follow.
    if "flip" in names:  # left/right mirror: a mirrored shirt is still a shirt
        stages.append(layers.RandomFlip("horizontal", dtype="float32", name="aug_flip"))
    if "translate" in names:
        stages.append(
            layers.RandomTranslation(
                TRANSLATE_FRACTION,
                TRANSLATE_FRACTION,
                fill_mode="constant",
                fill_value=0.0,
                # Whole-pixel shifts: bilinear resampling blurs every shifted image, a
                # shift away from the sharp validation images that cost 4 points of
                # accuracy in docs/accuracy.md.
                interpolation="nearest",
                dtype="float32",
                name="aug_translate",
            )
        )
    if "erase" in names:
        stages.append(RandomErasing(dtype="float32", name="aug_erase"))
    if not stages:
        return None
    return keras.Sequential(stages, name="augment")
