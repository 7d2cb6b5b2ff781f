"""Ask a model every registered task, as a user would: each task's first prompt about one world test scene
(its slot filled from the scene, a region given where the prompt asks about one), through unio.run.

    python scripts/ask_every_task.py runs/all-start --json asked.json

Prints, per task, the answer's fields (or the error a task the model cannot answer gives) and the call's
milliseconds; exit status 1 when a task the model trained on fails.
"""
import argparse
import json
import sys
import time

import numpy as np

import unio
from unio.data.world import World
from unio.registries import TASKS


def prompt_for(name: str, scene) -> str:
    """The task's first prompt, its slot filled from the scene (a question, a phrase, a caption, a shape)."""
    template = TASKS.get(name).prompts[0]
    if "{}" not in template:
        return template
    if name == "vqa":
        return scene.questions[0][0]
    if name == "entailment":
        return template.format(*scene.entailment[0][:2])
    if name in ("generate", "itm"):
        return template.format(scene.caption)
    if name in ("refexp", "segment"):
        return template.format(scene.refexps[0][0])
    return template.format(scene.objects[0].shape)


def answer_fields(result) -> dict:
    """A result's fields, arrays and lists shown by their shape or length."""
    out = {}
    for key, value in vars(result).items():
        if value is None or key in ("tokens", "prompt", "image", "extras"):
            continue
        if isinstance(value, np.ndarray):
            out[key] = f"array{list(value.shape)}"
        elif isinstance(value, (list, tuple)):
            out[key] = f"{len(value)} items" if len(str(value)) > 80 else value
        else:
            out[key] = value
    return out


def ask_all(model: str, scene_index: int = 3) -> dict:
    runner = unio.load(model)
    trained = runner.model.config.trained_tasks
    scene = World("test")[scene_index]
    boxes = [[float(v) for v in o.box] for o in scene.objects[:2]]
    boxes += [[0.0, 0.0, float(scene.image.shape[1]), float(scene.image.shape[0])]] * (2 - len(boxes))
    asked = {}
    for name in TASKS.names():
        prompt = prompt_for(name, scene)
        count = getattr(TASKS.get(name), "region_count", 1)   # one box, or the first two objects' (a pair)
        asks_region = prompt in getattr(TASKS.get(name), "region_prompts", ())
        region = (boxes[0] if count == 1 else boxes[:count]) if asks_region else None
        start = time.perf_counter()
        try:
            result = unio.run(prompt, scene.image, model=runner, region=region)
            asked[name] = {"prompt": prompt, "ok": True, "ms": round((time.perf_counter() - start) * 1000, 1),
                           **answer_fields(result)}
        except (ValueError, RuntimeError) as error:
            asked[name] = {"prompt": prompt, "ok": False, "error": str(error),
                           "trained": trained is None or name in trained}
    return asked


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a run folder or its model/ folder")
    p.add_argument("--scene", type=int, default=3, help="the world test scene asked about")
    p.add_argument("--json", default=None)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    asked = ask_all(args.model, args.scene)
    text = json.dumps(asked, indent=1, default=str)
    print(text)
    if args.json:
        open(args.json, "w").write(text)
    return 1 if any(not a["ok"] and a["trained"] for a in asked.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
