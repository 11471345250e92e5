"""Giving the memory a worker frees back to the system (glibc's malloc).

glibc keeps what a process frees for its next allocations, and by default raises the size from which
a block gets its own mapping each time such a block is freed: a worker's churn (fetched batches,
decoded messages, outputs, RocksDB's flushes, in Faust's consumer thread too) then leaves free pages
spread through its heaps that it never hands back, 17-30 MB of a drain's RSS. Three calls hand them
back (benchmarks/README.md, "Memory" and "One malloc arena"):

- ``set_up_malloc()``, once at start, before any thread: every block of 128 KiB or more gets its own
  mapping, unmapped when freed (the threshold stays where glibc starts it instead of growing to
  32 MiB); and every thread allocates from the one main heap. By default each thread that allocates
  while another holds the heap's lock gets an arena of its own (Faust's consumer thread, RocksDB's):
  the consumer thread's burst at start-up (every partition fetched by the first worker of a group)
  left 13-18 MB free in its arena for the rest of a 200,000-change drain, where the main heap would
  have reused it;
- ``release_freed_memory()``, every few seconds: ``malloc_trim(0)`` returns every whole free page of
  every heap (0.3 ms at the median in a drain).

Where the C library is not glibc (musl, or another allocator preloaded) they do nothing.
"""

from __future__ import annotations

import ctypes
from typing import Any

RELEASE_INTERVAL_S = 5.0
# glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_LARGE_BLOCK_BYTES = 128 * 1024  # glibc's own starting threshold

_libc = ctypes.CDLL(None)  # the C library this process runs on


def _function(name: str) -> Any:
    return getattr(_libc, name, None)


_mallopt = _function("mallopt")
_malloc_trim = _function("malloc_trim")


def set_up_malloc() -> None:
    """Give every block of 128 KiB or more its own mapping, returned to the system when freed, and
    keep every thread's allocations in the main heap (call before any thread starts)."""
    if _mallopt is not None:
        _mallopt(_M_MMAP_THRESHOLD, _LARGE_BLOCK_BYTES)
        _mallopt(_M_ARENA_MAX, 1)


async def release_freed_memory() -> None:
    """Hand the whole free pages of malloc's heaps back to the system (no allocation moves)."""
    if _malloc_trim is not None:
        _malloc_trim(0)
