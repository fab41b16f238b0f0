"""The lab's ResNet, built with the functional API, and its KerasTuner HyperModel.

Architecture (the "ResNet by hand" lab):
    raw 28x28 image -> per-pixel standardization (inside the model)
    -> [optional augmentation, training only]
    -> Conv2D(filters, 3, relu, he_normal) -> MaxPool(2)
    -> N x [conv -> BN -> ReLU -> conv -> BN -> (+ block input) -> ReLU]
    -> MaxPool(2) -> Flatten -> Dense(256, relu, he_normal) -> Dense(10, softmax)

With ``skip=False`` the add is simply left out: the same layers and the same parameter
count, i.e. a plain CNN of identical depth. That is what makes skip on/off a fair
comparison.
"""

from __future__ import annotations

import keras
import keras_tuner
import numpy as np
import tensorflow as tf
from keras import layers

from hypermodels import _leakfix
from hypermodels.augment import augmentation
from hypermodels.batchnorm import FusedBatchNormalization
from hypermodels.inputs import arrays_as_datasets
from hypermodels.optim import compile_model, warmup_cosine
from hypermodels.recipe import KERAS_BN_MOMENTUM, Recipe
from hypermodels.space import SearchSpace
from hypermodels.trial_schedule import TrialSchedule

_leakfix.install()  # flat memory across many models in one process (see _leakfix)
# Each trial or training is a new model, so TensorFlow's retracing warnings say nothing here.
tf.get_logger().setLevel("ERROR")

IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10


def residual_block(
    x,
    filters: int,
    skip: bool,
    name: str,
    fused_batchnorm: bool = True,
    bn_momentum: float = KERAS_BN_MOMENTUM,
):
    """conv -> BN -> ReLU -> conv -> BN -> (+ input) -> ReLU.

    ``fused_batchnorm`` trains the BN layers with TensorFlow's fused kernel (same
    arithmetic and weights, ~1.25x faster training; hypermodels.batchnorm).
    """
    batchnorm = FusedBatchNormalization if fused_batchnorm else layers.BatchNormalization
    shortcut = x
    y = layers.Conv2D(
        filters, 3, padding="same", kernel_initializer="he_normal", name=f"{name}_conv1"
    )(x)
    y = batchnorm(momentum=bn_momentum, name=f"{name}_bn1")(y)
    y = layers.Activation("relu", name=f"{name}_relu1")(y)
    y = layers.Conv2D(
        filters, 3, padding="same", kernel_initializer="he_normal", name=f"{name}_conv2"
    )(y)
    y = batchnorm(momentum=bn_momentum, name=f"{name}_bn2")(y)
    if skip:
        y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.Activation("relu", name=f"{name}_out")(y)


def build_resnet(
    blocks: int = 2,
    filters: int = 64,
    skip: bool = True,
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule = 1e-3,
    recipe: Recipe | None = None,
    mean: np.ndarray | None = None,
    variance: np.ndarray | None = None,
    precision: str | None = None,
    fused_batchnorm: bool = True,
) -> keras.Model:
    """Build and compile the network. It takes raw pixel values (uint8 or float, 0..255).

    ``mean``/``variance`` are the per-pixel statistics of the training split; they become
    a Normalization layer, so the saved model carries its own preprocessing.
    ``precision`` is a Keras dtype policy ("float32", "mixed_bfloat16", ...); it is set
    here because ``keras.backend.clear_session()`` (which KerasTuner calls before every
    trial) resets the global policy. ``recipe`` (default: the lab's plain SGD) sets the
    optimizer, the loss, the augmentation, which runs on training batches only, and batch
    normalization's moving-average momentum;
    ``learning_rate`` may be a schedule (the finalizer's warm-up + cosine decay).
    ``fused_batchnorm=False`` builds Keras' own BatchNormalization layers (for saving).
    """
    recipe = recipe or Recipe()
    if precision is not None:
        keras.mixed_precision.set_global_policy(precision)
    if mean is None:
        mean = np.zeros(IMAGE_SHAPE, np.float32)
    if variance is None:
        variance = np.ones(IMAGE_SHAPE, np.float32)
    inputs = keras.Input(shape=IMAGE_SHAPE, name="image")
    x = layers.Reshape((*IMAGE_SHAPE, 1), name="channel")(inputs)
    # Standardization stays float32 under mixed precision: |z| reaches ~185 on near-constant
    # border pixels, more than bfloat16's 8-bit mantissa should be trusted with.
    x = layers.Normalization(
        axis=(1, 2), mean=mean, variance=variance, dtype="float32", name="standardize"
    )(x)
    # Augmentation moves standardized pixels (z-scores), and what it shifts in or erases
    # becomes 0, the mean image. Before standardization it would move garment pixels onto
    # positions whose statistics were fitted on an almost constant background, giving huge
    # z-scores (measured: -3 to -4 points of accuracy, docs/accuracy.md). It is the
    # identity at inference and runs inside the model, so it needs no input pipeline.
    augment_stage = augmentation(recipe.augment)
    if augment_stage is not None:
        x = augment_stage(x)
    outputs = body_and_head(x, blocks, filters, skip, fused_batchnorm, recipe.bn_momentum)
    model = keras.Model(
        inputs, outputs, name=f"resnet_b{blocks}_f{filters}_{'skip' if skip else 'plain'}"
    )
    compile_model(model, learning_rate, recipe)
    return model


def body_and_head(
    x,
    blocks: int,
    filters: int,
    skip: bool,
    fused_batchnorm: bool = True,
    bn_momentum: float = KERAS_BN_MOMENTUM,
):
    """Stem, residual blocks and classifier, from standardized (and augmented) images."""
    # The stem has the blocks' width so that the identity shortcut needs no projection.
    x = layers.Conv2D(
        filters, 3, padding="same", activation="relu", kernel_initializer="he_normal", name="stem"
    )(x)
    x = layers.MaxPooling2D(2, name="stem_pool")(x)
    for i in range(blocks):
        x = residual_block(x, filters, skip, f"block{i + 1}", fused_batchnorm, bn_momentum)
    x = layers.MaxPooling2D(2, name="head_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(256, activation="relu", kernel_initializer="he_normal", name="dense")(x)
    # float32 softmax keeps the probabilities exact under mixed precision.
    return layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32", name="probs")(x)


def inference_copy(
    model: keras.Model,
    hp: dict,
    mean: np.ndarray | None = None,
    variance: np.ndarray | None = None,
    precision: str | None = None,
) -> keras.Model:
    """The same trained network without its training-only parts.

    Augmentation is the identity at inference, and the fused batch normalization computes
    inference with Keras' own code; building the copy without either makes the saved model
    plain Keras layers, loadable with ``keras.models.load_model`` alone. The batch-norm
    layers keep the momentum they were trained with, so the saved model says so.
    """
    momenta = {x.momentum for x in model.layers if isinstance(x, layers.BatchNormalization)}
    recipe = Recipe(bn_momentum=momenta.pop()) if len(momenta) == 1 else None
    clean = build_resnet(
        **hp, recipe=recipe, mean=mean, variance=variance, precision=precision,
        fused_batchnorm=False,
    )  # fmt: skip
    for layer in clean.layers:
        layer.set_weights(model.get_layer(layer.name).get_weights())
    return clean


def count_adds(model: keras.Model) -> int:
    """How many residual additions the network has (0 for the plain variant)."""
    return sum(isinstance(layer, layers.Add) for layer in model.layers)


def hp_values(hp: keras_tuner.HyperParameters, space: SearchSpace) -> dict:
    """Declare the four searched hyperparameters and return their values.

    A range that collapses to one value becomes ``hp.Fixed``, so it still shows in
    TensorBoard's HParams dashboard and in ``trials.csv``.
    """
    if space.blocks_min == space.blocks_max:
        blocks = hp.Fixed("blocks", space.blocks_min)
    else:
        blocks = hp.Int("blocks", space.blocks_min, space.blocks_max)
    if len(space.filters) == 1:
        filters = hp.Fixed("filters", space.filters[0])
    else:
        filters = hp.Choice("filters", list(space.filters))
    skip = hp.Boolean("skip") if space.skip == "both" else hp.Fixed("skip", space.skip == "on")
    if space.lr_min == space.lr_max:
        learning_rate = hp.Fixed("learning_rate", space.lr_min)
    else:
        learning_rate = hp.Float("learning_rate", space.lr_min, space.lr_max, sampling="log")
    return {"blocks": blocks, "filters": filters, "skip": skip, "learning_rate": learning_rate}


class ResNetHyperModel(keras_tuner.HyperModel):
    """Searches blocks, filters, skip and the SGD learning rate; the rest is fixed per run.

    ``fit`` is where per-trial data handling belongs (KerasTuner's guide): arrays become
    our own ``tf.data`` pipeline (``hypermodels.inputs``) before Keras sees them.
    ``trial_schedule`` sets how the rate moves within a trial
    (``hypermodels.trial_schedule``); the schedule is the optimizer's, so a trial resumed
    from its checkpoint goes on where it stopped.
    """

    def __init__(
        self,
        space: SearchSpace | None = None,
        mean: np.ndarray | None = None,
        variance: np.ndarray | None = None,
        recipe: Recipe | None = None,
        precision: str | None = None,
        trial_schedule: TrialSchedule | None = None,
    ) -> None:
        super().__init__(name="resnet")
        self.space = space or SearchSpace()
        self.mean = mean
        self.variance = variance
        self.recipe = recipe or Recipe()
        self.precision = precision
        self.trial_schedule = trial_schedule or TrialSchedule()

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        values = hp_values(hp, self.space)
        steps = self.trial_schedule.steps(hp.values)
        if steps is not None:
            values["learning_rate"] = warmup_cosine(values["learning_rate"], *steps)
        return build_resnet(
            **values,
            recipe=self.recipe,
            precision=self.precision,
            mean=self.mean,
            variance=self.variance,
        )

    def fit(self, hp: keras_tuner.HyperParameters, model: keras.Model, *args, **kwargs):
        args, kwargs = arrays_as_datasets(args, kwargs)
        return model.fit(*args, **kwargs)
