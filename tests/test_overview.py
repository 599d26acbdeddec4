"""The data overview against a pandas reference computed from the raw rows."""

from __future__ import annotations

import ibis
import pandas as pd
import pytest

from tests.conftest import tiny_tables
from workbench.contracts import conform
from workbench.overview import data_overview
from workbench.parameters import validate_parameters


def run_overview(frames: dict[str, pd.DataFrame], **overrides):
    raw = {"title": "t", "sources": dict(frames), **overrides}
    params = validate_parameters("data_overview", raw, root=".")
    tables = {name: conform(ibis.memtable(frame), name)[0] for name, frame in frames.items()}
    return data_overview(tables, params)


def test_weekly_activity_and_top_events_match_pandas():
    frames = tiny_tables()
    result = run_overview(frames)
    events = frames["events"]
    week = events.timestamp.dt.tz_localize(None).dt.to_period("W-SUN").dt.start_time
    expected = events.groupby(week).user_id.nunique()
    weekly = result.tables["weekly_activity"].set_index("week")
    assert weekly["active_users"].to_dict() == {k: v for k, v in expected.items()}
    top = result.tables["top_events"].set_index("event")
    assert top["events"].to_dict() == events.event.value_counts().to_dict()
    assert top["users"].to_dict() == events.groupby("event").user_id.nunique().to_dict()
    assert top["share_of_events"].sum() == pytest.approx(1.0)
    numbers = {k.name: k.value for k in result.key_numbers}
    assert numbers["Users"] == 60 and numbers["Events"] == len(events)
    assert result.data_window["start"] == events.timestamp.min().date().isoformat()


def test_weeks_follow_the_analysis_timezone():
    frames = tiny_tables()
    # Sunday 23:30 UTC is already Monday in Tokyo: the event moves to the next week.
    frames["events"] = (
        frames["events"].head(1).assign(timestamp=pd.Timestamp("2026-03-08 23:30", tz="UTC"))
    )
    utc = run_overview(frames).tables["weekly_activity"]
    tokyo = run_overview(frames, timezone="Asia/Tokyo").tables["weekly_activity"]
    active = lambda w: w[w.active_users > 0].week.dt.date.astype(str).tolist()  # noqa: E731
    assert active(utc) == ["2026-03-02"] and active(tokyo) == ["2026-03-09"]


def test_checks_find_planted_problems():
    frames = tiny_tables()
    events = frames["events"]
    first = frames["users"].iloc[0]
    planted = pd.DataFrame(
        {
            "user_id": [first.user_id, "ghost", first.user_id],
            "event": ["session_start"] * 3,
            "timestamp": [first.signup_at - pd.Timedelta(hours=2)] + [first.signup_at] * 2,
        }
    )
    frames["events"] = pd.concat([events, planted, planted.tail(1)], ignore_index=True)
    checks = {c.name: c for c in run_overview(frames).checks}
    assert checks["events before signup"].status == "warn"
    assert checks["events before signup"].detail.startswith("1 events")
    assert checks["events from unknown users"].detail.startswith("1 users")
    all_events = frames["events"]
    repeats = len(all_events) - len(all_events.drop_duplicates(["user_id", "event", "timestamp"]))
    assert repeats >= 1
    assert checks["duplicate events"].detail.startswith(f"{repeats} events")
    assert checks["empty feedback"].status == "pass"
    assert checks["small sample"].status == "warn"


def test_window_limits_events_and_is_reported():
    frames = tiny_tables()
    result = run_overview(frames, window={"start": "2026-03-16", "end": "2026-03-29"})
    inside = frames["events"].timestamp.dt.date.between(
        pd.Timestamp("2026-03-16").date(), pd.Timestamp("2026-03-29").date()
    )
    assert {k.name: k.value for k in result.key_numbers}["Events"] == int(inside.sum())
    check = next(c for c in result.checks if c.name == "events outside the window")
    assert f"{int((~inside).sum()):,} of {len(inside):,}" in check.detail
    assert result.data_window == {"start": "2026-03-16", "end": "2026-03-29"}


def test_recent_feedback_skips_empty_and_keeps_text_raw_for_escaping():
    frames = tiny_tables()
    frames["feedback"].loc[9, "created_at"] = pd.Timestamp("2027-01-01", tz="UTC")
    frames["feedback"].loc[8, "text"] = "   "
    recent = run_overview(frames).tables["recent_feedback"]
    assert recent.iloc[0].text.startswith('<script>alert("x")</script>')
    assert "   " not in recent.text.tolist() and len(recent) == 5
