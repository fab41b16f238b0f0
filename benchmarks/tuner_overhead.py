"""Tuner overhead: a short real search's wall time vs its trials' pure training time.

"Pure training" is the sum of every epoch's time as Keras ran it (training + validation,
from each trial's history.json). Everything else is overhead: data loading, the build check
and calibration (once), and per trial KerasTuner's bookkeeping, model building and tracing,
checkpoints, TensorBoard and our result files.

    python benchmarks/tuner_overhead.py --data-dir ../shared/data/fashion-mnist \
        [--subset 12000] [--max-epochs 3] [--blocks 1:2] [--filters 32,64]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir")
    p.add_argument("--subset", type=int, default=12000)
    p.add_argument("--max-epochs", type=int, default=3)
    p.add_argument("--blocks", default="1:2")
    p.add_argument("--filters", default="32,64")
    a = p.parse_args()

    from hypermodels.space import SearchSpace, parse_int_list, parse_int_range
    from tuning.config import SearchConfig
    from tuning.engine import run_search

    lo, hi = parse_int_range(a.blocks, "--blocks")
    space = SearchSpace(lo, hi, parse_int_list(a.filters, "--filters"), "both", 1e-3, 1e-1)
    with tempfile.TemporaryDirectory() as tmp:
        config = SearchConfig(space=space, data_dir=a.data_dir, directory=tmp,
                              project_name="overhead", max_epochs=a.max_epochs,
                              subset=a.subset, verbose=0)  # fmt: skip
        t0 = time.perf_counter()
        rows = run_search(config)
        wall = time.perf_counter() - t0
        run_dir = Path(tmp) / "overhead"
        epochs = trials = 0.0
        for trial_dir in run_dir.glob("trial_*"):
            history = json.loads((trial_dir / "history.json").read_text())
            epochs += sum(e["seconds"] for e in history["epochs"])
            trials += history.get("seconds", 0.0)
    print(f"{len(rows)} trials, subset {a.subset}, max_epochs {a.max_epochs}")
    print(f"search wall time            {wall:8.1f} s")
    print(f"sum of trial wall times     {trials:8.1f} s")
    print(f"sum of epoch times (pure)   {epochs:8.1f} s")
    print(f"overhead, whole search      {100 * (wall - epochs) / wall:7.1f}%")
    print(f"overhead, inside trials     {100 * (trials - epochs) / trials:7.1f}%")
    print(f"start-up (data, build check, calibration): {wall - trials:.1f} s")


if __name__ == "__main__":
    main()
