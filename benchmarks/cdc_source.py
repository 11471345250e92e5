"""The real source: a Postgres COMMIT to the provider's ack, Kafka Connect's start and memory, and
the replication slot's lag during a burst.

One run: a throwaway Postgres (``wal_level=logical``), a pipeline on fresh topics (simulators that
answer after ``api_latency_ms``, one worker, lanes not rate limited) reading the table of
``pipeline.dev.people_table`` through its mapping, and a Kafka Connect worker of its own with the
Debezium connector. In order:

- ``connect``: seconds from launching Connect's JVM to its REST API answering (jars cached), its RSS
  then, its steady RSS during the steady load and its peak (VmHWM) at the end;
- ``snapshot``: ``rows`` rows in the table before the connector is registered, until the platforms
  hold them (seconds from registering);
- ``commit_to_ack_ms``: ``rate`` single-row transactions a second (the people table's mix of
  inserts, updates and deletes) for ``seconds``; per delivered outcome, ``at_ms − source_ts_ms``,
  Debezium's ``source.ts_ms`` being the transaction's commit time, read from the same clock;
- ``burst``: ``burst_rows`` rows inserted by one statement (one transaction); the slot's lag
  (``pg_current_wal_lsn() − confirmed_flush_lsn``) sampled every ``sample_s`` until it is back
  within ``CAUGHT_UP_BYTES`` of where it was: its peak and how long it took.

Every phase ends with the platforms reconciled against the table (``lost`` and ``stale`` say
otherwise).
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from typing import Any

from benchmarks.cli import run_alone
from benchmarks.harness import Bench, PipelineRun, pipeline_run, simulators_config, unlimited_env
from benchmarks.procstat import sample_processes
from benchmarks.report import Results, emit, percentiles
from pipeline.dev import people_table
from pipeline.dev.demo import free_port
from pipeline.dev.local_connect import LocalConnect
from pipeline.dev.local_postgres import postgres_server, require_server_bin
from pipeline.dev.local_stack import read_topic
from pipeline.dev.table_reconcile import until_table_settled
from pipeline.errors import ConfigError
from pipeline.ops import cdc_connector
from pipeline.settings import Settings
from pipeline.stages.source_mapping import SourceMapping, load_source_mapping
from schemas.dispatch import Outcome

CONNECTOR = "contactsync-bench"
CAUGHT_UP_BYTES = 65_536  # WAL the server writes on its own (running-xacts records) moves the lag a little


@dataclass(frozen=True)
class Options:
    rows: int = 200  # before the connector: its snapshot, and the pipeline's warm-up
    rate: float = 10.0  # single-row transactions per second
    seconds: float = 60.0
    burst_rows: int = 10_000
    sample_s: float = 0.2
    api_latency_ms: float = 50.0
    timeout_s: float = 300.0


async def run(bench: Bench, options: Options) -> Results:
    """The figures; none, saying why on stderr, on a machine without PostgreSQL (``make bench`` goes on)."""
    env = bench.environment()
    try:
        bin_dir = require_server_bin()
    except ConfigError as missing:
        print(f"cdc_source: not run: {missing}", file=sys.stderr)
        return {}
    with postgres_server(bin_dir, logical_port=free_port()) as dsn:
        result = await one_run(bench, options, dsn)
    return {"cdc_source": emit("cdc_source", vars(options), result, env)}


async def one_run(bench: Bench, options: Options, dsn: str) -> dict[str, Any]:
    mapping_file = bench.work_dir / "source.yaml"
    mapping_file.parent.mkdir(parents=True, exist_ok=True)
    mapping_file.write_text(people_table.MAPPING)
    mix = people_table.ChangeMix(seed=11)
    people_table.create_table(dsn)
    people_table.execute(dsn, mix.inserts(options.rows))
    worker_env = {**unlimited_env(), "CONTACTSYNC_SOURCE__MAPPING": str(mapping_file)}
    async with pipeline_run(bench, "cdc", simulators_config(options.api_latency_ms), worker_env) as pipeline:
        await pipeline.start_workers(1)
        settings = Settings().local_connect.model_copy(
            update={"run_dir": pipeline.run_dir / "connect", "port": free_port()}
        )
        connect = LocalConnect(settings, Settings().local_kafka)
        connect.fetch_jars()  # a first run's download is not start time
        launched = time.monotonic()
        state = connect.start(bench.bootstrap, pipeline.catalog, f"{pipeline.app_id}-connect")
        started_s = time.monotonic() - launched
        try:
            async with sample_processes({"connect": state.pid}) as samples:
                result = await _phases(pipeline, connect, dsn, mix, load_source_mapping(mapping_file), options)
            start_ms, end_ms = result.pop("steady_window_ms")
            steady = samples.memory(start_ms, end_ms, prefix="connect")
            first = round(samples.samples["connect"][0].rss_mb, 1) if samples.samples["connect"] else None
        finally:
            connect.stop()
    peak = samples.peak_mb.get("connect")
    connect_figures = {"start_s": round(started_s, 2), "rss_after_start_mb": first,
                       "steady_rss_mb": steady["steady_mb"], "peak_rss_mb": round(peak, 1) if peak else None}
    return {"connect": connect_figures, **result}


async def _phases(
    pipeline: PipelineRun, connect: LocalConnect, dsn: str, mix: people_table.ChangeMix, mapping: SourceMapping,
    options: Options,
) -> dict[str, Any]:
    async def settled() -> dict[str, int]:
        verdict = await until_table_settled(dsn, people_table.TABLE, mapping, Settings(), pipeline.stack.base_urls,
                                            options.timeout_s)
        return {"lost": len(verdict.lost), "stale": len(verdict.stale), "matched": verdict.matched}

    registered = time.monotonic()
    cdc_connector.register(connect.url, CONNECTOR, cdc_connector.connector_config(
        dsn, people_table.TABLE, mapping, pipeline.catalog.cdc, CONNECTOR))
    snapshot = {"rows": options.rows, **await settled(), "seconds": round(time.monotonic() - registered, 2)}

    start_ms = int(time.time() * 1000)
    count = int(options.rate * options.seconds)
    await asyncio.to_thread(people_table.execute, dsn, mix.changes(count), options.rate)
    end_ms = int(time.time() * 1000)
    steady_settled = await settled()
    outcomes = [Outcome.model_validate_json(m.value) for m in await read_topic(pipeline.bench.bootstrap,
                                                                                pipeline.catalog.outcomes)]
    latencies = [o.at_ms - o.source_ts_ms for o in outcomes
                 if o.state == "delivered" and start_ms <= o.source_ts_ms <= end_ms]
    steady = {"changes": count, "delivered": len(latencies), **percentiles(latencies), **steady_settled}

    burst = await asyncio.to_thread(_burst, dsn, options)
    return {"snapshot": snapshot, "commit_to_ack_ms": steady, "burst": {**burst, **await settled()},
            "steady_window_ms": (start_ms, end_ms)}


def _burst(dsn: str, options: Options) -> dict[str, Any]:
    """Insert ``burst_rows`` rows in one statement; the slot's lag until it is back where it was."""
    before = cdc_connector.slot_lag_bytes(dsn, CONNECTOR) or 0
    first = 10_000_000
    people_table.execute(dsn, [people_table.Statement(
        f"INSERT INTO {people_table.TABLE} (person_no, mail, given, kind, opted_in)"
        " SELECT g, 'burst' || g || '@example.com', 'Burst', 'C', false FROM generate_series(%s, %s) g",
        (first, first + options.burst_rows - 1))])
    committed = time.monotonic()
    peak, lag = before, before
    while time.monotonic() - committed < options.timeout_s:
        lag = cdc_connector.slot_lag_bytes(dsn, CONNECTOR) or 0
        peak = max(peak, lag)
        if lag <= before + CAUGHT_UP_BYTES and time.monotonic() - committed > 1:
            break
        time.sleep(options.sample_s)
    return {"rows": options.burst_rows, "slot_lag_before_bytes": before, "slot_lag_peak_bytes": peak,
            "slot_lag_end_bytes": lag, "seconds_to_catch_up": round(time.monotonic() - committed, 2)}


if __name__ == "__main__":
    run_alone("cdc_source", Options, run, __doc__ or "")
