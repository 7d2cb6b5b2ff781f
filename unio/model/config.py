"""UnioConfig: the Hugging Face config of unio's encoder-decoder."""
from __future__ import annotations

from transformers import PretrainedConfig

from unio.vocab import BOS, EOS, PAD


class UnioConfig(PretrainedConfig):
    model_type = "unio"

    def __init__(self, vocab_size: int = 2048, d_model: int = 256, num_heads: int = 4, d_ff: int = 682,
                 encoder_layers: int = 4, decoder_layers: int = 4, image_size: int = 64, patch_size: int = 8,
                 max_text_length: int = 64, max_target_length: int = 128, dropout: float = 0.0,
                 qk_norm: bool = False, z_loss: float = 0.0, moe_every: int = 0, num_experts: int = 4,
                 moe_top_k: int = 2, capacity_factor: float = 1.25, moe_aux_weight: float = 0.01,
                 moe_z_weight: float = 0.001, ordinal_range: tuple | None = None, ordinal_sigma: float = 0.0,
                 loss_range_starts: list | None = None, stem: str = "linear",
                 share_encoder_embeddings: bool = True, unio_format: int = 1, task_options: dict | None = None,
                 decoder_start: str = "bos", trained_tasks: list | None = None, moe_routing: str = "token",
                 expert_d_ff: int | None = None, vocab_range_starts: list | None = None, region_marks: int = 0,
                 moe_dispatch: str = "dense", **kwargs):
        if d_model % num_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads})")
        if image_size % patch_size:
            raise ValueError(f"image_size ({image_size}) must be a multiple of patch_size ({patch_size})")
        self.vocab_size, self.d_model, self.num_heads, self.d_ff = vocab_size, d_model, num_heads, d_ff
        self.encoder_layers, self.decoder_layers = encoder_layers, decoder_layers
        self.image_size, self.patch_size, self.stem = image_size, patch_size, stem
        # how many of a prompt's region boxes are also marked on the patches they cover (a learned vector per
        # box, added to each patch in proportion to the share of it the box covers); 0: location tokens only
        if isinstance(region_marks, bool) or not isinstance(region_marks, int) or region_marks < 0:
            raise ValueError(f"region_marks must be a whole number >= 0 (boxes a region may hold), got {region_marks!r}")
        self.region_marks = region_marks
        # False: the encoder's prompt tokens get their own embedding table; the decoder's input
        # embeddings stay tied to the output layer either way
        self.share_encoder_embeddings = share_encoder_embeddings
        self.unio_format = unio_format   # the model folder's layout version (unio/infer/model_folder.py)
        self.max_text_length, self.max_target_length = max_text_length, max_target_length
        self.dropout, self.qk_norm, self.z_loss = dropout, qk_norm, z_loss
        self.moe_every, self.num_experts, self.moe_top_k = moe_every, num_experts, moe_top_k
        self.capacity_factor, self.moe_aux_weight, self.moe_z_weight = capacity_factor, moe_aux_weight, moe_z_weight
        # how MoE layers route: "token" (each token's representation) or "attribute" (what kind of token it
        # is: a patch, or a prompt or target token of one of the vocabulary ranges starting at
        # `vocab_range_starts`); each expert's hidden width (None: d_ff)
        if moe_routing not in ("token", "attribute"):
            raise ValueError(f"moe_routing must be 'token' or 'attribute', got {moe_routing!r}")
        if moe_routing == "attribute" and not vocab_range_starts:
            raise ValueError("moe_routing='attribute' needs vocab_range_starts, the first id of each vocabulary range")
        self.moe_routing, self.expert_d_ff = moe_routing, expert_d_ff
        # how an attribute-routed layer runs its experts: "dense", every expert on every token, weighted 0 off
        # the token's top-k (E/k times the work, fixed shapes: its block compiles whole), or "each", each
        # expert on its own tokens (k experts' work, eager)
        if moe_dispatch not in ("dense", "each"):
            raise ValueError(f"moe_dispatch must be 'dense' or 'each', got {moe_dispatch!r}")
        self.moe_dispatch = moe_dispatch
        self.vocab_range_starts = list(vocab_range_starts) if vocab_range_starts else None
        # ids [start, stop) are ordered bins (location tokens): their targets are smoothed over
        # neighbouring bins with a Gaussian of `ordinal_sigma` bins (0 = plain cross-entropy)
        self.ordinal_range = list(ordinal_range) if ordinal_range else None
        self.ordinal_sigma = ordinal_sigma
        # start ids of the vocabulary ranges: when set, each target's training softmax covers only
        # its own range (+ EOS), as grammar-constrained decoding does (None = the whole vocabulary)
        self.loss_range_starts = list(loss_range_starts) if loss_range_starts else None
        # the options the run gave task plugins ({task: {option: value}}, e.g. segment's mask_in): a
        # loaded model configures its tasks with them, so its answers are read as they were trained
        self.task_options = dict(task_options or {})
        # the decoder's first input: "bos", <s> for every answer, or "answer", a start token per vocabulary
        # range the answer begins in (unio.grammar.answer_start_id; Unified-IO 2's target-modality prefix)
        if decoder_start not in ("bos", "answer"):
            raise ValueError(f"decoder_start must be 'bos' or 'answer', got {decoder_start!r}")
        self.decoder_start = decoder_start
        # the tasks the model was trained on to the end of its run (None: not recorded, a model before v0.3)
        self.trained_tasks = sorted(trained_tasks) if trained_tasks is not None else None
        # names transformers' generate() and cache code look for
        self.num_hidden_layers = decoder_layers
        self.hidden_size = d_model
        self.num_attention_heads = num_heads
        kwargs.setdefault("is_encoder_decoder", True)
        kwargs.setdefault("tie_word_embeddings", True)
        for key, value in (("pad_token_id", PAD), ("eos_token_id", EOS), ("decoder_start_token_id", BOS),
                           ("bos_token_id", BOS)):
            kwargs.setdefault(key, value)
        super().__init__(**kwargs)
