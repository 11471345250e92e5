"""Run-time configuration documents, as stored in the compacted ``contacts.config.*`` topics.

The rules document is the settings' own ``RoutingSettings`` (``pipeline.settings``), stored whole.
A provider's document is a ``ProviderTuning``: only the fields an operator set, each overriding the
provider's settings from the environment. Its fields are fields of ``ProviderSettings`` (a unit test
holds them to that); their bounds are checked where a tuning is applied to those settings, so each
provider's own bounds (HubSpot batches of at most 100, ...) hold without being repeated here.
Credentials are not among them: a secret never goes to a topic.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ProviderTuning(BaseModel):
    """What an operator changed of one provider lane: endpoint, batch size, rate limit, concurrency."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str | None = None
    batch_size: int | None = None
    rate_per_second: float | None = None
    burst: int | None = None
    max_in_flight: int | None = None
    timeout_s: float | None = None

    def changed(self) -> dict[str, object]:
        """The fields that were set, by name."""
        return self.model_dump(exclude_none=True)

    def updated(self, update: ProviderTuning) -> ProviderTuning:
        """This tuning with every field that ``update`` sets replaced."""
        return ProviderTuning.model_validate({**self.changed(), **update.changed()})
