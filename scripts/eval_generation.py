"""Text-to-image and inpainting figures of a model over guidance scales, with baselines and a sample grid.

    python scripts/eval_generation.py --model runs/gen --n 500 --scales 0,1,3,10 --json gen.json --grid samples.png

For each guidance scale: colour-set precision / recall / F1, count and left-to-right order accuracy of
the generated images read with the world's palette (greedy, and sampled with top-k), and the diversity
of several samples of one prompt; inpainting PSNR / SSIM inside the region; the baselines of both tasks
(the gold image read by the same reader, the VQ round trip, the mean image, another scene's image; the
region filled with the mean colour); and the VQ-VAE's RGB round trip PSNR at the model's grid.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="run folder or model folder")
    p.add_argument("--tokenizers", default=None, help="only the VQ-VAE's RGB round trip of these tokenizers "
                   "(a tokenizers folder), with the palette metrics of the round-tripped images")
    p.add_argument("--n", type=int, default=500, help="test prompts (and inpainting examples)")
    p.add_argument("--scales", default="0,1,3,10", help="guidance scales, comma-separated")
    p.add_argument("--top-k", type=int, default=50, help="top-k of the sampled rows")
    p.add_argument("--diversity-prompts", type=int, default=20)
    p.add_argument("--samples", type=int, default=4, help="samples per prompt for diversity and the grid")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--split", default="test")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    p.add_argument("--grid", default=None, help="write a PNG grid of samples (rows: prompts; columns: scales)")
    return p


def run_scale(model, mods, task, examples, batch_size: int, **options) -> tuple:
    from unio.infer.evaluation import predict, score
    predictions = predict(model, mods, task, examples, batch_size=batch_size, **options)
    return score(task, predictions, examples), predictions


def diversity_at(model, mods, task, examples, samples: int, scale: float, top_k: int, seed: int) -> float:
    from unio.infer.pipeline import generate_answers
    from unio.kit.image_metrics import diversity
    values = []
    for i, example in enumerate(examples):
        answers = generate_answers(model, mods, task, [example] * samples, guidance_scale=scale, do_sample=True,
                                   top_k=top_k, seed=seed + i)
        values.append(diversity([a.prediction for a in answers]))
    return float(np.mean(values))


def baselines(mods, pairs_examples: dict, train: dict) -> dict:
    from unio.infer.evaluation import score
    from unio.registries import TASKS
    out = {}
    for name, examples in pairs_examples.items():
        task = TASKS.get(name)
        out[name] = {b: score(task, [make(train[name], mods)(ex) for ex in examples], examples)
                     for b, make in task.baselines().items()}
    return out


def vq_quality(mods, examples) -> dict:
    """The RGB round trip through the VQ-VAE at the model's grid: PSNR over the image, and over object pixels."""
    from unio.kit.image_codes import round_trip
    from unio.kit.image_metrics import psnr
    whole, objects = [], []
    for ex in examples:
        rt = round_trip(ex.target, mods["vq"])
        whole.append(psnr(rt, ex.target))
        masks = [o["mask"] for o in (ex.record.get("objects") or []) if o.get("mask") is not None]
        if masks:
            inside = np.any(masks, axis=0)
            objects.append(psnr(rt[inside], ex.target[inside]))
    side = ex.target.shape[0] // mods["vq"].downsample
    return {"psnr": float(np.mean(whole)), "psnr_objects": float(np.mean(objects)), "grid": f"{side}x{side}",
            "tokens": side * side}


def tokenizer_only(args) -> int:
    """The VQ-VAE's RGB round trip at 64 px: PSNR, and the round-tripped images read with the palette."""
    from unio.data.sources import build_source
    from unio.infer.evaluation import score, split_examples
    from unio.modalities import Modalities
    from unio.registries import TASKS
    folder = Path(args.tokenizers)
    if (folder / "vocab.json").is_file():
        mods = Modalities.load(folder)
    else:   # one VQ-VAE folder (scripts/train_vq.py --out)
        from unio.registries import TOKENIZERS
        mods = {"vq": TOKENIZERS.get("vq").load(folder)}
    res = 64
    task = TASKS.get("generate")
    examples = split_examples(task, build_source("world", None, res), args.split, args.n, res)
    report = {"tokenizers": args.tokenizers, "n": args.n, **vq_quality(mods, examples)}
    for name in ("vq_ceiling", "gold"):
        report[name] = score(task, [task.baselines()[name]([], mods)(ex) for ex in examples], examples)
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


def draw_grid(model, mods, task, examples, scales, samples: int, top_k: int, seed: int, path: Path) -> None:
    """Rows: prompts; columns: the gold image, then `samples` samples at each scale."""
    from PIL import Image, ImageDraw

    from unio.infer.pipeline import generate_answers
    size = examples[0].target.shape[0] * 2
    cols = 1 + samples * len(scales)
    canvas = Image.new("RGB", (cols * size, len(examples) * (size + 12) + 14), "white")
    draw = ImageDraw.Draw(canvas)
    for j, scale in enumerate(scales):
        draw.text((size * (1 + j * samples) + 2, 1), f"guidance {scale:g}", fill=(0, 0, 0))
    for i, example in enumerate(examples):
        y = 14 + i * (size + 12)
        canvas.paste(Image.fromarray(example.target).resize((size, size), Image.NEAREST), (0, y))
        for j, scale in enumerate(scales):
            answers = generate_answers(model, mods, task, [example] * samples, guidance_scale=scale, do_sample=True,
                                       top_k=top_k, seed=seed + i)
            for k, answer in enumerate(answers):
                tile = Image.fromarray(answer.prediction).resize((size, size), Image.NEAREST)
                canvas.paste(tile, (size * (1 + j * samples + k), y))
        draw.text((2, y + size), example.prompt[:120], fill=(0, 0, 0))
    canvas.save(path)


def main(argv=None) -> int:
    import torch

    from unio.data.sources import build_source
    from unio.infer.evaluation import split_examples
    from unio.infer.model_folder import load_model_folder
    from unio.registries import TASKS
    args = parser().parse_args(argv)
    torch.set_grad_enabled(False)
    if args.tokenizers:
        return tokenizer_only(args)
    if not args.model:
        raise SystemExit("pass --model RUN (or --tokenizers FOLDER for the VQ-VAE alone)")
    scales = [float(s) for s in args.scales.split(",")]
    model, mods = load_model_folder(Path(args.model))
    res = model.config.image_size
    world = build_source("world", None, res)
    gen, inpaint = TASKS.get("generate"), TASKS.get("inpaint")
    examples = {name: split_examples(TASKS.get(name), world, args.split, args.n, res) for name in ("generate", "inpaint")}
    train = {name: split_examples(TASKS.get(name), world, "train", 500, res) for name in examples}
    report = {"model": str(args.model), "n": args.n, "split": args.split, "top_k": args.top_k, "seed": args.seed,
              "vq": vq_quality(mods, examples["generate"]), "baselines": baselines(mods, examples, train), "scales": {}}
    started = time.time()
    for scale in scales:
        greedy, _ = run_scale(model, mods, gen, examples["generate"], args.batch_size, guidance_scale=scale)
        sampled, _ = run_scale(model, mods, gen, examples["generate"], args.batch_size, guidance_scale=scale,
                               do_sample=True, top_k=args.top_k, seed=args.seed)
        report["scales"][str(scale)] = {
            "greedy": greedy, "sampled": sampled,
            "diversity": diversity_at(model, mods, gen, examples["generate"][:args.diversity_prompts], args.samples,
                                      scale, args.top_k, args.seed)}
        print(f"guidance {scale:g}: greedy {fmt(greedy)} | sampled {fmt(sampled)} | "
              f"diversity {report['scales'][str(scale)]['diversity']:.3f} ({time.time() - started:.0f} s)", flush=True)
    report["inpaint"], _ = run_scale(model, mods, inpaint, examples["inpaint"], args.batch_size)
    print_table(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    if args.grid:
        draw_grid(model, mods, gen, examples["generate"][:4], scales, args.samples, args.top_k, args.seed, Path(args.grid))
        print(f"wrote {args.grid}")
    return 0


def fmt(m: dict) -> str:
    return " ".join(f"{k} {m[k]:.3f}" for k in ("color_f1", "count_accuracy", "order_accuracy") if k in m)


def print_table(report: dict) -> None:
    print("\n| decoding | guidance | colour P / R / F1 | count acc | order acc | diversity |")
    print("|---|---|---|---|---|---|")
    for scale, row in report["scales"].items():
        for mode in ("greedy", "sampled"):
            m = row[mode]
            print(f"| {mode} | {float(scale):g} | {m['color_precision']:.3f} / {m['color_recall']:.3f} / "
                  f"{m['color_f1']:.3f} | {m['count_accuracy']:.3f} | {m['order_accuracy']:.3f} | "
                  f"{row['diversity'] if mode == 'sampled' else float('nan'):.3f} |")
    for name, m in report["baselines"]["generate"].items():
        print(f"| baseline {name} | | {m['color_precision']:.3f} / {m['color_recall']:.3f} / {m['color_f1']:.3f} | "
              f"{m['count_accuracy']:.3f} | {m['order_accuracy']:.3f} | |")
    ip = report["inpaint"]
    print(f"\ninpainting: PSNR in region {ip['psnr']:.2f} dB, SSIM {ip['ssim']:.3f}, whole image {ip['psnr_image']:.2f} dB")
    for name, m in report["baselines"]["inpaint"].items():
        print(f"  baseline {name}: PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.3f}")
    vq = report["vq"]
    print(f"VQ-VAE RGB round trip at {vq['grid']} ({vq['tokens']} codes): PSNR {vq['psnr']:.2f} dB "
          f"(object pixels {vq['psnr_objects']:.2f} dB)")


if __name__ == "__main__":
    raise SystemExit(main())
