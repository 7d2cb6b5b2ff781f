"""One example prompt per task, its slots filled from a scene of the default source (the task's own
example, as training makes it): what the model card's widget and the demo offer."""
from __future__ import annotations

import numpy as np


def example_prompts(tasks: list, resolution: int = 64, regions: bool = True) -> dict:
    """{task: prompt} for the registered `tasks` whose example the default source's first test record
    can make (a task needing records the source lacks is left out); `regions=False` leaves out examples
    that ask about a region (a prompt alone cannot ask them)."""
    from unio.data.mixture import DEFAULT_SOURCE
    from unio.data.records import make_example
    from unio.data.sources import build_source
    from unio.registries import TASKS
    record = build_source(DEFAULT_SOURCE, None, resolution).split("test")[0]
    prompts = {}
    for name in tasks:
        if name not in TASKS:
            continue
        try:
            example = make_example(TASKS.get(name), record, resolution, np.random.default_rng(0))
        except Exception:   # a task whose records the source lacks offers no example
            continue
        if regions or example.region is None:
            prompts[name] = example.prompt
    return prompts
