"""Text to image and inpainting (tasks/generate.py, tasks/inpaint.py) and classifier-free guidance."""
import numpy as np
import pytest
import torch
from conftest import overfit, run_script, world_examples

import unio
from unio.data.batching import Collator
from unio.data.encoding import encode_inputs
from unio.data.world import World
from unio.infer.pipeline import ClassifierFreeGuidance, check_generation_options, generate_answers
from unio.infer.runner import Runner
from unio.model import UnioModel
from unio.registries import TASKS
from unio.vocab import EOS


@pytest.fixture()
def model(tiny_config):
    torch.manual_seed(0)
    return UnioModel(tiny_config).eval()


def collator(modalities):
    return Collator({n: TASKS.get(n) for n in ("generate", "inpaint", "caption")}, modalities, 48, 40)


def codes_of(answers):
    return [a.ids for a in answers]


def test_guidance_at_scale_zero_equals_plain_decoding(model, modalities):
    task = TASKS.get("generate")
    examples = world_examples(task, "test", 4, 32)
    plain = generate_answers(model, modalities, task, examples)
    guided = generate_answers(model, modalities, task, examples, guidance_scale=0.0)
    assert codes_of(guided) == codes_of(plain)
    assert [a.score for a in guided] == pytest.approx([a.score for a in plain], abs=1e-4)
    sampled = dict(do_sample=True, top_k=20, top_p=0.9, temperature=1.3, seed=5)
    assert codes_of(generate_answers(model, modalities, task, examples, guidance_scale=0, **sampled)) == \
        codes_of(generate_answers(model, modalities, task, examples, **sampled))
    strong = generate_answers(model, modalities, task, examples, guidance_scale=10.0)
    assert codes_of(strong) != codes_of(plain)        # guidance does change the answers


def test_a_tasks_guidance_option_is_the_scale_its_answers_are_decoded_at(model, modalities):
    from unio.task_set import TaskSet
    plain_task, examples = TASKS.get("generate"), world_examples(TASKS.get("generate"), "test", 4, 32)
    guided_task = TaskSet({"generate": {"guidance": 3}}).get("generate")
    assert guided_task.guidance == 3.0 and plain_task.guidance is None
    assert codes_of(generate_answers(model, modalities, guided_task, examples)) == \
        codes_of(generate_answers(model, modalities, plain_task, examples, guidance_scale=3.0)) != \
        codes_of(generate_answers(model, modalities, plain_task, examples))
    assert codes_of(generate_answers(model, modalities, guided_task, examples, guidance_scale=0.0)) == \
        codes_of(generate_answers(model, modalities, plain_task, examples))    # the caller's scale wins
    for task in ("generate", "map_to_image"):
        assert TaskSet({task: {"guidance": 1.5}}).get(task).guidance == 1.5
        for bad in (-1, float("nan"), "high", True):
            with pytest.raises(ValueError, match="guidance is a classifier-free guidance scale"):
                TaskSet({task: {"guidance": bad}})


def test_guidance_listed_as_candidates_is_chosen_on_validation(model, modalities, monkeypatch):
    """unio.infer.choices: each candidate scale decoded on validation, the best headline kept (the first of a
    tie; the least where lower is better), set on the task and in the model's task options; until then answers
    refuse to decode at a list, naming the way out."""
    import unio.infer.choices as choices
    from unio.task_set import TaskSet
    tasks = TaskSet({"generate": {"guidance": [1, 3, 5]}, "map_to_image": {"guidance": [0, 2]}})
    assert tasks.get("generate").guidance == (1.0, 3.0, 5.0)
    with pytest.raises(ValueError, match="names the candidate scales"):
        TaskSet({"generate": {"guidance": []}})
    with pytest.raises(ValueError, match="a list of such scales"):
        TaskSet({"generate": {"guidance": [2, -1]}})
    examples = world_examples(TASKS.get("generate"), "test", 2, 32)
    with pytest.raises(ValueError, match=r"still a list of candidate scales \[1.0, 3.0, 5.0\].*guidance_scale"):
        generate_answers(model, modalities, tasks.get("generate"), examples)
    metric = {"generate": {1.0: 0.5, 3.0: 0.8, 5.0: 0.8}, "map_to_image": {0.0: 0.4, 2.0: 0.3}}
    seen = []

    def evaluate_model(model, mods, pairs, sources, split, n, progress=False, bad=None, tasks=None, guidance_scale=None):
        (task, source), = pairs
        seen.append((task, split, n, guidance_scale))
        return {task: {TASKS.get(task).headline: metric[task][guidance_scale], "n": n}}
    monkeypatch.setattr(choices, "evaluate_model", evaluate_model)
    model.config.task_options = {}
    pairs = [("generate", "world"), ("caption", "world"), ("map_to_image", "world")]
    chosen = choices.choose_guidance(model, modalities, tasks, pairs, {"world": None}, n=7)
    assert {t: c["guidance"] for t, c in chosen.items()} == {"generate": 3.0, "map_to_image": 0.0}
    assert chosen["generate"]["validation"] == {"1.0": 0.5, "3.0": 0.8, "5.0": 0.8}
    assert seen[:3] == [("generate", "validation", 7, 1.0), ("generate", "validation", 7, 3.0),
                        ("generate", "validation", 7, 5.0)] and len(seen) == 5
    assert tasks.get("generate").guidance == 3.0 and model.config.task_options["map_to_image"] == {"guidance": 0.0}
    assert "generate: guidance 3.0 chosen on validation (color_f1 0.500 at 1.0" in choices.describe(chosen)
    monkeypatch.setattr(type(tasks.get("map_to_image")), "lower_is_better", True, raising=False)
    tasks.get("map_to_image").guidance = (0.0, 2.0)
    assert choices.choose_guidance(model, modalities, tasks, pairs, {"world": None}, n=7)["map_to_image"]["guidance"] == 2.0
    assert choices.choose_guidance(model, modalities, tasks, pairs, {"world": None}, n=7) == {}   # nothing left to choose


def test_guidance_mixes_log_probabilities():
    torch.manual_seed(0)
    scores = torch.randn(4, 10)
    scores[:, 7:] = torch.finfo(scores.dtype).min      # what a grammar closed
    guidance = ClassifierFreeGuidance(2.0, rows=2)
    out = guidance(torch.zeros(4, 1, dtype=torch.long), scores.clone())
    logp = scores.log_softmax(-1)
    expected = 3.0 * logp[:2, :7] - 2.0 * logp[2:, :7]
    assert torch.allclose(out[:2, :7], expected, atol=1e-5) and torch.equal(out[:2], out[2:])
    assert (out[:, 7:] == torch.finfo(torch.float32).min).all()


def test_generation_options_are_checked(model, modalities):
    for bad in (-1, float("nan"), "3", True):
        with pytest.raises(ValueError, match="guidance_scale"):
            check_generation_options({"guidance_scale": bad})
    with pytest.raises(ValueError, match="seed"):
        check_generation_options({"seed": -2})
    examples = world_examples(TASKS.get("caption"), "test", 1, 32)
    with pytest.raises(ValueError, match="tasks with guidance: .*generate"):
        generate_answers(model, modalities, TASKS.get("caption"), examples, guidance_scale=1.0)
    with pytest.raises(ValueError, match="num_beams"):
        generate_answers(model, modalities, TASKS.get("generate"), world_examples(TASKS.get("generate"), "test", 1, 32),
                         guidance_scale=1.0, num_beams=2)
    processor = Runner(model, modalities).processor
    with pytest.raises(ValueError, match="guidance_scale is applied by unio.run"):
        processor.generate_options("generate", guidance_scale=2.0)


def test_same_seed_same_images(model, modalities):
    runner = Runner(model, modalities)
    generate = unio.generate
    first = generate("a large red cube.", n=3, seed=7, model=runner)
    again = generate("a large red cube.", n=3, seed=7, model=runner)
    other = generate("a large red cube.", n=3, seed=8, model=runner)
    assert all(np.array_equal(a.generated_image, b.generated_image) for a, b in zip(first, again))
    assert any(not np.array_equal(a.generated_image, b.generated_image) for a, b in zip(first, other))
    assert not np.array_equal(first[0].generated_image, first[1].generated_image)   # n samples differ
    assert first[0].generated_image.shape == (32, 32, 3) and first[0].generated_image.dtype == np.uint8
    sized = generate("a small blue cone.", n=1, size=(48, 30), seed=0, model=runner)[0]
    assert sized.generated_image.shape == (30, 48, 3)                      # the requested size


def test_answers_are_always_a_full_grid(model, modalities):
    side = 32 // modalities["vq"].downsample
    vq = modalities.vocab.range("vq")
    grammar = TASKS.get("generate").grammar(modalities, 32)
    for options in ({}, {"do_sample": True, "seed": 1}, {"guidance_scale": 3.0, "do_sample": True, "seed": 2}):
        for task in ("generate", "inpaint") if "guidance_scale" not in options else ("generate",):
            answers = generate_answers(model, modalities, TASKS.get(task), world_examples(TASKS.get(task), "test", 3, 32),
                                       **options)
            for a in answers:
                assert len(a.ids) == side * side and all(vq.start <= t < vq.start + vq.size for t in a.ids)
                assert grammar.accepts(a.ids + [EOS], modalities.vocab)


def test_inpainting_leaves_pixels_outside_the_region_unchanged(model, modalities):
    runner = Runner(model, modalities)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)          # not square, not the model's size
    region = [10.4, 5.0, 33.0, 27.6]
    result = unio.run("Fill in the region.", image, region=region, model=runner)
    out = result.generated_image
    assert out.shape == image.shape
    inside = np.zeros(image.shape[:2], bool)
    inside[5:28, 10:33] = True
    assert np.array_equal(out[~inside], image[~inside])
    assert not np.array_equal(out[inside], image[inside])
    with pytest.raises(ValueError, match="region"):
        unio.run("Fill in the region.", image, model=runner)


def test_inpainting_example_blanks_its_region():
    task = TASKS.get("inpaint")
    ex = world_examples(task, "train", 1, 64)[0]
    x1, y1, x2, y2 = (int(v) for v in ex.region)
    assert (ex.image[y1:y2, x1:x2] == 128).all() and 16 <= x2 - x1 <= 32 and 16 <= y2 - y1 <= 32
    outside = np.ones((64, 64), bool)
    outside[y1:y2, x1:x2] = False
    assert np.array_equal(ex.image[outside], ex.target[outside])


def test_prompts_without_images_read_as_text_alone(model, modalities):
    """In a batch shared with image tasks, a prompt without an image gets the encoder outputs (at its
    text) and answers it would get alone; batches with images everywhere keep their old inputs."""
    gen = world_examples(TASKS.get("generate"), "test", 2, 32)
    cap = world_examples(TASKS.get("caption"), "test", 2, 32)
    alone = encode_inputs(gen, modalities, 48)
    assert "pixel_values" not in alone and "image_mask" not in alone
    mixed = encode_inputs(gen + cap, modalities, 48)
    assert mixed["image_mask"].tolist() == [False, False, True, True]
    assert set(encode_inputs(cap, modalities, 48)) == {"pixel_values", "input_ids", "attention_mask"}
    with torch.no_grad():
        a = model.get_encoder()(**alone).last_hidden_state
        b = model.get_encoder()(**mixed).last_hidden_state
        patches = b.shape[1] - mixed["input_ids"].shape[1]
        t = alone["input_ids"].shape[1]
        assert torch.allclose(a, b[:2, patches:patches + t], atol=1e-5)
    mixed_batch, gen_batch = collator(modalities)(gen + cap), collator(modalities)(gen)
    with torch.no_grad():
        mixed_logits = model(**mixed_batch).logits[:2]
        gen_logits = model(**gen_batch).logits
    length = gen_logits.shape[1]
    assert torch.allclose(mixed_logits[:, :length], gen_logits, atol=1e-4)   # the same decoder inputs and memory


def test_null_prompts_only_in_training():
    task = TASKS.get("generate")
    record = {"image": World("train", 32)[0].image, "captions": ["a small red cube."], "id": "x"}
    from unio.data.records import make_example
    rng = np.random.default_rng(0)
    drawn = [task.for_training(make_example(task, record, 32, rng), rng).prompt for _ in range(2000)]
    assert 0.07 < np.mean([p == task.null_prompt for p in drawn]) < 0.13
    assert all(ex.prompt != task.null_prompt for ex in world_examples(task, "test", 50, 32))


def test_palette_reader_on_gold_images():
    task = TASKS.get("generate")
    examples = world_examples(task, "test", 40, 64)
    metrics = task.evaluate([ex.target for ex in examples], examples)
    assert metrics["color_f1"] > 0.99 and metrics["count_accuracy"] > 0.8
    blank = task.evaluate([np.zeros((64, 64, 3), np.uint8)] * 40, examples)
    assert blank["color_f1"] == 0 and blank["count_accuracy"] == 0


def test_inpainting_metrics_and_baselines(modalities):
    task = TASKS.get("inpaint")
    examples = world_examples(task, "test", 8, 32)
    from unio.infer.evaluation import score
    perfect = score(task, [task._prediction(ex.target, ex) for ex in examples], examples)
    assert perfect["psnr"] == 100 and perfect["ssim"] == pytest.approx(1.0)
    mean_fill = task.baselines()["mean_fill"](examples, modalities)
    filled = score(task, [mean_fill(ex) for ex in examples], examples)
    assert 5 < filled["psnr"] < 40 and filled["psnr_image"] > filled["psnr"]


def test_tiny_model_overfits_a_batch(tiny_config, modalities):
    torch.manual_seed(0)
    model = UnioModel(tiny_config)
    task = TASKS.get("generate")
    examples = world_examples(task, "train", 4, 32)
    batch = collator(modalities)(examples)
    model.train()
    assert overfit(model, batch, 150) < 0.05
    gold = collator(modalities).target_ids(examples)
    assert codes_of(generate_answers(model, modalities, task, examples)) == [list(g) for g in gold]


def test_toy_training_run_through_the_script(tmp_path, all_tasks_run):
    """The session's toy run of every task (generate, inpaint and caption among them) through the script."""
    out, stdout = all_tasks_run.out, all_tasks_run.stdout
    assert "generate" in stdout and "color_f1" in stdout and "inpaint" in stdout
    assert (out / "report.png").is_file() and (out / "eval.json").is_file()
    sample = unio.generate("a large red cube.", n=2, seed=0, model=str(out))
    assert len(sample) == 2 and sample[0].generated_image.shape == (32, 32, 3)
    from unio.cli import main
    png = tmp_path / "image.png"
    assert main(["run", "Generate an image of: a small green cone.", "--model", str(out), "--out", str(png),
                 "--sample", "--top-k", "20", "--seed", "1", "--guidance-scale", "3"]) == 0
    from PIL import Image
    assert Image.open(png).size[0] == 32


def test_sampled_answers_get_a_finite_score_when_a_padding_token_was_filtered_out():
    """Under top-k a row that ended early has PAD at -inf after its EOS: its score must still be finite
    (the mean log-probability of the tokens it chose), never NaN."""
    import math
    from types import SimpleNamespace

    import torch

    from unio.infer.pipeline import token_scores
    from unio.vocab import EOS, PAD
    vocab = max(EOS, PAD) + 3
    step = torch.zeros(2, vocab)
    step[:, PAD] = float("-inf")
    sequences = torch.tensor([[PAD, EOS, PAD], [PAD, vocab - 1, EOS]])
    (score0, logps0), (score1, logps1) = token_scores(SimpleNamespace(sequences=sequences, scores=(step, step)))
    expected = -math.log(vocab - 1)
    assert math.isclose(score0, expected, rel_tol=1e-5) and len(logps0) == 1
    assert math.isclose(score1, expected, rel_tol=1e-5) and len(logps1) == 2


def test_evaluation_guides_the_tasks_that_take_guidance_and_decodes_the_others_greedily(model, modalities, monkeypatch):
    import unio.infer.evaluation as evaluation
    from unio.data.sources import build_source
    calls = {}

    def predict(model, mods, task, examples, **options):
        calls[task.name] = options
        return [None] * len(examples)
    monkeypatch.setattr(evaluation, "predict", predict)
    monkeypatch.setattr(evaluation, "score", lambda task, predictions, examples: {"n": len(predictions)})
    sources = {"world": build_source("world", None, 32)}
    pairs = [("generate", "world"), ("caption", "world")]
    evaluation.evaluate_model(model, modalities, pairs, sources, n=2, guidance_scale=1.5)
    assert calls["generate"].get("guidance_scale") == 1.5 and "guidance_scale" not in calls["caption"]
    evaluation.evaluate_model(model, modalities, pairs, sources, n=2)
    assert "guidance_scale" not in calls["generate"]
    from unio.train.eval_cli import parser
    assert parser().parse_args(["--model", "m", "--guidance-scale", "1"]).guidance_scale == 1.0
