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


# cgroup v1 reports "no limit" as the largest page-aligned 63-bit number; anything this
# large is no limit on any real machine.
UNLIMITED = 2**60


def available_bytes(
    proc: Path = Path("/proc"), cgroup: Path = Path("/sys/fs/cgroup")
) -> int | None:
    """Memory this process may still use: MemAvailable, or a smaller cgroup limit.

    The limits are those of the process's own cgroup and every cgroup above it, v2
    (``memory.max``) and v1 (``memory.limit_in_bytes``), found through
    ``/proc/self/mountinfo`` (``cgroup`` is where they are looked for when that cannot
    be read); ``proc`` and ``cgroup`` are arguments so the tests can fake both.
    """
    found = []
    try:
        for line in (Path(proc) / "meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    found += cgroup_limits(Path(proc), Path(cgroup))
    return min(found) if found else None


def cgroup_limits(proc: Path, cgroup: Path) -> list[int]:
    """The memory limits set on this process's cgroups, v1 and v2, in bytes."""
    own = _own_cgroups(proc)
    limits = []
    for version, mount_point, mount_root in _cgroup_mounts(proc, cgroup):
        path = own.get(version)
        if path is None:
            continue
        # The process's cgroup relative to the mount (a container sees its own as "/").
        relative = (
            Path(path).relative_to(mount_root) if Path(path).is_relative_to(mount_root) else Path()
        )
        folder = mount_point / relative
        name = "memory.max" if version == 2 else "memory.limit_in_bytes"
        for level in (folder, *folder.parents):
            limit = _read_limit(level / name)
            if limit is not None:
                limits.append(limit)
            if level == mount_point:
                break
    return limits


def _own_cgroups(proc: Path) -> dict[int, str]:
    """This process's cgroup paths from /proc/self/cgroup: {2: v2 path, 1: v1 memory path}."""
    own = {}
    try:
        lines = (proc / "self" / "cgroup").read_text().splitlines()
    except OSError:
        return {2: "/", 1: "/"}
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            own[2] = path
        elif "memory" in controllers.split(","):
            own[1] = path
    return own


def _cgroup_mounts(proc: Path, cgroup: Path) -> list[tuple[int, Path, str]]:
    """(version, mount point, the cgroup path the mount shows as its root) of the cgroup v2
    file system and the v1 memory controller, from /proc/self/mountinfo."""
    mounts = []
    try:
        lines = (proc / "self" / "mountinfo").read_text().splitlines()
    except OSError:
        return [(2, cgroup, "/"), (1, cgroup / "memory", "/")]
    for line in lines:
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        after = line.split(" - ", 1)[1].split()
        if not after:
            continue
        root, mount_point = fields[3], Path(fields[4].replace("\\040", " "))
        options = after[2].split(",") if len(after) > 2 else []
        if after[0] == "cgroup2":
            mounts.append((2, mount_point, root))
        elif after[0] == "cgroup" and "memory" in options:
            mounts.append((1, mount_point, root))
    return mounts


def _read_limit(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text.isdigit() or int(text) >= UNLIMITED:  # "max" (v2) or v1's huge "no limit"
        return None
    return int(text)


def check_fits(
    blocks: int, filters: int, batch_size: int, what: str, images: int | None = None
) -> str | None:
    """Refuse a training that clearly does not fit; a warning line when it might not.

    ``images``: how many images it trains on (at most), when known: a batch is never
    larger than that, however large ``--batch-size`` is.
    """
    batch = min(batch_size, images) if images else batch_size
    need = training_bytes(blocks, filters, batch)
    have = available_bytes()
    if have is None:
        return None
    text = (
        f"{what} ({blocks} blocks x {filters} filters, batch {batch}) needs about "
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
