"""``contactsync demo --source postgres``: the pipeline fed by a real Postgres table through Debezium.

Starts a throwaway Postgres (``wal_level=logical``), the local Kafka (unless a cluster is
configured), the run's topics, the simulators, a worker and a Kafka Connect worker with the Debezium
connector. The table (``pipeline.dev.people_table``: columns not named like the contact's fields,
read through its own source mapping) holds rows before the connector is registered, so they arrive
as its initial snapshot (op ``r``); then a mix of INSERT, UPDATE and DELETE statements is written,
one transaction each. The demo waits until the platforms hold what the table holds and reports the
same figures as the generated demo, reconciled against the table itself.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from pipeline.dev import people_table
from pipeline.dev.demo import demo_run, demo_topics, free_port, outcome_figures, pace_figures
from pipeline.dev.local_connect import LocalConnect
from pipeline.dev.local_postgres import postgres_server, require_server_bin
from pipeline.dev.local_stack import StackConfig, WorkerProcess, read_topic, wait_until_consuming
from pipeline.dev.simulators.runner import run_simulators
from pipeline.dev.table_reconcile import until_table_settled
from pipeline.errors import ConfigError
from pipeline.ops import cdc_connector
from pipeline.settings import Settings
from pipeline.stages.source_mapping import load_source_mapping
from schemas.dispatch import Outcome

CONNECTOR = "contactsync-demo"


@dataclass(frozen=True)
class PostgresDemoOptions:
    rows: int = 200  # in the table before the connector is registered: its snapshot
    changes: int = 800  # INSERT, UPDATE and DELETE statements written afterwards
    rate: float = 50.0  # statements per second
    seed: int = 7
    timeout_s: float = 180.0


async def run_postgres_demo(settings: Settings, options: PostgresDemoOptions) -> dict[str, Any]:
    bin_dir = require_server_bin()  # before anything starts: a machine without Postgres gets one line
    run_id, run_dir = demo_run()
    bootstrap, catalog = await demo_topics(settings, run_id)
    mapping_file = run_dir / "source.yaml"
    mapping_file.parent.mkdir(parents=True, exist_ok=True)
    mapping_file.write_text(people_table.MAPPING)
    mapping = load_source_mapping(mapping_file)
    mix = people_table.ChangeMix(options.seed)
    connect = LocalConnect(
        settings.local_connect.model_copy(update={"run_dir": run_dir / "connect", "port": free_port()}),
        settings.local_kafka,
    )
    with postgres_server(bin_dir, logical_port=free_port()) as dsn:
        people_table.create_table(dsn)
        people_table.execute(dsn, mix.inserts(options.rows))
        async with run_simulators() as sims:
            stack = StackConfig(bootstrap, f"contactsync-demo-{run_id}", catalog.prefix, sims.base_urls(),
                                extra_env={"CONTACTSYNC_SOURCE__MAPPING": str(mapping_file)})
            worker = WorkerProcess(stack, run_dir / "data", free_port(), run_dir / "worker.log").start()
            try:
                if not await wait_until_consuming(bootstrap, stack.app_id, 1, timeout_s=60):
                    raise ConfigError(f"the worker did not join its consumer group; see {worker.log_file}")
                connect.start(bootstrap, catalog, f"{stack.app_id}-connect")
                config = cdc_connector.connector_config(dsn, people_table.TABLE, mapping, catalog.cdc, CONNECTOR)
                started = time.monotonic()
                cdc_connector.register(connect.url, CONNECTOR, config)
                await asyncio.to_thread(people_table.execute, dsn, mix.changes(options.changes), options.rate)
                verdict = await until_table_settled(dsn, people_table.TABLE, mapping, settings, sims.base_urls(),
                                                    options.timeout_s, worker)
                elapsed = time.monotonic() - started
                captured = captured_ops(await read_topic(bootstrap, catalog.cdc))
                outcomes = [Outcome.model_validate_json(m.value) for m in await read_topic(bootstrap, catalog.outcomes)]
                letters = await read_topic(bootstrap, catalog.dlq)
            finally:
                connect.stop()
                await worker.shutdown()
    return {
        "rows_before_connector": options.rows,
        "sql_changes": options.changes,
        "events": sum(captured.values()),
        "captured_ops": captured,
        **outcome_figures(outcomes, letters),
        "expected_at_providers": verdict.expected,
        "matched_at_providers": verdict.matched,
        "lost": len(verdict.lost),
        "stale": len(verdict.stale),
        "reconciled": verdict.settled,
        "misses": [*verdict.lost, *verdict.stale][:10],
        "version_regressions": verdict.version_regressions,
        **pace_figures(outcomes, sum(captured.values()), elapsed, worker.log_file),
    }


def captured_ops(messages: list[Any]) -> dict[str, int]:
    """How many change events Debezium wrote, by op (``r`` snapshot, ``c``, ``u``, ``d``); tombstones aside."""
    ops = Counter(json.loads(m.value).get("op", "?") for m in messages if m.value is not None)
    return dict(sorted(ops.items()))
