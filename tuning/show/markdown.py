"""report.md text for every part of a run: search, ablation, final model.

Pure functions from saved results to markdown lines; ``tuning.show.rebuild`` puts them
together with the plots.
"""

from __future__ import annotations

import json
import math
import os
import platform

from tuning.data import CLASS_NAMES


def hardware() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores"


def fmt(x: float | None, digits: int = 4) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def ablation_settings(meta: dict) -> list[str]:
    """The settings both arms trained with, as a table."""
    d = meta["definition"]
    schedule = d.get("schedule") or f"constant {d['learning_rate']:.4g}"
    regularization = (
        f"{d.get('weight_decay', 0.0):g} / {d.get('label_smoothing', 0.0):g} / "
        f"{', '.join(d.get('augment') or []) or 'none'}"
    )
    return [
        "| setting | value |",
        "| --- | --- |",
        f"| filters | {d['filters']} |",
        f"| SGD learning rate / momentum | {d['learning_rate']:.4g} / {d['momentum']}"
        f"{' (Nesterov)' if d.get('nesterov') else ''} |",
        f"| learning-rate schedule | {schedule} |",
        f"| weight decay / label smoothing / augmentation | {regularization} |",
        f"| batch-norm momentum | {d.get('bn_momentum', 0.99):g} |",
        f"| epochs | {d['epochs']} |",
        f"| batch size | {d['batch_size']} |",
        f"| data | train {meta['sizes']['train']:,} / valid {meta['sizes']['valid']:,} images"
        f" (split seed {d['split_seed']}) |",
        f"| seeds per arm | {len(meta['seeds'])} ({', '.join(map(str, meta['seeds']))}) |",
        f"| precision | {meta.get('precision', 'float32')} |",
        f"| hardware | {meta.get('hardware') or hardware()} |",
    ]


def ablation_markdown(meta: dict, summary: list[dict]) -> list[str]:
    lines = [
        "## Do the skip connections help? (ablation)",
        "",
        "Each configuration was trained from scratch with skip connections on and off, with the "
        "same seeds for both arms (same split, initial weights and shuffling), and scored on the "
        "**validation** split after its last epoch. The test set was not used: it is reserved "
        "for the finalizer.",
        "",
        *ablation_settings(meta),
        "",
        "| blocks | pairs | skip: val acc mean ± sd | plain: val acc mean ± sd | "
        "difference (skip − plain) [95% CI] | p | train loss skip / plain | params | "
        "s/training skip / plain |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for e in summary:
        s, p, pr = e["skip"], e["plain"], e.get("paired")
        ci = "—"
        if pr and pr["ci_low"] is not None:
            ci = f"{pr['mean_diff']:+.4f} [{pr['ci_low']:+.4f}, {pr['ci_high']:+.4f}]"
        elif pr:
            ci = f"{pr['mean_diff']:+.4f}"
        pval = fmt(pr["p_value"], 3) if pr else "—"
        lines.append(
            f"| {e['blocks']} | {len(e['seeds'])} | {fmt(s['val_accuracy_mean'])} ± "
            f"{fmt(s['val_accuracy_sd'])} | {fmt(p['val_accuracy_mean'])} ± "
            f"{fmt(p['val_accuracy_sd'])} | {ci} | {pval} | "
            f"{fmt(s.get('train_loss_mean'))} / {fmt(p.get('train_loss_mean'))} | "
            f"{s['params'] or '—'} | "
            f"{fmt(s['seconds_mean'], 1)} / {fmt(p['seconds_mean'], 1)} |"
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
    loss_verdicts = [f"- {e['loss_verdict']}" for e in summary if "loss_verdict" in e]
    if loss_verdicts:  # a deep plain network that fits worse is degradation, not overfitting
        lines += ["", "**Training loss** (last epoch, skip − plain, the same seeds)", ""]
        lines += loss_verdicts
    lines += [
        "",
        "![accuracy vs depth](plots/ablation_accuracy.png)",
        "",
        "![loss curves](plots/ablation_loss_curves.png)",
        "",
    ]
    return lines


def search_markdown(rows: list[dict]) -> list[str]:
    """The search section: counts, each arm's best trial, the search view."""
    completed = [r for r in rows if r["status"] == "COMPLETED"]
    skip_acc = [r["val_accuracy"] for r in completed if r["skip"]]
    plain_acc = [r["val_accuracy"] for r in completed if not r["skip"]]
    return [
        "## Search",
        "",
        f"{len(rows)} trials, {len(completed)} completed. Best validation accuracy with skip "
        f"on: {fmt(max(skip_acc, default=None))}, with skip off: "
        f"{fmt(max(plain_acc, default=None))} (trials differ in more than skip; the "
        "ablation below compares like with like).",
        "",
        "![search](plots/search.png)",
        "",
    ]


def final_section_markdown(report: dict) -> list[str]:
    """The final model's section of the run's report.md (details stay in final/report.md)."""
    return [
        "## Final model (test set, evaluated once)",
        "",
        f"Test accuracy {report['test_accuracy']:.4f} with {report['hyperparameters']}, "
        f"{report['epochs']} epochs on {report['train_on']}{tta_text(report)}. "
        "Details: `final/report.md`.",
        "",
        "![final](plots/final.png)",
        "",
    ]


def tta_text(report: dict) -> str:
    """How the test accuracy was computed, when not from the single view."""
    if report.get("tta", "none") == "none":
        return ""
    return (
        f", with {report['tta']} test-time augmentation (the mean of each image's and its "
        f"mirror's probabilities; single view {report['test_accuracy_single_view']:.4f})"
    )


def final_markdown(report: dict) -> str:
    hp, chosen = report["hyperparameters"], report["chosen_from"]
    lines = [
        "# Final model",
        "",
        f"Test accuracy **{report['test_accuracy']:.4f}** (loss {report['test_loss']:.4f}) "
        f"on the {report['sizes']['test']:,} official test images, evaluated once"
        f"{tta_text(report)}.",
        "",
        "| setting | value |",
        "| --- | --- |",
        f"| blocks | {hp['blocks']} |",
        f"| filters | {hp['filters']} |",
        f"| skip connections | {'on' if hp['skip'] else 'off'} |",
        f"| searched learning rate (SGD) | {hp['learning_rate']:.4g} |",
        f"| momentum | {report['momentum']}{' (Nesterov)' if report['nesterov'] else ''} |",
        f"| learning-rate schedule | {report['schedule']} |",
        f"| weight decay | {report['weight_decay']:g} |",
        f"| label smoothing | {report['label_smoothing']:g} |",
        f"| augmentation | {', '.join(report['augment']) or 'none'} |",
        f"| batch-norm momentum | {report.get('bn_momentum', 0.99):g} |",
        f"| epochs | {report['epochs']} ({report['epochs_source']}) |",
        f"| batch size | {report['batch_size']} |",
        f"| precision | {report['precision']} |",
        f"| trained on | {report['train_on']} ({report['sizes']['train']:,} images) |",
        f"| seed | {report['seed']} |",
        f"| chosen from | {chosen.get('trial_id', chosen['source'])} |",
        f"| training time | {report['timings']['train_s']:.1f} s |",
        "",
    ]
    if report.get("validation"):
        v = report["validation"]
        lines += [
            f"Validation ({report['sizes']['valid']:,} images): final epoch accuracy "
            f"{v['final_val_accuracy']:.4f}, best {v['best_val_accuracy']:.4f} "
            f"(epoch {v['best_epoch']}).",
            "",
        ]
    lines += ["## Per-class test accuracy", "", "| class | accuracy |", "| --- | --- |"]
    lines += [f"| {n} | {a:.3f} |" for n, a in report["per_class_accuracy"].items()]
    lines += ["", "## Confusion matrix (rows: true class, columns: predicted)", ""]
    short = [n.split("/")[0][:7] for n in CLASS_NAMES]
    lines.append("| true \\ pred | " + " | ".join(short) + " |")
    lines.append("| --- " * (len(short) + 1) + "|")
    for name, row in zip(short, report["confusion_matrix"], strict=True):
        lines.append(f"| {name} | " + " | ".join(str(c) for c in row) + " |")
    lines += ["", f"Library versions: {json.dumps(report['versions'])}", ""]
    return "\n".join(lines)
