"""Visual question answering: a question about the image -> a short text answer.

Metric: VQA accuracy as the official evaluation (GT-Vision-Lab/VQA, vqaEval.py) computes it: the answer
is normalised (punctuation, number words, articles, contractions); with several human answers (VQAv2
has 10) it scores the mean over the leave-one-out subsets of min(1, matches / 3), the references
punctuation-processed when they disagree. With one reference (the world) it scores exact agreement of
the normalised answers. Reported overall and per answer type, and for each type whose answers are all yes or no
the share of "yes" in the predictions (`yes_share_TYPE`): a question the model cannot answer falls to one of them.
"""
from __future__ import annotations

from collections import defaultdict
from functools import partial

from unio.data.records import question_of
from unio.kit.answers import MostFrequentAnswer, ShortTextAnswer
from unio.kit.vqa_metric import vqa_accuracy
from unio.registries import register_task
from unio.task import Example, choose_prompt, pick


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

    def example(self, record, rng) -> Example:
        question, answers, kind = question_of(pick(record["questions"], rng, record, "question"))
        return Example(self.name, record["image"], choose_prompt(self.prompts, rng, question), answers[0],
                       {"type": kind, "answers": answers, "question": question})

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
