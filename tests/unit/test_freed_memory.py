"""Giving freed memory back to the system (pipeline/freed_memory.py), in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

import pytest

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

# How many heaps malloc has after a second thread allocated 8 MB, as glibc's malloc_info() counts them.
HEAPS_AFTER_A_THREAD_ALLOCATES = """
import ctypes, sys, tempfile, threading
from pipeline.freed_memory import set_up_malloc

if sys.argv[1] == "set-up":
    set_up_malloc()
held = []
thread = threading.Thread(target=lambda: held.extend(bytearray(4000) for _ in range(2_000)))
thread.start()
thread.join()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
with tempfile.NamedTemporaryFile(suffix=".xml") as report:
    stream = libc.fopen(report.name.encode(), b"w")
    libc.malloc_info(0, stream)
    libc.fclose(stream)
    print(report.read().decode().count("<heap nr="))
"""


def _run(script: str, *args: str) -> int:
    return int(subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, check=True
    ).stdout)


def test_memory_freed_inside_the_heap_goes_back_to_the_system() -> None:
    """40 MB freed below blocks still in use stay in the process until release_freed_memory hands them back."""
    assert _run(FREE_40_MB_THEN_RELEASE) >= 30


@pytest.mark.parametrize(("set_up", "heaps"), [("set-up", 1), ("default", 2)])
def test_every_thread_allocates_from_the_main_heap_once_malloc_is_set_up(set_up: str, heaps: int) -> None:
    """After set_up_malloc a thread's allocations come from the main heap; by default it gets a heap of its own."""
    assert _run(HEAPS_AFTER_A_THREAD_ALLOCATES, set_up) == heaps
