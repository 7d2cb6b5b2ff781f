"""Draw docs/architecture.png: the data path from a source to a Result, and the one vocabulary's ranges.

    python scripts/draw_architecture.py                       # -> docs/architecture.png
    python scripts/draw_architecture.py --vocab runs/NAME/model/vocab.json --out arch.png

The vocabulary bar is read from a model's vocab.json when one is given; otherwise it shows the layout of the
default command's model (`python scripts/train_mixture.py --tasks vqa,caption,refexp,depth`), written out
below from its vocab.json: 27 specials, the sentencepiece pieces it learned, 64 location bins + 3 visibility
tokens (configs/tokenizers/default.yaml), 1,000 FSQ codes of the depth codebook (levels 8*5*5*5).
"""
from __future__ import annotations

import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

# (name, start, size) of the default command's vocab.json (unio/vocab.py lays ranges out by tokenizer order)
DEFAULT_RANGES = [("specials", 0, 27), ("text", 27, 360), ("coordinates", 387, 67), ("depth_codes", 454, 1000)]
NOTES = {"specials": "pad, eos, bos, unk,\nmarkers, sentinels", "text": "sentencepiece\npieces",
         "coordinates": "location bins\n+ 3 visibility", "depth_codes": "VQ-VAE codes\n(FSQ 8·5·5·5)"}
COLOURS = ["#bbbbbb", "#8ecae6", "#ffb703", "#90be6d", "#f28482", "#cdb4db", "#e9c46a"]

TRAIN_PATH = ["source\n(world, COCO, VQAv2,\nRefCOCO, NYUv2,\nhf, folder ...)", "record\n(image +\nannotations)",
              "task.example\n(prompt, target)", "frame\n(resize + pad,\ntargets mapped)",
              "tokenizers\n(one vocabulary)", "batch\n(length-bucketed)"]
MODEL_PATH = ["encoder-decoder\ntransformer", "generate()\nunder the task's\ngrammar", "task.decode",
              "to_original\n(original pixels)", "Result\n(.text .boxes .mask\n.depth .keypoints ...)"]


def vocab_ranges(path: str | None) -> tuple[list, int]:
    if path is None:
        return DEFAULT_RANGES, DEFAULT_RANGES[-1][1] + DEFAULT_RANGES[-1][2]
    data = json.loads(open(path).read())
    ranges = [("specials", 0, len(data["specials"]))] + [(r["name"], r["start"], r["size"]) for r in data["ranges"]]
    return ranges, int(data["size"])


def box(ax, x, y, text, w=1.55, h=0.95, colour="#eef3f8"):
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.04", fc=colour, ec="#335"))
    ax.text(x, y, text, ha="center", va="center", fontsize=7.5)


def arrow(ax, a, b):
    ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=10, color="#335"))


def row(ax, labels, y, x0=1.0, dx=1.85, colour="#eef3f8"):
    xs = [x0 + i * dx for i in range(len(labels))]
    for i, (x, label) in enumerate(zip(xs, labels)):
        box(ax, x, y, label, colour=colour)
        if i:
            arrow(ax, (xs[i - 1] + 0.8, y), (x - 0.8, y))
    return xs


def draw(out: str, vocab: str | None) -> None:
    fig, ax = plt.subplots(figsize=(11.5, 5.6))
    ax.set_xlim(0, 11.6), ax.set_ylim(-0.2, 6.2), ax.axis("off")
    ax.text(0.1, 6.0, "Training, evaluation, unio.run and the bench share one encoding and one generation path",
            fontsize=9, weight="bold")
    top = row(ax, TRAIN_PATH, 5.0)
    bottom = row(ax, MODEL_PATH, 3.35, x0=1.9, dx=2.0, colour="#f6efe6")
    arrow(ax, (top[-1], 4.5), (bottom[0] + 0.3, 3.85))
    ax.text(top[-1] - 0.1, 4.15, "trainer: loss\nunio.run: prompt + image", fontsize=6.5, ha="right")

    ranges, size = vocab_ranges(vocab)
    ax.text(0.1, 2.05, f"One vocabulary ({size:,} ids{' in the default model' if vocab is None else ''}; "
            "laid out by unio/vocab.py, saved as vocab.json beside every model)", fontsize=9, weight="bold")
    left, width = 0.3, 11.0
    for i, (name, start, n) in enumerate(ranges):
        x, w = left + width * start / size, max(width * n / size, 0.02)
        ax.add_patch(FancyBboxPatch((x, 0.95), w, 0.6, boxstyle="square,pad=0", fc=COLOURS[i % len(COLOURS)], ec="white"))
        label = f"{name}\n{start}-{start + n - 1}"
        ax.text(x + w / 2, 1.25, label if w > 0.9 else "", ha="center", va="center", fontsize=7)
        ax.text(x + w / 2 if w > 0.9 else x + 0.05, 0.7 if w > 0.9 else 1.7, NOTES.get(name, "") if w > 0.9 else label,
                ha="center" if w > 0.9 else "left", va="top" if w > 0.9 else "bottom", fontsize=6.5)
    ax.text(left + width, 0.15, "further ranges (mask_codes, rgb_codes, a plugin's own) follow when a task needs them",
            fontsize=6.5, ha="right", style="italic")
    fig.savefig(out, dpi=130, bbox_inches="tight")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="docs/architecture.png")
    p.add_argument("--vocab", default=None, help="a model's vocab.json (default: the default command's layout)")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    draw(args.out, args.vocab)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
