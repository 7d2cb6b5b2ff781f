"""What a finished run shows people: a per-task table beside the baselines, and a PNG."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HEADLINE = {"vqa": "accuracy", "caption": "cider", "refexp": "acc@0.5", "depth": "rmse"}


def table(model_results: dict, baselines: dict) -> str:
    rows = [f"{'task':<9} {'metric':<10} {'model':>9}   baselines"]
    for task, metrics in model_results.items():
        key = HEADLINE.get(task, next(iter(metrics)))
        base = ", ".join(f"{name} {m.get(key, float('nan')):.3f}" for name, m in baselines.get(task, {}).items())
        rows.append(f"{task:<9} {key:<10} {metrics[key]:>9.3f}   {base}")
    return "\n".join(rows)


def read_losses(metrics_file: Path) -> dict:
    """{curve name: (steps, losses)}: the total loss, and each task's cross-entropy where logged."""
    curves: dict = {}
    for line in Path(metrics_file).read_text().splitlines():
        row = json.loads(line)
        if "loss" not in row:
            continue
        for name, value in {"total": row["loss"], **row.get("task_loss", {})}.items():
            steps, losses = curves.setdefault(name, ([], []))
            steps.append(row["step"])
            losses.append(value)
    return curves


def draw_report(run_dir: Path, samples: list, path: Path | None = None) -> Path:
    """Loss curve plus a few predictions drawn on their images. `samples`: [(task, example, prediction)]."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    curves = read_losses(Path(run_dir) / "metrics.jsonl")
    fig, axes = plt.subplots(1, 1 + len(samples), figsize=(4 * (1 + len(samples)), 4))
    axes = np.atleast_1d(axes)
    for name, (steps, losses) in curves.items():
        axes[0].plot(steps, losses, label=name, lw=2 if name == "total" else 1)
    axes[0].set(title="training loss (tasks: token cross-entropy)", xlabel="step", yscale="log")
    axes[0].legend(fontsize=7)
    for ax, (task, example, prediction) in zip(axes[1:], samples):
        draw_prediction(ax, task, example, prediction)
    fig.tight_layout()
    path = Path(path or Path(run_dir) / "report.png")
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def draw_prediction(ax, task: str, example, prediction) -> None:
    import matplotlib.patches as patches
    ax.axis("off")
    if isinstance(prediction, np.ndarray) and prediction.ndim == 2:
        ax.imshow(np.concatenate([example.target, prediction], axis=1), cmap="magma_r")
        ax.set_title("depth: gold | predicted", fontsize=8)
        return
    ax.imshow(example.image)
    if task == "refexp" or (isinstance(prediction, list) and len(prediction) == 4):
        for box, colour in ((example.target, "lime"), (prediction, "red")):
            x1, y1, x2, y2 = box
            ax.add_patch(patches.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color=colour, lw=2))
        ax.set_title(f"{example.meta.get('expression', '')}\n(green gold, red predicted)", fontsize=8)
    else:
        ax.set_title(f"{example.prompt[:40]}\n→ {str(prediction)[:40]}\n(gold: {str(example.target)[:40]})", fontsize=7)
