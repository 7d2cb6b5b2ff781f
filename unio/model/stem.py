"""How pixels become the encoder's patch embeddings.

`linear`: each patch's raw pixels -> one linear projection (Unified-IO 1, ViT).
`conv`: a stack of 3x3 stride-2 convolutions, then a 1x1 projection (Xiao et al. 2021, "Early
convolutions help transformers see better"): the same patch grid, but shape features (edges,
corners, silhouettes) come from the first step instead of being learned inside the attention layers.
"""
from __future__ import annotations

from einops import rearrange
from torch import nn

STEMS = ("linear", "conv")


class LinearStem(nn.Module):
    def __init__(self, patch_size: int, d_model: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Linear(3 * patch_size ** 2, d_model)

    def forward(self, pixels):                                  # (B, 3, H, W) in [-1, 1] -> (B, P, D)
        p = self.patch_size
        return self.proj(rearrange(pixels, "b c (h p) (w q) -> b (h w) (c p q)", p=p, q=p))


class ConvStem(nn.Module):
    """log2(patch_size) 3x3 stride-2 convolutions, widths doubling up to d_model, then a 1x1 projection."""

    def __init__(self, patch_size: int, d_model: int):
        super().__init__()
        halvings = patch_size.bit_length() - 1
        if patch_size < 2 or 2 ** halvings != patch_size:
            raise ValueError(f"the conv stem needs a power-of-two patch_size, got {patch_size}; use stem: linear")
        widths = [3] + [max(16, d_model >> (halvings - 1 - i)) for i in range(halvings)]
        layers = []
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.GELU()]
        self.convs = nn.Sequential(*layers)
        self.proj = nn.Conv2d(widths[-1], d_model, 1)

    def forward(self, pixels):
        return self.proj(self.convs(pixels)).flatten(2).transpose(1, 2)


def build_stem(kind: str, patch_size: int, d_model: int) -> nn.Module:
    if kind not in STEMS:
        raise ValueError(f"unknown stem {kind!r}; stems: {', '.join(STEMS)}")
    return (LinearStem if kind == "linear" else ConvStem)(patch_size, d_model)
