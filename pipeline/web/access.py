"""Who may call what on a worker's web server.

- Admin endpoints need an API key: every path under ``/admin/`` and every request that changes
  something (any method but GET, HEAD and OPTIONS; ``POST /records/{id}/retry`` too).
- Read-only views (``/lag``, ``/records/{id}``, ``/providers``, ``/metrics`` and Faust's own pages)
  are open, or need a key too when ``settings.admin.open_views`` is false.

The key comes as ``Authorization: Bearer <key>``: none is 401, one that is not configured is 403
(with no key configured, admin endpoints refuse everyone). Keys are compared in constant time, with
every configured key compared, so the answer's timing says nothing about them.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from pydantic import SecretStr

from pipeline.settings import AdminSettings

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def needs_key(method: str, path: str, *, open_views: bool) -> bool:
    if path == "/admin" or path.startswith("/admin/") or method.upper() not in READ_METHODS:
        return True
    return not open_views


def refusal(authorization: str | None, keys: Sequence[SecretStr]) -> int | None:
    """None when ``authorization`` carries one of ``keys``; else the status to refuse with (401, 403)."""
    scheme, _, presented = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return 401
    given = presented.strip().encode()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given, key.get_secret_value().encode())
    return None if matched else 403


def access_middleware(settings: AdminSettings) -> Middleware:
    """The aiohttp middleware that asks for a key where ``needs_key`` says so."""

    @web.middleware
    async def check_access(request: web.Request, handler: Handler) -> web.StreamResponse:
        if needs_key(request.method, request.path, open_views=settings.open_views):
            status = refusal(request.headers.get("Authorization"), settings.api_keys)
            if status is not None:
                return _refused(status, configured=bool(settings.api_keys))
        return await handler(request)

    return check_access


def _refused(status: int, *, configured: bool) -> web.Response:
    if not configured:
        error = "no API key is configured on this worker (CONTACTSYNC_ADMIN__API_KEYS)"
    elif status == 401:
        error = "an API key is required: send 'Authorization: Bearer <key>'"
    else:
        error = "the API key is not valid"
    headers = {"WWW-Authenticate": 'Bearer realm="contactsync"'} if status == 401 else {}
    return web.json_response({"error": error}, status=status, headers=headers)
