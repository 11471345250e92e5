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
import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import phonenumbers
from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from schemas.contact import ContactField

REPO_ROOT = Path(__file__).resolve().parents[1]


def _host_port(entry: str) -> str:
    """``host:port`` or ``[ipv6]:port``, the port 1 to 65535."""
    host, colon, port = entry.strip().rpartition(":")
    if not colon or not host.strip("[]") or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{entry.strip()!r} is not host:port (a port is 1 to 65535), e.g. broker1:9092")
    return entry.strip()


def _host_port_list(value: str) -> str:
    """Comma-separated ``host:port`` entries (empty: not set)."""
    return ",".join(_host_port(entry) for entry in value.split(",")) if value.strip() else ""


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http:// or https:// URL with a host")
    return value


def _http_url_or_empty(value: str) -> str:
    return value and _http_url(value)


def _host(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9.:_-]+", value):
        raise ValueError(f"{value!r} is not a host name or IP address (no scheme, no port)")
    return value


def _phone_region(value: str) -> str:
    region = value.upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"{value!r} is not a region phonenumbers knows; use a two-letter country code like US, GB, DE")
    return region


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


Port = Annotated[int, Field(ge=1, le=65535)]
RatePerSecond = Annotated[float, Field(gt=0, le=10_000)]
Burst = Annotated[int, Field(gt=0, le=10_000)]
HostPortList = Annotated[str, AfterValidator(_host_port_list)]
Host = Annotated[str, AfterValidator(_host)]
HttpUrlText = Annotated[str, AfterValidator(_http_url)]
HttpUrlTextOrEmpty = Annotated[str, AfterValidator(_http_url_or_empty)]
KafkaName = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]*$", max_length=200)]  # Kafka's topic and group characters
LogLevel = Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], BeforeValidator(_upper)]
# Faust's table stores: RocksDB on disk, or memory (tables rebuilt from their changelogs at every start).
TableStore = Literal["rocksdb://", "memory://"]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class KafkaSettings(_Section):
    """Where the broker is. Empty ``bootstrap_servers`` means: start the local Apache Kafka."""

    bootstrap_servers: HostPortList = ""
    topic_prefix: KafkaName = Field(default="", description="Prepended to every topic name of topics.yaml.")
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
    host: Host = "127.0.0.1"
    port: Port = 19092
    controller_port: Port = 19093
    heap: str = "-Xms256m -Xmx512m"
    start_timeout_s: float = Field(default=90.0, gt=0, le=3600)


class LocalConnectSettings(_Section):
    """The Kafka Connect worker with the Debezium PostgreSQL connector (``contactsync connect``);
    its jars are cached beside the broker's (``local_kafka.cache_dir``)."""

    debezium_version: str = "3.6.1.Final"
    run_dir: Path = REPO_ROOT / "var" / "connect"
    host: Host = "127.0.0.1"
    port: Port = 18083
    heap: str = "-Xms128m -Xmx512m"
    start_timeout_s: float = Field(default=120.0, gt=0, le=3600)


class ProviderSettings(_Section):
    """What every provider lane has: where to send, how big, how fast."""

    enabled: bool = True
    base_url: HttpUrlText
    batch_size: int = Field(gt=0)
    rate_per_second: RatePerSecond = Field(default=10.0, description="Requests/s for all workers together.")
    burst: Burst = 10
    max_in_flight: int = Field(default=4, gt=0, le=100)
    timeout_s: float = Field(default=30.0, gt=0, le=300)
    throttle_wait_max_s: float = Field(
        default=30.0, ge=0, le=3600,
        description="Longest throttling pause a batch waits out; records meeting a longer one (a daily "
        "cap) wait in the retry chain instead, without using up an attempt.",
    )
    linger_s: float = Field(
        default=1.0, ge=0, le=60,
        description="While the lane's rate is used up (a request would wait for it anyway) or a dispatch "
        "batch came full (more is waiting), longest the records of a short request wait for the next "
        "batches to fill it (0: never).",
    )
    delete_linger_requests: int = Field(
        default=40, ge=0, le=10_000,
        description="The same for a short request of deletes (and the lookup it may need), counted in the "
        "lane's requests (40 at 9.5/s: 4.2 s). Deletes are a few in a hundred changes; a request of them "
        "costs as much of the rate as a full one, so they go at most once in this many requests (0: as "
        "linger_s).",
    )


class HubSpotSettings(ProviderSettings):
    base_url: HttpUrlText = "https://api.hubapi.com"
    batch_size: int = Field(default=100, gt=0, le=100)
    # HubSpot allows 100 requests in any 10 s (Free/Starter; 190 on Pro/Enterprise). A lane starts at
    # most burst + 10 × rate_per_second requests in any 10 s: 5 + 95 = 100.
    rate_per_second: RatePerSecond = 9.5
    burst: Burst = 5
    token: SecretStr = SecretStr("")
    id_property: str = Field(default="contactsync_id", description="A unique contact property in HubSpot.")


class SalesforceSettings(ProviderSettings):
    base_url: HttpUrlText = "https://login.salesforce.com"  # the token endpoint's host; records go to instance_url
    batch_size: int = Field(default=200, gt=0, le=200)
    api_version: str = "v62.0"
    client_id: str = ""
    client_secret: SecretStr = SecretStr("")
    username: str = ""
    password: SecretStr = SecretStr("")
    external_id_field: str = "ContactSync_Id__c"
    limit_retry_after_s: float = Field(
        default=60.0, gt=0, le=86_400,
        description="Pause after 403 REQUEST_LIMIT_EXCEEDED, which has no Retry-After.",
    )


class MailchimpSettings(ProviderSettings):
    base_url: HttpUrlTextOrEmpty = Field(
        default="", description="Empty: https://<dc>.api.mailchimp.com/3.0 from api_key."
    )
    batch_size: int = Field(default=500, gt=0, le=500)
    max_in_flight: int = Field(default=4, gt=0, le=10)  # Mailchimp refuses an 11th connection
    api_key: SecretStr = SecretStr("")
    list_id: str = "contacts"
    batch_operations_min: int = Field(
        default=3, ge=1,
        description="Fewest member requests (moves, archive guards, archives, batch subscribes of up to 500) "
        "sent together as one POST /batches; fewer go one by one. A batch costs its POST and at least one "
        "GET /batches poll, so it is used only past rate_per_second × batch_poll_s + 2 requests as well "
        "(13 at 10/s): below that the lane sends them one by one sooner than a batch comes back.",
    )
    batch_poll_s: float = Field(default=1.0, gt=0, le=60, description="Wait before each GET /batches poll.")
    batch_timeout_s: float = Field(
        default=60.0, gt=0, le=600,
        description="Longest wait for a batch to finish; its members' records then fail retryably.",
    )


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


ProviderName = Annotated[str, AfterValidator(_known_provider)]


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
    default_phone_region: Annotated[str, AfterValidator(_phone_region)] = "US"


class SourceSettings(_Section):
    """The contacts table the CDC events and backfills come from."""

    mapping: Path = Field(
        default=REPO_ROOT / "pipeline" / "mappings" / "source.yaml",
        description="The YAML file naming the table's column for each contact field (pipeline.stages.source_mapping).",
    )


class AdminSettings(_Section):
    """Who may change the rules and provider settings, and whether the read-only views are open.

    ``CONTACTSYNC_ADMIN__API_KEYS=key1,key2``: any of these keys opens the admin endpoints (``/admin/...``
    and ``POST`` actions), sent as ``Authorization: Bearer <key>``. No key: those endpoints refuse
    everyone. ``CONTACTSYNC_ADMIN__OPEN_VIEWS=false`` makes the read-only views (``/lag``, ``/records``,
    ``/providers``, ``/metrics``, ...) ask for a key too; Faust's own views always do (``pipeline.web.access``).
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


class WebhooksSettings(_Section):
    """The webhook receivers (``docs/webhooks.md``): what proves each platform is the sender.

    A receiver whose secret is empty answers 404: it accepts nothing it cannot authenticate.
    """

    hubspot_client_secret: SecretStr = Field(
        default=SecretStr(""), description="The HubSpot app's client secret, the key of X-HubSpot-Signature-v3."
    )
    hubspot_max_age_s: float = Field(default=300.0, gt=0, le=3600, description="Older timestamps are refused.")
    mailchimp_secret: SecretStr = Field(
        default=SecretStr(""), description="The last path segment of the URL registered at Mailchimp."
    )
    salesforce_organization_id: str = Field(
        default="", pattern=r"^([A-Za-z0-9]{15}|[A-Za-z0-9]{18})?$",
        description="The org whose Outbound Messages are accepted (15 or 18 characters).",
    )
    public_url: HttpUrlTextOrEmpty = Field(
        default="", description="The scheme and host the platforms call (https://sync.example.com) when a "
        "TLS-terminating proxy stands in front; HubSpot signs that URL. Empty: the URL as the request arrived.",
    )
    max_body_bytes: int = Field(default=1_000_000, gt=0, le=32 * 1024**2, description="Larger bodies get 413.")
    id_cache_size: int = Field(
        default=100_000, ge=0, le=10_000_000,
        description="HubSpot object ids whose record id a worker remembers (a miss costs one batch read).",
    )

    @property
    def receiving(self) -> bool:
        """Whether any receiver is configured: without one, no platform change can come in."""
        return bool(
            self.hubspot_client_secret.get_secret_value()
            or self.mailchimp_secret.get_secret_value()
            or self.salesforce_organization_id
        )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CONTACTSYNC_", env_nested_delimiter="__", frozen=True, extra="forbid", allow_inf_nan=False
    )

    app_id: KafkaName = Field(default="contactsync", min_length=1)
    data_dir: Path = REPO_ROOT / "var" / "data"
    web_port: Port = 6066
    web_host: Host = Field(
        default="127.0.0.1",
        description="Where the web views listen; 0.0.0.0 lets workers on other hosts forward /records "
        "requests to each other (set admin API keys and close the views first).",
    )
    web_canonical_url: HttpUrlTextOrEmpty = Field(
        default="", description="How other workers reach this one (default: http://<web_host>:<web_port>)."
    )
    log_level: LogLevel = "INFO"
    table_store: TableStore = "rocksdb://"
    table_block_cache_mib: int = Field(
        default=2, ge=1, le=4096,
        description="RocksDB block cache all of a worker's tables share, MiB (benchmarks/README.md, \"Memory\").",
    )
    table_write_buffers_mib: int = Field(
        default=8, ge=1, le=4096,
        description="RocksDB write buffers (memtables) all of a worker's tables share, MiB; past it the "
        "largest is flushed. Less costs CPU per write (4 MiB: about a third more per put).",
    )
    batch_max: int = Field(
        default=1000, gt=0, le=100_000,
        description="Events a stage takes at once (a dispatcher too, if its lane's batch_size × max_in_flight "
        "is larger, unless it gathers its requests into batch operations); a stage's inbox holds twice this "
        "many fetched before it pauses the fetch.",
    )
    batch_within_s: float = Field(
        default=0.2, gt=0, le=60,
        description="Longest a batch waits for more events after its first (it goes as soon as its input pauses).",
    )
    worker_fault_stops: int = Field(
        default=3, ge=2, le=100,
        description="Worker stops, counted across restarts and workers, after which the message being "
        "handled is dead-lettered as worker_fault (see pipeline.kafka.worker_faults).",
    )
    standby_replicas: int = Field(
        default=1, ge=0, le=10,
        description="Warm copies of each table partition kept by other workers, so a worker taking over "
        "a crashed one's partitions need not rebuild its tables from the changelogs first. Each copy "
        "costs the worker keeping it a RocksDB write batch per fetch of the owner's changelog rows "
        "(pipeline/kafka/standby_rows.py; benchmarks/README.md, \"Eighth session\").",
    )
    session_timeout_s: float = Field(
        default=10.0, ge=6, le=1800,  # the range a Kafka broker accepts by default (group.min/max.session.timeout.ms)
        description="How soon a crashed worker's partitions move to the others.",
    )
    kafka_bootstrap_servers: HostPortList = Field(
        default="",
        validation_alias=AliasChoices("CONTACTSYNC_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"),
    )
    kafka: KafkaSettings = KafkaSettings()
    local_kafka: LocalKafkaSettings = LocalKafkaSettings()
    local_connect: LocalConnectSettings = LocalConnectSettings()
    providers: ProvidersSettings = ProvidersSettings()
    routing: RoutingSettings = RoutingSettings()
    source: SourceSettings = SourceSettings()
    admin: AdminSettings = AdminSettings()
    webhooks: WebhooksSettings = WebhooksSettings()

    @property
    def bootstrap_servers(self) -> str:
        """The broker to use: the explicit one, else the local broker's address."""
        return (
            self.kafka_bootstrap_servers
            or self.kafka.bootstrap_servers
            or f"{self.local_kafka.host}:{self.local_kafka.port}"
        )
