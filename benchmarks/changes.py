"""The changes a benchmark sends, and the terminal outcomes they must come to.

A benchmark knows it is done when every expected outcome (record, version, provider) is on
contacts.outcomes. The expected ones are worked out before the changes are sent, so that working
them out takes no CPU from the workers while they are measured.
"""

from __future__ import annotations

from collections.abc import Iterable

from pipeline.dev.cdc_generator import GeneratedEvent, generate_events
from pipeline.dev.simulators.config import PROVIDERS
from pipeline.settings import Settings
from pipeline.stages.transform import transform
from pipeline.stages.validate import decode_change
from schemas.contact import KnownContact
from schemas.dispatch import Outcome

OutcomeKey = tuple[str, int, str]  # record id, version, provider: one terminal outcome


def outcome_key(outcome: Outcome) -> OutcomeKey:
    return outcome.record_id, outcome.version, outcome.provider


def make_changes(count: int, records: int, seed: int) -> tuple[list[GeneratedEvent], set[OutcomeKey]]:
    """``count`` generated changes about ``records`` contacts, and the terminal outcomes they come to."""
    events = list(generate_events(count, records=records, seed=seed))
    return events, ExpectedOutcomes().add(events)


class ExpectedOutcomes:
    """The terminal outcomes a stream of changes comes to: one per change and provider it is routed
    to. The changes are folded through the transform stage's own pure function (default routing),
    remembering each record as the stage does (a delete goes wherever the record was routed).
    """

    def __init__(self, providers: tuple[str, ...] = PROVIDERS) -> None:
        self.keys: set[OutcomeKey] = set()
        self._providers = providers
        self._routing = Settings().routing
        self._known: dict[str, KnownContact] = {}

    def add(self, events: Iterable[GeneratedEvent]) -> set[OutcomeKey]:
        """Count ``events`` in; returns the outcomes expected so far."""
        for event in events:
            change = decode_change(event.value, captured_at_ms=0, offset=0)  # generated: LSN or plain form
            if change is None:
                continue
            known = self._known.get(change.record_id)
            result, remember = transform(change, known, self._routing, self._providers)
            if remember is None:
                self._known.pop(change.record_id, None)
            else:
                self._known[change.record_id] = remember
            self.keys.update((change.record_id, change.version, provider) for provider in result.targets)
        return self.keys
