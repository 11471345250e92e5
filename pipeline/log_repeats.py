"""One line per interval for a warning or error that a library repeats, with a count of the rest.

While the broker is away, aiokafka logs "Unable connect to node with id 1" and "Unable to update
metadata" on every retry, thousands of times a minute per worker. :class:`RepeatLimiter` is a
``logging.Filter`` on the root handler: for each logger and message template (the text before its
``%s`` arguments are filled in) it lets one WARNING-or-worse line through per interval and holds
back the others, and the next line it lets through carries how many it held back since the last one
(``repeated=312``) and over how long (``repeated_within_s=10``). A message that stops repeating
within an interval leaves that interval's count untold.

Only lines of foreign libraries are limited: a structlog line of ours (its ``msg`` is the event
dict) always passes, since ours carry what they are about (a record, a provider) in their fields
and a repeated event name does not make them repeats.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["REPEAT_FIELDS", "RepeatLimiter"]

REPEAT_FIELDS = ("repeated", "repeated_within_s")  # what a line let through after held ones carries
_MAX_KEYS = 1024  # templates remembered at once; expired ones are forgotten past this


@dataclass
class _Window:
    opened: float
    held: int = 0


class RepeatLimiter(logging.Filter):
    """Let through one line per ``interval_s`` for each (logger, template) of a foreign WARNING or worse."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._interval_s = interval_s
        self._clock = clock
        self._windows: dict[tuple[str, str], _Window] = {}
        self._lock = threading.Lock()  # Faust's consumer thread logs too

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not isinstance(record.msg, str):
            return True
        key = (record.name, record.msg)
        now = self._clock()
        with self._lock:
            window = self._windows.get(key)
            if window is not None and now - window.opened < self._interval_s:
                window.held += 1
                return False
            if window is not None and window.held:
                record.repeated = window.held
                record.repeated_within_s = round(now - window.opened)
            if len(self._windows) >= _MAX_KEYS:
                self._forget_expired(now)
            self._windows[key] = _Window(now)
            return True

    def _forget_expired(self, now: float) -> None:
        self._windows = {
            key: window for key, window in self._windows.items() if now - window.opened < self._interval_s
        }
