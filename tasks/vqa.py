"""Visual question answering: a question about the image -> a short text answer.

Metric: VQA accuracy with the official answer normalisation (punctuation, number words,
articles, contractions); with several reference answers an answer scores min(1, matches / 3).
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict

from unio.records import question_of
from unio.registries import register_task
from unio.task import Example, Grammar, Segment, choose_prompt

NUMBERS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
           "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
ARTICLES = {"a", "an", "the"}
CONTRACTIONS = {"dont": "don't", "doesnt": "doesn't", "isnt": "isn't", "arent": "aren't", "cant": "can't",
                "wont": "won't", "whats": "what's", "thats": "that's", "im": "i'm", "youre": "you're"}
PUNCTUATION = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`",
               ",", "?", "!"]
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")


def normalize_answer(answer: str) -> str:
    """The official VQA evaluation's processPunctuation + processDigitArticle."""
    text = answer.replace("\n", " ").replace("\t", " ").strip().lower()
    for p in PUNCTUATION:
        if (p + " " in text or " " + p in text) or re.search(_COMMA_STRIP, text) is not None:
            text = text.replace(p, "")
        else:
            text = text.replace(p, " ")
    text = _PERIOD_STRIP.sub("", text)
    words = [NUMBERS.get(w, w) for w in text.split() if w not in ARTICLES]
    return " ".join(CONTRACTIONS.get(w, w) for w in words)


def vqa_accuracy(prediction: str, references: list) -> float:
    pred = normalize_answer(prediction)
    matches = sum(normalize_answer(r) == pred for r in references)
    return float(matches > 0) if len(references) == 1 else min(1.0, matches / 3)


@register_task("vqa")
class VQA:
    name = "vqa"
    output = "text"
    prompts = ["{}", "Answer this question about the image: {}", "Question: {} Answer:"]
    requires = ("image", "questions")
    headline = "accuracy"
    max_answer_tokens = 8

    def example(self, record, rng) -> Example:
        question, answers, kind = question_of(record["questions"][int(rng.integers(len(record["questions"])))])
        return Example(self.name, record["image"], choose_prompt(self.prompts, rng, question), answers[0],
                       {"type": kind, "answers": answers, "question": question})

    def targets(self, examples, mods):
        return [mods.text_ids(ex.target) for ex in examples]

    def grammar(self, mods, image_size: int) -> Grammar:
        return Grammar((Segment("text", 1, self.max_answer_tokens),))

    def decode(self, ids, mods, example=None) -> str:
        return mods.text_from_ids(ids).strip()

    def evaluate(self, predictions, examples) -> dict:
        scores, by_type = [], defaultdict(list)
        for pred, ex in zip(predictions, examples):
            scores.append(vqa_accuracy(pred, ex.meta["answers"]))
            by_type[ex.meta["type"]].append(scores[-1])
        out = {"accuracy": sum(scores) / max(len(scores), 1)}
        out.update({f"accuracy_{k}": sum(v) / len(v) for k, v in sorted(by_type.items())})
        return out

    def training_texts(self, example) -> list:
        return [example.prompt, example.target]

    def training_images(self, example) -> list:
        return []

    def baselines(self):
        return {"majority": _MajorityPerType}


class _MajorityPerType:
    """The most frequent training answer for each question type."""

    def __init__(self, train_examples, mods=None):
        counts = defaultdict(Counter)
        for ex in train_examples:
            counts[ex.meta["type"]][ex.target] += 1
        self.answer = {kind: c.most_common(1)[0][0] for kind, c in counts.items()}
        self.fallback = Counter(ex.target for ex in train_examples).most_common(1)[0][0]

    def __call__(self, example):
        return self.answer.get(example.meta["type"], self.fallback)
