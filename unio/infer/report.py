"""What a finished run shows people: a per-task table beside the baselines, and a PNG."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _task(pair: str):
    from unio.registries import TASKS
    name = pair.partition("@")[0]
    return TASKS.get(name) if name in TASKS else None


def headline(pair: str, metrics: dict) -> str:
    """The task's own headline metric (its `headline` attribute), else its first metric."""
    key = getattr(_task(pair), "headline", None)
    return key if key in metrics else next(iter(metrics))


def table(model_results: dict, baselines: dict) -> str:
    """One row per pair: its headline metric, then any metric its task asks to report beside it."""
    width = max([9, *(len(pair) for pair in model_results)])
    rows = [f"{'task':<{width}} {'metric':<10} {'model':>9}   baselines"]
    for pair, metrics in model_results.items():
        keys = [headline(pair, metrics)] + [k for k in getattr(_task(pair), "also_report", ()) if k in metrics]
        for key in keys:
            base = ", ".join(f"{name} {m.get(key, float('nan')):.3f}" for name, m in baselines.get(pair, {}).items())
            rows.append(f"{pair:<{width}} {key:<10} {metrics[key]:>9.3f}   {base}")
    return "\n".join(rows)


def robustness_table(results: dict) -> str:
    """Markdown: each pair's reported metrics on clean images and on each perturbation ({name: {pair: metrics}}),
    with the change relative to clean in the metric's good direction (negative: worse), and the worst change."""
    names = [n for n in results if n != "clean"]
    rows = ["| task | metric | clean | " + " | ".join(names) + " | worst |", "|---" * (len(names) + 4) + "|"]
    for pair, clean in results["clean"].items():
        task = _task(pair)
        sign = -1 if getattr(task, "lower_is_better", False) else 1
        for key in [headline(pair, clean)] + [k for k in getattr(task, "also_report", ()) if k in clean]:
            changes = [sign * (results[n][pair][key] - clean[key]) / abs(clean[key] or 1) for n in names]
            cells = [f"{results[n][pair][key]:.3f} ({c:+.0%})" for n, c in zip(names, changes)]
            rows.append(f"| {pair} | {key} | {clean[key]:.3f} | " + " | ".join(cells) + f" | {min(changes):+.0%} |")
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


def draw_report(run_dir: Path, results: list, path: Path | None = None) -> Path:
    """Loss curves plus a few results drawn the way each task draws them. `results`: [Result]."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    curves = read_losses(Path(run_dir) / "metrics.jsonl")
    fig, axes = plt.subplots(1, 1 + len(results), figsize=(4 * (1 + len(results)), 4))
    axes = np.atleast_1d(axes)
    for name, (steps, losses) in curves.items():
        axes[0].plot(steps, losses, label=name, lw=2 if name == "total" else 1)
    axes[0].set(title="training loss (tasks: token cross-entropy)", xlabel="step", yscale="log")
    axes[0].legend(fontsize=7)
    for ax, result in zip(axes[1:], results):
        ax.axis("off")
        ax.imshow(result.draw())
        ax.set_title(f"{result.task}: {result.prompt[:40]}", fontsize=8)
    fig.tight_layout()
    path = Path(path or Path(run_dir) / "report.png")
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
