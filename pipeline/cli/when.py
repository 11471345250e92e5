"""Points in time as an operator types them: ``2026-01-31``, ``2026-01-31T14:05``, ``...Z`` or
``+02:00`` (ISO 8601; without a zone, local time), or a duration ago: ``90s``, ``15m``, ``2h``, ``7d``."""

from __future__ import annotations

import re
import time
from datetime import datetime

from pipeline.errors import ConfigError

_AGO = re.compile(r"^(\d+)(s|m|h|d)$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_when(text: str, option: str) -> int:
    """Epoch milliseconds of ``text``; a ConfigError naming ``option`` when it is neither form."""
    ago = _AGO.match(text)
    if ago:
        return int((time.time() - int(ago[1]) * _SECONDS[ago[2]]) * 1000)
    try:
        return int(datetime.fromisoformat(text).timestamp() * 1000)
    except ValueError:
        raise ConfigError(
            f"{option} {text!r}: expected an ISO time (2026-01-31T14:05, local unless it has Z or +hh:mm) "
            "or a duration ago (15m, 2h, 7d)"
        ) from None
