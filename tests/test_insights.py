"""What the search teaches: importance, observational skip comparison, history
(tuning.show.insights); plots and text (tuning.show.insight_plots).

Synthetic trials only (no training): rows with the columns of records.FIELD_TYPES.
"""

from __future__ import annotations

import ast
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from tuning.rundir import records
from tuning.show import insight_plots, insights

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_row(
    i: int,
    *,
    blocks: int = 2,
    filters: int = 32,
    skip: bool = True,
    lr: float = 0.01,
    budget: int | None = 1,
    acc: float | None = 0.8,
    status: str = "COMPLETED",
    seconds: float | None = 10.0,
    epochs: int | None = None,
    parent: str | None = None,
    initial: int = 0,
) -> dict:
    """One trials.csv row as read_trials_csv returns it (every FIELD_TYPES key present)."""
    row = dict.fromkeys(records.FIELD_TYPES)
    trained = (budget or 0) - initial if epochs is None else epochs
    row.update(
        trial_id=f"{i:04d}",
        status=status,
        blocks=blocks,
        filters=filters,
        skip=skip,
        learning_rate=lr,
        bracket=0,
        round=1 if parent else 0,
        parent_trial_id=parent,
        initial_epoch=initial,
        target_epochs=budget,
        epochs_trained=trained,
        best_epoch=budget,
        lineage_epochs=budget,
        val_accuracy=acc,
        val_loss=None if acc is None else 1.0 - acc,
        seconds=seconds,
        disk_mb=1.0,
    )
    return row


def random_rows(n: int, score, *, seed: int = 0, skip_p=None, noise: float = 0.005) -> list[dict]:
    """n independent trials with random hyperparameters and budgets 1/3/9; acc = score + noise.

    score(blocks, filters, skip, lr, budget); skip_p(budget) is P(skip on) (default 0.5).
    """
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        blocks = int(rng.integers(1, 5))
        filters = int(rng.choice([32, 64]))
        budget = int(rng.choice([1, 3, 9]))
        skip = bool(rng.random() < (0.5 if skip_p is None else skip_p(budget)))
        lr = float(10 ** rng.uniform(-3, -1))
        acc = score(blocks, filters, skip, lr, budget) + rng.normal(0, noise)
        rows.append(
            make_row(
                i, blocks=blocks, filters=filters, skip=skip, lr=lr, budget=budget, acc=acc,
                seconds=4.0 * budget,
            )
        )  # fmt: skip
    return rows


def hyperband_rows(seed: int = 0) -> list[dict]:
    """A realistic Hyperband search (max_epochs 9, factor 3): 23 trials, continuations included.

    Brackets 2, 1 and 0 hold 9 + 3 + 1, 5 + 2 and 3 trials (KerasTuner's sizes); accuracy
    rises with the budget, peaks at lr 0.01, and skip helps deeper networks. One round-0 trial
    that was not continued failed (NaN loss) and a 24th trial is still running: 22 completed.
    """
    rng = np.random.default_rng(seed)
    rows: list[dict] = []

    def score(c: dict, epochs: int) -> float:
        base = 0.70 + 0.05 * math.log(epochs, 3)
        lr_term = -0.04 * (math.log10(c["lr"]) + 2) ** 2
        skip_term = 0.006 * c["blocks"] if c["skip"] else -0.004 * c["blocks"]
        return base + lr_term + skip_term + rng.normal(0, 0.004)

    def config() -> dict:
        return {
            "blocks": int(rng.integers(1, 5)),
            "filters": int(rng.choice([32, 64])),
            "skip": bool(rng.random() < 0.5),
            "lr": float(10 ** rng.uniform(-3, -1)),
        }

    def add(c: dict, budget: int, parent: dict | None = None) -> dict:
        initial = parent["target_epochs"] if parent else 0
        row = make_row(
            len(rows), blocks=c["blocks"], filters=c["filters"], skip=c["skip"], lr=c["lr"],
            budget=budget, acc=score(c, budget), seconds=(budget - initial) * 6.0 * c["blocks"],
            parent=parent["trial_id"] if parent else None, initial=initial,
        )  # fmt: skip
        row["config"] = c
        rows.append(row)
        return row

    for sizes in ((9, 3, 1), (5, 2), (3,)):  # brackets 2, 1, 0: trials per round
        budgets = (1, 3, 9)[3 - len(sizes) :]
        current = [add(config(), budgets[0]) for _ in range(sizes[0])]
        for size, budget in zip(sizes[1:], budgets[1:], strict=True):
            top = sorted(current, key=lambda r: -r["val_accuracy"])[:size]
            current = [add(r["config"], budget, parent=r) for r in top]
    for r in rows:
        del r["config"]
    parents = {r["parent_trial_id"] for r in rows}
    failed = next(r for r in rows if r["trial_id"] not in parents)
    failed.update(status="FAILED", val_accuracy=None, message="loss became nan in batch 3")
    rows.append(make_row(len(rows), status="RUNNING", acc=None, seconds=None, epochs=0))
    return rows


def lr_peak(blocks, filters, skip, lr, budget):
    return 0.9 - 0.1 * (math.log10(lr) + 2) ** 2


def skip_helps(blocks, filters, skip, lr, budget):
    return 0.8 + 0.05 * skip


# -- the modules stay low in the import graph ---------------------------------------------
def is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def tuning_imports(module) -> tuple[set[str], set[str]]:
    """The tuning modules a module imports (anywhere) and its top-level imported packages."""
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    tuning_modules, top_level = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            if node.module == "tuning" or node.module.startswith("tuning."):
                tuning_modules |= {n for n in names[1:] if is_module(n)} or {node.module}
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        if node in tree.body:
            top_level |= {n.split(".")[0] for n in names}
    return tuning_modules, top_level


def test_imports_only_records_and_stats_from_tuning_and_plots_lazily():
    tuning_modules, top_level = tuning_imports(insights)
    assert tuning_modules <= {"tuning.rundir.records", "tuning.stats"}
    assert not top_level & {"matplotlib", "sklearn", "tensorflow", "keras"}


def test_insight_plots_imports_only_insights_records_stats_plots_and_matplotlib_lazily():
    tuning_modules, top_level = tuning_imports(insight_plots)
    assert tuning_modules <= {
        "tuning.show.insights",
        "tuning.rundir.records",
        "tuning.stats",
        "tuning.show.plots",
    }
    assert not top_level & {"matplotlib", "sklearn", "tensorflow", "keras"}


# -- 1. importance ---------------------------------------------------------------------------
def test_importance_ranks_the_learning_rate_first_when_it_drives_the_score():
    imp = insights.importance(random_rows(30, lr_peak))
    assert imp.ranking[0][0] == "learning_rate"
    assert imp.ranking[0][1] > 0.8
    assert sum(share for _, share in imp.ranking) == pytest.approx(1.0)
    assert {name for name, _ in imp.ranking} == set(records.HP_NAMES)
    assert imp.n_trials == 30 and imp.warning is None
    assert "target epochs" in imp.method and "covariate" in imp.method


def test_importance_ranks_skip_first_when_it_drives_the_score():
    imp = insights.importance(random_rows(30, skip_helps, seed=1))
    assert imp.ranking[0][0] == "skip"
    assert imp.share("skip") > 0.8


def test_importance_is_deterministic():
    rows = random_rows(25, lr_peak, seed=3)
    assert insights.importance(rows) == insights.importance(rows)


def test_budget_covariate_keeps_a_budget_confounded_parameter_from_ranking_first():
    # Skip does nothing, but most long (9-epoch) trials had skip on and most 1-epoch ones off,
    # as when Hyperband promotes a lucky arm: the budget, not skip, raises their accuracy.
    def score(blocks, filters, skip, lr, budget):
        return 0.6 + 0.1 * math.log(budget, 3) - 0.05 * (math.log10(lr) + 2) ** 2

    def skip_p(budget):
        return {1: 0.1, 3: 0.5, 9: 0.9}[budget]

    rows = random_rows(40, score, skip_p=skip_p)
    imp = insights.importance(rows)
    assert imp.ranking[0][0] == "learning_rate"
    assert imp.share("skip") < 0.05
    assert imp.budget_share is not None and imp.budget_share > 0.5
    # The same trials with no budget recorded apart (all read as 1 epoch): skip looks important.
    blind = [{**r, "target_epochs": 1} for r in rows]
    assert insights.importance(blind).ranking[0][0] == "skip"


def test_importance_warns_and_does_not_rank_with_few_trials():
    imp = insights.importance(random_rows(6, lr_peak))
    assert imp.ranking == []
    assert imp.n_trials == 6
    assert "only 6 completed trials" in imp.warning


def test_a_constant_parameter_gets_zero_and_is_named():
    rows = [{**r, "filters": 64} for r in random_rows(30, lr_peak)]
    imp = insights.importance(rows)
    assert imp.share("filters") == 0.0
    assert imp.constant == ("filters",)
    assert "filters = 64" in imp.warning
    assert imp.ranking[0][0] == "learning_rate"
    assert sum(share for _, share in imp.ranking) == pytest.approx(1.0)


def test_importance_with_a_constant_score_ranks_nothing_above_zero():
    rows = [{**r, "val_accuracy": 0.5} for r in random_rows(12, lr_peak)]
    imp = insights.importance(rows)
    assert all(share == 0.0 for _, share in imp.ranking)
    assert "val_accuracy is the same" in imp.warning


def test_failed_running_and_unscored_rows_are_ignored():
    rows = random_rows(20, skip_helps)
    noise = [
        make_row(100, status="FAILED", acc=0.99, skip=False, lr=0.5),
        make_row(101, status="RUNNING", acc=0.99, skip=False),
        make_row(102, status="COMPLETED", acc=None, skip=False),
        make_row(103, status="COMPLETED", acc=float("nan"), skip=False),
    ]
    mixed = rows[:10] + noise + rows[10:]
    assert insights.completed(mixed) == insights.completed(rows)
    imp = insights.importance(mixed)
    assert imp == insights.importance(rows) and imp.n_trials == 20
    assert insights.skip_comparison(mixed) == insights.skip_comparison(rows)
    assert insights.history(mixed).best_so_far == insights.history(rows).best_so_far


def test_budget_falls_back_to_lineage_then_trained_epochs():
    row = make_row(0, budget=9)
    assert insights.budget_of(row) == 9
    assert insights.budget_of({**row, "target_epochs": None}) == 9  # lineage_epochs
    assert insights.budget_of({**row, "target_epochs": None, "lineage_epochs": None}) == 9
    assert insights.budget_of(dict.fromkeys(records.FIELD_TYPES)) is None


# -- 2. observational skip comparison ---------------------------------------------------------
def test_skip_comparison_matches_on_blocks_filters_and_budget():
    rows = [
        # stratum (2, 32, 3 epochs): on mean 0.80, off mean 0.75 -> +0.05
        make_row(0, blocks=2, filters=32, budget=3, skip=True, acc=0.79),
        make_row(1, blocks=2, filters=32, budget=3, skip=True, acc=0.81),
        make_row(2, blocks=2, filters=32, budget=3, skip=False, acc=0.75),
        # stratum (3, 64, 9 epochs): +0.03
        make_row(3, blocks=3, filters=64, budget=9, skip=True, acc=0.88),
        make_row(4, blocks=3, filters=64, budget=9, skip=False, acc=0.85),
        # stratum (1, 32, 1 epoch): +0.01
        make_row(5, blocks=1, filters=32, budget=1, skip=True, acc=0.61),
        make_row(6, blocks=1, filters=32, budget=1, skip=False, acc=0.60),
        # not matched: same blocks/filters as the first stratum but another budget
        make_row(7, blocks=2, filters=32, budget=9, skip=False, acc=0.95),
        # not matched: skip on only
        make_row(8, blocks=4, filters=64, budget=9, skip=True, acc=0.70),
    ]
    comp = insights.skip_comparison(rows)
    assert comp.n_pairs == 3 and comp.unmatched == 2
    assert [(s.blocks, s.filters, s.budget) for s in comp.strata] == [
        (1, 32, 1),
        (2, 32, 3),
        (3, 64, 9),
    ]
    assert comp.strata[1].n_on == 2 and comp.strata[1].on == pytest.approx(0.80)
    assert comp.paired.mean_diff == pytest.approx(0.03)
    assert comp.paired.ci_low < 0.03 < comp.paired.ci_high
    text = comp.summary()
    assert insights.OBSERVATIONAL in text
    assert "python -m tuning.ablate" in text
    assert "+0.0300" in text and "95% CI" in text
    best = insights.skip_comparison(rows, statistic="best")
    assert best.strata[1].on == pytest.approx(0.81)


def test_skip_comparison_single_pair_has_no_interval():
    rows = [make_row(0, skip=True, acc=0.8), make_row(1, skip=False, acc=0.7)]
    comp = insights.skip_comparison(rows)
    assert comp.n_pairs == 1 and comp.paired.ci_low is None
    assert "no interval" in comp.summary()


def test_skip_comparison_falls_back_to_the_best_of_each_arm():
    rows = [
        make_row(0, blocks=2, budget=9, skip=True, acc=0.88, lr=0.02),
        make_row(1, blocks=2, budget=1, skip=True, acc=0.70),
        make_row(2, blocks=3, budget=1, skip=False, acc=0.72),
        make_row(3, blocks=2, budget=1, skip=False, acc=0.80, status="FAILED"),
    ]
    comp = insights.skip_comparison(rows)
    assert comp.n_pairs == 0 and comp.paired is None
    assert comp.best_on["trial_id"] == "0000" and comp.best_off["trial_id"] == "0002"
    text = comp.summary()
    assert "skip on 0.8800 (trial 0000: 2 blocks, 32 filters, lr 0.02, 9 epochs)" in text
    assert "skip off 0.7200 (trial 0002" in text and "1 epoch)" in text
    assert insights.OBSERVATIONAL in text and "python -m tuning.ablate" in text


def test_skip_comparison_with_one_arm_only():
    comp = insights.skip_comparison([make_row(0, skip=True), make_row(1, skip=True)])
    assert comp.best_off is None
    assert "skip off: no completed trial" in comp.summary()
    with pytest.raises(ValueError):
        insights.skip_comparison([], statistic="median")


# -- 3. optimization history ------------------------------------------------------------------
def test_history_is_monotone_and_counts_every_trials_cost_in_id_order():
    rows = hyperband_rows()
    shuffled = rows[::-1]
    h = insights.history(shuffled)
    assert h.trial_ids == sorted(h.trial_ids)
    assert len(h.trial_ids) == len(insights.completed(rows)) == 22
    assert all(b2 >= b1 for b1, b2 in zip(h.best_so_far, h.best_so_far[1:], strict=False))
    assert all(b >= a for a, b in zip(h.val_accuracy, h.best_so_far, strict=True))
    assert h.best_so_far[-1] == records.best_row(rows)["val_accuracy"]
    assert all(s2 >= s1 for s1, s2 in zip(h.seconds, h.seconds[1:], strict=False))
    assert all(e2 >= e1 for e1, e2 in zip(h.epochs, h.epochs[1:], strict=False))
    # the failed trial's time and epochs count (it was spent), the running one's None is 0
    assert h.total_seconds == pytest.approx(sum(r["seconds"] or 0 for r in rows))
    assert h.total_epochs == sum(r["epochs_trained"] for r in rows)


def test_history_small_example():
    rows = [
        make_row(0, acc=0.6, seconds=10, epochs=1),
        make_row(1, acc=None, status="FAILED", seconds=5, epochs=1),
        make_row(2, acc=0.5, seconds=20, epochs=3),
        make_row(3, acc=0.7, seconds=30, epochs=2),
    ]
    h = insights.history(rows)
    assert h.trial_ids == ["0000", "0002", "0003"]
    assert h.best_so_far == [0.6, 0.6, 0.7]
    assert h.seconds == [10, 35, 65]
    assert h.epochs == [1, 5, 7]


# -- plots ----------------------------------------------------------------------------------
def test_write_insights_writes_both_pngs(tmp_path):
    out = tmp_path / "plots"
    paths = insight_plots.write_insights(hyperband_rows(), out)
    assert set(paths) == {"search_history", "search_budgets"}
    assert paths["search_history"] == out / insights.HISTORY_PNG
    assert paths["search_budgets"] == out / insights.BUDGETS_PNG
    for path in paths.values():
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000


def test_plots_handle_one_trial_and_many_budgets(tmp_path):
    one = insight_plots.write_insights([make_row(0)], tmp_path / "one")
    assert all(p.stat().st_size > 0 for p in one.values())
    many = [make_row(i, budget=b, skip=i % 2 == 0) for i, b in enumerate((1, 2, 4, 9, 27, 81))]
    path = insight_plots.plot_budgets(many, tmp_path / "many.png")
    assert path.read_bytes().startswith(PNG_MAGIC)


def test_write_insights_without_completed_trials_writes_nothing(tmp_path):
    rows = [make_row(0, status="FAILED", acc=None)]
    assert insight_plots.write_insights(rows, tmp_path / "x") == {}
    assert not (tmp_path / "x").exists()
    for plot in (insight_plots.plot_history, insight_plots.plot_budgets):
        with pytest.raises(ValueError, match="no completed trial"):
            plot(rows, tmp_path / "x.png")


# -- text -----------------------------------------------------------------------------------
def test_markdown_has_the_sections_table_and_links():
    text = insight_plots.markdown(hyperband_rows())
    assert text.startswith("## What the search teaches")
    assert "### Which hyperparameters mattered" in text
    assert "| rank | hyperparameter | importance (share) |" in text
    assert "Method: random-forest main effects" in text
    assert "### Skip connections inside the search (observational)" in text
    assert insights.OBSERVATIONAL in text and "`python -m tuning.ablate`" in text
    assert "![search history](search_history.png)" in text
    assert "![search by budget](search_budgets.png)" in text
    prefixed = insight_plots.markdown(hyperband_rows(), image_prefix="plots/")
    assert "(plots/search_history.png)" in prefixed and "(plots/search_budgets.png)" in prefixed


def test_markdown_shows_the_warning_and_the_fallback_with_few_trials():
    rows = [make_row(0, skip=True, acc=0.8, budget=3), make_row(1, skip=False, acc=0.7)]
    text = insight_plots.markdown(rows)
    assert "> **Warning:** only 2 completed trials" in text
    assert "| rank |" not in text
    assert "Best of each arm instead" in text
    assert "no completed trial yet" in insight_plots.markdown([]).lower()


def test_console_lines_are_short_and_honest():
    lines = insight_plots.console_lines(hyperband_rows())
    assert len(lines) == 5
    assert lines[0] == "What the search teaches (22 completed trials):"
    assert lines[1].startswith("  importance (random forest, budget as covariate): ")
    assert all(name in lines[1] for name in records.HP_NAMES)
    assert "; budget itself " in lines[1]
    assert lines[2].startswith("  skip on - off in matched trials: ")
    assert lines[3] == f"    {insights.OBSERVATIONAL}; controlled: python -m tuning.ablate"
    assert all(len(line) <= 140 for line in lines)
    assert insight_plots.console_lines([]) == ["What the search teaches: no completed trial yet."]
