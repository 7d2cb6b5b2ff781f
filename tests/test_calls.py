"""Every task says what a call needs (unio/infer/calls.py): a region exactly where its prompt asks about one,
a region with area, a filled slot, and a task the model trained on. Each bad call fails naming the task and
the argument; each good one works."""
import warnings

import pytest

from unio.data.world import World
from unio.registries import TASKS

IMAGE = World("test")[0].image
BOX = [4, 6, 40, 50]


def _filled(template: str, text: str = "a small red cube") -> str:
    return template.format(*[text] * template.count("{}"))


def _region(task):
    """A region of as many boxes as the task reads (a pair: two)."""
    count = getattr(task, "region_count", 1)
    return BOX if count == 1 else [BOX] * count


def _plain_prompt(task):
    """A prompt of the task that asks about no region (None: every prompt asks about one)."""
    takes = set(getattr(task, "region_prompts", ()))
    return next((_filled(p) for p in task.prompts if p not in takes), None)


@pytest.mark.parametrize("name", TASKS.names())
def test_each_task_needs_a_region_exactly_where_its_prompt_asks(runner, name):
    task, processor = TASKS.get(name), runner.processor
    for template in getattr(task, "region_prompts", ()):
        with pytest.raises(ValueError, match=rf"task '{name}' asks about a region: pass region="):
            processor.example(_filled(template), IMAGE, task=name)
        assert processor.example(_filled(template), IMAGE, task=name, region=_region(task)).region is not None
        with pytest.raises(ValueError, match=r"the region \[10, 10, 10, 10\] has no area"):
            processor.example(_filled(template), IMAGE, task=name, region=[10, 10, 10, 10])
    plain = _plain_prompt(task)
    if plain is not None:
        with pytest.raises(ValueError, match=rf"task '{name}' takes no region with the prompt"):
            processor.example(plain, IMAGE, task=name, region=BOX)
        assert processor.example(plain, IMAGE, task=name).task == name


@pytest.mark.parametrize("name", [n for n in TASKS.names() if any("{}" in p for p in TASKS.get(n).prompts)])
def test_an_empty_slot_is_refused_naming_the_task(runner, name):
    template = next(p for p in TASKS.get(name).prompts if "{}" in p and p.replace("{}", "").strip())
    for empty in ("", "  "):
        with pytest.raises(ValueError, match=rf"task '{name}': the prompt .* leaves its slot empty"):
            runner.processor.example(_filled(template, empty), IMAGE, task=name)


def test_helpers_and_unio_run_refuse_what_the_issue_found(runner):
    import unio
    with pytest.raises(ValueError, match="task 'generate': the prompt 'Generate an image of: ' leaves its slot empty"):
        unio.generate("", model=runner)
    with pytest.raises(ValueError, match="task 'segment': the prompt 'Segment \"\".' leaves its slot empty"):
        unio.segment(IMAGE, "", model=runner)
    with pytest.raises(ValueError, match="task 'region_caption' asks about a region"):
        unio.run("What does the region describe?", IMAGE, model=runner)
    with pytest.raises(ValueError, match="task 'keypoints' asks about a region"):
        unio.run("Find the keypoints of the object in the region.", IMAGE, model=runner)
    with pytest.raises(ValueError, match="no task recognised in the prompt 'Tell me a story.' takes a region"):
        unio.run("Tell me a story.", IMAGE, model=runner, region=BOX)
    for bad in ([1, 2, 3], ["a", 1, 2, 3], [0, 0, float("nan"), 4]):
        with pytest.raises(ValueError, match="a region is four"):
            unio.run("What does the region describe?", IMAGE, model=runner, region=bad)
    # a phrasing of one's own, with task= given: the task as a whole decides
    assert runner.processor.example("Tell me about it.", IMAGE, task="region_caption", region=BOX).region is not None
    with pytest.raises(ValueError, match="task 'region_caption' asks about a region"):
        runner.processor.example("Tell me about it.", IMAGE, task="region_caption")


def test_a_model_refuses_tasks_it_never_trained(runner):
    from unio.infer.processor import UnioProcessor
    processor = UnioProcessor(runner.mods, image_size=runner.processor.image_size, trained_tasks=["caption", "vqa"])
    with pytest.raises(ValueError, match=r"this model was not trained on 'region_caption'; it was trained on: "
                                         r"caption, vqa\. Pass task='region_caption' to run it anyway"):
        processor.example("What does the region describe?", IMAGE, region=BOX)
    with pytest.warns(UserWarning, match="not trained on 'region_caption'; running it as task='region_caption' asks"):
        processor.example("What does the region describe?", IMAGE, task="region_caption", region=BOX)
    with pytest.raises(ValueError, match=r"not trained on 'segment_every' \(nor on 'detection', which answers it\)"):
        processor.example('Segment every "cube".', IMAGE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert processor.example("What color is the cube?", IMAGE).task == "vqa"
        assert processor.example("What is in the image?", IMAGE).task == "caption"      # an alias of caption
        assert processor.example("Tell me a story.", IMAGE).task is None                # free text stays free
        through = UnioProcessor(runner.mods, image_size=runner.processor.image_size, trained_tasks=["detection"])
        assert through.example('Segment every "cube".', IMAGE).task == "segment_every"


def test_the_trained_tasks_travel_with_the_processor(runner, tmp_path):
    from unio.infer.processor import UnioProcessor
    UnioProcessor(runner.mods, image_size=runner.processor.image_size, trained_tasks=["depth"]).save_pretrained(tmp_path)
    assert UnioProcessor.from_pretrained(tmp_path).trained_tasks == ["depth"]


def test_a_model_path_that_does_not_exist_is_named(tmp_path, monkeypatch):
    import unio
    with pytest.raises(FileNotFoundError, match=r"no model at .*det-x \(the path given\): the path does not exist"):
        unio.detect(IMAGE, model=str(tmp_path / "det-x"))
    monkeypatch.setenv("UNIO_MODEL", str(tmp_path / "gone"))
    with pytest.raises(FileNotFoundError, match=r"no model at .*gone \(UNIO_MODEL\): the path does not exist"):
        unio.load()


def test_errors_name_the_region_as_each_caller_writes_it(runner):
    """Python's region=, the CLI's --region (once per box) and the demo's typed boxes; Python's by default."""
    from unio.infer.calls import worded
    pair, one = "What is the relation between the two regions?", "Describe the region."
    expected = {
        "python": (r"pass region=\[\[x1, y1, x2, y2\], \[x1, y1, x2, y2\]\] \(the subject's box, then the object's\)",
                   r"pass region=\[x1, y1, x2, y2\] in the image's pixels", r"the tasks that take region=: "),
        "cli": (r"pass --region X1,Y1,X2,Y2 --region X1,Y1,X2,Y2 \(the subject's box, then the object's\)",
                r"pass --region X1,Y1,X2,Y2 in the image's pixels", r"the tasks that take --region: "),
        "demo": (r"type x1, y1, x2, y2; x1, y1, x2, y2 \(the subject's box, then the object's\)",
                 r"type x1, y1, x2, y2 in the image's pixels \(or click two corners\)", r"the tasks that take a region: ")}
    for how, (two, single, tasks) in expected.items():
        with worded(how):
            with pytest.raises(ValueError, match=rf"task 'relation' asks about 2 regions, got 1: {two}"):
                runner.processor.example(pair, IMAGE, region=BOX)
            with pytest.raises(ValueError, match=rf"task 'region_caption' asks about a region: {single}"):
                runner.processor.example(one, IMAGE)
            with pytest.raises(ValueError, match=tasks):
                runner.processor.example("Tell me a story.", IMAGE, region=BOX)
            assert len(runner.processor.example(pair, IMAGE, region=[BOX, BOX]).region) == 2
    with pytest.raises(ValueError, match="pass region="):          # the wording ends with its block
        runner.processor.example(one, IMAGE)
    with pytest.raises(ValueError, match="a wording is one of python, cli, demo"):
        with worded("html"):
            pass
