"""Packing (unio.data.packing): a packed batch gives each example the loss and logits it gets alone."""
import copy
import json

import pytest
import torch
from conftest import world_examples

from unio.data.batching import Collator
from unio.data.packing import pack, pack_rows
from unio.model import UnioModel
from unio.registries import TASKS
from unio.train.balance import example_losses
from unio.vocab import IGNORE

TASK_NAMES = ["vqa", "caption", "refexp", "depth"]


@pytest.fixture
def mixed(modalities, tiny_config):
    """A collated batch of four tasks' examples (targets of 2 to 17 tokens), and its collator."""
    tasks = {name: TASKS.get(name) for name in TASK_NAMES}
    examples = [ex for name in TASK_NAMES for ex in world_examples(tasks[name], "train", 3, tiny_config.image_size)]
    collate = Collator(tasks, modalities, tiny_config.max_text_length, tiny_config.max_target_length)
    return collate, examples


def patches(config) -> int:
    return (config.image_size // config.patch_size) ** 2


def alone_logits(model, collate, example):
    """An example's logits run as a batch of one: no padding, no other example."""
    return model(**collate([example])).logits[0]


def test_rows_fit_their_room_and_hold_every_example_once():
    encoder, decoder = [20, 20, 30, 10, 5], [3, 17, 9, 9, 2]
    rows = pack_rows(encoder, decoder, encoder_room=40, decoder_room=20)
    assert sorted(n for row in rows for n in row) == [0, 1, 2, 3, 4]
    for row in rows:
        assert sum(encoder[n] for n in row) <= 40 and sum(decoder[n] for n in row) <= 20
    assert len(rows) < 5
    assert pack_rows([50], [3], 40, 20) == [[0]]    # longer than the room: a row alone


def test_packed_logits_and_loss_equal_each_example_alone(mixed, tiny_config):
    collate, examples = mixed
    torch.manual_seed(0)
    model = UnioModel(tiny_config).eval()
    batch = collate(examples)
    p = patches(tiny_config)
    packed = pack(batch, p, encoder_room=3 * (p + batch["input_ids"].shape[1]), decoder_room=40)
    example_of = packed.pop("decoder_example")
    assert len(packed["labels"]) < len(examples)        # several examples share a row
    out = model(**packed)
    for n, example in enumerate(examples):
        alone = alone_logits(model, collate, example)
        rows, cols = (example_of == n).nonzero(as_tuple=True)
        assert len(cols) == len(alone)                  # every target token, EOS included, once
        torch.testing.assert_close(out.logits[rows, cols], alone, atol=2e-5, rtol=1e-4)
    unpacked = model(**batch)
    torch.testing.assert_close(out.loss, unpacked.loss, atol=1e-5, rtol=1e-5)   # one mean over the same tokens


def test_packed_example_losses_equal_unpacked(mixed, tiny_config):
    collate, examples = mixed
    torch.manual_seed(1)
    model = UnioModel(tiny_config).eval()
    batch = collate(examples)
    packed = pack(batch, patches(tiny_config), decoder_room=40)
    example_of = packed.pop("decoder_example")
    per_example = example_losses(model(**packed).logits, packed["labels"], example_of, len(examples))
    torch.testing.assert_close(per_example, example_losses(model(**batch).logits, batch["labels"]), atol=1e-5, rtol=1e-5)


def test_packed_gradients_equal_unpacked(mixed, tiny_config):
    collate, examples = mixed
    grads = []
    for packing in (False, True):
        torch.manual_seed(2)
        model = UnioModel(tiny_config)
        model.config.dropout = 0.0
        batch = collate(examples)
        if packing:
            batch = pack(batch, patches(tiny_config), decoder_room=40)
            batch.pop("decoder_example")
        model(**batch).loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    torch.testing.assert_close(grads[1], grads[0], atol=1e-5, rtol=1e-3)


def test_prompts_without_images_pack_without_patches(mixed, tiny_config):
    """An imageless prompt (image_mask False) brings its text alone into the row."""
    collate, examples = mixed
    torch.manual_seed(0)
    model = UnioModel(tiny_config).eval()
    blind = copy.copy(examples[1])
    blind.image = None
    batch = collate([examples[0], blind, *examples[2:4]])
    packed = pack(batch, patches(tiny_config), decoder_room=40)
    example_of = packed.pop("decoder_example")
    assert (packed["encoder_index"] >= 0).sum() == 3 * patches(tiny_config) + batch["attention_mask"].sum()
    out = model(**packed).logits
    rows, cols = (example_of == 1).nonzero(as_tuple=True)
    torch.testing.assert_close(out[rows, cols], alone_logits(model, collate, blind), atol=2e-5, rtol=1e-4)


def test_padding_tokens_are_ignored_by_the_loss(mixed, tiny_config):
    collate, examples = mixed
    packed = pack(collate(examples), patches(tiny_config), decoder_room=40)
    padding = packed["decoder_segment_ids"] == 0
    assert (packed["labels"][padding] == IGNORE).all() and (packed["decoder_example"][padding] == -1).all()


def test_a_packed_run_trains_every_task_from_the_same_examples(modalities, tmp_path):
    """--packing: each batch holds the examples bucketing would draw (in drawn order), packed; the
    run's loss falls and each task's loss is logged."""
    from unio.train.trainer import Trainer, TrainOptions
    modalities.save(tmp_path / "tokenizers")
    options = dict(tasks="vqa,refexp,depth", preset="toy", steps=40, batch_size=8, lr=3e-3, warmup=5,
                   tokenizers=str(tmp_path / "tokenizers"), compile=False, progress=False, data_workers=0,
                   log_every=1, precision="fp32", spatial_first=0)
    runs = {}
    for packing in (None, "auto"):
        trainer = Trainer(TrainOptions(**options, packing=packing, out=str(tmp_path / f"run-{packing}")))
        last = trainer.train()
        runs[packing] = trainer
        assert set(last["task_loss"]) <= {"vqa", "refexp", "depth"}
    bucketed, packed = runs[None].stream, runs["auto"].stream
    for step in range(4):   # one megabatch: the same examples, by another layout
        a, b = bucketed.batch(step), packed.batch(step)
        assert "decoder_example" in b and len(b["labels"]) < len(b["task_index"])
    tasks = lambda stream: sorted(int(t) for s in range(4) for t in stream.batch(s)["task_index"])
    assert tasks(bucketed) == tasks(packed)
    rows = [json.loads(line) for line in open(tmp_path / "run-auto" / "metrics.jsonl")]
    curve = [r["loss"] for r in rows if "loss" in r]
    assert sum(curve[-8:]) / 8 < 0.8 * sum(curve[:8]) / 8
    assert set().union(*(r["task_loss"] for r in rows if "task_loss" in r)) == {"vqa", "refexp", "depth"}


@pytest.mark.parametrize("options, message", [
    (dict(packing="64"), "--packing takes auto or ENCODER,DECODER"),
    (dict(packing="auto", loss_mean="task"), "--packing weighs every target token alike"),
    (dict(packing="auto", decoder_only=("vqa",)), "--packing weighs every target token alike"),
])
def test_packing_refuses_what_it_cannot_do(options, message):
    from unio.train.trainer import Trainer, TrainOptions
    with pytest.raises(ValueError, match=message):
        Trainer(TrainOptions(tasks="vqa,refexp", **options))


def test_rooms_too_small_for_the_longest_example_are_refused(tiny_config):
    from unio.data.packing import Packing
    with pytest.raises(ValueError, match="a row must hold the longest example"):
        Packing.parse("80,20", tiny_config)
    assert Packing.parse("auto", tiny_config).per_row == 2


def test_packed_rows_route_attribute_experts_as_each_example_alone(mixed, tiny_config, modalities):
    """Attribute-routed MoE layers (no capacity: nothing dropped) give packed examples their own logits."""
    collate, examples = mixed
    tiny_config.moe_every, tiny_config.moe_routing = 2, "attribute"
    tiny_config.vocab_range_starts = sorted({0, *(r.start for r in modalities.vocab.ranges.values())})
    torch.manual_seed(0)
    model = UnioModel(tiny_config).eval()
    packed = pack(collate(examples), patches(tiny_config), decoder_room=40)
    example_of = packed.pop("decoder_example")
    out = model(**packed).logits
    for n in (0, 5, 11):
        rows, cols = (example_of == n).nonzero(as_tuple=True)
        torch.testing.assert_close(out[rows, cols], alone_logits(model, collate, examples[n]), atol=2e-5, rtol=1e-4)
