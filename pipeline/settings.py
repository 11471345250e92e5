"""The one settings object: environment variables with the ``CONTACTSYNC_`` prefix, ``__`` for nesting.

Examples::

    CONTACTSYNC_APP_ID=contactsync-prod
    KAFKA_BOOTSTRAP_SERVERS=broker1:9092          # or CONTACTSYNC_KAFKA__BOOTSTRAP_SERVERS
    CONTACTSYNC_PROVIDERS__HUBSPOT__RATE_PER_SECOND=10
    CONTACTSYNC_PROVIDERS__HUBSPOT__TOKEN=pat-...

Build it once (``Settings()``) at the edge of the program and pass it down; tests construct it directly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from schemas.contact import Contact

REPO_ROOT = Path(__file__).resolve().parents[1]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Section):
    """Where the broker is. Empty ``bootstrap_servers`` means: start the local Apache Kafka."""

    bootstrap_servers: str = ""
    topic_prefix: str = Field(default="", description="Prepended to every topic name of topics.yaml.")
    topics_file: Path = REPO_ROOT / "topics.yaml"
    retry_deadline_s: float = Field(
        default=120.0, gt=0, le=3600,
        description="How long a command (produce, backfill, dlq replay, record retry) waits for a broker "
        "that stopped acknowledging, a restart for instance, before it gives up.",
    )


class LocalKafkaSettings(_Section):
    """The embedded single-node broker for development and tests."""

    version: str = "4.1.1"
    cache_dir: Path = Path.home() / ".cache" / "contactsync" / "kafka"
    run_dir: Path = REPO_ROOT / "var" / "kafka"
    host: str = "127.0.0.1"
    port: int = 19092
    controller_port: int = 19093
    heap: str = "-Xms256m -Xmx512m"
    start_timeout_s: float = 90.0


class ProviderSettings(_Section):
    """What every provider lane has: where to send, how big, how fast."""

    enabled: bool = True
    base_url: str
    batch_size: int = Field(gt=0)
    rate_per_second: float = Field(default=10.0, gt=0, description="Requests/s for all workers together.")
    burst: int = Field(default=10, gt=0)
    max_in_flight: int = Field(default=4, gt=0)
    timeout_s: float = Field(default=30.0, gt=0)
    throttle_wait_max_s: float = Field(
        default=30.0, ge=0,
        description="Longest throttling pause a batch waits out; records meeting a longer one (a daily "
        "cap) wait in the retry chain instead, without using up an attempt.",
    )


class HubSpotSettings(ProviderSettings):
    base_url: str = "https://api.hubapi.com"
    batch_size: int = Field(default=100, gt=0, le=100)
    # HubSpot allows 100 requests in any 10 s (Free/Starter; 190 on Pro/Enterprise). A lane starts at
    # most burst + 10 × rate_per_second requests in any 10 s: 5 + 95 = 100.
    rate_per_second: float = Field(default=9.5, gt=0)
    burst: int = Field(default=5, gt=0)
    token: SecretStr = SecretStr("")
    id_property: str = Field(default="contactsync_id", description="A unique contact property in HubSpot.")


class SalesforceSettings(ProviderSettings):
    base_url: str = "https://login.salesforce.com"  # the token endpoint's host; records go to instance_url
    batch_size: int = Field(default=200, gt=0, le=200)
    api_version: str = "v62.0"
    client_id: str = ""
    client_secret: SecretStr = SecretStr("")
    username: str = ""
    password: SecretStr = SecretStr("")
    external_id_field: str = "ContactSync_Id__c"
    limit_retry_after_s: float = Field(
        default=60.0, gt=0, description="Pause after 403 REQUEST_LIMIT_EXCEEDED, which has no Retry-After."
    )


class MailchimpSettings(ProviderSettings):
    base_url: str = Field(default="", description="Empty: https://<dc>.api.mailchimp.com/3.0 from api_key.")
    batch_size: int = Field(default=500, gt=0, le=500)
    max_in_flight: int = Field(default=4, gt=0, le=10)  # Mailchimp refuses an 11th connection
    api_key: SecretStr = SecretStr("")
    list_id: str = "contacts"


class ProvidersSettings(_Section):
    hubspot: HubSpotSettings = HubSpotSettings()
    salesforce: SalesforceSettings = SalesforceSettings()
    mailchimp: MailchimpSettings = MailchimpSettings()

    def enabled(self) -> dict[str, ProviderSettings]:
        lanes: dict[str, ProviderSettings] = {
            "hubspot": self.hubspot,
            "salesforce": self.salesforce,
            "mailchimp": self.mailchimp,
        }
        return {name: lane for name, lane in lanes.items() if lane.enabled}


def _known_provider(name: str) -> str:
    if name not in ProvidersSettings.model_fields:
        raise ValueError(f"unknown provider {name!r} (known: {', '.join(ProvidersSettings.model_fields)})")
    return name


def _contact_field(name: str) -> str:
    if name not in Contact.model_fields:
        raise ValueError(f"{name!r} is not a contact field (fields: {', '.join(Contact.model_fields)})")
    return name


ProviderName = Annotated[str, AfterValidator(_known_provider)]
ContactField = Annotated[str, AfterValidator(_contact_field)]


class RoutingSettings(_Section):
    """Which providers a contact goes to, by contact type; subscribed contacts also go to Mailchimp.

    These are the rules of the transform stage; a document stored with ``contactsync admin rules set``
    overrides them at run time (see ``pipeline.runtime_config``).
    """

    by_contact_type: dict[str, list[ProviderName]] = {
        "lead": ["salesforce"],
        "prospect": ["salesforce"],
        "customer": ["hubspot"],
        "vendor": ["hubspot"],
    }
    subscribed_to: list[ProviderName] = ["mailchimp"]
    sticky: list[ProviderName] = Field(
        default=["mailchimp"],
        description="Providers that keep getting a record's changes once they hold it, "
        "so that an unsubscribe or a new email reaches Mailchimp.",
    )
    required_fields: list[ContactField] = ["email"]
    default_phone_region: str = "US"


class AdminSettings(_Section):
    """Who may change the rules and provider settings, and whether the read-only views are open.

    ``CONTACTSYNC_ADMIN__API_KEYS=key1,key2``: any of these keys opens the admin endpoints (``/admin/...``
    and ``POST`` actions), sent as ``Authorization: Bearer <key>``. No key: those endpoints refuse
    everyone. ``CONTACTSYNC_ADMIN__OPEN_VIEWS=false`` makes the read-only views (``/lag``, ``/records``,
    ``/providers``, ``/metrics``, ...) ask for a key too.
    """

    api_keys: Annotated[list[SecretStr], NoDecode] = []
    open_views: bool = True

    @field_validator("api_keys", mode="before")
    @classmethod
    def _comma_separated(cls, keys: object) -> object:
        if isinstance(keys, str):
            if keys.lstrip().startswith("["):
                return json.loads(keys)
            return [key.strip() for key in keys.split(",") if key.strip()]
        return keys


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CONTACTSYNC_", env_nested_delimiter="__", frozen=True, extra="forbid"
    )

    app_id: str = "contactsync"
    data_dir: Path = REPO_ROOT / "var" / "data"
    web_port: int = 6066
    web_host: str = Field(
        default="127.0.0.1",
        description="Where the web views listen; 0.0.0.0 lets workers on other hosts forward /records "
        "requests to each other (set admin API keys and close the views first).",
    )
    web_canonical_url: str = Field(
        default="", description="How other workers reach this one (default: http://<web_host>:<web_port>)."
    )
    log_level: str = "INFO"
    table_store: str = "rocksdb://"
    batch_max: int = Field(default=1000, gt=0, description="Events a stage takes at once.")
    batch_within_s: float = Field(default=0.2, gt=0, description="Longest wait to fill a batch.")
    session_timeout_s: float = Field(
        default=10.0, gt=0, description="How soon a crashed worker's partitions move to the others."
    )
    kafka_bootstrap_servers: str = Field(
        default="",
        validation_alias=AliasChoices("CONTACTSYNC_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"),
    )
    kafka: KafkaSettings = KafkaSettings()
    local_kafka: LocalKafkaSettings = LocalKafkaSettings()
    providers: ProvidersSettings = ProvidersSettings()
    routing: RoutingSettings = RoutingSettings()
    admin: AdminSettings = AdminSettings()

    @property
    def bootstrap_servers(self) -> str:
        """The broker to use: the explicit one, else the local broker's address."""
        return (
            self.kafka_bootstrap_servers
            or self.kafka.bootstrap_servers
            or f"{self.local_kafka.host}:{self.local_kafka.port}"
        )
