"""HTML of the dashboard's pages and of the fragments the browser swaps in live.

Rendering happens here, on the server, so that one tested code path draws an alert row or a
stream panel whether it is part of the first page load or pushed later over server-sent
events; the browser scripts only place fragments and run the overview's table. Every value
that comes from a message is escaped: stream names and explanations are data, not markup.
"""

from __future__ import annotations

import math
from html import escape
from urllib.parse import quote

import numpy as np

from gridalarm.stream.dashboard import charts
from gridalarm.stream.dashboard.state import (
    ACTIVE_STATES,
    SECTIONS,
    AlertView,
    DashboardState,
    Label,
    StreamDetail,
)

SECTION_TITLES = {"open": "Open", "suppressed": "Suppressed", "resolved": "Resolved"}
LABEL_TEXT = {"confirmed": "confirmed", "false-positive": "false positive"}


def stream_url(name: str, at: float | None = None) -> str:
    """The stream page of ``name``, with window ``at`` selected when given."""
    url = f"/stream?name={quote(name, safe='')}"
    return url if at is None else f"{url}&at={at:.0f}"


def when(t: float | None) -> str:
    """A window time for people: ``2026-01-05 04:03Z`` (UTC), or a dash."""
    return "–" if t is None or not math.isfinite(t) else charts.clock(t, with_date=True) + "Z"


def status_text(state: DashboardState) -> str:
    """The status line: back-fill progress or live, with counts."""
    counts = state.counts()
    phase = "live" if state.phase == "live" else f"back-filling {state.progress:.0%}"
    text = f"{phase} · {counts['streams']} streams · {counts['open']} open alerts"
    if counts["skipped"]:
        text += f" · {counts['skipped']} unreadable messages skipped"
    return text


def page(title: str, active: str, body: str, script: str, status: str) -> str:
    """A whole page: navigation, status line, body, and its one script (a module)."""
    nav = "".join(
        f'<a href="{href}"{" class=active" if key == active else ""}>{label}</a>'
        for key, href, label in (("overview", "/", "Overview"), ("alerts", "/alerts", "Alerts"))
    )
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · gridalarm</title>"
        '<link rel="stylesheet" href="/static/dashboard.css">'
        '<link rel="icon" href="data:,">'
        f'<script type="module" src="/static/{escape(script)}"></script>'
        "</head><body>"
        f'<header><span class="brand">gridalarm</span><nav>{nav}</nav>'
        f'<span id="status" class="status">{escape(status)}</span></header>'
        f"<main>{body}</main></body></html>"
    )


def overview_body(threshold: float) -> str:
    """The overview's frame; the browser fills the table from /api/overview and live rows."""
    options = "".join(
        f'<option value="{s}">{s}</option>'
        for s in ("critical", "warning", "suppressed", "anomalous", "normal", "unscored")
    )
    heads = "".join(
        f'<th data-sort="{key}" tabindex="0">{label}</th>'
        for key, label in (
            ("name", "Stream"),
            ("end", "Last window"),
            ("score", "Score"),
            ("state", "State"),
        )
    )
    return (
        '<section class="toolbar">'
        '<input id="filter" type="search" placeholder="filter streams (text or glob: schedd:*)" '
        'autocomplete="off" aria-label="filter streams">'
        '<select id="state-filter" aria-label="state"><option value="">any state</option>'
        f"{options}</select>"
        '<span id="count" class="count"></span></section>'
        f'<div id="viewport" class="viewport" data-threshold="{threshold:g}">'
        '<table id="overview" class="grid"><thead><tr>'
        f"{heads}<th>Last 24 windows</th></tr></thead><tbody></tbody></table>"
        '<div id="spacer"></div></div>'
    )


def explain_table(explain: list[dict]) -> str:
    """An explanation: each feature's observed and expected value and share of the error."""
    if not explain:
        return '<p class="muted">no explanation (the window was not anomalous)</p>'
    rows = []
    for item in explain:
        share = float(item.get("share", 0.0))
        rows.append(
            f"<tr><td>{escape(str(item.get('feature', '?')))}</td>"
            f'<td class="num">{charts.number(float(item.get("observed", math.nan)))}</td>'
            f'<td class="num">{charts.number(float(item.get("expected", math.nan)))}</td>'
            f'<td><meter min="0" max="1" value="{share:.3f}"></meter> {share:.0%}</td></tr>'
        )
    return (
        '<table class="explain"><thead><tr><th>feature</th><th>observed</th><th>expected</th>'
        f"<th>share of the anomaly</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def explain_inline(explain: list[dict], top: int = 3) -> str:
    """The first features of an explanation on one line, for alert rows."""
    parts = [
        f"<b>{escape(str(item.get('feature', '?')))}</b> "
        f"{charts.number(float(item.get('observed', math.nan)))} "
        f"<span class=muted>(expected {charts.number(float(item.get('expected', math.nan)))},"
        f" {float(item.get('share', 0.0)):.0%})</span>"
        for item in explain[:top]
    ]
    return "; ".join(parts) or '<span class="muted">–</span>'


def alert_row(alert: AlertView, label: Label | None) -> str:
    """One alert as a table row, with the confirm and false-positive buttons."""
    aid = escape(alert.alert_id)
    if label is None:
        verdict = '<span class="verdict none">not labelled</span>'
    else:
        verdict = (
            f'<span class="verdict {escape(label.label)}" title="by {escape(label.by)} at '
            f'{escape(label.at)}">{escape(LABEL_TEXT.get(label.label, label.label))}</span>'
        )
    buttons = "".join(
        f'<button type="button" class="label-button" data-label="{value}"'
        f"{' disabled' if label is not None and label.label == value else ''}>{text}</button>"
        for value, text in (("confirmed", "Confirm"), ("false-positive", "False positive"))
    )
    silence = (
        f' <span class="muted">silence {escape(alert.silence)}</span>' if alert.silence else ""
    )
    return (
        f'<tr id="alert-{aid}" data-alert-id="{aid}" data-section="{alert.section}" '
        f'data-seq="{alert.seq}">'
        f'<td><span class="badge {escape(alert.state)}">{escape(alert.state)}</span>{silence}</td>'
        f'<td><span class="badge {escape(alert.severity)}">{escape(alert.severity)}</span></td>'
        f'<td><a href="{escape(stream_url(alert.stream, alert.start))}">'
        f"{escape(alert.stream)}</a></td>"
        f"<td>{when(alert.since)}</td><td>{when(alert.end)}</td>"
        f'<td class="num">{alert.peak:.1f}<br><span class="muted small">now '
        f"{alert.score:.1f}</span></td>"
        f'<td class="explain-cell">{explain_inline(alert.explain)}</td>'
        f'<td class="label-cell">{verdict} {buttons}</td>'
        f'<td class="muted small model-cell">{escape(alert.model)}<br>{aid[:12]}</td></tr>'
    )


def alerts_body(state: DashboardState, resolved_limit: int = 200) -> str:
    """The alerts page: open, suppressed and resolved alerts, latest change first, in one
    table (one body per section) so that the sections' columns line up."""
    heads = (
        "<thead><tr><th>State</th><th>Severity</th><th>Stream</th><th>Since</th>"
        "<th>Last window end</th><th>Peak score</th><th>Explanation</th><th>Label</th>"
        "<th>Model / id</th></tr></thead>"
    )
    parts = []
    for section in SECTIONS:
        limit = resolved_limit if section == "resolved" else None
        alerts = state.alerts_in(section, limit)
        rows = "".join(alert_row(a, state.labels.get(a.alert_id)) for a in alerts)
        parts.append(
            f'<tbody class="section-head" id="section-{section}"><tr><th colspan="9"><h2>'
            f'{SECTION_TITLES[section]} <span class="count" data-count="{section}">'
            f"{len(alerts)}</span></h2></th></tr></tbody>"
            f'<tbody data-section="{section}">{rows}</tbody>'
        )
    return (
        '<p id="label-error" class="error" hidden></p>'
        f'<table class="grid alerts-table">{heads}{"".join(parts)}</table>'
    )


def stream_body(name: str, panel: str) -> str:
    """The stream page: its name and the live panel."""
    return (
        f'<h1 class="stream-name">{escape(name)}</h1>'
        f'<div id="panel" data-stream="{escape(name)}">{panel}</div>'
    )


def _current(detail: StreamDetail, selected: float | None) -> tuple[float | None, list[dict]]:
    """The window whose explanation the panel shows: the selected one, else the stream's
    latest anomalous window, else its active alert's."""
    series = detail.series
    if selected is not None:
        hits = np.flatnonzero(series.starts == selected)
        if hits.size:
            return selected, series.explain[int(hits[0])]
    for i in range(series.starts.size - 1, -1, -1):
        if series.anomalous[i] and series.explain[i]:
            return float(series.starts[i]), series.explain[i]
    active = [a for a in detail.alerts if a.state in ACTIVE_STATES]
    if active:
        return active[-1].start, active[-1].explain
    return None, []


def _feature_figure(detail: StreamDetail, j: int, spans: list[charts.Span]) -> str:
    series = detail.series
    name = series.features[j]
    chart = charts.feature_chart(
        name, series.starts, series.width, series.values[:, j], series.expected[:, j], spans
    )
    return f'<figure class="feature"><figcaption>{escape(name)}</figcaption>{chart}</figure>'


def stream_panel(
    detail: StreamDetail, threshold: float, selected: float | None, labels: dict[str, Label]
) -> str:
    """The live part of the stream page: score, features, explanation, alerts."""
    series = detail.series
    spans = [
        charts.Span(a.since, a.end, "open" if a.state in ("open", "update") else a.state)
        for a in detail.alerts
    ]
    link = lambda t: stream_url(detail.name, t)  # noqa: E731 - a one-line URL maker
    last_end = float(series.starts[-1]) + series.width if series.starts.size else None
    score = "–" if detail.score is None else f"{detail.score:.1f}"
    head = (
        f'<p class="facts"><span class="badge {detail.state}">{detail.state}</span> '
        f"score <b>{score}</b> (threshold {threshold:g}) · last window ends {when(last_end)}"
        f" · model {escape(detail.model or '–')} · {series.starts.size} windows kept</p>"
    )
    score_svg = charts.score_chart(
        series.starts, series.width, series.scores, series.anomalous, threshold,
        spans, link, selected,
    )  # fmt: skip
    at, explain = _current(detail, selected)
    which = "selected" if selected is not None and at == selected else "latest"
    explain_head = (
        f"<h2>Explanation of the {which} anomaly: window {when(at)}</h2>"
        if at is not None
        else "<h2>Explanation</h2>"
    )
    shares = {str(item.get("feature")): float(item.get("share", 0.0)) for item in explain}
    order = sorted(
        range(len(series.features)), key=lambda j: (-shares.get(series.features[j], 0.0), j)
    )
    features = "".join(_feature_figure(detail, j, spans) for j in order)
    alert_rows = "".join(alert_row(a, labels.get(a.alert_id)) for a in reversed(detail.alerts))
    alerts = (
        f'<table class="grid alerts-table"><tbody>{alert_rows}</tbody></table>'
        if alert_rows
        else '<p class="muted">no alerts kept for this stream</p>'
    )
    return (
        f"{head}<h2>Score against threshold</h2>"
        '<p class="legend"><span class="key score"></span>score '
        '<span class="key threshold"></span>threshold <span class="key anom"></span>anomalous '
        'window (click to explain) <span class="key span-open"></span>alert</p>'
        f"{score_svg}{explain_head}{explain_table(explain)}"
        "<h2>Features</h2>"
        '<p class="legend"><span class="key observed"></span>observed '
        '<span class="key expected"></span>expected (the model reports it for anomalous '
        "windows)</p>"
        f'<div class="features">{features or "<p class=muted>no windows yet</p>"}</div>'
        f"<h2>Alerts of this stream</h2>{alerts}"
    )
