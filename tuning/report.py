"""``python -m tuning.report``: plots and ``report.md`` from saved results, no training.

Builds, from whatever the run directory holds:
- the search view (``trials.csv``): validation accuracy against each hyperparameter;
- the ablation (``ablation/runs.csv`` and ``ablation/histories/``): accuracy against depth
  for both arms with error bars, train/validation loss curves per epoch, the paired
  statistics and a verdict per depth;
- the final model (``final/report.json``): confusion matrix and per-class accuracy.

PNGs go to ``<run>/plots/``, the same figures into TensorBoard as images
(``<run>/tensorboard/reports``), and everything into ``<run>/report.md``.
"""

from __future__ import annotations

import math
import os
import platform
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tuning import records
from tuning.errors import ArgumentParser, ProjectError, run_cli
from tuning.stats import paired_t, summarize, verdict

PLOTS = "plots"
ARMS = ((True, "skip", "tab:blue"), (False, "plain", "tab:orange"))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# -- ablation ---------------------------------------------------------------------------
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
        for skip, name, _ in ARMS:
            runs = [arms[skip][s] for s in seeds]
            acc = summarize([r["val_accuracy"] for r in runs]) if runs else None
            entry[name] = {
                "n": len(runs),
                "val_accuracy_mean": acc.mean if acc else None,
                "val_accuracy_sd": acc.sd if acc else None,
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
            entry["verdict"] = verdict(blocks, result)
        out.append(entry)
    return out


def plot_accuracy_vs_depth(summary: list[dict], path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for _, name, color in ARMS:
        pts = [(e["blocks"], e[name]) for e in summary if e[name]["n"]]
        if pts:
            ax.errorbar(
                [b for b, _ in pts],
                [a["val_accuracy_mean"] for _, a in pts],
                yerr=[a["val_accuracy_sd"] for _, a in pts],
                marker="o",
                capsize=4,
                color=color,
                label=f"{name} (mean ± sd over seeds)",
            )
    ax.set_xlabel("residual blocks (depth)")
    ax.set_ylabel("validation accuracy (last epoch)")
    ax.set_xticks([e["blocks"] for e in summary])
    ax.set_title("Skip connections vs plain network, by depth")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(plt, fig, path)


def plot_loss_curves(histories: list[dict], path: Path) -> Path:
    plt = _pyplot()
    depths = sorted({h["blocks"] for h in histories})
    fig, axes = plt.subplots(1, len(depths), figsize=(4.5 * len(depths), 3.8), squeeze=False)
    for ax, blocks in zip(axes[0], depths, strict=True):
        for skip, name, color in ARMS:
            hs = [h for h in histories if h["blocks"] == blocks and h["skip"] == skip]
            if not hs:
                continue
            epochs = np.arange(1, len(hs[0]["loss"]) + 1)
            for key, style in (("loss", "--"), ("val_loss", "-")):
                mean = np.mean([h[key] for h in hs], axis=0)
                label = f"{name} {'train' if key == 'loss' else 'valid'}"
                ax.plot(epochs, mean, style, color=color, marker=".", label=label)
        ax.set_title(f"{blocks} block{'s' if blocks != 1 else ''} (mean over seeds)")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("epoch")
        # Early validation losses of deep networks can be 1e6x the final ones: log scale.
        ax.set_yscale("log")
        ax.set_ylabel("loss (log scale)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(plt, fig, path)


# -- search and final model -----------------------------------------------------------
def plot_search(rows: list[dict], path: Path) -> Path:
    plt = _pyplot()
    done = [r for r in rows if r["status"] == "COMPLETED" and r.get("val_accuracy") is not None]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8), sharey=True)
    rng = np.random.default_rng(0)
    for ax, name in zip(axes, records.HP_NAMES, strict=True):
        values = [r[name] for r in done]
        acc = [r["val_accuracy"] for r in done]
        colors = ["tab:blue" if r["skip"] else "tab:orange" for r in done]
        if name == "learning_rate":
            ax.scatter(values, acc, c=colors)
            ax.set_xscale("log")
        else:
            cats = sorted(set(values))
            pos = {c: i for i, c in enumerate(cats)}
            x = [pos[v] + rng.uniform(-0.15, 0.15) for v in values]
            ax.scatter(x, acc, c=colors)
            ax.set_xticks(range(len(cats)))
            ax.set_xticklabels([str(c) for c in cats])
        ax.set_xlabel(name)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("val_accuracy (best epoch)")
    fig.suptitle("Search: each completed trial (blue: skip on, orange: skip off)")
    return _save(plt, fig, path)


def plot_final(report: dict, path: Path) -> Path:
    from tuning.data import CLASS_NAMES

    plt = _pyplot()
    matrix = np.asarray(report["confusion_matrix"])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5.2))
    im = ax1.imshow(matrix, cmap="Blues")
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            color = "white" if matrix[i, j] > matrix.max() / 2 else "black"
            ax1.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7, color=color)
    ax1.set_xticks(range(10))
    ax1.set_yticks(range(10))
    ax1.set_xticklabels(CLASS_NAMES, rotation=45, ha="right", fontsize=8)
    ax1.set_yticklabels(CLASS_NAMES, fontsize=8)
    ax1.set_xlabel("predicted")
    ax1.set_ylabel("true")
    ax1.set_title(f"Final model on test: accuracy {report['test_accuracy']:.4f}")
    fig.colorbar(im, ax=ax1, fraction=0.046)
    per_class = report["per_class_accuracy"]
    ax2.barh(list(per_class), list(per_class.values()), color="tab:blue")
    ax2.set_xlim(0, 1)
    ax2.invert_yaxis()
    ax2.set_xlabel("test accuracy")
    ax2.set_title("Per-class accuracy")
    ax2.grid(axis="x", alpha=0.3)
    return _save(plt, fig, path)


def write_tensorboard_images(logdir: Path, pngs: dict[str, Path]) -> None:
    """The same figures as TensorBoard images (IMAGES tab, run 'reports')."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(logdir))
    with writer.as_default():
        for name, png in pngs.items():
            image = tf.image.decode_png(tf.io.read_file(str(png)), channels=4)
            tf.summary.image(name, tf.expand_dims(image, 0), step=0)
    writer.close()


# -- the report -------------------------------------------------------------------------
def _fmt(x: float | None, digits: int = 4) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def ablation_markdown(meta: dict, summary: list[dict]) -> list[str]:
    d = meta["definition"]
    lines = [
        "## Do the skip connections help? (ablation)",
        "",
        "Each configuration was trained from scratch with skip connections on and off, with the "
        "same seeds for both arms (same split, initial weights and shuffling), and scored on the "
        "**validation** split after its last epoch. The test set was not used: it is reserved "
        "for the finalizer.",
        "",
        "| setting | value |",
        "| --- | --- |",
        f"| filters | {d['filters']} |",
        f"| SGD learning rate / momentum | {d['learning_rate']:.4g} / {d['momentum']} |",
        f"| epochs | {d['epochs']} |",
        f"| batch size | {d['batch_size']} |",
        f"| data | train {meta['sizes']['train']:,} / valid {meta['sizes']['valid']:,} images"
        f" (split seed {d['split_seed']}) |",
        f"| seeds per arm | {len(meta['seeds'])} ({', '.join(map(str, meta['seeds']))}) |",
        f"| precision | {meta.get('precision', 'float32')} |",
        f"| hardware | {meta.get('hardware', platform.machine())} |",
        "",
        "| blocks | pairs | skip: val acc mean ± sd | plain: val acc mean ± sd | "
        "difference (skip − plain) [95% CI] | p | params | s/training skip / plain |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for e in summary:
        s, p, pr = e["skip"], e["plain"], e.get("paired")
        ci = "—"
        if pr and pr["ci_low"] is not None:
            ci = f"{pr['mean_diff']:+.4f} [{pr['ci_low']:+.4f}, {pr['ci_high']:+.4f}]"
        elif pr:
            ci = f"{pr['mean_diff']:+.4f}"
        pval = _fmt(pr["p_value"], 3) if pr else "—"
        lines.append(
            f"| {e['blocks']} | {len(e['seeds'])} | {_fmt(s['val_accuracy_mean'])} ± "
            f"{_fmt(s['val_accuracy_sd'])} | {_fmt(p['val_accuracy_mean'])} ± "
            f"{_fmt(p['val_accuracy_sd'])} | {ci} | {pval} | {s['params'] or '—'} | "
            f"{_fmt(s['seconds_mean'], 1)} / {_fmt(p['seconds_mean'], 1)} |"
        )
    diverged = sum(e["skip"]["diverged"] + e["plain"]["diverged"] for e in summary)
    lines += [
        "",
        "Statistics: paired t over seeds (difference per seed, n − 1 degrees of freedom).",
    ]
    if diverged:
        lines.append(f"{diverged} training(s) diverged (non-finite loss); they count as scored.")
    lines += ["", "**Verdict**", ""]
    lines += [f"- {e['verdict']}" for e in summary if "verdict" in e]
    lines += [
        "",
        "![accuracy vs depth](plots/ablation_accuracy.png)",
        "",
        "![loss curves](plots/ablation_loss_curves.png)",
        "",
    ]
    return lines


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

    trials_csv = run_dir / "trials.csv"
    if trials_csv.is_file():
        rows = records.read_trials_csv(trials_csv)
        if any(r["status"] == "COMPLETED" for r in rows):
            pngs["search"] = plot_search(rows, plots / "search.png")
            done = sum(r["status"] == "COMPLETED" for r in rows)
            skip_acc = [r["val_accuracy"] for r in rows if r["status"] == "COMPLETED" and r["skip"]]
            plain_acc = [
                r["val_accuracy"] for r in rows if r["status"] == "COMPLETED" and not r["skip"]
            ]
            lines += [
                "## Search",
                "",
                f"{len(rows)} trials, {done} completed. Best validation accuracy with skip on: "
                f"{_fmt(max(skip_acc, default=None))}, with skip off: "
                f"{_fmt(max(plain_acc, default=None))} (trials differ in more than skip; the "
                "ablation below compares like with like).",
                "",
                "![search](plots/search.png)",
                "",
            ]

    out = run_dir / "ablation"
    if (out / "runs.csv").is_file():
        from tuning.ablate import read_runs

        meta = records.read_json(out / "ablation.json")
        meta.setdefault("hardware", f"{platform.machine()}, {os.cpu_count()} cores")
        rows = read_runs(out)
        histories = [records.read_json(p) for p in sorted((out / "histories").glob("*.json"))]
        summary = ablation_summary(rows)
        pngs["ablation_accuracy"] = plot_accuracy_vs_depth(summary, plots / "ablation_accuracy.png")
        pngs["ablation_loss_curves"] = plot_loss_curves(
            histories, plots / "ablation_loss_curves.png"
        )
        records.atomic_write_json(out / "summary.json", summary)
        lines += ablation_markdown(meta, summary)
        built["ablation"] = summary
        built["verdicts"] = [e["verdict"] for e in summary if "verdict" in e]

    final_report = run_dir / "final" / "report.json"
    if final_report.is_file():
        report = records.read_json(final_report)
        pngs["final"] = plot_final(report, plots / "final.png")
        lines += [
            "## Final model (test set, evaluated once)",
            "",
            f"Test accuracy {report['test_accuracy']:.4f} with {report['hyperparameters']}, "
            f"{report['epochs']} epochs on {report['train_on']}. Details: `final/report.md`.",
            "",
            "![final](plots/final.png)",
            "",
        ]

    if not pngs:
        raise ProjectError(f"{run_dir} holds no results to report (no trials, ablation or final)")
    write_tensorboard_images(run_dir / "tensorboard" / "reports", pngs)
    records.atomic_write_text(run_dir / "report.md", "\n".join(lines))
    built["plots"] = {k: str(v) for k, v in pngs.items()}
    return built


def build_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python -m tuning.report",
        description="Rebuild plots and report.md of a run from its saved results (no training).",
    )
    p.add_argument("--run-dir", default="runs/search", help="(%(default)s)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    built = build_reports(a.run_dir)
    for line in built["verdicts"]:
        print(line)
    for name, path in built["plots"].items():
        print(f"{name}: {path}")
    print(f"report: {Path(a.run_dir) / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli("python -m tuning.report", main))
