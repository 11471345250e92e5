"""Provider adapters: one module per platform, and the registry that builds the enabled ones.

Adding a provider: write ``pipeline/providers/<name>.py`` with a ``<Name>Provider(settings, *,
transport=None)`` (see :class:`Provider`) and a ``<Name>Mapper(settings)`` (a
:class:`~pipeline.providers.mapping.ChangeMapper`), its field mapping in
``pipeline/mappings/<name>.yaml``, its settings section in ``pipeline/settings.py``, and one line in
``_ADAPTERS`` below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx

from pipeline.errors import ConfigError
from pipeline.providers import hubspot, mailchimp, salesforce, salesforce_api
from pipeline.providers.base import DeliveryResult, Mapper, Provider, RequestOf, by_operation
from pipeline.providers.hubspot import HubSpotMapper, HubSpotProvider
from pipeline.providers.mailchimp import MailchimpMapper, MailchimpProvider
from pipeline.providers.mailchimp_batches import gathers
from pipeline.providers.salesforce import SalesforceMapper, SalesforceProvider
from pipeline.settings import (
    HubSpotSettings,
    MailchimpSettings,
    ProviderSettings,
    ProvidersSettings,
    SalesforceSettings,
)

__all__ = [
    "DeliveryResult", "Mapper", "Provider", "build_lane_provider", "build_mappers", "build_provider",
    "build_providers", "check_credentials", "check_lane_credentials", "dispatch_batch_max", "request_grouping",
]

S = TypeVar("S", bound=ProviderSettings)


@dataclass(frozen=True, slots=True)
class _Adapter(Generic[S]):
    settings_type: type[S]
    provider: Callable[..., Provider]  # (settings, *, transport=None)
    mapper: Callable[[S], Mapper]
    credentials: Callable[[S], object]  # what the adapter authenticates with; ConfigError when it cannot
    request_of: RequestOf = by_operation  # which of its calls carries a record
    # whether it gathers a dispatch's requests into batch operations on this lane (Mailchimp's /batches)
    gathers: Callable[[S], bool] = lambda lane: False


_ADAPTERS: dict[str, _Adapter[Any]] = {
    "hubspot": _Adapter(HubSpotSettings, HubSpotProvider, HubSpotMapper, hubspot.credentials),
    "salesforce": _Adapter(
        SalesforceSettings, SalesforceProvider, SalesforceMapper, salesforce_api.credentials, salesforce.request_of
    ),
    "mailchimp": _Adapter(
        MailchimpSettings, MailchimpProvider, MailchimpMapper, mailchimp.credentials, gathers=gathers
    ),
}


def build_provider(
    settings: ProvidersSettings, name: str, *, transport: httpx.AsyncBaseTransport | None = None
) -> Provider:
    """The adapter of one enabled provider (it owns an HTTP client: ``aclose()`` it).

    ``transport`` is where its requests go: the dispatcher passes a rate-limited one.
    """
    lane = settings.enabled().get(name)
    if lane is None:
        raise ConfigError(f"provider {name!r} is not enabled")
    return build_lane_provider(name, lane, transport=transport)


def build_lane_provider(
    name: str, lane: ProviderSettings, *, transport: httpx.AsyncBaseTransport | None = None
) -> Provider:
    """The adapter of provider ``name`` for these settings (a lane's, as tuned at run time)."""
    return _adapter(name, lane).provider(lane, transport=transport)


def request_grouping(name: str, lane: ProviderSettings) -> RequestOf:
    """Which of provider ``name``'s calls carries a record (the dispatcher fills requests by it)."""
    return _adapter(name, lane).request_of


def dispatch_batch_max(name: str, lane: ProviderSettings, stage_batch_max: int) -> int:
    """Events one dispatch of provider ``name`` takes from Kafka: enough to fill every request in
    flight (``batch_size × max_in_flight``), but no more than any stage takes (``stage_batch_max``),
    since what a dispatch has decoded is most of a worker's peak memory; except on a lane where the
    adapter gathers the dispatch's requests into batch operations, which are as full as the dispatch."""
    whole = lane.batch_size * lane.max_in_flight
    return whole if _adapter(name, lane).gathers(lane) else min(whole, stage_batch_max)


def build_providers(settings: ProvidersSettings) -> dict[str, Provider]:
    """The adapter of every enabled provider, by name."""
    return {name: build_provider(settings, name) for name in settings.enabled()}


def build_mappers(settings: ProvidersSettings) -> dict[str, Mapper]:
    """The mapping step of each enabled provider, by name: ``ContactChange -> DispatchRecord``."""
    return {name: _adapter(name, lane).mapper(lane) for name, lane in settings.enabled().items()}


def check_lane_credentials(name: str, lane: ProviderSettings) -> None:
    """ConfigError when provider ``name``'s adapter could not authenticate with ``lane``'s credentials."""
    _adapter(name, lane).credentials(lane)


def check_credentials(settings: ProvidersSettings) -> None:
    """One ConfigError naming every enabled provider whose credentials are missing or malformed, read
    as its adapter reads them (a worker checks this before it joins the group)."""
    problems = []
    for name, lane in settings.enabled().items():
        try:
            check_lane_credentials(name, lane)
        except ConfigError as exc:
            problems.append(f"{name}: {exc} (or turn {name} off: CONTACTSYNC_PROVIDERS__{name.upper()}__ENABLED=false)")
    if problems:
        raise ConfigError("; ".join(problems))


def _adapter(name: str, lane: ProviderSettings) -> _Adapter[Any]:
    adapter = _ADAPTERS.get(name)
    if adapter is None:
        raise ConfigError(f"provider {name!r} is enabled but pipeline.providers has no adapter")
    if not isinstance(lane, adapter.settings_type):
        raise ConfigError(f"provider {name!r} needs {adapter.settings_type.__name__}")
    return adapter
