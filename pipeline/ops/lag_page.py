"""The lag page a person reads at a glance: a table per stage and an inline SVG chart of recent lag.

One self-contained HTML document (no scripts, no external assets) that reloads itself.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from html import escape

from pipeline.ops.lag import LagReport

REFRESH_S = 5
_WIDTH, _HEIGHT, _LEFT, _BOTTOM, _TOP, _RIGHT = 760, 240, 56, 28, 12, 16
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22", "#7f7f7f")
_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px; } .meta { color: #555; margin-bottom: 16px; }
.total { font-size: 28px; font-weight: 600; } .total.behind { color: #b3261e; } .total.ok { color: #1b7f3b; }
table { border-collapse: collapse; margin-top: 16px; min-width: 760px; }
th, td { padding: 4px 10px; border-bottom: 1px solid #ddd; text-align: left; white-space: nowrap; }
td.n { text-align: right; font-variant-numeric: tabular-nums; } tr.behind td { background: #fdecea; }
.legend span { display: inline-block; margin-right: 14px; } .legend i { display: inline-block; width: 12px;
  height: 12px; margin-right: 4px; vertical-align: -1px; }
svg text { font-size: 11px; fill: #555; }
"""


def render_lag_page(report: LagReport, history: Sequence[tuple[float, dict[str, int]]]) -> str:
    at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(report.at))
    behind = "behind" if report.lag else "ok"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="{REFRESH_S}">
<title>contactsync lag: {report.lag}</title><style>{_STYLE}</style></head>
<body>
<h1>Consumer lag of group {escape(report.group)}</h1>
<div class="meta">read from the broker at {at}; last commit {_age(report.last_commit_age_s)}
(commits watched for {report.observed_for_s:.0f}s); this page reloads every {REFRESH_S}s</div>
<div class="total {behind}">{report.lag:,} messages behind</div>
{_chart(history)}
{_table(report)}
</body></html>
"""


def _table(report: LagReport) -> str:
    rows = "\n".join(
        f'<tr class="{"behind" if stage.lag else ""}"><td>{escape(stage.stage)}</td><td>{escape(stage.topic)}</td>'
        f'<td class="n">{stage.lag:,}</td><td class="n">{stage.committed:,}</td><td class="n">{stage.end:,}</td>'
        f"<td>{_age(stage.last_commit_age_s)}</td></tr>"
        for stage in report.stages
    )
    return ("<table><thead><tr><th>stage</th><th>input topic</th><th>lag</th><th>committed</th>"
            f"<th>end offset</th><th>last commit</th></tr></thead><tbody>\n{rows}\n</tbody></table>")


def _chart(history: Sequence[tuple[float, dict[str, int]]]) -> str:
    """Lag over time of every stage that had any in the window (none had: one flat line at zero)."""
    if not history:
        return "<p>No readings yet.</p>"
    series = _series(history)
    start, end = history[0][0], max(history[-1][0], history[0][0] + 1)
    top = max([1, *(value for points in series.values() for _, value in points)])
    plot_w, plot_h = _WIDTH - _LEFT - _RIGHT, _HEIGHT - _TOP - _BOTTOM

    def y_of(value: int) -> float:
        return _TOP + plot_h - value / top * plot_h

    lines, legend = [], []
    for index, (stage, points) in enumerate(series.items()):
        color = _COLORS[index % len(_COLORS)]
        xy = " ".join(f"{_LEFT + (at - start) / (end - start) * plot_w:.1f},{y_of(value):.1f}" for at, value in points)
        lines.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{xy}"/>')
        legend.append(f'<span><i style="background:{color}"></i>{escape(stage)}</span>')
    grid = "".join(
        f'<line x1="{_LEFT}" x2="{_WIDTH - _RIGHT}" y1="{y_of(v):.1f}" y2="{y_of(v):.1f}" stroke="#e5e5e5"/>'
        f'<text x="{_LEFT - 6}" y="{y_of(v) + 4:.1f}" text-anchor="end">{v:,}</text>'
        for v in sorted({0, top // 2, top})
    )
    span_min = (end - start) / 60
    axis = (f'<text x="{_LEFT}" y="{_HEIGHT - 8}">{span_min:.1f} min ago</text>'
            f'<text x="{_WIDTH - _RIGHT}" y="{_HEIGHT - 8}" text-anchor="end">now</text>')
    return (f'<svg width="{_WIDTH}" height="{_HEIGHT}" viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img" '
            f'aria-label="lag per stage over the last {span_min:.0f} minutes">{grid}{axis}{"".join(lines)}</svg>'
            f'<div class="legend">{"".join(legend)}</div>')


def _series(history: Sequence[tuple[float, dict[str, int]]]) -> dict[str, list[tuple[float, int]]]:
    """Per stage with lag in the window, its lag at each reading, in the order stages first appear."""
    stages: dict[str, None] = {}
    for _, lags in history:
        stages.update(dict.fromkeys(stage for stage, lag in lags.items() if lag))
    if not stages:
        return {"all stages (no lag)": [(at, 0) for at, _ in history]}
    return {stage: [(at, lags.get(stage, 0)) for at, lags in history] for stage in stages}


def _age(seconds: float | None) -> str:
    return "not seen yet" if seconds is None else f"{seconds:.0f}s ago"
