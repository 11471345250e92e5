"""The log of every API request a simulator received, served at ``GET /_sim/requests``."""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pipeline.dev.simulators.store import as_text


@dataclass(frozen=True)
class RecordRef:
    """One record named in a request: the contactsync record id and the version it carried."""

    record_id: str | None
    version: str | None

    @classmethod
    def of(cls, record_id: object, version: object) -> RecordRef:
        return cls(as_text(record_id), as_text(version))


@dataclass
class LoggedRequest:
    """One API request; ``status`` stays None until answered (and for dropped connections)."""

    seq: int
    method: str
    path: str
    query: str
    received_at: float
    status: int | None = None
    answered_at: float | None = None
    outcome: str = "pending"
    records: list[RecordRef] = field(default_factory=list)
    operations: dict[str, int] = field(default_factory=dict)  # a batch request's operations by method

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "received_at": self.received_at,
            "answered_at": self.answered_at,
            "status": self.status,
            "outcome": self.outcome,
            "record_count": len(self.records),
            "records": [{"record_id": ref.record_id, "version": ref.version} for ref in self.records],
            "operations": self.operations,
        }


class RequestLog:
    """The newest ``max_size`` requests, in arrival order."""

    def __init__(self, max_size: int) -> None:
        self._entries: deque[LoggedRequest] = deque(maxlen=max_size)
        self._seq = itertools.count(1)

    def reset(self, max_size: int) -> None:
        self._entries = deque(maxlen=max_size)

    def open(self, method: str, path: str, query: str, received_at: float) -> LoggedRequest:
        entry = LoggedRequest(next(self._seq), method, path, query, received_at)
        self._entries.append(entry)
        return entry

    def entries(self, *, after_seq: int = 0) -> list[dict[str, Any]]:
        return [entry.as_json() for entry in self._entries if entry.seq > after_seq]
