"""The world as a Hugging Face `datasets` dataset with the record schema's columns, generated lazily:
a valid source as it is (`unio.data.sources.as_source(to_hf_dataset(...))`). Masks are left out."""
from __future__ import annotations

from unio.data.world.constants import MAX_DEPTH
from unio.data.world.scene import World


def _rows(split: str, resolution: int, max_objects: int, start: int, stop: int):
    world = World(split, resolution=resolution, max_objects=max_objects)
    for scene in world.stream(start, stop):
        yield {
            "id": f"world/{split}/{scene.index}",
            "image": scene.image,
            "depth": scene.depth,
            "max_depth": MAX_DEPTH,
            "captions": [scene.caption],
            "objects": [{"box": [float(v) for v in o.box], "category": o.name,
                         "keypoints": [[float(x), float(y), int(v)] for x, y, v in o.keypoints],
                         "attributes": {"size": o.size, "color": o.color, "shape": o.shape}} for o in scene.objects],
            "questions": [{"question": q, "answers": [a], "type": t} for q, a, t in scene.questions],
            "refexps": [{"text": e, "object": i} for e, i in scene.refexps],
        }


def features(resolution: int):
    import datasets
    string = datasets.Value("string")
    return datasets.Features({
        "id": string,
        "image": datasets.Image(),
        "depth": datasets.Array2D((resolution, resolution), "float32"),
        "max_depth": datasets.Value("float32"),
        "captions": datasets.List(string),
        "objects": datasets.List({"box": datasets.List(datasets.Value("float32")), "category": string,
                                  "keypoints": datasets.List(datasets.List(datasets.Value("float32"))),
                                  "attributes": {"size": string, "color": string, "shape": string}}),
        "questions": datasets.List({"question": string, "answers": datasets.List(string), "type": string}),
        "refexps": datasets.List({"text": string, "object": datasets.Value("int64")}),
    })


def to_hf_dataset(split: str = "train", n: int = 100, resolution: int = 64, max_objects: int = 4,
                  streaming: bool = False):
    """Scenes [0, n) of `split` as a `datasets.Dataset` (or an IterableDataset with streaming=True)."""
    import datasets
    kwargs = dict(split=split, resolution=resolution, max_objects=max_objects, start=0, stop=n)
    if streaming:
        return datasets.IterableDataset.from_generator(_rows, features=features(resolution), gen_kwargs=kwargs)
    return datasets.Dataset.from_generator(_rows, features=features(resolution), gen_kwargs=kwargs)
