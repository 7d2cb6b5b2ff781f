"""unio's encoder-decoder transformer over the unified vocabulary.

Encoder input: image patches (raw pixels -> linear, or a small conv stem: stem.py; learned 2-D
positions, Unified-IO 1 style; with `region_marks`, a learned mark per region box on the patches it covers)
followed by the prompt's tokens (learned 1-D positions). Decoder: autoregressive over the unified
vocabulary, input embeddings tied to the output layer. Pre-norm RMSNorm, scaled_dot_product_attention,
SwiGLU MLP; QK-norm and z-loss as stability options; MoE feed-forward every `moe_every` layers.

Letters: B batch, P patches, T prompt tokens, S encoder length (P + T), L decoder length,
D width, H heads, V vocabulary.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import GenerationMixin, PreTrainedModel
from transformers.cache_utils import DynamicCache, EncoderDecoderCache
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput

from unio.model.config import UnioConfig
from unio.model.moe import AttributeMoEFeedForward, MoEFeedForward
from unio.model.stem import build_stem
from unio.vocab import EOS, IGNORE


class Attention(nn.Module):
    def __init__(self, cfg: UnioConfig, layer_idx: int, cross: bool = False):
        super().__init__()
        self.heads, self.layer_idx, self.cross = cfg.num_heads, layer_idx, cross
        if cross:   # queries from the decoder, keys and values from the encoder's output
            self.q = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
            self.kv = nn.Linear(cfg.d_model, 2 * cfg.d_model, bias=False)
        else:       # one matmul for all three
            self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.o = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        head_dim = cfg.d_model // cfg.num_heads
        self.q_norm = nn.RMSNorm(head_dim) if cfg.qk_norm else nn.Identity()
        self.k_norm = nn.RMSNorm(head_dim) if cfg.qk_norm else nn.Identity()

    def _split(self, x):                                                   # (B, L, D) -> (B, H, L, D/H)
        return x.unflatten(-1, (self.heads, -1)).transpose(1, 2)

    def forward(self, x, source=None, mask=None, cache=None, causal=False):
        q, k, v = self.project(x, source, cache)                          # (B, H, L, D/H) each
        if causal and cache is not None and k.shape[2] != q.shape[2]:  # new tokens after a cached prefix
            causal = False
            if mask is None and q.shape[2] > 1:   # one new token sees the whole cache: no mask at all
                offset = k.shape[2] - q.shape[2]
                mask = torch.ones(q.shape[2], k.shape[2], dtype=torch.bool, device=x.device).tril(offset)
        elif causal and mask is not None and cache is None:   # packed rows: the mask holds causality
            causal = False
        out = attend(q, k, v, mask, causal)
        return self.o(out.transpose(1, 2).flatten(2))

    def project(self, x, source, cache):
        """Queries, keys and values, the keys and values through the cache when there is one."""
        if not self.cross:
            q, k, v = self.qkv(x).chunk(3, dim=-1)
            q, k, v = self.q_norm(self._split(q)), self.k_norm(self._split(k)), self._split(v)
            if cache is not None:
                k, v = cache.self_attention_cache.update(k, v, self.layer_idx)
            return q, k, v
        q = self.q_norm(self._split(self.q(x)))
        if cache is not None and cache.is_updated.get(self.layer_idx):
            layer = cache.cross_attention_cache.layers[self.layer_idx]
            return q, layer.keys, layer.values
        k, v = self.kv(source).chunk(2, dim=-1)
        k, v = self.k_norm(self._split(k)), self._split(v)
        if cache is not None:
            k, v = cache.cross_attention_cache.update(k, v, self.layer_idx)
            cache.is_updated[self.layer_idx] = True
        return q, k, v


def attend(q, k, v, mask, causal: bool):
    """SDPA; when training on CPU, its math form, whose backward is faster than the CPU flash kernel's at
    these lengths (docs/experiments.md) and which torch.compile fuses; a decoding step on CPU (one query a row,
    no gradient) in bf16 or fp16, or compiled in fp32, two matmuls and a softmax (`one_query_attention`): compiled
    fp32 decoding runs it 1.05-1.11x as fast as SDPA (`bench.py --only attention`, session 57); eager fp32 keeps
    SDPA (they tie)."""
    on_cpu = q.device.type == "cpu"
    reduced_or_compiled = q.dtype in (torch.bfloat16, torch.float16) or torch.compiler.is_compiling()
    if (on_cpu and q.shape[-2] == 1 and reduced_or_compiled and not torch.is_grad_enabled()
            and not (causal and k.shape[-2] > 1)):
        return one_query_attention(q, k, v, mask)
    if not on_cpu or not torch.is_grad_enabled():
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
    with sdpa_kernel(SDPBackend.MATH):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)


def one_query_attention(q, k, v, mask):
    """Attention of one query a row (B, H, 1, D) over its keys, the scores and softmax in fp32 (from fp32 copies
    of q and k, so as exact as SDPA's), the weights times the values in v's dtype. In bf16 SDPA's CPU kernel takes
    3.3x as long for 48 rows of 80 keys, 2.1x for 256 (docs/experiments.md, session 32).
    `mask`: bool (True: attend) or additive, broadcast to (B, H, 1, S)."""
    with torch.autocast(q.device.type, enabled=False):   # autocast would take the product back to bf16
        scores = (q.float() @ k.float().transpose(-1, -2)) * q.shape[-1] ** -0.5
    if mask is None:
        return scores.softmax(-1).to(v.dtype) @ v
    scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    return scores.softmax(-1).nan_to_num(0.0).to(v.dtype) @ v   # a row with no key: zeros, as SDPA gives


class GatedMLP(nn.Module):
    def __init__(self, d_model: int, d_ff: int):
        super().__init__()
        self.w_in = nn.Linear(d_model, 2 * d_ff, bias=False)
        self.w_out = nn.Linear(d_ff, d_model, bias=False)

    def forward(self, x, attributes=None):
        value, gate = self.w_in(x).chunk(2, dim=-1)
        return self.w_out(F.silu(gate) * value), None, None


def feed_forward(cfg: UnioConfig, layer_idx: int) -> nn.Module:
    if cfg.moe_every and (layer_idx + 1) % cfg.moe_every == 0:
        width = cfg.expert_d_ff or cfg.d_ff
        if cfg.moe_routing == "attribute":
            kinds = 1 + 2 * len(cfg.vocab_range_starts)
            return AttributeMoEFeedForward(cfg.d_model, width, cfg.num_experts, cfg.moe_top_k, kinds,
                                           dense_dispatch=cfg.moe_dispatch == "dense")
        return MoEFeedForward(cfg.d_model, width, cfg.num_experts, cfg.moe_top_k, cfg.capacity_factor)
    return GatedMLP(cfg.d_model, cfg.d_ff)


def fixed_shapes(ff: nn.Module) -> bool:
    """Whether a feed-forward layer's shapes are fixed by its input's (dense, token-choice experts, or
    attribute-routed experts dispatched densely), so its block compiles whole."""
    return isinstance(ff, GatedMLP) or getattr(ff, "static_shapes", False)


def token_attributes(cfg: UnioConfig, ids, patches: int = 0, target: bool = False):
    """(B, patches + T) ids of what kind each token is, for attribute-routed MoE layers: 0 an image patch;
    1 + r a prompt token of vocabulary range r; 1 + R + r a target token of range r (R ranges). None
    when the model's MoE layers route by the tokens themselves."""
    if cfg.moe_routing != "attribute" or not cfg.moe_every:
        return None
    starts = torch.tensor(cfg.vocab_range_starts[1:], device=ids.device)
    kind = 1 + torch.bucketize(ids.contiguous(), starts, right=True) + (len(cfg.vocab_range_starts) if target else 0)
    return torch.cat([kind.new_zeros(ids.shape[0], patches), kind], dim=1)


class Block(nn.Module):
    """Pre-norm block: self-attention, optional cross-attention, feed-forward (dense or MoE)."""

    def __init__(self, cfg: UnioConfig, layer_idx: int, decoder: bool):
        super().__init__()
        self.decoder = decoder
        self.norm_self, self.self_attn = nn.RMSNorm(cfg.d_model), Attention(cfg, layer_idx)
        if decoder:
            self.norm_cross, self.cross_attn = nn.RMSNorm(cfg.d_model), Attention(cfg, layer_idx, cross=True)
        self.norm_ff, self.ff = nn.RMSNorm(cfg.d_model), feed_forward(cfg, layer_idx)
        self.drop = nn.Dropout(cfg.dropout)
        self.compiled = None    # set by UnioModel.compile_blocks
        self.compiled_at_inference = False   # set by UnioModel.compile_generation

    def forward(self, x, mask=None, memory=None, memory_mask=None, cache=None, aux=None, attributes=None):
        if self.compiled is not None and cache is None and (self.training or self.compiled_at_inference):
            if isinstance(self.ff, GatedMLP):
                return self.compiled(x, mask, memory, memory_mask)           # the whole block
            if not fixed_shapes(self.ff):
                return self.feed(self.compiled(x, mask, memory, memory_mask), aux, attributes)   # attention only
            x, balance, z_loss = self.compiled(x, mask, memory, memory_mask, attributes)  # the whole MoE block
            if aux is not None:
                aux.append((balance, z_loss))
            return x
        return self.uncompiled(x, mask, memory, memory_mask, cache, aux, attributes)

    def uncompiled(self, x, mask=None, memory=None, memory_mask=None, cache=None, aux=None, attributes=None):
        return self.feed(self.attend(x, mask, memory, memory_mask, cache), aux, attributes)

    def routed(self, x, mask=None, memory=None, memory_mask=None, attributes=None):
        """An MoE block whole, its layer's balance and z losses returned beside its output."""
        x = self.attend(x, mask, memory, memory_mask)
        out, balance, z_loss = self.ff(self.norm_ff(x), attributes)
        return x + self.drop(out), balance, z_loss

    def region(self):
        """What compile_blocks compiles: the whole block, or an MoE block's attention alone where its expert
        layer routes with data-dependent shapes (attribute routing with moe_dispatch='each')."""
        if isinstance(self.ff, GatedMLP):
            return self.uncompiled
        return self.routed if fixed_shapes(self.ff) else self.attend

    def attend(self, x, mask=None, memory=None, memory_mask=None, cache=None):
        """The block's attention: self-attention, then cross-attention in the decoder."""
        x = x + self.drop(self.self_attn(self.norm_self(x), mask=mask, causal=self.decoder, cache=cache))
        if self.decoder:
            x = x + self.drop(self.cross_attn(self.norm_cross(x), source=memory, mask=memory_mask, cache=cache))
        return x

    def feed(self, x, aux=None, attributes=None):
        """The block's feed-forward (an MoE layer's balance and z losses go to `aux`)."""
        out, balance, z_loss = self.ff(self.norm_ff(x), attributes)
        if balance is not None and aux is not None:
            aux.append((balance, z_loss))
        return x + self.drop(out)


class Encoder(nn.Module):
    main_input_name = "input_ids"

    def __init__(self, cfg: UnioConfig, embed: nn.Embedding):
        super().__init__()
        self.cfg, self.embed = cfg, embed
        grid = cfg.image_size // cfg.patch_size
        self.patch = build_stem(cfg.stem, cfg.patch_size, cfg.d_model)
        self.row = nn.Parameter(sincos(grid, cfg.d_model))   # learned, started from a smooth 2-D prior
        self.col = nn.Parameter(sincos(grid, cfg.d_model, phase=True))
        self.text_pos = nn.Parameter(torch.randn(cfg.max_text_length, cfg.d_model) * 0.02)
        self.layers = nn.ModuleList(Block(cfg, i, decoder=False) for i in range(cfg.encoder_layers))
        self.norm = nn.RMSNorm(cfg.d_model)
        if getattr(cfg, "region_marks", 0):   # zeros: no random draw, so every other weight starts as without
            self.region_marks = nn.Parameter(torch.zeros(cfg.region_marks, cfg.d_model))

    def embed_inputs(self, pixel_values, input_ids, region_boxes=None):
        cfg = self.cfg
        if input_ids.shape[1] > cfg.max_text_length:
            raise ValueError(f"prompt of {input_ids.shape[1]} tokens exceeds max_text_length {cfg.max_text_length}")
        if pixel_values is None:   # prompts without images: the text alone
            return self.embed(input_ids) + self.text_pos[: input_ids.shape[1]]      # (B, T, D)
        if pixel_values.shape[-2:] != (cfg.image_size, cfg.image_size):
            raise ValueError(f"pixel_values must be {cfg.image_size}x{cfg.image_size}, got {tuple(pixel_values.shape)}")
        pos2d = (self.row[:, None] + self.col[None]).flatten(0, 1)                # (P, D)
        image = self.patch(pixel_values.to(self.patch.proj.weight.dtype) * 2 - 1) + pos2d  # (B, P, D)
        if hasattr(self, "region_marks"):
            if region_boxes is None:   # no region: zero marks, but every image batch (not a text-only one)
                region_boxes = image.new_zeros(image.shape[0], 0, 4)   # gives region_marks a gradient, as DeepSpeed wants
            image = image + self.marks(region_boxes).to(image.dtype)
        text = self.embed(input_ids) + self.text_pos[: input_ids.shape[1]]
        return torch.cat([image, text], dim=1)                                      # (B, S, D)

    def marks(self, region_boxes):
        """(B, K, 4) boxes as fractions of the image -> (B, P, D): the k-th box's mark on each patch, in
        proportion to the share of the patch it covers."""
        if region_boxes.shape[1] > self.region_marks.shape[0]:
            raise ValueError(f"a region of {region_boxes.shape[1]} boxes, but this model marks at most "
                             f"{self.region_marks.shape[0]} (config.region_marks)")
        coverage = box_coverage(region_boxes.float(), self.cfg.image_size // self.cfg.patch_size)   # (B, K, P)
        return coverage.transpose(1, 2) @ self.region_marks[: region_boxes.shape[1]].float()

    def forward(self, input_ids=None, attention_mask=None, pixel_values=None, aux=None, image_mask=None,
                encoder_index=None, encoder_segment_ids=None, region_boxes=None, **kwargs):
        """Per example (B, S), or packed (unio.data.packing) when `encoder_index` is given: each example's
        tokens gathered into rows (R, S'), attention kept inside each example. `region_boxes` (B, K, 4),
        the prompt's region boxes as fractions of the image (unio.data.encoding): marked on the patches
        where the model has `region_marks`, ignored otherwise (they are in the prompt as location tokens)."""
        x = self.embed_inputs(pixel_values, input_ids, region_boxes)
        kinds = token_attributes(self.cfg, input_ids, x.shape[1] - input_ids.shape[1])
        if encoder_index is None:
            mask = full_encoder_mask(attention_mask, x.shape[1], image_mask)
        else:
            flat = torch.cat([x.flatten(0, 1), x.new_zeros(1, x.shape[-1])])        # index -1: a zero row
            x, mask = flat[encoder_index], same_segment(encoder_segment_ids, encoder_segment_ids)
            if kinds is not None:
                kinds = torch.cat([kinds.flatten(), kinds.new_zeros(1)])[encoder_index]
        for layer in self.layers:
            x = layer(x, mask=mask, aux=aux, attributes=kinds)
        return BaseModelOutput(last_hidden_state=self.norm(x))


def box_coverage(boxes, grid: int):
    """(B, K, 4) boxes (x1, y1, x2, y2) as fractions of the image -> (B, K, grid * grid): the share of each
    patch of a grid x grid layout (row by row) that each box covers."""
    edges = torch.arange(grid + 1, device=boxes.device, dtype=boxes.dtype) / grid

    def overlap(lo, hi):   # (B, K) -> (B, K, grid): each cell's covered share along one axis
        return ((torch.minimum(hi[..., None], edges[1:]) - torch.maximum(lo[..., None], edges[:-1])) * grid).clamp(min=0)

    x, y = overlap(boxes[..., 0], boxes[..., 2]), overlap(boxes[..., 1], boxes[..., 3])
    return (y[..., :, None] * x[..., None, :]).flatten(-2)


def sincos(n: int, dim: int, phase: bool = False) -> torch.Tensor:
    """(n, dim) sinusoidal features of positions 0..n-1 (cosines first when `phase`)."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    freq = torch.exp(-torch.arange(0, dim, 2, dtype=torch.float32) / dim * torch.log(torch.tensor(100.0)))
    angles = pos * freq[None] * (2 * torch.pi / max(n, 1)) * 4
    feats = [torch.cos(angles), torch.sin(angles)] if phase else [torch.sin(angles), torch.cos(angles)]
    return torch.stack(feats, -1).flatten(1)[:, :dim]


def same_segment(query_segments, key_segments, causal: bool = False):
    """(R, 1, Lq, Lk) bool: each query sees the keys of its own segment (padding, 0, sees padding), and with
    `causal` only those at or before it."""
    mask = query_segments[:, :, None] == key_segments[:, None, :]
    if causal:
        mask = mask & torch.ones(mask.shape[-2:], dtype=torch.bool, device=mask.device).tril()
    return mask[:, None]


def packed_memory_mask(decoder_segments, encoder_segments):
    """(R, 1, L, S) bool: a decoder token sees its own example's encoder tokens; padding sees them all
    (a row of nothing would give NaN, which the backward pass would spread)."""
    mask = same_segment(decoder_segments, encoder_segments)
    return mask | (decoder_segments == 0)[:, None, :, None]


def full_encoder_mask(text_mask, length: int, image_mask=None):
    """(B, T) text mask -> (B, 1, 1, S) bool mask over patches + text, or None when nothing is padded.
    `image_mask` (B,) bool, given when some prompts of the batch come without an image: their patches
    (of a blank image) are hidden from every query, so they read as the text alone."""
    if image_mask is not None and text_mask is not None and length > text_mask.shape[1]:
        patches = image_mask.bool()[:, None].expand(-1, length - text_mask.shape[1])
        return torch.cat([patches, text_mask.bool()], dim=1)[:, None, None, :]
    if text_mask is None or (not torch.compiler.is_compiling() and bool(text_mask.all())):
        return None
    patches = text_mask.new_ones(text_mask.shape[0], length - text_mask.shape[1])
    return torch.cat([patches, text_mask], dim=1).bool()[:, None, None, :]


class Decoder(nn.Module):
    def __init__(self, cfg: UnioConfig, embed: nn.Embedding):
        super().__init__()
        self.cfg, self.embed = cfg, embed
        self.pos = nn.Parameter(torch.randn(cfg.max_target_length + 1, cfg.d_model) * 0.02)
        self.layers = nn.ModuleList(Block(cfg, i, decoder=True) for i in range(cfg.decoder_layers))
        self.norm = nn.RMSNorm(cfg.d_model)

    def forward(self, input_ids, memory, memory_mask=None, cache=None, aux=None, positions=None, mask=None):
        """`positions` (R, L) and `mask` (R, 1, L, L), for packed rows (unio.data.packing): each token's
        position within its own target, and self-attention kept causal inside each target."""
        start = cache.self_attention_cache.get_seq_length() if cache is not None else 0
        length = input_ids.shape[1]
        if positions is not None:
            pos = self.pos[positions]
        elif cache is not None and cache.self_attention_cache.is_compileable:   # static: positions as a tensor,
            positions = start + torch.arange(length, device=input_ids.device)
            pos, mask = self.pos[positions], self.static_cache_mask(cache, positions)  # so one compiled step serves all
        elif start + length > self.pos.shape[0]:
            raise ValueError(f"decoder length {start + length} exceeds max_target_length + 1")
        else:
            pos = self.pos[start:start + length]
        x = self.embed(input_ids) + pos
        kinds = token_attributes(self.cfg, input_ids, target=True)
        for layer in self.layers:
            x = layer(x, mask=mask, memory=memory, memory_mask=memory_mask, cache=cache, aux=aux, attributes=kinds)
        return self.norm(x)                                                          # (B, L, D)

    def static_cache_mask(self, cache, positions):
        """(L, max_cache_len) bool: each new token sees the filled cache slots up to its own position."""
        slots = cache.self_attention_cache.layers[0].max_cache_len
        if slots > self.pos.shape[0]:
            raise ValueError(f"a static cache of {slots} tokens exceeds max_target_length + 1 ({self.pos.shape[0]}); "
                             "ask for fewer max_new_tokens")
        return torch.arange(slots, device=positions.device)[None] <= positions[:, None]


class UnioModel(PreTrainedModel, GenerationMixin):
    """The Hugging Face face of the model: save/load, generate() with KV cache, beams, sampling."""
    config_class = UnioConfig
    base_model_prefix = "unio"
    main_input_name = "input_ids"
    _tied_weights_keys = {"lm_head.weight": "embed.weight", "encoder.embed.weight": "embed.weight",
                          "decoder.embed.weight": "embed.weight"}
    _supports_sdpa = True

    def __init__(self, config: UnioConfig):
        super().__init__(config)
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self._tied_weights_keys = dict(type(self)._tied_weights_keys)
        encoder_embed = self.embed
        if not config.share_encoder_embeddings:   # the prompt's tokens get their own table
            del self._tied_weights_keys["encoder.embed.weight"]
            encoder_embed = nn.Embedding(config.vocab_size, config.d_model)
        self.encoder = Encoder(config, encoder_embed)
        self.decoder = Decoder(config, self.embed)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.compiled_generation = None   # a CompileConfig while compile_generation() is on
        self.post_init()

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=module.in_features ** -0.5)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=1.0)
            if self.config.ordinal_range:  # location bins start as smooth functions of the bin index
                start, stop = self.config.ordinal_range
                with torch.no_grad():
                    module.weight[start:stop] = sincos(stop - start, module.weight.shape[1]) * 2 ** 0.5
        elif isinstance(module, Encoder) and hasattr(module, "region_marks"):   # a checkpoint saved without marks
            nn.init.zeros_(module.region_marks)

    def compile_blocks(self) -> None:
        """Regional compilation of the blocks for training: one graph per block kind (far less compile
        time than the whole model's, for the same faster steps). A token-choice MoE block compiles its
        attention and keeps its expert layer eager (routing has data-dependent shapes); an attribute-routed
        one with dense dispatch compiles whole (Block.region).
        Inference stays eager unless compile_generation() is called."""
        for block in (*self.encoder.layers, *self.decoder.layers):
            block.compiled = torch.compile(block.region(), dynamic=True)

    def compile_generation(self, enabled: bool = True) -> None:
        """Faster generate(): the blocks compiled for passes without a KV cache (the encoder's), and a
        static KV cache whose one-token decoding step transformers compiles whole (its auto-compile, which
        it otherwise keeps to GPUs). Each new batch size or output length compiles once more; outputs equal
        eager decoding's.
        `enabled=False` goes back to eager decoding on a dynamic cache. Not saved with the model."""
        self.compiled_generation = decoding_compile_config(self.device) if enabled else None
        blocks = (*self.encoder.layers, *self.decoder.layers)
        if enabled and all(block.compiled is None for block in blocks):
            self.compile_blocks()
        for block in blocks:
            block.compiled_at_inference = enabled

    def generate(self, *args, **kwargs):
        """transformers' generate(). Given the processor's `unio_asked` (its inputs, as transformers'
        image-text-to-text pipeline passes them) and no logits_processor, the Asked decodes its examples
        as unio.run does (each task's grammar) and returns their answer ids; otherwise it is ignored."""
        asked = kwargs.pop("unio_asked", None)
        if asked is not None and "logits_processor" not in kwargs:
            return asked.generate(self, **{k: v for k, v in kwargs.items()
                                           if k not in ("input_ids", "attention_mask", "pixel_values", "image_mask",
                                                       "region_boxes")})
        if self.compiled_generation is not None:
            kwargs.setdefault("cache_implementation", "static")
            kwargs.setdefault("compile_config", self.compiled_generation)
        return super().generate(*args, **kwargs)

    def get_input_embeddings(self):
        return self.embed

    def set_input_embeddings(self, value):
        self.embed = self.decoder.embed = value
        if self.config.share_encoder_embeddings:
            self.encoder.embed = value

    def get_output_embeddings(self):
        return self.lm_head

    def get_encoder(self, modality=None):
        return self.encoder

    def forward(self, input_ids=None, attention_mask=None, pixel_values=None, decoder_input_ids=None,
                labels=None, encoder_outputs=None, cache=None, use_cache=None, image_mask=None, label_weights=None,
                detach_encoder=None, encoder_index=None, encoder_segment_ids=None, decoder_segment_ids=None,
                decoder_positions=None, region_boxes=None, target_groups=None, **kwargs):
        """`label_weights` (B, L), optional: each target token's weight in the loss (summing to 1 over the
        tokens that count), instead of one mean over all of them. `detach_encoder` (B,) bool, optional: the
        examples whose gradients stop at the encoder's output (they train the decoder alone).
        Packed rows (unio.data.packing): `encoder_index`, `encoder_segment_ids`, `decoder_segment_ids` and
        `decoder_positions`, with labels and decoder inputs (R, L) of the rows; logits come out per row.
        `target_groups` [(rows, length)], optional, with `label_weights`: the decoder runs once per group of
        rows on targets cut to `length` (grouped_forward)."""
        if encoder_index is not None:
            return self.packed_forward(pixel_values, input_ids, image_mask, encoder_index, encoder_segment_ids,
                                       decoder_input_ids, decoder_segment_ids, decoder_positions, labels, label_weights,
                                       region_boxes)
        aux: list = []
        if encoder_outputs is None:
            encoder_outputs = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                                           pixel_values=pixel_values, aux=aux, image_mask=image_mask,
                                           region_boxes=region_boxes)
        memory = encoder_outputs[0] if not hasattr(encoder_outputs, "last_hidden_state") else encoder_outputs.last_hidden_state
        if detach_encoder is not None:
            memory = torch.where(detach_encoder[:, None, None], memory.detach(), memory)
        if decoder_input_ids is None:
            if labels is None:
                raise ValueError("pass decoder_input_ids or labels")
            decoder_input_ids = shift_right(labels, self.config.decoder_start_token_id, self.config.pad_token_id)
        if target_groups is not None:
            return self.grouped_forward(memory, full_encoder_mask(attention_mask, memory.shape[1], image_mask),
                                        decoder_input_ids, labels, label_weights, target_groups, aux)
        if use_cache and cache is None:
            cache = EncoderDecoderCache(DynamicCache(config=self.config), DynamicCache(config=self.config))
        hidden = self.decoder(decoder_input_ids, memory, full_encoder_mask(attention_mask, memory.shape[1], image_mask),
                              cache=cache if use_cache or cache is not None else None, aux=aux)
        logits = self.lm_head(hidden * self.config.d_model ** -0.5)                     # (B, L, V)
        loss = self.loss(logits, labels, aux, label_weights) if labels is not None else None
        return Seq2SeqLMOutput(loss=loss, logits=logits, cache=cache,
                               encoder_last_hidden_state=memory)

    def packed_forward(self, pixel_values, input_ids, image_mask, encoder_index, encoder_segment_ids,
                       decoder_input_ids, decoder_segment_ids, decoder_positions, labels=None, label_weights=None,
                       region_boxes=None):
        """forward() over packed rows: each example attends only to itself (unio.data.packing)."""
        aux: list = []
        memory = self.encoder(input_ids=input_ids, pixel_values=pixel_values, aux=aux, image_mask=image_mask,
                              encoder_index=encoder_index, encoder_segment_ids=encoder_segment_ids,
                              region_boxes=region_boxes).last_hidden_state
        hidden = self.decoder(decoder_input_ids, memory, packed_memory_mask(decoder_segment_ids, encoder_segment_ids),
                              aux=aux, positions=decoder_positions,
                              mask=same_segment(decoder_segment_ids, decoder_segment_ids, causal=True))
        logits = self.lm_head(hidden * self.config.d_model ** -0.5)                     # (R, L, V)
        loss = self.loss(logits, labels, aux, label_weights) if labels is not None else None
        return Seq2SeqLMOutput(loss=loss, logits=logits, encoder_last_hidden_state=memory)

    def grouped_forward(self, memory, memory_mask, decoder_input_ids, labels, label_weights, groups, aux):
        """The decoder once per group of rows, [(rows, length)], on targets cut to `length`, over one encoder
        pass (unio.train.sub_batches: less padding where targets' lengths differ). The loss is the whole
        batch's: `label_weights` weigh its target tokens, z-loss is the mean over all of them, and each
        group's MoE balancing weighs as its share of the rows. Logits come out as a list, one per group."""
        if label_weights is None or labels is None:
            raise ValueError("target_groups needs labels and label_weights (each target token's weight in the loss)")
        cfg, loss, z, outputs, decoder_aux = self.config, 0.0, 0.0, [], []
        for rows, length in groups:
            group_aux: list = []
            hidden = self.decoder(decoder_input_ids[rows, :length], memory[rows],
                                  None if memory_mask is None else memory_mask[rows], aux=group_aux)
            logits = self.lm_head(hidden * cfg.d_model ** -0.5)
            target = labels[rows, :length]
            scored = self.loss_logits(logits, target)
            loss = loss + self.target_loss(scored, target, label_weights[rows, :length])
            if cfg.z_loss:
                z = z + (torch.logsumexp(scored, -1).pow(2) * (target != IGNORE)).sum()
            decoder_aux += [(b * len(rows) / len(labels), bz * len(rows) / len(labels)) for b, bz in group_aux]
            outputs.append(logits)
        if cfg.z_loss:
            loss = loss + cfg.z_loss * z / (labels != IGNORE).sum().clamp(min=1)
        layers = len(aux) + len(decoder_aux) // len(groups)     # the mean over the model's MoE layers
        loss = self.with_balancing(loss, aux + decoder_aux, layers)
        return Seq2SeqLMOutput(loss=loss, logits=outputs, encoder_last_hidden_state=memory)

    def loss(self, logits, labels, aux, label_weights=None):
        cfg = self.config
        logits = self.loss_logits(logits, labels)
        loss = self.target_loss(logits, labels, label_weights)
        if cfg.z_loss:
            valid = labels != IGNORE
            loss = loss + cfg.z_loss * (torch.logsumexp(logits, -1).pow(2) * valid).sum() / valid.sum().clamp(min=1)
        return self.with_balancing(loss, aux, len(aux))

    def loss_logits(self, logits, labels):
        """The logits the loss reads: float, and with --range-loss each target's own vocabulary range."""
        logits = logits.float()
        if self.config.loss_range_starts:
            logits = range_masked(logits, labels, self.config.loss_range_starts)
        return logits

    def target_loss(self, logits, labels, label_weights=None):
        """The targets' cross-entropy: the mean over their tokens, or weighted by `label_weights`."""
        cfg = self.config
        if cfg.ordinal_range and cfg.ordinal_sigma > 0:
            return ordinal_smoothed_loss(logits, labels, cfg.ordinal_range, cfg.ordinal_sigma, label_weights)
        if label_weights is not None:
            per_token = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE, reduction="none")
            return (per_token * label_weights.flatten()).sum()
        return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE)

    def with_balancing(self, loss, aux: list, layers: int):
        """`loss` plus MoE balancing: the mean of the router losses in `aux` over `layers` MoE layers."""
        if aux:
            loss = loss + self.config.moe_aux_weight * sum(b for b, _ in aux) / layers
            loss = loss + self.config.moe_z_weight * sum(z for _, z in aux) / layers
        return loss


def decoding_compile_config(device):
    """transformers' settings for compiling a one-token decoding step on `device`, any device: its
    default mode, "reduce-overhead", means CUDA graphs, so it is kept for GPUs."""
    from transformers import CompileConfig
    config = CompileConfig(dynamic=False, mode="reduce-overhead" if device.type == "cuda" else "default")
    if not hasattr(CompileConfig, "_compile_all_devices"):   # a private field: say so if it is gone
        warnings.warn("this transformers' CompileConfig has no _compile_all_devices: off GPUs, generate() "
                      "will decode eagerly (only the encoder's blocks are compiled)", stacklevel=3)
    config._compile_all_devices = True   # transformers auto-compiles only on accelerators otherwise
    return config


def range_masked(logits, labels, starts):
    """Logits of each target position kept only inside the target's vocabulary range, plus EOS; an EOS
    target takes the range of the token before it. `starts` are the ranges' first ids, ascending."""
    bounds = torch.tensor(starts[1:], device=logits.device)
    vocab_range = torch.bucketize(torch.arange(logits.shape[-1], device=logits.device), bounds, right=True)
    target_range = torch.bucketize(labels.clamp(min=0), bounds, right=True)                  # (B, L)
    before = torch.cat([target_range[:, :1], target_range[:, :-1]], dim=1)
    target_range = torch.where(labels == EOS, before, target_range)
    allowed = vocab_range == target_range[..., None]                                            # (B, L, V)
    allowed[..., EOS] = True
    return logits.masked_fill(~allowed, torch.finfo(logits.dtype).min)


def ordinal_smoothed_loss(logits, labels, ordinal_range, sigma: float, weights=None):
    """Cross-entropy where targets inside the ordinal range (location bins) are Gaussian-smoothed
    over neighbouring bins, so a near miss costs less than a far one; other targets are one-hot.
    `weights` (B, L): each token's weight (default: the mean over the tokens that count).
    Written without data-dependent shapes, so torch.compile traces it whole."""
    start, stop = ordinal_range
    logp = logits.flatten(0, 1).log_softmax(-1)                        # (N, V)
    flat = labels.flatten()
    valid = flat != IGNORE
    hard = -logp.gather(-1, flat.clamp(min=0)[:, None])[:, 0]          # (N,)
    bins = torch.arange(stop - start, device=logits.device, dtype=logp.dtype)
    centre = (flat - start).clamp(0, stop - start - 1).to(logp.dtype)[:, None]
    soft = torch.softmax(-0.5 * ((bins[None] - centre) / sigma) ** 2, -1)         # (N, bins)
    smoothed = -(soft * logp[:, start:stop]).sum(-1)
    ordinal = (flat >= start) & (flat < stop)
    per_token = torch.where(ordinal, smoothed, hard)
    if weights is not None:
        return (per_token * valid * weights.flatten()).sum()
    return (per_token * valid).sum() / valid.sum().clamp(min=1)


def shift_right(labels: torch.Tensor, start_id: int, pad_id: int) -> torch.Tensor:
    """Decoder inputs from labels: [start, y0, y1, ...], with -100 replaced by pad."""
    shifted = labels.new_full(labels.shape, pad_id)
    shifted[:, 1:] = labels[:, :-1].clone()
    shifted[:, 0] = start_id
    return shifted.masked_fill(shifted == IGNORE, pad_id)
