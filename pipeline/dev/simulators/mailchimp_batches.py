"""The simulated Mailchimp batch operations: the batches an account started, and their results archives.

A batch is ``pending`` when posted; ``batch_delay_s`` later its operations run, one after the other
(in the order posted, or last first: Mailchimp promises none), through the same handlers as the
direct requests (``run`` is given them), then it is ``finished``
and its results wait at ``response_body_url`` as Mailchimp stores them: a gzipped tar of one JSON
file holding an array of ``{"status_code", "operation_id", "response"}`` (``response``: the body a
direct request would have had, as a string).
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import re
import tarfile
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline.dev.simulators.mailchimp_members import iso

KEPT = 1000  # batches listed (the newest first); the oldest are forgotten

OperationRunner = Callable[[dict[str, Any]], tuple[int, str]]  # one operation -> (status, response body)


@dataclass
class Batch:
    id: str
    total: int
    submitted_at: float
    status: str = "pending"
    finished: int = 0
    errored: int = 0
    completed_at: float | None = None
    archive: bytes = b""

    def as_json(self, results_url: str) -> dict[str, Any]:
        done = self.status == "finished"
        return {
            "id": self.id,
            "status": self.status,
            "total_operations": self.total,
            "finished_operations": self.finished,
            "errored_operations": self.errored,
            "submitted_at": iso(self.submitted_at),
            "completed_at": iso(self.completed_at) if self.completed_at is not None else "",
            "response_body_url": results_url if done else "",
            "_links": [],
        }


class Batches:
    """The account's batches, newest last; each runs in a task of its own."""

    def __init__(self) -> None:
        self._batches: OrderedDict[str, Batch] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)

    def start(
        self, operations: list[dict[str, Any]], run: OperationRunner, delay_s: float, *, last_first: bool = False
    ) -> Batch:
        batch = Batch(f"{next(self._ids):010x}", len(operations), time.time())
        self._batches[batch.id] = batch
        while len(self._batches) > KEPT:
            self._batches.popitem(last=False)
        task = asyncio.ensure_future(self._run(batch, operations[::-1] if last_first else operations, run, delay_s))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return batch

    def newest_first(self) -> list[Batch]:
        return list(reversed(self._batches.values()))

    def archive(self, batch_id: str) -> bytes | None:
        batch = self._batches.get(batch_id)
        return batch.archive if batch is not None and batch.status == "finished" else None

    def reset(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._batches.clear()

    @staticmethod
    async def _run(batch: Batch, operations: list[dict[str, Any]], run: OperationRunner, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        batch.status = "started"
        results = []
        for operation in operations:
            status, response = run(operation)
            operation_id = operation.get("operation_id", "")
            results.append({"status_code": status, "operation_id": operation_id, "response": response})
            batch.finished += 1
            batch.errored += status >= 400
        batch.archive = results_archive(batch.id, results)
        batch.status, batch.completed_at = "finished", time.time()


def results_archive(batch_id: str, results: list[dict[str, Any]]) -> bytes:
    """Mailchimp's results archive: a gzipped tar holding the results as one JSON file."""
    data = json.dumps(results).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo(f"{batch_id}/{batch_id}.json")
        info.size, info.mtime = len(data), int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def matches(template: str, path: str) -> dict[str, str] | None:
    """The ``{name}`` parts of ``path`` when it has the shape of the route ``template``, else None."""
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
    match = re.fullmatch(pattern + "/?", path)
    return match.groupdict() if match else None


def sparse(document: dict[str, Any], fields: str) -> dict[str, Any]:
    """``document`` with only ``fields`` (Mailchimp's comma-separated dot paths, like
    ``batches.id,total_items``); all of it when ``fields`` is empty."""
    wanted = [field.split(".") for field in fields.split(",") if field]
    return _pick(document, wanted) if wanted else document


def _pick(node: Any, wanted: list[list[str]]) -> Any:
    if isinstance(node, list):
        return [_pick(item, wanted) for item in node]
    if not isinstance(node, dict) or any(len(path) == 0 for path in wanted):
        return node
    picked = {}
    for key, value in node.items():
        below = [path[1:] for path in wanted if path[0] == key]
        if below:
            picked[key] = _pick(value, below)
    return picked
