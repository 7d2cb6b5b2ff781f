"""Train the VQ-VAE image tokenizer on the tasks' image-like targets and report held-out PSNR.

    python scripts/train_vq.py --out vq/ --steps 400 [--quantizer fsq|vq]
"""
import argparse
import json
import sys

from unio import plugins
from unio.registries import TOKENIZERS
from unio.train.tokenizer_setup import world_corpus


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default="depth")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--quantizer", default="fsq", choices=["fsq", "vq"])
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--downsample", type=int, default=None, help="pixels per code (default: 8 at 64 px, 16 at 256 px)")
    p.add_argument("--holdout", type=int, default=128, help="held-out images for PSNR")
    p.add_argument("--plugin", action="append", default=[])
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    for path in args.plugin:
        plugins.load(path)
    tasks = args.tasks.split(",")
    corpus = world_corpus(tasks, args.resolution)
    vq = TOKENIZERS.get("vq").build(corpus, args.out, steps=args.steps, batch_size=args.batch_size,
                                    quantizer=args.quantizer, downsample=args.downsample)
    vq.save(args.out)
    module = sys.modules[TOKENIZERS.get("vq").__module__]
    held_out = corpus.images(start=10_000_000)  # far from the training indices
    psnr = module.evaluate_psnr(vq, [next(held_out) for _ in range(args.holdout)])
    print(json.dumps({"quantizer": args.quantizer, "steps": args.steps, "downsample": vq.downsample,
                      "heldout_psnr_db": round(psnr, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
