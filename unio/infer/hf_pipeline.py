"""unio in transformers' "image-text-to-text" pipeline, answering as unio.run does:

    import unio, transformers
    pipe = transformers.pipeline("image-text-to-text", model="runs/mine/model")
    pipe(images="scene.png", text="What color is the cube?", return_full_text=False)
    # [{'input_text': 'What color is the cube?', 'generated_text': 'red'}]

The pipeline runs processor(images=, text=) -> model.generate(**inputs) -> the processor's
post_process_image_text_to_text(ids). The processor's inputs carry an `Asked` (`unio_asked`: the
examples, framed); UnioModel.generate, given one and no logits_processor of the caller's, hands the
decoding back to it, and the Asked answers its examples through a Runner: each task's grammar, answer
ranking, tasks answered through another, results in the image's pixels. The processor keeps the answered
Asked (the last few) and recognises the ids it gave out, so post-processing returns each Result's
`answer_text()`: the text, or for boxes, masks, depth and images their fields as JSON (unio.run gives
them typed). Ids it did not give out are decoded as plain text.
"""
from __future__ import annotations

from collections import deque

import torch

from unio.vocab import EOS, PAD

# generate() options the pipeline may pass that unio.run does not take: each task's grammar bounds its
# answer's length (the pipeline's default max_new_tokens=256 would otherwise apply), one answer per prompt
IGNORED = ("max_new_tokens", "min_new_tokens", "max_length", "num_return_sequences", "output_scores",
           "return_dict_in_generate", "generation_config")


class Asked:
    """One processor call's examples on their way through model.generate() (the pipeline's path)."""

    def __init__(self, processor, examples: list, input_ids: torch.Tensor):
        self.processor, self.examples, self.input_ids = processor, examples, input_ids.cpu()
        self.results, self.sequences = None, None

    def to(self, *args, **kwargs) -> "Asked":
        """Itself: `{k: v.to(device) for k, v in inputs.items()}` moves the inputs and passes this on."""
        return self

    def __repr__(self) -> str:
        return f"Asked({[example.task for example in self.examples]})"

    def generate(self, model, **options) -> torch.Tensor:
        """Answer the examples as unio.run does; returns each answer's ids (start, answer, EOS; padded)."""
        from unio.infer.pipeline import GENERATION_OPTIONS
        from unio.infer.runner import Runner
        unknown = [k for k in options if k not in GENERATION_OPTIONS and k not in IGNORED]
        if unknown:
            raise ValueError(f"generate() options {', '.join(unknown)} do not apply to a unio model's answers; "
                             f"options: {', '.join(k for k in GENERATION_OPTIONS if k not in IGNORED)}")
        wanted = {k: v for k, v in options.items() if k not in IGNORED}
        runner = Runner(model, self.processor.modalities, processor=self.processor)
        self.results = runner.answer(self.examples, **wanted)
        self.sequences = answer_ids([r.tokens for r in self.results], model.config.decoder_start_token_id)
        self.processor.answered.append(self)
        return self.sequences.to(model.device)


def answer_ids(answers: list, start: int) -> torch.Tensor:
    """[[answer ids]] -> (B, L) rows of start token, answer, EOS, padded."""
    rows = [[start, *ids, EOS] for ids in answers]
    out = torch.full((len(rows), max(map(len, rows))), PAD, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, :len(row)] = torch.tensor(row)
    return out


class AnsweredAsks(deque):
    """The last answered Asked of one processor, found again by the ids they gave out or read in."""

    def __init__(self, keep: int = 16):
        super().__init__(maxlen=keep)

    def texts_of(self, ids) -> list | None:
        """Each row's answer text when `ids` are an Asked's answers, its prompts when they are its
        input_ids, None when no Asked held here knows them."""
        rows = torch.as_tensor(ids).cpu()
        rows = rows[None] if rows.dim() == 1 else rows
        for asked in reversed(self):
            if same(rows, asked.sequences):
                return [result.answer_text() for result in asked.results]
            if same(rows, asked.input_ids):
                return [example.record["prompt"] for example in asked.examples]
        return None


def same(a: torch.Tensor, b: torch.Tensor | None) -> bool:
    return b is not None and a.shape == b.shape and torch.equal(a, b)
