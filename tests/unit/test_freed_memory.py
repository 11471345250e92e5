"""Giving freed memory back to the system (pipeline/freed_memory.py), in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

FREE_40_MB_THEN_RELEASE = """
import asyncio
from pipeline.freed_memory import release_freed_memory

def rss_anon_kb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("RssAnon:"))

blocks = [bytearray(4000) for _ in range(10_000)]  # 40 MB from malloc's heap
held_above = [bytearray(4000) for _ in range(100)]  # so that they are not the heap's top, which free() trims
del blocks
before = rss_anon_kb()
asyncio.run(release_freed_memory())
print((before - rss_anon_kb()) // 1024)
"""


def test_memory_freed_inside_the_heap_goes_back_to_the_system() -> None:
    """40 MB freed below blocks still in use stay in the process until release_freed_memory hands them back."""
    released_mb = int(subprocess.run(
        [sys.executable, "-c", FREE_40_MB_THEN_RELEASE], capture_output=True, text=True, check=True
    ).stdout)
    assert released_mb >= 30
