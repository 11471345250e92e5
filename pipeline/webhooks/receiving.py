"""What every receiver shares: refusals with their status, the body size limit, times."""

from __future__ import annotations

import hmac
import time

from pydantic import SecretStr

from pipeline.errors import ConfigError
from pipeline.providers.credentials import credential
from pipeline.settings import WebhooksSettings


class WebhookRefusedError(Exception):
    """A notification refused as a whole: ``status`` (400, 401, 413) and why, counted as ``result``."""

    def __init__(self, status: int, reason: str, result: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.result = result


def malformed(reason: str) -> WebhookRefusedError:
    return WebhookRefusedError(400, reason, "malformed")


def unauthorized(reason: str, result: str = "unauthorized") -> WebhookRefusedError:
    return WebhookRefusedError(401, reason, result)


def too_large(limit: int) -> WebhookRefusedError:
    return WebhookRefusedError(413, f"the body is larger than {limit} bytes", "too_large")


def same_secret(given: str, secret: SecretStr) -> bool:
    """Constant-time comparison; an empty secret matches nothing."""
    expected = secret.get_secret_value()
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def now_ms() -> int:
    return int(time.time() * 1000)


def minted_id(provider: str, platform_id: str) -> str:
    """Our record id for a contact created at a platform: the same for every retry of its notification."""
    return f"{provider}-{platform_id}"


def check_webhook_secrets(settings: WebhooksSettings) -> None:
    """ConfigError when a secret that is set could not be matched (spaces, control characters, or
    for Mailchimp's, characters a URL path segment does not carry as they are)."""
    prefix = "CONTACTSYNC_WEBHOOKS__"
    if settings.hubspot_client_secret.get_secret_value():
        credential(settings.hubspot_client_secret, f"{prefix}HUBSPOT_CLIENT_SECRET")
    mailchimp = settings.mailchimp_secret.get_secret_value()
    if mailchimp:
        credential(settings.mailchimp_secret, f"{prefix}MAILCHIMP_SECRET")
        if not all(c.isalnum() or c in "-_.~" for c in mailchimp) or len(mailchimp) < 16:
            raise ConfigError(
                f"{prefix}MAILCHIMP_SECRET must be at least 16 letters, digits, '-', '_', '.' or '~' (it is part "
                "of a URL); generate one: python -c 'import secrets; print(secrets.token_urlsafe(24))'"
            )
