"""Paired comparison of two arms trained with the same seeds (skip on vs skip off).

For each seed both arms share the split, the initial weights (the networks have the same
layers; the add has no weights) and the shuffling, so the per-seed difference removes that
noise. We report the mean difference with a two-sided 95% confidence interval from the
paired t distribution (n - 1 degrees of freedom) and its p-value.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class ArmSummary:
    n: int
    mean: float
    sd: float  # sample standard deviation (ddof=1); 0 for a single value


@dataclass(frozen=True)
class PairedResult:
    n: int
    mean_diff: float  # a - b
    sd_diff: float
    ci_low: float | None  # None when n < 2
    ci_high: float | None
    t: float | None
    p_value: float | None
    confidence: float = 0.95

    @property
    def significant(self) -> bool:
        return self.ci_low is not None and (self.ci_low > 0 or self.ci_high < 0)

    def to_dict(self) -> dict:
        return {**asdict(self), "significant": self.significant, "method": "paired t"}


def summarize(values: list[float]) -> ArmSummary:
    x = np.asarray(values, dtype=np.float64)
    sd = float(x.std(ddof=1)) if len(x) > 1 else 0.0
    return ArmSummary(len(x), float(x.mean()), sd)


def paired_t(a: list[float], b: list[float], confidence: float = 0.95) -> PairedResult:
    """Mean of a - b with a paired-t confidence interval; a[i] and b[i] share a seed."""
    from scipy import stats

    if len(a) != len(b) or not a:
        raise ValueError("paired samples must be non-empty and of equal length")
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    n = len(d)
    mean = float(d.mean())
    if n < 2:
        return PairedResult(n, mean, 0.0, None, None, None, None, confidence)
    sd = float(d.std(ddof=1))
    se = sd / math.sqrt(n)
    crit = float(stats.t.ppf(0.5 + confidence / 2, df=n - 1))
    if se == 0.0:
        t = math.inf if mean else 0.0
        p = 0.0 if mean else 1.0
    else:
        t = mean / se
        p = float(2 * stats.t.sf(abs(t), df=n - 1))
    return PairedResult(n, mean, sd, mean - crit * se, mean + crit * se, t, p, confidence)


def skip_verdict(blocks: int, result: PairedResult, metric: str = "validation accuracy") -> str:
    """One sentence a reader can quote."""
    depth = f"{blocks} block{'s' if blocks != 1 else ''}"
    if result.ci_low is None:
        return (
            f"At {depth}, skip connections change {metric} by {result.mean_diff:+.4f} "
            f"over {result.n} seed; more seeds are needed for a confidence interval."
        )
    ci = f"95% CI {result.ci_low:+.4f} to {result.ci_high:+.4f}, paired t, n={result.n}"
    ci += f", p={result.p_value:.3g}"
    if result.significant:
        direction = "raise" if result.mean_diff > 0 else "lower"
        return (
            f"At {depth}, skip connections {direction} {metric} by "
            f"{abs(result.mean_diff):.4f} ({ci}): a significant difference at the 5% level."
        )
    return (
        f"At {depth}, the difference in {metric} with skip connections is "
        f"{result.mean_diff:+.4f} "
        f"({ci}): not significant at the 5% level."
    )


def mean_interval(values: list[float], confidence: float = 0.95) -> float | None:
    """Half-width of the t confidence interval of the mean (None below two values)."""
    from scipy import stats

    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < 2:
        return None
    sd = float(np.std(finite, ddof=1))
    return (
        float(stats.t.ppf(0.5 + confidence / 2, df=len(finite) - 1)) * sd / math.sqrt(len(finite))
    )


def _arm_stats(metric: str, values: list[float]) -> dict:
    summary = summarize(values) if values else None
    return {
        f"{metric}_mean": summary.mean if summary else None,
        f"{metric}_sd": summary.sd if summary else None,
        f"{metric}_ci95": mean_interval(values) if values else None,
    }


def ablation_summary(rows: list[dict]) -> list[dict]:
    """Per depth: each arm's mean/sd, the paired difference (skip - plain) and a verdict."""
    by_depth: dict[int, dict[bool, dict[int, dict]]] = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        by_depth[r["blocks"]][r["skip"]][r["seed"]] = r
    out = []
    for blocks in sorted(by_depth):
        arms = by_depth[blocks]
        seeds = sorted(set(arms[True]) & set(arms[False]))  # complete pairs only
        entry = {"blocks": blocks, "seeds": seeds}
        for skip, name in ((True, "skip"), (False, "plain")):
            runs = [arms[skip][s] for s in seeds]
            entry[name] = {
                "n": len(runs),
                **_arm_stats("val_accuracy", [r["val_accuracy"] for r in runs]),
                # Degradation shows here: a deep plain network that fits its training set
                # worse, not one that overfits.
                **_arm_stats("train_loss", [r["train_loss"] for r in runs]),
                "params": runs[0]["params"] if runs else None,
                "seconds_mean": float(np.mean([r["seconds"] for r in runs])) if runs else None,
                "diverged": sum(r["status"] != "ok" for r in runs),
            }
        if seeds:
            result = paired_t(
                [arms[True][s]["val_accuracy"] for s in seeds],
                [arms[False][s]["val_accuracy"] for s in seeds],
            )
            entry["paired"] = result.to_dict()
            entry["verdict"] = skip_verdict(blocks, result)
            # The same seeds' final training losses: how well each arm fits its training set.
            loss = paired_t(
                [arms[True][s]["train_loss"] for s in seeds],
                [arms[False][s]["train_loss"] for s in seeds],
            )
            entry["paired_train_loss"] = loss.to_dict()
            entry["loss_verdict"] = skip_verdict(blocks, loss, "the final training loss")
        out.append(entry)
    return out
