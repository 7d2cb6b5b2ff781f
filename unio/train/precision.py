"""Training precision chosen by measurement (`--precision auto|bf16|fp32`).

bf16 autocast pays only where the machine multiplies bf16 matrices faster than fp32 ones: CPUs with
AVX512-BF16 or AMX do (one 2-core machine trained the default mixture 1.74x faster in bf16), others
emulate bf16 and lose. `auto` times both on matmuls of a training step's shapes once per machine
(CPU model, core count, torch version), caches the verdict in ~/.cache/unio/precision.json, and picks
bf16 when it is faster by more than `MARGIN`. A small matmul screens first: where bf16 is emulated (0.01x
fp32 on an AVX2-only CPU) it loses there by far, and the step's shapes are not timed in bf16 (they took 5 s of
every first run on such a machine). CUDA devices with bf16 support always take bf16."""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import torch

PRECISIONS = ("auto", "bf16", "fp32")
MARGIN = 1.1                 # bf16 must beat fp32 by 10%: autocast's casts cost something outside the matmuls
SHAPES = ((1024, 256, 1024), (1024, 1024, 256), (512, 512, 512))   # (m, k, n): tiny's FFN both ways, a square
SCREEN = ((256, 256, 256),)   # bf16 below SCREEN_LOSS x fp32 on it: fp32, without timing SHAPES in bf16
SCREEN_LOSS = 0.5


def cache_file() -> Path:
    from unio.train.tokenizer_setup import cache_root
    return cache_root() / "precision.json"


def machine_key() -> str:
    """What the verdict depends on: the CPU model, the cores torch uses and torch's version."""
    cpu = platform.processor() or platform.machine()
    try:
        names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return f"{cpu} | {torch.get_num_threads()} threads | torch {torch.__version__}"


def matmul_rate(dtype: torch.dtype, shapes=SHAPES, repeats: int = 3) -> float:
    """The median FLOP/s over `shapes` (each the median of `repeats` timings after a warm-up call)."""
    rates, generator = [], torch.Generator().manual_seed(0)    # the global random state is left alone
    for m, k, n in shapes:
        a, b = (torch.randn(*shape, generator=generator).to(dtype) for shape in ((m, k), (k, n)))
        torch.mm(a, b)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            torch.mm(a, b)
            times.append(time.perf_counter() - start)
        rates.append(2 * m * k * n / sorted(times)[len(times) // 2])
    return sorted(rates)[len(rates) // 2]


def probe() -> dict:
    """Both rates on this machine and the verdict (`screened`: bf16 lost the small screen by far, and its
    rate and speedup are the screen's)."""
    screen = {dtype: matmul_rate(dtype, SCREEN) for dtype in (torch.float32, torch.bfloat16)}
    fp32 = matmul_rate(torch.float32)
    if screen[torch.bfloat16] < SCREEN_LOSS * screen[torch.float32]:
        return {"fp32_flop_per_s": fp32, "bf16_flop_per_s": screen[torch.bfloat16], "screened": True,
                "bf16_speedup": screen[torch.bfloat16] / screen[torch.float32], "precision": "fp32"}
    bf16 = matmul_rate(torch.bfloat16)
    return {"fp32_flop_per_s": fp32, "bf16_flop_per_s": bf16, "bf16_speedup": bf16 / fp32, "screened": False,
            "precision": "bf16" if bf16 > MARGIN * fp32 else "fp32"}


def measured(cache: Path | None = None) -> dict:
    """This machine's probe, from the cache when it holds one for this machine, else measured and cached."""
    cache = cache or cache_file()
    key = machine_key()
    known = {}
    if cache.exists():
        try:
            known = json.loads(cache.read_text())
        except (OSError, json.JSONDecodeError):
            known = {}      # an unreadable cache is measured anew and rewritten
    if key not in known:
        known[key] = probe()
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(known, indent=1))
        partial.replace(cache)
    return known[key]


def resolve(precision: str, device_type: str = "cpu") -> tuple[bool, str]:
    """(use bf16 autocast, why) for --precision on this device."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision == "bf16", f"--precision {precision}"
    if device_type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return ok, f"auto: this GPU {'supports' if ok else 'lacks'} bf16"
    found = measured()
    return found["precision"] == "bf16", (f"auto: bf16 matmuls {found['bf16_speedup']:.2f}x fp32 on this machine "
                                          f"({cache_file()})")
