"""The targets of issue #12, each with the figure quoted there ("today") beside the measured one.

``make bench`` prints this table after its JSON lines. ``python -m benchmarks.targets [FILE]``
prints it from the newest line of each benchmark in ``benchmarks/results.jsonl`` (or FILE).
A figure is the median of the invocation's runs unless its note says otherwise.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.report import RESULTS_FILE, Results
from pipeline.dev.simulators.config import PROVIDERS

FULL_DRAIN = 200_000  # changes: the drain the memory target is stated for
TARGET_API_LATENCY_MS = 50.0

Line = Mapping[str, Any]  # one benchmark's JSON line


@dataclass(frozen=True)
class Measured:
    value: float
    note: str = ""
    aim_also: bool = True  # a condition of the aim besides the value (no throttled answer)
    comparable: bool = True  # measured as the target is stated (not, say, on a smaller drain)


@dataclass(frozen=True)
class Target:
    figure: str
    today: str
    must: float
    aim: float
    lower_is_better: bool
    shown: Callable[[float], str]
    benchmark: str  # whose JSON line has the figure
    measure: Callable[[Line], Measured | str]  # a str says why there is no figure

    def row(self, results: Results) -> list[str]:
        """figure, today, must, aim, measured, verdict, note."""
        sign = "≤" if self.lower_is_better else "≥"
        fixed = [self.figure, self.today, f"{sign} {self.shown(self.must)}", f"{sign} {self.shown(self.aim)}"]
        try:
            line = results.get(self.benchmark)
            measured = self.measure(line) if line is not None else f"`{self.benchmark}` not run"
        except KeyError as missing:
            measured = f"not in the results ({missing})"
        if isinstance(measured, str):
            return [*fixed, "—", "not measured", measured]
        return [*fixed, self.shown(measured.value), self._verdict(measured), measured.note]

    def _verdict(self, measured: Measured) -> str:
        if not measured.comparable:
            return "not comparable"
        if not self._reaches(measured.value, self.must):
            return "NOT MET"
        return "aim met" if self._reaches(measured.value, self.aim) and measured.aim_also else "must met"

    def _reaches(self, value: float, bound: float) -> bool:
        return value <= bound if self.lower_is_better else value >= bound


def _times(value: float) -> str:
    return f"{value:.1f}×"


def _plain(value: float) -> str:
    return f"{value:.2f}"


def _ms(value: float) -> str:
    return f"{value:,.0f} ms"


def _pct(value: float) -> str:
    return f"{value:.1f} %"


def _mb(value: float) -> str:
    return f"{value:.0f} MB"


def _cpu_ratio(line: Line) -> Measured:
    note = (
        f"CPU ms per change: worker {line['worker_cpu_ms_per_change']['1']}, relay {line['relay_cpu_ms_per_change']},"
        f" Faust relay {line['faust_relay_cpu_ms_per_change']} (worker ÷ Faust relay"
        f" {line['cpu_ratio_to_faust_relay']['1']})"
    )
    return Measured(line["cpu_ratio_to_relay"]["1"], note)


def _rate_ratio(line: Line) -> Measured:
    note = (
        f"changes/s: 1 worker {line['changes_per_s']['1']}, relay {line['relay_per_s']},"
        f" Faust relay {line['faust_relay_per_s']}"
    )
    return Measured(line["changes_per_s_ratio_to_relay"]["1"], note)


def _latency(load: int | None, percentile: str) -> Callable[[Line], Measured | str]:
    """``percentile`` of the latency at ``load`` changes/s (None: the half-capacity load)."""

    def measure(line: Line) -> Measured | str:
        offered = load or line["half_capacity_load"]
        if offered is None:
            return "no capacity: run throughput first in the same invocation, or pass --capacity"
        figures = line["by_load"].get(str(offered))
        if figures is None or figures[percentile] is None:
            return f"load {offered}/s not offered"
        api_ms = line["params"]["api_latency_ms"]
        note = (
            f"p50 {figures['p50']:,.0f}, p99 {figures['p99']:,.0f} ms at {offered} changes/s offered"
            f" (settled {figures['settled_per_s']}/s), {api_ms:g} ms API latency"
        )
        return Measured(figures[percentile], note, comparable=api_ms == TARGET_API_LATENCY_MS)

    return measure


def _efficiency(provider: str) -> Callable[[Line], Measured | str]:
    def measure(line: Line) -> Measured | str:
        if provider not in line["by_provider"]:
            return f"{provider} not run"
        figures, runs = line["by_provider"][provider], line["runs"][provider]
        throttled = sum(run["throttled_in_run"] for run in runs)
        starved = sum(1 for run in runs if run["dispatch_backlog_at_end"] == 0)
        note = f"lane at {figures['limit_per_s']} requests/s; throttled answers over {len(runs)} run(s): {throttled}"
        if starved:
            note += f"; {starved} runs starved (no backlog left: a lower bound)"
        return Measured(100 * figures["efficiency"], note, aim_also=throttled == 0)

    return measure


def _repeated(line: Line) -> Measured:
    worst = max(line["repeated_share_pct"].items(), key=lambda item: item[1])
    runs = sum(len(line["runs"][count]) for count in line["repeated_share_pct"])
    note = f"worst of {runs} throughput runs ({worst[0]} worker(s)): {line['repeated_outcomes'][worst[0]]} outcomes"
    return Measured(worst[1], note)


def _peak_rss(line: Line) -> Measured:
    backlog = line["params"]["backlog"]
    note = f"drain of {backlog:,} changes, {line['params']['workers']} workers; steady {line['rss_mb']['steady_mb']} MB"
    return Measured(line["rss_mb"]["peak_mb"], note, comparable=backlog >= FULL_DRAIN)


TARGETS = (
    Target("worker CPU ms per change ÷ relay's (1 worker)", "~19×", 5, 2, True, _times, "throughput", _cpu_ratio),
    Target(
        "changes/s, 1 worker ÷ relay's", "~0.05 (fair baseline)", 0.2, 0.5, False, _plain, "throughput", _rate_ratio,
    ),
    Target(
        "p99 source → provider ack at 100 changes/s, 50 ms API", "959 ms (p50 635)", 300, 150, True, _ms,
        "latency", _latency(100, "p99"),
    ),
    Target("p50 at 20 changes/s (an idle pipeline)", "659 ms", 100, 60, True, _ms, "latency", _latency(20, "p50")),
    Target("p99 at half the measured 1-worker capacity", "—", 1000, 500, True, _ms, "latency", _latency(None, "p99")),
    *(
        Target(
            f"API efficiency, {provider}, demo mix incl. deletes (aim: 0 throttled)",
            "60 % (HubSpot)" if provider == "hubspot" else "—", 90, 95, False, _pct,
            "api_efficiency", _efficiency(provider),
        )
        for provider in PROVIDERS
    ),
    Target("repeated outcomes in a fault-free run", "up to 9 %", 0, 0, True, _pct, "throughput", _repeated),
    Target("worker peak RSS, 200 k drain", "319 MB", 150, 120, True, _mb, "drain", _peak_rss),
)  # fmt: skip
HEADER = ["target", "today", "must", "aim", "measured", "verdict", "note"]


def table(results: Results, measured: str) -> str:
    """The targets as a Markdown table (aligned, to read in a terminal too); ``measured`` says where the
    figures come from."""
    rows = [HEADER, *(target.row(results) for target in TARGETS)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(HEADER))]
    rows.insert(1, ["-" * width for width in widths])
    lines = [" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    title = f"Targets of issue #12 (today: the figures quoted in the issue, 2026-12-03; measured: {measured})"
    return "\n".join([title, "", *(f"| {line} |" for line in lines)])


def newest(results_file: Path) -> Results:
    """The newest line of each benchmark in ``results_file``."""
    found: Results = {}
    for text in results_file.read_text().splitlines():
        if text.strip():
            line = json.loads(text)
            found[line["benchmark"]] = line
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("file", nargs="?", type=Path, default=RESULTS_FILE, help=f"default: {RESULTS_FILE}")
    results_file = parser.parse_args().file
    print(table(newest(results_file), f"the newest line of each benchmark in {results_file}"))


if __name__ == "__main__":
    main()
