"""Freed memory kept in the process, so a training step does not page-fault its activations back in.

glibc's malloc serves each block of 128 KB or more with its own mmap and unmaps it when freed (its dynamic
threshold rises with the largest block freed, to 32 MB at most), and gives the heap's free top back to the kernel
past 128 KB. A training step frees and allocates the same activations every step, so each step took them from the
kernel again, page by page, zero-filled. `keep_freed_memory()` fixes the mmap threshold at 32 MB, the trim
threshold at 1 GB and the heap's top pad at 256 MB: freed blocks are reused. Where memory lives, not what is
computed: the values are the same bit for bit. The process keeps up to 1 GB of freed memory instead of returning
it. Measurements: docs/training.md, "Threads, memory and the data worker". Not glibc (macOS, musl, Windows), or
`UNIO_KEEP_FREED_MEMORY=0` in the environment: nothing is done.
"""
from __future__ import annotations

import ctypes
import os

# mallopt's parameters (malloc.h) and the values set
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
SETTINGS = ((M_MMAP_THRESHOLD, 32 << 20), (M_TRIM_THRESHOLD, 1 << 30), (M_TOP_PAD, 256 << 20))


def keep_freed_memory() -> bool:
    """Set glibc's malloc to keep freed blocks for reuse (see the module's docstring); True where every setting
    took. It holds for the whole process: call it once, before the work that allocates (a data worker is a
    process of its own)."""
    if os.environ.get("UNIO_KEEP_FREED_MEMORY", "1") == "0":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt            # the C library this process runs on
    except (OSError, AttributeError, TypeError):       # no mallopt; TypeError: Windows cannot open None
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    took = [mallopt(param, value) == 1 for param, value in SETTINGS]     # each one tried
    return all(took)
