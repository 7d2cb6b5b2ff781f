"""What a decoding step's attention costs (`scripts/bench.py --only attention`).

A greedy decoding step attends one query a row. `unio.model.transformer.attend` takes two matmuls and a softmax
(`one_query_attention`) there in bf16 and, compiled, in fp32; SDPA otherwise. This times the two forms against
each other, on one model and the same batch, eager and compiled (a flag both compiled graphs guard on, so the
arms alternate without recompiling), in the precision given: the median of rounds timed in turns, and whether
both decoded the same tokens.
"""
from __future__ import annotations

import benchlib as bench
import torch
import torch.nn.functional as F

from unio.model import transformer


def attention_arms(model, batch: dict, new_tokens: int, bf16: bool, rounds: int = 9) -> dict:
    """{eager, compiled}: the one-query form's speed over SDPA's (`interleaved_ratio`), and `same_tokens`."""
    chosen = {"one_query": True}
    routed = transformer.attend

    def attend(q, k, v, mask, causal):
        one_query = q.shape[-2] == 1 and not torch.is_grad_enabled() and not (causal and k.shape[-2] > 1)
        if one_query:
            return (transformer.one_query_attention(q, k, v, mask) if chosen["one_query"]
                    else F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal))
        return routed(q, k, v, mask, causal)

    def arm(one_query: bool, call):
        def run():
            chosen["one_query"] = one_query
            return call()
        return run
    out = {}
    transformer.attend = attend
    try:
        for mode in ("eager", "compiled"):
            model.compile_generation(mode == "compiled")
            call = bench.mode_call(model.generate, batch, new_tokens, f"{'compiled_' if mode == 'compiled' else ''}"
                                   f"{'bf16' if bf16 else 'fp32'}")
            same = torch.equal(arm(True, call)(), arm(False, call)())
            out[mode] = {**bench.interleaved_ratio(arm(True, call), arm(False, call), rounds), "same_tokens": same}
    finally:
        transformer.attend = routed
        model.compile_generation(False)
    return out
