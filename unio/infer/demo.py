"""`unio demo [MODEL]`: a local web page (Gradio, `pip install ".[demo]"`) where a person picks a sample
world image or uploads one, draws the region a prompt asks about with two clicks, types a prompt or picks
one of the trained tasks', and sees the answer drawn (boxes with labels, masks, depth as a colour map,
keypoints, generated images) with its text and JSON. The page names the loaded model and its trained tasks."""
import json
import tempfile
from pathlib import Path

import numpy as np

from unio.infer.calls import worded
from unio.task import region_boxes

SAMPLES = 4   # sample world images offered
REGION = (255, 210, 0)   # the drawn region's colour


def example_prompts(trained: list | None = None) -> list:
    """(label, prompt) for each registered task the model answers (`trained`: the tasks it trained on, and
    those answered through them; None: every task), its slots filled from a world scene (the task's own example)."""
    from unio.infer.prompts import example_prompts as task_prompts
    from unio.registries import TASKS
    names = [n for n in TASKS.names()
             if trained is None or n in trained or getattr(TASKS.get(n), "via", None) in trained]
    prompts = {}
    for name, prompt in task_prompts(names).items():
        prompts.setdefault(prompt, f"{name}: {prompt}")
    return [(label, prompt) for prompt, label in prompts.items()]


def preset_of(folder: Path | None) -> str | None:
    """The model's size preset, as its model card (README.md) or its run's options.json records it."""
    if folder is None:
        return None
    card, options = Path(folder) / "README.md", Path(folder).parent / "options.json"
    if card.exists():
        for line in card.read_text().splitlines():
            if line.startswith("- preset: "):
                return line.removeprefix("- preset: ").strip()
    if options.exists():
        return json.loads(options.read_text()).get("preset")
    return None


def model_summary(runner) -> str:
    """Markdown naming the loaded model (its folder, preset and size) and the tasks it trained on."""
    config, folder = runner.model.config, runner.path
    name = folder.parent.name if folder is not None and folder.name == "model" else getattr(folder, "name", "?")
    if folder is not None and folder.resolve().is_relative_to(Path.cwd()):
        folder = folder.resolve().relative_to(Path.cwd())
    params = sum(p.numel() for p in runner.model.parameters())
    size = (f"{params / 1e6:.2f} M parameters (width {config.d_model}, {config.encoder_layers}+"
            f"{config.decoder_layers} layers, {config.image_size}-pixel input)")
    trained = config.trained_tasks
    tasks = (", ".join(f"`{t}`" for t in trained) if trained is not None
             else "not recorded (a model saved before v0.3): every registered task is offered")
    return (f"**Model** `{name}` ({folder}) · preset {preset_of(runner.path) or 'not recorded'} · {size}  \n"
            f"**Trained tasks** {tasks}")


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


def parse_region(text: str | None):
    """'x1, y1, x2, y2' (pixels) -> a box; 'x1, y1, x2, y2; x1, y1, x2, y2' -> two boxes (a pair: the
    subject's, then the object's); '' -> None."""
    if not text or not text.strip():
        return None
    parts = [part for part in text.split(";") if part.strip()]
    boxes = [_box(part, text, several=len(parts) > 1) for part in parts]
    return boxes[0] if len(boxes) == 1 else boxes


def _box(part: str, text: str, several: bool) -> list:
    try:
        values = [float(v) for v in part.replace(",", " ").split()]
    except ValueError:
        values = []
    if len(values) != 4:
        pair = " (a pair: x1, y1, x2, y2; x1, y1, x2, y2)" if several else ""
        raise ValueError(f"a region is four numbers x1, y1, x2, y2 in the image's pixels{pair}, got {text!r}")
    return values


def drawn_boxes(corners: list) -> list:
    """The boxes the corners draw: each pair of corners, one box."""
    return [corner_box(corners[k:k + 2]) for k in range(0, len(corners) - 1, 2)]


def with_region(image: np.ndarray, corners: list) -> np.ndarray:
    """The image with the region drawn on a copy: a box over each two corners (two boxes for a pair), a cross
    at a single corner."""
    from PIL import Image, ImageDraw
    shown = Image.fromarray(np.asarray(image, np.uint8)).convert("RGB")
    draw, width = ImageDraw.Draw(shown), max(1, min(shown.size) // 100)
    if len(corners) == 1:
        (x, y), r = corners[0], max(3, min(shown.size) // 40)
        draw.line([(x - r, y), (x + r, y)], fill=REGION, width=width)
        draw.line([(x, y - r), (x, y + r)], fill=REGION, width=width)
    for box in drawn_boxes(corners):
        draw.rectangle(box, outline=REGION, width=width)
    return np.asarray(shown)


def corner_box(corners: list) -> list:
    """Two clicked pixels -> [x1, y1, x2, y2] with x1 < x2 and y1 < y2 (at least a pixel wide and high)."""
    (ax, ay), (bx, by) = corners
    x1, y1 = min(ax, bx), min(ay, by)
    return [x1, y1, max(ax, bx, x1 + 1), max(ay, by, y1 + 1)]


def click(image, corners: list, point) -> tuple:
    """A click at `point` (x, y in the image's pixels): the first sets one corner, the second the opposite
    one and fills the region; a third starts a new box. -> (image shown, corners, region text)."""
    corners = [list(point)] if len(corners) != 1 else [*corners, list(point)]
    region = ", ".join(f"{v:g}" for v in corner_box(corners)) if len(corners) == 2 else ""
    return with_region(image, corners), corners, region


def typed(image, text: str, corners: list):
    """A typed region (one box, or two split by ';') drawn on the image shown -> (image shown, corners), or
    None where the drawing would not change (the boxes already drawn, or none typed and none drawn); an
    unreadable region draws nothing."""
    try:
        region = parse_region(text)
    except ValueError:
        region = None
    boxes = [] if region is None else region_boxes(region)
    if boxes == drawn_boxes(corners):   # a single corner (a cross) draws no box: it stays
        return None
    corners = [point for box in boxes for point in (box[:2], box[2:])]
    return with_region(image, corners), corners


def fresh(image) -> tuple:
    """A newly loaded image: kept clean (what the model is asked about), no corners, no region."""
    return image, [], ""


def answer(runner, image, prompt, region: str | None = None):
    """(drawn answer, text, JSON) for the page; a bad input or a failure is a message, never a trace."""
    if image is None:
        return None, "Error: pick a sample image or upload one first.", {}
    if not prompt or not prompt.strip():
        return None, "Error: type a prompt or pick an example.", {}
    try:
        box = parse_region(region)
        with worded("demo"):
            result = runner([prompt], [image], regions=[box])[0]
    except Exception as error:   # shown to the person, who can fix the input
        return None, f"Error: {error}", {}
    info = result.summary() | ({"region": box} if box else {})   # the region asked about, as the model got it
    text = result.text or "; ".join(f"{k}: {v}" for k, v in info.items() if k not in ("task", "prompt", "score"))
    return np.asarray(result.draw()), f"[{result.task or 'free text'}] {text}", info


def build(runner, samples: list, prompts: list, about: str = ""):
    """The page. The image shown carries the drawn region; the State `clean` holds the image as loaded,
    which is what the model is asked about."""
    import gradio as gr
    with gr.Blocks(title="unio demo") as page:
        gr.Markdown("# unio\nPick or upload an image, type a prompt (or pick one), and press **Ask**. For a "
                    "prompt about a region, click two opposite corners of it on the image.")
        gr.Markdown(about, elem_id="model")
        clean, corners = gr.State(None), gr.State([])
        region = gr.Textbox(label="region (x1, y1, x2, y2 in the image's pixels; drawn or typed; a pair of regions "
                                  "typed: x1, y1, x2, y2; x1, y1, x2, y2)", elem_id="region", lines=1, scale=4,
                            render=False)
        with gr.Row():
            with gr.Column():
                image = gr.Image(type="numpy", label="image (click two corners to draw a region)", elem_id="image",
                                 sources=["upload"], height=300, format="png")   # png: no lossy edges
                gr.Examples(samples, inputs=[image], outputs=[clean, corners, region], fn=fresh, run_on_click=True,
                            cache_examples=False, label="sample world images", elem_id="samples")
                pick = gr.Dropdown(prompts, value=None, label="example prompts (the model's trained tasks)",
                                   elem_id="pick")
                prompt = gr.Textbox(label="prompt", elem_id="prompt", lines=1)
                with gr.Row():
                    region.render()
                    unset = gr.Button("clear region", elem_id="clear-region", scale=1)
                ask = gr.Button("Ask", variant="primary", elem_id="ask")
            with gr.Column():
                drawn = gr.Image(label="answer", elem_id="drawn", interactive=False, height=300, format="png")
                text = gr.Textbox(label="answer text", elem_id="answer", interactive=False)
                data = gr.JSON(label="result", elem_id="json", max_height=240)
        wire(runner, image, clean, corners, region, unset, pick, prompt, ask, (drawn, text, data))
    return page


def wire(runner, image, clean, corners, region, unset, pick, prompt, ask, outputs) -> None:
    """The page's events: a loaded image starts clean with no region; clicks and typing draw the region
    on the image shown; Ask (or Enter) answers about the clean image."""
    import gradio as gr

    # (this module has no `from __future__ import annotations`: Gradio finds the click's data by this annotation)
    def on_select(base, shown, points, evt: gr.SelectData):
        base = shown if base is None else base
        return base, *click(base, points, evt.index)

    def on_type(base, shown, points, text):   # left alone when unchanged: no image reloads under a click
        base = shown if base is None else base
        update = typed(base, text, points) if base is not None else None
        return update or (gr.skip(), gr.skip())

    image.upload(fresh, image, [clean, corners, region])
    image.clear(lambda: (None, [], ""), None, [clean, corners, region])
    image.select(on_select, [clean, image, corners], [clean, image, corners, region])
    region.blur(on_type, [clean, image, corners, region], [image, corners])
    unset.click(lambda b, i: (i if b is None else b, [], ""), [clean, image], [image, corners, region])
    pick.change(lambda p: p, pick, prompt)
    for event in (ask.click, prompt.submit, region.submit):
        event(lambda b, i, p, r: answer(runner, i if b is None else b, p, r), [clean, image, prompt, region],
              list(outputs))


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
    page = build(runner, sample_images(folder), example_prompts(runner.model.config.trained_tasks), model_summary(runner))
    page.launch(server_name=host, server_port=port, allowed_paths=[str(folder)], show_error=False)
