"""What the search teaches: hyperparameter importance, skip on vs off inside the search,
the optimization history and a budget-honest view of the trials.

Everything here is a pure function of the rows of ``trials.csv`` as returned by
``records.read_trials_csv``. Only COMPLETED rows with a finite ``val_accuracy`` (and all four
hyperparameters) are scored; FAILED, RUNNING or unscored rows are ignored, except that the
optimization history counts every trial's ``seconds`` and ``epochs_trained`` as spent cost.

Hyperband gives trials unequal budgets: a round-0 trial of the widest bracket trains 1 epoch,
a continuation trial resumes its parent's best checkpoint and reaches ``target_epochs`` (3, 9,
...). Raw ``val_accuracy`` therefore mixes what the hyperparameters do with how long the trial
trained, and the longer trainings are exactly those Hyperband promoted. The "budget" of a trial
here is its ``target_epochs`` (the schedule's nominal epochs from scratch, fixed before the trial
ran), falling back to ``lineage_epochs`` and then ``epochs_trained`` for rows without it.

This module is the analysis only and stays low in the import graph: from ``tuning`` it imports
only ``records`` and ``stats``, scikit-learn inside the function that needs it. The figures
(``write_insights``), the report section (``markdown``) and the console summary
(``console_lines``) are in ``tuning.show.insight_plots``.
"""

from __future__ import annotations

import math
import numbers
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from tuning.rundir import records
from tuning.stats import PairedResult, paired_t

HISTORY_PNG = "search_history.png"
BUDGETS_PNG = "search_budgets.png"
MIN_TRIALS = 10  # fewer completed trials than this: no importance ranking
ABLATE_COMMAND = "python -m tuning.ablate"
OBSERVATIONAL = (
    "observational (Hyperband picks which trials continue, so this is not a controlled comparison)"
)
ARMS = ((True, "skip on", "tab:blue", "o"), (False, "skip off", "tab:orange", "s"))
_FEATURES = (*records.HP_NAMES, "budget")


# -- rows --------------------------------------------------------------------------------
def _finite(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


def completed(rows: list[dict]) -> list[dict]:
    """The scored trials: COMPLETED, finite val_accuracy, all four hyperparameters; by id."""
    done = [
        r
        for r in rows
        if r.get("status") == "COMPLETED"
        and _finite(r.get("val_accuracy"))
        and all(r.get(name) is not None for name in records.HP_NAMES)
        and r["learning_rate"] > 0
    ]
    return sorted(done, key=lambda r: str(r["trial_id"]))


def budget_of(row: dict) -> int | None:
    """A trial's training budget: target_epochs, else lineage_epochs, else epochs_trained."""
    for key in ("target_epochs", "lineage_epochs", "epochs_trained"):
        if row.get(key) is not None:
            return int(row[key])
    return None


def epochs_label(n: int | None) -> str:
    """'1 epoch', '9 epochs', or '? epochs' for an unknown budget."""
    return "? epochs" if n is None else f"{n} epoch{'s' if n != 1 else ''}"


# -- 1. hyperparameter importance ----------------------------------------------------------
@dataclass(frozen=True)
class Importance:
    """Share of each hyperparameter in the main-effect variance of val_accuracy.

    ``ranking`` holds (name, share) for the four hyperparameters, largest first, shares
    summing to 1 (empty when there were too few trials; all 0 when val_accuracy did not vary).
    ``budget_share`` is the budget's own main-effect variance over that of budget + the four
    (None when every trial had the same budget): context, not part of the ranking.
    """

    ranking: list[tuple[str, float]]
    method: str
    n_trials: int
    warning: str | None = None
    constant: tuple[str, ...] = ()
    budget_share: float | None = None
    oob_r2: float | None = None

    def share(self, name: str) -> float | None:
        return dict(self.ranking).get(name)


def _features(r: dict) -> list[float]:
    """One design-matrix row, the columns of ``_FEATURES`` (learning rate as log10)."""
    blocks, filters, skip = float(r["blocks"]), float(r["filters"]), float(bool(r["skip"]))
    return [blocks, filters, skip, math.log10(r["learning_rate"]), float(budget_of(r) or 0)]


def _design(done: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    x = np.array([_features(r) for r in done], dtype=np.float64)
    y = np.array([r["val_accuracy"] for r in done], dtype=np.float64)
    return x, y


def _main_effect_variance(model, x: np.ndarray, j: int, max_points: int = 20) -> float:
    """Variance of column j's partial-dependence curve over its empirical distribution.

    For each value v of column j, the partial dependence is the model's mean prediction over
    all trials with column j set to v (the other columns, budget included, as observed). Its
    variance, weighted by how often each value occurred, is column j's main effect: the
    functional-ANOVA first-order term under the empirical distribution. Columns with more
    than ``max_points`` distinct values (the learning rate) use that many equal-mass quantiles.
    """
    values, counts = np.unique(x[:, j], return_counts=True)
    if len(values) < 2:
        return 0.0
    if len(values) > max_points:
        values = np.quantile(x[:, j], (np.arange(max_points) + 0.5) / max_points, method="nearest")
        counts = np.ones(len(values))
    grid = np.repeat(x[None], len(values), axis=0)
    grid[:, :, j] = values[:, None]
    pd = model.predict(grid.reshape(-1, x.shape[1])).reshape(len(values), len(x)).mean(axis=1)
    w = counts / counts.sum()
    mean = float(np.sum(w * pd))
    return float(np.sum(w * (pd - mean) ** 2))


def _method(n_trees: int, random_state: int) -> str:
    return (
        "random-forest main effects (functional-ANOVA-style variance of each hyperparameter's "
        f"partial dependence; {n_trees} trees, random_state {random_state}) on blocks, filters, "
        "skip and log10(learning_rate), with the trial's budget (target epochs) as a covariate "
        "so that the accuracy longer Hyperband trainings gain goes to the budget, not to the "
        "settings Hyperband promoted; shares are over the four hyperparameters only"
    )


def _constant_columns(done: list[dict], x: np.ndarray) -> tuple[tuple[str, ...], list[str]]:
    """The hyperparameters that never varied, and the warning naming them (if any)."""
    constant = tuple(name for j, name in enumerate(records.HP_NAMES) if len(np.unique(x[:, j])) < 2)
    warnings = []
    if constant:
        fixed = ", ".join(f"{name} = {done[0][name]}" for name in constant)
        warnings.append(f"constant in every trial, so importance 0 (not measured): {fixed}")
    return constant, warnings


def _fit_forest(x: np.ndarray, y: np.ndarray, n_trees: int, random_state: int):
    from sklearn.ensemble import RandomForestRegressor

    params = dict(n_estimators=n_trees, min_samples_leaf=2, oob_score=True, n_jobs=1)
    return RandomForestRegressor(random_state=random_state, **params).fit(x, y)


def _assemble(
    forest, x: np.ndarray, method: str, warnings: list[str], constant: tuple[str, ...]
) -> Importance:
    """The ranking from the fitted forest's main effects, the budget's share, the OOB check."""
    effects = [_main_effect_variance(forest, x, j) for j in range(len(_FEATURES))]
    hp_total = sum(effects[:4])
    shares = [e / hp_total if hp_total > 0 else 0.0 for e in effects[:4]]
    order = sorted(range(4), key=lambda j: (-shares[j], j))
    ranking = [(records.HP_NAMES[j], shares[j]) for j in order]
    budget_share = None
    if len(np.unique(x[:, 4])) >= 2 and hp_total + effects[4] > 0:
        budget_share = effects[4] / (hp_total + effects[4])
    oob_r2 = float(forest.oob_score_)
    method += f"; out-of-bag R^2 {oob_r2:.2f}"
    if oob_r2 <= 0:
        warnings = [
            *warnings,
            f"the forest predicts held-out trials no better than their mean (out-of-bag R^2 "
            f"{oob_r2:.2f}): the ranking is mostly noise",
        ]
    return Importance(
        ranking, method, len(x), "; ".join(warnings) or None, constant, budget_share, oob_r2
    )


def importance(
    rows: list[dict],
    *,
    n_trees: int = 200,
    random_state: int = 0,
    min_trials: int = MIN_TRIALS,
) -> Importance:
    """Which of blocks, filters, skip and log10(learning_rate) drive val_accuracy.

    Method: a random forest (scikit-learn, ``n_trees`` trees, ``min_samples_leaf=2``, fixed
    ``random_state``, so the answer is deterministic) is fitted to val_accuracy of the completed
    trials on the four hyperparameters *plus the trial's budget* (``budget_of``: target_epochs).
    Each column's importance is the variance of its partial-dependence curve (see
    ``_main_effect_variance``): a functional-ANOVA-style main effect. The ranking reports the
    four hyperparameters only, as shares of their summed main-effect variance.

    Why the budget is a covariate rather than a filter: with Hyperband the 1-epoch trials are
    the bulk, and the largest common budget holds few trials (6 of 23 at 9 epochs for the
    default max_epochs 9, factor 3), too few for a forest. Ignoring the budget would credit the
    1-epoch vs 9-epoch accuracy gap to whatever hyperparameters Hyperband happened to promote
    (promoted trials both train longer and share the winners' settings). With the budget in the
    model, the forest can attribute that gap to the budget, and each hyperparameter's partial
    dependence is averaged over the budgets actually trained. Left over: selection. Long
    budgets were only trained for promising configurations, so the effect at long budgets is
    estimated from good configurations only; treat the ranking as a summary of *this* search.
    (tests/test_insights.py has a search where skip does nothing but Hyperband-like promotion
    gave the skip-on trials the long budgets: with the budget as a covariate the learning rate
    ranks first; with the budget unrecorded, skip does.)

    Warnings (``Importance.warning``): fewer than ``min_trials`` completed trials (no ranking
    then), a hyperparameter constant across the trials (importance 0, named), val_accuracy
    constant, or an out-of-bag R^2 <= 0 (the forest predicts held-out trials no better than
    their mean, so the ranking is mostly noise).
    """
    done = completed(rows)
    n, method = len(done), _method(n_trees, random_state)
    if n < min_trials:
        warning = (
            f"only {n} completed trial{'s' if n != 1 else ''}: at least {min_trials} "
            "are needed to rank the hyperparameters"
        )
        return Importance([], method, n, warning=warning)
    x, y = _design(done)
    constant, warnings = _constant_columns(done, x)
    budgets = np.unique(x[:, 4])
    if len(budgets) < 2:
        method += f" (every trial had the same budget, {epochs_label(int(budgets[0]))})"
    if len(constant) == len(records.HP_NAMES) or np.ptp(y) == 0:
        if np.ptp(y) == 0:
            warnings.append("val_accuracy is the same in every trial: nothing to rank")
        ranking = [(name, 0.0) for name in records.HP_NAMES]
        return Importance(ranking, method, n, "; ".join(warnings) or None, constant)
    return _assemble(_fit_forest(x, y, n_trees, random_state), x, method, warnings, constant)


# -- 2. skip on vs off inside the search (observational) --------------------------------
@dataclass(frozen=True)
class Stratum:
    """Trials with the same blocks, filters and budget, split by skip."""

    blocks: int
    filters: int
    budget: int | None
    n_on: int
    n_off: int
    on: float  # val_accuracy of the skip-on trials (mean or best, see SkipComparison)
    off: float

    @property
    def diff(self) -> float:
        return self.on - self.off


@dataclass(frozen=True)
class SkipComparison:
    """Skip on minus off over strata matched on blocks, filters and budget; observational."""

    strata: list[Stratum]
    statistic: str  # "mean" or "best": how each arm's trials in a stratum are summarised
    paired: PairedResult | None  # paired t over the strata; None when nothing matched
    best_on: dict | None = None  # the best completed row of each arm (the fallback)
    best_off: dict | None = None
    unmatched: int = 0  # completed trials in strata that had only one arm

    @property
    def n_pairs(self) -> int:
        return len(self.strata)

    def summary(self) -> str:
        """One paragraph: the estimate (or the fallback), labelled observational."""
        head = f"Skip on − off, {OBSERVATIONAL}: "
        if self.paired is not None:
            p = self.paired
            strata = f"{p.n} matched stratum" if p.n == 1 else f"{p.n} matched strata"
            text = (
                f"{p.mean_diff:+.4f} val_accuracy averaged over {strata} (same blocks, filters "
                f"and target epochs; {self.statistic} of each arm per stratum)"
            )
            if p.ci_low is not None:
                text += (
                    f", {p.confidence:.0%} CI {p.ci_low:+.4f} to {p.ci_high:+.4f} (paired t; "
                    "strata at different budgets can share a Hyperband lineage, so the interval "
                    "is approximate)"
                )
            else:
                text += "; one pair gives no interval"
            text += "."
        else:
            text = "no trials with skip on and off share blocks, filters and target epochs. "
            text += "Best of each arm instead (they differ in more than skip): "
            text += "; ".join(
                f"{name} {_describe(row)}" if row else f"{name}: no completed trial"
                for (_, name, _, _), row in zip(ARMS, (self.best_on, self.best_off), strict=True)
            )
            text += "."
        return (
            head + text + f" For the controlled answer (same seeds and training for both arms) "
            f"run `{ABLATE_COMMAND}`."
        )


def _describe(row: dict) -> str:
    return (
        f"{row['val_accuracy']:.4f} (trial {row['trial_id']}: {row['blocks']} blocks, "
        f"{row['filters']} filters, lr {row['learning_rate']:.3g}, {epochs_label(budget_of(row))})"
    )


def skip_comparison(rows: list[dict], *, statistic: str = "mean") -> SkipComparison:
    """Compare skip on vs off among completed trials matched on blocks, filters and budget.

    Each stratum (blocks, filters, budget) holding trials of both arms gives one pair: each
    arm's mean val_accuracy there (``statistic="mean"``, the default: the best of several
    trials would favour the arm that happened to get more of them) or its best
    (``statistic="best"``). The summary is the mean difference on − off over the pairs with a
    paired-t interval (``stats.paired_t``) when there are at least two. When no stratum holds
    both arms, the fallback is the best trial of each arm with its budget. Hyperband decides
    which trials continue, so this is observational; ``python -m tuning.ablate`` is the
    controlled comparison.
    """
    if statistic not in ("mean", "best"):
        raise ValueError(f"statistic must be 'mean' or 'best', not {statistic!r}")
    agg = np.mean if statistic == "mean" else np.max
    done = completed(rows)
    groups: dict[tuple, dict[bool, list[float]]] = defaultdict(lambda: {True: [], False: []})
    for r in done:
        groups[(r["blocks"], r["filters"], budget_of(r))][bool(r["skip"])].append(r["val_accuracy"])
    strata, unmatched = [], 0
    for (blocks, filters, budget), arms in groups.items():
        if arms[True] and arms[False]:
            strata.append(
                Stratum(
                    blocks,
                    filters,
                    budget,
                    len(arms[True]),
                    len(arms[False]),
                    float(agg(arms[True])),
                    float(agg(arms[False])),
                )
            )
        else:
            unmatched += len(arms[True]) + len(arms[False])
    strata.sort(key=lambda s: (s.budget or 0, s.blocks, s.filters))
    paired = None
    if strata:
        paired = paired_t([s.on for s in strata], [s.off for s in strata])
    best_on = records.best_row([r for r in done if r["skip"]])
    best_off = records.best_row([r for r in done if not r["skip"]])
    return SkipComparison(strata, statistic, paired, best_on, best_off, unmatched)


# -- 3. optimization history ----------------------------------------------------------------
@dataclass(frozen=True)
class History:
    """Best val_accuracy so far against cumulative cost, one point per completed trial.

    Cost counts every trial in trial_id order (ids are zero-padded and chronological),
    failed and unfinished ones included: their time was spent too (a missing ``seconds`` or
    ``epochs_trained`` counts 0). ``seconds[i]``/``epochs[i]`` are the cumulative cost up to and
    including completed trial ``trial_ids[i]``; ``total_*`` include trials after the last one.
    """

    trial_ids: list[str]
    val_accuracy: list[float]
    best_so_far: list[float]
    seconds: list[float]
    epochs: list[int]
    budgets: list[int | None]
    total_seconds: float
    total_epochs: int


def history(rows: list[dict]) -> History:
    """The optimization history (see ``History``)."""
    scored = {id(r) for r in completed(rows)}
    ids, acc, best, secs, eps, budgets = [], [], [], [], [], []
    total_s, total_e = 0.0, 0
    for r in sorted(rows, key=lambda r: str(r["trial_id"])):
        total_s += float(r["seconds"]) if _finite(r.get("seconds")) else 0.0
        total_e += int(r.get("epochs_trained") or 0)
        if id(r) in scored:
            ids.append(str(r["trial_id"]))
            acc.append(float(r["val_accuracy"]))
            best.append(max(acc[-1], best[-1]) if best else acc[-1])
            secs.append(total_s)
            eps.append(total_e)
            budgets.append(budget_of(r))
    return History(ids, acc, best, secs, eps, budgets, total_s, total_e)
