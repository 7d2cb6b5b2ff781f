"""The Hugging Face way: UnioProcessor, the Auto classes and the model card, on a trained toy model.
Each must give what unio.run gives: they are the same path."""
import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import unio
from unio.data.world import World

PROMPTS = {"vqa": "What color is the cube?", "caption": "What does the image describe?",
           "refexp": 'Which region does the text "the cube" describe?', "depth": "What is the depth map of the image?"}


@pytest.fixture(scope="module")
def trained(modalities, tmp_path_factory):
    """A toy model trained a few steps by the Trainer and exported (model/ with processor and card)."""
    from unio.train.trainer import Trainer, TrainOptions
    root = tmp_path_factory.mktemp("hf")
    modalities.save(root / "tokenizers")
    opts = TrainOptions(tasks="vqa,caption,refexp,depth", preset="toy", steps=6, batch_size=4, warmup=2,
                        tokenizers=str(root / "tokenizers"), out=str(root / "run"), compile=False, progress=False,
                        data_workers=0, checkpoint_every=1000, log_every=1, spatial_first=0.0)
    trainer = Trainer(opts)
    trainer.train()
    trainer.export()
    return trainer


@pytest.fixture()
def image():
    return Image.fromarray(World("test")[0].image).resize((90, 60))   # non-square, not the model's size


def hf_answer(model, processor, prompt, image):
    inputs = processor(text=prompt, images=image, return_tensors="pt")
    task = processor.task_of(prompt)
    ids = model.generate(**inputs, **processor.generate_options(task))
    return ids[0], processor.post_process_generation(ids[0], task=task, image_size=image.size)


def test_auto_classes_load_the_folder_and_answer_as_unio_run(trained, image):
    from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoProcessor
    folder = trained.out / "model"
    assert isinstance(AutoConfig.from_pretrained(folder), unio.model.UnioConfig)
    model = AutoModelForSeq2SeqLM.from_pretrained(folder)
    processor = AutoProcessor.from_pretrained(folder)
    assert isinstance(model, unio.model.UnioModel) and isinstance(processor, unio.UnioProcessor)
    runner = unio.load(folder)
    for task, prompt in PROMPTS.items():
        ids, answer = hf_answer(model, processor, prompt, image)
        result = unio.run(prompt, image, model=runner)
        assert result.task == task and ids[1:1 + len(result.tokens)].tolist() == result.tokens
        assert set(answer) == {k for k in answer if getattr(result, k) is not None}
        for key, value in answer.items():
            if isinstance(value, str):
                assert value == getattr(result, key)
            else:
                np.testing.assert_allclose(np.asarray(value, float), np.asarray(getattr(result, key), float))
    assert answer["depth"].shape == (60, 90)


def test_the_image_text_to_text_pipeline_answers_as_unio_run(trained, image):
    """What the card's pipeline_tag promises, tried as a new user would: transformers.pipeline on the folder."""
    from transformers import pipeline
    folder = trained.out / "model"
    pipe = pipeline("image-text-to-text", model=str(folder))
    runner = unio.load(folder)
    for task, prompt in PROMPTS.items():
        result = unio.run(prompt, image, model=runner)
        out = pipe(images=image, text=prompt, return_full_text=False)
        assert out == [{"input_text": prompt, "generated_text": result.answer_text()}], task
    boxes = json.loads(pipe(images=image, text=PROMPTS["refexp"], return_full_text=False)[0]["generated_text"])
    assert boxes["boxes"] == unio.run(PROMPTS["refexp"], image, model=runner).boxes     # in the image's pixels
    vqa = unio.run(PROMPTS["vqa"], image, model=runner).text
    assert pipe(images=image, text=PROMPTS["vqa"])[0]["generated_text"] == PROMPTS["vqa"] + vqa   # the full text
    with pytest.raises(ValueError, match="bad_words_ids"):
        pipe(images=image, text=PROMPTS["vqa"], generate_kwargs={"bad_words_ids": [[5]]})


def test_processor_inputs_frame_the_image_and_rewrite_an_alias(trained, image):
    processor, mods = unio.UnioProcessor.from_pretrained(trained.out), trained.mods
    caption_prompt = unio.TASKS.get("caption").prompts[0]
    inputs = processor(text=["What is in the image?", caption_prompt], images=[image, image])
    assert inputs["pixel_values"].shape == (2, 3, 32, 32)
    assert torch.equal(inputs["input_ids"][0], inputs["input_ids"][1])     # the alias asks the task's own prompt
    content = inputs["pixel_values"][0, :, :21]                            # 90x60 -> 32x21, padded below
    assert content.abs().sum() > 0 and inputs["pixel_values"][0, :, 22:].abs().sum() == 0
    assert inputs["input_ids"][1, :inputs["attention_mask"][1].sum()].tolist() == mods.text_ids(caption_prompt)[:48]
    asked = "What does the region describe?"       # a task this model never trained: run as task= insists
    with pytest.warns(UserWarning, match="not trained on 'region_caption'"):
        boxed = processor(text=asked, images=image, regions=[0, 0, 45, 30], task="region_caption")
    assert boxed["attention_mask"].sum() == len(mods.text_ids(asked)) + 4        # a box's four location tokens
    with pytest.raises(ValueError, match="not trained on 'region_caption'; it was trained on: caption, depth"):
        processor(text=asked, images=image, regions=[0, 0, 45, 30])
    with pytest.raises(ValueError, match="text= and images="):
        processor(text="What color is the cube?")
    with pytest.raises(TypeError, match="list of images"):
        processor(text=["What color is the cube?"] * 2, images=np.zeros((2, 8, 8, 3), np.uint8))


def test_post_process_generation_takes_batches_and_generate_outputs(trained, image):
    model, processor = trained.model.eval(), unio.UnioProcessor.from_pretrained(trained.out)
    prompt = PROMPTS["refexp"]
    inputs = processor(text=[prompt, prompt], images=[image, image])
    out = model.generate(**inputs, **processor.generate_options("refexp", output_scores=True),
                         return_dict_in_generate=True)
    batch = processor.post_process_generation(out, task="refexp", image_size=[(90, 60), (180, 120)])
    (x1, y1, x2, y2), = batch[0]["boxes"]
    assert 0 <= x1 < x2 <= 90 and 0 <= y1 < y2 <= 60
    # twice the size, twice the box; a box squeezed to the one-pixel minimum (item 3 of issue 14) keeps 1 pixel
    assert np.allclose(np.asarray(batch[1]["boxes"]), 2 * np.asarray(batch[0]["boxes"]), atol=1.0)
    single = processor.post_process_generation(out.sequences[0], task="refexp", image_size=(90, 60))
    assert single == batch[0]
    in_frame = processor.post_process_generation(out.sequences[0], task="refexp")   # the model's 32 px frame
    assert max(in_frame["boxes"][0]) <= 32
    with pytest.raises(ValueError, match="num_beams"):
        processor.generate_options("refexp", num_beams=0)


def test_the_processor_path_decodes_depth_from_the_steps_and_refuses_unpooled_relations(trained, image):
    model = trained.model.eval()
    processor = unio.UnioProcessor.for_model(model.config, trained.mods, task_options={"depth": {"decoding": "expected"}})
    plain = unio.UnioProcessor.for_model(model.config, trained.mods)
    inputs = processor(text="What is the depth map of the image?", images=image)
    out = model.generate(**inputs, **processor.generate_options("depth", output_scores=True), return_dict_in_generate=True)
    expected = processor.post_process_generation(out, task="depth", image_size=image.size)[0]["depth"]
    likeliest = plain.post_process_generation(out, task="depth", image_size=image.size)[0]["depth"]
    assert expected.shape == likeliest.shape == (60, 90) and not np.allclose(expected, likeliest)
    np.testing.assert_array_equal(processor.post_process_generation(out.sequences, task="depth",
                                                                    image_size=image.size)[0]["depth"], likeliest)
    pooled = unio.UnioProcessor.for_model(model.config, trained.mods, task_options={"relations": {"samples": 4}})
    with pytest.raises(ValueError, match="pools its greedy answer"):
        pooled.generate_options("relations")
    assert pooled.generate_options("relations", do_sample=True)["do_sample"] is True


def test_processor_saves_and_loads_beside_any_folder(trained, image, tmp_path):
    processor = unio.UnioProcessor.from_pretrained(trained.out / "model")
    processor.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "processor_config.json").read_text())["processor_class"] == "UnioProcessor"
    again = unio.UnioProcessor.from_pretrained(tmp_path)   # no config.json there: its own settings
    assert (again.image_size, again.max_text_length, again.max_target_length) == (32, 48, 64)
    a, b = processor(text=PROMPTS["vqa"], images=image), again(text=PROMPTS["vqa"], images=image)
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a if k != "unio_asked")


def card_parts(path):
    text = path.read_text()
    assert text.startswith("---\n")
    _, meta, body = text.split("---\n", 2)
    return yaml.safe_load(meta), body


def test_the_exported_folder_has_a_model_card_of_its_run(trained):
    from unio.infer.processor import recognise
    meta, body = card_parts(trained.out / "model" / "README.md")
    assert meta["library_name"] == "unio" and {"vqa", "caption", "refexp", "depth"} <= set(meta["tags"])
    assert "model-index" not in meta                          # not evaluated yet
    for name in PROMPTS:
        assert all(f"`{p}`" in body for p in unio.TASKS.get(name).prompts)
        assert f"| {name} | world | {getattr(unio.TASKS.get(name), 'weight', 1):g} |" in body   # the weight it declares
    assert "- steps: 6" in body and "AutoProcessor.from_pretrained" in body
    assert meta["license"] == "apache-2.0" and meta["pipeline_tag"] == "image-text-to-text"
    assert {"visual-question-answering", "image-to-text", "zero-shot-object-detection", "depth-estimation"} <= set(meta["tags"])
    assert "| vqa | visual-question-answering | text |" in body and "| depth | depth-estimation | depth |" in body
    assert [w["example_title"] for w in meta["widget"]] == ["vqa", "caption", "refexp", "depth"]
    assert all(recognise(w["text"]) == w["example_title"] for w in meta["widget"])
    for section in ("## Intended use and limitations", "## License", "## Citation", "@article{lu2022unifiedio",
                    'pipeline("image-text-to-text"'):
        assert section in body, section


def test_the_train_cli_adds_the_evaluation_to_the_card(trained):
    from unio.train.cli import finish
    finish(trained, 2)
    evaluation = json.loads((trained.out / "eval.json").read_text())
    meta, body = card_parts(trained.out / "model" / "README.md")
    index = {r["task"]["name"]: r for r in meta["model-index"][0]["results"]}
    assert set(index) == set(evaluation["model"]) == set(PROMPTS)
    headline = unio.TASKS.get("refexp").headline
    value = evaluation["model"]["refexp"][headline]
    assert {"type": headline, "name": headline, "value": round(value, 4)} in index["refexp"]["metrics"]
    assert f"| refexp | **{headline}** | {value:.3f} |" in body
    key = unio.TASKS.get("vqa").headline
    majority = evaluation["baselines"]["vqa"]["majority"][key]
    assert f"| vqa | **{key}** | {evaluation['model']['vqa'][key]:.3f} | majority {majority:.3f}" in body


def test_auto_processor_reads_a_folder_saved_before_processors(modalities, tiny_config, tmp_path):
    """A model folder without processor_config.json (as unio wrote them before): the config's settings."""
    from transformers import AutoProcessor
    unio.model.UnioModel(tiny_config).save_pretrained(tmp_path)
    modalities.save(tmp_path / "tokenizers")
    processor = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(processor, unio.UnioProcessor)
    assert (processor.image_size, processor.max_text_length) == (tiny_config.image_size, tiny_config.max_text_length)
    assert processor.modalities.vocab.size == tiny_config.vocab_size
