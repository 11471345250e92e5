"""The parts of faust-streaming's inside that contactsync relies on, checked before a worker starts.

``pipeline.kafka.transport`` overrides private hooks of Faust's consumer and reads its private
bookkeeping to keep commits safe; ``pipeline.kafka.tables`` sets Faust's current-event variable;
``pipeline.kafka.table_rows`` reads and writes the RocksDB database of a table's partition itself;
``pipeline.kafka.transport`` also takes a stage's fetched records before Faust's fetch loop sees them,
and, through its own consumer thread, caps what one fetch may bring where Faust builds aiokafka's
consumer and seeks to the commits; ``pipeline.kafka.tables`` starts Faust's table manager without
its fixed sleep; ``pipeline.kafka.standby_rows`` keeps a standby table copy with the bookkeeping of
Faust's recovery.
All of them live in this package and nowhere else. If a Faust upgrade renamed one of them, Faust
would silently stop calling our override and the message loss it prevents would return, so a worker
refuses to start instead (pyproject.toml also bounds faust-streaming to the series checked here).
"""

from __future__ import annotations

import faust
import faust.streams
import faust.tables
from faust.stores import rocksdb
from faust.tables import recovery
from faust.transport import conductor, consumer
from faust.transport.drivers import aiokafka

from pipeline.errors import ConfigError

# Methods of Faust's consumer that pipeline.kafka.transport.Consumer overrides.
CONSUMER_HOOKS = ("ack", "_add_gap", "_new_offset", "_wait_next_records", "_getmany", "perform_seek",
                  "on_partitions_revoked", "on_stop")
# What pipeline.kafka.transport.ConsumerThread overrides and calls of Faust's aiokafka consumer thread
# (made by the consumer's ``_new_consumer_thread``, which the transport overrides too).
CONSUMER_THREAD_HOOKS = ("seek_to_committed", "_ensure_consumer", "call_thread", "_create_worker_consumer")
# What pipeline.kafka.tables.TableManager overrides and calls of Faust's table manager.
TABLE_MANAGER_HOOKS = ("on_start", "_update_channels", "recovery")
# Bookkeeping of Faust's consumer that the overrides read.
CONSUMER_STATE = ("_acked", "_gap", "_acked_index", "_committed_offset", "_unacked_messages", "_paused_partitions",
                  "_buffered_partitions", "_read_offset")
# Bookkeeping of Faust's table recovery that pipeline.kafka.standby_rows reads and moves.
RECOVERY_STATE = ("standby_tps", "standby_offsets", "tp_to_table")


def missing_internals() -> list[str]:
    """What of the above the installed Faust lacks, as ``Class.name``; empty when all is there."""
    missing = [f"Consumer.{name}" for name in CONSUMER_HOOKS if not _defines(consumer.Consumer, name)]
    missing += [f"Consumer.{name}" for name in CONSUMER_STATE if not _declares(consumer.Consumer, name)]
    if not _defines(aiokafka.Consumer, "_new_consumer_thread"):
        missing.append("Consumer._new_consumer_thread")
    missing += [f"AIOKafkaConsumerThread.{name}" for name in CONSUMER_THREAD_HOOKS
                if not _defines(aiokafka.AIOKafkaConsumerThread, name)]
    missing += [f"TableManager.{name}" for name in TABLE_MANAGER_HOOKS if not _defines(faust.tables.TableManager, name)]
    missing += [f"Recovery.{name}" for name in RECOVERY_STATE if not _declares(recovery.Recovery, name)]
    if not _declares(conductor.Conductor, "_tp_index"):
        missing.append("Conductor._tp_index")
    if not hasattr(faust.streams, "_current_event"):
        missing.append("faust.streams._current_event")
    if not _defines(rocksdb.Store, "_db_for_partition"):
        missing.append("faust.stores.rocksdb.Store._db_for_partition")
    return missing


def require_internals() -> None:
    """ConfigError naming what is missing, in one line, unless the installed Faust has it all."""
    missing = missing_internals()
    if missing:
        raise ConfigError(
            f"faust-streaming {faust.__version__} lacks {', '.join(missing)}, which contactsync relies on "
            "to commit safely; install the version pinned in constraints.txt"
        )


def _defines(cls: type, name: str) -> bool:
    return any(name in klass.__dict__ for klass in cls.__mro__)


def _declares(cls: type, name: str) -> bool:
    return any(name in getattr(klass, "__annotations__", {}) for klass in cls.__mro__)
