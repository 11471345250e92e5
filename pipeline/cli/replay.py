"""``contactsync replay --stage STAGE --from TIME|OFFSET``: make a stage read its input again."""

from __future__ import annotations

import asyncio
import re

import typer

from pipeline.cli import app, load_catalog, load_settings
from pipeline.cli.when import parse_when
from pipeline.errors import ConfigError
from pipeline.kafka.stage_inputs import find_stage, stage_inputs
from pipeline.ops.replay import ResetPoint, reset_stage_offsets

_OFFSET = re.compile(r"^\d+$")


@app.command()
def replay(
    stage: str = typer.Option(..., help="The stage, as `contactsync lag` names it: validate, dispatch-hubspot, ..."),
    from_: str = typer.Option(
        ..., "--from", help="earliest, an offset (digits), an ISO time (local unless zoned) or a duration ago (2h)."
    ),
    partition: list[int] = typer.Option(None, help="Only this partition (repeatable); default: all."),
    force: bool = typer.Option(False, "--force", help="Do not refuse while workers are members: retry for 60 s."),
) -> None:
    """Reset the app's committed offsets on a stage's input topic; its workers re-read from there.

    Stop the workers first: Kafka only takes the reset while the group has no members.
    """
    settings = load_settings()
    catalog = load_catalog(settings)
    chosen = find_stage(stage_inputs(catalog, settings.providers.enabled()), stage)
    partitions = sorted(set(partition)) if partition else list(range(chosen.partitions))
    if not set(partitions) <= set(range(chosen.partitions)):
        raise ConfigError(f"--partition: {chosen.topic} has partitions 0 to {chosen.partitions - 1}")
    moves = asyncio.run(reset_stage_offsets(
        settings.bootstrap_servers, settings.app_id, chosen, reset_point(from_), partitions, force=force
    ))
    for move in moves:
        before = "none" if move.committed is None else str(move.committed)
        typer.echo(f"{chosen.topic}[{move.partition}]: {before} -> {move.target}")
    typer.echo(f"stage {stage} of group {settings.app_id} reads {chosen.topic} from these offsets when its "
               "workers start")


def reset_point(text: str) -> ResetPoint:
    if text == "earliest":
        return ResetPoint(offset=0)
    if _OFFSET.match(text):
        return ResetPoint(offset=int(text))
    return ResetPoint(at_ms=parse_when(text, "--from"))
