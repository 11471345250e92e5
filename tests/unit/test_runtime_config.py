"""Run-time rules and provider settings: documents checked field by field, and applied to a worker's state."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr, ValidationError

from pipeline.delivery.rate_limit import ProviderLane
from pipeline.kafka.topics import TopicCatalog
from pipeline.runtime_config import RULES_KEY, RuntimeConfig, field_problems, rules_document, tunable_view, tuned
from pipeline.settings import (
    HubSpotSettings,
    KafkaSettings,
    MailchimpSettings,
    ProviderSettings,
    ProvidersSettings,
    RoutingSettings,
    Settings,
)
from schemas.config_documents import ProviderTuning

ENV_ROUTING = RoutingSettings(required_fields=["email", "last_name"])
HUBSPOT = HubSpotSettings(token=SecretStr("pat-na1-test"), rate_per_second=9)


def problems(call: object, *args: object) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        call(*args)  # type: ignore[operator]
    return {problem["field"]: problem["message"] for problem in field_problems(caught.value)}


def test_rules_document_sets_the_fields_given_and_keeps_the_environments_others() -> None:
    """PUT body fields replace the environment's; fields it leaves out stay as the environment has them."""
    rules = rules_document(b'{"by_contact_type": {"customer": ["salesforce"]}}', ENV_ROUTING)

    assert rules.by_contact_type == {"customer": ["salesforce"]}
    assert rules.required_fields == ["email", "last_name"] and rules.sticky == ENV_ROUTING.sticky


def test_invalid_rules_name_each_field_and_why() -> None:
    """An unknown provider, a field contacts do not have, an unknown key and bad JSON each name where."""
    body = json.dumps({"by_contact_type": {"lead": ["hubsopt"]}, "required_fields": ["email", "phne"], "colour": 1})

    found = problems(rules_document, body.encode(), ENV_ROUTING)

    assert set(found) == {"by_contact_type.lead.0", "required_fields.1", "colour"}
    assert "unknown provider 'hubsopt'" in found["by_contact_type.lead.0"]
    assert "'phne' is not a contact field" in found["required_fields.1"]
    assert list(problems(rules_document, b"{not json", ENV_ROUTING)) == ["(document)"]


def test_rules_take_only_phone_regions_phonenumbers_knows() -> None:
    """A phone region phonenumbers does not know is refused by name; a known one in lower case is kept upper."""
    found = problems(rules_document, b'{"default_phone_region": "ZZ"}', ENV_ROUTING)

    assert "'ZZ' is not a region phonenumbers knows" in found["default_phone_region"]
    assert rules_document(b'{"default_phone_region": "gb"}', ENV_ROUTING).default_phone_region == "GB"


def test_tuning_is_checked_against_the_providers_own_bounds() -> None:
    """HubSpot takes at most 100 records a request and a rate above zero; credentials cannot be tuned."""
    found = problems(tuned, "hubspot", HUBSPOT, ProviderTuning(batch_size=500, rate_per_second=0))

    assert set(found) == {"batch_size", "rate_per_second"}
    assert "100" in found["batch_size"]
    assert list(problems(ProviderTuning.model_validate, {"token": "pat-1"})) == ["token"]


@pytest.mark.parametrize(
    ("tuning", "message"),
    [
        ({"base_url": "not-a-url"}, "is not an http:// or https:// URL"),
        ({"base_url": "file:///etc/passwd"}, "is not an http:// or https:// URL"),
        ({"timeout_s": 1e308}, "less than or equal to 300"),
        ({"rate_per_second": 1e9}, "less than or equal to 10000"),
        ({"max_in_flight": 1000}, "less than or equal to 100"),
    ],
)
def test_tuning_takes_http_urls_and_bounded_numbers_only(tuning: dict[str, object], message: str) -> None:
    """An endpoint that is not http(s), and a timeout, rate or concurrency past its bound, are refused by field."""
    found = problems(tuned, "hubspot", HUBSPOT, ProviderTuning.model_validate(tuning))

    assert list(found) == list(tuning) and message in found[next(iter(tuning))]


def test_a_tuning_the_adapter_could_not_authenticate_with_is_refused_on_base_url() -> None:
    """Mailchimp with a key lacking its data center needs a base URL: a tuning that empties it is refused,
    as the adapter would refuse it, naming base_url."""
    env = MailchimpSettings(api_key=SecretStr("0123456789abcdef"), base_url="http://127.0.0.1:18083/3.0")

    found = problems(tuned, "mailchimp", env, ProviderTuning(base_url=""))

    assert list(found) == ["base_url"] and "no data center suffix" in found["base_url"]


def test_tuning_overrides_only_its_fields_and_keeps_credentials() -> None:
    """A tuned lane has the tuning's fields, the environment's others, and its token untouched."""
    env = HubSpotSettings(token="pat-secret", burst=3)
    lane = tuned("hubspot", env, ProviderTuning(rate_per_second=2.5).updated(ProviderTuning(batch_size=10)))

    assert (lane.rate_per_second, lane.batch_size, lane.burst) == (2.5, 10, 3)
    assert isinstance(lane, HubSpotSettings) and lane.token.get_secret_value() == "pat-secret"
    assert "token" not in tunable_view(lane)


def test_every_tunable_field_is_a_provider_setting() -> None:
    """ProviderTuning names fields of ProviderSettings only (their bounds are checked there)."""
    assert set(ProviderTuning.model_fields) <= set(ProviderSettings.model_fields)


def _runtime() -> RuntimeConfig:
    settings = Settings(routing=ENV_ROUTING, providers=ProvidersSettings(hubspot=HUBSPOT))
    lanes = {name: ProviderLane(name, lane) for name, lane in settings.providers.enabled().items()}
    return RuntimeConfig(settings, lanes, TopicCatalog.load(KafkaSettings().topics_file, "p."))


def test_stored_rules_are_in_force_until_their_tombstone() -> None:
    """A rules document replaces the environment's rules; its tombstone brings them back."""
    runtime = _runtime()
    stored = RoutingSettings(required_fields=["phone"])

    runtime.apply("p.contacts.config.rules", RULES_KEY, stored.model_dump_json().encode())
    assert runtime.rules == stored == runtime.stored_rules
    runtime.apply("p.contacts.config.rules", RULES_KEY, None)
    assert runtime.rules == ENV_ROUTING and runtime.stored_rules is None


def test_provider_tuning_reconfigures_the_lane_and_its_tombstone_restores_it() -> None:
    """A stored tuning changes the lane's limits at once; removing it brings the environment's back."""
    runtime = _runtime()
    lane = runtime.lanes["hubspot"]

    runtime.apply("p.contacts.config.providers", b"hubspot", b'{"rate_per_second": 1.5, "batch_size": 5}')
    assert (lane.settings.rate_per_second, lane.settings.batch_size, lane.generation) == (1.5, 5, 1)
    assert runtime.tuning["hubspot"] == ProviderTuning(rate_per_second=1.5, batch_size=5)
    runtime.apply("p.contacts.config.providers", b"hubspot", None)
    assert lane.settings == HUBSPOT and "hubspot" not in runtime.tuning


def test_a_stored_document_that_does_not_hold_leaves_the_configuration_as_it_was() -> None:
    """An invalid document on the topic (written around the endpoints) is refused, not half applied."""
    runtime = _runtime()

    runtime.apply("p.contacts.config.rules", RULES_KEY, b'{"required_fields": ["phne"]}')
    runtime.apply("p.contacts.config.providers", b"hubspot", b'{"batch_size": 500}')
    runtime.apply("p.contacts.config.providers", b"pipedrive", b'{"batch_size": 5}')

    assert runtime.rules == ENV_ROUTING and runtime.lanes["hubspot"].generation == 0
