"""The skip question's tables (docs/results/skip.md): ablation summaries whose per-training
rows (each run's ``ablation/runs.csv``) were never committed, transcribed from
``tuning.report``'s output and marked as such, with the command that measures them again."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from .core import Row, read_rows, table, where

SUMMARY = "docs/results/ablation_summary.csv"
DATA = "--data-dir ../shared/data/fashion-mnist"
HP = """--hyperparameters '{"blocks": 2, "filters": %d, "skip": true, "learning_rate": %s}'"""
RERUN = {
    "lab_recipe": f"python -m tuning.ablate --run-dir runs/lab-recipe {DATA} {HP % (64, '0.001')} "
    "--epochs 5 --seeds 5 --momentum 0 --batch-size 256 --augment none --weight-decay 0 "
    "--label-smoothing 0 --bn-momentum 0.99 --precision auto",
    "project_recipe": f"python -m tuning.ablate --run-dir runs/project-recipe {DATA} "
    f"{HP % (64, '0.001')} --epochs 18 --seeds 5 --momentum 0.9 --augment flip,erase "
    "--weight-decay 0 --label-smoothing 0 --schedule cosine --warmup-epochs 1 --lr-scale 4 "
    "--max-lr 0.1 --bn-momentum 0.99 --precision auto",
    "depth": f"python -m tuning.ablate --run-dir runs/depth {DATA} {HP % (32, '0.01')} "
    "--blocks 1,2,4,8,16 --seeds 3 --epochs 12 --momentum 0.9 --augment flip,erase "
    "--schedule cosine --warmup-epochs 1 --lr-scale 4 --max-lr 0.1 --bn-momentum 0.99 "
    "--precision auto",
    "subset5000": f"python -m tuning.ablate --run-dir runs/ablation {DATA} {HP % (32, '0.01')} "
    "--epochs 6 --blocks 2,8,16 --seeds 5 --subset 5000 --batch-size 128 --momentum 0.9 "
    "--bn-momentum 0.99 --precision auto",
}


def lost(experiment: str) -> str:
    return (
        f"*Rows lost: this ablation's per-training rows (`ablation/runs.csv`) were never "
        f"committed, so the table below is `tuning.report`'s summary as it printed then, "
        f"transcribed into `{SUMMARY}`; it cannot be recomputed. Rerun with "
        f"`{RERUN[experiment]}` (batch-norm momentum 0.99 as then; today's default is 0.9) "
        f"and commit the run's `ablation/runs.csv` under docs/results/.*"
    )


def summary(root: Path, experiment: str) -> str:
    rows = where(read_rows(root, SUMMARY), experiment=experiment)
    loss = rows[0]["train_loss_skip"] != ""
    headers = [
        "blocks",
        "pairs",
        "skip: val acc mean ± sd",
        "plain: val acc mean ± sd",
        "difference (skip − plain) [95% CI]",
        "p",
    ]
    headers += ["train loss skip / plain"] * loss + ["params", "s/training skip / plain"]
    body = []
    for r in rows:
        cells = [
            r["blocks"],
            r["pairs"],
            f"{r['skip_mean']:.4f} ± {r['skip_sd']:.4f}",
            f"{r['plain_mean']:.4f} ± {r['plain_sd']:.4f}",
            f"{r['diff']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]",
            f"{r['p']:.3f}",
        ]
        if loss:
            cells.append(f"{r['train_loss_skip']:.4f} / {r['train_loss_plain']:.4f}")
        body.append([*cells, r["params"], f"{r['s_skip']:.1f} / {r['s_plain']:.1f}"])
    return f"{lost(experiment)}\n\n{table(headers, body)}"


def sentence(r: Row, prefix: str, metric: str) -> str:
    d, lo, hi, p = (float(r[prefix + k]) for k in ("diff", "ci_low", "ci_high", "p"))
    where_ = f"At {r['blocks']} block{'s' * (r['blocks'] != 1)}"
    stats = f"(95% CI {lo:+.4f} to {hi:+.4f}, paired t, n={r['pairs']}, p={p:.3g})"
    if lo > 0 or hi < 0:
        verb = "raise" if d > 0 else "lower"
        return (
            f"- {where_}, skip connections {verb} {metric} by {abs(d):.4f} {stats}: a "
            "significant difference at the 5% level."
        )
    return (
        f"- {where_}, the difference in {metric} with skip connections is {d:+.4f} {stats}: "
        "not significant at the 5% level."
    )


def verdicts(root: Path, experiment: str) -> str:
    rows = where(read_rows(root, SUMMARY), experiment=experiment)
    lines = ["**Validation accuracy** (last epoch, skip − plain, the same seeds)", ""]
    lines += [sentence(r, "", "validation accuracy") for r in rows]
    if rows[0]["loss_diff"] != "":
        lines += ["", "**Training loss** (last epoch, skip − plain, the same seeds)", ""]
        lines += [sentence(r, "loss_", "the final training loss") for r in rows]
    return "\n".join(lines)


def settings(root: Path, experiment: str) -> str:
    rows = where(read_rows(root, "docs/results/ablation_settings.csv"), experiment=experiment)
    return table(["setting", "value"], ([r["setting"], r["value"]] for r in rows))


TABLES = {
    **{f"ablation_{e}": partial(summary, experiment=e) for e in RERUN},
    **{f"verdicts_{e}": partial(verdicts, experiment=e) for e in ("depth", "subset5000")},
    **{f"settings_{e}": partial(settings, experiment=e) for e in ("depth", "subset5000")},
}
