"""The framework's floor: the four-hop relay of ``benchmarks.relay`` as four Faust agents.

One Faust app (plain ``kafka://`` broker: this measures Faust, not our ``contactsync://``
transport; memory store, no web server, no tables) with one agent per hop. Each agent takes up to
500 events within 0.05 s (``stream.take_events``), sends each message's key and value unchanged
to the next topic (raw serializers) and awaits the producer's futures together; Faust acknowledges
the events and commits. No decoding and no stage logic: what is left is Faust's per-event path.
Consumer, producer and commit settings as the workers' (``pipeline/app.py``). It runs in a child process
(``python -m benchmarks.faust_relay BOOTSTRAP APP_ID TOPIC...``), timed by ``benchmarks.baseline``;
Faust starts its agents only once the group has joined.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, cast

import faust

from benchmarks.relay import MAX_POLL_RECORDS

TAKE_MAX = 500
TAKE_WITHIN_S = 0.05


def command(bootstrap: str, app_id: str, topics: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "benchmarks.faust_relay", bootstrap, app_id, *topics]


def relay_app(bootstrap: str, app_id: str, topics: Sequence[str], datadir: str) -> faust.App:
    """A Faust app forwarding ``topics[i]`` to ``topics[i + 1]`` for every hop."""
    app = faust.App(
        app_id,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        datadir=datadir,
        autodiscover=False,
        web_enabled=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_commit_interval=1.0,
        broker_max_poll_records=MAX_POLL_RECORDS,
    )
    for index, (source, target) in enumerate(zip(topics, topics[1:], strict=False)):
        channel = app.topic(source, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
        app.agent(channel, name=f"hop{index}")(_forwarder(app, target))
    return app


def _forwarder(app: faust.App, target: str) -> Callable[[faust.StreamT[bytes]], Coroutine[Any, Any, None]]:
    async def forward(stream: faust.StreamT[bytes]) -> None:
        # Faust hands an agent a Stream; its interface StreamT does not declare take_events.
        async for events in cast(faust.Stream[bytes], stream).take_events(TAKE_MAX, within=TAKE_WITHIN_S):
            futures = [
                await app.producer.send(target, event.message.key, event.message.value, None, None, None)
                for event in events
            ]
            await asyncio.gather(*futures)

    return forward


if __name__ == "__main__":
    bootstrap, app_id, *hop_topics = sys.argv[1:]
    with tempfile.TemporaryDirectory(prefix="faust-relay-") as data_dir:
        worker = faust.Worker(relay_app(bootstrap, app_id, hop_topics, data_dir), loglevel="warning", quiet=True)
        worker.spinner = None  # it writes terminal escapes to the log file
        worker.execute_from_commandline()
