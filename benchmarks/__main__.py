"""``make bench``: every benchmark with its default sizes, on one broker, then the targets of issue
#12 with today's figures beside the measured ones (``benchmarks.targets``).

``python -m benchmarks [NAME ...]`` runs the named ones only (throughput, latency, api_efficiency,
drain, profile, webhooks, cdc_source; the last needs PostgreSQL's server), in that order; each
module also runs alone with its size knobs (``python -m benchmarks.drain --help``). The latency
benchmark offers half of the 1-worker capacity that the throughput benchmark measured, when that ran
first.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from benchmarks import api_efficiency, cdc_source, drain, latency, profile, targets, throughput, webhooks
from benchmarks.harness import Bench, open_bench
from benchmarks.report import Results

BENCHMARKS: dict[str, Callable[[Bench, Results], Coroutine[Any, Any, Results]]] = {
    "throughput": lambda bench, _: throughput.run(bench, throughput.Options()),
    "latency": lambda bench, done: latency.run(bench, latency.Options(capacity=throughput.one_worker_capacity(done))),
    "api_efficiency": lambda bench, _: api_efficiency.run(bench, api_efficiency.Options()),
    "drain": lambda bench, _: drain.run(bench, drain.Options()),
    "profile": lambda bench, _: profile.run(bench, profile.Options()),
    "webhooks": lambda bench, _: webhooks.run(bench, webhooks.Options()),
    "cdc_source": lambda bench, _: cdc_source.run(bench, cdc_source.Options()),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help=f"any of {', '.join(BENCHMARKS)} (default: all)")
    chosen = parser.parse_args().names or list(BENCHMARKS)
    if unknown := set(chosen) - set(BENCHMARKS):
        parser.error(f"unknown benchmark {', '.join(sorted(unknown))}")
    results: Results = {}
    with open_bench("all") as bench:
        for name in (name for name in BENCHMARKS if name in chosen):
            results |= asyncio.run(BENCHMARKS[name](bench, results))
    print()
    print(targets.table(results, "medians of this invocation's runs"))


if __name__ == "__main__":
    main()
