"""``contactsync lag``: the app's consumer lag per stage, read from the broker (no worker needed)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import typer
from aiokafka.errors import KafkaError

from pipeline.cli import app, load_catalog, load_settings
from pipeline.cli.text_table import format_table
from pipeline.errors import ConfigError
from pipeline.kafka.stage_inputs import StageInput, stage_inputs
from pipeline.kafka.topic_admin import require_topics
from pipeline.ops.lag import LagReport, LagSampler, lag_reader

_CLEAR_SCREEN = "\x1b[H\x1b[2J"


@dataclass(frozen=True)
class _View:
    as_json: bool
    watch: bool
    interval_s: float
    partitions: bool


@app.command()
def lag(
    as_json: bool = typer.Option(False, "--json", help="JSON: one object, or one line per reading with --watch."),
    watch: bool = typer.Option(False, "--watch", help="Read again every --interval seconds until Ctrl-C."),
    interval: float = typer.Option(5.0, min=0.5, help="Seconds between readings with --watch."),
    partitions: bool = typer.Option(False, "--partitions", help="A row for every partition, too."),
) -> None:
    """Committed offset, log-end offset and lag of every stage's input topic, for the app's group."""
    settings = load_settings()
    inputs = stage_inputs(load_catalog(settings), settings.providers.enabled())
    view = _View(as_json, watch, interval, partitions)
    try:
        asyncio.run(_show(settings.bootstrap_servers, LagSampler(settings.app_id), inputs, view))
    except KeyboardInterrupt:
        pass


async def _show(bootstrap: str, sampler: LagSampler, inputs: Sequence[StageInput], view: _View) -> None:
    await require_topics(bootstrap, *(i.topic for i in inputs))
    async with lag_reader(bootstrap, sampler, inputs) as reader:
        while True:
            try:
                report = await reader.read()
            except KafkaError as exc:
                raise ConfigError(f"reading the lag of group {sampler.group} failed: {exc}") from None
            if view.as_json:
                typer.echo(json.dumps(report.to_json()))
            else:
                if view.watch and sys.stdout.isatty():
                    typer.echo(_CLEAR_SCREEN, nl=False)
                typer.echo("\n".join(lag_lines(report, partitions=view.partitions, ages=view.watch)))
            if not view.watch:
                return
            await asyncio.sleep(view.interval_s)


def lag_lines(report: LagReport, *, partitions: bool, ages: bool) -> list[str]:
    """The lag table: a row per stage (and per partition); commit ages only when watching."""
    headers = ["STAGE", "TOPIC", "LAG", "COMMITTED", "END"] + (["LAST COMMIT"] if ages else [])
    rows: list[list[object]] = []
    for stage in report.stages:
        rows.append([stage.stage, stage.topic, stage.lag, stage.committed, stage.end]
                    + ([_age(stage.last_commit_age_s)] if ages else []))
        if partitions:
            rows += [
                [f"  [{p.partition}]", "", p.lag, "-" if p.committed is None else p.committed, p.end]
                + ([""] if ages else [])
                for p in stage.partitions
            ]
    at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(report.at))
    summary = f"group {report.group}: lag {report.lag} at {at}"
    if ages:
        summary += f", last commit {_age(report.last_commit_age_s)} (watched {report.observed_for_s:.0f}s)"
    return [summary, *format_table(headers, rows)]


def _age(seconds: float | None) -> str:
    return "not seen" if seconds is None else f"{seconds:.0f}s ago"
