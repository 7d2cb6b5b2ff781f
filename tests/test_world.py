"""The embedded world: determinism, splits, unique referring expressions, truthful answers."""
import ast
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from unio.data.world import COLORS, SHAPES, World, to_hf_dataset
from unio.data.world.language import NUMBER_WORDS


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


def test_hf_dataset_is_a_source_as_it_is():
    """The world exported as a `datasets.Dataset` has the record schema's columns: every built-in task
    makes the same example from its rows as from the world source's records."""
    from unio.data.records import make_example
    from unio.data.sources import as_source, build_source
    from unio.registries import TASKS
    ds = to_hf_dataset("test", n=3)
    row = ds[1]
    assert row["id"] == "world/test/1" and row["image"].size == (64, 64)
    assert np.allclose(np.asarray(row["depth"]), World("test")[1].depth)
    assert row["captions"] == [World("test")[1].caption]
    exported, world = as_source(ds, "exported").split("train"), build_source("world", None, 64).split("test")
    for name in ("vqa", "caption", "refexp", "depth"):
        a, b = (make_example(TASKS.get(name), r, 64, np.random.default_rng(5)) for r in (exported[1], world[1]))
        assert a.prompt == b.prompt and np.array_equal(a.image, b.image), name
        same = a.target == b.target if isinstance(a.target, str) else np.allclose(a.target, b.target)
        assert same, (name, a.target, b.target)


WORLD_DIR = pathlib.Path(__file__).resolve().parents[1] / "unio" / "world"


def _world_imports(path: pathlib.Path):
    """(modules of unio.data.world imported at the top of `path`, unio imports made inside functions)."""
    tree = ast.parse(path.read_text())
    top, nested = set(), []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith("unio"):
            continue
        if node not in tree.body:
            nested.append(node.module)
        elif node.module == "unio.data.world":
            top |= {alias.name for alias in node.names if (WORLD_DIR / f"{alias.name}.py").exists()}
        elif node.module.startswith("unio.data.world."):
            top.add(node.module.split(".")[2])
    return top, nested


def test_world_modules_import_without_cycles():
    graph = {}
    for path in WORLD_DIR.glob("*.py"):
        if path.stem == "__init__":
            continue
        graph[path.stem], nested = _world_imports(path)
        assert not nested, f"{path.name} imports {nested} inside a function"

    def reaches(start, target, seen=()):
        return any(n == target or (n not in seen and reaches(n, target, seen + (n,))) for n in graph.get(start, ()))
    cycles = [m for m in graph if reaches(m, m)]
    assert not cycles, f"import cycle through {cycles}: {graph}"


def test_render_imports_first():
    code = "import unio.data.world.render; from unio.data.world import COLORS, MAX_DEPTH, SHAPES, SIZES, SPLITS, World"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=WORLD_DIR.parents[1])


def _painted_anew(objects, res, rng):
    """The world's painting as v0.2 did it, a new image and depth map an object (np.where): the reference for draw."""
    from unio.data.world import render
    from unio.data.world.constants import HORIZON
    rows = np.arange(res, dtype=np.float32)[:, None].repeat(res, 1)
    t = (rows / res)[..., None]
    sky, shade = np.array([150, 190, 235], np.float32) * (1.05 - 0.3 * t), 0.75 + 0.35 * t
    ground = np.array([120, 115, 100], np.float32) * rng.uniform(0.9, 1.1)
    image, depth = np.where((rows + 0.5 > HORIZON * res)[..., None], ground * shade, sky), render.ground_depth(rows, res)
    for i in sorted(range(len(objects)), key=lambda i: -objects[i].depth):
        inside, _ = render._shape_mask(objects[i], res)
        image = np.where(inside[..., None], render._shade(objects[i], inside, res), image)
        depth = np.where(inside, np.float32(objects[i].depth), depth)
    return np.clip(image, 0, 255).astype(np.uint8), depth.astype(np.float32)


def test_scenes_painted_in_place_equal_scenes_painted_anew():
    """draw() paints each object into one image in place (cheaper for the data worker): bit for bit the
    image and depth of painting a new array an object, at several sizes."""
    from unio.data.world import render
    for res in (16, 32, 64, 96):
        world = World("train", resolution=res)
        for index in range(15):
            rng = world.rng(index)
            objects = world._sample_objects(rng)
            twin = np.random.default_rng()
            twin.bit_generator.state = rng.bit_generator.state
            image, depth, _ = render.draw(objects, res, rng)
            want_image, want_depth = _painted_anew(objects, res, twin)
            assert np.array_equal(image, want_image) and np.array_equal(depth, want_depth), (res, index)
