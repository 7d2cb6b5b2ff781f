"""VQ-VAE image tokenizer plugin, built on vector-quantize-pytorch.

One codebook for every image-like target, as in Unified-IO (RGB images, single-channel depth maps
normalised to [0, 1], binary masks), or, with `modality` set (rgb, depth or mask), a codebook for one
kind of image, learned from the targets of that kind alone: a tokenizer config may list one per kind
under names of their own (`depth_codes: {plugin: vq, modality: depth}`), as 4M has a tokenizer per
modality, and each task's answers use the codebook of their kind (unio.kit.answers.image_tokenizer). Images are float tensors in [0, 1] shaped
(C, H, W) or (B, C, H, W) with C = 1 or 3; one channel is repeated to three before encoding,
and `decode(codes, channels=1)` averages back to one. H and W must be multiples of the
downsampling factor; `encode` returns a (B, H/f, W/f) grid of local code ids.

Quantiser: FSQ (finite scalar quantisation) by default — no codebook to collapse, no
commitment loss to tune; `quantizer="vq"` selects VectorQuantize (EMA codebook) instead.
"""
from __future__ import annotations

import itertools
import json
import math
import warnings
from pathlib import Path
from typing import Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from unio.registries import register_tokenizer

WEIGHTS, CONFIG = "model.safetensors", "config.json"
PALETTE_KINDS = ("class_map", "mask")   # images of a few exact colours (classes; in or out of a mask)


def _resblock(ch: int) -> nn.Module:
    return nn.Sequential(nn.GroupNorm(8, ch), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1),
                         nn.GroupNorm(8, ch), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1))


class _Residual(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.block = _resblock(ch)

    def forward(self, x):
        return x + self.block(x)


def _encoder(hidden: int, stages: int, dim: int) -> nn.Module:
    layers = [nn.Conv2d(3, hidden, 3, padding=1)]
    for _ in range(stages):  # residual blocks at the downsampled resolutions only: cheap on a CPU
        layers += [nn.Conv2d(hidden, hidden, 4, stride=2, padding=1), _Residual(hidden)]
    layers += [nn.GroupNorm(8, hidden), nn.SiLU(), nn.Conv2d(hidden, dim, 1)]
    return nn.Sequential(*layers)


def _decoder(hidden: int, stages: int, dim: int) -> nn.Module:
    layers = [nn.Conv2d(dim, hidden, 3, padding=1), _Residual(hidden)]
    for stage in range(stages):
        layers += [nn.ConvTranspose2d(hidden, hidden, 4, stride=2, padding=1)]
        layers += [_Residual(hidden)] if stage < stages - 1 else []
    layers += [nn.GroupNorm(8, hidden), nn.SiLU(), nn.Conv2d(hidden, 3, 3, padding=1)]
    return nn.Sequential(*layers)


@register_tokenizer("vq")
class VQTokenizer(nn.Module):
    order = 2

    def __init__(self, hidden: int = 32, downsample: int = 8, quantizer: str = "fsq",
                 levels: tuple[int, ...] = (8, 5, 5, 5), codebook_size: int = 1024, codebook_dim: int = 8,
                 modality: str | None = None):
        super().__init__()
        if downsample < 1 or downsample & (downsample - 1):
            raise ValueError(f"downsample must be a power of two, got {downsample}")
        if quantizer not in ("fsq", "vq"):
            raise ValueError(f"quantizer must be 'fsq' or 'vq', got {quantizer!r}")
        self.config = dict(hidden=hidden, downsample=downsample, quantizer=quantizer, levels=list(levels),
                           codebook_size=codebook_size, codebook_dim=codebook_dim)
        if modality is not None:   # only when set: a shared codebook's signature stays as it was
            self.config["modality"] = modality
        self.downsample, self.modality = downsample, modality
        stages = int(math.log2(downsample))
        if quantizer == "fsq":
            from vector_quantize_pytorch import FSQ
            dim, self.quantizer = len(levels), FSQ(levels=list(levels))
            self.size = int(math.prod(levels))
        else:
            from vector_quantize_pytorch import VectorQuantize
            dim, self.quantizer = codebook_dim, VectorQuantize(dim=codebook_dim, codebook_size=codebook_size,
                                                               decay=0.9, threshold_ema_dead_code=1)
            self.size = codebook_size
        self.encoder, self.decoder = _encoder(hidden, stages, dim), _decoder(hidden, stages, dim)

    @classmethod
    def build(cls, corpus, directory, steps: int = 600, batch_size: int = 32, downsample: int | None = None,
              progress: bool = True, modality: str | None = None, **options) -> "VQTokenizer":
        """The tokenizer plugin protocol: train on the corpus's image-like targets (of `modality` alone when
        given). The default grid is 8x8 codes at 64 px and 16x16 at 256 px (Unified-IO's), so image
        answers stay short."""
        model = cls(downsample=downsample or max(8, corpus.resolution // 16), modality=modality, **options)
        images = corpus.images(kind=modality)
        model = train_vq(model, images, steps=steps, batch_size=batch_size, progress=progress)
        if modality in PALETTE_KINDS:   # the stream goes on: the check reads images training has not seen
            model = keep_every_colour(model, images, steps=steps, batch_size=batch_size, progress=progress)
        return model

    # -- persistence -----------------------------------------------------------------------
    def signature(self) -> str:
        return "vq:" + json.dumps(self.config, sort_keys=True)

    def save(self, directory: str | Path) -> None:
        from safetensors.torch import save_file
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(directory / (WEIGHTS + ".tmp")))
        (directory / (WEIGHTS + ".tmp")).replace(directory / WEIGHTS)
        (directory / CONFIG).write_text(json.dumps(self.config, indent=2))

    @classmethod
    def load(cls, directory: str | Path) -> "VQTokenizer":
        from safetensors.torch import load_file
        directory = Path(directory)
        if not (directory / WEIGHTS).is_file():
            raise FileNotFoundError(f"no VQ-VAE weights at {directory / WEIGHTS}; train one with scripts/train_vq.py")
        model = cls(**json.loads((directory / CONFIG).read_text()))
        model.load_state_dict(load_file(str(directory / WEIGHTS)))
        return model.eval()

    # -- checks ----------------------------------------------------------------------------
    def _as_batch(self, images: torch.Tensor) -> torch.Tensor:
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"images must be a torch.Tensor (C, H, W) or (B, C, H, W), got {type(images).__name__}")
        if not images.is_floating_point():
            raise TypeError(f"images must be floating point in [0, 1], got dtype {images.dtype}")
        if images.dim() == 3:
            images = images[None]
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"images must be (C, H, W) or (B, C, H, W) with C = 1 or 3, got shape {tuple(images.shape)}")
        h, w = images.shape[-2:]
        if h % self.downsample or w % self.downsample or h == 0 or w == 0:
            raise ValueError(f"image size {h}x{w} must be a positive multiple of the downsampling factor {self.downsample}")
        return images.float().expand(-1, 3, -1, -1)

    def _check_codes(self, codes: torch.Tensor) -> torch.Tensor:
        if not isinstance(codes, torch.Tensor) or codes.is_floating_point():
            raise TypeError("codes must be an integer torch.Tensor (h, w) or (B, h, w)")
        codes = codes[None] if codes.dim() == 2 else codes
        if codes.dim() != 3:
            raise ValueError(f"codes must be shaped (h, w) or (B, h, w), got {tuple(codes.shape)}")
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.size):
            raise ValueError(f"codes must lie in 0..{self.size - 1}; got {int(codes.min())}..{int(codes.max())}")
        return codes.long()

    # -- encode / decode -------------------------------------------------------------------
    def quantise(self, images: torch.Tensor):
        z = self.encoder(self._as_batch(images) * 2 - 1)  # (B, D, h, w)
        b, d, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(b, h * w, d)
        out = self.quantizer(flat)
        quantised, codes = out[0], out[1]
        aux = out[2].sum() if len(out) > 2 and torch.is_tensor(out[2]) else z.new_zeros(())
        return quantised.reshape(b, h, w, d).permute(0, 3, 1, 2), codes.reshape(b, h, w), aux

    def _decode_latents(self, quantised: torch.Tensor) -> torch.Tensor:
        return ((self.decoder(quantised) + 1) / 2).clamp(0, 1)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.quantise(images)[1].long()

    def _latents(self, flat: torch.Tensor) -> torch.Tensor:
        """(B, N) codes -> (B, N, D) the latent vectors the decoder reads."""
        if self.config["quantizer"] == "fsq":
            return self.quantizer.indices_to_codes(flat)
        return self.quantizer.get_output_from_indices(flat)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, channels: int = 3) -> torch.Tensor:
        codes = self._check_codes(codes)
        b, h, w = codes.shape
        flat = codes.reshape(b, h * w).to(next(self.parameters()).device)
        return self.decode_latents(self._latents(flat).reshape(b, h, w, -1), channels)

    @torch.no_grad()
    def code_latents(self) -> torch.Tensor:
        """(size, D): every code's latent vector, in code order."""
        device = next(self.parameters()).device
        return self._latents(torch.arange(self.size, device=device)[None])[0].float()

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor, channels: int = 3) -> torch.Tensor:
        """(B, h, w, D) latents (codes' vectors, or mixtures of them) -> (B, channels, H, W) in [0, 1]."""
        weight = next(self.parameters())
        images = self._decode_latents(latents.permute(0, 3, 1, 2).to(device=weight.device, dtype=weight.dtype))
        return images.mean(1, keepdim=True) if channels == 1 else images

    def forward(self, images: torch.Tensor):
        """Training forward: (reconstruction in [0, 1], auxiliary quantiser loss)."""
        quantised, _, aux = self.quantise(images)
        return self._decode_latents(quantised), aux


def psnr(reconstruction: torch.Tensor, target: torch.Tensor) -> float:
    mse = F.mse_loss(reconstruction.float(), target.float()).item()
    return 10 * math.log10(1.0 / max(mse, 1e-10))


def train_vq(model: VQTokenizer, images: Iterable[torch.Tensor], *, steps: int, batch_size: int = 32,
             lr: float = 2e-3, progress: bool = True, log=None) -> VQTokenizer:
    """Train `model` on an endless iterable of (C, H, W) images in [0, 1] (reconstruction MSE + quantiser loss)."""
    from tqdm import tqdm
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min((s + 1) / warmup, 1.0)
                                                 * 0.5 * (1 + math.cos(math.pi * min(s / max(steps, 1), 1.0))))
    stream = iter(images)
    model.train()
    bar = tqdm(range(steps), desc="train VQ-VAE", disable=not progress)
    for step in bar:
        batch = torch.stack([next(stream).expand(3, -1, -1) for _ in range(batch_size)])
        reconstruction, aux = model(batch)
        loss = F.mse_loss(reconstruction, batch) + aux
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if log is not None:
            log(step, loss.item())
    return model.eval()


@torch.no_grad()
def evaluate_psnr(model: VQTokenizer, images: list[torch.Tensor], batch_size: int = 64) -> float:
    """Mean PSNR (dB) of encode -> decode over `images`, each compared in its own channel count."""
    scores = []
    for i in range(0, len(images), batch_size):
        chunk = images[i:i + batch_size]
        channels = chunk[0].shape[0]
        batch = torch.stack(chunk)
        scores.append(psnr(model.decode(model.encode(batch), channels=channels), batch) * len(chunk))
    return sum(scores) / len(images)


@torch.no_grad()
def lost_colours(model: VQTokenizer, images: list[torch.Tensor], keep: float = 0.5, least: float = 0.001,
                 batch_size: int = 64) -> dict:
    """{colour: share} for each exact colour of palette-like `images` (at least `least` of their pixels) whose
    pixels come back through the codes as themselves (the nearest of the images' colours) less than `keep`
    of the time; colours as tuples of 0-255 channel values."""
    gold = torch.cat([(image.expand(3, -1, -1) * 255).round().reshape(3, -1).T for image in images])
    colours, index, counts = gold.unique(dim=0, return_inverse=True, return_counts=True)
    back = []
    for i in range(0, len(images), batch_size):
        batch = torch.stack([image.expand(3, -1, -1) for image in images[i:i + batch_size]])
        back.append((model.decode(model.encode(batch)) * 255).permute(0, 2, 3, 1).reshape(-1, 3))
    nearest = torch.cdist(torch.cat(back).to(colours), colours).argmin(1)
    right = torch.zeros(len(colours), device=index.device).index_add_(0, index, (nearest == index).float())
    share = right / counts
    return {tuple(int(v) for v in colour): round(float(s), 3) for colour, s, n in zip(colours, share, counts)
            if n >= least * len(gold) and s < keep}


def keep_every_colour(model: VQTokenizer, images: Iterator[torch.Tensor], *, steps: int, batch_size: int = 32,
                      progress: bool = True, rounds: int = 2, sample: int = 256) -> VQTokenizer:
    """A codebook of class maps or masks that gives back every colour (a short run can lose one whole: every
    pixel of a class decoded as another). While a colour of the next `sample` images comes back as itself for
    under half its pixels, `steps` more training on the stream (a fresh optimizer and schedule; at most
    `rounds` times); then a warning naming any colour still lost."""
    held = list(itertools.islice(images, sample))
    for attempt in range(rounds + 1):
        lost = lost_colours(model, held)
        if not lost:
            return model
        if attempt == rounds:
            break
        print(f"VQ-VAE ({model.modality}): colours {lost} (RGB: share of their pixels given back) are lost; "
              f"training {steps} more steps")
        model = train_vq(model, images, steps=steps, batch_size=batch_size, progress=progress)
    warnings.warn(f"the {model.modality} codebook still loses colours {lost} after {rounds} more runs of {steps} "
                  f"steps: the answers of those classes cannot come back; give it more steps in the tokenizer config")
    return model
