"""The same small search as one process and as a chief with N workers, side by side.

    python benchmarks/distributed_speed.py --data-dir ../shared/data/fashion-mnist

Runs `python -m tuning.search` once alone and once as chief + ``--workers`` workers on
127.0.0.1 (same arguments, fresh run directories), alternating ``--rounds`` times, and
prints each wall time (process start to the last exit) and the ratio. On a machine whose
cores one process already keeps busy, the workers share the same cores: expect a gain only
from the work a single process does serially between trials, or with one GPU per worker.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tuning.engine import free_port  # noqa: E402


def launch(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tuning.search", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def timed(procs: list[subprocess.Popen]) -> float:
    t0 = time.perf_counter()
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"a search process failed:\n{err[-2000:]}")
    return time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument(
        "--search-args",
        default="--subset 2000 --max-epochs 3 --factor 3 --blocks 1:2 --filters 16,32 "
        "--learning-rate 1e-3:1e-1 --verbose 0",
    )
    args = p.parse_args()
    base = args.search_args.split()
    if args.data_dir:
        base += ["--data-dir", args.data_dir]
    alone, together = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            d = Path(tmp) / f"r{r}"
            t0 = time.perf_counter()
            timed([launch([*base, "--directory", str(d), "--project-name", "single"])])
            alone.append(time.perf_counter() - t0)
            oracle = f"127.0.0.1:{free_port()}"
            common = [*base, "--directory", str(d), "--project-name", "dist", "--oracle", oracle]
            t0 = time.perf_counter()
            procs = [launch([*common, "--role", "chief"])]
            procs += [
                launch([*common, "--role", "worker", "--worker-id", f"w{i + 1}"])
                for i in range(args.workers)
            ]
            timed(procs)
            together.append(time.perf_counter() - t0)
            print(f"round {r + 1}: 1 process {alone[-1]:.1f} s, chief + {args.workers} "
                  f"workers {together[-1]:.1f} s", flush=True)  # fmt: skip
    a, t = statistics.median(alone), statistics.median(together)
    print(f"machine: {os.cpu_count()} cores; search: {' '.join(args.search_args.split())}")
    print(f"1 process:            {a:7.1f} s")
    print(f"chief + {args.workers} workers:   {t:7.1f} s   speed-up {a / t:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
