"""Running one benchmark alone: its size knobs as command-line options, on a broker of its own.

Every benchmark module has an ``Options`` dataclass (the knobs, with defaults that keep ``make
bench`` within about 20 minutes) and ``async run(bench, options)``, which emits its JSON lines and
returns them by benchmark name (``benchmarks.targets`` reads them).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import typing
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from benchmarks.harness import Bench, open_bench

OptionsT = TypeVar("OptionsT")


def parse_options(options: type[OptionsT], description: str, argv: list[str] | None = None) -> OptionsT:
    """``--field-name VALUE`` for every field of the dataclass; tuples are comma-separated. A wrong
    value is one line and exit 2 (argparse's ``error``)."""
    parser = argparse.ArgumentParser(description=description)
    hints = typing.get_type_hints(options)
    for field in dataclasses.fields(options):  # type: ignore[arg-type]
        kind = hints[field.name]
        parser.add_argument(
            f"--{field.name.replace('_', '-')}",
            type=_parser_of(kind),
            default=field.default,
            help=f"default: {_shown(field.default)}",
        )
    try:
        return options(**vars(parser.parse_args(argv)))
    except ValueError as wrong:  # an Options' own check (__post_init__)
        parser.error(str(wrong))


def run_alone(
    name: str, options: type[OptionsT], run: Callable[[Bench, OptionsT], Coroutine[Any, Any, object]], description: str
) -> None:
    chosen = parse_options(options, description)
    with open_bench(name) as bench:
        asyncio.run(run(bench, chosen))


def _parser_of(kind: Any) -> Callable[[str], Any]:
    if typing.get_origin(kind) is tuple:
        (item, _ellipsis) = typing.get_args(kind)
        return lambda text: tuple(item(part) for part in text.split(","))
    if kind is bool:
        return lambda text: text.lower() in ("1", "true", "yes")
    parse: Callable[[str], Any] = kind
    return parse


def _shown(value: object) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
