"""Keep freed CPU memory in the process, so training steps stop page-faulting their buffers back in.

Every CPU training step allocates and frees the same large activation buffers. By default glibc gives big
freed blocks back to the OS (blocks over ``M_MMAP_THRESHOLD`` are separate mappings; the heap top is
trimmed past ``M_TRIM_THRESHOLD``), so the next step faults them in again, zero-filled page by page:
~10,000 minor faults per step at the benchmark's CPU shape, ~5% of the step (docs/performance.md). Raising
both thresholds keeps those blocks for reuse, as jemalloc or tcmalloc would.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
KEEP_BYTES = 1 << 30


def keep_freed_memory(keep_bytes: int = KEEP_BYTES) -> bool:
    """Ask glibc to serve blocks up to ``keep_bytes`` from its heap and not to trim it; True if applied.

    Left alone on other C libraries and platforms, and when the user already chose (``MALLOC_*_`` in the
    environment, or another allocator in ``LD_PRELOAD``).
    """
    if not sys.platform.startswith("linux") or os.environ.get("LD_PRELOAD"):
        return False
    if any(name in os.environ for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and friends
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, keep_bytes)) and bool(mallopt(M_TRIM_THRESHOLD, keep_bytes))
