"""Chaining tasks: one call that feeds each step's answer to the next step's input, keeping every result.

    results = unio.chain([("Describe the image.", image),
                          ("Generate an image of: {previous}",),             # the caption's text, into generation
                          ("What is the depth map of the image?",)])         # the generated image, into depth
    results[1].generated_image, results[2].depth

A step is a `Step` or a tuple (prompt[, image[, options]]). `{previous}` in a prompt is replaced by the
previous result's answer as text (`Result.answer_text()`). A step without an image takes the previous
result's output image (its `generated_image`), else the image the previous step read; the first step
without one reads none (a text-only task). Each step runs through `unio.run`, so it is recognised,
checked and answered as a call of its own would be.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PREVIOUS = "{previous}"


@dataclass
class Step:
    prompt: str                                  # may hold {previous}: the previous answer's text
    image: Any = None                            # None: the previous result's output image, else its input image
    task: str | None = None                      # as unio.run's task=
    region: Any = None                           # as unio.run's region=
    options: dict = field(default_factory=dict)  # generation options for this step alone (over the chain's)


def as_step(step) -> Step:
    if isinstance(step, Step):
        return step
    if isinstance(step, str):
        return Step(step)
    if isinstance(step, (tuple, list)) and 1 <= len(step) <= 3 and isinstance(step[0], str):
        return Step(step[0], step[1] if len(step) > 1 else None, options=dict(step[2]) if len(step) > 2 else {})
    raise TypeError(f"a chain step is a Step, a prompt, or a tuple (prompt[, image[, options]]), got {step!r}")


def next_input(result):
    """The image a step without one reads: the previous result's output image, else the image it read."""
    generated = getattr(result, "generated_image", None)
    return generated if generated is not None else result.image


def chain(steps, *, model=None, **options) -> list:
    """Run `steps` in order, each fed the previous one's answer ({previous} in its prompt) and image; the
    Results of every step. `options`: generation options of every step (a step's own `options` win)."""
    from unio.infer.runner import Runner, default_runner, load, run
    steps = [as_step(s) for s in steps]
    if not steps:
        raise ValueError("a chain needs at least one step")
    runner = model if isinstance(model, Runner) else (load(model) if model else default_runner())
    results: list = []
    for step in steps:
        previous = results[-1] if results else None
        if PREVIOUS in step.prompt and previous is None:
            raise ValueError(f"the first step's prompt {step.prompt!r} refers to {PREVIOUS}, but no step comes before it")
        prompt = step.prompt.replace(PREVIOUS, previous.answer_text()) if previous is not None else step.prompt
        image = step.image if step.image is not None or previous is None else next_input(previous)
        results.append(run(prompt, image, model=runner, task=step.task, region=step.region,
                           **{**options, **step.options}))
    return results
