"""How the tasks of a mixture pull the shared weights (`--probe-gradients N`): every N steps, each pair's
gradient on a fixed batch of its own train examples, its norm in each part of the model, and the cosine
between every two pairs' gradients. Negative cosines on a part are tasks pulling it opposite ways; a
pair whose norm is far below another's has its updates scaled down by AdamW's shared second moment.
Measuring leaves training as it was: the gradients are zeroed after, and no random state is used."""
from __future__ import annotations

import itertools

import numpy as np
import torch

PARTS = ("embed", "encoder", "cross", "decoder")   # cross: the decoder's cross-attention (reading the encoder)


def part_of(name: str) -> str:
    if name.startswith("embed"):
        return "embed"
    if name.startswith("encoder"):
        return "encoder"
    return "cross" if "cross" in name else "decoder"


class GradientProbe:
    """`measure(model, forward)` -> {"norm": {pair: {part: norm}}, "cosine": {"a|b": {part: cos}}}."""

    def __init__(self, mixture, collate, size: int = 32, seed: int = 0):
        self.batches = {}
        for index, name in enumerate(mixture.names):
            rng = np.random.default_rng([seed, index, 41])
            records = rng.integers(0, mixture.spans[index], size=size)
            # a record with nothing to ask (relation's without a boxed pair) is replaced as in training
            examples = [mixture.draw(index, int(r), rng, (41, index, k), []) for k, r in enumerate(records)]
            self.batches[name] = collate(examples)

    def measure(self, model, forward) -> dict:
        params = [(part_of(n), p) for n, p in model.named_parameters() if p.requires_grad]
        device = params[0][1].device
        grads = {}
        for name, batch in self.batches.items():
            model.zero_grad(set_to_none=True)
            forward(model, {k: v.to(device) for k, v in batch.items()}).loss.backward()
            grads[name] = {part: torch.cat([flat_grad(p) for q, p in params if q == part]) for part in PARTS}
        model.zero_grad(set_to_none=True)
        norms = {n: {part: round(float(g.norm()), 5) for part, g in parts.items()} for n, parts in grads.items()}
        cosines = {f"{a}|{b}": {part: round(float(torch.nn.functional.cosine_similarity(grads[a][part], grads[b][part], 0)), 4)
                                for part in PARTS}
                   for a, b in itertools.combinations(grads, 2)}
        return {"norm": norms, "cosine": cosines}


def flat_grad(param):
    """The parameter's gradient as a flat fp32 vector; zeros where the batch did not reach it (a text-only
    task never reaches the image stem, a task without regions never reaches region marks), so every task's
    vector has the same length."""
    if param.grad is None:
        return torch.zeros(param.numel(), device=param.device)
    return param.grad.float().flatten()
