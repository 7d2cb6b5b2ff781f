"""COCO at scale: write a COCO-format train2017 of many images, then measure what reading it costs.

    python scripts/coco_at_scale.py write DIR --images 100000 --objects 7      # ~700,000 objects
    python scripts/coco_at_scale.py measure DIR [--json out.json]

`write`: annotations/instances_train2017.json (boxes, polygons of 12-32 vertices, iscrowd 0, COCO's
non-contiguous category ids) and captions_train2017.json (5 per image), written a record at a time; the
images are `--distinct` world scenes shared by every image id (train2017/ID.jpg are symlinks to them).
`measure`: in a fresh process, the COCO reader's start-up (the train split indexed), its first records read
and framed as training reads them, and the peak RSS over the interpreter's own; the JSON has every figure.
"""
import argparse
import json
import math
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    write = sub.add_parser("write", help="write the annotation set")
    write.add_argument("out", help="the dataset folder")
    write.add_argument("--images", type=int, default=100_000)
    write.add_argument("--objects", type=float, default=7.0, help="objects per image on average (Poisson, 1..20)")
    write.add_argument("--distinct", type=int, default=64, help="world scenes rendered, shared by every image id")
    write.add_argument("--resolution", type=int, default=256, help="the scenes' size in pixels")
    write.add_argument("--seed", type=int, default=0)
    measure = sub.add_parser("measure", help="measure the COCO reader on it")
    measure.add_argument("path", help="the dataset folder")
    measure.add_argument("--records", type=int, default=200, help="records read and framed after start-up")
    measure.add_argument("--image-size", type=int, default=64)
    measure.add_argument("--json", default=None, help="write the figures here")
    return p


def polygon(rng, box) -> list:
    """An ellipse-like polygon of 12-32 vertices inside the box, flattened [x1, y1, x2, y2 ...]."""
    x, y, w, h = box
    n = int(rng.integers(12, 33))
    angles = np.sort(rng.uniform(0, 2 * math.pi, n))
    radius = rng.uniform(0.7, 1.0, n)
    xs = x + w / 2 + np.cos(angles) * radius * w / 2
    ys = y + h / 2 + np.sin(angles) * radius * h / 2
    return [round(float(v), 2) for pair in zip(xs, ys) for v in pair]


def annotation(rng, ann_id: int, image_id: int, size: int, categories: list) -> dict:
    w, h = rng.uniform(8, size / 2, 2)
    x, y = rng.uniform(0, size - w), rng.uniform(0, size - h)
    box = [round(float(v), 2) for v in (x, y, w, h)]
    return {"id": ann_id, "image_id": image_id, "category_id": int(rng.choice(categories)), "iscrowd": 0,
            "bbox": box, "area": round(float(math.pi * w * h / 4), 2), "segmentation": [polygon(rng, box)]}


class JsonArrayWriter:
    """A JSON object with big lists written an item at a time: {"key": [...], ...}."""

    def __init__(self, path: Path, head: dict):
        self.file = open(path, "w")
        self.file.write(json.dumps(head)[:-1] + (", " if head else ""))
        self.first_list = True

    def items(self, key: str, items) -> int:
        self.file.write(("" if self.first_list else ", ") + json.dumps(key) + ": [")
        self.first_list, count = False, 0
        for count, item in enumerate(items, 1):
            self.file.write(("," if count > 1 else "") + json.dumps(item))
        self.file.write("]")
        return count

    def close(self) -> None:
        self.file.write("}")
        self.file.close()


def write(args) -> None:
    from PIL import Image

    from unio.data.world.formats import CATEGORY_IDS, world_records
    out, rng = Path(args.out), np.random.default_rng(args.seed)
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    shared, split = out / "shared", out / "train2017"
    shared.mkdir(exist_ok=True)
    split.mkdir(exist_ok=True)
    records = world_records("train", args.distinct, args.resolution)
    for k, record in enumerate(records):
        Image.fromarray(record["image"]).save(shared / f"{k}.jpg", quality=90)
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "height": args.resolution, "width": args.resolution}
              for i in range(1, args.images + 1)]
    for image in images:
        link = split / image["file_name"]
        if not link.is_symlink():
            os.symlink(f"../shared/{image['id'] % args.distinct}.jpg", link)
    categories = [{"id": i, "name": name, "supercategory": name.split()[-1]} for name, i in CATEGORY_IDS.items()]
    ids = list(CATEGORY_IDS.values())
    counts = np.clip(rng.poisson(args.objects, args.images), 1, 20)

    def annotations():
        ann_id = 0
        for image, count in zip(images, counts):
            for _ in range(count):
                ann_id += 1
                yield annotation(rng, ann_id, image["id"], args.resolution, ids)
    writer = JsonArrayWriter(out / "annotations" / "instances_train2017.json", {"info": {"description": "unio at scale"}})
    writer.items("images", images)
    objects = writer.items("annotations", annotations())
    writer.items("categories", categories)
    writer.close()
    captions = ({"id": 5 * (image["id"] - 1) + j + 1, "image_id": image["id"],
                 "caption": records[image["id"] % args.distinct]["captions"][j % len(records[0]["captions"])]}
                for image in images for j in range(5))
    writer = JsonArrayWriter(out / "annotations" / "captions_train2017.json", {})
    writer.items("images", images)
    writer.items("annotations", captions)
    writer.close()
    sizes = {p.name: p.stat().st_size for p in (out / "annotations").glob("*.json")}
    print(json.dumps({"images": args.images, "objects": objects, "bytes": sizes}))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # Linux: kilobytes


def measure(args) -> dict:
    from unio.data.records import frame_record
    from unio.data.sources import build_source
    before = peak_rss_mb()
    start = time.perf_counter()
    split = build_source("coco", f"coco:{args.path}", args.image_size).split("train")
    indexed_s = time.perf_counter() - start
    indexed_rss = peak_rss_mb()
    start = time.perf_counter()
    for i in range(args.records):
        framed, _ = frame_record(split[(i * 7919) % len(split)], args.image_size)
    read_s = time.perf_counter() - start
    return {"records": len(split), "objects": sum(len(split[i]["objects"]) for i in range(min(len(split), 1000))),
            "objects_note": "in the first 1,000 records", "startup_s": round(indexed_s, 2),
            "records_per_s": round(args.records / read_s, 1), "rss_before_mb": round(before),
            "peak_rss_indexed_mb": round(indexed_rss), "peak_rss_mb": round(peak_rss_mb()),
            "reader_rss_mb": round(peak_rss_mb() - before)}


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.command == "write":
        write(args)
        return 0
    figures = measure(args)
    print(json.dumps(figures, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
