"""Does resident memory grow from trial to trial? Runs N tiny real trials in one process.

Records the process's resident set size (VmRSS) after every trial of a search of 1-epoch
trials (Hyperband with max_epochs=1 and N iterations: one new model per trial, as in a
long search), then prints the growth from the end of warm-up to the last trial.

    python benchmarks/memory_growth.py --data-dir ../shared/data/fashion-mnist [--trials 40]
"""

from __future__ import annotations

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir")
    p.add_argument("--trials", type=int, default=40)
    p.add_argument("--warmup", type=int, default=10)
    a = p.parse_args()

    from hypermodels import SearchSpace
    from tuning.config import SearchConfig
    from tuning.engine import ResNetHyperband, run_search

    samples: list[float] = []
    original = ResNetHyperband.on_trial_end

    def on_trial_end(self, trial):
        original(self, trial)
        samples.append(rss_mb())

    ResNetHyperband.on_trial_end = on_trial_end
    with tempfile.TemporaryDirectory() as tmp:
        config = SearchConfig(
            space=SearchSpace(1, 2, (8, 16), "both", 1e-3, 1e-1),
            data_dir=a.data_dir,
            directory=tmp,
            project_name="memory",
            max_epochs=1,
            hyperband_iterations=a.trials,
            batch_size=64,
            subset=500,
            verbose=0,
        )
        run_search(config)
    base = samples[a.warmup - 1]
    last = samples[-1]
    peak = max(samples[a.warmup - 1 :])
    print("trial  rss_mb")
    for i, mb in enumerate(samples, 1):
        print(f"{i:>5}  {mb:8.1f}")
    print(
        f"RSS after warm-up (trial {a.warmup}): {base:.1f} MB; after trial {len(samples)}: "
        f"{last:.1f} MB; growth {100 * (last - base) / base:+.2f}% "
        f"(peak {100 * (peak - base) / base:+.2f}%) over {len(samples) - a.warmup} trials"
    )


if __name__ == "__main__":
    main()
