"""Producing a stage's outputs: every message sent as given, and one ack per message, in send order."""

from __future__ import annotations

import asyncio
from typing import Any

from faust.types import TP, RecordMetadata

from pipeline.kafka.producing import Outgoing, produce_all


class AckLaterProducer:
    """Stands in for Faust's producer: ``send`` returns a future the test resolves when it likes."""

    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []
        self.acks: list[asyncio.Future[RecordMetadata]] = []

    async def send(self, *args: Any) -> asyncio.Future[RecordMetadata]:
        self.sent.append(args)
        self.acks.append(asyncio.get_running_loop().create_future())
        return self.acks[-1]


class ProducerApp:
    def __init__(self) -> None:
        self.producer = AckLaterProducer()


async def test_produce_all_returns_once_every_message_is_acked_with_acks_in_send_order() -> None:
    """Acks arriving in any order come back lined up with the messages (table_rows relies on it),
    and produce_all returns only when the last is in."""
    app = ProducerApp()
    messages = [
        Outgoing("t.contacts.outcomes", b"r1", b"o"),
        Outgoing("t.changelog", b"r1", None, partition=5),
        Outgoing("t.contacts.dlq", b"r2", b"v", headers=[("contactsync.stage", b"dispatch")]),
    ]

    producing = asyncio.create_task(produce_all(app, messages))  # type: ignore[arg-type]
    while len(app.producer.acks) < len(messages):
        await asyncio.sleep(0)
    assert app.producer.sent == [
        ("t.contacts.outcomes", b"r1", b"o", None, None, None),  # no headers: None, not []
        ("t.changelog", b"r1", None, 5, None, None),
        ("t.contacts.dlq", b"r2", b"v", None, None, [("contactsync.stage", b"dispatch")]),
    ]
    for offset, ack in reversed(list(enumerate(app.producer.acks))):
        await asyncio.sleep(0)
        assert not producing.done()
        topic = messages[offset].topic
        ack.set_result(RecordMetadata(topic, 0, TP(topic, 0), offset, 0, 0))

    acked = await producing
    assert [(m.topic, m.offset) for m in acked] == [(msg.topic, i) for i, msg in enumerate(messages)]
