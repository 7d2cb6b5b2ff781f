"""The world as a Hugging Face `datasets` dataset (image and depth as features), generated lazily."""
from __future__ import annotations

import json


def _rows(split: str, resolution: int, max_objects: int, start: int, stop: int):
    from unio.world.scene import World
    world = World(split, resolution=resolution, max_objects=max_objects)
    for scene in world.stream(start, stop):
        yield {
            "index": scene.index,
            "image": scene.image,
            "depth": scene.depth,
            "caption": scene.caption,
            "objects": json.dumps([{"shape": o.shape, "color": o.color, "size": o.size, "depth": o.depth,
                                    "box": list(o.box), "keypoints": o.keypoints} for o in scene.objects]),
            "questions": [{"question": q, "answer": a, "type": t} for q, a, t in scene.questions],
            "refexps": [{"expression": e, "object": i} for e, i in scene.refexps],
        }


def to_hf_dataset(split: str = "train", n: int = 100, resolution: int = 64, max_objects: int = 4,
                  streaming: bool = False):
    """Scenes [0, n) of `split` as a `datasets.Dataset` (or an IterableDataset with streaming=True)."""
    import datasets
    features = datasets.Features({
        "index": datasets.Value("int64"),
        "image": datasets.Image(),
        "depth": datasets.Array2D((resolution, resolution), "float32"),
        "caption": datasets.Value("string"),
        "objects": datasets.Value("string"),
        "questions": datasets.List({"question": datasets.Value("string"), "answer": datasets.Value("string"),
                                    "type": datasets.Value("string")}),
        "refexps": datasets.List({"expression": datasets.Value("string"), "object": datasets.Value("int64")}),
    })
    kwargs = dict(split=split, resolution=resolution, max_objects=max_objects, start=0, stop=n)
    if streaming:
        return datasets.IterableDataset.from_generator(_rows, features=features, gen_kwargs=kwargs)
    return datasets.Dataset.from_generator(_rows, features=features, gen_kwargs=kwargs)
