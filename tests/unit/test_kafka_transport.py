"""The consumer never acknowledges (so never commits) a message that no stream handled."""

from __future__ import annotations

import faust
from faust.types import TP, Message

TOPIC = "contacts.cdc"


def consumer_of(tmp_path) -> faust.types.ConsumerT:  # type: ignore[no-untyped-def]
    app = faust.App("ack-test", broker="contactsync://127.0.0.1:9", datadir=str(tmp_path))
    app.topics.acking_topics.add(TOPIC)
    return app.consumer


def message(offset: int, *, tracked: bool) -> Message:
    fetched = Message(TOPIC, 0, offset, 0.0, 0, None, b"k", b"v", None)
    fetched.tracked = tracked
    return fetched


def test_a_message_no_stream_handled_is_not_acknowledged(tmp_path) -> None:  # type: ignore[no-untyped-def]
    consumer = consumer_of(tmp_path)
    assert consumer.ack(message(5, tracked=False)) is False
    assert consumer.ack(message(6, tracked=True)) is True
    assert list(consumer._acked[TP(TOPIC, 0)]) == [6]
