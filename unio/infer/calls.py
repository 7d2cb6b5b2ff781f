"""What a call of a task needs, checked before any work: a region where the prompt asks about one (and
none where it does not), a region with area, text in a prompt's slot, and a task the model was trained on.

Each task declares the prompts that ask about a region in `region_prompts` (region captions, keypoints,
inpainting, segment's box form ...); the processor, unio.run, the CLI and the demo all check calls here.
Each of those names a region the way its user writes one (`worded`): Python's region=, the CLI's --region,
the demo's typed boxes."""
from __future__ import annotations

import contextvars
import math
import re
import warnings
from contextlib import contextmanager

from unio.registries import TASKS
from unio.task import region_boxes, template_pattern


def _bare(text: str) -> str:
    return re.sub(r"\s+", "", text).lower()


def matches(prompt: str, templates) -> bool:
    return any(re.match(template_pattern(t), prompt.strip(), flags=re.I | re.S) for t in templates)


def region_tasks() -> list:
    """The registered tasks with prompts that ask about a region."""
    return [name for name in TASKS.names() if getattr(TASKS.get(name), "region_prompts", ())]


def check_region(region) -> None:
    """A region is four finite numbers x1, y1, x2, y2 (the image's pixels) with x1 < x2 and y1 < y2."""
    try:
        values = [float(v) for v in region]
    except (TypeError, ValueError):
        raise ValueError(f"a region is four numbers [x1, y1, x2, y2] in the image's pixels, got {region!r}") from None
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"a region is four finite numbers [x1, y1, x2, y2] in the image's pixels, got {region!r}")
    x1, y1, x2, y2 = values
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"the region {list(region)} has no area: it needs x1 < x2 and y1 < y2 (the image's pixels)")


WORDINGS = ("python", "cli", "demo")
_wording = contextvars.ContextVar("unio_call_wording", default="python")
ARGUMENT = {"python": "region=", "cli": "--region", "demo": "a region"}   # "the tasks that take ..."


@contextmanager
def worded(how: str):
    """Inside the block, errors name a region as `how` writes one: "python" (region=[x1, y1, x2, y2]),
    "cli" (--region X1,Y1,X2,Y2, repeated for a pair) or "demo" (typed x1, y1, x2, y2; x1, y1, x2, y2)."""
    if how not in WORDINGS:
        raise ValueError(f"a wording is one of {', '.join(WORDINGS)}, got {how!r}")
    token = _wording.set(how)
    try:
        yield
    finally:
        _wording.reset(token)


def region_form(handler) -> str:
    """How a task's region= is written: one box, or a list of as many as it reads (`region_count`)."""
    wanted = getattr(handler, "region_count", 1)
    if wanted == 1:
        return "[x1, y1, x2, y2]"
    return "[" + ", ".join(["[x1, y1, x2, y2]"] * wanted) + "]" + (" (the subject's box, then the object's)" if wanted == 2 else "")


def pass_region(handler) -> str:
    """What to give for a task's region, in the current wording: 'pass region=[x1, y1, x2, y2] in the image's
    pixels', 'pass --region X1,Y1,X2,Y2 ...' (once per box) or 'type x1, y1, x2, y2 ...' (boxes split by ';')."""
    wanted, how = getattr(handler, "region_count", 1), _wording.get()
    pair = " (the subject's box, then the object's)" if wanted == 2 else ""
    if how == "cli":
        return "pass " + " ".join(["--region X1,Y1,X2,Y2"] * wanted) + pair + " in the image's pixels"
    if how == "demo":
        typed = "; ".join(["x1, y1, x2, y2"] * wanted)
        return f"type {typed}{pair} in the image's pixels" + (" (or click two corners)" if wanted == 1 else "")
    return f"pass region={region_form(handler)} in the image's pixels"


def given(region) -> str:
    """The region a call gave, as its user wrote it."""
    how = _wording.get()
    if how == "cli":
        return " ".join("--region " + ",".join(f"{float(v):g}" for v in box) for box in region_boxes(region))
    return ("region=" if how == "python" else "region ") + str(list(region))


def check_region_count(name: str | None, handler, region) -> None:
    """A region holds as many boxes as the task reads (`region_count`: 1, or 2 for a pair)."""
    boxes, wanted = region_boxes(region), getattr(handler, "region_count", 1)
    if len(boxes) != wanted:
        raise ValueError(f"task {name!r} asks about {wanted} region{'s' if wanted > 1 else ''}, got {len(boxes)}: "
                         f"{pass_region(handler)}")


def check_asks(name: str | None, handler, prompt: str, region) -> None:
    """The prompt's slot is filled, and a region is given exactly where the prompt asks about one."""
    for box in region_boxes(region) if region is not None else ():
        check_region(box)
    if handler is None:
        if region is not None:
            raise ValueError(f"no task recognised in the prompt {prompt!r} takes a region; the tasks that take "
                             f"{ARGUMENT[_wording.get()]}: {', '.join(region_tasks())}")
        return
    slotted = [t for t in handler.prompts if "{}" in t]
    if any(_bare(t.replace("{}", "")) == _bare(prompt) for t in slotted):
        raise ValueError(f"task {name!r}: the prompt {prompt!r} leaves its slot empty; fill it, e.g. "
                         f"{slotted[0].format(*['a small red cube'] * slotted[0].count('{}'))!r}")
    takes = tuple(getattr(handler, "region_prompts", ()))
    if matches(prompt, handler.prompts):           # one of its own prompts: that prompt decides
        needed = allowed = matches(prompt, takes)
    else:                                          # a phrasing of its own (task= given): the task decides
        needed, allowed = bool(takes) and set(takes) >= set(handler.prompts), bool(takes)
    if needed and region is None:
        raise ValueError(f"task {name!r} asks about a region: {pass_region(handler)}")
    if region is not None and not allowed:
        where = f"; its prompts that take one: {', '.join(repr(p) for p in takes)}" if takes else ""
        raise ValueError(f"task {name!r} takes no region with the prompt {prompt!r} ({given(region)}){where}")
    if region is not None:
        check_region_count(name, handler, region)


def check_trained(name: str | None, handler, trained, explicit: bool) -> None:
    """A task the model never trained is refused, naming the tasks it knows; with `task=` given (the user
    insists) it runs with a warning. Tasks answered through another (`via`) need that one trained."""
    if name is None or trained is None:
        return
    via = getattr(handler, "via", None)
    if name in trained or (via is not None and via in trained):
        return
    what = f"this model was not trained on {name!r}" + (f" (nor on {via!r}, which answers it)" if via else "")
    known = f"it was trained on: {', '.join(trained)}"
    if explicit:
        warnings.warn(f"{what}; running it as task={name!r} asks, but expect noise ({known})", stacklevel=4)
        return
    raise ValueError(f"{what}; {known}. Pass task={name!r} to run it anyway, or train a model with it "
                     f"(python scripts/train_mixture.py --tasks {','.join([*trained, name])})")
