"""Train the sentencepiece text tokenizer on the tasks' texts: python scripts/train_text_tokenizer.py --out DIR"""
import argparse
import sys

from unio import plugins
from unio.registries import TOKENIZERS
from unio.train.tokenizer_setup import world_corpus


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tasks", default="vqa,caption,refexp,depth")
    p.add_argument("--out", required=True)
    p.add_argument("--vocab-size", type=int, default=1000)
    p.add_argument("--scenes", type=int, default=1000)
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--plugin", action="append", default=[])
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    for path in args.plugin:
        plugins.load(path)
    corpus = world_corpus(args.tasks.split(","), args.resolution, texts_per_pair=args.scenes)
    tok = TOKENIZERS.get("text").build(corpus, args.out, vocab_size=args.vocab_size)
    print(f"wrote {args.out}/spiece.model with {tok.size} pieces")
    return 0


if __name__ == "__main__":
    sys.exit(main())
