"""Image captioning: the image -> one sentence. Metrics: BLEU-4 and CIDEr-D through pycocoevalcap."""
from __future__ import annotations

from collections import Counter

from unio.registries import register_task
from unio.task import Example, Grammar, Segment, choose_prompt


def caption_scores(predictions, references) -> dict:
    """pycocoevalcap's BLEU-4 and CIDEr-D (PTB-tokenised), `references` a list of lists of strings."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({i: [{"caption": r} for r in refs] for i, refs in enumerate(references)})
    res = tokenizer.tokenize({i: [{"caption": p}] for i, p in enumerate(predictions)})
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    return {"bleu4": float(bleu[3]), "cider": float(cider)}


@register_task("caption")
class Caption:
    name = "caption"
    output = "text"
    prompts = ["What does the image describe?", "Write a caption for the image.", "Describe this image."]
    requires = ("image", "captions")
    headline = "cider"
    max_caption_tokens = 48

    def example(self, record, rng) -> Example:
        prompt = choose_prompt(self.prompts, rng)
        captions = list(record["captions"])
        target = captions[0] if len(captions) == 1 else captions[int(rng.integers(len(captions)))]
        return Example(self.name, record["image"], prompt, target, {"references": captions})

    def targets(self, examples, mods):
        return [mods.text_ids(ex.target) for ex in examples]

    def grammar(self, mods, image_size: int) -> Grammar:
        return Grammar((Segment("text", 1, self.max_caption_tokens),))

    def decode(self, ids, mods, example=None) -> str:
        return mods.text_from_ids(ids).strip()

    def evaluate(self, predictions, examples) -> dict:
        return caption_scores(list(predictions), [ex.meta["references"] for ex in examples])

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
