"""How each trial trains: on one device, or mirrored over several (``--strategy``)."""

from __future__ import annotations

from tuning.errors import ProjectError, UsageError


def make_strategy(name: str, cpu_replicas: int | None = None):
    """``tf.distribute.MirroredStrategy`` over this machine's GPUs (KerasTuner's
    ``distribution_strategy``), or None. ``cpu_replicas`` splits the CPU into that many
    logical devices instead, to try data-parallel training where there is no GPU. Call it
    before TensorFlow places anything on a device; ``SearchConfig`` has validated both."""
    if name == "none":
        return None
    import tensorflow as tf

    devices = None
    if cpu_replicas:
        if tf.config.list_physical_devices("GPU"):
            raise UsageError("--cpu-replicas is for machines without a GPU")
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_replicas
            )
        except RuntimeError as exc:  # TensorFlow already placed something
            raise ProjectError(f"--cpu-replicas: {exc}") from None
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    strategy = tf.distribute.MirroredStrategy(devices)
    names = devices or [d.name for d in tf.config.list_logical_devices("GPU")] or ["CPU:0"]
    print(
        f"strategy: MirroredStrategy, {strategy.num_replicas_in_sync} replica(s) on "
        f"{', '.join(names)}; each batch is split between them",
        flush=True,
    )
    return strategy
