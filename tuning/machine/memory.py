"""Will a training fit in this machine's memory? Estimated before it starts.

The largest network the flags allow (64 blocks x 1024 filters) needs hundreds of GB to
train; without a check the out-of-memory killer ends the process with no message. The
estimate counts what a training step keeps for its backward pass: each layer's output for
every image of the batch and its gradient, in float32 (mixed precision keeps most of them
in 16 bits, so this errs high), plus four copies of the weights (weights, gradients,
momentum, a spare) and TensorFlow's own footprint. Measured against a real process it is
about twice the peak resident memory for the lab's network: a refusal means "clearly
does not fit", a warning "might not".
"""

from __future__ import annotations

from pathlib import Path

from tuning.errors import ProjectError

TENSORFLOW_BYTES = 1.0e9  # the runtime, its kernels and the data pipeline, measured ~0.9 GB
FLOAT_BYTES = 4


def parameters(blocks: int, filters: int) -> int:
    """Trainable and batch-normalization weights of the network (hypermodels.resnet)."""
    stem = 9 * filters + filters
    block = 2 * (9 * filters * filters + filters) + 2 * 4 * filters
    head = 7 * 7 * filters * 256 + 256 + 256 * 10 + 10
    return stem + blocks * block + head


def training_bytes(blocks: int, filters: int, batch_size: int) -> float:
    """Estimated peak memory of training the network with this batch size."""
    stem = 28 * 28 * filters * 3 + 14 * 14 * filters  # conv, relu, pooled
    block = 14 * 14 * filters * 9  # two convs, two BNs (with their inputs), relu, add, relu
    head = 7 * 7 * filters * 2 + 256 * 2
    per_image = stem + blocks * block + head
    activations = batch_size * per_image * FLOAT_BYTES * 2  # values and their gradients
    return activations + parameters(blocks, filters) * FLOAT_BYTES * 4 + TENSORFLOW_BYTES


def available_bytes() -> int | None:
    """Memory this process may still use: MemAvailable, or a smaller cgroup limit."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            found.append(int(limit))
    except OSError:
        pass
    return min(found) if found else None


def check_fits(blocks: int, filters: int, batch_size: int, what: str) -> str | None:
    """Refuse a training that clearly does not fit; a warning line when it might not."""
    need = training_bytes(blocks, filters, batch_size)
    have = available_bytes()
    if have is None:
        return None
    text = (
        f"{what} ({blocks} blocks x {filters} filters, batch {batch_size}) needs about "
        f"{need / 2**30:.1f} GiB to train; {have / 2**30:.1f} GiB of memory is available"
    )
    if need > have:
        raise ProjectError(
            f"{text}. Choose fewer blocks or filters, or a smaller --batch-size "
            "(estimate: tuning/machine/memory.py)"
        )
    if need > have / 2:
        return f"warning: {text}; it may not fit beside other programs"
    return None
