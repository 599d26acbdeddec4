"""Readout sections render to HTML with every data-derived string escaped; summary.json shape."""

from __future__ import annotations

import jsonschema
import pandas as pd

from workbench.readout import (
    Appendix,
    Checks,
    KeyNumbers,
    Readout,
    Summary,
    Table,
    TitleBlock,
    format_value,
    summary_schema,
)
from workbench.results import AnalysisResult, Check, KeyNumber
from workbench.sources import InputInfo

HOSTILE = '<script>alert("x")</script>'


def test_format_value_reads_like_a_pm_would():
    assert format_value(0.4123, "share") == "41.2%"
    assert format_value(0.061, "points") == "+6.1 pts"
    assert format_value(12345, "users") == "12,345 users"
    assert format_value(4.4, "events") == "4.40 events"
    assert format_value(None) == "–"
    assert format_value(float("nan"), "share") == "–"


def test_title_block_escapes_and_shows_status():
    html = TitleBlock(
        HOSTILE,
        "data_overview",
        "warning",
        "2026-11-22T00:00:00+00:00",
        owner=HOSTILE,
        question=HOSTILE,
        data_window={"start": "2026-03-01", "end": None},
    ).to_html()
    assert "<script>" not in html.split("</style>", 1)[1]
    assert html.count("&lt;script&gt;") == 3
    assert 'wb-badge wb-warning">warning<' in html
    assert "2026-03-01 – end of data" in html
    assert TitleBlock("t", "x", "ok", "now", with_style=False).to_html().startswith("<header")


def test_summary_key_numbers_and_checks_escape_text():
    assert "&lt;script&gt;" in Summary(HOSTILE, [HOSTILE]).to_html()
    cards = KeyNumbers([KeyNumber(HOSTILE, 0.41, "share", 0.39, 0.43)]).to_html()
    assert "&lt;script&gt;" in cards and "41.0%" in cards and "95% CI 39.0% – 43.0%" in cards
    checks = Checks([Check("a", "pass", "fine"), Check(HOSTILE, "fail", HOSTILE)]).to_html()
    assert "<script>" not in checks
    assert checks.index("wb-check-fail") < checks.index("wb-check-pass")  # failures first


def test_table_escapes_cells_and_formats_numbers():
    frame = pd.DataFrame({"event": [HOSTILE, "b"], "share": [0.5, 0.25], "n": [1200, 3]})
    html = Table(frame, caption=HOSTILE, units={"share": "share"}).to_html()
    assert "<script>" not in html and "50.0%" in html and "1,200" in html
    more = Table(pd.DataFrame({"x": range(60)}), max_rows=10).to_html()
    assert "First 10 of 60 rows" in more


def test_appendix_shows_masked_parameters_and_inputs():
    html = Appendix(
        {"url": "postgresql://me:***@db/x", "title": HOSTILE},
        {
            "workbench_version": "0.1.0",
            "git_commit": "abc",
            "engine": "duckdb",
            "duration_s": 1.234,
            "inputs": [
                {"name": "events", "uri": "e.parquet", "rows": 1234, "fingerprint": "sha256:00"}
            ],
        },
    ).to_html()
    assert "me:***@db" in html and "<script>" not in html and "1,234" in html and "1.2 s" in html


def test_summary_json_matches_schema_and_status_follows_checks():
    result = AnalysisResult(
        headline="h",
        bullets=["b"],
        key_numbers=[KeyNumber("Users", 10, "users")],
        checks=[Check("c", "pass", "d")],
        tables={"t": pd.DataFrame({"when": pd.to_datetime(["2026-03-01"]), "x": [float("nan")]})},
        data_window={"start": "2026-03-01", "end": "2026-03-31"},
    )
    readout = Readout(
        "data_overview",
        "sample",
        "Title",
        result,
        {"title": "Title"},
        [InputInfo("events", "e.parquet", 5, "sha256:1")],
        started_at=1.0,
    )
    data = readout.summary_json(duration_s=2.5)
    jsonschema.validate(data, summary_schema())
    assert data["status"] == "ok"
    assert data["results"]["t"] == [{"when": "2026-03-01T00:00:00", "x": None}]
    assert data["provenance"]["duration_s"] == 2.5
    readout.extra_checks = [Check("naive timestamps", "warn", "read as UTC")]
    assert readout.summary_json()["status"] == "warning"
    assert readout.summary_json()["checks"][0]["name"] == "naive timestamps"
