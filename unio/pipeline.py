"""The one path from examples to answers, shared by evaluation, unio.run and the bench:
examples -> encoder inputs -> generate() under the task's grammar -> the task's decoder.
A task with answer options (`answer_options(example)`) has them ranked by likelihood instead."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from transformers import LogitsProcessor

from unio.data import encode_inputs
from unio.model.decoding import generate_constrained, score_candidates, strip_answer
from unio.vocab import EOS, PAD


@dataclass
class Answer:
    ids: list               # generated ids, EOS and padding removed
    score: float | None     # mean token log-probability (greedy, sampling) or the beam score
    prediction: object      # the task's decoded answer, in the model's frame
    token_logprobs: list | None = None   # one log-probability per id (greedy, sampling); None under beams


def _positive_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _non_negative_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _positive_float(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


# option -> (check, what is valid): every option unio passes on to generate()
GENERATION_OPTIONS = {
    "num_beams": (_positive_int, "an integer >= 1"),
    "do_sample": (lambda v: isinstance(v, bool), "True or False"),
    "temperature": (_positive_float, "a finite number > 0"),
    "top_k": (_non_negative_int, "an integer >= 0 (0: no top-k filtering)"),
    "top_p": (lambda v: _positive_float(v) and v <= 1, "a number in (0, 1]"),
    "max_new_tokens": (_positive_int, "an integer >= 1"),
    "min_new_tokens": (_non_negative_int, "an integer >= 0"),
    "num_return_sequences": (lambda v: v == 1, "1 (one answer per prompt)"),
    "repetition_penalty": (_positive_float, "a finite number > 0"),
    "length_penalty": (lambda v: isinstance(v, (int, float)) and math.isfinite(v), "a finite number"),
    "output_scores": (lambda v: isinstance(v, bool), "True or False"),
}


def check_generation_options(options: dict) -> None:
    """Refuse, before generate() runs, an option unio does not pass on or a value outside its range."""
    for name, value in options.items():
        if name not in GENERATION_OPTIONS:
            raise ValueError(f"unknown generation option {name!r}; options: {', '.join(GENERATION_OPTIONS)}")
        check, valid = GENERATION_OPTIONS[name]
        if not check(value):
            raise ValueError(f"generation option {name}={value!r} is invalid; {name} must be {valid}")


@torch.no_grad()
def generate_answers(model, mods, task, examples, **options) -> list:
    """One batch of examples of one task -> [Answer]."""
    check_generation_options(options)
    model.eval()
    device = next(model.parameters()).device
    inputs = {k: v.to(device) for k, v in encode_inputs(examples, mods, model.config.max_text_length).items()}
    candidates = answer_options(task, examples)
    if candidates is not None:
        return rank_answers(model, mods, task, examples, inputs, candidates)
    options.setdefault("output_scores", True)
    options["return_dict_in_generate"] = True
    if getattr(task, "stop_by_mass", False):
        options["extra_processors"] = [StopByMass()]
    out = generate_constrained(model, inputs, task.grammar(mods, model.config.image_size), mods.vocab, **options)
    answers = []
    for row, (score, logps), example in zip(out.sequences[:, 1:].cpu(), token_scores(out), examples):
        ids = strip_answer(row)
        logps = logps and logps[:len(ids)]
        answers.append(Answer(ids, score, decode(task, ids, mods, example, logps), logps))
    return answers


def decode(task, ids, mods, example, logprobs):
    """The task's decoder; given the tokens' log-probabilities when it asks (`uses_token_logprobs`)."""
    if getattr(task, "uses_token_logprobs", False):
        return task.decode(ids, mods, example, logprobs=logprobs)
    return task.decode(ids, mods, example)


class StopByMass(LogitsProcessor):
    """Where an answer may end or go on, ends it only if EOS is likelier than all the allowed
    continuations together, and never otherwise (a task's `stop_by_mass`). For lists of boxes: the
    mass of "one more object" is spread over many location bins, so plain greedy decoding would stop
    at an EOS that is less likely than going on."""

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        stop = scores.float().softmax(-1)[:, EOS]
        undecided, lowest = (stop > 0) & (stop < 1), torch.finfo(scores.dtype).min
        ends, goes_on = undecided & (stop >= 0.5), undecided & (stop < 0.5)
        only_eos = torch.full_like(scores, lowest)
        only_eos[:, EOS] = scores[:, EOS]
        scores = torch.where(ends[:, None], only_eos, scores)
        scores[goes_on, EOS] = lowest
        return scores


def answer_options(task, examples) -> list | None:
    """Each example's candidate answers, or None when the task (or any example) has none."""
    options = getattr(task, "answer_options", None)
    found = [options(ex) for ex in examples] if options else [None]
    return None if any(f is None for f in found) else found


def rank_answers(model, mods, task, examples, inputs, candidates) -> list:
    """The likeliest candidate of each example (summed token log-probabilities, as Unified-IO ranks answer options)."""
    answers = []
    for i, (example, texts) in enumerate(zip(examples, candidates)):
        ids = [mods.text_ids(t) for t in texts]
        scores = score_candidates(model, {k: v[i:i + 1] for k, v in inputs.items()}, ids)
        best = int(scores.argmax())
        answers.append(Answer(ids[best], float(scores[best]), task.decode(ids[best], mods, example)))
    return answers


def token_scores(out) -> list:
    """[(mean log-probability of the chosen tokens, [each token's]) per row] (greedy / sampling);
    under beams (beam score, None)."""
    if getattr(out, "sequences_scores", None) is not None:
        return [(float(s), None) for s in out.sequences_scores]
    if not getattr(out, "scores", None):
        return [(None, None)] * out.sequences.shape[0]
    logps = torch.stack([s.float().log_softmax(-1) for s in out.scores], 1)          # (B, L, V)
    chosen = out.sequences[:, 1:1 + logps.shape[1]].to(logps.device)
    picked = logps.gather(-1, chosen[..., None])[..., 0]
    valid = (chosen != PAD) & torch.isfinite(picked)
    return [(float((p * v).sum() / v.sum().clamp(min=1)), p[v].tolist()) for p, v in zip(picked, valid)]


def sequence_scores(out) -> list:
    """Mean log-probability of the chosen tokens (greedy / sampling), or the beam score."""
    return [score for score, _ in token_scores(out)]
