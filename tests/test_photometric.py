"""Photometric augmentation keeps answers and padding; the robustness perturbations."""
import numpy as np
import pytest
from conftest import world_examples

from unio.data.mixture import Mixture
from unio.data.photometric import PERTURBATIONS, SHARE, augment, perturb, tolerated
from unio.data.sources import build_source
from unio.registries import TASKS


def test_augment_changes_the_content_only_and_strength_zero_is_off():
    image = np.zeros((32, 32, 3), np.uint8)
    image[:20] = 120
    out = augment(image, np.random.default_rng(3), ("brightness", "contrast"), 1.0, content=(20, 32))
    assert not np.array_equal(out[:20], image[:20]) and not out[20:].any()
    assert np.array_equal(augment(image, np.random.default_rng(3), ("brightness",), 0.0), image)


def test_tasks_declare_what_they_tolerate():
    assert tolerated(TASKS.get("vqa")) == ("brightness", "contrast")       # answers name colours
    assert {"hue", "saturation"} <= set(tolerated(TASKS.get("depth")))


def test_mixture_augments_images_but_keeps_every_example_and_answer():
    tasks = {n: TASKS.get(n) for n in ("vqa", "depth")}
    sources = {"world": build_source("world", None, 32)}
    weights = {("vqa", "world"): 1.0, ("depth", "world"): 1.0}
    plain = Mixture(tasks, sources, weights, 32, 100).megabatch(5, 32)
    jittered = Mixture(tasks, sources, weights, 32, 100, photometric=1.0).megabatch(5, 32)
    again = Mixture(tasks, sources, weights, 32, 100, photometric=1.0).megabatch(5, 32)
    changed = 0
    for a, b, c in zip(plain, jittered, again):
        assert a.prompt == b.prompt and np.array_equal(np.asarray(a.target), np.asarray(b.target))
        assert np.array_equal(b.image, c.image)
        changed += not np.array_equal(a.image, b.image)
    assert changed == round(SHARE * 32) or 0.25 < changed / 32 < 0.75, changed   # SHARE of the images jittered


@pytest.mark.parametrize("name", list(PERTURBATIONS))
def test_each_perturbation_changes_the_image_it_is_named_for(name):
    image = world_examples(TASKS.get("caption"), "test", 1, 64)[0].image
    out = perturb(image, name, np.random.default_rng(0))
    assert out.shape == image.shape and out.dtype == np.uint8 and not np.array_equal(out, image)
    if name == "darker":
        assert out.astype(float).mean() < 0.85 * image.astype(float).mean()
    with pytest.raises(ValueError, match="unknown perturbation 'blurry'; perturbations: darker"):
        perturb(image, "blurry", np.random.default_rng(0))


def test_robustness_table_reports_the_change_in_each_metrics_good_direction():
    from unio.infer.report import robustness_table
    results = {"clean": {"refexp": {"acc@0.5": 0.5}, "depth": {"rmse": 1.0}},
               "darker": {"refexp": {"acc@0.5": 0.4}, "depth": {"rmse": 1.25}},
               "jpeg": {"refexp": {"acc@0.5": 0.55}, "depth": {"rmse": 0.8}}}
    rows = robustness_table(results).splitlines()
    assert rows[0] == "| task | metric | clean | darker | jpeg | worst |"
    assert rows[2] == "| refexp | acc@0.5 | 0.500 | 0.400 (-20%) | 0.550 (+10%) | -20% |"
    assert rows[3] == "| depth | rmse | 1.000 | 1.250 (-25%) | 0.800 (+20%) | -25% |"
