"""A credential as every adapter reads it: set, and without characters that cannot travel in a request."""

from __future__ import annotations

from pydantic import SecretStr

from pipeline.errors import ConfigError


def credential(value: str | SecretStr, variable: str, *, spaces: bool = False) -> str:
    """The value of the credential set by ``variable``; ConfigError when it is empty, holds a control
    character (a stray newline from a file), or a space where ``spaces`` is false (tokens and keys)."""
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    if not text:
        raise ConfigError(f"{variable} is not set")
    if not text.isprintable() or (not spaces and " " in text):
        allowed = "control characters" if spaces else "spaces or control characters"
        raise ConfigError(f"{variable} holds {allowed}; set it to the credential alone")
    return text
