"""Mixture-of-experts feed-forward layers, two ways to route.

`MoEFeedForward`, token choice as in GShard / Switch / LIMoE: each token picks its top-k experts from its
own representation (gates renormalised over the k); an expert takes at most `capacity = capacity_factor *
tokens * k / experts` tokens, first choices first; overflow tokens pass through the residual alone. Its
buffers have a spare slot that overflow goes to with gate 0, so no shape depends on the routing and its
block compiles whole (1.17x a dense step on 2 cores at 4 experts, top-2; 1.27x with its experts eager).

`AttributeMoEFeedForward`, routed by the token's attributes as Uni-Perceiver-MoE routes: the router reads
not the token's representation but what kind of token it is (`attributes`, one id a token: an image
patch, or a prompt or target token of a given vocabulary range: unio.model.transformer.token_attributes),
through a learned table of logits; every token reaches its top-k experts (no capacity, nothing dropped),
so tokens of one kind share experts and different kinds can keep apart. Dispatched densely by default
(`dense_dispatch`: every expert on every token, weighted 0 off its k; fixed shapes, so its block compiles
whole: 1.15-1.24x a dense step, against 1.46-1.60x for each expert on its own tokens; scripts/bench_moe.py).

Losses of both: the Switch load-balancing loss (experts * sum_e fraction_e * mean_prob_e) and the router
z-loss. Letters: N tokens, D width, F expert hidden width, E experts, K choices, C capacity, A attributes.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class MoEFeedForward(nn.Module):
    static_shapes = True   # its block compiles whole (`dispatch`)

    def __init__(self, d_model: int, d_ff: int, num_experts: int, top_k: int, capacity_factor: float):
        super().__init__()
        if not 1 <= top_k <= num_experts:
            raise ValueError(f"moe_top_k must be in 1..num_experts ({num_experts}), got {top_k}")
        self.num_experts, self.top_k, self.capacity_factor = num_experts, top_k, capacity_factor
        self.router = nn.Linear(d_model, num_experts, bias=False)
        self.w_in = nn.Parameter(torch.randn(num_experts, d_model, 2 * d_ff) * d_model ** -0.5)
        self.w_out = nn.Parameter(torch.randn(num_experts, d_ff, d_model) * d_ff ** -0.5)
        self.last_load = None  # (E,) fraction of routed tokens per expert, for monitoring

    def forward(self, x: torch.Tensor, attributes=None):
        shape = x.shape
        tokens = x.reshape(-1, shape[-1])                      # (N, D)
        logits = self.router(tokens).float()                   # (N, E)
        probs = logits.softmax(-1)
        gates, experts = probs.topk(self.top_k, dim=-1)        # (N, K)
        gates = gates / gates.sum(-1, keepdim=True)
        n = tokens.shape[0]
        capacity = max(1, math.ceil(self.capacity_factor * n * self.top_k / self.num_experts))
        # slot of each (choice, token) in its expert's buffer: first choices are placed first
        expert_flat = experts.t().reshape(-1)                  # (K*N,)
        onehot = F.one_hot(expert_flat, self.num_experts)      # (K*N, E)
        slot = ((onehot.cumsum(0) - 1) * onehot).sum(-1)       # (K*N,)
        out = self.dispatch(tokens, expert_flat, slot, gates.t().reshape(-1), capacity)
        fraction = onehot.float().mean(0)                      # (E,) sums to 1
        self.last_load = fraction.detach()
        balance = self.num_experts * (fraction * probs.mean(0)).sum()
        z_loss = torch.logsumexp(logits, dim=-1).pow(2).mean()
        return out.reshape(shape), balance, z_loss

    def dispatch(self, tokens, expert_flat, slot, gate_flat, capacity: int) -> torch.Tensor:
        """Each (choice, token) to its slot of its expert's buffer (E, C + 1, D), the experts on their
        buffers, each token's outputs weighted by its gates and summed. A choice past its expert's capacity
        goes to the spare last slot with gate 0 (its token passes through the residual alone): every shape
        follows from N, none from the routing, so the block compiles whole. Rows move by index_select both
        ways: its gradient is an index_add, where indexing's is an accumulating index_put, slow on CPU."""
        n, width = tokens.shape
        keep = slot < capacity
        row = expert_flat * (capacity + 1) + slot.clamp(max=capacity)          # (K*N,) into E * (C + 1)
        token_flat = torch.arange(n, device=tokens.device).repeat(self.top_k)
        # which token fills each buffer row: n (a row of zeros) for an empty slot or the spare one
        source = torch.full((self.num_experts * (capacity + 1),), n, device=tokens.device)
        source = source.index_put((row,), torch.where(keep, token_flat, n))   # the spare's writers all write n
        padded = torch.cat([tokens, tokens.new_zeros(1, width)])
        buffer = padded.index_select(0, source).view(self.num_experts, capacity + 1, width)
        hidden = torch.einsum("ecd,edf->ecf", buffer, self.w_in.to(tokens.dtype))
        value, gate = hidden.chunk(2, dim=-1)
        out_buffer = torch.einsum("ecf,efd->ecd", F.silu(gate) * value, self.w_out.to(tokens.dtype))
        picked = out_buffer.reshape(-1, width).index_select(0, row) * (gate_flat * keep).to(tokens.dtype)[:, None]
        return picked.view(self.top_k, n, width).sum(0)                        # choice-major: (K, N, D)


class AttributeMoEFeedForward(nn.Module):
    def __init__(self, d_model: int, d_ff: int, num_experts: int, top_k: int, num_attributes: int,
                 dense_dispatch: bool = True):
        super().__init__()
        if not 1 <= top_k <= num_experts:
            raise ValueError(f"moe_top_k must be in 1..num_experts ({num_experts}), got {top_k}")
        self.num_experts, self.top_k = num_experts, top_k
        # logits per kind of token, starting spread over the experts (a Parameter, not an Embedding: the
        # model's initialisation treats every Embedding as a vocabulary's)
        self.router = nn.Parameter(torch.randn(num_attributes, num_experts))
        self.w_in = nn.Parameter(torch.randn(num_experts, d_model, 2 * d_ff) * d_model ** -0.5)
        self.w_out = nn.Parameter(torch.randn(num_experts, d_ff, d_model) * d_ff ** -0.5)
        self.last_load = None
        self.dense_dispatch = dense_dispatch

    @property
    def static_shapes(self) -> bool:
        return self.dense_dispatch

    def forward(self, x: torch.Tensor, attributes=None):
        if attributes is None:
            raise ValueError("an attribute-routed MoE layer needs each token's attributes (moe_routing='attribute')")
        shape = x.shape
        tokens, kinds = x.reshape(-1, shape[-1]), attributes.reshape(-1)     # (N, D), (N,)
        weights, chosen, probs, logits = self.kind_weights()
        combine = weights[kinds].to(tokens.dtype)                            # (N, E): 0 but on its k experts
        out = self.all_experts(tokens, combine) if self.dense_dispatch else self.each_expert(tokens, combine)
        fraction = chosen[kinds].mean(0) / self.top_k                        # (E,) sums to 1
        self.last_load = fraction.detach()
        balance = self.num_experts * (fraction * probs[kinds].mean(0)).sum()
        z_loss = torch.logsumexp(logits, dim=-1)[kinds].pow(2).mean()
        return out.reshape(shape), balance, z_loss

    def kind_weights(self) -> tuple:
        """Per kind of token (A rows): its gate on each expert, renormalised over its top-k and 0 elsewhere;
        which experts it chooses (0/1); the router's probabilities and logits. Each is (A, E)."""
        logits = self.router.float()
        probs = logits.softmax(-1)
        gates, experts = probs.topk(self.top_k, dim=-1)                      # (A, K)
        gates = gates / gates.sum(-1, keepdim=True)
        chosen = F.one_hot(experts, self.num_experts).sum(1).float()
        return torch.zeros_like(probs).scatter(1, experts, gates), chosen, probs, logits

    def all_experts(self, tokens: torch.Tensor, combine: torch.Tensor) -> torch.Tensor:
        """Every expert on every token, summed by `combine` (N, E): an expert a token does not choose has
        weight 0, so this is its k experts' output, at E/k times their work but in two dense matmuls of fixed
        shapes (it compiles with the block; routing each expert its own tokens does not)."""
        hidden = torch.einsum("nd,edf->nef", tokens, self.w_in.to(tokens.dtype))      # (N, E, 2F)
        value, gate = hidden.chunk(2, dim=-1)
        return torch.einsum("nef,efd->nd", F.silu(gate) * value * combine[..., None], self.w_out.to(tokens.dtype))

    def each_expert(self, tokens: torch.Tensor, combine: torch.Tensor) -> torch.Tensor:
        """Each expert on the tokens that choose it alone (k experts' work, shapes that depend on the data)."""
        out = torch.zeros_like(tokens)
        for e in range(self.num_experts):
            token = combine[:, e].nonzero(as_tuple=True)[0]
            if len(token):
                value, gate = (tokens[token] @ self.w_in[e].to(tokens.dtype)).chunk(2, dim=-1)
                out.index_add_(0, token, (F.silu(gate) * value) @ self.w_out[e].to(tokens.dtype) * combine[token, e, None])
        return out
