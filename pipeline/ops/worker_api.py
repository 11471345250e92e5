"""Asking a worker's web server from a command: with the API key, and every failure as one ConfigError line.

The key is the first of ``CONTACTSYNC_ADMIN__API_KEYS`` in the command's environment (never an option,
which would show in the process list and the shell's history).
"""

from __future__ import annotations

from typing import Any

import httpx

from pipeline.errors import ConfigError
from pipeline.settings import AdminSettings

TIMEOUT_S = 30.0


def key_headers(admin: AdminSettings) -> dict[str, str]:
    """The header that lets a request in where a key is needed (none when no key is configured)."""
    return {"Authorization": f"Bearer {admin.api_keys[0].get_secret_value()}"} if admin.api_keys else {}


async def ask_worker(
    admin: AdminSettings, method: str, url: str, path: str, *, body: Any = None, not_found_ok: bool = False
) -> Any:
    """The worker's JSON answer (None for a 404 when ``not_found_ok``)."""
    address = f"{url.rstrip('/')}{path}"
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_S) as client:
            answer = await client.request(method, address, json=body, headers=key_headers(admin))
    except httpx.HTTPError as exc:
        raise ConfigError(f"cannot reach the worker at {url}: {exc}") from None
    if answer.status_code == 404 and not_found_ok:
        return None
    if answer.status_code >= 400:
        raise ConfigError(f"{method} {address} answered {answer.status_code}: {_reason(answer)}")
    return answer.json()


def _reason(answer: httpx.Response) -> str:
    """The error of a JSON answer with each problem's field and why, or the start of the body."""
    try:
        document = answer.json()
    except ValueError:
        return answer.text[:200]
    problems = "; ".join(f"{p['field']}: {p['message']}" for p in document.get("problems", []))
    return f"{document.get('error', '')}: {problems}" if problems else str(document.get("error", document))
