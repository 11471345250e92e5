"""Logging for every process: structlog configured once, stdlib loggers rendered the same way.

Lines are JSON on a pipe or file and a console layout on a terminal. Every stage binds its
``stage`` with ``structlog.contextvars`` for all it logs (``pipeline.kafka.stage_loop.run_stage``);
lines about one record name ``record_id``, ``provider`` and ``outcome`` themselves. The foreign
loggers (faust, aiokafka, mode, httpx, aiohttp) go through the same processors, so their lines
carry the same context and the same redaction. :func:`redact_sensitive` masks email addresses, phone numbers
and secrets in every string value, in nested dicts and lists, and in stdlib message text. A warning
or error that a library repeats (a broker away) gets one line per ``REPEAT_INTERVAL_S`` with a count
of the rest (``pipeline.log_repeats``).
"""

from __future__ import annotations

import logging
import re
import sys
from functools import lru_cache
from typing import Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from pipeline.errors import ConfigError
from pipeline.log_repeats import REPEAT_FIELDS, RepeatLimiter

FOREIGN_LOGGERS = ("faust", "aiokafka", "mode", "httpx", "aiohttp")
# Foreign loggers whose INFO lines are noise, shown from WARNING on: httpx logs every request (the
# dispatcher's one line per batch says what matters); aiokafka logs "Updating subscribed topics"
# each time the subscription is renewed, every few seconds in a worker.
_CHATTY_LOGGERS = ("httpx", "aiokafka.consumer.subscription_state")
REPEAT_INTERVAL_S = 10.0
REDACTED = "[REDACTED]"
EMAIL = "[EMAIL]"
PHONE = "[PHONE]"

# Key names that hold secrets; the text pattern below looks ahead for their first letters (speed).
_SECRET_WORDS = r"pass(?:word|wd|phrase)|secret|token|api[_-]?key|authorization|credential|cookie|private[_-]?key"
_SENSITIVE_KEY = re.compile(rf"(?i){_SECRET_WORDS}|e-?mail|phone|mobile")
_SENSITIVE_TEXT = re.compile(
    rf"""
    (?P<bearer>\b(?:Bearer|Basic)\s+[\w.~+/=-]+)
    | (?P<mailchimp_key>\b[0-9a-f]{{32}}-us\d{{1,2}}\b)
    | (?P<hubspot_token>\bpat-[a-z]{{2,4}}\d?-[0-9a-f-]{{36}}\b)
    | (?P<assignment>(?P<name>(?=[acpstACPST])(?i:{_SECRET_WORDS})[\w-]*["']?\s*[=:]\s*["']?)
        (?:(?:Bearer|Basic)\s+)?[^\s"',;&)}}\]]+)
    | (?P<email>(?<![\w.%+-])[\w.%+-]+@[\w-]+(?:\.[\w-]+)*)
    | (?P<phone>(?<![\w+.:/-])
        (?:\+\d{{7,15}}
        | (?:\+\d{{1,3}}[ .-]?)?(?:\(\d{{1,4}}\)[ .-]?|\d{{1,4}}[ .-])(?:\d{{2,4}}[ .-]){{0,3}}\d{{2,8}})
        (?![\w:]|[ .-]\d))
    """,
    re.VERBOSE,
)
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_MAYBE_SENSITIVE = re.compile(r"[\d@=:]|Bearer|Basic")  # cheap first pass: most values have none


def _mask(match: re.Match[str]) -> str:
    kind = match.lastgroup
    text = match.group()
    if kind == "assignment":
        return match.group("name") + REDACTED
    if kind == "email":
        return EMAIL
    if kind == "phone":
        digits = sum(char.isdigit() for char in text)
        groups = 1 + sum(char in " .-" for char in text)  # "1.23456789" is a number, not a phone
        looks_like_phone = 9 <= digits <= 15 and (text[0] in "+(" or groups >= 3) and not _IPV4.fullmatch(text)
        return PHONE if looks_like_phone else text
    return REDACTED


def redact_text(text: str) -> str:
    """Mask emails, phone numbers, bearer tokens, API keys and ``password=...`` pairs in one string."""
    if _MAYBE_SENSITIVE.search(text) is None:
        return text
    return _SENSITIVE_TEXT.sub(_mask, text)


@lru_cache(maxsize=4096)
def _is_sensitive_key(key: str) -> bool:
    return _SENSITIVE_KEY.search(key) is not None


def _redact_value(key: object, value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(key, str) and _is_sensitive_key(key):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: _redact_value(k, v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_redact_value(None, item) for item in value]
    return value


def redact_sensitive(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Processor: mask sensitive values by key name (token, password, email, ...) and by pattern."""
    return {key: _redact_value(key, value) for key, value in event_dict.items()}


def _level_number(level: str) -> int:
    number = logging.getLevelNamesMapping().get(level.upper())
    if number is None:
        raise ConfigError(f"unknown log level {level!r}; use DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return number


def configure_logging(level: str, *, json: bool | None = None) -> None:
    """Set up structlog and the stdlib root logger; ``json=None`` picks JSON unless stderr is a terminal."""
    number = _level_number(level)
    if json is None:
        json = not sys.stderr.isatty()
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(REPEAT_FIELDS)],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,  # tracebacks become text, so they are redacted too
            redact_sensitive,
            structlog.processors.TimeStamper(fmt="iso", utc=True),  # after redaction: it never needs it
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(RepeatLimiter(REPEAT_INTERVAL_S))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(number)
    for name in FOREIGN_LOGGERS:
        foreign = logging.getLogger(name)
        foreign.handlers.clear()
        foreign.propagate = True
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(max(number, logging.WARNING))
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(number),
        cache_logger_on_first_use=True,
    )
