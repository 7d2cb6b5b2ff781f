"""The encoder-decoder: shapes, KV-cache parity, save/load, overfitting, grammar, MoE."""
import pytest
import torch
from conftest import overfit, world_examples

from unio.data.batching import Collator
from unio.model import UnioConfig, UnioModel
from unio.model.decoding import generate_constrained, score_candidates, strip_answer
from unio.model.transformer import GatedMLP
from unio.registries import TASKS
from unio.vocab import EOS


def batch_for(task_names, modalities, config, n=4):
    tasks = {name: TASKS.get(name) for name in task_names}
    exs = [ex for name in task_names for ex in world_examples(tasks[name], "train", n, config.image_size)]
    return Collator(tasks, modalities, config.max_text_length, config.max_target_length)(exs), exs


def test_forward_shapes(modalities, tiny_config):
    torch.manual_seed(0)
    model = UnioModel(tiny_config)
    batch, _ = batch_for(["vqa", "refexp"], modalities, tiny_config)
    out = model(**batch)
    assert out.logits.shape == (*batch["labels"].shape, tiny_config.vocab_size)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert out.encoder_last_hidden_state.shape[1] == (32 // 8) ** 2 + batch["input_ids"].shape[1]


def test_padding_does_not_change_encoder_outputs(modalities, tiny_config):
    torch.manual_seed(0)
    model = UnioModel(tiny_config).eval()
    batch, _ = batch_for(["vqa"], modalities, tiny_config, n=1)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    padded_ids = torch.cat([ids, torch.zeros(1, 5, dtype=torch.long)], 1)
    padded_mask = torch.cat([mask, torch.zeros(1, 5, dtype=torch.long)], 1)
    labels = batch["labels"]
    a = model(input_ids=ids, attention_mask=mask, pixel_values=batch["pixel_values"], labels=labels).logits
    b = model(input_ids=padded_ids, attention_mask=padded_mask, pixel_values=batch["pixel_values"], labels=labels).logits
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("moe_every, routing", [(0, "token"), (2, "token"), (2, "attribute")])
def test_kv_cache_generation_equals_full_recomputation(modalities, tiny_config, moe_every, routing):
    torch.manual_seed(0)
    tiny_config.moe_every = moe_every
    tiny_config.capacity_factor = 100.0  # no token dropping, so routing is per token and cache-independent
    tiny_config.moe_routing, tiny_config.vocab_range_starts = routing, range_starts(modalities)
    model = UnioModel(tiny_config).eval()
    batch, _ = batch_for(["vqa", "caption"], modalities, tiny_config, n=2)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "pixel_values")}
    cached = model.generate(**inputs, max_new_tokens=12, do_sample=False, use_cache=True, min_new_tokens=12)
    full = model.generate(**inputs, max_new_tokens=12, do_sample=False, use_cache=False, min_new_tokens=12)
    assert torch.equal(cached, full)
    # and the cached logits equal a single full forward pass over the generated prefix
    logits = model(**inputs, decoder_input_ids=cached[:, :-1]).logits
    assert torch.equal(logits.argmax(-1), cached[:, 1:])


def test_one_query_attention_equals_sdpa():
    """The decoding step's attention (one query a row) gives what SDPA gives: with no mask, a bool mask (a row
    that sees no key: zeros, as SDPA), an additive one; in fp32 to rounding, in bf16 to bf16's precision."""
    import torch.nn.functional as F

    from unio.model.transformer import one_query_attention
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 4, 1, 16) * 2, torch.randn(3, 4, 9, 16), torch.randn(3, 4, 9, 16)
    hidden = torch.ones(3, 1, 1, 9, dtype=torch.bool)
    hidden[0, ..., 5:] = False
    hidden[2] = False
    additive = torch.zeros(3, 1, 1, 9).masked_fill(~hidden, -1e4)
    for mask, rows in ((None, 3), (hidden, 3), (additive[:2], 2)):   # (an additive mask's empty row: -1e4, not zeros)
        a, b, c = q[:rows], k[:rows], v[:rows]
        want = F.scaled_dot_product_attention(a, b, c, attn_mask=mask)
        assert torch.allclose(one_query_attention(a, b, c, mask), want, atol=1e-5)
        got = one_query_attention(a.bfloat16(), b.bfloat16(), c.bfloat16(), mask)
        sdpa = F.scaled_dot_product_attention(a.bfloat16(), b.bfloat16(), c.bfloat16(), attn_mask=mask)
        assert got.dtype == torch.bfloat16 and (got.float() - want).abs().max() <= 2 * (sdpa.float() - want).abs().max() + 1e-3
    assert torch.equal(one_query_attention(q, k, v, hidden)[2], torch.zeros(4, 1, 16))


def test_attend_takes_the_one_query_path_only_for_a_reduced_precision_or_compiled_decoding_step(monkeypatch):
    import unio.model.transformer as transformer
    taken = []
    monkeypatch.setattr(transformer, "one_query_attention", lambda q, k, v, mask: taken.append(1) or q)
    q, k, v = torch.randn(2, 4, 1, 8), torch.randn(2, 4, 5, 8), torch.randn(2, 4, 5, 8)
    half = [t.bfloat16() for t in (q, k, v)]
    with torch.no_grad():
        transformer.attend(*half, None, causal=False)
        assert taken == [1]
        transformer.attend(q, k, v, None, causal=False)                     # fp32: SDPA
        transformer.attend(torch.randn(2, 4, 3, 8).bfloat16(), *half[1:], None, causal=False)   # three queries
        transformer.attend(*half, None, causal=True)                        # causal over five keys
    transformer.attend(*half, None, causal=False)                          # with a gradient (training)
    assert taken == [1]
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)      # traced for a compiled decoding step
    with torch.no_grad():
        transformer.attend(q, k, v, None, causal=False)                     # fp32, compiled: the one-query path
        transformer.attend(torch.randn(2, 4, 3, 8), k, v, None, causal=False)   # three queries: SDPA
    assert taken == [1, 1]


def test_beam_search_and_sampling_run(modalities, tiny_config):
    torch.manual_seed(0)
    model = UnioModel(tiny_config).eval()
    batch, _ = batch_for(["vqa"], modalities, tiny_config, n=2)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "pixel_values")}
    beams = model.generate(**inputs, max_new_tokens=5, num_beams=3, num_return_sequences=2)
    assert beams.shape[0] == 4
    sampled = model.generate(**inputs, max_new_tokens=5, do_sample=True, top_k=10, top_p=0.9, temperature=0.8)
    assert sampled.shape[0] == 2


def generate_with_scores(model, inputs, **options):
    out = model.generate(**inputs, max_new_tokens=8, min_new_tokens=8, output_scores=True,
                         return_dict_in_generate=True, **options)
    return out.sequences, torch.stack(out.scores, 1)


def assert_same_generation(a, b, atol):
    assert torch.equal(a[0], b[0])
    finite = torch.isfinite(a[1])   # tokens the processors ruled out are -inf in both
    assert torch.equal(finite, torch.isfinite(b[1]))
    assert torch.allclose(a[1][finite], b[1][finite], atol=atol), (a[1][finite] - b[1][finite]).abs().max()


@pytest.mark.parametrize("beams", [1, 3])
def test_static_cache_generation_equals_dynamic_cache(modalities, tiny_config, beams):
    torch.manual_seed(0)
    model = UnioModel(tiny_config).eval()
    batch, _ = batch_for(["vqa", "caption"], modalities, tiny_config, n=2)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "pixel_values")}
    dynamic = generate_with_scores(model, inputs, num_beams=beams, do_sample=False)
    static = generate_with_scores(model, inputs, num_beams=beams, do_sample=False, cache_implementation="static")
    assert_same_generation(static, dynamic, atol=1e-5)


def test_compiled_generation_equals_eager_and_can_be_undone(modalities, tiny_config, tmp_path):
    torch.manual_seed(0)
    model = UnioModel(tiny_config).eval()
    batch, _ = batch_for(["vqa", "refexp"], modalities, tiny_config, n=2)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "pixel_values")}
    eager = generate_with_scores(model, inputs, do_sample=False)
    model.compile_generation()
    before = torch._dynamo.utils.counters["stats"]["calls_captured"]
    compiled = generate_with_scores(model, inputs, do_sample=False)
    assert torch._dynamo.utils.counters["stats"]["calls_captured"] > before   # it did compile
    assert hasattr(model, "_compiled_call")   # transformers compiled the decoding step itself, off GPUs too
    assert_same_generation(compiled, eager, atol=1e-4)
    beams = {k: v[:1] for k, v in inputs.items()}
    model.compile_generation(False)
    eager_beams = model.generate(**beams, max_new_tokens=5, num_beams=3, num_return_sequences=2)
    model.compile_generation()
    assert torch.equal(model.generate(**beams, max_new_tokens=5, num_beams=3, num_return_sequences=2), eager_beams)
    model.save_pretrained(tmp_path)   # compilation is a property of this process, not of the saved model
    assert UnioModel.from_pretrained(tmp_path).generation_config.cache_implementation is None
    model.compile_generation(False)
    assert_same_generation(generate_with_scores(model, inputs, do_sample=False), eager, atol=1e-5)


def test_save_load_round_trip(modalities, tiny_config, tmp_path):
    torch.manual_seed(0)
    model = UnioModel(tiny_config).eval()
    batch, _ = batch_for(["refexp"], modalities, tiny_config)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    loaded = UnioModel.from_pretrained(tmp_path).eval()
    assert torch.equal(model(**batch).logits, loaded(**batch).logits)
    assert loaded.lm_head.weight.data_ptr() == loaded.embed.weight.data_ptr()


@pytest.mark.parametrize("task", ["caption", "refexp", "depth"])
def test_tiny_model_overfits_one_batch(modalities, tiny_config, task):
    """Text, 4 location tokens, an image-code grid: each learnt to near-zero loss."""
    torch.manual_seed(0)
    model = UnioModel(tiny_config)
    batch, _ = batch_for([task], modalities, tiny_config, n=4)
    loss = overfit(model, batch, 150)
    assert loss < 0.05, loss


@pytest.mark.parametrize("task", ["vqa", "caption", "refexp", "depth"])
def test_constrained_decoding_stays_in_grammar(modalities, tiny_config, task):
    torch.manual_seed(1)
    model = UnioModel(tiny_config).eval()
    batch, exs = batch_for([task], modalities, tiny_config, n=3)
    grammar = TASKS.get(task).grammar(modalities, tiny_config.image_size)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "pixel_values")}
    for options in ({}, {"do_sample": True, "top_k": 50}, {"num_beams": 2}):
        out = generate_constrained(model, inputs, grammar, modalities.vocab, **options)
        for row in out.tolist():
            answer = strip_answer(row) + [EOS]
            assert grammar.accepts(answer, modalities.vocab), (task, row)


def test_grammar_processor_masks_disallowed(modalities):
    grammar = TASKS.get("refexp").grammar(modalities, 32)
    proc = grammar.processor(modalities.vocab)
    scores = proc(torch.tensor([[2]]), torch.zeros(1, modalities.vocab.size))     # the start token: y1 next
    allowed = (scores > -1e30).nonzero()[:, 1]
    start = modalities.vocab.range("coordinates").start
    assert allowed.min() >= start and allowed.max() < start + 32


def test_candidate_scoring_prefers_trained_answer(modalities, tiny_config):
    torch.manual_seed(0)
    model = UnioModel(tiny_config)
    batch, exs = batch_for(["vqa"], modalities, tiny_config, n=1)
    overfit(model, batch, 60)
    model.eval()
    inputs = {k: batch[k][:1] for k in ("input_ids", "attention_mask", "pixel_values")}
    gold = exs[0].target
    wrong = "purple" if gold != "purple" else "cube"
    scores = score_candidates(model, inputs, [modalities.text_ids(wrong), modalities.text_ids(gold)])
    assert scores.argmax().item() == 1


def test_moe_aux_loss_finite_and_balanced(modalities, tiny_config):
    torch.manual_seed(0)
    tiny_config.moe_every, tiny_config.num_experts, tiny_config.moe_top_k = 1, 4, 2
    model = UnioModel(tiny_config)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(10):
        labels = torch.randint(30, tiny_config.vocab_size, (8, 6))
        out = model(input_ids=torch.randint(30, 200, (8, 10)), pixel_values=torch.rand(8, 3, 32, 32), labels=labels)
        assert torch.isfinite(out.loss)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    from unio.model.moe import MoEFeedForward
    loads = [m.last_load for m in model.modules() if isinstance(m, MoEFeedForward)]
    assert loads and all(float(load.max()) < 0.9 for load in loads)


def range_starts(modalities) -> list:
    return sorted({0, *(r.start for r in modalities.vocab.ranges.values())})


def test_attribute_routing_sends_each_kind_of_token_to_its_own_experts(modalities, tiny_config):
    """Uni-Perceiver-MoE's routing: patches, prompt tokens and target tokens of each vocabulary range are
    kinds of their own; tokens of one kind meet the same top-k experts, whatever they say."""
    from unio.model.moe import AttributeMoEFeedForward
    from unio.model.transformer import token_attributes
    tiny_config.moe_every, tiny_config.moe_routing = 1, "attribute"
    tiny_config.vocab_range_starts = starts = range_starts(modalities)
    ids = torch.tensor([[5, starts[1], starts[-1] + 3]])
    assert token_attributes(tiny_config, ids, patches=2).tolist() == [[0, 0, 1, 2, len(starts)]]
    assert token_attributes(tiny_config, ids, target=True).tolist() == [[1 + len(starts), 2 + len(starts), 2 * len(starts)]]
    torch.manual_seed(0)
    layer = AttributeMoEFeedForward(16, 8, num_experts=4, top_k=1, num_attributes=3)
    kinds = torch.tensor([0, 0, 1, 1, 2, 2])
    x = torch.randn(6, 16)
    out, balance, _ = layer(x, kinds)
    expert = layer.router.argmax(-1)[kinds]                   # top-1: each kind's best expert
    for i in range(6):   # each token's output is its kind's expert applied to it alone
        value, gate = (x[i] @ layer.w_in[expert[i]]).chunk(2)
        torch.testing.assert_close(out[i], (torch.nn.functional.silu(gate) * value) @ layer.w_out[expert[i]])
    assert torch.isfinite(balance)
    with pytest.raises(ValueError, match="needs each token's attributes"):
        layer(x)


def test_attribute_experts_dispatched_densely_equal_each_expert_on_its_own_tokens():
    """moe_dispatch 'dense' (every expert on every token, weighted 0 off its top-k) and 'each' give the same
    outputs, losses and gradients, to float rounding."""
    from unio.model.moe import AttributeMoEFeedForward
    torch.manual_seed(0)
    layer = AttributeMoEFeedForward(32, 24, num_experts=4, top_k=2, num_attributes=5)
    x, kinds = torch.randn(3, 40, 32), torch.randint(0, 5, (3, 40))
    results = []
    for dense in (True, False):
        layer.dense_dispatch = dense
        inputs = x.clone().requires_grad_()
        out, balance, z_loss = layer(inputs, kinds)
        (out.square().sum() + balance + z_loss).backward()
        results.append([out, balance, z_loss, inputs.grad, layer.router.grad, layer.w_in.grad, layer.w_out.grad])
        layer.zero_grad()
    for dense, each in zip(*results):
        torch.testing.assert_close(dense, each, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="moe_dispatch must be 'dense' or 'each'"):
        UnioConfig(moe_dispatch="sparse")


def test_token_choice_experts_keep_first_choices_first_and_drop_past_capacity():
    """Token choice against a plain loop: first choices take their experts' slots before second ones, in
    token order, until an expert holds `capacity` tokens; a choice past that adds nothing (its gate gets no
    gradient). Outputs and gradients equal the loop's."""
    from unio.model.moe import MoEFeedForward
    torch.manual_seed(0)
    layer = MoEFeedForward(16, 12, num_experts=4, top_k=2, capacity_factor=0.5)   # capacity 10 of 40*2/4 = 20
    x = torch.randn(2, 20, 16, requires_grad=True)
    out, _, _ = layer(x)
    tokens = x.reshape(-1, 16)
    gates, experts = layer.router(tokens).float().softmax(-1).topk(2, dim=-1)
    gates = gates / gates.sum(-1, keepdim=True)
    expected, filled, dropped = torch.zeros_like(tokens), [0] * 4, 0
    for choice in range(2):
        for i in range(len(tokens)):
            e = int(experts[i, choice])
            if filled[e] == 10:
                dropped += 1
                continue
            filled[e] += 1
            value, gate = (tokens[i] @ layer.w_in[e]).chunk(2)
            expected[i] = expected[i] + gates[i, choice] * ((torch.nn.functional.silu(gate) * value) @ layer.w_out[e])
    assert dropped > 0
    torch.testing.assert_close(out.reshape(-1, 16), expected)
    grads = torch.autograd.grad(out.square().sum(), [x, layer.w_in, layer.router.weight])
    torch.testing.assert_close(grads, torch.autograd.grad(expected.square().sum(), [x, layer.w_in, layer.router.weight]))


def test_an_attribute_routed_model_trains_with_the_same_active_width(modalities, tiny_config):
    tiny_config.moe_every, tiny_config.moe_routing, tiny_config.moe_top_k = 2, "attribute", 2
    tiny_config.vocab_range_starts, tiny_config.expert_d_ff = range_starts(modalities), tiny_config.d_ff // 2
    tiny_config.ordinal_range = [range_starts(modalities)[1], range_starts(modalities)[1] + 32]   # as runs set it
    torch.manual_seed(0)
    model = UnioModel(tiny_config)
    batch, _ = batch_for(["vqa", "refexp"], modalities, tiny_config)
    first = model(**batch).loss.item()
    assert overfit(model, batch, steps=30) < 0.5 * first
    with pytest.raises(ValueError, match="needs vocab_range_starts"):
        UnioConfig(moe_routing="attribute")


def test_config_validation():
    with pytest.raises(ValueError, match="divisible"):
        UnioConfig(d_model=65, num_heads=4)
    with pytest.raises(ValueError, match="multiple of patch_size"):
        UnioConfig(image_size=30, patch_size=8)


def test_ordinal_smoothing_prefers_near_misses():
    from unio.model.transformer import ordinal_smoothed_loss
    vocab, start, stop = 50, 10, 42
    labels = torch.tensor([[20, 5]])
    near = torch.full((1, 2, vocab), -10.0)
    near[0, 0, 21] = 5.0   # one bin off
    near[0, 1, 5] = 5.0
    far = near.clone()
    far[0, 0, 21], far[0, 0, 35] = -10.0, 5.0  # fifteen bins off
    assert ordinal_smoothed_loss(near, labels, (start, stop), 1.0) < ordinal_smoothed_loss(far, labels, (start, stop), 1.0)
    # outside the ordinal range it is plain cross-entropy
    plain = torch.nn.functional.cross_entropy(near[0, 1:], labels[0, 1:])
    only_text = ordinal_smoothed_loss(near[:, 1:], labels[:, 1:], (start, stop), 1.0)
    assert torch.allclose(only_text, plain)


def test_compiled_blocks_match_eager_training_and_leave_generation_eager(modalities, tiny_config):
    torch.manual_seed(0)
    model = UnioModel(tiny_config).train()
    batch, _ = batch_for(["vqa", "depth"], modalities, tiny_config)
    eager = model(**batch).loss
    eager_grads = torch.autograd.grad(eager, model.encoder.patch.proj.weight)[0]
    model.compile_blocks()
    compiled = model(**batch).loss
    compiled_grads = torch.autograd.grad(compiled, model.encoder.patch.proj.weight)[0]
    assert torch.allclose(compiled, eager, rtol=1e-4), (compiled, eager)
    assert torch.allclose(compiled_grads, eager_grads, rtol=1e-3, atol=1e-6)
    model.eval()
    before = torch._dynamo.utils.counters["stats"]["calls_captured"]
    model.generate(pixel_values=batch["pixel_values"][:1], input_ids=batch["input_ids"][:1], max_new_tokens=3)
    assert torch._dynamo.utils.counters["stats"]["calls_captured"] == before   # no tracing of the KV-cache path


@pytest.mark.parametrize("routing, dispatch", [("token", "dense"), ("attribute", "dense"), ("attribute", "each")])
def test_compiled_moe_blocks_match_eager_training_and_keep_their_balancing_losses(modalities, tiny_config, routing,
                                                                                  dispatch):
    """An MoE block compiles whole (token choice; attribute routing dispatched densely) or its attention
    alone, its experts eager (attribute routing, each expert on its own tokens): the same loss and gradients as all eager, the balance and z losses still counted (the loss moves
    with moe_aux_weight)."""
    torch.manual_seed(0)
    tiny_config.moe_every, tiny_config.capacity_factor = 2, 100.0
    tiny_config.moe_routing, tiny_config.vocab_range_starts = routing, range_starts(modalities)
    tiny_config.moe_dispatch = dispatch
    model = UnioModel(tiny_config).train()
    batch, _ = batch_for(["vqa", "depth"], modalities, tiny_config)
    eager = model(**batch).loss
    eager_grads = torch.autograd.grad(eager, model.encoder.patch.proj.weight)[0]
    model.compile_blocks()
    blocks = (*model.encoder.layers, *model.decoder.layers)
    assert all(block.compiled is not None for block in blocks)
    whole = {block.region().__name__ for block in blocks if not isinstance(block.ff, GatedMLP)}
    assert whole == ({"attend"} if dispatch == "each" else {"routed"})
    torch._dynamo.utils.counters.clear()
    compiled = model(**batch).loss
    assert not torch._dynamo.utils.counters["graph_break"]       # each compiled region one graph
    compiled_grads = torch.autograd.grad(compiled, model.encoder.patch.proj.weight)[0]
    assert torch.allclose(compiled, eager, rtol=1e-4), (compiled, eager)
    assert torch.allclose(compiled_grads, eager_grads, rtol=1e-3, atol=1e-6)
    model.config.moe_aux_weight *= 100      # the balancing losses reach the loss through the compiled blocks
    assert not torch.allclose(model(**batch).loss, compiled, rtol=1e-3)


def test_range_masked_loss_keeps_each_target_inside_its_vocabulary_range():
    from unio.model.transformer import range_masked
    logits = torch.zeros(1, 4, 10)
    labels = torch.tensor([[5, 6, EOS, -100]])     # ranges start at 0, 4, 8: two tokens of range 1, EOS, pad
    kept = range_masked(logits, labels, [0, 4, 8]) > -1
    expected = torch.zeros(10, dtype=torch.bool)
    expected[[EOS, 4, 5, 6, 7]] = True
    assert all(torch.equal(kept[0, i], expected) for i in range(3))   # EOS takes the range before it
    config = UnioConfig(vocab_size=10, d_model=32, num_heads=2, d_ff=64, encoder_layers=1, decoder_layers=1,
                        image_size=16, patch_size=8, max_text_length=8, max_target_length=8, loss_range_starts=[0, 4, 8])
    model = UnioModel(config)
    batch = {"pixel_values": torch.rand(1, 3, 16, 16), "input_ids": torch.tensor([[4, 5]]),
             "attention_mask": torch.ones(1, 2, dtype=torch.long), "labels": labels}
    full = UnioModel(UnioConfig(**{**config.to_dict(), "loss_range_starts": None}))
    full.load_state_dict(model.state_dict())
    assert model(**batch).loss < full(**batch).loss     # fewer competitors -> lower cross-entropy


def test_conv_stem_gives_the_same_patch_grid_and_rejects_other_patch_sizes():
    from unio.model.stem import ConvStem
    config = UnioConfig(vocab_size=64, d_model=32, num_heads=4, d_ff=64, encoder_layers=1, decoder_layers=1,
                        image_size=32, patch_size=8, stem="conv")
    model = UnioModel(config)
    out = model(pixel_values=torch.rand(2, 3, 32, 32), input_ids=torch.ones(2, 3, dtype=torch.long),
                labels=torch.ones(2, 2, dtype=torch.long))
    assert out.encoder_last_hidden_state.shape == (2, (32 // 8) ** 2 + 3, 32)
    with pytest.raises(ValueError, match="power-of-two patch_size"):
        ConvStem(14, 32)
    with pytest.raises(ValueError, match="unknown stem"):
        UnioModel(UnioConfig(vocab_size=64, d_model=32, stem="resnet"))


def test_moe_flags_set_the_routing(modalities):
    from unio.train.builders import model_overrides
    from unio.train.cli import options_from, parser
    token = model_overrides(options_from(parser().parse_args(["--moe"])), modalities)
    assert token["moe_every"] == 2 and "moe_routing" not in token
    kinds = model_overrides(options_from(parser().parse_args(["--moe", "attribute"])), modalities)
    assert kinds["moe_routing"] == "attribute" and kinds["vocab_range_starts"] == range_starts(modalities)
    assert model_overrides(options_from(parser().parse_args([])), modalities).get("moe_every") is None
