"""The `unio` console script: plugins, run, demo, train, eval."""
from __future__ import annotations

import argparse
import importlib
import math
import sys


def cmd_plugins(args) -> int:
    from unio import plugins
    from unio.registries import SOURCES, TASKS, TOKENIZERS
    for path in args.plugin:
        plugins.load(path)
    print("tokenizers:", ", ".join(TOKENIZERS.names()))
    print("tasks:", ", ".join(TASKS.names()))
    print("sources:", ", ".join(SOURCES.names()))
    return 0


def region_value(text: str) -> list:
    """One --region: 'X1,Y1,X2,Y2' (the image's pixels) -> [x1, y1, x2, y2]."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4 or not all(map(math.isfinite, values)):
        raise argparse.ArgumentTypeError(f"a region is X1,Y1,X2,Y2 (four finite numbers in the image's pixels, e.g. "
                                         f"--region 4,6,40,50; twice for a pair of regions), got {text!r}")
    return values


def regions_given(boxes: list | None):
    """The --region options as unio.run's region=: none -> None, one -> its box, several -> the list of boxes."""
    if not boxes:
        return None
    return boxes[0] if len(boxes) == 1 else boxes


def cmd_run(args) -> int:
    import unio
    from unio import plugins
    from unio.infer.calls import worded
    for path in args.plugin:
        plugins.load(path)
    options = {k: v for k, v in (("guidance_scale", args.guidance_scale), ("seed", args.seed)) if v is not None}
    if args.sample:
        options.update(do_sample=True, top_k=args.top_k)
    try:
        with worded("cli"):
            result = unio.run(args.prompt, args.image, model=args.model, task=args.task,
                              region=regions_given(args.region), **options)
    except ValueError as error:   # a call the task refuses (a region missing or one too many): say why, no trace
        raise SystemExit(f"unio run: error: {error}") from None
    print(result)
    if args.out:
        print(f"wrote {result.save(args.out)}")
    return 0


def cmd_demo(args) -> int:
    from unio.infer import demo
    for path in args.plugin:
        from unio import plugins
        plugins.load(path)
    demo.main(args.model, host=args.host, port=args.port)
    return 0


# subcommands with their own parsers and mains, run before `unio`'s parser sees the line
DELEGATED = {"train": "unio.train.cli", "eval": "unio.train.eval_cli"}


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="unio", description="unio: train, evaluate and run generalist models. "
                                   "`unio train --help` and `unio eval --help` list their options.")
    sub = root.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plugins", help="list the registered tokenizers, tasks and sources")
    p.add_argument("--plugin", action="append", default=[])
    p.set_defaults(func=cmd_plugins)
    p = sub.add_parser("run", help="answer a prompt about an image")
    p.add_argument("prompt")
    p.add_argument("--image", default=None, help="the image (tasks that read none, e.g. text to image, go without)")
    p.add_argument("--guidance-scale", type=float, default=None, help="classifier-free guidance (tasks that have it)")
    p.add_argument("--seed", type=int, default=None, help="seed for sampling")
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--top-k", type=int, default=0, help="with --sample: keep the k likeliest tokens (0: all)")
    p.add_argument("--model", default=None, help="run folder or model folder (default: newest under runs/)")
    p.add_argument("--task", default=None)
    p.add_argument("--region", action="append", type=region_value, metavar="X1,Y1,X2,Y2",
                   help="the box the prompt asks about, in the image's pixels; give it twice for a pair "
                        "(the subject's box, then the object's)")
    p.add_argument("--out", default=None, help="write the drawn result to this PNG")
    p.add_argument("--plugin", action="append", default=[])
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("demo", help='a local web page to ask a model about images (pip install ".[demo]")')
    p.add_argument("model", nargs="?", default=None, help="run folder or model folder (default: newest under runs/)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--plugin", action="append", default=[])
    p.set_defaults(func=cmd_demo)
    sub.add_parser("train", help="train a generalist (same as scripts/train_mixture.py)")
    sub.add_parser("eval", help="evaluate a model or baselines (same as scripts/evaluate.py)")
    return root


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED:
        return importlib.import_module(DELEGATED[argv[0]]).main(argv[1:])
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
