"""Visual question answering: a question about the image -> a short text answer.

Metric: VQA accuracy as the official evaluation (GT-Vision-Lab/VQA, vqaEval.py) computes it: the answer
is normalised (punctuation, number words, articles, contractions); with several human answers (VQAv2
has 10) it scores the mean over the leave-one-out subsets of min(1, matches / 3), the references
punctuation-processed when they disagree. With one reference (the world) it scores exact agreement of
the normalised answers. Reported overall and per answer type, and for each type whose answers are all yes or no
the share of "yes" in the predictions (`yes_share_TYPE`): a question the model cannot answer falls to one of them.
`spatial` (a training option: `--task-option vqa.spatial=0.5`) asks that share of the training examples the
image's spatial question ("Is A left of B?") where it has one; evaluation keeps the record's own mix.
`ground` (`vqa.ground=true`, a model option: training and inference) has the answer to a spatial question say
the two objects' boxes first, as refexp would, then "yes" or "no" (4 + 4 location tokens, then the text; the
decoded answer is the text): the comparison is then between two boxes the decoder has just said.
`ground="refexp"` trains the same and, at inference, starts such an answer from the boxes the model's own
refexp finds for the two named objects (asked first), then lets it say "yes" or "no".
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import replace
from functools import partial

from unio.data.records import question_of, refexp_of
from unio.kit.answers import MostFrequentAnswer, ShortTextAnswer, box_segment, box_to_ids
from unio.kit.vqa_metric import vqa_accuracy
from unio.registries import register_task
from unio.task import Example, Grammar, Repeat, Segment, choose_prompt, pick

SPATIAL = re.compile(r"^Is (.+) left of (.+)\?$")   # the world's spatial questions (unio/data/world/language.py)


def yes_shares(predictions, examples) -> dict:
    """{type: share of "yes" predictions} for each question type whose gold answers are all yes or no."""
    said = defaultdict(list)
    for pred, ex in zip(predictions, examples):
        said[ex.meta["type"]].append((str(pred).strip().lower() == "yes", ex.meta["answers"][0] in ("yes", "no")))
    return {kind: sum(p for p, _ in v) / len(v) for kind, v in sorted(said.items()) if all(g for _, g in v)}


@register_task
class VQA(ShortTextAnswer):
    name, hub_task = "vqa", "visual-question-answering"   # registry name; task type on the hub
    output = "text"
    prompts = ["{}", "Answer this question about the image: {}", "Question: {} Answer:"]
    requires = ("image", "questions")
    max_tokens = 8

    def __init__(self, spatial: float = 0.0, ground: bool | str = False):
        if isinstance(spatial, bool) or not isinstance(spatial, (int, float)) or not 0.0 <= spatial <= 1.0:
            raise ValueError(f"spatial is the share of training examples that ask a spatial question, a number "
                             f"between 0 and 1, got {spatial!r}")
        if ground not in (False, True, "refexp"):
            raise ValueError(f"ground is false, true (a spatial answer says the two boxes first) or 'refexp' (those "
                             f"boxes found by the model's refexp at inference), got {ground!r}")
        self.spatial, self.ground = float(spatial), ground
        self.ask_first = self.refexp_boxes_first if ground == "refexp" else None    # the pipeline's hook

    def example(self, record, rng) -> Example:
        question, answers, kind = question_of(pick(record["questions"], rng, record, "question"))
        meta = {"type": kind, "answers": answers, "question": question}
        if self.ground:
            meta["boxes"] = spatial_boxes(question, record)
        if self.spatial:     # the spatial questions for_training may ask instead (none drawn when it is 0)
            meta["spatial"] = [(*item, spatial_boxes(item[0], record) if self.ground else [])
                               for item in map(question_of, record["questions"]) if item[2] == "spatial"]
        return Example(self.name, record["image"], choose_prompt(self.prompts, rng, question), answers[0], meta)

    def for_training(self, example, rng) -> Example:
        """With `spatial` > 0, that share of the training examples asks one of the image's spatial questions
        (where it has one): a relation seen in ~9% of the world's questions gets more of the gradient."""
        spatial = example.meta.pop("spatial", None)
        if spatial and rng.random() < self.spatial:
            question, answers, kind, boxes = spatial[int(rng.integers(len(spatial)))]
            example.prompt, example.target = choose_prompt(self.prompts, rng, question), answers[0]
            example.meta = {**example.meta, "type": kind, "answers": answers, "question": question}
            if self.ground:
                example.meta["boxes"] = boxes
        return example

    def targets(self, examples, mods):
        """The answer's text ids; with `ground`, after the boxes of a spatial question's two objects."""
        return [[i for box in ex.meta.get("boxes", ()) for i in box_to_ids(box, mods, ex)] + mods.text_ids(ex.target)
                for ex in examples] if self.ground else super().targets(examples, mods)

    def refexp_boxes_first(self, examples, tasks, ask) -> None:
        """With `ground="refexp"`, each spatial question's two boxes as the model's refexp finds them, asked
        before the answer (`ask(task name, examples)` -> their predictions); answer_prefix starts from them."""
        asked = [(ex, SPATIAL.match(str(ex.meta.get("question") or ex.prompt))) for ex in examples]
        asked = [(ex, match.groups()) for ex, match in asked if match]
        if not asked:
            return
        refexp = tasks.get("refexp")
        found = ask("refexp", [replace(ex, task="refexp", prompt=refexp.prompts[0].format(text), target=None,
                                       region=None, meta={}) for ex, pair in asked for text in pair])
        for i, (ex, _) in enumerate(asked):
            ex.meta["found_boxes"] = found[2 * i:2 * i + 2]

    def answer_prefix(self, example, mods) -> list | None:
        """The boxes `ask_first` found, as the answer's first 8 tokens (None: the model says its own)."""
        boxes = example.meta.get("found_boxes")
        return [i for box in boxes for i in box_to_ids(box, mods, example)] if boxes else None

    def grammar(self, mods, image_size: int) -> Grammar:
        if not self.ground:
            return super().grammar(mods, image_size)
        return Grammar((Repeat((box_segment(mods),), 0, 2), Segment(mods.prompt_name, 1, self.max_tokens)))

    def evaluate(self, predictions, examples) -> dict:
        scores, by_type = [], defaultdict(list)
        for pred, ex in zip(predictions, examples):
            scores.append(vqa_accuracy(pred, ex.meta["answers"]))
            by_type[ex.meta["type"]].append(scores[-1])
        out = {"accuracy": sum(scores) / max(len(scores), 1)}
        out.update({f"accuracy_{k}": sum(v) / len(v) for k, v in sorted(by_type.items())})
        out.update({f"yes_share_{k}": share for k, share in yes_shares(predictions, examples).items()})
        return out

    def baselines(self):
        return {"majority": partial(MostFrequentAnswer, per="type")}   # the most frequent answer per question type


def spatial_boxes(question: str, record) -> list:
    """The boxes (model frame) of the two objects a world spatial question names, subject first; [] for any other
    question, or where the record's referring expressions do not name them."""
    match = SPATIAL.match(question)
    named = dict(map(refexp_of, record.get("refexps") or ()))
    if match is None or not all(text in named for text in match.groups()):
        return []
    return [list(record["objects"][named[text]]["box"]) for text in match.groups()]
