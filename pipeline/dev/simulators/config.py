"""Run-time settings of the provider simulators: credentials, limits, latency and faults.

Every model is frozen and forbids unknown keys. A running simulator swaps its whole config at
once (``PUT /_sim/config`` merges a partial JSON object into the current one, see ``merged``).
The credentials here are the simulators' own fixed test values, not secrets.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

PROVIDERS = ("hubspot", "salesforce", "mailchimp")

ConfigT = TypeVar("ConfigT", bound=BaseModel)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LatencyConfig(_Frozen):
    """Delay added before every API answer: ``fixed_ms`` plus a uniform draw in ``[0, jitter_ms]``."""

    fixed_ms: float = Field(default=0.0, ge=0)
    jitter_ms: float = Field(default=0.0, ge=0)


class FaultConfig(_Frozen):
    """Probabilities of injected faults. Request-level faults are exclusive, drawn once a request.

    With ``seed`` set, the same sequence of requests meets the same faults and latencies.
    """

    seed: int | None = None
    server_error: float = Field(default=0.0, ge=0, le=1, description="Answer 5xx.")
    server_error_status: int = Field(default=503, ge=500, le=599)
    timeout: float = Field(default=0.0, ge=0, le=1, description="Hold the request, then 504 or drop.")
    timeout_hold_s: float = Field(default=35.0, ge=0)
    timeout_mode: Literal["gateway_timeout", "drop", "drop_after_write"] = Field(
        default="gateway_timeout",
        description="drop_after_write: apply the request, then hold and drop it (the answer is lost).",
    )
    throttle: float = Field(default=0.0, ge=0, le=1, description="Answer the platform's throttle.")
    partial_failure: float = Field(default=0.0, ge=0, le=1, description="Per record, in a 2xx batch.")
    partial_failure_kind: Literal["transient", "permanent"] = "transient"


class WebhookSimConfig(_Frozen):
    """Where the simulator notifies changes, as its platform does (``pipeline.dev.simulators.notifier``).

    A notification answered other than 2xx (or not at all) is sent again after each delay in turn,
    then given up and counted.
    """

    url: str | None = Field(default=None, description="None: no notifications.")
    retry_delays_s: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
    senders: int = Field(default=8, gt=0, le=64, description="Notifications under way at once.")


class BaseSimConfig(_Frozen):
    """What every simulator has: latency, faults, webhooks, and how many requests its log keeps."""

    webhook: WebhookSimConfig = WebhookSimConfig()
    latency: LatencyConfig = LatencyConfig()
    faults: FaultConfig = FaultConfig()
    request_log_size: int = Field(default=100_000, gt=0, description="Newest requests kept in /_sim/requests.")


class HubSpotSimConfig(BaseSimConfig):
    token: str = "pat-sim-hubspot"
    client_secret: str = "sim-hubspot-client-secret"  # signs webhooks (X-HubSpot-Signature-v3)
    requests_per_10s: int = Field(default=100, gt=0)
    daily_limit: int = Field(default=250_000, gt=0)
    max_batch_inputs: int = Field(default=100, gt=0)


class SalesforceSimConfig(BaseSimConfig):
    client_id: str = "sim-client-id"
    client_secret: str = "sim-client-secret"
    username: str = "sim@contactsync.test"
    password: str = "sim-password"
    daily_limit: int = Field(default=100_000, gt=0, description="Rolling 24 h API request allocation.")
    session_ttl_s: float | None = Field(default=None, gt=0, description="None: tokens never expire.")
    max_collection_records: int = Field(default=200, gt=0)
    organization_id: str = "00D5g000004SimXAAA"  # in every Outbound Message


class MailchimpSimConfig(BaseSimConfig):
    api_key: str = "sim-mailchimp-key-us1"
    list_id: str = "contacts"
    max_connections: int = Field(default=10, gt=0, description="Simultaneous requests; the next gets 429.")
    requests_per_second: int | None = Field(default=None, gt=0)
    max_batch_members: int = Field(default=500, gt=0)
    batch_delay_s: float = Field(
        default=0.5, ge=0, description="How long a POST /batches waits before its operations run."
    )
    batch_operations_reversed: bool = Field(
        default=False,
        description="Run a batch's operations last first: Mailchimp does not promise their order, and a "
        "client that relies on the order it posted them in shows it.",
    )
    merge_fields: tuple[str, ...] = ("FNAME", "LNAME", "PHONE", "COMPANY", "CSID", "CSVERSION")


ProviderSimConfig = HubSpotSimConfig | SalesforceSimConfig | MailchimpSimConfig


class SimulatorsConfig(_Frozen):
    """The configuration of all three simulators, as read from ``contactsync simulate --config``."""

    hubspot: HubSpotSimConfig = HubSpotSimConfig()
    salesforce: SalesforceSimConfig = SalesforceSimConfig()
    mailchimp: MailchimpSimConfig = MailchimpSimConfig()

    def for_provider(self, name: str) -> ProviderSimConfig:
        config: ProviderSimConfig = getattr(self, name)
        return config


def merged(config: ConfigT, changes: dict[str, Any]) -> ConfigT:
    """``config`` with ``changes`` deep-merged into it, validated again (ValidationError if wrong)."""
    return type(config).model_validate(_deep_merge(config.model_dump(), changes))


def _deep_merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _deep_merge(result[key], value)
        else:
            result[key] = value
    return result
