"""A codebook per image modality in one vocabulary: each built from its own kind of target, only when a task
of the corpus answers with that kind, saved and loaded under its own name, and used by the tasks of its kind."""
from pathlib import Path

import pytest
import torch
from conftest import ROOT

from unio.data.mixture import DEFAULT_SOURCE
from unio.data.sources import build_source
from unio.kit.answers import image_tokenizer
from unio.modalities import Modalities
from unio.registries import TASKS, TOKENIZERS
from unio.train.tokenizer_setup import Corpus, train_modalities

CODEBOOKS = {"text": {"vocab_size": 300}, "coordinates": {"num_bins": 16},
             **{f"{kind}_codes": {"plugin": "vq", "steps": 2, "hidden": 16, "modality": kind}
                for kind in ("rgb", "depth", "mask")}}


@pytest.fixture(scope="module")
def world():
    return {DEFAULT_SOURCE: build_source(DEFAULT_SOURCE, None, 32)}


def build(tasks, world, directory):
    corpus = Corpus([(t, DEFAULT_SOURCE) for t in tasks], world, 32, texts_per_pair=20)
    return train_modalities({"tokenizers": CODEBOOKS}, corpus, directory, progress=False)


def test_each_kind_of_image_gets_its_codebook_and_keeps_it_through_save_and_load(world, tmp_path):
    mods = build(["depth", "segment", "generate"], world, tmp_path / "build")
    assert {image_tokenizer(mods, k) for k in ("rgb", "depth", "mask")} == {"rgb_codes", "depth_codes", "mask_codes"}
    assert image_tokenizer(mods, "depth") == "depth_codes"
    mods.save(tmp_path / "saved")
    loaded = Modalities.load(tmp_path / "saved")
    assert loaded.plugins["mask_codes"] == "vq" and image_tokenizer(loaded, "mask") == "mask_codes"
    assert [r.name for r in loaded.vocab.ranges.values()] == [r.name for r in mods.vocab.ranges.values()]


def test_only_codebooks_of_exact_colours_are_checked_for_a_lost_colour(world, tmp_path, monkeypatch):
    """Masks (and class maps) are checked colour by colour after training; depth and RGB images are not."""
    import sys
    module = sys.modules[TOKENIZERS.get("vq").__module__]
    checked = []
    monkeypatch.setattr(module, "keep_every_colour", lambda model, images, **kw: checked.append(model.modality) or model)
    build(["depth", "segment", "generate"], world, tmp_path)
    assert checked == ["mask"]


def test_a_codebook_is_built_only_for_the_images_the_corpus_answers_with(world, tmp_path):
    mods = build(["vqa", "depth"], world, tmp_path)
    assert set(mods.tokenizers) == {"text", "coordinates", "depth_codes"}
    with pytest.raises(ValueError, match="needs a codebook for rgb.*depth_codes \\(depth\\)"):
        image_tokenizer(mods, "rgb")


def test_a_codebook_learns_from_its_kind_alone(world):
    corpus = Corpus([(t, DEFAULT_SOURCE) for t in ("depth", "generate")], world, 32, texts_per_pair=20)
    rgb, depth = corpus.images(kind="rgb"), corpus.images(kind="depth")
    assert {next(rgb).shape[0] for _ in range(6)} == {3} and {next(depth).shape[0] for _ in range(6)} == {1}
    with pytest.raises(ValueError, match="answers with mask images"):
        next(corpus.images(kind="mask"))


def test_tasks_answer_in_the_codes_of_their_kind(world, tmp_path):
    import numpy as np

    from unio.data.records import make_example
    mods = build(["depth", "segment", "generate"], world, tmp_path)
    records = world[DEFAULT_SOURCE].split("train")
    for task, codebook in (("depth", "depth_codes"), ("segment", "mask_codes"), ("generate", "rgb_codes")):
        task = TASKS.get(task)
        example = make_example(task, records[0], 32, np.random.default_rng(0))
        ids = list(task.targets([example], mods)[0])
        which = {name for i in ids for name in ("rgb_codes", "depth_codes", "mask_codes")
                 if mods.vocab.range(name).start <= i < mods.vocab.range(name).stop}
        assert which == {codebook}


def test_one_shared_codebook_serves_every_kind(modalities):
    """A model of one codebook of no declared modality (v0.2's `vq`) answers every kind with it."""
    assert {image_tokenizer(modalities, k) for k in ("rgb", "depth", "mask", None)} == {"vq"}
    assert "modality" not in TOKENIZERS.get("vq")(hidden=16).config    # its signature is what it was
    assert torch.is_tensor(modalities["vq"].encode(torch.rand(1, 32, 32)))


def test_check_codebook_names_what_a_set_loses_and_fixes_it_in_place(world, tmp_path, capsys):
    """scripts/check_codebook.py on a toy set: the mask codebook checked (depth's not), and --fix saves it again."""
    import runpy
    build(["depth", "segment"], world, tmp_path / "build").save(tmp_path / "set")
    capsys.readouterr()   # what the build printed
    main = runpy.run_path(str(Path(ROOT) / "scripts" / "check_codebook.py"))["main"]
    before = (tmp_path / "set" / "mask_codes" / "model.safetensors").read_bytes()
    status = main([str(tmp_path / "set"), "--resolution", "32"])
    out = capsys.readouterr().out
    assert out.startswith("mask_codes (mask): ") and "depth_codes" not in out
    assert status == (1 if "lost colours" in out else 0)
    status = main([str(tmp_path / "set"), "--resolution", "32", "--fix", "--steps", "30"])
    out = capsys.readouterr().out
    after = (tmp_path / "set" / "mask_codes" / "model.safetensors").read_bytes()
    assert ("saved" in out) == (after != before) == ("lost colours" in out)
    with pytest.raises(SystemExit, match="no tokenizer set at"):
        main([str(tmp_path / "none")])
