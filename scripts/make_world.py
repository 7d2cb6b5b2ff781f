"""Write world scenes to disk as PNGs plus a JSON of their ground truth: python scripts/make_world.py --out world/ --n 8"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from unio.world import World


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--split", default="test")
    p.add_argument("--resolution", type=int, default=64)
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    world, records = World(args.split, resolution=args.resolution), []
    for scene in world.stream(0, args.n):
        Image.fromarray(scene.image).save(out / f"{args.split}_{scene.index:05d}.png")
        np.save(out / f"{args.split}_{scene.index:05d}_depth.npy", scene.depth)
        records.append({"index": scene.index, "caption": scene.caption, "questions": scene.questions,
                        "refexps": [(t, list(scene.objects[i].box)) for t, i in scene.refexps]})
    (out / "scenes.json").write_text(json.dumps(records, indent=1))
    print(f"wrote {args.n} scenes to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
