"""Salesforce REST API access: the OAuth2 session and Salesforce's errors.

Login: ``POST {base_url}/services/oauth2/token`` with the password grant (client id and secret,
username, password with the security token appended), or the client_credentials grant when no
username is set. The token and ``instance_url`` are kept until Salesforce answers 401
INVALID_SESSION_ID: that call fails as retryable and the next one logs in again.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx
from pydantic import TypeAdapter

from pipeline.errors import DeliveryError, RetryableError, ThrottledError
from pipeline.providers.credentials import credential
from pipeline.providers.http import Answer, ProviderClient, classify_status, clip, error_body, parse
from pipeline.settings import SalesforceSettings


class _Token(Answer):
    access_token: str
    instance_url: str


class _Error(Answer):  # [{message, errorCode}] from the REST API, {error, ...} from OAuth
    errorCode: str = ""  # noqa: N815 - Salesforce's wire name
    message: str = ""
    error: str = ""
    error_description: str = ""


_TOKEN = TypeAdapter(_Token)
_ERRORS = TypeAdapter(list[_Error] | _Error)


def credentials(settings: SalesforceSettings) -> dict[str, str]:
    """The OAuth2 grant: password with a username, else client_credentials (ConfigError when a part
    is missing or malformed)."""
    prefix = "CONTACTSYNC_PROVIDERS__SALESFORCE__"
    client = {
        "client_id": credential(settings.client_id, f"{prefix}CLIENT_ID"),
        "client_secret": credential(settings.client_secret, f"{prefix}CLIENT_SECRET"),
    }
    if not settings.username:
        return {"grant_type": "client_credentials", **client}
    username = credential(settings.username, f"{prefix}USERNAME")
    password = credential(settings.password, f"{prefix}PASSWORD", spaces=True)
    return {"grant_type": "password", **client, "username": username, "password": password}


@dataclass(frozen=True, slots=True)
class _Session:
    token: str
    instance_url: str


class SalesforceApi:
    """Calls ``/services/data/<version>/...`` on the org's instance with a cached session.

    ``settings.limit_retry_after_s`` is the wait after 403 REQUEST_LIMIT_EXCEEDED, which comes
    without a Retry-After (the allocation is a rolling 24 h window).
    """

    def __init__(
        self,
        settings: SalesforceSettings,
        *,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        self._settings = settings
        self._grant = credentials(settings)
        self._http = ProviderClient(
            settings, base_url=settings.base_url, classify=self._classify, transport=transport
        )
        self._session: _Session | None = None
        self._login = asyncio.Lock()

    async def call(
        self, method: str, path: str, *, json: object = None, params: dict[str, str] | None = None
    ) -> httpx.Response:
        """One REST API request (``path`` after the version); errors as ``DeliveryError``."""
        session = await self._current_session()
        url = f"{session.instance_url}/services/data/{self._settings.api_version}{path}"
        headers = {"Authorization": f"Bearer {session.token}"}
        try:
            return await self._http.request(method, url, json=json, params=params, headers=headers)
        except RetryableError as error:
            if error.code == "INVALID_SESSION_ID" and self._session is session:
                self._session = None
            raise

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _current_session(self) -> _Session:
        async with self._login:  # concurrent callers share one login
            if self._session is None:
                answer = await self._http.request("POST", "/services/oauth2/token", data=self._grant)
                token = parse(answer, _TOKEN)
                self._session = _Session(token.access_token, token.instance_url.rstrip("/"))
            return self._session

    def _classify(self, response: httpx.Response) -> DeliveryError:
        """Salesforce's status and error body as our error."""
        body = error_body(response, _ERRORS, _Error())
        first = body[0] if isinstance(body, list) and body else body
        error = first if isinstance(first, _Error) else _Error()
        code = error.errorCode or error.error
        message = f"Salesforce {response.status_code} {code}: {error.message or error.error_description}"
        status, limit_wait = response.status_code, self._settings.limit_retry_after_s
        if code == "REQUEST_LIMIT_EXCEEDED":
            return ThrottledError(clip(message), status=status, code=code, retry_after=limit_wait)
        if code == "INVALID_SESSION_ID":  # expired token: the next call logs in again
            return RetryableError(clip(message), status=status, code=code)
        return classify_status(response, message=message, code=code, throttle_after=0.0)
