"""Sampling coverage: how often a search never samples a given network at a usable rate.

No training: the oracle's own sampler draws the fresh configurations of a Hyperband plan
(a continuation reuses its parent's), for many seeds, with KerasTuner's independent draw
("random") and the balanced sampler side by side. The target is a network shape with a
learning-rate window, by default 2 x 64 (either skip) at 0.005-0.05: the shape seed 0's
search won with, and a decade around its rate (docs/accuracy.md, "Covering the space").

    python benchmarks/sampling_coverage.py [--seeds 300] [--iterations 1,2]
        [--target-blocks 2] [--target-filters 64] [--target-lr 0.005:0.05]
"""

from __future__ import annotations

import argparse
import os
from collections import Counter

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def fresh_configurations(sampler: str, seed: int, n: int, space) -> list[dict]:
    """The first n fresh configurations a search with this seed and sampler draws."""
    import keras_tuner

    from hypermodels.resnet import hp_values
    from tuning.engine.oracle import AtomicHyperbandOracle
    from tuning.kt_internals import draw_fresh

    hp = keras_tuner.HyperParameters()
    hp_values(hp, space)
    # the seed as tuning.engine.tuner passes it (KerasTuner replaces a falsy one)
    oracle = AtomicHyperbandOracle(
        "val_accuracy", max_epochs=9, factor=3, seed=seed + 1, sampler=sampler, hyperparameters=hp
    )
    return draw_fresh(oracle, n)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=300)
    p.add_argument("--iterations", default="1,2", help="Hyperband iterations to compare")
    p.add_argument("--max-epochs", type=int, default=9)
    p.add_argument("--factor", type=int, default=3)
    p.add_argument("--target-blocks", type=int, default=2)
    p.add_argument("--target-filters", type=int, default=64)
    p.add_argument("--target-lr", default="0.005:0.05")
    a = p.parse_args()

    from hypermodels.space import SearchSpace, parse_float_range
    from tuning.plan import hyperband_plan

    space = SearchSpace()
    lo, hi = parse_float_range(a.target_lr, "--target-lr")
    target = f"{a.target_blocks} x {a.target_filters}"
    print(f"default space {space.cli_defaults()}, skip both; {a.seeds} seeds per row "
          "(0, 1000, 2000, ...)")  # fmt: skip
    print(f"target: {target} (either skip) at learning rate {lo:g}-{hi:g}\n")
    print(f"{'iterations':>10} {'fresh':>5} {'sampler':>9} {'P(no ' + target + ')':>14} "
          f"{'P(none in window)':>18} {'shapes seen':>11} {'least-seen shape':>16}")  # fmt: skip
    for iterations in (int(x) for x in a.iterations.split(",")):
        plan = hyperband_plan(a.max_epochs, a.factor, iterations)
        fresh = sum(r.trials for r in plan.rounds if r.round == 0)
        for sampler in ("random", "balanced"):
            missed = outside = 0
            shapes, least = [], []
            for i in range(a.seeds):
                # seeds 1,000 apart: KerasTuner's draw steps its seed state by one per value,
                # so the sequences of seeds s and s + 4 overlap in all but one configuration
                values = fresh_configurations(sampler, 1000 * i, fresh, space)
                hits = [v for v in values if (v["blocks"], v["filters"]) ==
                        (a.target_blocks, a.target_filters)]  # fmt: skip
                missed += not hits
                outside += not any(lo <= v["learning_rate"] <= hi for v in hits)
                counts = Counter((v["blocks"], v["filters"], v["skip"]) for v in values)
                shapes.append(len(counts))
                least.append(min(counts.values()) if len(counts) == 16 else 0)
            print(f"{iterations:>10} {fresh:>5} {sampler:>9} {missed / a.seeds:>14.3f} "
                  f"{outside / a.seeds:>18.3f} {sum(shapes) / a.seeds:>11.2f} "
                  f"{sum(least) / a.seeds:>16.2f}")  # fmt: skip
    print("\nP(...): the share of seeds whose search never samples the target (in the window);")
    print("shapes seen: distinct blocks x filters x skip of 16; least-seen: samples of the rarest")


if __name__ == "__main__":
    main()
