"""Who may call what on a worker's web server: which requests need a key, and the key check."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from pipeline.settings import AdminSettings, Settings
from pipeline.web.access import needs_key, refusal

KEYS = [SecretStr("first-key"), SecretStr("second-key")]


@pytest.mark.parametrize(
    ("method", "route", "open_views", "expected"),
    [
        ("GET", "/admin/rules", True, True),
        ("PATCH", "/admin/providers/{name}", True, True),
        ("POST", "/records/{id}/retry", True, True),  # an action, not a view
        ("POST", "/records/{id}", True, True),  # a read view read with another method
        ("GET", "/lag", True, False),
        ("HEAD", "/lag/page", True, False),
        ("GET", "/records/{id}", True, False),
        ("GET", "/providers", True, False),
        ("GET", "/metrics", True, False),
        ("GET", "/lag", False, True),
        ("GET", "/metrics", False, True),
    ],
)
def test_admin_paths_and_actions_need_a_key_views_only_when_closed(
    method: str, route: str, open_views: bool, expected: bool
) -> None:
    """/admin/... and non-GET requests always need a key; read-only views only when they are closed."""
    assert needs_key(method, route, open_views=open_views) is expected


@pytest.mark.parametrize(
    "route",
    ["/", "/table/", "/table/{name}/", "/table/{name}/{key}/", "/router/", "/router/topics", "/router/{name}/{key}/",
     "/graph/", "/assignment/", "/performance/", "/administrators", None],
)
def test_faust_views_and_unknown_routes_need_a_key_even_with_open_views(route: str | None) -> None:
    """Faust's own views (table rows, routing, stats), any view not listed as ours, and a path no view
    answers all need a key, open views or not."""
    assert needs_key("GET", route, open_views=True) is True


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        (None, 401),
        ("", 401),
        ("Bearer ", 401),
        ("Basic Zmlyc3Qta2V5", 401),
        ("Bearer wrong-key", 403),
        ("Bearer first-key", None),
        ("bearer second-key", None),
        ("Bearer first-key-and-more", 403),
    ],
)
def test_missing_key_is_401_wrong_key_403_any_configured_key_passes(authorization: str | None, expected: int | None) -> None:
    """No bearer key → 401, a key that is not configured → 403, any configured key → let in."""
    assert refusal(authorization, KEYS) == expected


def test_with_no_key_configured_every_key_is_refused() -> None:
    """A worker without API keys refuses every key."""
    assert refusal("Bearer anything", []) == 403


@pytest.mark.parametrize("variable", ["first-key, second-key", '["first-key", "second-key"]'])
def test_api_keys_come_comma_separated_or_as_a_json_list(variable: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """CONTACTSYNC_ADMIN__API_KEYS takes `k1,k2` or a JSON list; the keys stay secret in a repr."""
    monkeypatch.setenv("CONTACTSYNC_ADMIN__API_KEYS", variable)
    admin = Settings().admin
    assert [key.get_secret_value() for key in admin.api_keys] == ["first-key", "second-key"]
    assert "first-key" not in repr(admin) and admin == AdminSettings(api_keys=KEYS)
