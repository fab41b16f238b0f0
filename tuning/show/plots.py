"""Every figure of a run, as PNG files (matplotlib, no display needed).

The search view (each trial against each hyperparameter), the ablation (accuracy against
depth, loss curves), the final model (confusion matrix, per-class accuracy); and the same
figures as TensorBoard images. ``tuning.show.insight_plots`` draws the search's history and budgets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tuning.data import CLASS_NAMES
from tuning.rundir import records

ARMS = ((True, "skip", "tab:blue"), (False, "plain", "tab:orange"))


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(plt, fig, path: str | Path, rect=None) -> Path:
    """Every figure of a run is written here: into a folder it creates, at one resolution;
    ``rect`` keeps a strip free for a figure-wide legend."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout(**({} if rect is None else {"rect": rect}))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_accuracy_vs_depth(summary: list[dict], path: Path) -> Path:
    """Validation accuracy and final training loss against depth, both arms, mean and 95%
    interval over seeds: degradation is a deep plain network's higher *training* loss."""
    plt = pyplot()
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric, label in (
        (ax_acc, "val_accuracy", "validation accuracy (last epoch)"),
        (ax_loss, "train_loss", "training loss (last epoch)"),
    ):
        for _, name, color in ARMS:
            pts = [(e["blocks"], e[name]) for e in summary if e[name]["n"]]
            if pts:
                ax.errorbar(
                    [b for b, _ in pts],
                    [a[f"{metric}_mean"] for _, a in pts],
                    yerr=[a.get(f"{metric}_ci95") or 0.0 for _, a in pts],
                    marker="o",
                    capsize=4,
                    color=color,
                    label=f"{name} (mean, 95% CI over seeds)",
                )
        ax.set_xlabel("residual blocks (depth)")
        ax.set_ylabel(label)
        ax.set_xscale("log", base=2)
        ax.set_xticks([e["blocks"] for e in summary], [str(e["blocks"]) for e in summary])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Skip connections vs plain network, by depth")
    return save(plt, fig, path)


def plot_loss_curves(histories: list[dict], path: Path) -> Path:
    plt = pyplot()
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
    return save(plt, fig, path)


def plot_search(rows: list[dict], path: Path) -> Path:
    plt = pyplot()
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
    return save(plt, fig, path)


def plot_final(report: dict, path: Path) -> Path:
    plt = pyplot()
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
    return save(plt, fig, path)


def write_tensorboard_images(logdir: Path, pngs: dict[str, Path]) -> None:
    """The same figures as TensorBoard images (IMAGES tab, run 'reports')."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(logdir))
    with writer.as_default():
        for name, png in pngs.items():
            image = tf.image.decode_png(tf.io.read_file(str(png)), channels=4)
            tf.summary.image(name, tf.expand_dims(image, 0), step=0)
    writer.close()
