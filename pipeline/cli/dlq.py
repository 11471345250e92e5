"""``contactsync dlq list|show|replay|purge``: work the dead-letter topic (see ``pipeline.ops.dlq``).

Letters are named ``<partition>:<offset>`` (as ``list`` prints them) and selected by those names
and the filters; handled letters (replayed or purged) are left out unless ``--all`` is given.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import replace
from enum import StrEnum

import typer

from pipeline.cli import app, load_catalog, load_settings
from pipeline.cli.text_table import format_table
from pipeline.cli.when import parse_when
from pipeline.errors import ConfigError
from pipeline.logging import configure_logging
from pipeline.ops.dlq.actions import purge, replay
from pipeline.ops.dlq.letters import Letter, LetterFilter, read_letters

_REF = re.compile(r"^\d+:\d+$")
_MESSAGE_WIDTH = 60


class Action(StrEnum):
    list = "list"
    show = "show"
    replay = "replay"
    purge = "purge"


@app.command()
def dlq(
    action: Action = typer.Argument(..., help="list, show, replay (to the stage it failed at) or purge."),
    refs: list[str] = typer.Argument(None, help="Letters as <partition>:<offset>, as list prints them."),
    stage: str = typer.Option(None, help="Failed at this stage: validate, transform, route, dispatch."),
    provider: str = typer.Option(None, help="Failed for this provider."),
    error_class: str = typer.Option(None, help="Failed with this error, e.g. InvalidEventError."),
    key: str = typer.Option(None, help="The message key (the record id)."),
    since: str = typer.Option(None, help="Failed at or after: ISO time (local unless zoned) or ago (2h, 7d)."),
    until: str = typer.Option(None, help="Failed before: ISO time or ago."),
    all_: bool = typer.Option(False, "--all", help="Include handled (replayed or purged) letters."),
    dry_run: bool = typer.Option(False, "--dry-run", help="replay, purge: list the letters, change nothing."),
) -> None:
    """Dead letters: list them, show them whole, replay them, or purge them (mark them handled)."""
    for ref in refs or ():
        if not _REF.match(ref):
            raise ConfigError(f"letter {ref!r}: expected <partition>:<offset>, e.g. 3:1207")
    selection = LetterFilter(
        refs=frozenset(refs) if refs else None, key=key, stage=stage, provider=provider, error_class=error_class,
        since_ms=parse_when(since, "--since") if since else None,
        until_ms=parse_when(until, "--until") if until else None, include_handled=all_,
    )
    if action in (Action.replay, Action.purge) and not selection.selects:
        raise ConfigError(f"{action.value} needs a selection: letters (<partition>:<offset>) or a filter "
                          "(--stage, --provider, --error-class, --key, --since, --until)")
    settings = load_settings()
    configure_logging(settings.log_level)
    catalog = load_catalog(settings)
    letters = asyncio.run(read_letters(settings.bootstrap_servers, catalog))
    chosen = [letter for letter in letters if selection.matches(letter)]
    handled = len([letter for letter in letters if replace(selection, include_handled=True).matches(letter)]) - len(
        [letter for letter in chosen if letter.handled is None]
    )
    if action is Action.list or dry_run:
        _echo_lines(letter_lines(chosen, with_handled=all_))
        typer.echo(_letters(len(chosen)) + ("" if all_ or not handled else f" ({handled} handled not shown: --all)"))
    elif action is Action.show:
        for letter in chosen:
            _echo_lines(letter_details(letter))
    elif action is Action.replay:
        references = [letter for letter in chosen if letter.handled is None and letter.is_reference]
        if references and len(references) == len([letter for letter in chosen if letter.handled is None]):
            raise ConfigError(f"nothing to replay: {_reference_refusal(references)}")
        sent = asyncio.run(replay(settings.bootstrap_servers, catalog, chosen, settings.kafka.retry_deadline_s))
        _echo_lines([f"replayed {letter.ref} to {letter.story.original_topic}" for letter in sent if letter.story])
        notes = ([f"{handled} already handled"] if handled else []) + (
            [f"{_letters(len(references))} not replayed: {_reference_refusal(references)}"] if references else [])
        typer.echo(f"replayed {_letters(len(sent))}" + (f" ({'; '.join(notes)})" if notes else ""))
    else:
        marked = asyncio.run(purge(settings.bootstrap_servers, catalog, chosen, settings.kafka.retry_deadline_s))
        typer.echo(f"purged {_letters(len(marked))} (marked handled in {catalog.dlq_handled}; the DLQ keeps "
                   "letters until retention)")


def _letters(count: int) -> str:
    return f"{count} letter" if count == 1 else f"{count} letters"


def _reference_refusal(references: list[Letter]) -> str:
    refs = ", ".join(letter.ref for letter in references[:3]) + (", ..." if len(references) > 3 else "")
    one = len(references) == 1
    return (f"{refs} {'is a reference' if one else 'are references'} to "
            f"{'a message' if one else 'messages'} too large to dead-letter whole, holding only "
            f"{'its' if one else 'their'} first bytes (see `contactsync dlq show`)")


def _echo_lines(lines: list[str]) -> None:
    if lines:
        typer.echo("\n".join(lines))


def letter_lines(letters: list[Letter], *, with_handled: bool) -> list[str]:
    """One row per letter: where, when and why it failed (and what was done about it), and its key."""
    headers = ["LETTER", "FAILED AT", "STAGE", "PROVIDER", "ERROR CLASS", *(["HANDLED"] if with_handled else []),
               "MESSAGE", "KEY"]
    rows: list[list[object]] = []
    for letter in letters:
        story = letter.story
        message = " ".join((story.error_message if story else "(no dead-letter headers)").split())
        if story is not None and story.original_size is not None:
            message = f"[reference to {story.original_size} bytes] {message}"
        rows.append([
            letter.ref, _time(story.last_failure_ms) if story else "-", story.stage if story else "-",
            (story.provider if story else "") or "-", story.error_class if story else "-",
            *([_handled(letter)] if with_handled else []),
            message[:_MESSAGE_WIDTH - 1] + "…" if len(message) > _MESSAGE_WIDTH else message,
            _text(letter.key),
        ])
    return format_table(headers, rows) if rows else []


def letter_details(letter: Letter) -> list[str]:
    """The whole letter: its headers, key and value (JSON pretty-printed)."""
    return [
        f"letter {letter.ref}" + (f" ({_handled(letter)})" if letter.handled else ""),
        *(f"  {name}: {_text(value)}" for name, value in letter.headers),
        f"key: {_text(letter.key)}",
        *(_reference_value(letter) if letter.is_reference else ["value:", _pretty(letter.value)]),
        "",
    ]


def _reference_value(letter: Letter) -> list[str]:
    """What a reference letter says of the original, and the original's first bytes (escaped)."""
    story = letter.story
    assert story is not None
    excerpt = (letter.value or b"").decode("utf-8", "backslashreplace")
    return [
        f"value: not kept, {story.original_size} bytes were too large to dead-letter whole "
        f"(sha256 {story.original_sha256}); the original is at {story.original_topic} partition "
        f"{story.original_partition} offset {story.original_offset} while retention keeps it",
        f"first {len(letter.value or b'')} bytes:",
        "".join(char if char.isprintable() else char.encode("unicode_escape").decode() for char in excerpt),
    ]


def _handled(letter: Letter) -> str:
    done = letter.handled
    return "-" if done is None else f"{done.action} {_time(done.at_ms)}"


def _pretty(value: bytes | None) -> str:
    if value is None:
        return "(none)"
    try:
        return json.dumps(json.loads(value), indent=2, ensure_ascii=False)
    except ValueError:  # not UTF-8, or not JSON
        return _text(value)


def _text(raw: bytes | None) -> str:
    return "-" if raw is None else raw.decode("utf-8", errors="replace")


def _time(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))
