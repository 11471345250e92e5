"""Reading dead letters with their story (the ``contactsync.*`` headers) and selecting them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import TopicPartition
from pydantic import ValidationError

from pipeline.kafka.clients import groupless_consumer, read_to_end
from pipeline.kafka.topic_admin import require_topics
from pipeline.kafka.topics import TopicCatalog
from schemas.dead_letter import DeadLetter, HandledLetter
from schemas.headers import from_headers


@dataclass(frozen=True)
class Letter:
    """One DLQ message: the original key and value, why it died, and what was done about it."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    story: DeadLetter | None  # None: the message has no dead-letter headers
    handled: HandledLetter | None

    @property
    def ref(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def is_reference(self) -> bool:
        """A reference letter: the original was too large to dead-letter whole, so there is nothing to
        replay (see ``pipeline.kafka.dead_letters``)."""
        return self.story is not None and self.story.is_reference


@dataclass(frozen=True)
class LetterFilter:
    """Which letters an operator means: every criterion given must hold; handled ones only if asked."""

    refs: frozenset[str] | None = None  # <partition>:<offset>
    key: str | None = None
    stage: str | None = None
    provider: str | None = None
    error_class: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    include_handled: bool = False

    @property
    def selects(self) -> bool:
        """Whether anything narrows the selection (beyond leaving handled letters out)."""
        return any(value is not None for value in (self.refs, self.key, *self._story_criteria()))

    def matches(self, letter: Letter) -> bool:
        if letter.handled is not None and not self.include_handled:
            return False
        if self.refs is not None and letter.ref not in self.refs:
            return False
        if self.key is not None and letter.key != self.key.encode():
            return False
        story = letter.story
        if story is None:
            return all(value is None for value in self._story_criteria())
        return (
            self.stage in (None, story.stage)
            and self.provider in (None, story.provider)
            and self.error_class in (None, story.error_class)
            and (self.since_ms is None or story.last_failure_ms >= self.since_ms)
            and (self.until_ms is None or story.last_failure_ms < self.until_ms)
        )

    def _story_criteria(self) -> tuple[object, ...]:
        return self.stage, self.provider, self.error_class, self.since_ms, self.until_ms


async def read_letters(bootstrap: str, catalog: TopicCatalog) -> list[Letter]:
    """Every letter in the DLQ now, oldest failure first, with its handled marker if it has one."""
    await require_topics(bootstrap, catalog.dlq, catalog.dlq_handled)
    async with groupless_consumer(bootstrap, "contactsync-dlq") as consumer:
        handled: dict[str, HandledLetter | None] = {}
        async for marker in read_to_end(consumer, _partitions(catalog.dlq_handled, catalog)):
            handled[(marker.key or b"").decode()] = (
                HandledLetter.model_validate_json(marker.value) if marker.value else None
            )
        letters = [
            Letter(m.partition, m.offset, m.key, m.value, tuple(m.headers or ()), _story(m.headers),
                   handled.get(f"{m.partition}:{m.offset}"))
            async for m in read_to_end(consumer, _partitions(catalog.dlq, catalog))
        ]
    return sorted(letters, key=lambda one: (one.story.last_failure_ms if one.story else 0, one.partition, one.offset))


def _partitions(topic: str, catalog: TopicCatalog) -> list[TopicPartition]:
    return [TopicPartition(topic, partition) for partition in range(catalog.partitions)]


def _story(headers: Sequence[tuple[str, bytes]] | None) -> DeadLetter | None:
    try:
        return from_headers(DeadLetter, headers)
    except ValidationError:
        return None
