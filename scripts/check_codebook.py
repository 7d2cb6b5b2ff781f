"""Check a tokenizer set's class-map and mask codebooks for a colour (a class) they cannot give back, and with
--fix train such a codebook on until every colour comes back, in place (what a set built today does itself):

    python scripts/check_codebook.py ~/.cache/unio/tokenizers-r64-45025bed076f --fix

Each codebook is checked on 256 images of the world that its kind's task answers with (class maps of
semantic_segmentation, masks of segment). Exit status 1 when a colour is still lost.
"""
import argparse
import json
import sys
from pathlib import Path

from unio.registries import TOKENIZERS
from unio.train.tokenizer_setup import world_corpus

TASK_OF_KIND = {"class_map": "semantic_segmentation", "mask": "segment"}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("tokenizers", type=Path, help="a tokenizer set's folder (~/.cache/unio/tokenizers-...)")
    p.add_argument("--fix", action="store_true", help="train a codebook that loses a colour on, and save it in place")
    p.add_argument("--steps", type=int, default=600, help="steps of each extra training run (the config's)")
    p.add_argument("--resolution", type=int, default=64, help="the set's image size (its folder's rNN)")
    return p


def palette_codebooks(folder: Path) -> dict:
    """{subfolder: kind} of the set's VQ codebooks whose kind is class maps or masks."""
    found = {}
    for config in sorted(folder.glob("*/config.json")):
        kind = json.loads(config.read_text()).get("modality")
        if kind in TASK_OF_KIND:
            found[config.parent] = kind
    return found


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if not args.tokenizers.is_dir():
        raise SystemExit(f"no tokenizer set at {args.tokenizers}")
    vq_class = TOKENIZERS.get("vq")
    module = sys.modules[vq_class.__module__]
    still_lost = False
    for folder, kind in palette_codebooks(args.tokenizers).items():
        codebook = vq_class.load(folder)
        images = world_corpus([TASK_OF_KIND[kind]], args.resolution).images(kind=kind)
        held = [next(images) for _ in range(256)]
        lost = module.lost_colours(codebook, held)
        print(f"{folder.name} ({kind}): " + (f"lost colours {lost} (RGB: share of their pixels given back)"
                                              if lost else "every colour comes back"))
        if lost and args.fix:
            codebook = module.keep_every_colour(codebook, images, steps=args.steps)
            lost = module.lost_colours(codebook, held)
            codebook.save(folder)
            print(f"{folder.name}: saved; " + (f"still lost {lost}" if lost else "every colour comes back now"))
        still_lost |= bool(lost)
    return 1 if still_lost else 0


if __name__ == "__main__":
    sys.exit(main())
