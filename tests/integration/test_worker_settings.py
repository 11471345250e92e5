"""`contactsync worker` with a bad setting, run as a user runs it: one line on stderr naming the variable,
exit code 2, before the worker gets anywhere near Kafka (nothing listens at the bootstrap address here,
so a check that came too late would say "cannot reach Kafka" instead)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_runner import cli_env, run_cli

CREDENTIALS = {
    "CONTACTSYNC_PROVIDERS__HUBSPOT__TOKEN": "pat-na1-test",
    "CONTACTSYNC_PROVIDERS__SALESFORCE__CLIENT_ID": "client-id",
    "CONTACTSYNC_PROVIDERS__SALESFORCE__CLIENT_SECRET": "client-secret",
    "CONTACTSYNC_PROVIDERS__SALESFORCE__USERNAME": "sync@example.com",
    "CONTACTSYNC_PROVIDERS__SALESFORCE__PASSWORD": "password+token",
    "CONTACTSYNC_PROVIDERS__MAILCHIMP__API_KEY": "0123456789abcdef-us6",
}


def worker(tmp_path: Path, *args: str, **variables: str) -> tuple[int, list[str]]:
    """Exit code and stderr lines of `contactsync worker` with complete settings but ``variables``."""
    env = cli_env(**{
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",  # the discard port: nothing answers there
        "CONTACTSYNC_DATA_DIR": str(tmp_path / "data"),
        **CREDENTIALS,
        **variables,
    })
    done = run_cli(env, "worker", *args, timeout_s=60)
    return done.returncode, done.stderr.splitlines()


@pytest.mark.parametrize(
    ("variable", "value", "why"),
    [
        ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:abc", "'127.0.0.1:abc' is not host:port"),
        ("CONTACTSYNC_WEB_PORT", "99999", "less than or equal to 65535"),
        ("CONTACTSYNC_ROUTING__BY_CONTACT_TYPE", "notjson", "not valid JSON"),
        ("CONTACTSYNC_TABLE_STORE", "bogus://", "'rocksdb://' or 'memory://'"),
        ("CONTACTSYNC_DATA_DIR", "/proc/nope", "cannot be used: No such file or directory"),
        ("CONTACTSYNC_ROUTING__DEFAULT_PHONE_REGION", "ZZ", "'ZZ' is not a region phonenumbers knows"),
        ("CONTACTSYNC_PROVIDERS__HUBSPOT__BASE_URL", "not-a-url", "not an http:// or https:// URL"),
        ("CONTACTSYNC_PROVIDERS__SALESFORCE__BASE_URL", "file:///etc/passwd", "not an http:// or https:// URL"),
        ("CONTACTSYNC_PROVIDERS__HUBSPOT__TIMEOUT_S", "1e308", "less than or equal to 300"),
        ("CONTACTSYNC_PROVIDERS__MAILCHIMP__API_KEY", "0123456789abcdef", "has no data center suffix (like -us6)"),
        ("CONTACTSYNC_PROVIDERS__HUBSPOT__TOKEN", "", "CONTACTSYNC_PROVIDERS__HUBSPOT__TOKEN is not set"),
        ("CONTACTSYNC_PROVIDERS__HUBSPOT__TOKN", "pat-1", "did you mean CONTACTSYNC_PROVIDERS__HUBSPOT__TOKEN?"),
    ],
)
def test_a_bad_setting_is_one_line_naming_the_variable_and_exit_2(
    tmp_path: Path, variable: str, value: str, why: str
) -> None:
    """Each bad value (format, range, JSON, store, data dir, region, URL, timeout, credentials, a misspelt
    nested name) stops the worker with exit code 2 and exactly one stderr line naming the variable."""
    code, lines = worker(tmp_path, **{variable: value})

    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("contactsync: ") and variable in lines[0] and why in lines[0], lines


def test_a_bad_web_port_option_is_one_line_naming_the_option(tmp_path: Path) -> None:
    """--web-port out of range is refused by its own name, not by the variable it overrides."""
    code, lines = worker(tmp_path, "--web-port", "99999")

    assert (code, lines) == (2, ["contactsync: --web-port 99999: Input should be less than or equal to 65535"])


def test_a_provider_turned_off_needs_no_credentials(tmp_path: Path) -> None:
    """With Mailchimp disabled explicitly, its malformed key is not looked at: the worker gets past the
    credentials to the next check (here a data dir it cannot create)."""
    code, lines = worker(
        tmp_path,
        CONTACTSYNC_PROVIDERS__MAILCHIMP__API_KEY="no-suffix!",
        CONTACTSYNC_PROVIDERS__MAILCHIMP__ENABLED="false",
        CONTACTSYNC_DATA_DIR="/proc/nope",
    )

    assert code == 2 and len(lines) == 1 and "CONTACTSYNC_DATA_DIR=/proc/nope" in lines[0], lines


def test_unknown_variables_are_warned_about_with_the_nearest_name(tmp_path: Path) -> None:
    """A misspelt and an unknown CONTACTSYNC_ variable each get a warning line naming it (the misspelt one
    with the setting it resembles); the worker goes on to its other checks."""
    code, lines = worker(
        tmp_path, CONTACTSYNC_BOGUS="1", CONTACTSYNC_WEB_PROT="6067", CONTACTSYNC_DATA_DIR="/proc/nope"
    )

    assert code == 2 and len(lines) == 3, lines
    assert lines[0].startswith("contactsync: warning: CONTACTSYNC_BOGUS is not a setting and is ignored")
    assert lines[1] == ("contactsync: warning: CONTACTSYNC_WEB_PROT is not a setting and is ignored "
                        "(did you mean CONTACTSYNC_WEB_PORT?)")
    assert "CONTACTSYNC_DATA_DIR=/proc/nope" in lines[2]
