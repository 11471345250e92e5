"""The group's commit never passes a message that no stream handled."""

from __future__ import annotations

import faust
from faust.types import TP, Message

TOPIC = "contacts.cdc"
PARTITION = TP(TOPIC, 0)


def consumer_of(tmp_path) -> faust.types.ConsumerT:  # type: ignore[no-untyped-def]
    app = faust.App("ack-test", broker="contactsync://127.0.0.1:9", datadir=str(tmp_path))
    app.topics.acking_topics.add(TOPIC)
    consumer = app.consumer
    consumer._committed_offset[PARTITION] = 80
    return consumer


def message(offset: int, *, handled: bool) -> Message:
    """A fetched message; ``handled``: a stream tracked it before its agent saw it."""
    fetched = Message(TOPIC, 0, offset, 0.0, 0, None, b"k", b"v", None)
    fetched.tracked = handled
    return fetched


def test_a_dropped_message_holds_the_commit_until_it_is_handled(tmp_path) -> None:  # type: ignore[no-untyped-def]
    consumer = consumer_of(tmp_path)
    assert consumer.ack(message(80, handled=False)) is False  # dropped by a stream after a rebalance
    for offset in range(81, 86):
        assert consumer.ack(message(offset, handled=True))
    assert consumer._new_offset(PARTITION) is None  # Faust alone would commit 86, past offset 80

    assert consumer.ack(message(80, handled=True))  # fetched again and handled
    assert consumer._new_offset(PARTITION) == 86


def test_handled_messages_commit_as_before(tmp_path) -> None:  # type: ignore[no-untyped-def]
    consumer = consumer_of(tmp_path)
    for offset in range(80, 83):
        consumer.ack(message(offset, handled=True))
    assert consumer._new_offset(PARTITION) == 83
