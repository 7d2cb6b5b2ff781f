"""Evaluating models and baselines on a split of the world, task by task."""
from __future__ import annotations

import torch
from tqdm import tqdm

from unio.bootstrap import world_examples
from unio.data import Collator
from unio.model.decoding import generate_constrained, strip_answer
from unio.registries import TASKS
from unio.task import image_tensor


def split_examples(task, split: str, n: int, resolution: int) -> list:
    return list(world_examples(task, split, 0, n, resolution))


@torch.no_grad()
def predict(model, modalities, task, examples, batch_size: int = 64, progress: bool = False, **options) -> list:
    """Greedy decoding under the task's grammar, then the task's detokenizer."""
    cfg = model.config
    collate = Collator({task.name: task}, modalities, cfg.max_text_length, cfg.max_target_length)
    grammar = task.grammar(modalities, cfg.image_size)
    model.eval()
    predictions = []
    for i in tqdm(range(0, len(examples), batch_size), desc=f"predict {task.name}", disable=not progress):
        chunk = examples[i:i + batch_size]
        input_ids, mask = collate.prompts(chunk)
        pixels = torch.stack([image_tensor(ex.image) for ex in chunk])
        inputs = {"input_ids": input_ids, "attention_mask": mask, "pixel_values": pixels}
        device = next(model.parameters()).device
        inputs = {k: v.to(device) for k, v in inputs.items()}
        out = generate_constrained(model, inputs, grammar, modalities.vocab, **options)
        predictions += [task.decode(strip_answer(row), modalities, ex) for row, ex in zip(out.cpu(), chunk)]
    return predictions


def evaluate_model(model, modalities, task_names, split: str = "test", n: int = 200, progress: bool = False) -> dict:
    results = {}
    for name in task_names:
        task = TASKS.get(name)
        examples = split_examples(task, split, n, model.config.image_size)
        results[name] = task.evaluate(predict(model, modalities, task, examples, progress=progress), examples)
    return results


def evaluate_baselines(modalities, task_names, split: str = "test", n: int = 200, resolution: int = 64,
                       n_train: int = 2000, only: str = "all") -> dict:
    """{task: {baseline: metrics}}; each baseline is fitted on the train split, scored on `split`."""
    results = {}
    for name in task_names:
        task = TASKS.get(name)
        train = split_examples(task, "train", n_train, resolution)
        examples = split_examples(task, split, n, resolution)
        results[name] = {}
        for baseline, make in task.baselines().items():
            if only not in ("all", baseline):
                continue
            predictor = make(train, modalities)
            results[name][baseline] = task.evaluate([predictor(ex) for ex in examples], examples)
    return results
