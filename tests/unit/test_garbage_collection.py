"""The collector's tuning for a worker (pipeline/garbage_collection.py), in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

SPARE_THEN_COLLECT = """
import gc, json
from pipeline.garbage_collection import YOUNG_THRESHOLD, spare_startup_objects

startup = [[index] for index in range(100_000)]  # long-lived objects the collector tracks
tracked_before = len(gc.get_objects())
spare_startup_objects()
tracked_after = len(gc.get_objects())
cycle = []
cycle.append(cycle)  # garbage only the collector frees
del cycle
print(json.dumps({
    "frozen": gc.get_freeze_count(), "tracked_before": tracked_before, "tracked_after": tracked_after,
    "young_threshold": gc.get_threshold()[0], "expected_threshold": YOUNG_THRESHOLD, "freed": gc.collect(),
}))
"""


def test_startup_objects_are_left_out_of_every_scan_and_cycles_are_still_freed() -> None:
    result = json.loads(subprocess.run(
        [sys.executable, "-c", SPARE_THEN_COLLECT], capture_output=True, text=True, check=True
    ).stdout)
    assert result["frozen"] >= 100_000  # start-up's objects are in the permanent generation
    assert result["tracked_after"] < result["tracked_before"] - 100_000  # so no collection walks them
    assert result["young_threshold"] == result["expected_threshold"]
    assert result["freed"] >= 1  # a cycle made afterwards is still collected
