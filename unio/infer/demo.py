"""`unio demo [MODEL]`: a local web page (Gradio, `pip install ".[demo]"`) where a person picks a sample
world image or uploads one, types a prompt or picks one of each task's, and sees the answer drawn
(boxes with labels, masks, depth as a colour map, keypoints, generated images) with its text and JSON."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

SAMPLES = 4   # sample world images offered


def example_prompts(trained: list | None = None) -> list:
    """One prompt per registered task the model answers (`trained`: the tasks it trained on, and those
    answered through them; None: every task), its slots filled from a world scene (the task's own example)."""
    from unio.data.mixture import DEFAULT_SOURCE
    from unio.data.records import make_example
    from unio.data.sources import build_source
    from unio.registries import TASKS
    record = build_source(DEFAULT_SOURCE, None, 64).split("test")[0]
    prompts = []
    for name in TASKS.names():
        if trained is not None and name not in trained and getattr(TASKS.get(name), "via", None) not in trained:
            continue
        try:
            prompts.append(make_example(TASKS.get(name), record, 64, np.random.default_rng(0)).prompt)
        except Exception:   # a task whose records the world lacks offers no example
            continue
    return list(dict.fromkeys(prompts))


def sample_images(folder: Path, n: int = SAMPLES) -> list:
    """PNG files of the first test scenes of the world, for the page's examples."""
    from PIL import Image

    from unio.data.world import World
    world = World("test")
    paths = []
    for i in range(n):
        path = folder / f"scene{i}.png"
        Image.fromarray(world[i].image).resize((256, 256), Image.NEAREST).save(path)
        paths.append(str(path))
    return paths


def summary(result) -> dict:
    """A result's filled fields as JSON: arrays by shape and range, the rest as they are."""
    import dataclasses
    skip = {"image", "tokens", "extras"}
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result) if f.name not in skip}
    out = {}
    for key, value in {**fields, **result.extras}.items():
        if isinstance(value, np.ndarray):
            out[key] = {"shape": list(value.shape), "min": float(value.min()), "max": float(value.max())}
        elif value is not None:
            out[key] = value if isinstance(value, (str, int, float, list, dict)) else repr(value)
    return out


def parse_region(text: str | None):
    """'x1, y1, x2, y2' (pixels) -> a box, '' -> None."""
    if not text or not text.strip():
        return None
    values = [float(v) for v in text.replace(",", " ").split()]
    if len(values) != 4:
        raise ValueError(f"a region is four numbers x1, y1, x2, y2 in the image's pixels, got {text!r}")
    return values


def answer(runner, image, prompt, region: str | None = None):
    """(drawn answer, text, JSON) for the page; a bad input or a failure is a message, never a trace."""
    if image is None:
        return None, "Error: pick a sample image or upload one first.", {}
    if not prompt or not prompt.strip():
        return None, "Error: type a prompt or pick an example.", {}
    try:
        result = runner([prompt], [image], regions=[parse_region(region)])[0]
    except Exception as error:   # shown to the person, who can fix the input
        return None, f"Error: {error}", {}
    info = summary(result)
    text = result.text or "; ".join(f"{k}: {v}" for k, v in info.items() if k not in ("task", "prompt", "score"))
    return np.asarray(result.draw()), f"[{result.task or 'free text'}] {text}", info


def build(runner, samples: list, prompts: list):
    import gradio as gr
    with gr.Blocks(title="unio demo") as page:
        gr.Markdown("# unio\nPick or upload an image, type a prompt (or pick one), and press **Ask**.")
        with gr.Row():
            with gr.Column():
                image = gr.Image(type="numpy", label="image", elem_id="image", sources=["upload"], height=300)
                gr.Examples(samples, inputs=[image], label="sample world images")
                pick = gr.Dropdown(prompts, label="example prompts", elem_id="pick")
                prompt = gr.Textbox(label="prompt", elem_id="prompt", lines=1)
                region = gr.Textbox(label="region the prompt asks about (x1, y1, x2, y2 in pixels; optional)",
                                    elem_id="region", lines=1)
                ask = gr.Button("Ask", variant="primary", elem_id="ask")
            with gr.Column():
                drawn = gr.Image(label="answer", elem_id="drawn", interactive=False, height=300)
                text = gr.Textbox(label="answer text", elem_id="answer", interactive=False)
                data = gr.JSON(label="result", elem_id="json")
        pick.change(lambda p: p, pick, prompt)
        for event in (ask.click, prompt.submit, region.submit):
            event(lambda i, p, r: answer(runner, i, p, r), [image, prompt, region], [drawn, text, data])
    return page


def main(model=None, host: str = "127.0.0.1", port: int = 7860) -> None:
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise SystemExit('the demo needs Gradio: pip install ".[demo]"') from None
    import unio
    try:
        runner = unio.load(model)
    except (FileNotFoundError, ValueError) as error:   # no model, or a broken folder: say which
        raise SystemExit(str(error)) from None
    folder = Path(tempfile.mkdtemp(prefix="unio_demo_"))
    page = build(runner, sample_images(folder), example_prompts(runner.model.config.trained_tasks))
    page.launch(server_name=host, server_port=port, allowed_paths=[str(folder)], show_error=False)
