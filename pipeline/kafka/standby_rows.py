"""Standby table copies kept up to date one fetch at a time.

Faust keeps a warm copy of each table partition on another worker (``CONTACTSYNC_STANDBY_REPLICAS``)
by reading the owner's changelog, and takes every row of it through its per-message path: a task
race per message in its fetch loop (``wait_first``), the conductor, the changelog queue and its
recovery loop. In a two-worker drain that path cost a quarter of a worker's Python time, and the
drain about 40 % of its rate (benchmarks/README.md, "Standby copies: what they cost").

Here the consumer hands the rows of a partition this worker holds as a standby straight to its
table's store, each fetch in one RocksDB write batch (``Table.apply_changelog_batch``, what Faust's
recovery calls per buffer), and moves Faust's standby offset with them, from which the next
rebalance seeks and which skips a row seen already. A partition this worker recovers as its
owner's, after a rebalance, still goes Faust's way: its end signals that recovery is over.

RocksDB stores the raw bytes of each row's message; the in-memory store (``memory://``) keeps keys
and values decoded, so its rows are decoded as the changelog topic decodes them for Faust's recovery.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, cast

from faust.stores.rocksdb import Store as RocksDBStore
from faust.types import TP, AppT, Message


class _Row(NamedTuple):
    """What the RocksDB store's ``apply_changelog_batch`` reads of a changelog event: its message."""

    message: Message


def holds_as_standby(app: AppT, tp: TP) -> bool:
    """Whether ``tp`` is a changelog partition this worker keeps a standby copy of."""
    return tp in cast(Any, app.tables).recovery.standby_tps


async def apply_standby_rows(app: AppT, tp: TP, messages: Sequence[Message]) -> None:
    """Write the rows of ``messages`` (one standby changelog partition, in offset order) that the
    copy does not hold yet to its table, and record the last as applied."""
    recovery = cast(Any, app.tables).recovery
    seen = recovery.standby_offsets.get(tp)
    new = [message for message in messages if seen is None or message.offset > seen]
    if not new:
        return
    table = recovery.tp_to_table[tp]
    if isinstance(table.data, RocksDBStore):
        rows: list[Any] = [_Row(message) for message in new]
    else:
        rows = [await table.changelog_topic.decode(message, propagate=True) for message in new]
    table.apply_changelog_batch(rows)
    recovery.standby_offsets[tp] = new[-1].offset
