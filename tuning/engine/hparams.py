"""TensorBoard's HParams dashboard: the experiment's declaration and failed trials.

Scalars and each trial's HParams come from KerasTuner itself: a ``TensorBoard`` callback
passed to ``search`` is copied per trial (``<logdir>/<trial_id>/execution0``) and gets an
HParams callback beside it. Here we declare the domains and metrics, and mark failures.
"""

from __future__ import annotations

from pathlib import Path

from hypermodels.space import SearchSpace


def write_hparams_config(logdir: Path, space: SearchSpace) -> None:
    """Declare the HParams experiment so TensorBoard names the metrics and domains."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp_api

    hparams = [
        hp_api.HParam("blocks", hp_api.IntInterval(space.blocks_min, space.blocks_max)),
        hp_api.HParam("filters", hp_api.Discrete(list(space.filters))),
        hp_api.HParam(
            "skip", hp_api.Discrete([True, False] if space.skip == "both" else [space.skip == "on"])
        ),
        hp_api.HParam("learning_rate", hp_api.RealInterval(space.lr_min, space.lr_max)),
    ]
    metrics = [
        hp_api.Metric("epoch_accuracy", group="validation", display_name="val_accuracy"),
        hp_api.Metric("epoch_loss", group="validation", display_name="val_loss"),
        hp_api.Metric("epoch_accuracy", group="train", display_name="train_accuracy"),
        hp_api.Metric("epoch_loss", group="train", display_name="train_loss"),
    ]
    writer = tf.summary.create_file_writer(str(logdir))
    with writer.as_default():
        hp_api.hparams_config(hparams=hparams, metrics=metrics)
    writer.close()


def log_trial_failure(logdir: Path, trial_id: str, reason: str | None) -> None:
    """Mark a trial failed in TensorBoard: a text summary and the HParams session status."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api_pb2
    from tensorboard.plugins.hparams import summary as hp_summary

    writer = tf.summary.create_file_writer(str(logdir / trial_id / "execution0"))
    with writer.as_default():
        tf.summary.text("failure", f"trial {trial_id} failed: {reason}", step=0)
        pb = hp_summary.session_end_pb(api_pb2.STATUS_FAILURE)
        tf.summary.experimental.write_raw_pb(pb.SerializeToString(), step=0)
    writer.close()
