"""Coordinate tokenizer plugin: boxes and keypoints as location bins (Unified-IO / Pix2Seq style).

A coordinate is normalised by the size of the (padded) image it lives in, then quantised into
`num_bins` bins: bin = min(floor(v * N), N - 1); it decodes to the bin centre (bin + 0.5) / N,
so the round-trip error is at most half a bin (size / (2N) pixels). A box is always encoded with
y2's bin above y1's and x2's above x1's (a box within one bin spans two), as
grammar-constrained decoding produces boxes (error up to 1.5 bins at the image edge).

Boxes are (x1, y1, x2, y2) in pixels and are emitted in Unified-IO's order: y1, x1, y2, x2.
Keypoints are (x, y, visibility) and are emitted as y, x, then a visibility token
(COCO: 0 not labelled, 1 labelled but occluded, 2 visible); unlabelled points emit only the
visibility token.

Bad boxes, one documented policy: NaN or infinite coordinates, x2 < x1 or y2 < y1 raise
ValueError; coordinates outside the image are clipped to it; a box left with no area inside the
image after clipping raises ValueError.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

from unio.registries import register_tokenizer

VISIBILITY_STATES = 3


@register_tokenizer("coordinates")
class CoordinateTokenizer:
    order = 1

    def __init__(self, num_bins: int = 1000):
        if int(num_bins) < 2:
            raise ValueError(f"num_bins must be at least 2, got {num_bins}")
        self.num_bins = int(num_bins)
        self.size = self.num_bins + VISIBILITY_STATES

    @classmethod
    def build(cls, corpus, directory: str | Path, num_bins: int = 1000) -> "CoordinateTokenizer":
        """The tokenizer plugin protocol: bins need nothing from the corpus."""
        return cls(num_bins=num_bins)

    def ordinal_ids(self) -> tuple:
        """Local ids [lo, hi) of ordered bins: training may smooth their targets over neighbours."""
        return (0, self.num_bins)

    @classmethod
    def load(cls, directory: str | Path) -> "CoordinateTokenizer":
        return cls(**json.loads((Path(directory) / "config.json").read_text()))

    def save(self, directory: str | Path) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / "config.json").write_text(json.dumps({"num_bins": self.num_bins}))

    def signature(self) -> str:
        return f"bins:{self.num_bins}"

    # -- scalars -------------------------------------------------------------------------
    def quantise(self, value: float, extent: float) -> int:
        v = min(max(value / extent, 0.0), 1.0)
        return min(int(math.floor(v * self.num_bins)), self.num_bins - 1)

    def dequantise(self, bin_id: int, extent: float) -> float:
        if not 0 <= int(bin_id) < self.num_bins:
            raise ValueError(f"location bin {bin_id} is outside 0..{self.num_bins - 1}")
        return (int(bin_id) + 0.5) / self.num_bins * extent

    def dequantise_expected(self, logprobs, extent: float, centre: int, window: int = 2) -> float:
        """A position read below the bin: the mean bin of one decoding step's distribution over the bins
        (`logprobs`, num_bins log-probabilities) within `window` bins of the decoded bin `centre`, renormalised
        there, placed as dequantise places a bin. Training smooths location targets over neighbouring bins
        (ordinal_sigma), so the distribution around the decoded bin says where inside it the point lies."""
        import torch
        probabilities = torch.as_tensor(logprobs, dtype=torch.float64).exp()
        if probabilities.shape != (self.num_bins,):
            raise ValueError(f"expected {self.num_bins} log-probabilities, one a bin; got shape {tuple(probabilities.shape)}")
        centre = int(centre)
        lo, hi = max(0, centre - window), min(self.num_bins, centre + window + 1)
        near = probabilities[lo:hi]
        if not float(near.sum()) > 0:
            return self.dequantise(centre, extent)
        mean = float((near * torch.arange(lo, hi, dtype=near.dtype)).sum() / near.sum())
        return (mean + 0.5) / self.num_bins * extent

    # -- boxes ---------------------------------------------------------------------------
    def check_box(self, box: Sequence[float], width: float, height: float) -> list[float]:
        """Apply the bad-box policy; return the box clipped to the image."""
        if len(box) != 4:
            raise ValueError(f"a box needs 4 values (x1, y1, x2, y2); got {len(box)} values")
        x1, y1, x2, y2 = (float(v) for v in box)
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            raise ValueError(f"box {box} has a NaN or infinite coordinate")
        if x2 < x1 or y2 < y1:
            raise ValueError(f"box {box} has x2 < x1 or y2 < y1; boxes are (x1, y1, x2, y2) with x1 <= x2, y1 <= y2")
        clipped = [min(max(x1, 0.0), width), min(max(y1, 0.0), height),
                   min(max(x2, 0.0), width), min(max(y2, 0.0), height)]
        if (x2 > x1 and clipped[2] <= clipped[0]) or (y2 > y1 and clipped[3] <= clipped[1]):
            raise ValueError(f"box {box} lies outside the {width}x{height} image")
        return clipped

    def encode_box(self, box: Sequence[float], width: float, height: float) -> list[int]:
        """(x1, y1, x2, y2) in pixels -> 4 local ids, in the order y1, x1, y2, x2; the second bin of
        each axis always lies above the first (a box thinner than a bin spans two), as decoding asks."""
        x1, y1, x2, y2 = self.check_box(box, width, height)
        y1, y2 = self._ordered(self.quantise(y1, height), self.quantise(y2, height))
        x1, x2 = self._ordered(self.quantise(x1, width), self.quantise(x2, width))
        return [y1, x1, y2, x2]

    def _ordered(self, lo: int, hi: int) -> tuple:
        if hi > lo:
            return lo, hi
        return (lo, lo + 1) if lo + 1 < self.num_bins else (lo - 1, lo)

    def decode_box(self, ids: Sequence[int], width: float, height: float) -> list[float]:
        """4 local ids (y1, x1, y2, x2) -> (x1, y1, x2, y2) in pixels."""
        if len(ids) != 4:
            raise ValueError(f"a box is 4 location tokens, got {len(ids)}")
        y1, x1, y2, x2 = ids
        return [self.dequantise(x1, width), self.dequantise(y1, height),
                self.dequantise(x2, width), self.dequantise(y2, height)]

    # -- keypoints -----------------------------------------------------------------------
    def visibility_id(self, visibility: int) -> int:
        if visibility not in (0, 1, 2):
            raise ValueError(f"keypoint visibility must be 0, 1 or 2 (COCO), got {visibility}")
        return self.num_bins + int(visibility)

    def encode_points(self, points: Sequence[Sequence[float]], width: float, height: float) -> list[int]:
        """[(x, y, visibility), ...] in pixels -> ids: y, x, visibility (only visibility when 0)."""
        ids: list[int] = []
        for point in points:
            x, y, vis = float(point[0]), float(point[1]), int(point[2])
            if vis and not (math.isfinite(x) and math.isfinite(y)):
                raise ValueError(f"keypoint {tuple(point)} has a NaN or infinite coordinate")
            if vis:
                ids += [self.quantise(y, height), self.quantise(x, width)]
            ids.append(self.visibility_id(vis))
        return ids

    def decode_points(self, ids: Sequence[int], width: float, height: float) -> list[tuple[float, float, int]]:
        points, pending = [], []
        for i in ids:
            i = int(i)
            if i < self.num_bins:
                pending.append(i)
                continue
            vis = i - self.num_bins
            if vis not in (0, 1, 2):
                raise ValueError(f"id {i} is outside the coordinate range of size {self.size}")
            if vis == 0:
                points.append((0.0, 0.0, 0))
            elif len(pending) >= 2:
                points.append((self.dequantise(pending[-1], width), self.dequantise(pending[-2], height), vis))
            else:
                raise ValueError("a visible keypoint needs two location tokens (y, x) before its visibility token")
            pending = []
        return points
