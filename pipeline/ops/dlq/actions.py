"""Replaying dead letters to the stage they failed at, and purging them (marking them handled)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Literal

from pipeline.kafka.clients import acked_producer
from pipeline.kafka.patient_producer import PatientProducer
from pipeline.kafka.producing import Outgoing
from pipeline.kafka.topics import TopicCatalog
from pipeline.ops.dlq.letters import Letter
from schemas.dead_letter import HandledLetter, Replayed
from schemas.headers import to_headers


async def replay(
    bootstrap: str, catalog: TopicCatalog, letters: Sequence[Letter], retry_deadline_s: float
) -> list[Letter]:
    """Send each letter not handled yet to its original topic and partition, key and value
    byte-identical, with only a ``contactsync.replayed_from`` header (no retry state: the stage starts
    afresh); then mark them replayed. Returns the letters sent (never a reference letter: it does not
    hold the original). A broker that stops acknowledging is waited for up to ``retry_deadline_s``."""
    chosen = [letter for letter in letters if letter.handled is None and letter.story is not None
              and not letter.is_reference]
    async with acked_producer(bootstrap, "contactsync-dlq", retry_deadline_s) as producer:
        await producer.send_all(
            Outgoing(
                letter.story.original_topic, letter.key, letter.value,
                headers=to_headers(Replayed(replayed_from=f"{catalog.dlq}:{letter.ref}")),
                partition=letter.story.original_partition,
            )
            for letter in chosen
            if letter.story is not None
        )
        await _mark(producer, catalog, chosen, "replayed")
    return chosen


async def purge(
    bootstrap: str, catalog: TopicCatalog, letters: Sequence[Letter], retry_deadline_s: float
) -> list[Letter]:
    """Mark each letter not handled yet as purged; returns those marked."""
    chosen = [letter for letter in letters if letter.handled is None]
    async with acked_producer(bootstrap, "contactsync-dlq", retry_deadline_s) as producer:
        await _mark(producer, catalog, chosen, "purged")
    return chosen


async def _mark(
    producer: PatientProducer, catalog: TopicCatalog, letters: Sequence[Letter],
    action: Literal["replayed", "purged"],
) -> None:
    at_ms = int(time.time() * 1000)
    await producer.send_all(
        Outgoing(
            catalog.dlq_handled, letter.ref.encode(),
            HandledLetter(
                action=action, at_ms=at_ms,
                replayed_to=letter.story.original_topic if action == "replayed" and letter.story else "",
            ).model_dump_json().encode(),
        )
        for letter in letters
    )
