"""Run-time rules and provider settings: the settings from the environment, overridden by stored documents.

Two compacted topics hold the documents (``schemas.config_documents``):

- ``contacts.config.rules``, key ``rules``: a whole ``RoutingSettings``;
- ``contacts.config.providers``, key the provider's name: a ``ProviderTuning`` over its settings.

A tombstone (a key with no value) removes a document: the environment's settings apply again.

Every worker reads both topics from their start and then as they grow, with a consumer in no group,
so that each worker applies every document (``follow``). A Faust GlobalTable would do the same on
paper, but faust-streaming 0.15 has open defects exactly there: with several workers, one of them may
never resume the global changelog after its recovery and so miss every later update
(faust-streaming/faust#283), and its docs warn of endless recovery loops with several instances.

``RuntimeConfig.apply`` is the one place where a document reaches the running worker: the transform
stage reads ``rules`` for every event, and a provider's lane is reconfigured at once (its next request
waits under the new rate, its next batch has the new size and, when the endpoint changed, a new client).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import structlog
from aiokafka import TopicPartition
from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from pipeline.delivery.rate_limit import ProviderLane
from pipeline.errors import ConfigError
from pipeline.kafka.clients import groupless_consumer
from pipeline.kafka.topic_admin import partition_counts, require_topics
from pipeline.kafka.topics import TopicCatalog
from pipeline.providers import check_lane_credentials
from pipeline.settings import ProviderSettings, RoutingSettings, Settings
from schemas.config_documents import ProviderTuning

log = structlog.get_logger(__name__)

RULES_KEY = b"rules"


def field_problems(error: ValidationError) -> list[dict[str, str]]:
    """Each problem of a document: which field (a dotted path) and why."""
    return [
        {"field": ".".join(str(part) for part in problem["loc"]) or "(document)",
         "message": problem["msg"].removeprefix("Value error, ")}  # our validators' own words
        for problem in error.errors()
    ]


def rules_document(body: bytes, defaults: RoutingSettings) -> RoutingSettings:
    """The rules a request body asks for: the fields it names, the ``defaults`` for the others
    (ValidationError naming each bad field)."""
    given = RoutingSettings.model_validate_json(body)
    return defaults.model_copy(update={name: getattr(given, name) for name in given.model_fields_set})


def tuned(name: str, settings: ProviderSettings, tuning: ProviderTuning) -> ProviderSettings:
    """Provider ``name``'s settings with the tuning's fields over them, checked against the provider's
    own bounds and as its adapter reads its credentials (ValidationError naming each bad field)."""
    lane = type(settings).model_validate({**settings.model_dump(), **tuning.changed()})
    try:
        check_lane_credentials(name, lane)
    except ConfigError as exc:  # only the endpoint is tunable among what credentials depend on (Mailchimp's)
        problem = InitErrorDetails(
            type=PydanticCustomError("credentials", "{reason}", {"reason": str(exc)}),
            loc=("base_url",), input=lane.base_url,
        )
        raise ValidationError.from_exception_data(type(lane).__name__, [problem]) from None
    return lane


def tunable_view(settings: ProviderSettings) -> dict[str, Any]:
    """The fields of a provider's settings that a tuning may change, as they are (no credentials)."""
    return {name: getattr(settings, name) for name in ProviderTuning.model_fields}


class RuntimeConfig:
    """The rules and provider settings in force in this worker."""

    def __init__(self, settings: Settings, lanes: Mapping[str, ProviderLane], catalog: TopicCatalog) -> None:
        self.defaults = settings
        self.lanes = lanes
        self.catalog = catalog
        self.rules = settings.routing
        self.stored_rules: RoutingSettings | None = None
        self.tuning: dict[str, ProviderTuning] = {}
        self.caught_up = asyncio.Event()  # set once every document stored before the start is applied
        self._applied: dict[TopicPartition, int] = {}  # the next offset to apply, per partition
        self._progress = asyncio.Condition()

    def apply(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        """Put one stored document (or tombstone) in force; a document that does not hold is logged
        and the current configuration stays."""
        name = (key or b"").decode(errors="replace")
        try:
            if topic == self.catalog.config_rules and key == RULES_KEY:
                self._apply_rules(value)
            elif topic == self.catalog.config_providers and name in self.lanes:
                self._apply_tuning(name, value)
            else:
                log.warning("runtime config ignored", topic=topic, key=name, reason="no such rules or enabled provider")
                return
        except ValidationError as exc:
            log.warning("runtime config refused", topic=topic, key=name, problems=field_problems(exc))
            return
        log.info("runtime config applied", topic=topic, key=name, removed=value is None)

    def _apply_rules(self, value: bytes | None) -> None:
        self.stored_rules = RoutingSettings.model_validate_json(value) if value is not None else None
        self.rules = self.stored_rules or self.defaults.routing

    def _apply_tuning(self, name: str, value: bytes | None) -> None:
        tuning = ProviderTuning.model_validate_json(value) if value is not None else ProviderTuning()
        self.lanes[name].reconfigure(tuned(name, self.defaults.providers.enabled()[name], tuning))
        if value is None:
            self.tuning.pop(name, None)
        else:
            self.tuning[name] = tuning

    async def follow(self, bootstrap: str, client_id: str) -> None:
        """Apply every document of both topics, from their start, forever; ``caught_up`` is set once
        the documents stored before now are in force."""
        names = [self.catalog.config_rules, self.catalog.config_providers]
        await require_topics(bootstrap, *names)
        counts = await partition_counts(bootstrap)
        partitions = [TopicPartition(name, p) for name in names for p in range(counts[name])]
        async with groupless_consumer(bootstrap, client_id) as consumer:
            consumer.assign(partitions)
            for tp, start in (await consumer.beginning_offsets(partitions)).items():
                consumer.seek(tp, start)
            ends = await consumer.end_offsets(partitions)
            while True:
                if not self.caught_up.is_set() and all([await consumer.position(tp) >= ends[tp] for tp in partitions]):
                    self.caught_up.set()
                    log.info("runtime config read", rules_stored=self.stored_rules is not None,
                             tuned=sorted(self.tuning))
                for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                    for record in records:
                        self.apply(tp.topic, record.key, record.value)
                    async with self._progress:
                        self._applied[tp] = records[-1].offset + 1
                        self._progress.notify_all()

    async def wait_applied(self, topic: str, partition: int, offset: int, timeout_s: float) -> bool:
        """Whether this worker applied the document at ``offset`` within ``timeout_s``."""
        tp = TopicPartition(topic, partition)
        async with self._progress:
            try:
                await asyncio.wait_for(self._progress.wait_for(lambda: self._applied.get(tp, 0) > offset), timeout_s)
            except TimeoutError:
                return False
        return True
