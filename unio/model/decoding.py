"""Decoding under a task's output grammar, and scoring candidate answers by likelihood."""
from __future__ import annotations

import torch
from transformers import LogitsProcessor

from unio.vocab import EOS, PAD


class GrammarLogitsProcessor(LogitsProcessor):
    """Allows only the grammar's next tokens: position i of the answer may hold `table[i]` ids."""

    def __init__(self, table: torch.Tensor, prefix_length: int = 1):
        self.table, self.prefix_length = table, prefix_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        position = input_ids.shape[1] - self.prefix_length
        if position >= self.table.shape[0]:
            allowed = torch.zeros(scores.shape[-1], dtype=torch.bool, device=scores.device)
            allowed[EOS] = True
        else:
            allowed = self.table[position, : scores.shape[-1]].to(scores.device)
        return scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)


def generate_constrained(model, inputs: dict, grammar, vocab, **options) -> torch.Tensor:
    """generate() under `grammar`; returns (B, <= grammar.max_length) ids after the start token."""
    from transformers import LogitsProcessorList
    table = grammar.allowed(vocab, limit=model.config.max_target_length + 1)
    processors = LogitsProcessorList([GrammarLogitsProcessor(table)])
    options.setdefault("max_new_tokens", table.shape[0])
    options.setdefault("do_sample", False)
    out = model.generate(**inputs, logits_processor=processors, pad_token_id=PAD, eos_token_id=EOS, **options)
    return out[:, 1:]


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
def score_candidates(model, inputs: dict, candidates: list) -> torch.Tensor:
    """Log-likelihood of each candidate answer (list of id lists, EOS appended) for one example.

    `inputs` holds a batch of one (input_ids, attention_mask, pixel_values). Returns (C,) sums of
    token log-probabilities, as Unified-IO's answer_options / OFA's all-candidate VQA rank them.
    """
    n = len(candidates)
    length = max(len(c) for c in candidates) + 1
    labels = torch.full((n, length), -100, dtype=torch.long)
    for i, cand in enumerate(candidates):
        labels[i, : len(cand) + 1] = torch.tensor(list(cand) + [EOS])
    encoder = model.get_encoder()(**{k: v for k, v in inputs.items()})
    memory = encoder.last_hidden_state.expand(n, -1, -1)
    mask = inputs.get("attention_mask")
    logits = model(encoder_outputs=(memory,), attention_mask=None if mask is None else mask.expand(n, -1),
                   labels=labels.to(memory.device)).logits.float()
    logp = logits.log_softmax(-1)
    picked = logp.gather(-1, labels.clamp(min=0).to(logp.device)[..., None])[..., 0]
    return (picked * (labels != -100).to(picked.device)).sum(-1)
