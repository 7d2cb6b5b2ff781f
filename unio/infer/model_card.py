"""A model folder's README.md in the Hugging Face model-card form: YAML metadata (with the hub's
`model-index` for the evaluation), the tasks and their prompts, the training mixture, steps and data,
the evaluation table and how to load the model. Everything is read from the run: the tasks from the
registry, the evaluation from eval.json's contents; nothing here names a task."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from unio.data.mixture import DEFAULT_SOURCE
from unio.registries import TASKS

CARD = "README.md"


def write_for(trainer, folder: Path | None = None, evaluation: dict | None = None) -> Path:
    """The card of a trainer's exported model (its model/ folder), with eval.json's contents when given."""
    model = trainer.model
    opts = trainer.opts
    training = {"preset": opts.preset, "steps": trainer.step, "batch size": opts.batch_size * opts.grad_accum,
                "learning rate": opts.lr, "warmup steps": opts.warmup, "seed": opts.seed,
                "training time (s)": round(getattr(trainer, "elapsed", 0.0)),
                "parameters": sum(p.numel() for p in model.parameters())}
    trained = set(trainer.trained_pairs)
    training.update(stage_lines(trainer, trained))
    data = {name: source_description(name, source, opts.sources.get(name)) for name, source in trainer.sources.items()}
    folder = Path(folder or trainer.out / "model")
    to_the_end = {pair: w for pair, w in trainer.weights.items() if pair in trained}
    return write(folder, to_the_end, training, data, model.config, evaluation)


def stage_lines(trainer, trained: set) -> dict:
    """The first stage, if any: which pairs it trains, for how much of the run, and which of them
    (a task's warm-up, --first-tasks pairs --tasks lacks: not in `trained`) stop after it."""
    stages = getattr(trainer, "stages", None)
    if not stages or not stages.first:
        return {}
    lines = {f"first stage ({trainer.opts.spatial_first:.0%} of the steps)": ", ".join(stages.first)}
    first_only = {pair: w for pair, w in trainer.weights.items() if pair not in trained}
    if first_only:
        lines["first stage only (not in the table)"] = ", ".join(
            f"{t} on {s} (weight {w:g})" for (t, s), w in first_only.items())
    return lines


def write(folder: Path, mixture: dict, training: dict, data: dict, config, evaluation: dict | None = None) -> Path:
    """README.md in `folder`. `mixture`: {(task, source): weight}; `training`: {what: value};
    `data`: {source: description}; `evaluation`: eval.json's contents (None: not evaluated)."""
    name = Path(folder).resolve().parent.name if Path(folder).name == "model" else Path(folder).name
    tasks = list(dict.fromkeys(task for task, _ in mixture))
    parts = ["---", yaml.safe_dump(metadata(name, tasks, data, evaluation), sort_keys=False).strip(), "---",
             f"# {name}", "", intro(config), "", tasks_section(tasks), "", training_section(mixture, training, data)]
    if evaluation:
        parts += ["", evaluation_section(evaluation)]
    parts += ["", usage_section(tasks)]
    path = Path(folder) / CARD
    path.write_text("\n".join(parts) + "\n")
    return path


def source_description(name: str, source, spec) -> str:
    if isinstance(spec, str):
        return f"`{spec}`"
    doc = (type(source).__doc__ or "").strip().splitlines()
    return doc[0] if doc else f"the registered source {name!r}"


def metadata(name: str, tasks: list, data: dict, evaluation: dict | None) -> dict:
    meta = {"library_name": "unio", "pipeline_tag": "image-text-to-text",
            "tags": ["unio", "vision-language", "encoder-decoder", "multi-task", *tasks]}
    if evaluation and evaluation.get("model"):
        meta["model-index"] = [{"name": name, "results": model_index(evaluation)}]
    return meta


def model_index(evaluation: dict) -> list:
    """eval.json's results in the hub's model-index form: one entry per (task, source) pair."""
    results = []
    for pair, metrics in evaluation["model"].items():
        task, _, source = pair.partition("@")
        kind = getattr(TASKS.get(task), "hub_task", task) if task in TASKS else task
        source = source or DEFAULT_SOURCE
        results.append({"task": {"type": kind, "name": task},
                        "dataset": {"name": source, "type": source,
                                    "split": evaluation.get("split", "test")},
                        "metrics": [{"type": k, "name": k, "value": round(float(v), 4)} for k, v in metrics.items()
                                    if isinstance(v, (int, float))]})
    return results


def intro(config) -> str:
    return (f"A unio generalist: one encoder-decoder transformer over one vocabulary "
            f"of text, location and image tokens (width {config.d_model}, {config.encoder_layers}+"
            f"{config.decoder_layers} layers, {config.num_heads} heads, {config.image_size}-pixel input, "
            f"{config.vocab_size} tokens). Every answer is decoded under its task's output grammar and mapped "
            f"back to the original image's pixels.")


def tasks_section(tasks: list) -> str:
    rows = ["## Tasks and their prompts", "", "| task | answer | prompts (`{}`: your text) |", "|---|---|---|"]
    for name in tasks:
        task = TASKS.get(name) if name in TASKS else None
        prompts = "<br>".join(f"`{p}`" for p in getattr(task, "prompts", ())) or "(plugin not installed)"
        rows.append(f"| {name} | {getattr(task, 'output', '?')} | {prompts} |")
    return "\n".join(rows)


def training_section(mixture: dict, training: dict, data: dict) -> str:
    total = sum(mixture.values())
    rows = ["## Training", "", "| task | source | weight | share |", "|---|---|---|---|"]
    rows += [f"| {task} | {source} | {weight:g} | {weight / total:.0%} |" for (task, source), weight in mixture.items()]
    rows += ["", *(f"- {what}: {value}" for what, value in training.items()), "", "Data:", ""]
    rows += [f"- {name}: {description}" for name, description in data.items()]
    return "\n".join(rows)


def evaluation_section(evaluation: dict) -> str:
    """Every metric of every pair (its task's headline first), beside the baselines (eval.json's contents)."""
    from unio.infer.report import headline
    baselines = evaluation.get("baselines", {})
    rows = [f"## Evaluation ({evaluation.get('split', 'test')} split, {evaluation.get('n', '?')} examples per task)",
            "", "| task | metric | model | baselines |", "|---|---|---|---|"]
    for pair, metrics in evaluation["model"].items():
        numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        first = headline(pair, numbers) if numbers else None
        for key in sorted(numbers, key=lambda k: k != first):
            base = ", ".join(f"{name} {m[key]:.3f}" for name, m in baselines.get(pair, {}).items()
                             if isinstance(m.get(key), (int, float)))
            shown = f"**{key}**" if key == first else key
            rows.append(f"| {pair} | {shown} | {numbers[key]:.3f} | {base} |")
    return "\n".join(rows)


def usage_section(tasks: list) -> str:
    prompt = next((TASKS.get(t).prompts[0] for t in tasks if t in TASKS and "{}" not in TASKS.get(t).prompts[0]),
                  "What does the image describe?")
    return f"""## How to load it

With unio installed (this model's tokenizers are in `tokenizers/`, beside the weights):

```python
import unio
unio.load("PATH/TO/THIS/FOLDER")
result = unio.run({json.dumps(prompt)}, "image.png")   # a typed result in the image's pixels
result.save("answer.png")
```

or the Hugging Face way:

```python
import unio   # registers unio with the Auto classes
from PIL import Image
from transformers import AutoModelForSeq2SeqLM, AutoProcessor

model = AutoModelForSeq2SeqLM.from_pretrained("PATH/TO/THIS/FOLDER")
processor = AutoProcessor.from_pretrained("PATH/TO/THIS/FOLDER")
image, prompt = Image.open("image.png"), {json.dumps(prompt)}
inputs = processor(text=prompt, images=image, return_tensors="pt")
task = processor.task_of(prompt)
ids = model.generate(**inputs, **processor.generate_options(task))
answer = processor.post_process_generation(ids[0], task=task, image_size=image.size)
```"""
