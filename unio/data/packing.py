"""Packing: several examples per row, attention kept inside each example (the layout seqio and Unified-IO
2 train with). A collated batch of N examples becomes R <= N rows; each example keeps its own encoder
tokens (its patches and its prompt's real tokens, no padding) and its own decoder tokens, and in the
model every query sees only its own example's keys: block-diagonal encoder self-attention, causal
decoder self-attention within the example, cross-attention to the example's own encoder tokens.
Positions restart at each example, so an example's logits are the ones it would get alone.

What a packed batch adds to the collated one (the pixels and prompt ids stay per example):
- `encoder_index` (R, S): for each packed encoder token, its place in the examples' encoder tokens laid
  end to end (example n's token j is n * S_n + j, S_n = patches + prompt length); -1 is padding.
- `encoder_segment_ids` (R, S) and `decoder_segment_ids` (R, L): which example of the row (1, 2, ...)
  a token belongs to; 0 is padding.
- `decoder_positions` (R, L): each decoder token's position within its own target.
- `decoder_example` (R, L): each decoder token's example (its row in the collated batch); -1 is padding.
  The trainer reads it for each task's loss; the model does not take it.
- `labels`, `decoder_input_ids` (R, L) (and `label_weights` when given), packed the same way.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from unio.model.transformer import shift_right
from unio.vocab import BOS, IGNORE, PAD


@dataclass
class Packing:
    """How a run packs its batches: `patches` per image; rooms per row, in encoder and decoder tokens
    (None: `per_row` times the batch's longest example's encoder tokens, and its longest target)."""
    patches: int
    encoder_room: int | None = None
    decoder_room: int | None = None
    per_row: int = 2

    def __call__(self, batch: dict) -> dict:
        encoder_room = self.encoder_room
        if encoder_room is None:
            encoder_room = self.per_row * max(example_lengths(batch, self.patches)[0])
        return pack(batch, self.patches, encoder_room, self.decoder_room)

    @classmethod
    def parse(cls, spec: str, config) -> "Packing":
        """--packing's value for a model `config`: "auto" (two of the batch's longest examples' encoder
        tokens and its longest target per row) or "ENCODER,DECODER" tokens per row."""
        patches = (config.image_size // config.patch_size) ** 2
        rooms = parse_rooms(spec)
        if rooms is None:
            return cls(patches)
        encoder, decoder = rooms
        longest = patches + config.max_text_length, config.max_target_length + 1
        if encoder < longest[0] or decoder < longest[1]:
            raise ValueError(f"--packing {spec}: a row must hold the longest example, {longest[0]} encoder tokens "
                             f"({patches} patches + max_text_length) and {longest[1]} decoder tokens (max_target_length + EOS)")
        return cls(patches, encoder, decoder)


def parse_rooms(spec: str) -> tuple | None:
    """--packing's value: None for "auto", else its (encoder, decoder) tokens per row."""
    if spec == "auto":
        return None
    try:
        encoder, decoder = (int(x) for x in spec.split(","))
    except ValueError:
        raise ValueError(f"--packing takes auto or ENCODER,DECODER tokens per row (e.g. 256,96), got {spec!r}") from None
    return encoder, decoder


def example_lengths(batch: dict, patches: int) -> tuple:
    """(encoder lengths, decoder lengths) of each example of a collated batch: its patches (none when it
    has no image) and prompt tokens; its target with EOS."""
    text = batch["attention_mask"].sum(1)
    if "pixel_values" in batch:
        seen = batch["image_mask"].long() if "image_mask" in batch else torch.ones_like(text)
        encoder = text + patches * seen
    else:
        encoder = text
    decoder = (batch["labels"] != IGNORE).long().cumsum(1).argmax(1) + 1   # through the last token that counts
    return encoder.tolist(), decoder.tolist()


def pack_rows(encoder: list, decoder: list, encoder_room: int, decoder_room: int) -> list:
    """First-fit of examples, longest target first, into rows of at most `encoder_room` encoder and
    `decoder_room` decoder tokens: [[example, ...], ...]. An example longer than the room gets a row alone."""
    rows, used = [], []
    for n in sorted(range(len(encoder)), key=lambda i: (-decoder[i], -encoder[i], i)):
        for r, (e, d) in enumerate(used):
            if e + encoder[n] <= encoder_room and d + decoder[n] <= decoder_room:
                rows[r].append(n)
                used[r] = (e + encoder[n], d + decoder[n])
                break
        else:
            rows.append([n])
            used.append((encoder[n], decoder[n]))
    return rows


def pack(batch: dict, patches: int, encoder_room: int | None = None, decoder_room: int | None = None) -> dict:
    """The collated `batch` (unio.data.batching.Collator's) packed into rows (module docstring). `patches`:
    the model's patches per image. Rooms default to the batch's longest example: the rows are never
    longer than the unpacked batch's, so attention costs no more per row."""
    encoder, decoder = example_lengths(batch, patches)
    encoder_room = encoder_room or max(encoder)
    decoder_room = decoder_room or max(decoder)
    rows = pack_rows(encoder, decoder, encoder_room, decoder_room)
    width = batch["input_ids"].shape[1] + (patches if "pixel_values" in batch else 0)   # S_n: tokens per example
    has_image = _has_image(batch)
    enc_len = max(sum(encoder[n] for n in row) for row in rows)
    dec_len = max(sum(decoder[n] for n in row) for row in rows)
    out = {k: v for k, v in batch.items() if k in ("pixel_values", "input_ids", "attention_mask", "image_mask",
                                                         "region_boxes")}
    out.update(_empty(len(rows), enc_len, dec_len))
    labels = batch["labels"]
    inputs = batch.get("decoder_input_ids", shift_right(labels, BOS, PAD))
    for r, row in enumerate(rows):
        e = d = 0
        for k, n in enumerate(row, start=1):
            places = _encoder_places(batch, n, width, patches if has_image[n] else 0)
            out["encoder_index"][r, e:e + len(places)] = places
            out["encoder_segment_ids"][r, e:e + len(places)] = k
            e += len(places)
            length = decoder[n]
            out["labels"][r, d:d + length] = labels[n, :length]
            out["decoder_input_ids"][r, d:d + length] = inputs[n, :length]
            out["decoder_segment_ids"][r, d:d + length] = k
            out["decoder_positions"][r, d:d + length] = torch.arange(length)
            out["decoder_example"][r, d:d + length] = n
            if "label_weights" in batch:
                out["label_weights"][r, d:d + length] = batch["label_weights"][n, :length]
            d += length
    if "label_weights" not in batch:
        del out["label_weights"]
    return out


def _has_image(batch: dict) -> list:
    if "pixel_values" not in batch:
        return [False] * len(batch["input_ids"])
    if "image_mask" in batch:
        return batch["image_mask"].bool().tolist()
    return [True] * len(batch["input_ids"])


def _encoder_places(batch: dict, n: int, width: int, patches: int) -> torch.Tensor:
    """Where example n's real encoder tokens lie in the examples' encoder tokens laid end to end: its
    patches (when it has an image), then its prompt's unpadded tokens."""
    offset = width - batch["input_ids"].shape[1]     # the patches' slots, filled or not
    text = batch["attention_mask"][n].nonzero()[:, 0] + offset
    return n * width + torch.cat([torch.arange(patches), text])


def _empty(rows: int, enc_len: int, dec_len: int) -> dict:
    def full(length, value):
        return torch.full((rows, length), value, dtype=torch.long)
    return {"encoder_index": full(enc_len, -1), "encoder_segment_ids": full(enc_len, 0),
            "labels": full(dec_len, IGNORE), "decoder_input_ids": full(dec_len, PAD),
            "decoder_segment_ids": full(dec_len, 0), "decoder_positions": full(dec_len, 0),
            "decoder_example": full(dec_len, -1), "label_weights": torch.zeros(rows, dec_len)}
