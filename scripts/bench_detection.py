"""Detection decoding speed: objects per second from one detection call per image (alone, and the
images as one batch) against one refexp `unio.run` call per object, on world test scenes.

    python scripts/bench_detection.py --model runs/det --n 100 --json bench_detection.json
"""
import argparse
import json

import benchlib as bench  # scripts/benchlib.py: scripts/ is sys.path[0] when this file runs
import torch

from unio.data.world import World
from unio.infer.runner import load


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a run folder whose model was trained on detection")
    p.add_argument("--n", type=int, default=100, help="test scenes")
    p.add_argument("--json", default=None)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    torch.manual_seed(0)
    runner = load(args.model)
    world = World("test", resolution=runner.model.config.image_size)
    scenes = [world[i] for i in range(args.n)]
    report = bench.detection_vs_refexp(runner, [s.image for s in scenes], [[f"the {o.name}" for o in s.objects] for s in scenes])
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        open(args.json, "w").write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
