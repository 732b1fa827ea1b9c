"""HTML of pages and fragments: escaping, label buttons, explanations, the stream panel."""

from __future__ import annotations

from html.parser import HTMLParser

from gridalarm.stream.dashboard import pages
from gridalarm.stream.dashboard.state import DashboardState, Label
from gridalarm.timeutil import format_time

W = 60.0
T0 = 1_767_571_200.0
AID = "ab" * 12
EVIL = 'schedd:<script>alert("x")</script>&"'


def alert_message(state: str = "open", stream: str = "s1", i: int = 1) -> dict:
    return {
        "v": 1, "alert_id": AID, "state": state, "stream": stream,
        "since": format_time(T0), "start": format_time(T0 + i * W),
        "end": format_time(T0 + (i + 1) * W), "score": 88.0, "severity": "critical",
        "explain": [{"feature": "JobHeldEvent", "observed": 480, "expected": 12, "share": 0.72}],
        "model": "lstm-forecast@1",
    }  # fmt: skip


def score_message(stream: str, i: int, value: float, explain: list | None = None) -> dict:
    return {
        "v": 1, "stream": stream, "start": format_time(T0 + i * W),
        "end": format_time(T0 + (i + 1) * W), "score": value, "anomalous": value >= 50,
        "model": "m@1", "explain": explain or [],
    }  # fmt: skip


class Tags(HTMLParser):
    """Collects start tags (name, attrs) to check the markup's structure."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append((tag, dict(attrs)))


def tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Tags()
    parser.feed(html)
    return parser.tags


def test_a_stream_name_with_markup_stays_text_everywhere() -> None:
    state = DashboardState()
    state.apply_alert(alert_message(stream=EVIL), 1.0)
    state.apply_score(score_message(EVIL, 1, 90.0))
    row = pages.alert_row(state.alerts[AID], None)
    detail = state.stream_detail(EVIL)
    assert detail is not None
    panel = pages.stream_panel(detail, 50.0, None, {})
    body = pages.stream_body(EVIL, panel)
    for html in (row, panel, body, pages.page(EVIL, "overview", "", "x.js", EVIL)):
        assert "<script>alert" not in html
        assert not any(tag == "script" and "src" not in attrs for tag, attrs in tags(html))
    assert "schedd:&lt;script&gt;" in row
    assert pages.stream_url(EVIL).startswith("/stream?name=schedd%3A%3Cscript%3E")


def test_alert_rows_carry_id_section_seq_and_both_buttons() -> None:
    state = DashboardState()
    state.apply_alert(alert_message(), 1.0)
    alert = state.alerts[AID]
    found = tags(pages.alert_row(alert, None))
    row = found[0][1]
    assert row["data-alert-id"] == AID and row["data-section"] == "open"
    assert row["data-seq"] == str(alert.seq)
    buttons = [attrs for tag, attrs in found if tag == "button"]
    assert [b["data-label"] for b in buttons] == ["confirmed", "false-positive"]
    assert not any("disabled" in b for b in buttons)


def test_a_labelled_alert_shows_its_verdict_and_disables_that_button() -> None:
    state = DashboardState()
    state.apply_alert(alert_message(), 1.0)
    html = pages.alert_row(state.alerts[AID], Label("false-positive", "dashboard", "t"))
    assert "false positive</span>" in html
    buttons = {a["data-label"]: "disabled" in a for t, a in tags(html) if t == "button"}
    assert buttons == {"confirmed": False, "false-positive": True}


def test_the_alerts_page_has_a_body_per_section_with_counts() -> None:
    state = DashboardState()
    state.apply_alert(alert_message("resolved", i=4), 1.0)
    html = pages.alerts_body(state)
    bodies = [a["data-section"] for t, a in tags(html) if t == "tbody" and "data-section" in a]
    assert bodies == ["open", "suppressed", "resolved"]
    assert 'data-count="resolved">1<' in html and 'data-count="open">0<' in html


def test_explanations() -> None:
    table = pages.explain_table(alert_message()["explain"])
    assert "JobHeldEvent" in table and "480" in table and "12" in table and "72%" in table
    assert "not anomalous" in pages.explain_table([])
    assert "(expected 12, 72%)" in pages.explain_inline(alert_message()["explain"])


def test_the_stream_panel_explains_the_selected_window_else_the_latest_anomaly() -> None:
    state = DashboardState()
    first = [{"feature": "JobHeldEvent", "observed": 40, "expected": 2, "share": 0.9}]
    second = [{"feature": "ExecuteEvent", "observed": 0, "expected": 30, "share": 0.8}]
    state.apply_score(score_message("s1", 1, 70.0, first))
    state.apply_score(score_message("s1", 2, 80.0, second))
    state.apply_score(score_message("s1", 3, 10.0))
    detail = state.stream_detail("s1")
    assert detail is not None
    latest = pages.stream_panel(detail, 50.0, None, {})
    assert "latest anomaly: window 2026-01-05 00:02Z" in latest
    chosen = pages.stream_panel(detail, 50.0, T0 + W, {})
    assert "selected anomaly: window 2026-01-05 00:01Z" in chosen
    assert chosen.index("JobHeldEvent") < chosen.index("<h2>Features")


def test_status_text() -> None:
    state = DashboardState()
    state.set_progress(0.42, live=False)
    assert pages.status_text(state) == "back-filling 42% · 0 streams · 0 open alerts"
    state.skipped = 3
    state.set_progress(1.0, live=True)
    assert pages.status_text(state).startswith("live · 0 streams")
    assert "3 unreadable messages skipped" in pages.status_text(state)


def test_pages_load_only_their_own_assets() -> None:
    html = pages.page("Overview", "overview", pages.overview_body(50.0), "overview.js", "live")
    for tag, attrs in tags(html):
        for key in ("src", "href"):
            value = attrs.get(key) or ""
            assert not value.startswith(("http:", "https:", "//")), (tag, value)
