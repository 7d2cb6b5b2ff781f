"""Freed memory kept in the process, so a training step does not page-fault its activations back in.

glibc's malloc serves every block of 128 KB or more with its own mmap and unmaps it when freed (the threshold
grows to the largest block freed, up to 32 MB), and gives the heap's free top back to the kernel once it passes
128 KB. A training step allocates and frees the same activations every step, so each step asks the kernel for them
again, page by page, zero-filled: on 2 cores the default command took 32.6 M minor page faults (~15,000 a step)
and 79 s of CPU time in the kernel. `keep_freed_memory()` sets the mmap threshold to glibc's most (32 MB), the trim
threshold to 1 GB and the heap's top pad to 256 MB: blocks are reused, the faults stop (3.6-3.9 M -> 1.1 M in a
160-step run) and its steps take 7-12% less (docs/training.md, "Threads, memory and the data worker"). Where
memory lives, not what is computed: the values are the same bit for bit. Not glibc (macOS, musl): nothing is done.
"""
from __future__ import annotations

import ctypes

# mallopt's parameters (malloc.h) and the values set
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
SETTINGS = ((M_MMAP_THRESHOLD, 32 << 20), (M_TRIM_THRESHOLD, 1 << 30), (M_TOP_PAD, 256 << 20))


def keep_freed_memory() -> bool:
    """Set glibc's malloc to keep freed blocks for reuse (see the module's docstring); True where it did.
    Call it once a process, before the work that allocates (a data worker is a process of its own)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt            # the C library this process runs on
    except (OSError, AttributeError):                  # one without mallopt
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in SETTINGS)
