"""Decoding under a task's output grammar, and scoring candidate answers by likelihood."""
from __future__ import annotations

import torch

from unio.grammar import answer_start_id
from unio.model.transformer import shift_right
from unio.vocab import EOS, IGNORE, PAD


def generate_constrained(model, inputs: dict, grammar, vocab, **options):
    """generate() under `grammar`. Returns (B, <= grammar.max_length) ids after the start token, or with
    `return_dict_in_generate=True` transformers' output (sequences with the start token, scores)."""
    options = constrained_options(grammar, vocab, model.config.max_target_length,
                                  answer_start=getattr(model.config, "decoder_start", "bos") == "answer", **options)
    out = model.generate(**inputs, **options)
    return out if options.get("return_dict_in_generate") else out[:, 1:]


def constrained_options(grammar, vocab, max_target_length: int, extra_processors=(), answer_start: bool = False,
                        **options) -> dict:
    """generate()'s keyword arguments for decoding under `grammar` (greedy unless `options` say otherwise),
    then any `extra_processors`; with `answer_start` (a model of decoder_start="answer"), the decoder starts
    from the grammar's answer start token."""
    from transformers import LogitsProcessorList
    limit = max_target_length + 1
    options.setdefault("max_new_tokens", min(grammar.max_length, limit))
    options.setdefault("do_sample", False)
    if answer_start:
        options.setdefault("decoder_start_token_id", answer_start_id(grammar, vocab))
    processors = LogitsProcessorList([grammar.processor(vocab, limit), *extra_processors])
    return dict(logits_processor=processors, pad_token_id=PAD, eos_token_id=EOS, **options)


def strip_answer(ids) -> list:
    """Generated ids up to (not including) the first EOS, pads removed."""
    out = []
    for token in (int(t) for t in ids):
        if token == EOS:
            break
        if token != PAD:
            out.append(token)
    return out


@torch.no_grad()
def score_candidates(model, inputs: dict, candidates: list, start: int | None = None) -> torch.Tensor:
    """Log-likelihood of each candidate answer (list of id lists, EOS appended) for one example.

    `inputs` holds a batch of one (input_ids, attention_mask, pixel_values). Returns (C,) sums of
    token log-probabilities, as Unified-IO's answer_options / OFA's all-candidate VQA rank them. `start`:
    the decoder's start token (default: the model's decoder_start_token_id).
    """
    n = len(candidates)
    length = max(len(c) for c in candidates) + 1
    labels = torch.full((n, length), IGNORE, dtype=torch.long)
    for i, cand in enumerate(candidates):
        labels[i, : len(cand) + 1] = torch.tensor(list(cand) + [EOS])
    encoder = model.get_encoder()(**{k: v for k, v in inputs.items()})
    memory = encoder.last_hidden_state.expand(n, -1, -1)
    mask = inputs.get("attention_mask")
    image_mask = inputs.get("image_mask")
    logits = model(encoder_outputs=(memory,), attention_mask=None if mask is None else mask.expand(n, -1),
                   image_mask=None if image_mask is None else image_mask.expand(n),
                   labels=labels.to(memory.device),
                   decoder_input_ids=shift_right(labels, start if start is not None else model.config.decoder_start_token_id,
                                                 PAD).to(memory.device)).logits.float()
    logp = logits.log_softmax(-1)
    picked = logp.gather(-1, labels.clamp(min=0).to(logp.device)[..., None])[..., 0]
    return (picked * (labels != IGNORE).to(picked.device)).sum(-1)
