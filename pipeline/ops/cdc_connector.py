"""The Debezium PostgreSQL connector for one table: its configuration, registration and status,
through the Kafka Connect REST API (the local worker of ``pipeline.dev.local_connect``, or any).

The connector writes every change of the table onto ``contacts.cdc`` as Debezium JSON, keyed by
the record id as text (``ExtractField$Key`` on the key column, then a ``RegexRouter`` from
Debezium's topic ``<prefix>.<schema>.<table>`` to ``contacts.cdc``; heartbeats and transaction
metadata, on other topics, are left where they are). It uses pgoutput with a publication and a
replication slot named after it, and does not skip truncates, so that a truncate reaches the
dead-letter topic with its reason instead of vanishing (``pipeline.stages.validate``). Registering
is a ``PUT`` of the whole configuration, so registering again changes nothing.
"""

from __future__ import annotations

import os
import re
from typing import Any

import httpx
from psycopg.conninfo import conninfo_to_dict

from pipeline.errors import ConfigError
from pipeline.stages.source_mapping import SourceMapping

TOPIC_PREFIX = "contactsync"


def slot_name(connector: str) -> str:
    """The replication slot's (and the publication's) name: Postgres allows [a-z0-9_] in a slot name."""
    return re.sub(r"[^a-z0-9_]", "_", connector.lower())[:63]


def connector_config(
    dsn: str, table: str, mapping: SourceMapping, cdc_topic: str, connector: str, *, schemas_enable: bool = False
) -> dict[str, str]:
    """The connector's configuration for ``table`` (``schema.table``, default schema public)."""
    options = conninfo_to_dict(dsn)
    schema, _, name = table.rpartition(".")
    qualified = f"{schema or 'public'}.{name}"
    password = options.get("password") or os.environ.get("PGPASSWORD", "")
    source_topic = f"{TOPIC_PREFIX}.{qualified}"
    return {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "tasks.max": "1",
        "plugin.name": "pgoutput",
        "database.hostname": str(options.get("host") or "127.0.0.1"),
        "database.port": str(options.get("port") or 5432),
        "database.user": str(options.get("user") or os.environ.get("PGUSER", "postgres")),
        "database.password": str(password),
        "database.dbname": str(options.get("dbname") or "postgres"),
        "topic.prefix": TOPIC_PREFIX,
        "table.include.list": re.escape(qualified),
        "slot.name": slot_name(connector),
        "publication.name": slot_name(connector),
        "publication.autocreate.mode": "filtered",
        "snapshot.mode": "initial",
        "skipped.operations": "none",
        "decimal.handling.mode": "string",
        # Debezium waits this long for more changes before it hands a batch to Connect (500 ms by
        # default): at a steady 10 changes/s that wait was most of the time from COMMIT to the platform.
        "poll.interval.ms": "50",
        # Without heartbeats the slot's confirmed position stays behind a large transaction until
        # the table changes again, and the server keeps the WAL in between (docs/postgres-source.md:
        # what they do not cover). Connect makes the heartbeat topic (__debezium-heartbeat.contactsync)
        # with the broker's defaults.
        "heartbeat.interval.ms": "10000",
        "topic.creation.default.replication.factor": "-1",
        "topic.creation.default.partitions": "-1",
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": str(schemas_enable).lower(),
        "transforms": "key,route",
        "transforms.key.type": "org.apache.kafka.connect.transforms.ExtractField$Key",
        "transforms.key.field": mapping.key_column,
        "transforms.key.predicate": "table",
        "transforms.route.type": "org.apache.kafka.connect.transforms.RegexRouter",
        "transforms.route.regex": re.escape(source_topic),
        "transforms.route.replacement": cdc_topic,
        "predicates": "table",
        "predicates.table.type": "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
        "predicates.table.pattern": re.escape(source_topic),
    }


def register(url: str, connector: str, config: dict[str, str]) -> bool:
    """Create or update the connector; True when it was new."""
    answer = _call("PUT", f"{url}/connectors/{connector}/config", json=config)
    return answer.status_code == 201


def connector_status(url: str, connector: str) -> dict[str, Any] | None:
    """The connector's and its tasks' states, as Connect reports them; None if it is not registered."""
    answer = _call("GET", f"{url}/connectors/{connector}/status")
    return None if answer.status_code == 404 else dict(answer.json())


def _call(method: str, url: str, **kwargs: Any) -> httpx.Response:
    try:
        answer = httpx.request(method, url, timeout=30, **kwargs)
    except httpx.HTTPError as exc:
        raise ConfigError(f"Kafka Connect at {url}: {exc}; is it running (contactsync connect start)?") from None
    if answer.status_code >= 400 and answer.status_code != 404:
        message = answer.json().get("message", answer.text) if answer.headers.get("content-type", "").startswith(
            "application/json") else answer.text
        raise ConfigError(f"Kafka Connect refused {method} {url}: {' '.join(str(message).split())[:500]}")
    return answer


def slot_lag_bytes(dsn: str, connector: str) -> int | None:
    """How far the connector's replication slot is behind the server's WAL, in bytes (None: no slot)."""
    from pipeline.ops.backfill.from_postgres import connect  # psycopg's connection, the postgres extra

    with connect(dsn) as connection:
        row = connection.execute(
            "SELECT pg_current_wal_lsn() - confirmed_flush_lsn AS lag FROM pg_replication_slots WHERE slot_name = %s",
            (slot_name(connector),),
        ).fetchone()
    return None if row is None or row["lag"] is None else int(row["lag"])


def table_problems(dsn: str, table: str, mapping: SourceMapping) -> list[str]:
    """The mapping's columns ``table`` lacks, one line each; a missing table is one line too."""
    from pipeline.ops.backfill.from_postgres import connect, table_columns

    with connect(dsn) as connection:
        columns = table_columns(connection, table)
    if not columns:
        return [f"no table {table} in the database"]
    return mapping.problems_with_table(table, columns)
