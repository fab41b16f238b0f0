"""Balanced sampling: every combination of the discrete hyperparameters once before any twice.

KerasTuner's Hyperband draws each new configuration independently, so a short search can
miss a whole network shape. The default search takes 17 fresh samples from 16 shapes
(blocks 1-4 x filters 32, 64 x skip on, off): each sample is 2 x 64 with probability 1/8, and
17 independent draws miss that network about one time in ten (seed 1 did, and its final model
stayed 0.009 below seed 0's; docs/accuracy.md). The balanced sampler keeps each draw's
marginal distribution (every shape equally likely, the learning rate log-uniform as declared)
but draws a shape only among those sampled least so far, as a stratified design does, so 16
samples cover all 16 shapes whatever the seed (``benchmarks/sampling_coverage.py``).

Continuous hyperparameters (``Float``, and an ``Int`` sampled on a log scale) take a
randomly shifted van der Corput point of their declared scale, indexed by how often the shape
was drawn before; where that value was already tried (a stepped range), the next points are
tried. A space with conditional hyperparameters, or with more than ``MAX_COMBINATIONS``
shapes, falls back to KerasTuner's independent draws.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Iterable, Sequence

from keras_tuner.engine import hyperparameters as hp_module

MAX_COMBINATIONS = 4096


def discrete_values(hp) -> Sequence | None:
    """All values of a discrete hyperparameter (lazily for a range), or None if continuous."""
    if isinstance(hp, hp_module.Fixed):
        return [hp.value]
    if isinstance(hp, hp_module.Boolean):
        return [False, True]
    if isinstance(hp, hp_module.Choice):
        return list(hp.values)
    if isinstance(hp, hp_module.Int) and hp.sampling == "linear":
        return range(hp.min_value, hp.max_value + 1, hp.step or 1)
    return None


class BalancedDesign:
    """The discrete hyperparameters' combinations, and how to draw the least sampled one."""

    def __init__(self, discrete: dict[str, list], continuous: Sequence, order: Sequence[str]):
        self.order = list(order)
        self.names = list(discrete)
        self.combinations = list(itertools.product(*discrete.values()))
        self.continuous = list(continuous)

    @classmethod
    def of(cls, space: Iterable) -> BalancedDesign | None:
        """The design for a KerasTuner space; None where balancing does not apply."""
        discrete, continuous, order = {}, [], []
        for hp in space:
            order.append(hp.name)
            if hp.conditions:
                return None
            values = discrete_values(hp)
            if values is None:
                continuous.append(hp)
            else:
                discrete[hp.name] = values
        size = math.prod(len(values) for values in discrete.values())
        if not discrete or not 1 < size <= MAX_COMBINATIONS:  # counted before it is built
            return None
        return cls({k: list(v) for k, v in discrete.items()}, continuous, order)

    def counts(self, configurations: Iterable[dict]) -> Counter:
        """How often each combination has been sampled, over distinct configurations."""
        return Counter(tuple(values.get(name) for name in self.names) for values in configurations)

    def preference(self, counts: Counter, rng: random.Random) -> list[tuple]:
        """Every combination, least sampled first, in random order among equals."""
        shuffled = rng.sample(self.combinations, len(self.combinations))
        return sorted(shuffled, key=lambda c: counts[c])

    def values(self, combination: tuple, visit: int, run_seed: int) -> dict:
        """The configuration of a combination's ``visit``-th sample (0 = its first).

        Each continuous value is a randomly shifted van der Corput point: uniform over the
        declared scale for any one visit, and a combination's visits spread out (the first
        two lie half the range apart; for the learning rate, a decade).
        """
        values = dict(zip(self.names, combination, strict=True))
        for hp in self.continuous:
            shift = random.Random(f"{run_seed}/{combination}/{hp.name}").random()
            values[hp.name] = hp.prob_to_value((shift + van_der_corput(visit)) % 1.0)
        return {name: values[name] for name in self.order}


def van_der_corput(n: int) -> float:
    """The n-th point of the base-2 van der Corput sequence: 0, 1/2, 1/4, 3/4, 1/8, ..."""
    point, scale = 0.0, 0.5
    while n:
        n, bit = divmod(n, 2)
        point += bit * scale
        scale /= 2
    return point
