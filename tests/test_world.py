"""The embedded world: determinism, splits, unique referring expressions, truthful answers."""
import numpy as np
import pytest

from unio.world import COLORS, SHAPES, World, to_hf_dataset
from unio.world.language import NUMBER_WORDS


def test_same_seed_same_bytes():
    a, b = World("train")[5], World("train")[5]
    assert a.image.tobytes() == b.image.tobytes() and a.depth.tobytes() == b.depth.tobytes()
    assert a.caption == b.caption and a.questions == b.questions


def test_splits_are_disjoint():
    def key(scene):
        return scene.image.tobytes()
    train = {key(World("train")[i]) for i in range(100)}
    test = {key(World("test")[i]) for i in range(100)}
    val = {key(World("validation")[i]) for i in range(100)}
    assert not train & test and not train & val and not val & test


def test_ground_truth_is_complete_and_consistent():
    world = World("train", max_objects=5)
    for scene in world.stream(0, 60):
        assert scene.image.shape == (64, 64, 3) and scene.image.dtype == np.uint8
        assert scene.depth.shape == (64, 64) and (scene.depth > 0).all()
        assert 1 <= len(scene.objects) <= 5
        for obj in scene.objects:
            x1, y1, x2, y2 = obj.box
            assert obj.mask[y1:y2, x1:x2].any() and obj.mask.sum() == obj.mask[y1:y2, x1:x2].sum()
            assert obj.shape in SHAPES and obj.color in COLORS
            assert np.allclose(scene.depth[obj.mask], obj.depth)  # visible pixels carry the object's depth
            assert len(obj.keypoints) >= 4
        assert scene.refexps, "every scene has at least one referring expression"


def test_every_referring_expression_is_unique():
    for scene in World("test", max_objects=6).stream(0, 80):
        texts = [t for t, _ in scene.refexps]
        assert len(texts) == len(set(texts))
        for text, i in scene.refexps:
            words = text.split()
            if "leftmost" in words or "rightmost" in words:
                continue
            matching = [o for o in scene.objects if all(w in (o.size, o.color, o.shape, "the", "object") for w in words)]
            assert matching == [scene.objects[i]], text


def test_answers_agree_with_objects():
    for scene in World("validation").stream(0, 80):
        for question, answer, kind in scene.questions:
            if kind == "count" and question == "How many objects are there?":
                assert answer == NUMBER_WORDS[len(scene.objects)]
            if kind == "exist":
                colour, shape = question[len("Is there a "):-1].split()
                truth = any(o.color == colour and o.shape == shape for o in scene.objects)
                assert answer == ("yes" if truth else "no")
            if kind == "color":
                assert answer in COLORS


def test_nearer_objects_occlude():
    for scene in World("train", max_objects=6).stream(0, 40):
        for obj in scene.objects:
            assert (scene.depth[obj.mask] <= obj.depth + 1e-5).all()


def test_high_resolution_renders():
    scene = World("train", resolution=256)[0]
    assert scene.image.shape == (256, 256, 3)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown split"):
        World("dev")
    with pytest.raises(ValueError, match="resolution"):
        World("train", resolution=4)


def test_hf_dataset_features():
    ds = to_hf_dataset("test", n=3)
    row = ds[1]
    assert row["index"] == 1 and row["image"].size == (64, 64)
    assert np.allclose(np.asarray(row["depth"]), World("test")[1].depth)
    assert row["caption"] == World("test")[1].caption
