"""``make bench``: every benchmark with its default sizes, on one broker (about 15 minutes on 2 cores).

``python -m benchmarks [NAME ...]`` runs the named ones only (throughput, latency, api_efficiency,
drain, profile); each module also runs alone with its size knobs (``python -m benchmarks.drain --help``).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from benchmarks import api_efficiency, drain, latency, profile, throughput
from benchmarks.harness import Bench, open_bench

BENCHMARKS: dict[str, Callable[[Bench], Coroutine[Any, Any, None]]] = {
    "throughput": lambda bench: throughput.run(bench, throughput.Options()),
    "latency": lambda bench: latency.run(bench, latency.Options()),
    "api_efficiency": lambda bench: api_efficiency.run(bench, api_efficiency.Options()),
    "drain": lambda bench: drain.run(bench, drain.Options()),
    "profile": lambda bench: profile.run(bench, profile.Options()),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help=f"any of {', '.join(BENCHMARKS)} (default: all)")
    names = parser.parse_args().names or list(BENCHMARKS)
    if unknown := set(names) - set(BENCHMARKS):
        parser.error(f"unknown benchmark {', '.join(sorted(unknown))}")
    with open_bench("all") as bench:
        for name in names:
            asyncio.run(BENCHMARKS[name](bench))


if __name__ == "__main__":
    main()
