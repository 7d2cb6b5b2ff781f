"""The world's relations between object pairs and its entailment pairs: true to the layout, labelled by
construction, and drawn without touching the scene's random stream (existing records unchanged)."""
import pickle
import re

import numpy as np

from unio.data.world import SIZES, World, WorldObject
from unio.data.world import relations as world_relations
from unio.data.world import scene as world_scene
from unio.data.world.relations import DEPTH_GAP, NUMBER_WORDS, entailment_pairs, relations
from unio.data.world.scene import Scene
from unio.data.world.source import scene_record


def test_relations_by_hand():
    cube = WorldObject("cube", "red", "large", depth=3.0, x=0.2)
    sphere = WorldObject("sphere", "red", "small", depth=5.0, x=0.6)
    cone = WorldObject("cone", "blue", "small", depth=5.5, x=0.4)
    found = set(relations([cube, sphere, cone]))
    assert {p for i, p, j in found if (i, j) == (0, 1)} == {"left of", "in front of", "larger than", "same color as"}
    assert {p for i, p, j in found if (i, j) == (1, 0)} == {"right of", "behind", "smaller than", "same color as"}
    # half a metre apart in depth: side by side, neither in front of nor behind the other
    assert {p for i, p, j in found if (i, j) == (2, 1)} == {"left of"}
    assert {p for i, p, j in found if (i, j) == (1, 2)} == {"right of"}


def test_relations_agree_with_positions_and_sizes():
    for scene in World("test", resolution=32).stream(0, 40):
        objects, found = scene.objects, set(map(tuple, scene_record(scene)["relations"]))
        for i, a in enumerate(objects):
            for j, b in enumerate(objects):
                if i == j:
                    continue
                assert ((i, "left of", j) in found) == (a.x < b.x) and ((i, "right of", j) in found) == (a.x > b.x)
                assert ((i, "in front of", j) in found) == (b.depth - a.depth > DEPTH_GAP)
                assert ((i, "behind", j) in found) == (a.depth - b.depth > DEPTH_GAP)
                assert ((i, "larger than", j) in found) == (SIZES[a.size] > SIZES[b.size])
                assert ((i, "smaller than", j) in found) == (SIZES[a.size] < SIZES[b.size])
                assert ((i, "same color as", j) in found) == (a.color == b.color)
                assert ((i, "same shape as", j) in found) == (a.shape == b.shape)
                if (i, "left of", j) in found and (i, "in front of", j) not in found and (j, "in front of", i) not in found:
                    assert a.box[0] + a.box[2] < b.box[0] + b.box[2] + 2   # visible boxes agree, up to occlusion


def judge(premise: str, hypothesis: str) -> str:
    """An independent reading of a hypothesis against a premise that names objects, closed ("only ...":
    nothing else is there) or open (more may be)."""
    closed = premise.startswith("only ")
    named = [set(item.split()[1:]) for item in re.split(r", | and ", premise.removeprefix("only ").rstrip("."))]

    def fits(phrase):
        return any(set(phrase.split()) - {"object"} <= attributes for attributes in named)
    if m := re.fullmatch(r"There is no (.+)\.", hypothesis):
        true, decided = not fits(m.group(1)), fits(m.group(1)) or closed
    elif m := re.fullmatch(r"There is an? (.+)\.", hypothesis):
        true = fits(m.group(1))
        decided = true or closed
    elif m := re.fullmatch(r"There are at least (\w+) objects\.", hypothesis):
        true = NUMBER_WORDS.index(m.group(1)) <= len(named)
        decided = true or closed
    else:
        m = re.fullmatch(r"There are fewer than (\w+) objects\.", hypothesis)
        true = NUMBER_WORDS.index(m.group(1)) > len(named)
        decided = not true or closed
    return ("entailment" if true else "contradiction") if decided else "neutral"


def test_entailment_labels_hold_by_construction():
    objects = [WorldObject("cube", "red", "large", 3.0, 0.2), WorldObject("sphere", "blue", "small", 6.0, 0.7)]
    scene = Scene("train", 5, None, None, objects, caption="a large red cube and a small blue sphere.")
    pairs = entailment_pairs(scene)
    assert [label for _, _, label in pairs] == ["entailment", "neutral", "contradiction"]
    assert pairs == entailment_pairs(scene)                                                     # deterministic
    open_, closed = "a large red cube.", "only a large red cube and a small blue sphere."
    assert judge(open_, "There is a red cube.") == "entailment" and judge(open_, "There is no cube.") == "contradiction"
    assert judge(open_, "There is a green cube.") == "neutral" and judge(closed, "There is a green cube.") == "contradiction"
    assert judge(closed, "There is no small object.") == "contradiction" and judge(closed, "There is no cone.") == "entailment"
    assert judge(open_, "There are at least two objects.") == "neutral"
    assert judge(closed, "There are fewer than three objects.") == "entailment"
    forms, labels_of = set(), {}
    for scene in World("train", resolution=32).stream(0, 300):
        names = {o.name for o in scene.objects}
        for premise, hypothesis, label in scene_record(scene)["entailment"]:
            assert judge(premise, hypothesis) == label, (premise, hypothesis, label)
            listed = re.split(r", | and ", premise.removeprefix("only ").rstrip("."))
            assert {item.removeprefix("a ").removeprefix("an ") for item in listed} <= names   # true of the scene
            form = " ".join(hypothesis.split()[1:3]).replace("an", "a")
            forms.add(form)
            labels_of.setdefault(form, set()).add(label)
    # every form under every label: the hypothesis alone does not give the label away
    assert forms == {"is a", "is no", "are at", "are fewer"} and all(len(v) == 3 for v in labels_of.values())


def test_existing_world_records_are_unchanged(monkeypatch):
    """Relations and entailment pairs draw nothing from the scene's stream: with them switched off, every
    other field of every record is the same."""
    world = World("validation", resolution=32)
    with_them = [scene_record(world[i]) for i in range(12)]
    monkeypatch.setattr(world_scene, "describe_relations", lambda scene: None)
    without = [scene_record(world[i]) for i in range(12)]
    for a, b in zip(with_them, without):
        assert a.keys() == b.keys() and b["relations"] == [] and any(r["relations"] for r in with_them)
        assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["depth"], b["depth"])
        assert (a["captions"], a["questions"], a["refexps"]) == (b["captions"], b["questions"], b["refexps"])
        assert [o["box"] for o in a["objects"]] == [o["box"] for o in b["objects"]]


def test_entailment_pairs_are_drawn_when_first_read_and_kept(monkeypatch):
    """A record's entailment pairs (a tenth of a scene's making) are drawn the first time a task reads them, once:
    the same pairs as drawn at once, so records that no entailment task reads cost nothing for them."""
    drawn, real = [], entailment_pairs
    monkeypatch.setattr(world_relations, "entailment_pairs", lambda scene: drawn.append(scene.index) or real(scene))
    record = scene_record(World("train", resolution=32)[3])
    assert drawn == []
    pairs = record["entailment"]
    assert len(pairs) == 3 and drawn == [3]
    assert list(pairs) == [list(p) for p in real(World("train", resolution=32)[3])] and drawn == [3]
    assert pickle.loads(pickle.dumps(record))["entailment"] == pairs and pairs[-1][2] == "contradiction"
    monkeypatch.undo()                       # an unread record pickles with the module's own function inside
    unread = scene_record(World("train", resolution=32)[4])
    assert pickle.loads(pickle.dumps(unread))["entailment"] == [list(p) for p in real(World("train", resolution=32)[4])]
