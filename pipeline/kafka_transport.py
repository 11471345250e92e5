"""Faust's aiokafka transport with one change: a message no stream handled is never acknowledged.

Faust's stream drops the messages it fetched before a rebalance, or while flow control was suspended
for one, and acknowledges them anyway (``Stream._py_aiter``: ``do_ack or value is skipped_value``).
An acknowledged offset gets committed, so when the group's next fetch starts from that commit those
messages are never handled by anyone: changes lost during worker start-up and rebalances. A handled
message is always tracked by the stream before it reaches the agent; a dropped one never is, so the
consumer refuses to acknowledge untracked messages and the commit waits for the re-fetched copy.

Used through the ``faust.transports`` entry point (pyproject.toml) as the ``contactsync://`` scheme.
"""

from __future__ import annotations

from faust.transport.drivers import aiokafka
from faust.types import Message


class Consumer(aiokafka.Consumer):
    def ack(self, message: Message) -> bool:
        if not message.tracked:
            return False
        return super().ack(message)


class Transport(aiokafka.Transport):
    Consumer = Consumer
