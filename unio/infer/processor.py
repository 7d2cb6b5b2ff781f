"""UnioProcessor: prompts and images in, typed answers out, the Hugging Face way; unio.run runs on it.

    import unio                                     # registers unio with the Auto classes
    from transformers import AutoModelForSeq2SeqLM, AutoProcessor
    processor = AutoProcessor.from_pretrained("runs/mine/model")
    model = AutoModelForSeq2SeqLM.from_pretrained("runs/mine/model")
    inputs = processor(text=prompt, images=image, return_tensors="pt")
    task = processor.task_of(prompt)
    ids = model.generate(**inputs, **processor.generate_options(task))
    answer = processor.post_process_generation(ids[0], task=task, image_size=image.size)

The sub-processor is a `Modalities` (unio's tokenizers and vocabulary), not a transformers
tokenizer: it is saved under `tokenizers/` beside `processor_config.json`.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import torch
from transformers import BatchFeature, ProcessorMixin

from unio.data.encoding import check_prompt_length, encode_inputs
from unio.grammar import Grammar, Segment
from unio.infer.calls import check_asks, check_trained
from unio.infer.hf_pipeline import AnsweredAsks, Asked
from unio.kit.images import Frame, to_rgb_array
from unio.model.decoding import strip_answer
from unio.registries import TASKS
from unio.task import Example, template_pattern
from unio.task_set import TaskSet, merge_task_options
from unio.vocab import BOS

TOKENIZERS = "tokenizers"                                        # the Modalities' folder in a model folder
# read from the model's config (the defaults: a model before the setting existed)
SETTINGS = {"image_size": 64, "max_text_length": 64, "max_target_length": 128, "decoder_start": "bos",
            "trained_tasks": None}


class FreeText:
    """Decoding when no task is recognised: text of the prompt tokenizer, up to the model's target length."""
    name = None

    def __init__(self, max_length: int):
        self.max_length = max_length

    def grammar(self, mods, image_size: int) -> Grammar:
        return Grammar((Segment(mods.prompt_name, 0, self.max_length),))

    def decode(self, ids, mods, example=None) -> str:
        return mods.text_from_ids(ids).strip()

    def to_result(self, prediction: str) -> dict:
        return dict(text=prediction)


def alias_of(prompt: str) -> tuple | None:
    """(task, the prompt it is asked with) when `prompt` is one of a task's `aliases`: phrasings people
    use for it that it was not trained on ("What is in the image?" means a caption), asked with the
    task's first prompt."""
    said = " ".join(prompt.lower().split())
    for name in TASKS.names():
        task = TASKS.get(name)
        if any(said == " ".join(a.lower().split()) for a in getattr(task, "aliases", ())):
            return name, task.prompts[0]
    return None


def recognise(prompt: str) -> str | None:
    """The task whose prompt template (or alias) the prompt matches, the most specific one first."""
    if alias_of(prompt) is not None:
        return alias_of(prompt)[0]
    best, best_literal = None, -1
    for name in TASKS.names():
        for template in TASKS.get(name).prompts:
            literal = len(template.replace("{}", ""))
            pattern = template_pattern(template)
            if literal == 0 and not prompt.rstrip().endswith("?"):
                continue  # a bare '{}' template (a question-answering task) takes questions only
            if re.match(pattern, prompt.strip(), flags=re.I | re.S) and literal > best_literal:
                best, best_literal = name, literal
    return best


class UnioProcessor(ProcessorMixin):
    """A model's tokenizers and input settings: `processor(text=, images=)` -> the encoder's inputs,
    `post_process_generation(ids, task=, image_size=)` -> the task's answer in original pixels."""
    model_input_names = ["pixel_values", "input_ids", "attention_mask"]   # what encode() gives (and, with a
    # region, region_boxes; image_mask where some prompts have no image)

    def __init__(self, modalities, image_size: int = 64, max_text_length: int = 64, max_target_length: int = 128,
                 task_options: dict | None = None, decoder_start: str = "bos", trained_tasks: list | None = None):
        super().__init__()
        self.modalities = modalities
        self.image_size, self.max_text_length, self.max_target_length = image_size, max_text_length, max_target_length
        self.decoder_start = decoder_start   # the model's: "answer" starts each answer from its range's token
        self.trained_tasks = trained_tasks   # the tasks the model trained on (None: not recorded): others are refused
        self.tasks = TaskSet(task_options, known_only=True)   # the model's tasks, with the options it was trained with
        self.answered = AnsweredAsks()   # what generate() answered on the pipeline's path (hf_pipeline.py)

    @classmethod
    def for_model(cls, config, modalities, task_options: dict | None = None) -> "UnioProcessor":
        """The processor of a model: its settings, and its tasks with the options it was trained with
        (`task_options` given here override them, task by task and option by option)."""
        return cls(modalities, **{key: getattr(config, key, default) for key, default in SETTINGS.items()},
                   task_options=merge_task_options(config.task_options, task_options))

    # -- prompts and images -> the model's inputs ------------------------------------------
    def task_of(self, prompt: str, task: str | None = None) -> str | None:
        """`task` when given (checked), else the task recognised from the prompt (None: free text)."""
        name = task or recognise(prompt)
        if name is not None and name not in self.tasks:
            self.tasks.get(name)  # raises with the list of tasks
        return name

    def example(self, prompt, image, task: str | None = None, region=None) -> Example:
        """One prompt about one image (any form to_rgb_array takes), framed as the model sees it.
        `region`: a box [x1, y1, x2, y2] in the image's pixels, or None. A task whose encoder reads no
        image (`reads_image = False`, e.g. text to image) takes the image only for its size, or None;
        a task's `prepare(example)`, where it has one, finishes the example (e.g. blanks a region)."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError("the prompt is empty; ask something, e.g. 'What does the image describe?'")
        name = self.task_of(prompt, task) if image is None else None
        handler = self.tasks.get(name) if name else None
        if image is None and handler is None:
            raise ValueError(f"no image given, and the prompt {prompt!r} is no text-only task's (e.g. 'Premise: ... "
                             "Hypothesis: ...'); pass an image (a path, a PIL image, an array or a tensor)")
        if image is None and getattr(handler, "reads_image", True):
            raise ValueError(f"task {name!r} reads an image; pass one (a path, a PIL image, an array or a tensor)")
        original = None if image is None else to_rgb_array(image)
        side = (self.image_size, self.image_size)
        frame = Frame(*(side if original is None else original.shape[:2]), self.image_size)
        name = self.task_of(prompt, task)
        handler = self.tasks.get(name) if name else None
        alias = alias_of(prompt)
        asked = alias[1] if alias is not None and alias[0] == name else prompt
        check_asks(name, handler, asked, region)
        check_trained(name, handler, self.trained_tasks, explicit=task is not None)
        reads = getattr(handler, "reads_image", True)
        example = Example(name, frame.to_model(original) if reads else None, asked, None, frame=frame,
                          record={"image": original, "prompt": prompt},
                          region=None if region is None else frame.region_to_model(region))
        prepare = getattr(handler, "prepare", None)
        example = example if prepare is None else prepare(example)
        if not getattr(handler, "via", None):   # a task answered through another reads that task's prompt instead
            check_prompt_length(example, self.modalities, self.max_text_length)
        return example

    def examples(self, prompts: list, images: list, task: str | None = None, regions=None) -> list:
        if len(prompts) != len(images):
            raise ValueError(f"{len(prompts)} prompts but {len(images)} images; pass one image per prompt")
        regions = [None] * len(prompts) if regions is None else list(regions)
        if len(regions) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(regions)} regions; pass one region (or None) per prompt")
        return [self.example(p, image, task, region) for p, image, region in zip(prompts, images, regions)]

    def encode(self, examples: list) -> dict:
        """Examples -> pixel_values, input_ids, attention_mask (region_boxes where a prompt has a region): what
        training and unio.run feed the encoder."""
        return encode_inputs(examples, self.modalities, self.max_text_length)

    def __call__(self, images=None, text=None, task: str | None = None, regions=None, return_tensors="pt",
                 **kwargs) -> BatchFeature:
        """A prompt and an image (or lists of both) -> a BatchFeature of the model's inputs (positional
        order as transformers' ProcessorMixin: images, then text). `task` forces the task (as unio.run's
        task=); `regions`: a box [x1, y1, x2, y2] in the image's pixels (a list of them, or of None, with lists).
        Other transformers processor keywords (padding=, ...) are accepted and have no effect.
        `unio_asked` in the result carries the examples to model.generate() for transformers' pipeline
        (hf_pipeline.py); generate() with this processor's generate_options() ignores it."""
        if text is None or images is None:
            raise ValueError("a unio model reads a prompt and an image: pass text= and images=")
        single = isinstance(text, str)
        if not single and not isinstance(images, (list, tuple)):
            raise TypeError("with a list of prompts (text=), pass a list of images of the same length")
        prompts, images = ([text], [images]) if single else (list(text), list(images))
        regions = [regions] if single and regions is not None else regions
        examples = self.examples(prompts, images, task, regions)
        inputs = BatchFeature(self.encode(examples), tensor_type=return_tensors)
        inputs["unio_asked"] = Asked(self, examples, torch.as_tensor(inputs["input_ids"]))
        return inputs

    # -- generation under the task's grammar ---------------------------------------------
    def task(self, name: str | None):
        """The task object of `name` (None: free text)."""
        return self.tasks.get(name) if name else FreeText(self.max_target_length)

    def generate_options(self, task: str | None = None, **options) -> dict:
        """Keyword arguments for model.generate() that decode under the task's output grammar, as unio.run does."""
        from unio.infer.pipeline import UNIO_OPTIONS, check_generation_options
        from unio.model.decoding import constrained_options
        check_generation_options(options)
        for name in UNIO_OPTIONS:
            if name in options:
                raise ValueError(f"{name} is applied by unio.run (unio.infer.pipeline.generate_answers), not by "
                                 f"model.generate(); pass it to unio.run or unio.generate instead")
        if getattr(self.task(task), "pooled_samples", 0) and not {"do_sample", "num_beams"} & set(options):
            raise ValueError(f"task {task!r} pools its greedy answer with sampled ones (its samples option), which "
                             "unio.run does; with model.generate() pass do_sample=True or num_beams, or use unio.run")
        via = getattr(self.task(task), "via", None)
        if via:
            raise ValueError(f"task {task!r} answers through {via!r} (its via option), which unio.run does; with "
                             f"model.generate() ask {via!r} and keep what you need, or use unio.run")
        grammar = self.task(task).grammar(self.modalities, self.image_size)
        return constrained_options(grammar, self.modalities.vocab, self.max_target_length,
                                   answer_start=self.decoder_start == "answer", **options)

    # -- generated ids -> answers ------------------------------------------------------
    def post_process(self, task, prediction, frame: Frame) -> dict:
        """A task's prediction (model frame) -> its Result fields in the original image's pixels."""
        from unio.infer.pipeline import result_fields
        return result_fields(task, prediction, frame)

    def post_process_generation(self, ids, task: str | None = None, image_size=None):
        """Generated ids (one sequence; or a batch, or generate()'s output dict: a list) -> the task's
        answer as Result fields ({'boxes': ...}, {'depth': ...}), in the pixels of an image of
        `image_size` (width, height), as PIL's `.size` gives it; None: the model's square frame."""
        from unio.infer.pipeline import decode, step_distributions, token_scores
        sequences = getattr(ids, "sequences", None)
        rows = torch.as_tensor(ids if sequences is None else sequences)
        if rows.dim() == 1:
            return self.post_process_generation(rows[None], task, image_size)[0]
        handler, out = self.task(task), []
        logprobs = [lp for _, lp in token_scores(ids)] if sequences is not None else [None] * len(rows)
        distributions = step_distributions(handler, ids) if sequences is not None else [None] * len(rows)
        sizes = _sizes(image_size, len(rows))
        for row, size, logps, steps in zip(rows, sizes, logprobs, distributions):
            row = row[1:] if len(row) and int(row[0]) == BOS else row     # generate() puts the start token first
            answer = strip_answer(row)
            example = self._blank_example(handler.name, size)
            prediction = decode(handler, answer, self.modalities, example, logps and logps[:len(answer)], steps)
            out.append(self.post_process(handler, prediction, example.frame))
        return out

    def post_process_image_text_to_text(self, generated_outputs, skip_special_tokens: bool = True, **kwargs) -> list:
        """transformers' pipeline("image-text-to-text") decoding: each row's answer as unio.run gives it
        (Result.answer_text()) when this processor's inputs were answered by generate(); other ids as text."""
        texts = self.answered.texts_of(generated_outputs)
        if texts is not None:
            return texts
        rows = torch.as_tensor(generated_outputs)
        return [self.modalities.text_from_ids(strip_answer(row[1:] if int(row[0]) == BOS else row)).strip()
                for row in (rows[None] if rows.dim() == 1 else rows)]

    def _blank_example(self, name, image_size) -> Example:
        """What a task's decoder reads of an example (the model-frame image's shape, its frame)."""
        width, height = image_size or (self.image_size, self.image_size)
        canvas = np.zeros((self.image_size, self.image_size, 3), np.uint8)
        return Example(name, canvas, "", None, frame=Frame(int(height), int(width), self.image_size))

    # -- saving and loading, beside the model ------------------------------------------
    def to_dict(self) -> dict:
        return {**{key: getattr(self, key) for key in SETTINGS}, "processor_class": type(self).__name__}

    def __repr__(self) -> str:
        settings = ", ".join(f"{key}={getattr(self, key)}" for key in SETTINGS)
        return f"{type(self).__name__}(tokenizers={list(self.modalities.tokenizers)}, {settings})"

    def save_pretrained(self, save_directory, push_to_hub: bool = False, **kwargs) -> list:
        """processor_config.json, and the tokenizers under tokenizers/ (vocab.json also beside them)."""
        directory = Path(save_directory)
        self.modalities.save(directory / TOKENIZERS)
        shutil.copy(directory / TOKENIZERS / "vocab.json", directory / "vocab.json")
        files = super().save_pretrained(save_directory)
        if push_to_hub:   # the mixin's push_to_hub saves into a fresh folder, so it uploads tokenizers/ too
            self.push_to_hub(kwargs.pop("repo_id", directory.name), **kwargs)
        return files

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs) -> "UnioProcessor":
        """From a model folder (or run folder, or a hub repo id): processor_config.json where there is
        one, else the model's config.json; the tokenizers from tokenizers/, checked against the model."""
        import json

        from unio.infer.model_folder import load_tokenizers, model_folder, read_config
        folder = model_folder(local_folder(pretrained_model_name_or_path, **kwargs))
        saved = folder / "processor_config.json"
        config = read_config(folder) if (folder / "config.json").is_file() else {}
        settings = json.loads(saved.read_text()) if saved.is_file() else config
        mods = load_tokenizers(folder, config.get("vocab_size", None) or _vocab_size(folder))
        given = {key: settings.get(key, config.get(key)) for key in SETTINGS if key in settings or key in config}
        return cls(mods, **given, task_options=config.get("task_options"))


def _sizes(image_size, n: int) -> list:
    """One (width, height) or None, or a list of them -> one per row."""
    if image_size is None or (len(image_size) == 2 and np.isscalar(image_size[0])):
        return [image_size] * n
    if len(image_size) != n:
        raise ValueError(f"{len(image_size)} image sizes for {n} sequences; pass one (width, height) per sequence")
    return list(image_size)


def _vocab_size(folder: Path) -> int:
    from unio.vocab import Vocabulary
    return Vocabulary.load(folder / TOKENIZERS / "vocab.json").size


def local_folder(name_or_path, **kwargs) -> Path:
    """A local folder as it is; a hub repo id downloaded (with the hub's usual keyword arguments)."""
    if Path(name_or_path).exists():
        return Path(name_or_path)
    from huggingface_hub import snapshot_download
    hub = {k: kwargs[k] for k in ("revision", "cache_dir", "token", "local_files_only") if kwargs.get(k) is not None}
    return Path(snapshot_download(str(name_or_path), **hub))
