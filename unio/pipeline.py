"""The one path from examples to answers, shared by evaluation, unio.run and the bench:
examples -> encoder inputs -> generate() under the task's grammar -> the task's decoder."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from unio.data import encode_inputs
from unio.model.decoding import generate_constrained, strip_answer
from unio.vocab import PAD


@dataclass
class Answer:
    ids: list               # generated ids, EOS and padding removed
    score: float | None     # mean token log-probability (greedy, sampling) or the beam score
    prediction: object      # the task's decoded answer, in the model's frame


@torch.no_grad()
def generate_answers(model, mods, task, examples, **options) -> list:
    """One batch of examples of one task -> [Answer]."""
    model.eval()
    device = next(model.parameters()).device
    inputs = {k: v.to(device) for k, v in encode_inputs(examples, mods, model.config.max_text_length).items()}
    options.setdefault("output_scores", True)
    options["return_dict_in_generate"] = True
    out = generate_constrained(model, inputs, task.grammar(mods, model.config.image_size), mods.vocab, **options)
    scores = sequence_scores(out)
    answers = []
    for row, score, example in zip(out.sequences[:, 1:].cpu(), scores, examples):
        ids = strip_answer(row)
        answers.append(Answer(ids, score, task.decode(ids, mods, example)))
    return answers


def sequence_scores(out) -> list:
    """Mean log-probability of the chosen tokens (greedy / sampling), or the beam score."""
    if getattr(out, "sequences_scores", None) is not None:
        return [float(s) for s in out.sequences_scores]
    if not getattr(out, "scores", None):
        return [None] * out.sequences.shape[0]
    logps = torch.stack([s.float().log_softmax(-1) for s in out.scores], 1)          # (B, L, V)
    chosen = out.sequences[:, 1:1 + logps.shape[1]].to(logps.device)
    picked = logps.gather(-1, chosen[..., None])[..., 0]
    valid = (chosen != PAD) & torch.isfinite(picked)
    return [float((p * v).sum() / v.sum().clamp(min=1)) for p, v in zip(picked, valid)]
