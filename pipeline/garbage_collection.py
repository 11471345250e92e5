"""Python's cyclic garbage collector, tuned for a worker: start-up's objects left out of its scans,
and the youngest objects scanned less often.

A worker holds about 145,000 objects the collector tracks, most of them made at start-up (Faust,
aiokafka, pydantic's schemas, the app) and never freed. With Python's defaults every full collection
walked them all (about 70 ms each, every few seconds under load), and a collection of the youngest
objects ran every 700 allocations, a few times per batch: together a tenth of a worker's CPU per
change (benchmarks/README.md, "CPU per change: the garbage collector"). Reference counting frees
almost everything a batch makes; the collector is only for cycles, which can wait a little longer.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000  # allocations between collections of the youngest objects (Python's default: 700)


def spare_startup_objects() -> None:
    """Collect once, move every object that survives into the permanent generation (never scanned,
    never freed: the modules, the app, the context) and scan the youngest less often."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, oldest)
