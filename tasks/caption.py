"""Image captioning: the image -> one sentence.

Metrics: BLEU-4, METEOR (where Java runs it), ROUGE-L and CIDEr-D over all reference captions,
through pycocoevalcap after its PTB tokenisation, as the COCO caption evaluation computes them;
and, where the source lists its objects, content precision / recall / F1: the objects a caption names
with all their attributes, against the image's objects (CIDEr-D against one templated reference
rewards the template, even with a wrong colour).
"""
from __future__ import annotations

import re
from collections import Counter

from unio.registries import register_task
from unio.task import Example, Grammar, Segment, choose_prompt, pick


def caption_scores(predictions, references) -> dict:
    """pycocoevalcap's BLEU-4, METEOR, ROUGE-L and CIDEr-D (PTB-tokenised); `references` a list of lists
    of strings, all the references of each prediction. METEOR is left out where Java cannot run it."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({i: [{"caption": r} for r in refs] for i, refs in enumerate(references)})
    res = tokenizer.tokenize({i: [{"caption": p}] for i, p in enumerate(predictions)})
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    rouge, _ = Rouge().compute_score(gts, res)
    out = {"bleu4": float(bleu[3]), "cider": float(cider), "rougeL": float(rouge)}
    meteor = _meteor(gts, res)
    return out if meteor is None else {**out, "meteor": meteor}


def _meteor(gts, res):
    """METEOR 1.5 through its jar, or None where Java cannot run it."""
    from pycocoevalcap.meteor.meteor import Meteor
    try:
        return float(Meteor().compute_score(gts, res)[0])
    except (OSError, ValueError):                    # no Java, or the jar died
        return None


def _categories(example) -> list:
    objects = (example.record or {}).get("objects") or []
    return [o["category"] for o in objects if o.get("category")] if objects else []


def content_scores(predictions, golds) -> dict:
    """Precision, recall and F1 of the objects the captions name, each with all its attributes (its
    whole category phrase, e.g. "large red cube"), against the objects of each image: a caption that
    names a wrong colour, size or shape gets no credit for that object however fluent it reads.
    Mentions are found by the categories seen anywhere in the split, longest first."""
    names = sorted({c for gold in golds for c in gold}, key=len, reverse=True)
    pattern = re.compile(r"\b(" + "|".join(re.escape(n) for n in names) + r")\b", re.I)
    matched = named = wanted = 0
    for prediction, gold in zip(predictions, golds):
        said = Counter(m.lower() for m in pattern.findall(prediction))
        truth = Counter(c.lower() for c in gold)
        matched += sum((said & truth).values())
        named += sum(said.values())
        wanted += sum(truth.values())
    precision, recall = matched / max(named, 1), matched / max(wanted, 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"content_precision": precision, "content_recall": recall, "content_f1": f1}


@register_task("caption")
class Caption:
    name = "caption"
    output = "text"
    prompts = ["What does the image describe?", "Write a caption for the image.", "Describe this image."]
    # open questions about the whole image: unio.run answers them with a caption of what is there
    aliases = ["What is in the image?", "What is in this image?", "What do you see?", "What can you see?",
               "Describe the image.", "What is this image?", "What's in the image?", "What is in the picture?"]
    requires = ("image", "captions")
    headline, also_report = "cider", ("content_f1",)
    # detection on the same source in the first stage: its labels name every object's attributes, which
    # teaches the encoder the shapes captions name (README, "Why the default model names shapes poorly")
    warm_up = {"detection": 2.0}
    max_caption_tokens = 48

    def example(self, record, rng) -> Example:
        prompt = choose_prompt(self.prompts, rng)
        captions = list(record["captions"])
        target = captions[0] if len(captions) == 1 else pick(captions, rng, record, "caption")
        return Example(self.name, record["image"], prompt, target, {"references": captions})

    def targets(self, examples, mods):
        return [mods.text_ids(ex.target) for ex in examples]

    def grammar(self, mods, image_size: int) -> Grammar:
        return Grammar((Segment("text", 1, self.max_caption_tokens),))

    def decode(self, ids, mods, example=None) -> str:
        return mods.text_from_ids(ids).strip()

    def evaluate(self, predictions, examples) -> dict:
        scores = caption_scores(list(predictions), [ex.meta["references"] for ex in examples])
        golds = [_categories(ex) for ex in examples]
        if all(golds):   # only where the source lists its objects' categories
            scores.update(content_scores(predictions, golds))
        return scores

    def training_texts(self, example) -> list:
        return [example.prompt, example.target]

    def training_images(self, example) -> list:
        return []

    def baselines(self):
        return {"most_frequent": _MostFrequentCaption}


class _MostFrequentCaption:
    def __init__(self, train_examples, mods=None):
        self.caption = Counter(ex.target for ex in train_examples).most_common(1)[0][0]

    def __call__(self, example):
        return self.caption
