"""Helpers for the adapters' wire-contract tests: changes, a recording transport, spec validators."""

from __future__ import annotations

import copy
import json
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, Literal

import httpx
from jsonschema import Draft7Validator  # type: ignore[import-untyped]
from pydantic import SecretStr

from pipeline.providers import Mapper
from pipeline.providers.hubspot import HubSpotProvider
from pipeline.providers.mailchimp import MailchimpProvider
from pipeline.providers.salesforce import SalesforceProvider
from pipeline.settings import HubSpotSettings, MailchimpSettings, SalesforceSettings
from schemas.contact import Contact, ContactChange
from schemas.dispatch import DispatchRecord

SPECS = resources.files("pipeline.dev.simulators") / "specs"  # the providers' specs, shipped with the simulators

Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


def change(
    record_id: str = "r1", op: Literal["upsert", "delete"] = "upsert", *, version: int = 7, **fields: Any
) -> ContactChange:
    """A change of ``record_id``; with no contact fields a delete carries no contact."""
    contact = Contact(id=record_id, **fields) if fields or op == "upsert" else None
    return ContactChange(
        record_id=record_id, op=op, version=version, source_ts_ms=1_000, captured_at_ms=2_000,
        contact=contact,
    )


class Recorder:
    """An ``httpx.MockTransport`` that answers with ``handler`` and keeps every request it saw."""

    def __init__(self, handler: Handler) -> None:
        self.requests: list[httpx.Request] = []
        self._handler = handler
        self.transport = httpx.MockTransport(self._handle)

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self._handler(request)
        return await answer if isinstance(answer, Awaitable) else answer

    def bodies(self, path_suffix: str) -> list[Any]:
        """The JSON bodies of the requests whose path ends with ``path_suffix``."""
        return [json.loads(r.content) for r in self.requests if r.url.path.endswith(path_suffix)]


def answer(status: int, body: Any = None, headers: dict[str, str] | None = None) -> httpx.Response:
    """An answer with a JSON body (none when ``body`` is None)."""
    if body is None:
        return httpx.Response(status, headers=headers)
    return httpx.Response(status, json=body, headers=headers)


def raising(exc: Exception) -> Handler:
    """A handler that fails the way the network does."""

    def handle(request: httpx.Request) -> httpx.Response:
        raise exc

    return handle


def spec_validator(spec_file: str, schema: str, *, closed: tuple[str, ...] = ()) -> Draft7Validator:
    """A validator for ``#/components/schemas/<schema>`` of a provider's spec (copies of ../shared/specs).

    The specs leave objects open; ``closed`` names component schemas that get
    ``additionalProperties: false`` here, so a misspelt or invented field fails the test.
    """
    components = copy.deepcopy(json.loads((SPECS / spec_file).read_text(encoding="utf-8"))["components"])
    for name in closed:
        components["schemas"][name]["additionalProperties"] = False
    if spec_file.startswith("mailchimp"):
        # The converted Mailchimp spec types every merge field value as an object; Mailchimp takes
        # text (and an object only for ADDRESS fields), so the value type is left open here.
        components["schemas"]["AddListMembers"]["properties"]["merge_fields"]["additionalProperties"] = {}
    return Draft7Validator({"$ref": f"#/components/schemas/{schema}", "components": components})


# --- providers under test ------------------------------------------------------------------------

HUBSPOT = HubSpotSettings(token=SecretStr("pat-na1-test"))
SALESFORCE = SalesforceSettings(
    client_id="client-id",
    client_secret=SecretStr("client-secret"),
    username="sync@example.com",
    password=SecretStr("password+securitytoken"),
)
MAILCHIMP = MailchimpSettings(api_key=SecretStr("0123456789abcdef-us6"), list_id="list1")
INSTANCE = "https://acme.my.salesforce.com"
DATA = f"{INSTANCE}/services/data/{SALESFORCE.api_version}"


def token_answer(token: str = "00Dxx!token-1") -> httpx.Response:
    """Salesforce's token endpoint answer."""
    return answer(200, {
        "access_token": token, "instance_url": INSTANCE, "token_type": "Bearer",
        "id": "https://login.salesforce.com/id/00Dxx/005xx", "issued_at": "1278448832702",
        "signature": "sig",
    })


def with_token(handler: Handler) -> Handler:
    """``handler`` for the REST API, behind a token endpoint that always grants."""

    def handle(request: httpx.Request) -> httpx.Response | Awaitable[httpx.Response]:
        if request.url.path == "/services/oauth2/token":
            return token_answer()
        return handler(request)

    return handle


def hubspot(handler: Handler, settings: HubSpotSettings = HUBSPOT) -> tuple[HubSpotProvider, Recorder]:
    recorder = Recorder(handler)
    return HubSpotProvider(settings, transport=recorder.transport), recorder


def salesforce(
    handler: Handler, settings: SalesforceSettings = SALESFORCE, **options: float
) -> tuple[SalesforceProvider, Recorder]:
    recorder = Recorder(handler)
    settings = settings.model_copy(update=options)
    return SalesforceProvider(settings, transport=recorder.transport), recorder


def mailchimp(
    handler: Handler, settings: MailchimpSettings = MAILCHIMP, *, storage: Recorder | None = None
) -> tuple[MailchimpProvider, Recorder]:
    """The adapter on ``handler``; batch results fetched through ``storage`` (by default, nowhere)."""
    recorder = Recorder(handler)
    storage = storage or Recorder(raising(httpx.ConnectError("no storage in this test")))
    return MailchimpProvider(settings, transport=recorder.transport, storage_transport=storage.transport), recorder


def records(mapper: Mapper, *changes: ContactChange) -> list[DispatchRecord]:
    """The dispatch records the route stage would make of ``changes``."""
    return [mapper(item) for item in changes]
