"""The topic catalog read from topics.yaml: names, partitions and configs of every topic."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipeline.errors import ConfigError

_DURATION = re.compile(r"^(\d+)(ms|s|m|h)$")
_SECONDS_PER_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """``"5s"`` → 5.0, ``"1m"`` → 60.0, ``"250ms"`` → 0.25."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 500ms, 5s, 1m or 2h")
    return int(match[1]) * _SECONDS_PER_UNIT[match[2]]


class TopicSpec(BaseModel):
    """One concrete topic as it must exist on the broker."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str]


class _TopicTemplate(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    partitions: int | None = Field(default=None, gt=0)  # not record-keyed: Kafka Connect's config topic
    config: dict[str, str] = {}


class _CatalogFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    partitions: int = Field(gt=0)
    replication_factor: int = Field(gt=0)
    providers: list[str]
    retry_tiers: list[str]
    topics: list[_TopicTemplate]

    @field_validator("retry_tiers")
    @classmethod
    def _tiers_grow(cls, tiers: list[str]) -> list[str]:
        delays = [parse_duration(tier) for tier in tiers]
        if delays != sorted(set(delays)):
            raise ValueError("retry tiers must grow strictly, for example [5s, 1m, 10m]")
        return tiers


class TopicCatalog:
    """Every topic name of the pipeline, with the deployment's prefix applied."""

    def __init__(self, catalog: _CatalogFile, prefix: str = "") -> None:
        self._catalog = catalog
        self.prefix = prefix
        self.providers: tuple[str, ...] = tuple(catalog.providers)
        self.retry_tiers: tuple[str, ...] = tuple(catalog.retry_tiers)
        self.partitions = catalog.partitions

    @classmethod
    def load(cls, path: Path, prefix: str = "") -> TopicCatalog:
        try:
            raw = yaml.safe_load(path.read_text())
            return cls(_CatalogFile.model_validate(raw), prefix)
        except FileNotFoundError:
            raise ConfigError(f"topic catalog {path} not found; set CONTACTSYNC_KAFKA__TOPICS_FILE") from None
        except (yaml.YAMLError, ValidationError) as exc:
            first = str(exc).splitlines()[0:3]
            raise ConfigError(f"topic catalog {path} is invalid: {' '.join(first)}") from None

    def _name(self, name: str) -> str:
        return self.prefix + name

    @property
    def cdc(self) -> str:
        return self._name("contacts.cdc")

    @property
    def validated(self) -> str:
        return self._name("contacts.validated")

    @property
    def transformed(self) -> str:
        return self._name("contacts.transformed")

    @property
    def dlq(self) -> str:
        return self._name("contacts.dlq")

    @property
    def dlq_handled(self) -> str:
        return self._name("contacts.dlq.handled")

    @property
    def faults(self) -> str:
        return self._name("contacts.faults")

    @property
    def outcomes(self) -> str:
        return self._name("contacts.outcomes")

    @property
    def config_rules(self) -> str:
        return self._name("contacts.config.rules")

    @property
    def config_providers(self) -> str:
        return self._name("contacts.config.providers")

    def dispatch(self, provider: str) -> str:
        return self._name(f"contacts.dispatch.{provider}")

    def retry(self, provider: str, tier: str) -> str:
        return self._name(f"contacts.retry.{provider}.{tier}")

    def table_changelog(self, table: str) -> str:
        return self._name(f"contacts.table.{table}")

    def connect(self, kind: str) -> str:
        """Kafka Connect's own topic: ``configs``, ``offsets`` or ``status``."""
        return self._name(f"contacts.connect.{kind}")

    def specs(self) -> list[TopicSpec]:
        """Every concrete topic, templates expanded per provider and retry tier."""
        specs: list[TopicSpec] = []
        for template in self._catalog.topics:
            for name in self._expand(template.name):
                specs.append(
                    TopicSpec(
                        name=self._name(name),
                        partitions=template.partitions or self._catalog.partitions,
                        replication_factor=self._catalog.replication_factor,
                        config=template.config,
                    )
                )
        return specs

    def _expand(self, name: str) -> list[str]:
        names = [name]
        if "{provider}" in name:
            names = [n.replace("{provider}", p) for n in names for p in self.providers]
        if "{delay}" in name:
            names = [n.replace("{delay}", d) for n in names for d in self.retry_tiers]
        return names
