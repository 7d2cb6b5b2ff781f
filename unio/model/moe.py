"""Mixture-of-experts feed-forward layers, two ways to route.

`MoEFeedForward`, token choice as in GShard / Switch / LIMoE: each token picks its top-k experts from its
own representation (gates renormalised over the k); an expert takes at most `capacity = capacity_factor *
tokens * k / experts` tokens, first choices first; overflow tokens pass through the residual alone.

`AttributeMoEFeedForward`, routed by the token's attributes as Uni-Perceiver-MoE routes: the router reads
not the token's representation but what kind of token it is (`attributes`, one id a token: an image
patch, or a prompt or target token of a given vocabulary range: unio.model.transformer.token_attributes),
through a learned table of logits; every token reaches its top-k experts (no capacity, nothing dropped),
so tokens of one kind share experts and different kinds can keep apart.

Losses of both: the Switch load-balancing loss (experts * sum_e fraction_e * mean_prob_e) and the router
z-loss. Letters: N tokens, D width, F expert hidden width, E experts, K choices, C capacity, A attributes.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class MoEFeedForward(nn.Module):
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
        keep = slot < capacity
        token_flat = torch.arange(n, device=x.device).repeat(self.top_k)
        gate_flat = gates.t().reshape(-1)
        buffer = tokens.new_zeros(self.num_experts, capacity, shape[-1])          # (E, C, D)
        buffer[expert_flat[keep], slot[keep]] = tokens[token_flat[keep]]
        hidden = torch.einsum("ecd,edf->ecf", buffer, self.w_in.to(buffer.dtype))
        value, gate = hidden.chunk(2, dim=-1)
        out_buffer = torch.einsum("ecf,efd->ecd", F.silu(gate) * value, self.w_out.to(buffer.dtype))
        picked = out_buffer[expert_flat[keep], slot[keep]] * gate_flat[keep, None].to(buffer.dtype)
        out = tokens.new_zeros(tokens.shape).index_add_(0, token_flat[keep], picked)
        fraction = onehot.float().mean(0)                      # (E,) sums to 1
        self.last_load = fraction.detach()
        balance = self.num_experts * (fraction * probs.mean(0)).sum()
        z_loss = torch.logsumexp(logits, dim=-1).pow(2).mean()
        return out.reshape(shape), balance, z_loss


class AttributeMoEFeedForward(nn.Module):
    def __init__(self, d_model: int, d_ff: int, num_experts: int, top_k: int, num_attributes: int):
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

    def forward(self, x: torch.Tensor, attributes=None):
        if attributes is None:
            raise ValueError("an attribute-routed MoE layer needs each token's attributes (moe_routing='attribute')")
        shape = x.shape
        tokens = x.reshape(-1, shape[-1])                                    # (N, D)
        logits = self.router[attributes.reshape(-1)].float()                 # (N, E)
        probs = logits.softmax(-1)
        gates, experts = probs.topk(self.top_k, dim=-1)                      # (N, K)
        gates = (gates / gates.sum(-1, keepdim=True)).to(tokens.dtype)
        out = torch.zeros_like(tokens)
        for e in range(self.num_experts):                                    # each expert on its own tokens
            token, choice = (experts == e).nonzero(as_tuple=True)
            if len(token) == 0:
                continue
            value, gate = (tokens[token] @ self.w_in[e].to(tokens.dtype)).chunk(2, dim=-1)
            out.index_add_(0, token, (F.silu(gate) * value) @ self.w_out[e].to(tokens.dtype) * gates[token, choice, None])
        fraction = F.one_hot(experts, self.num_experts).float().sum(1).mean(0) / self.top_k     # (E,) sums to 1
        self.last_load = fraction.detach()
        balance = self.num_experts * (fraction * probs.mean(0)).sum()
        z_loss = torch.logsumexp(logits, dim=-1).pow(2).mean()
        return out.reshape(shape), balance, z_loss
