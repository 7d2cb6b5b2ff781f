"""Interference in a generalist: each task's headline metric beside specialists of the same preset, one trained
for the steps the task gets in the generalist ("equal steps") and one for the generalist's whole budget. The
signed relative change Δ = ±(M_generalist − M_specialist) / |M_specialist|, + when the generalist is better
(Maninis et al. 2019); Δm, its mean over the tasks that have a specialist of that kind (Vandenhende et al. 2021)."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

from unio.task_set import TaskSet
from unio.model.presets import DEFAULT_PRESET

KINDS = {"equal_steps": "equal steps", "whole_budget": "whole budget"}   # JSON key: the table's words
SETTING = ("split", "n", "preset")                                        # what two runs compared should share


def read_eval(path) -> dict:
    """An eval.json (or the run folder holding one) as train_mixture.py writes it, with the run's `preset`
    from the options.json beside it when there is one; or a run's record in docs/records/ (record_run.py)."""
    file = Path(path) / "eval.json" if Path(path).is_dir() else Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"no eval.json at {path}")
    evaluation = json.loads(file.read_text())
    if "model" not in evaluation and "metrics" in evaluation:
        return from_record(evaluation)
    if (file.parent / "options.json").is_file():
        evaluation["preset"] = json.loads((file.parent / "options.json").read_text()).get("preset")
    return evaluation


def from_record(record: dict) -> dict:
    """A docs/records/NAME.json as an eval.json's contents: its metrics, split and n, and the preset its
    command names (the trainer's default where it names none)."""
    words = (record.get("command") or "").split()
    preset = words[words.index("--preset") + 1] if "--preset" in words[:-1] else DEFAULT_PRESET
    return {"model": record["metrics"], "split": record.get("split"), "n": record.get("n"), "preset": preset}


def relative_change(generalist: float, specialist: float, lower_is_better: bool) -> float:
    if specialist == 0:
        raise ZeroDivisionError("the specialist's value is 0")
    return (-1 if lower_is_better else 1) * (generalist - specialist) / abs(specialist)


def headline(task, metrics: dict) -> str:
    """The task's `headline` attribute, else (a task without one) its first metric."""
    key = getattr(task, "headline", None)
    return key if key in metrics else next(iter(metrics))


def against(pair: str, kind: str, key: str, lower: bool, value: float, specialist: dict) -> dict:
    """{specialist, delta} of one pair against one specialist's eval.json contents; delta None where the
    specialist scored 0 (a relative change of nothing is undefined: the pair stays out of Δm)."""
    metrics = specialist["model"].get(pair)
    if metrics is None or key not in metrics:
        raise ValueError(f"the {KINDS[kind]} specialist given for {pair} has no {pair} {key}")
    try:
        return {"specialist": metrics[key], "delta": relative_change(value, metrics[key], lower)}
    except ZeroDivisionError:
        return {"specialist": metrics[key], "delta": None}


def compare(generalist: dict, specialists: dict, tasks: TaskSet | None = None) -> dict:
    """generalist: its eval.json's contents; specialists: {kind: {pair: that specialist's eval.json contents}}.
    -> {"pairs": {pair: {metric, lower_is_better, generalist, equal_steps, whole_budget}}, "delta_m": {kind},
    "tasks_in_delta_m": {kind}, "median_delta": {kind}, "worst": {kind: [pair, delta]}, "skipped": [...],
    "notes": [...]}; None where a pair or kind has no specialist. The median and the worst task say what a mean
    hides: one specialist near 0 makes its task's relative change, and so Δm, as large as it likes."""
    tasks = tasks or TaskSet()
    out = {"pairs": {}, "delta_m": {}, "tasks_in_delta_m": {}, "median_delta": {}, "worst": {}, "skipped": [],
           "notes": []}
    for kind, theirs in specialists.items():
        for pair in set(theirs) - set(generalist["model"]):
            raise ValueError(f"a specialist ({KINDS[kind]}) is given for {pair}, but the generalist has no {pair} "
                             f"(it has {', '.join(generalist['model'])})")
    for pair, metrics in generalist["model"].items():
        name = pair.partition("@")[0]
        if name not in tasks:
            out["skipped"].append(f"{pair}: task {name!r} is not installed")
            continue
        task = tasks.get(name)
        key, lower = headline(task, metrics), bool(getattr(task, "lower_is_better", False))
        row = out["pairs"][pair] = {"metric": key, "lower_is_better": lower, "generalist": metrics[key]}
        for kind, words in KINDS.items():
            theirs = specialists.get(kind, {}).get(pair)
            row[kind] = None if theirs is None else against(pair, kind, key, lower, metrics[key], theirs)
            if row[kind] and row[kind]["delta"] is None:
                out["notes"].append(f"{pair}: the {words} specialist's {key} is 0, so the relative change is "
                                    f"undefined; left out of Δm")
            out["notes"] += [f"{pair}: the {words} specialist's {s} is {theirs.get(s)!r}, the generalist's "
                             f"{generalist.get(s)!r}" for s in SETTING if theirs and theirs.get(s) != generalist.get(s)]
    for kind in KINDS:
        deltas = {pair: row[kind]["delta"] for pair, row in out["pairs"].items() if row[kind] and row[kind]["delta"] is not None}
        out["delta_m"][kind] = sum(deltas.values()) / len(deltas) if deltas else None
        out["tasks_in_delta_m"][kind] = len(deltas)
        out["median_delta"][kind] = statistics.median(deltas.values()) if deltas else None
        out["worst"][kind] = list(min(deltas.items(), key=lambda item: item[1])) if deltas else None
    return out


def undefined_or(delta) -> str:
    return "undefined (specialist 0)" if delta is None else f"{delta:+.1%}"


def markdown(comparison: dict) -> str:
    """The table: one row per pair (↑ / ↓: the metric's good direction), then Δm per kind of specialist."""
    rows = ["| task | metric | generalist | " + " | ".join(f"specialist, {w} | Δ" for w in KINDS.values()) + " |",
            "|---|---|---:|" + "---:|" * 2 * len(KINDS)]
    for pair, row in comparison["pairs"].items():
        cells = [pair, row["metric"] + (" ↓" if row["lower_is_better"] else " ↑"), f"{row['generalist']:.3f}"]
        for kind in KINDS:
            cells += [f"{row[kind]['specialist']:.3f}", undefined_or(row[kind]["delta"])] if row[kind] else ["–", "–"]
        rows.append("| " + " | ".join(cells) + " |")
    middles = [f"{m:+.1%} (worst: {w[0]} {w[1]:+.1%})" if (m := comparison["median_delta"][k]) is not None
               and (w := comparison["worst"][k]) else "–" for k in KINDS]
    means = [f"**{m:+.1%}** ({n} task{'s' * (n != 1)})" if (m := comparison["delta_m"][k]) is not None else "–"
             for k, n in comparison["tasks_in_delta_m"].items()]
    return "\n".join(rows + ["| " + " | ".join(["median Δ", "", ""] + [c for m in middles for c in ("", m)]) + " |",
                             "| " + " | ".join(["Δm", "", ""] + [c for m in means for c in ("", m)]) + " |"])
