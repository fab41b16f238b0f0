"""Numeric precision: ``auto`` times the candidates on this machine and keeps the faster.

Why measure instead of reading CPU flags: the flags say what a CPU *can* compute, not how
fast. An Intel Xeon with AVX512-BF16 but no AMX trained this project's networks in
``mixed_bfloat16`` at about 0.66x its float32 speed, so "the CPU lists avx512_bf16, use
bfloat16" picked the slower precision there, while the AMD EPYC with the same flag that
this project is developed on trains 1.6-2x faster in bfloat16 (benchmarks/RESULTS.md).
Only a measurement tells them apart.

How ``auto`` decides:
- candidates: a GPU: ``float32`` and ``mixed_float16``; a CPU whose flags list bfloat16
  instructions (``avx512_bf16``, ``amx_bf16``, Arm's ``bf16``): ``float32`` and
  ``mixed_bfloat16``; any other CPU: ``float32`` alone, without measuring (bfloat16 is
  then emulated through float32 and cannot be faster: flags may overstate the speed, but
  no flag means no bfloat16 arithmetic);
- a few steady-state training steps of the default search space's mid-sized network
  (2 blocks x 64 filters, the lab's network, synthetic uint8 images) at each candidate,
  in alternating turns (``measure_rates``: about 2 s on 2 cores), in a child process so
  that this process's TensorFlow is left untouched: no device initialized
  (``--cpu-replicas`` must configure the CPU before that), no Keras global state, no
  random state consumed (the child's imports add about 2.5 s);
- the 16-bit candidate wins only when it trains at least ``MIN_SPEEDUP`` x as many
  images per second as float32;
- the verdict's rates are cached per machine (CPU model, cores, TensorFlow version, GPU
  names) in ``$FASHION_RESNET_CACHE_DIR`` or ``$XDG_CACHE_HOME/fashion-resnet-tuner``
  (``~/.cache/fashion-resnet-tuner``), file ``precision.json``; delete it to re-measure.

Mixed precision computes layers in 16 bits and keeps the weights, the standardization and
the softmax in float32 (see ``hypermodels.resnet``).

    python -m tuning.machine.timing   # what auto picks here, and why
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tuning.errors import UsageError

CHOICES = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
FLOAT32 = "float32"
# A 16-bit policy must beat float32 by 10% to be picked: a few steps on a busy machine
# scatter by several percent (1.83-2.04x here over fifteen runs, idle and loaded), and
# mixed precision has costs the timing does not show (coarser numerics, results that
# differ from float32 machines), which a marginal gain does not pay for.
MIN_SPEEDUP = 1.10
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})  # x86 flags, Arm's Features

# The timed network and steps. Changing them changes METHOD, which invalidates caches.
BLOCKS, FILTERS, BATCH_SIZE, ROUNDS, STEPS = 2, 64, 128, 3, 2
METHOD = f"resnet-b{BLOCKS}-f{FILTERS}-batch{BATCH_SIZE}-{ROUNDS}x{STEPS}steps"
MEASURE_TIMEOUT_S = 300

CACHE_ENV = "FASHION_RESNET_CACHE_DIR"
CACHE_APP = "fashion-resnet-tuner"
CACHE_FILE = "precision.json"
CACHE_FORMAT = 1
CACHE_ENTRIES = 16  # machines sharing one home folder (a cluster) each keep theirs

ROOT = Path(__file__).resolve().parents[1]

Measure = Callable[[tuple[str, ...]], dict[str, float]]


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a run uses and, for ``auto``, the measurement behind it."""

    policy: str  # the Keras dtype policy name actually used
    requested: str  # what the user asked: "auto" or a fixed policy
    rates: dict[str, float] = field(default_factory=dict)  # images/s per candidate
    cached: bool = False  # the rates came from the cache, not from a measurement now
    candidates: tuple[str, ...] = ()  # what auto considered on this device

    def ratio(self) -> float | None:
        """The best 16-bit candidate's measured rate over float32's (None if not both)."""
        base = self.rates.get(FLOAT32)
        others = [r for p, r in self.rates.items() if p != FLOAT32]
        if not base or not others:
            return None
        return max(others) / base

    def describe(self) -> str:
        """One line for logs: the policy and, for auto, why."""
        if self.requested != "auto":
            return self.policy
        ratio = self.ratio()
        if ratio is None:
            missing = [c for c in self.candidates if c not in self.rates]
            why = (
                f"{', '.join(missing)} could not be timed"
                if len(self.candidates) > 1 and missing
                else "no bfloat16 instructions on this CPU"
            )
        elif self.policy != FLOAT32:
            why = f"{ratio:.2f}x float32 measured"
        else:
            sixteen = max((p for p in self.rates if p != FLOAT32), key=self.rates.__getitem__)
            why = f"{_short(sixteen)} {ratio:.2f}x float32"
            if ratio >= 1.0:
                why += f", under the {MIN_SPEEDUP:.2f}x margin"
        if self.cached:
            why += ", cached"
        return f"{self.policy} (auto: {why})"

    def to_json(self) -> dict:
        """For run.json/report.json."""
        ratio = self.ratio()
        return {
            "policy": self.policy,
            "requested": self.requested,
            "rates": {p: round(r, 1) for p, r in self.rates.items()},
            "ratio": None if ratio is None else round(ratio, 3),
            "cached": self.cached,
        }


def _short(policy: str) -> str:
    return policy.removeprefix("mixed_")


# --- the device --------------------------------------------------------------------------


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_flags() -> set[str]:
    """The first CPU's feature flags (x86 ``flags``, Arm ``Features``); empty if unknown."""
    for line in _cpuinfo().splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_model() -> str:
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def cpu_cores() -> int:
    """The cores this process may run on (its affinity, as TensorFlow sizes its pools)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def gpu_names() -> list[str]:
    """The visible GPUs' names. Listing them does not initialize them."""
    import tensorflow as tf

    names = []
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            details = tf.config.experimental.get_device_details(gpu)
        except Exception:  # details are best effort; the device itself is what counts
            details = {}
        names.append(str(details.get("device_name", gpu.name)))
    return names


def tensorflow_version() -> str:
    import tensorflow as tf

    return tf.__version__


def candidates() -> tuple[str, ...]:
    """The policies auto chooses from on this device (float32 first)."""
    if gpu_names():
        return (FLOAT32, "mixed_float16")
    if cpu_flags() & BF16_FLAGS:
        return (FLOAT32, "mixed_bfloat16")
    return (FLOAT32,)


def machine_key(cands: Iterable[str]) -> dict:
    """What the cached verdict depends on; any change means measuring again."""
    return {
        "cpu": cpu_model(),
        "cores": cpu_cores(),
        "tensorflow": tensorflow_version(),
        "gpus": gpu_names(),
        "candidates": list(cands),
        "method": METHOD,
    }


# --- the decision ------------------------------------------------------------------------


def decide(rates: dict[str, float]) -> str:
    """The fastest 16-bit policy if it beats float32 by ``MIN_SPEEDUP``, else float32."""
    base = rates.get(FLOAT32)
    others = {p: r for p, r in rates.items() if p != FLOAT32}
    if not base or not others:
        return FLOAT32
    best = max(others, key=others.__getitem__)
    return best if others[best] >= MIN_SPEEDUP * base else FLOAT32


def choose(
    requested: str, *, measure: Measure | None = None, cache_dir: str | os.PathLike | None = None
) -> PrecisionChoice:
    """The precision for a ``--precision`` value; ``auto`` measures (or reads the cache).

    ``measure`` maps candidate policies to images/s (default: ``measure_in_subprocess``);
    ``cache_dir`` overrides where ``precision.json`` lives.
    """
    if requested not in CHOICES:
        raise UsageError(f"--precision must be one of {', '.join(CHOICES)}, not {requested!r}")
    if requested != "auto":
        return PrecisionChoice(requested, requested)
    cands = candidates()
    if len(cands) == 1:
        return PrecisionChoice(cands[0], "auto", candidates=cands)
    key = machine_key(cands)
    path = cache_path(cache_dir)
    rates = read_cache(path, key) if path else None
    cached = rates is not None
    if rates is None:
        measured = (measure or measure_in_subprocess)(cands)
        rates = {p: float(r) for p, r in measured.items() if p in cands and _positive(r)}
        if path and all(c in rates for c in cands):
            write_cache(path, key, rates)
    return PrecisionChoice(decide(rates), "auto", rates, cached, cands)


def resolve(precision: str) -> str:
    """The Keras dtype policy name for a --precision value."""
    return choose(precision).policy


# --- the cache ---------------------------------------------------------------------------


def cache_path(cache_dir: str | os.PathLike | None = None) -> Path | None:
    """``precision.json`` in the cache folder, or None where there is no home to cache in."""
    if cache_dir is None and os.environ.get(CACHE_ENV):
        cache_dir = os.environ[CACHE_ENV]
    if cache_dir is None:
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        try:
            base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
        except RuntimeError:  # no home folder
            return None
        cache_dir = base / CACHE_APP
    return Path(cache_dir).expanduser() / CACHE_FILE


def _positive(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _entries(path: Path) -> list[dict]:
    """The cache's entries; nothing when the file is missing, unreadable or garbled."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
        return []
    entries = data.get("entries")
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def read_cache(path: Path, key: dict) -> dict[str, float] | None:
    """The rates cached for this key, or None."""
    for entry in _entries(path):
        rates = entry.get("rates")
        if entry.get("key") != key or not isinstance(rates, dict):
            continue
        if all(_positive(rates.get(c)) for c in key["candidates"]):
            return {c: float(rates[c]) for c in key["candidates"]}
    return None


def write_cache(path: Path, key: dict, rates: dict[str, float]) -> None:
    """Put this key's rates first; an unwritable cache folder just means no cache."""
    from tuning.rundir.records import atomic_write_json

    entry = {"key": key, "rates": rates, "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    others = [e for e in _entries(path) if e.get("key") != key]
    with contextlib.suppress(OSError):
        atomic_write_json(
            path, {"format": CACHE_FORMAT, "entries": [entry, *others][:CACHE_ENTRIES]}
        )


# --- the measurement ---------------------------------------------------------------------


def measure_in_subprocess(cands: tuple[str, ...]) -> dict[str, float]:
    """``measure_rates`` in a child Python: this process's TensorFlow stays untouched.

    A candidate the child could not time is left out (and said on stderr): auto then
    keeps float32 for this run and caches nothing.
    """
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    command = [sys.executable, "-m", "tuning.machine.timing", "--measure", ",".join(cands)]
    rates: dict[str, float] = {}
    errors: dict[str, str] = {}
    try:
        proc = subprocess.run(
            command,
            env={**os.environ, "PYTHONPATH": path},
            capture_output=True,
            text=True,
            timeout=MEASURE_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        errors = dict.fromkeys(cands, type(exc).__name__)
    else:
        try:
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            rates, errors = dict(result["rates"]), dict(result["errors"])
        except (ValueError, IndexError, KeyError, TypeError):
            last = proc.stderr.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
            errors = dict.fromkeys(cands, last[0][:200])
    for policy, error in errors.items():
        print(f"precision: could not time {policy} ({error})", file=sys.stderr, flush=True)
    return rates
