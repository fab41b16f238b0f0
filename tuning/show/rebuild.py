"""Rebuild every plot and ``report.md`` of a run from its saved results, without training.

Reads whatever the run directory holds: the search (``trials.csv``, with what it teaches:
``tuning.show.insights``), the ablation
(``ablation/runs.csv`` and ``ablation/histories/``) and the final model
(``final/report.json``). PNGs go to ``<run>/plots/``, the same figures into TensorBoard
as images (``<run>/tensorboard/reports``), and everything into ``<run>/report.md``.
"""

from __future__ import annotations

from pathlib import Path

from tuning.errors import ProjectError
from tuning.rundir import records
from tuning.show.insight_plots import markdown as insights_markdown
from tuning.show.insight_plots import write_insights
from tuning.show.markdown import (
    ablation_markdown,
    final_section_markdown,
    hardware,
    search_markdown,
)
from tuning.show.plots import (
    plot_accuracy_vs_depth,
    plot_final,
    plot_loss_curves,
    plot_search,
    write_tensorboard_images,
)
from tuning.stats import ablation_summary

PLOTS = "plots"


def build_reports(run_dir: str | Path) -> dict:
    """Rebuild every plot and report.md from saved results; returns what was built."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ProjectError(f"run directory {run_dir} does not exist")
    plots = run_dir / PLOTS
    plots.mkdir(exist_ok=True)
    pngs: dict[str, Path] = {}
    lines = [f"# Report: {run_dir.name}", ""]
    built: dict = {"verdicts": []}
    for section in (search_section, ablation_section, final_section):
        lines += section(run_dir, plots, pngs, built)
    if not pngs:
        raise ProjectError(f"{run_dir} holds no results to report (no trials, ablation or final)")
    write_tensorboard_images(run_dir / "tensorboard" / "reports", pngs)
    records.atomic_write_text(run_dir / "report.md", "\n".join(lines))
    built["plots"] = {k: str(v) for k, v in pngs.items()}
    return built


def search_section(run_dir: Path, plots: Path, pngs: dict, built: dict) -> list[str]:
    trials_csv = run_dir / "trials.csv"
    if not trials_csv.is_file():
        return []
    rows = records.read_trials_csv(trials_csv)
    if not any(r["status"] == "COMPLETED" for r in rows):
        return []
    pngs["search"] = plot_search(rows, plots / "search.png")
    pngs.update(write_insights(rows, plots))
    return (
        search_markdown(rows)
        + insights_markdown(rows, image_prefix=f"{PLOTS}/").splitlines()
        + [""]
    )


def ablation_section(run_dir: Path, plots: Path, pngs: dict, built: dict) -> list[str]:
    out = run_dir / records.ABLATION_DIR
    if not (out / "runs.csv").is_file():
        return []
    meta = records.read_json(out / "ablation.json")
    meta.setdefault("hardware", hardware())
    histories = [
        records.read_ablation_history(p) for p in sorted((out / "histories").glob("*.json"))
    ]
    summary = ablation_summary(records.read_ablation_runs(out))
    pngs["ablation_accuracy"] = plot_accuracy_vs_depth(summary, plots / "ablation_accuracy.png")
    pngs["ablation_loss_curves"] = plot_loss_curves(histories, plots / "ablation_loss_curves.png")
    records.atomic_write_json(out / "summary.json", summary)
    built["ablation"] = summary
    built["verdicts"] = [e["verdict"] for e in summary if "verdict" in e]
    return ablation_markdown(meta, summary)


def final_section(run_dir: Path, plots: Path, pngs: dict, built: dict) -> list[str]:
    final_report = run_dir / "final" / "report.json"
    if not final_report.is_file():
        return []
    report = records.read_json(final_report)
    pngs["final"] = plot_final(report, plots / "final.png")
    return final_section_markdown(report)
