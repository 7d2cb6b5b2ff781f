"""Region marks (config.region_marks): a prompt's region boxes marked on the patches they cover, beside
their location tokens; reaching the encoder in training, packed rows, ranking and generate()."""
import dataclasses

import numpy as np
import pytest
import torch
from conftest import world_examples

from unio.data.batching import Collator
from unio.data.encoding import encode_inputs
from unio.data.packing import pack
from unio.model import UnioConfig, UnioModel
from unio.model.decoding import generate_constrained, score_candidates
from unio.model.transformer import box_coverage
from unio.registries import TASKS

REGION_TASKS = ["relation", "region_caption"]


def marked_config(tiny_config, marks: int = 2) -> UnioConfig:
    return UnioConfig(**{**tiny_config.to_dict(), "region_marks": marks})


def marked_model(tiny_config, seed: int = 0) -> UnioModel:
    """A tiny model with random (non-zero) marks, as a trained one has."""
    torch.manual_seed(seed)
    model = UnioModel(marked_config(tiny_config)).eval()
    with torch.no_grad():
        model.encoder.region_marks.normal_()
    return model


@pytest.fixture
def region_examples(tiny_config):
    return [ex for name in REGION_TASKS for ex in world_examples(TASKS.get(name), "train", 3, tiny_config.image_size)]


def test_coverage_is_the_share_of_each_patch_a_box_covers():
    boxes = torch.tensor([[[0.0, 0.0, 0.25, 0.25], [0.125, 0.5, 0.5, 1.0], [0.0, 0.0, 1.0, 1.0], [0, 0, 0, 0]]])
    cover = box_coverage(boxes, 4).view(4, 4, 4)                       # (K, rows, cols)
    assert cover[0, 0, 0] == 1 and cover[0].sum() == 1                 # one whole patch
    assert cover[1, 2:, 0].tolist() == [0.5, 0.5] and cover[1, 2:, 1].tolist() == [1, 1] and cover[1, :2].sum() == 0
    assert torch.all(cover[2] == 1) and torch.all(cover[3] == 0)       # the whole image; a missing box


def test_inputs_carry_regions_as_fractions_of_the_image(modalities, region_examples, tiny_config):
    inputs = encode_inputs(region_examples, modalities, tiny_config.max_text_length)
    boxes = inputs["region_boxes"]
    assert boxes.shape == (len(region_examples), 2, 4)               # relation's two boxes; K = the most
    size = tiny_config.image_size
    for ex, row in zip(region_examples, boxes):
        given = np.array(ex.region if ex.task == "relation" else [ex.region], dtype=float) / size
        assert np.allclose(row[: len(given)].numpy(), given, atol=1e-6)
        assert torch.all(row[len(given):] == 0)                       # region_caption's second box: none
    vqa = world_examples(TASKS.get("vqa"), "train", 2, size)
    assert "region_boxes" not in encode_inputs(vqa, modalities, tiny_config.max_text_length)
    text_only = dataclasses.replace(vqa[0], image=None)
    mixed = encode_inputs([text_only, region_examples[0]], modalities, tiny_config.max_text_length)
    assert mixed["region_boxes"][0].abs().sum() == 0 and mixed["region_boxes"][1].abs().sum() > 0


def test_marks_start_at_zero_and_draw_nothing(tiny_config):
    torch.manual_seed(0)
    plain = UnioModel(tiny_config).state_dict()
    torch.manual_seed(0)
    marked = UnioModel(marked_config(tiny_config)).state_dict()
    assert torch.all(marked.pop("encoder.region_marks") == 0)
    assert plain.keys() == marked.keys() and all(torch.equal(plain[k], marked[k]) for k in plain)


def test_marks_change_only_the_patches_the_boxes_cover(modalities, region_examples, tiny_config):
    model = marked_model(tiny_config)
    inputs = encode_inputs(region_examples[:1], modalities, tiny_config.max_text_length)
    encoder = model.encoder
    with torch.no_grad():
        plain = encoder.embed_inputs(inputs["pixel_values"], inputs["input_ids"])
        marked = encoder.embed_inputs(inputs["pixel_values"], inputs["input_ids"], inputs["region_boxes"])
    changed = (marked - plain).abs().sum(-1)[0] > 0
    covered = box_coverage(inputs["region_boxes"], tiny_config.image_size // tiny_config.patch_size).sum(1)[0] > 0
    assert covered.any() and not covered.all()
    assert torch.equal(changed[: len(covered)], covered) and not changed[len(covered):].any()   # text untouched


def test_a_model_without_marks_ignores_the_boxes(modalities, region_examples, tiny_config):
    torch.manual_seed(0)
    model = UnioModel(tiny_config).eval()
    collate = Collator({n: TASKS.get(n) for n in REGION_TASKS}, modalities, tiny_config.max_text_length,
                       tiny_config.max_target_length)
    batch = collate(region_examples)
    without = {k: v for k, v in batch.items() if k != "region_boxes"}
    torch.testing.assert_close(model(**batch).logits, model(**without).logits, atol=0, rtol=0)


def test_more_boxes_than_marks_are_refused(modalities, region_examples, tiny_config):
    model = UnioModel(marked_config(tiny_config, marks=1)).eval()
    inputs = encode_inputs(region_examples[:1], modalities, tiny_config.max_text_length)
    with pytest.raises(ValueError, match="region of 2 boxes.*marks at most 1"):
        model.get_encoder()(**inputs)
    with pytest.raises(ValueError, match="region_marks must be a whole number"):
        marked_config(tiny_config, marks=-1)


def test_packed_rows_mark_each_example_as_alone(modalities, region_examples, tiny_config):
    model = marked_model(tiny_config)
    collate = Collator({n: TASKS.get(n) for n in REGION_TASKS}, modalities, tiny_config.max_text_length,
                       tiny_config.max_target_length)
    batch = collate(region_examples)
    p = (tiny_config.image_size // tiny_config.patch_size) ** 2
    packed = pack(batch, p, encoder_room=3 * (p + batch["input_ids"].shape[1]), decoder_room=40)
    example_of = packed.pop("decoder_example")
    assert len(packed["labels"]) < len(region_examples)
    out = model(**packed)
    for n, example in enumerate(region_examples):
        alone = model(**collate([example])).logits[0]
        rows, cols = (example_of == n).nonzero(as_tuple=True)
        torch.testing.assert_close(out.logits[rows, cols], alone, atol=2e-5, rtol=1e-4)


def test_ranking_and_generation_read_the_marks(modalities, region_examples, tiny_config, monkeypatch):
    """score_candidates (relation's ranked predicates) and generate() (region captions) both pass the
    boxes to the encoder: their answers' scores change with the marks."""
    model = marked_model(tiny_config)
    seen = []
    original = type(model.encoder).marks
    monkeypatch.setattr(type(model.encoder), "marks", lambda self, boxes: seen.append(boxes) or original(self, boxes))
    relation = encode_inputs(region_examples[:1], modalities, tiny_config.max_text_length)
    candidates = [modalities.text_ids(p) for p in ("left of", "same color as")]
    scores = score_candidates(model, relation, candidates)
    assert len(seen) == 1 and torch.equal(seen[0], relation["region_boxes"])
    caption = encode_inputs(region_examples[3:4], modalities, tiny_config.max_text_length)
    grammar = TASKS.get("region_caption").grammar(modalities, tiny_config.image_size)
    out = generate_constrained(model, caption, grammar, modalities.vocab, output_scores=True,
                               return_dict_in_generate=True, max_new_tokens=3)
    assert len(seen) == 2 and torch.equal(seen[1], caption["region_boxes"])   # the encoder, once
    with torch.no_grad():
        model.encoder.region_marks.zero_()
    assert not torch.allclose(score_candidates(model, relation, candidates), scores)
    again = generate_constrained(model, caption, grammar, modalities.vocab, output_scores=True,
                                 return_dict_in_generate=True, max_new_tokens=3)
    assert not torch.allclose(again.scores[0], out.scores[0])


def test_every_image_batch_reaches_the_marks_and_the_gradient_probe_runs(tiny_config, modalities):
    """A batch without regions still gives `region_marks` a (zero) gradient, so DeepSpeed's ranks agree on
    which parameters have one; the gradient probe compares a region task, an image task and a text-only task
    (which reaches neither the stem nor the marks) on vectors of one length."""
    from unio.data.mixture import Mixture
    from unio.data.sources import build_source
    from unio.train.gradients import PARTS, GradientProbe
    names = ("relation", "vqa", "entailment")
    tasks = {t: TASKS.get(t) for t in names}
    collate = Collator(tasks, modalities, tiny_config.max_text_length, tiny_config.max_target_length)
    model = UnioModel(marked_config(tiny_config))
    vqa = world_examples(TASKS.get("vqa"), "train", 2, tiny_config.image_size)
    model(**collate(vqa)).loss.backward()
    assert model.encoder.region_marks.grad is not None and torch.all(model.encoder.region_marks.grad == 0)
    model.zero_grad(set_to_none=True)
    mixture = Mixture(tasks, {"world": build_source("world", None, 32)}, {(t, "world"): 1.0 for t in names},
                      resolution=tiny_config.image_size)
    found = GradientProbe(mixture, collate, size=2).measure(model, lambda m, b: m(**b))
    assert set(found["cosine"]) == {"relation|vqa", "relation|entailment", "vqa|entailment"}
    assert all(set(c) == set(PARTS) and all(-1 <= v <= 1 for v in c.values()) for c in found["cosine"].values())


def test_marks_added_to_a_checkpoint_saved_without_them_start_at_zero(tiny_config, tmp_path):
    torch.manual_seed(0)
    UnioModel(tiny_config).save_pretrained(tmp_path / "plain")
    grown = UnioModel.from_pretrained(tmp_path / "plain", region_marks=2)
    assert grown.config.region_marks == 2 and torch.all(grown.encoder.region_marks == 0)
    with torch.no_grad():                      # the missing key starts as empty memory: _init_weights zeros it
        grown.encoder.region_marks.fill_(1.0)
    grown._init_weights(grown.encoder)
    assert torch.all(grown.encoder.region_marks == 0)
    marked_model(tiny_config).save_pretrained(tmp_path / "marked")
    kept = UnioModel.from_pretrained(tmp_path / "marked")
    assert torch.equal(kept.encoder.region_marks, marked_model(tiny_config).encoder.region_marks)


def test_too_few_marks_or_a_flag_are_refused_before_training(tiny_config):
    from unio.train.builders import check_region_marks
    with pytest.raises(ValueError, match="region_marks must be a whole number"):
        marked_config(tiny_config, marks=True)
    tasks = {n: TASKS.get(n) for n in ("vqa", "relation")}
    with pytest.raises(ValueError, match="region_marks=1, but relation reads 2 boxes.*region_marks=2"):
        check_region_marks(marked_config(tiny_config, marks=1), tasks)
    check_region_marks(marked_config(tiny_config, marks=2), tasks)
    check_region_marks(tiny_config, tasks)                           # no marks: the boxes are tokens alone
