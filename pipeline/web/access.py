"""Who may call what on a worker's web server.

- Our read-only views (``READ_VIEWS``: ``/lag``, ``/lag/page``, ``/records/{id}``, ``/providers``,
  ``/metrics``) are open to GET, or need a key too when ``settings.admin.open_views`` is false.
- The webhook receivers (``WEBHOOK_VIEWS``, ``pipeline.web.webhooks``) need no key: each proves its
  caller is the platform (a signature, a secret in the URL, the organisation id) and refuses others.
- Everything else needs an API key: the admin endpoints (``/admin/...``), every request that changes
  something (any method but GET, HEAD and OPTIONS; ``POST /records/{id}/retry`` too), and every
  view Faust registers itself: ``/table/...`` (table rows, contacts included), ``/router/...``
  (which worker holds what), ``/`` and, when enabled, ``/graph``, ``/assignment``, ``/performance``.
  Faust's ``table_route`` does not need them: a worker forwards ``/records/{id}`` to the key's
  owner with the caller's own headers, routed by the group's assignment.

A view is known by the route pattern that answers the request, not by its path text, so no spelling
of a path reaches a view by another rule; a view not listed in ``READ_VIEWS`` needs a key.

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
READ_VIEWS = frozenset({"/lag", "/lag/page", "/records/{id}", "/providers", "/metrics"})
WEBHOOK_VIEWS = frozenset({"/webhooks/hubspot", "/webhooks/mailchimp/{secret}", "/webhooks/salesforce"})


def needs_key(method: str, route: str | None, *, open_views: bool) -> bool:
    """Whether a request for the view at route pattern ``route`` (None: no view) needs a key."""
    if route in WEBHOOK_VIEWS:
        return False
    if route not in READ_VIEWS or method.upper() not in READ_METHODS:
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
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else None
        if needs_key(request.method, route, open_views=settings.open_views):
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
