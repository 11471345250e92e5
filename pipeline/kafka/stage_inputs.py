"""Which topic each stage consumes, named as its agent is: what lag, metrics and replay refer to.

The names are those the agents register under (``agents/``, which ``pipeline`` does not import):
``validate``, ``transform``, ``route``, ``dispatch-<provider>``, ``retry-<provider>-<delay>``,
and ``conflict`` (which also reads ``contacts.transformed``, as ``route`` does).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pipeline.errors import ConfigError
from pipeline.kafka.topics import TopicCatalog


@dataclass(frozen=True)
class StageInput:
    stage: str
    topic: str
    partitions: int


def stage_inputs(catalog: TopicCatalog, providers: Iterable[str]) -> list[StageInput]:
    """Every stage of the pipeline in flow order, for the enabled ``providers``."""
    enabled = [name for name in catalog.providers if name in set(providers)]
    named = [("validate", catalog.cdc), ("transform", catalog.validated), ("route", catalog.transformed)]
    named += [(f"dispatch-{name}", catalog.dispatch(name)) for name in enabled]
    named += [
        (f"retry-{name}-{tier}", catalog.retry(name, tier)) for name in enabled for tier in catalog.retry_tiers
    ]
    named += [("conflict", catalog.inbound)]
    return [StageInput(stage, topic, catalog.partitions) for stage, topic in named]


def find_stage(inputs: Iterable[StageInput], stage: str) -> StageInput:
    """The stage called ``stage``; ConfigError naming the stages there are if none is."""
    known = list(inputs)
    for candidate in known:
        if candidate.stage == stage:
            return candidate
    raise ConfigError(f"no stage {stage!r}; stages: {', '.join(i.stage for i in known)}")
