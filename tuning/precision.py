"""Numeric precision: ``auto`` picks what the hardware computes fastest.

- a CUDA GPU with tensor cores (compute capability 7.0 or newer): ``mixed_float16``;
- a CPU that computes bfloat16 natively (AVX512-BF16 or AMX): ``mixed_bfloat16``;
- anything else: ``float32``.

Mixed precision computes layers in 16 bits and keeps the weights, the standardization and
the softmax in float32 (see ``hypermodels.resnet``).
"""

from __future__ import annotations

from pathlib import Path

from tuning.errors import UsageError

CHOICES = ("auto", "float32", "mixed_bfloat16", "mixed_float16")


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def gpu_has_tensor_cores() -> bool:
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if capability and tuple(capability) >= (7, 0):
            return True
    return False


def resolve(precision: str) -> str:
    """The Keras dtype policy name for a --precision value."""
    if precision not in CHOICES:
        raise UsageError(f"--precision must be one of {', '.join(CHOICES)}, not {precision!r}")
    if precision != "auto":
        return precision
    if gpu_has_tensor_cores():
        return "mixed_float16"
    if cpu_flags() & {"avx512_bf16", "amx_bf16"}:
        return "mixed_bfloat16"
    return "float32"
