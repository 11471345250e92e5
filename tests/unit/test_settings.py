"""Settings: each value checked where it is read, problems named by variable, unknown variables named."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsError

from pipeline.context import create_app
from pipeline.errors import ConfigError
from pipeline.providers import check_credentials
from pipeline.settings import (
    HubSpotSettings,
    MailchimpSettings,
    ProvidersSettings,
    RoutingSettings,
    SalesforceSettings,
    Settings,
)
from pipeline.settings_env import json_problem, nearest, unknown_variables, validation_problems


def problem(**values: object) -> str:
    """The one line a user sees for ``Settings(**values)``."""
    with pytest.raises(ValidationError) as caught:
        Settings.model_validate(values)
    return validation_problems(caught.value)


@pytest.mark.parametrize(
    "servers", ["broker1:9092", "10.0.0.1:9092,10.0.0.2:9093", "[::1]:9092", " a:1 , b:2 "]
)
def test_bootstrap_servers_take_host_port_entries(servers: str) -> None:
    """Comma-separated host:port entries, IPv6 in brackets, are accepted (blanks around them dropped)."""
    assert Settings(kafka_bootstrap_servers=servers).bootstrap_servers == servers.replace(" ", "")


@pytest.mark.parametrize("servers", ["127.0.0.1:abc", "broker1", "broker1:0", "broker1:65536", ":9092", "a:1,,b:2"])
def test_each_bootstrap_entry_must_be_host_and_port(servers: str) -> None:
    """An entry without a host, or without a port from 1 to 65535, names both variables and the rule."""
    line = problem(kafka_bootstrap_servers=servers)
    assert line.startswith("KAFKA_BOOTSTRAP_SERVERS or CONTACTSYNC_KAFKA_BOOTSTRAP_SERVERS: ")
    assert "is not host:port" in line
    assert "is not host:port" in problem(kafka={"bootstrap_servers": servers})


@pytest.mark.parametrize(
    ("values", "variable", "why"),
    [
        ({"web_port": 99999}, "CONTACTSYNC_WEB_PORT", "less than or equal to 65535"),
        ({"web_port": 0}, "CONTACTSYNC_WEB_PORT", "greater than or equal to 1"),
        ({"local_kafka": {"port": 70000}}, "CONTACTSYNC_LOCAL_KAFKA__PORT", "less than or equal to 65535"),
        ({"table_store": "bogus://"}, "CONTACTSYNC_TABLE_STORE", "'rocksdb://' or 'memory://'"),
        ({"web_host": "http://0.0.0.0"}, "CONTACTSYNC_WEB_HOST", "not a host name or IP address"),
        ({"web_canonical_url": "worker1:6066"}, "CONTACTSYNC_WEB_CANONICAL_URL", "not an http:// or https:// URL"),
        ({"log_level": "loud"}, "CONTACTSYNC_LOG_LEVEL", "'DEBUG', 'INFO'"),
        ({"app_id": "my app"}, "CONTACTSYNC_APP_ID", "should match pattern"),
        ({"session_timeout_s": 1}, "CONTACTSYNC_SESSION_TIMEOUT_S", "greater than or equal to 6"),
        ({"standby_replicas": -1}, "CONTACTSYNC_STANDBY_REPLICAS", "greater than or equal to 0"),
        ({"batch_within_s": float("inf")}, "CONTACTSYNC_BATCH_WITHIN_S", "finite number"),
        ({"routing": {"default_phone_region": "ZZ"}}, "CONTACTSYNC_ROUTING__DEFAULT_PHONE_REGION",
         "'ZZ' is not a region phonenumbers knows"),
        ({"providers": {"hubspot": {"base_url": "not-a-url"}}}, "CONTACTSYNC_PROVIDERS__HUBSPOT__BASE_URL",
         "not an http:// or https:// URL"),
        ({"providers": {"salesforce": {"base_url": "file:///etc/passwd"}}},
         "CONTACTSYNC_PROVIDERS__SALESFORCE__BASE_URL", "not an http:// or https:// URL"),
        ({"providers": {"mailchimp": {"base_url": "ftp://x"}}}, "CONTACTSYNC_PROVIDERS__MAILCHIMP__BASE_URL",
         "not an http:// or https:// URL"),
        ({"providers": {"hubspot": {"timeout_s": 1e308}}}, "CONTACTSYNC_PROVIDERS__HUBSPOT__TIMEOUT_S",
         "less than or equal to 300"),
        ({"providers": {"mailchimp": {"rate_per_second": 1e6}}}, "CONTACTSYNC_PROVIDERS__MAILCHIMP__RATE_PER_SECOND",
         "less than or equal to 10000"),
        ({"providers": {"salesforce": {"limit_retry_after_s": 1e9}}},
         "CONTACTSYNC_PROVIDERS__SALESFORCE__LIMIT_RETRY_AFTER_S", "less than or equal to 86400"),
        ({"providers": {"hubspot": {"tokn": "x"}}}, "CONTACTSYNC_PROVIDERS__HUBSPOT__TOKN",
         "not a setting (did you mean CONTACTSYNC_PROVIDERS__HUBSPOT__TOKEN?)"),
    ],
)
def test_a_bad_value_is_one_line_naming_its_variable(values: dict[str, object], variable: str, why: str) -> None:
    """Ports, stores, hosts, URLs, levels, names, timeouts, rates and regions out of their range are
    refused by variable, each with the rule it broke."""
    line = problem(**values)
    assert line.startswith(f"{variable}: ") and why in line and "\n" not in line


def test_good_values_are_kept_and_normalised() -> None:
    """http(s) endpoints, a lower-case phone region and log level, and Mailchimp's empty base URL pass."""
    settings = Settings.model_validate({
        "log_level": "debug", "table_store": "memory://", "web_canonical_url": "https://w1.internal:6066",
        "routing": {"default_phone_region": "gb"},
        "providers": {"hubspot": {"base_url": "http://127.0.0.1:18081"}, "mailchimp": {"base_url": ""}},
    })
    assert (settings.log_level, settings.routing.default_phone_region) == ("DEBUG", "GB")
    assert settings.providers.hubspot.base_url == "http://127.0.0.1:18081"


def test_unknown_variables_are_named_with_the_nearest_setting() -> None:
    """Each CONTACTSYNC_ variable no setting reads gets a warning with the nearest name, nested ones too;
    variables of settings, of their sections and of map entries, and other programs' variables, get none."""
    warnings = unknown_variables({
        "CONTACTSYNC_WEB_PROT": "1", "CONTACTSYNC_PROVIDER__HUBSPOT__TOKEN": "x", "CONTACTSYNC_BOGUS": "1",
        "CONTACTSYNC_WEB_PORT": "1", "KAFKA_BOOTSTRAP_SERVERS": "a:1", "CONTACTSYNC_KAFKA_BOOTSTRAP_SERVERS": "a:1",
        "CONTACTSYNC_ROUTING": "{}", "CONTACTSYNC_ROUTING__BY_CONTACT_TYPE__LEAD": "[]",
        "CONTACTSYNC_PROVIDERS__HUBSPOT__TOKEN": "x", "HOME": "/root",
    })

    assert warnings == [
        "CONTACTSYNC_BOGUS is not a setting and is ignored (no setting has a name like it; see docs/configuration.md)",
        "CONTACTSYNC_PROVIDER__HUBSPOT__TOKEN is not a setting and is ignored "
        "(did you mean CONTACTSYNC_PROVIDERS__HUBSPOT__TOKEN?)",
        "CONTACTSYNC_WEB_PROT is not a setting and is ignored (did you mean CONTACTSYNC_WEB_PORT?)",
    ]
    assert nearest("contactsync_app_di") == " (did you mean CONTACTSYNC_APP_ID?)"


def test_a_variable_that_is_not_json_is_named() -> None:
    """pydantic-settings names only the section of a list or map variable that does not decode; the
    line names the variable itself, without its value."""
    error = SettingsError('error parsing value for field "routing" from source "EnvSettingsSource"')
    try:
        json.loads("notjson")
    except json.JSONDecodeError as cause:
        error.__cause__ = cause

    line = json_problem(error, {"CONTACTSYNC_ROUTING__BY_CONTACT_TYPE": "notjson", "OTHER": "notjson"})

    assert line.startswith("CONTACTSYNC_ROUTING__BY_CONTACT_TYPE: not valid JSON (Expecting value, column 1)")


COMPLETE = ProvidersSettings(
    hubspot=HubSpotSettings(token=SecretStr("pat-na1-1")),
    salesforce=SalesforceSettings(client_id="id", client_secret=SecretStr("s"), username="u@x.co",
                                  password=SecretStr("pass word+token")),
    mailchimp=MailchimpSettings(api_key=SecretStr("0123-us6")),
)


@pytest.mark.parametrize(
    ("provider", "update", "why"),
    [
        ("hubspot", {"token": SecretStr("")}, "CONTACTSYNC_PROVIDERS__HUBSPOT__TOKEN is not set"),
        ("hubspot", {"token": SecretStr("pat-1\n")}, "CONTACTSYNC_PROVIDERS__HUBSPOT__TOKEN holds spaces or control"),
        ("hubspot", {"token": SecretStr("pat 1")}, "CONTACTSYNC_PROVIDERS__HUBSPOT__TOKEN holds spaces"),
        ("salesforce", {"client_secret": SecretStr("")}, "CONTACTSYNC_PROVIDERS__SALESFORCE__CLIENT_SECRET is not set"),
        ("salesforce", {"password": SecretStr("")}, "CONTACTSYNC_PROVIDERS__SALESFORCE__PASSWORD is not set"),
        ("mailchimp", {"api_key": SecretStr("")}, "CONTACTSYNC_PROVIDERS__MAILCHIMP__API_KEY is not set"),
        ("mailchimp", {"api_key": SecretStr("0123456789abcdef")}, "the Mailchimp API key has no data center suffix"),
    ],
)
def test_missing_or_malformed_credentials_are_named_unless_the_provider_is_off(
    provider: str, update: dict[str, object], why: str
) -> None:
    """Credentials are read as the adapter reads them: a missing or malformed one names its variable and
    how to turn the provider off; turned off, the provider's credentials are not looked at."""
    broken = COMPLETE.model_copy(update={provider: getattr(COMPLETE, provider).model_copy(update=update)})
    with pytest.raises(ConfigError) as caught:
        check_credentials(broken)
    assert str(caught.value).startswith(f"{provider}: {why}")
    assert f"CONTACTSYNC_PROVIDERS__{provider.upper()}__ENABLED=false" in str(caught.value)

    off = getattr(broken, provider).model_copy(update={"enabled": False})
    check_credentials(broken.model_copy(update={provider: off}))


def test_complete_credentials_pass_with_and_without_a_salesforce_username() -> None:
    """Password grant with a username (spaces allowed in the password), client credentials without one,
    and a Mailchimp key without data center when the base URL is given."""
    check_credentials(COMPLETE)
    check_credentials(COMPLETE.model_copy(update={
        "salesforce": SalesforceSettings(client_id="id", client_secret=SecretStr("s")),
        "mailchimp": MailchimpSettings(api_key=SecretStr("sim-key"), base_url="http://127.0.0.1:18083/3.0"),
    }))


def test_routing_rules_check_their_phone_region() -> None:
    """The rules document the admin endpoint validates refuses an unknown region the same way."""
    with pytest.raises(ValidationError, match="'ZZ' is not a region phonenumbers knows"):
        RoutingSettings(default_phone_region="ZZ")


def test_the_standby_replicas_setting_reaches_the_faust_app() -> None:
    app, _, _ = create_app(Settings(standby_replicas=0))
    assert app.conf.table_standby_replicas == 0


def test_the_producer_sends_a_partition_s_outputs_in_record_batches_of_256_kib() -> None:
    app, _, _ = create_app(Settings())
    assert app.conf.producer_max_batch_size == 256 * 1024


def test_a_stage_s_inbox_holds_two_of_its_batches_before_the_fetch_pauses() -> None:
    app, _, _ = create_app(Settings(batch_max=300))
    assert app.conf.stream_buffer_maxsize == 600
