"""Write world scenes to disk.

    python scripts/make_world.py --out world/ --n 8                  PNGs plus a JSON of their ground truth
    python scripts/make_world.py --format FORMAT OUT   an official dataset format (coco, vqav2, refcoco, nyu,
                                                        coco_panoptic, visual_genome), read back by
                                                        `--source NAME=FORMAT:OUT` (docs/data.md)
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from unio.data.world import World


def write_scenes(out: Path, n: int, split: str, resolution: int) -> None:
    world, records = World(split, resolution=resolution), []
    for scene in world.stream(0, n):
        Image.fromarray(scene.image).save(out / f"{split}_{scene.index:05d}.png")
        np.save(out / f"{split}_{scene.index:05d}_depth.npy", scene.depth)
        records.append({"index": scene.index, "caption": scene.caption, "questions": scene.questions,
                        "refexps": [(t, list(scene.objects[i].box)) for t, i in scene.refexps]})
    (out / "scenes.json").write_text(json.dumps(records, indent=1))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", nargs="?", help="output folder (or --out)")
    p.add_argument("--out")
    p.add_argument("--format", choices=["coco", "vqav2", "refcoco", "nyu", "coco_panoptic", "visual_genome"],
                   help="an official dataset format")
    p.add_argument("--n", type=int, default=8, help="scenes (per split with --format)")
    p.add_argument("--split", default="test")
    p.add_argument("--resolution", type=int, default=64)
    return p


def main(argv=None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if not (args.out or args.path):
        p.error("give the output folder")
    out = Path(args.out or args.path)
    out.mkdir(parents=True, exist_ok=True)
    if args.format:
        from unio.data.world.formats import WRITERS
        WRITERS[args.format](out, args.n, args.resolution)
        print(f"wrote {args.n} scenes per split to {out} in the {args.format} format")
        return 0
    write_scenes(out, args.n, args.split, args.resolution)
    print(f"wrote {args.n} scenes to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
