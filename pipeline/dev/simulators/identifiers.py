"""Identifiers the platforms hand out, and the email check they share."""

from __future__ import annotations

import hashlib
import re
import uuid

_EMAIL = re.compile(r"^[^@\s\"<>(),;:]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
_SALESFORCE_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def is_valid_email(value: str) -> bool:
    """What all three platforms accept as an address: one @, a dotted domain, a letters-only TLD."""
    return len(value) <= 254 and bool(_EMAIL.match(value))


def correlation_id() -> str:
    """A fresh UUID, as HubSpot's correlationId and Mailchimp's problem ``instance``."""
    return str(uuid.uuid4())


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: the MD5 of the lower-cased address."""
    return hashlib.md5(email.lower().encode()).hexdigest()  # noqa: S324 (Mailchimp's own choice)


def salesforce_id(prefix: str, number: int) -> str:
    """An 18-character Salesforce id: 3-character key prefix, 12 base-62 digits, checksum suffix."""
    digits = ""
    for _ in range(12):
        number, rest = divmod(number, 62)
        digits = _BASE62[rest] + digits
    short = prefix + digits
    return short + _salesforce_checksum(short)


def is_salesforce_id(value: str) -> bool:
    """True for a well-formed 15- or 18-character id (the 18-character checksum is verified)."""
    if len(value) == 15:
        return value.isalnum()
    return len(value) == 18 and value.isalnum() and _salesforce_checksum(value[:15]) == value[15:]


def salesforce_id_18(value: str) -> str:
    """The 18-character form of a 15- or 18-character id."""
    return value + _salesforce_checksum(value) if len(value) == 15 else value


def _salesforce_checksum(short: str) -> str:
    suffix = ""
    for chunk in (short[0:5], short[5:10], short[10:15]):
        bits = sum(1 << position for position, char in enumerate(chunk) if char.isupper())
        suffix += _SALESFORCE_SUFFIX_ALPHABET[bits]
    return suffix
