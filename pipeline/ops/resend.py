"""Retrying one record: its newest change event, sent to ``contacts.cdc`` again byte for byte.

The whole pipeline then handles it afresh (rules, routing, every provider); a provider that already
holds that version passes it over (version guard), one that missed it gets it. The event is found in
the record's partition of the CDC topic, so only changes within the topic's retention can be retried.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.kafka.clients import acked_producer
from pipeline.kafka.key_lookup import messages_with_key
from pipeline.kafka.producing import Outgoing
from pipeline.kafka.topics import TopicCatalog
from schemas.dead_letter import Replayed
from schemas.headers import to_headers


@dataclass(frozen=True)
class ResentChange:
    topic: str
    partition: int
    offset: int  # of the event that was sent again


async def resend_newest_change(
    bootstrap: str, catalog: TopicCatalog, record_id: str, retry_deadline_s: float
) -> ResentChange | None:
    """Send the record's newest CDC event again, marked ``contactsync.replayed_from``; None if there is none.
    A broker that stops acknowledging is waited for up to ``retry_deadline_s``."""
    changes = [m for m in await messages_with_key(bootstrap, catalog.cdc, catalog.partitions, record_id.encode())
               if m.value is not None]  # a tombstone only clears the log
    if not changes:
        return None
    newest = changes[-1]
    origin = Replayed(replayed_from=f"{newest.topic}:{newest.partition}:{newest.offset}")
    async with acked_producer(bootstrap, "contactsync-retry", retry_deadline_s) as producer:
        await producer.send_all([
            Outgoing(catalog.cdc, newest.key, newest.value, headers=to_headers(origin), partition=newest.partition)
        ])
    return ResentChange(newest.topic, newest.partition, newest.offset)
