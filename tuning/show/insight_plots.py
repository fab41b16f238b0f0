"""What the search teaches, shown: the figures, the report section and the console summary.

``write_insights`` draws the optimization history and the trials by budget as PNG files
(matplotlib, no display needed); ``markdown`` is the "What the search teaches" section of
report.md and ``console_lines`` the summary printed at the end of a search. The analysis behind
them (importance, the observational skip comparison, the history) is ``tuning.show.insights``.

From ``tuning`` this module imports only ``insights``, ``records``, ``stats`` and ``plots``;
matplotlib is imported inside the functions that draw.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

from tuning.show import plots
from tuning.show.insights import (
    ABLATE_COMMAND,
    ARMS,
    BUDGETS_PNG,
    HISTORY_PNG,
    OBSERVATIONAL,
    Importance,
    SkipComparison,
    budget_of,
    completed,
    epochs_label,
    history,
    importance,
    skip_comparison,
)

_LABELS = {"learning_rate": "learning_rate (log10)"}


# -- plots --------------------------------------------------------------------------------
def _budget_colors(budgets) -> dict:
    import matplotlib

    known = sorted({b for b in budgets if b is not None})
    cmap = matplotlib.colormaps["viridis"]
    colors = {b: cmap(0.15 + 0.7 * k / max(1, len(known) - 1)) for k, b in enumerate(known)}
    colors[None] = "0.6"
    return colors


def plot_history(rows: list[dict], path: str | Path) -> Path:
    """Two panels: best val_accuracy so far vs cumulative training time and vs epochs."""
    h = history(rows)
    if not h.trial_ids:
        raise ValueError("no completed trial to plot")
    plt = plots.pyplot()
    minutes = h.total_seconds > 600
    scale = 60 if minutes else 1
    colors = _budget_colors(h.budgets)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, xs, total, label in (
        (
            axes[0],
            [s / scale for s in h.seconds],
            h.total_seconds / scale,
            f"cumulative training time ({'min' if minutes else 's'})",
        ),
        (axes[1], h.epochs, h.total_epochs, "cumulative epochs trained"),
    ):
        for budget in sorted(set(h.budgets), key=lambda b: -1 if b is None else b):
            idx = [i for i, b in enumerate(h.budgets) if b == budget]
            ax.scatter(
                [xs[i] for i in idx],
                [h.val_accuracy[i] for i in idx],
                s=20,
                color=colors[budget],
                label=f"trial, budget {epochs_label(budget)}",
            )
        ax.step(
            [*xs, total],
            [*h.best_so_far, h.best_so_far[-1]],
            where="post",
            color="tab:red",
            lw=2,
            label="best so far",
        )
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("validation accuracy (best epoch)")
    axes[1].legend(loc="lower right", fontsize=8)
    fig.suptitle(
        f"Optimization history: {len(h.trial_ids)} completed trials, "
        f"{h.total_epochs} epochs in all (failed trials' cost included)"
    )
    return plots.save(plt, fig, path)


def _size(blocks: int) -> float:
    return 14 + 10 * blocks


def _budget_panel(ax, budget: int | None, trials: list[dict]) -> None:
    """One budget's trials: val_accuracy vs learning rate, skip on/off marked, size = blocks."""
    from matplotlib.ticker import NullFormatter

    for skip, _, color, marker in ARMS:
        arm = [r for r in trials if bool(r["skip"]) == skip]
        if arm:
            ax.scatter(
                [r["learning_rate"] for r in arm],
                [r["val_accuracy"] for r in arm],
                c=color,
                marker=marker,
                s=[_size(r["blocks"]) for r in arm],
                alpha=0.8,
                edgecolors="black",
                linewidths=0.4,
            )
    ax.axhline(max(r["val_accuracy"] for r in trials), color="0.5", ls=":", lw=1)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_title(f"budget {epochs_label(budget)}: {len(trials)} trials")
    ax.grid(alpha=0.3)
    ax.tick_params(labelbottom=True)
    ax.set_xlabel("learning rate (log scale)")


def _legend_handles(done: list[dict]) -> list:
    """Marker per skip arm, then one grey marker per number of blocks (its size)."""
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], ls="", marker=m, color=c, markeredgecolor="black", label=name)
        for _, name, c, m in ARMS
    ]
    handles += [
        Line2D([], [], ls="", marker="o", color="0.7", markeredgecolor="black",
               markersize=math.sqrt(_size(b)), label=f"{b} block{'s' if b != 1 else ''}")
        for b in sorted({r["blocks"] for r in done})
    ]  # fmt: skip
    return handles


def plot_budgets(rows: list[dict], path: str | Path) -> Path:
    """val_accuracy vs learning rate, one panel per budget (target epochs), skip on/off marked.

    Trials of different budgets are not comparable (a 1-epoch trial is not a worse
    configuration than a 9-epoch one), so each budget gets its own panel, with shared axes.
    Colour and marker: skip on (blue circles) or off (orange squares); size: blocks.
    """
    done = completed(rows)
    if not done:
        raise ValueError("no completed trial to plot")
    plt = plots.pyplot()
    by_budget: dict[int | None, list[dict]] = defaultdict(list)
    for r in done:
        by_budget[budget_of(r)].append(r)
    budgets = sorted(by_budget, key=lambda b: -1 if b is None else b)
    cols = min(len(budgets), 4) or 1
    nrows = max(1, math.ceil(len(budgets) / cols))
    fig, axes = plt.subplots(
        nrows,
        cols,
        figsize=(4.2 * cols, 3.6 * nrows + 0.6),
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    for ax, budget in zip(axes.flat, budgets, strict=False):
        _budget_panel(ax, budget, by_budget[budget])
    for ax in list(axes.flat)[len(budgets) :]:
        ax.set_visible(False)
    for row_axes in axes:
        row_axes[0].set_ylabel("validation accuracy (best epoch)")
    handles = _legend_handles(done)
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle(
        "Search by training budget (target epochs): compare trials within a panel; "
        "dotted: the panel's best"
    )
    return plots.save(plt, fig, path, rect=(0, 0.07 / nrows, 1, 1))


def write_insights(rows: list[dict], out_dir: str | Path) -> dict[str, Path]:
    """Write both PNGs into out_dir; returns {"search_history": path, "search_budgets": path}.

    Writes nothing and returns {} when no trial has completed.
    """
    if not completed(rows):
        return {}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return {
        "search_history": plot_history(rows, out_dir / HISTORY_PNG),
        "search_budgets": plot_budgets(rows, out_dir / BUDGETS_PNG),
    }


# -- text ---------------------------------------------------------------------------------
def _ranking_text(imp: Importance) -> str:
    return ", ".join(f"{name} {share:.2f}" for name, share in imp.ranking)


def _importance_lines(imp: Importance) -> list[str]:
    lines = ["### Which hyperparameters mattered", ""]
    if imp.ranking:
        lines += ["| rank | hyperparameter | importance (share) |", "| --- | --- | --- |"]
        for k, (name, share) in enumerate(imp.ranking, 1):
            note = " (constant)" if name in imp.constant else ""
            lines.append(f"| {k} | {_LABELS.get(name, name)}{note} | {share:.2f} |")
        lines.append("")
    lines.append(f"Method: {imp.method}; {imp.n_trials} completed trials.")
    if imp.budget_share is not None:
        lines.append(
            f"The budget alone accounts for {imp.budget_share:.0%} of the main-effect variance "
            "(budget + the four hyperparameters); it is not ranked."
        )
    if imp.warning:
        lines += ["", f"> **Warning:** {imp.warning}."]
    return lines


def _skip_lines(comp: SkipComparison) -> list[str]:
    lines = ["### Skip connections inside the search (observational)", ""]
    if comp.strata:
        lines += [
            f"| blocks | filters | budget | skip on: {comp.statistic} (n) | "
            f"skip off: {comp.statistic} (n) | on − off |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        lines += [
            f"| {s.blocks} | {s.filters} | {epochs_label(s.budget)} | {s.on:.4f} ({s.n_on}) | "
            f"{s.off:.4f} ({s.n_off}) | {s.diff:+.4f} |"
            for s in comp.strata
        ]
        lines.append("")
    lines.append(comp.summary())
    return lines


def _history_lines(rows: list[dict], image_prefix: str) -> list[str]:
    h = history(rows)
    return [
        "### Optimization history and budgets",
        "",
        f"Best validation accuracy {h.best_so_far[-1]:.4f} after {h.total_epochs} epochs and "
        f"{h.total_seconds / 60:.1f} min of training over {len(rows)} trials. Trials of "
        "different budgets are plotted apart: a 1-epoch trial is not a worse configuration "
        "than a 9-epoch one.",
        "",
        f"![search history]({image_prefix}{HISTORY_PNG})",
        "",
        f"![search by budget]({image_prefix}{BUDGETS_PNG})",
        "",
    ]


def markdown(rows: list[dict], *, image_prefix: str = "") -> str:
    """The "## What the search teaches" section of report.md.

    Image links are ``image_prefix + search_history.png`` (and ``search_budgets.png``):
    relative names, so pass e.g. ``"plots/"`` when the PNGs sit in the report's plots folder.
    """
    lines = ["## What the search teaches", ""]
    if not completed(rows):
        return "\n".join([*lines, "No completed trial yet: nothing to learn from.", ""])
    lines += _importance_lines(importance(rows))
    lines += ["", *_skip_lines(skip_comparison(rows))]
    lines += ["", *_history_lines(rows, image_prefix)]
    return "\n".join(lines)


def console_lines(rows: list[dict]) -> list[str]:
    """A few lines to print at the end of a search."""
    done = completed(rows)
    if not done:
        return ["What the search teaches: no completed trial yet."]
    imp = importance(rows)
    out = [f"What the search teaches ({len(done)} completed trials):"]
    if imp.ranking:
        out.append(
            f"  importance (random forest, budget as covariate): {_ranking_text(imp)}"
            + (f"; budget itself {imp.budget_share:.0%}" if imp.budget_share is not None else "")
        )
    if imp.warning:
        out.append(f"  warning: {imp.warning}")
    comp = skip_comparison(rows)
    if comp.paired is not None:
        p = comp.paired
        text = f"  skip on - off in matched trials: {p.mean_diff:+.4f} over {p.n} "
        text += "stratum" if p.n == 1 else "strata"
        text += " (same blocks, filters, epochs)"
        if p.ci_low is not None:
            text += f", 95% CI {p.ci_low:+.4f} to {p.ci_high:+.4f}"
    else:
        best = [
            f"{name} {row['val_accuracy']:.4f} at {epochs_label(budget_of(row))}"
            if row
            else f"{name} none"
            for (_, name, _, _), row in zip(ARMS, (comp.best_on, comp.best_off), strict=True)
        ]
        text = "  skip: no matched trials; best " + ", ".join(best)
    out += [text, f"    {OBSERVATIONAL}; controlled: {ABLATE_COMMAND}"]
    h = history(rows)
    out.append(
        f"  history: best {h.best_so_far[-1]:.4f} after {h.total_epochs} epochs, "
        f"{h.total_seconds / 60:.1f} min of training"
    )
    return out
