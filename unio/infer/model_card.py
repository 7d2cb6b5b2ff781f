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
LICENSE = "apache-2.0"
USE_AND_LIMITS = """## Intended use and limitations

For research on unified vision-language models: answering the tasks above about images like those it was
trained on, and as a starting point to train further. It is not a general-purpose assistant.

- It answers only the tasks it trained on (the table above); a prompt of another task is refused.
- It reads images at {size} x {size} pixels (letterboxed), so small details of larger images are lost.
- Figures measured on unio's procedural world do not carry over to photographs; a model trained only on
  that world knows nothing of real objects, and its depth is in that world's metres.
- Small models trained for minutes make confident mistakes: check answers before acting on them.
- Generated images come from a small image codebook: they show colours and layout, not detail.

## License

Apache-2.0, as unio's code. Data sources keep their own terms: unio's procedural world has none; a real
dataset (COCO, VQAv2, RefCOCO, NYUv2 ...) comes with its licence, which a model trained on it inherits."""
CITATION = """## Citation

unio (its CITATION.cff), and the systems it follows:

```bibtex
@software{unio,
  title  = {unio: a unified sequence-to-sequence generalist for vision and language, in plain PyTorch},
  author = {{The unio authors}},
  license = {Apache-2.0}
}
@article{lu2022unifiedio,
  title   = {Unified-IO: A Unified Model for Vision, Language, and Multi-Modal Tasks},
  author  = {Lu, Jiasen and Clark, Christopher and Zellers, Rowan and Mottaghi, Roozbeh and Kembhavi, Aniruddha},
  journal = {arXiv preprint arXiv:2206.08916},
  year    = {2022}
}
@article{lu2023unifiedio2,
  title   = {Unified-IO 2: Scaling Autoregressive Multimodal Models with Vision, Language, Audio, and Action},
  author  = {Lu, Jiasen and Clark, Christopher and Lee, Sangho and Zhang, Zichen and Khosla, Savya and Marten, Ryan
             and Hoiem, Derek and Kembhavi, Aniruddha},
  journal = {arXiv preprint arXiv:2312.17172},
  year    = {2023}
}
@article{wang2022ofa,
  title   = {OFA: Unifying Architectures, Tasks, and Modalities Through a Simple Sequence-to-Sequence Learning
             Framework},
  author  = {Wang, Peng and Yang, An and Men, Rui and Lin, Junyang and Bai, Shuai and Li, Zhikang and Ma, Jianxin
             and Zhou, Chang and Zhou, Jingren and Yang, Hongxia},
  journal = {arXiv preprint arXiv:2202.03052},
  year    = {2022}
}
```"""


def write_for(trainer, folder: Path | None = None, evaluation: dict | None = None) -> Path:
    """The card of a trainer's exported model (its model/ folder), with eval.json's contents when given."""
    model = trainer.model
    opts = trainer.opts
    training = {"preset": opts.preset, "steps": trainer.step, "batch size": opts.batch_size * opts.grad_accum,
                "learning rate": opts.lr, "warmup steps": opts.warmup, "seed": opts.seed,
                "batches": batch_layout(opts), "loss mean": opts.loss_mean,
                "training time (s)": round(getattr(trainer, "elapsed", 0.0)),
                "parameters": sum(p.numel() for p in model.parameters())}
    trained = set(trainer.trained_pairs)
    training.update(stage_lines(trainer, trained))
    data = {name: source_description(name, source, opts.sources.get(name)) for name, source in trainer.sources.items()}
    folder = Path(folder or trainer.out / "model")
    to_the_end = {pair: w for pair, w in trainer.weights.items() if pair in trained}
    return write(folder, to_the_end, training, data, model.config, evaluation, run_shares(trainer))


def run_shares(trainer) -> dict:
    """{(task, source): the share of the run's examples it is drawn for}, both stages counted: the first
    stage's probabilities for its megabatches, the rest's after (what a weight alone would not say)."""
    mixture = trainer.stream.mixture
    megabatches = max(1, -(-max(trainer.step, 1) * trainer.opts.grad_accum // trainer.stream.buckets))
    first = min(mixture.first_until, megabatches) / megabatches
    expected = first * mixture.first_probs + (1 - first) * mixture.probs
    return dict(zip(mixture.pairs, expected.tolist()))


def batch_layout(opts) -> str:
    """How the run's batches were laid out (--packing, --buckets, --sub-batches), in words."""
    if opts.packing:
        return f"packed rows ({opts.packing})"
    kind = "tasks mixed as drawn" if opts.buckets == 1 else f"bucketed by target length over {opts.buckets} batches"
    return kind + (f", decoded in up to {opts.sub_batches} groups of like target lengths" if opts.sub_batches > 1 else "")


def stage_lines(trainer, trained: set) -> dict:
    """The first stage, if any: which pairs it trains, for how much of the run, and which of them
    (--first-tasks pairs --tasks lacks: not in `trained`) stop after it."""
    stages = getattr(trainer, "stages", None)
    if not stages or not stages.first:
        return {}
    lines = {f"first stage ({trainer.opts.spatial_first:.0%} of the steps)": ", ".join(stages.first)}
    first_only = {pair: w for pair, w in trainer.weights.items() if pair not in trained}
    if first_only:
        lines["first stage only (not in the table)"] = ", ".join(
            f"{t} on {s} (weight {w:g})" for (t, s), w in first_only.items())
    return lines


def write(folder: Path, mixture: dict, training: dict, data: dict, config, evaluation: dict | None = None,
          shares: dict | None = None) -> Path:
    """README.md in `folder`. `mixture`: {(task, source): weight}; `training`: {what: value};
    `data`: {source: description}; `evaluation`: eval.json's contents (None: not evaluated); `shares`:
    {(task, source): share of the run's examples} (None: each weight over their sum)."""
    name = Path(folder).resolve().parent.name if Path(folder).name == "model" else Path(folder).name
    tasks = list(dict.fromkeys(task for task, _ in mixture))
    parts = ["---", yaml.safe_dump(metadata(name, tasks, data, evaluation), sort_keys=False).strip(), "---",
             f"# {name}", "", intro(config), "", tasks_section(tasks), "", training_section(mixture, training, data, shares)]
    if evaluation:
        parts += ["", evaluation_section(evaluation)]
    parts += ["", usage_section(tasks), "", USE_AND_LIMITS.format(size=config.image_size), "", CITATION]
    path = Path(folder) / CARD
    path.write_text("\n".join(parts) + "\n")
    return path


def source_description(name: str, source, spec) -> str:
    if isinstance(spec, str):
        return f"`{spec}`"
    doc = (type(source).__doc__ or "").strip().splitlines()
    return doc[0] if doc else f"the registered source {name!r}"


def metadata(name: str, tasks: list, data: dict, evaluation: dict | None) -> dict:
    kinds = [hub_task(t) for t in tasks]
    meta = {"library_name": "unio", "license": LICENSE, "pipeline_tag": "image-text-to-text",
            "tags": list(dict.fromkeys(["unio", "vision-language", "encoder-decoder", "multi-task", *tasks, *kinds])),
            "widget": widget(tasks)}
    if evaluation and evaluation.get("model"):
        meta["model-index"] = [{"name": name, "results": model_index(evaluation)}]
    return meta


def hub_task(task: str) -> str:
    """The task's type on the Hugging Face hub (its `hub_task`; its own name where it declares none)."""
    return getattr(TASKS.get(task), "hub_task", None) or task if task in TASKS else task


def widget(tasks: list) -> list:
    """The hub widget's examples: one prompt per task (its slots filled from a scene of the default source),
    but for tasks asked about a region (a widget has no region to give)."""
    from unio.infer.prompts import example_prompts
    return [dict(text=prompt, example_title=name) for name, prompt in example_prompts(tasks, regions=False).items()]


def model_index(evaluation: dict) -> list:
    """eval.json's results in the hub's model-index form: one entry per (task, source) pair."""
    results = []
    for pair, metrics in evaluation["model"].items():
        task, _, source = pair.partition("@")
        kind = hub_task(task)
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
    rows = ["## Tasks and their prompts", "", "| task | hub task type | answer | prompts (`{}`: your text) |",
            "|---|---|---|---|"]
    for name in tasks:
        task = TASKS.get(name) if name in TASKS else None
        prompts = "<br>".join(f"`{p}`" for p in getattr(task, "prompts", ())) or "(plugin not installed)"
        rows.append(f"| {name} | {hub_task(name)} | {getattr(task, 'output', '?')} | {prompts} |")
    return "\n".join(rows)


def training_section(mixture: dict, training: dict, data: dict, shares: dict | None = None) -> str:
    total = sum(mixture.values())
    shares = shares or {pair: weight / total for pair, weight in mixture.items()}
    rows = ["## Training", "", "| task | source | weight | share of the run's examples |", "|---|---|---|---|"]
    rows += [f"| {task} | {source} | {weight:g} | {shares[task, source]:.0%} |" for (task, source), weight in mixture.items()]
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
```

or as transformers' image-text-to-text pipeline (answers that are not text come as JSON of the fields):

```python
import unio
from transformers import pipeline

pipe = pipeline("image-text-to-text", model="PATH/TO/THIS/FOLDER")
pipe(images="image.png", text={json.dumps(prompt)}, return_full_text=False)[0]["generated_text"]
```"""
