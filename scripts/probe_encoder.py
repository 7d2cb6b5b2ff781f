"""Does a model's encoder hold an object attribute? A linear probe of its per-object features (unio/train/probe.py).

python scripts/probe_encoder.py --model runs/vqa-caption-refexp-depth-tiny-s0 --attribute shape --json probe.json
"""
import argparse
import json
import sys
from pathlib import Path


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="run folder or model folder")
    p.add_argument("--attribute", action="append", default=[],
                   help="an object attribute of the source's records (repeatable; default: shape, color, size)")
    p.add_argument("--task", default="caption", help="whose prompt the encoder reads beside the image")
    p.add_argument("--source", default="world", help="NAME or NAME=SPEC, as in train_mixture.py")
    p.add_argument("--train-n", type=int, default=2000, help="train examples whose objects fit the probe")
    p.add_argument("--test-n", type=int, default=500, help="test examples whose objects score it")
    p.add_argument("--json", default=None, help="write the results to this file")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    from unio.data.sources import build_source
    from unio.infer.runner import load
    from unio.registries import TASKS
    from unio.train.probe import probe
    runner = load(args.model)
    name, _, spec = args.source.partition("=")
    source = build_source(name, spec or None, runner.model.config.image_size)
    try:
        results = [probe(runner.model, runner.mods, TASKS.get(args.task), source, attribute, args.train_n,
                         args.test_n) for attribute in args.attribute or ["shape", "color", "size"]]
    except ValueError as error:     # an attribute the objects lack, a source without masks
        raise SystemExit(f"probe_encoder.py: {error}")
    for r in results:
        print(f"{r['attribute']:10s} test {r['test_accuracy']:.3f}  train {r['train_accuracy']:.3f}  "
              f"majority {r['majority_baseline']:.3f}  ({r['objects_train']} / {r['objects_test']} objects)")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
