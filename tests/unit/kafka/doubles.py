"""Hand-written doubles of the Faust parts a batch stage touches: an event and a table.

They offer only what ``pipeline.kafka.table_rows``, ``pipeline.kafka.tables`` and the dispatcher use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import faust
from faust.types import TP

APP = faust.App("unit-doubles")  # its producer settings only (the request size limit): nothing is started


@dataclass
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    generation_id: int = 0  # the consumer generation it was read in; APP's is 0


@dataclass(eq=False)  # an object of its own, as rows_of keeps a weak reference to it
class Event:
    message: Message
    app: faust.App = APP


class MemoryStore(dict[bytes, bytes]):
    """A table's rows, remembering the partition of Faust's current event at each write."""

    def __init__(self) -> None:
        super().__init__()
        self.written_in: dict[bytes, int | None] = {}
        self.persisted: dict[TP, int] = {}
        self.persist_calls = 0

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.written_in[key] = _current_partition()
        super().__setitem__(key, value)

    def __delitem__(self, key: bytes) -> None:
        self.written_in[key] = _current_partition()
        super().__delitem__(key)

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        self.persisted[tp] = offset
        self.persist_calls += 1


@dataclass(frozen=True)
class Changelog:
    name: str

    def get_topic_name(self) -> str:
        return self.name




class MemoryTable:
    app = APP

    def __init__(self, changelog: str) -> None:
        self.name = changelog.rpartition(".table.")[2] or changelog
        self.data = MemoryStore()
        self.changelog_topic = Changelog(changelog)

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)


def _current_partition() -> int | None:
    event = faust.current_event()
    return None if event is None else event.message.partition
