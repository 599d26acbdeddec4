"""Table contracts: one clear message per violation, standard types after conforming."""

from __future__ import annotations

import ibis
import pandas as pd
import pytest

from tests.conftest import tiny_tables
from workbench.contracts import conform, conform_counted
from workbench.errors import DataContractError


def violation(frame: pd.DataFrame, table: str) -> DataContractError:
    with pytest.raises(DataContractError) as info:
        conform(ibis.memtable(frame), table)
    return info.value


def test_valid_tables_conform_to_standard_types():
    for name, frame in tiny_tables().items():
        table, notes = conform(ibis.memtable(frame), name)
        assert notes == []
        assert int(table.count().execute()) == len(frame)
    users, _ = conform(ibis.memtable(tiny_tables()["users"]), "users")
    assert users.schema()["signup_at"].timezone == "UTC"
    assert users.schema()["user_id"].is_string()


def test_missing_column_names_table_column_and_mapping():
    err = violation(tiny_tables()["events"].drop(columns="event"), "events")
    assert (err.table, err.column) == ("events", "event")
    assert "required column(s) ['event'] missing" in str(err)
    assert "columns:" in str(err)


def test_unparseable_timestamps_count_and_example():
    events = tiny_tables()["events"].head(5).copy()
    events["timestamp"] = ["2026-03-01 10:00", "yesterday", "2026-03-02", "soon", None]
    err = violation(events, "events")
    assert err.column == "timestamp" and err.rows == 2 and err.example in {"yesterday", "soon"}
    assert str(err).startswith("table 'events', column 'timestamp': unparseable timestamps (2 rows")


def test_text_timestamps_with_offsets_are_parsed_to_utc():
    events = tiny_tables()["events"].head(2).copy()
    events["timestamp"] = ["2026-03-01T10:00:00+02:00", "2026-03-01 23:30:00"]
    table, _ = conform(ibis.memtable(events), "events")
    got = table.order_by("timestamp").timestamp.execute().tolist()
    assert [t.isoformat() for t in got] == [
        "2026-03-01T08:00:00+00:00",
        "2026-03-01T23:30:00+00:00",
    ]


def test_naive_timestamps_are_read_as_utc_with_a_note():
    events = tiny_tables()["events"].head(3).copy()
    events["timestamp"] = events["timestamp"].dt.tz_localize(None)
    table, notes = conform(ibis.memtable(events), "events")
    assert [n.status for n in notes] == ["warn"] and "read as UTC" in notes[0].detail
    assert table.schema()["timestamp"].timezone == "UTC"


def test_duplicate_ids_empty_tables_and_wrong_types():
    users = tiny_tables()["users"]
    dupes = pd.concat([users, users.head(3)])
    err = violation(dupes, "users")
    assert err.column == "user_id" and err.rows == 3 and err.example in set(users.user_id[:3])
    assert "empty" in str(violation(users.head(0), "users"))
    floats = users.assign(user_id=1.5)
    assert "ids must be text or whole numbers" in str(violation(floats, "users"))
    numbers = tiny_tables()["events"].assign(timestamp=42)
    assert "expected a timestamp" in str(violation(numbers, "events"))


def test_mixed_id_types_become_text():
    users = tiny_tables()["users"].assign(user_id=range(60))
    table, _ = conform(ibis.memtable(users), "users")
    assert table.user_id.execute().iloc[0] == "0"


def test_scores_must_be_numbers_between_0_and_10():
    feedback = tiny_tables()["feedback"].assign(score=[9, 10, 0, 7, 3, 5, 6, 8, 11, 2])
    err = violation(feedback, "feedback")
    assert err.column == "score" and err.rows == 1 and err.example == 11
    text_scores = tiny_tables()["feedback"].assign(score=["9"] * 9 + ["great"])
    err = violation(text_scores, "feedback")
    assert "not numbers" in str(err) and err.example == "great"


def test_missing_required_values_are_dropped_and_noted():
    events = tiny_tables()["events"].head(10).copy()
    events.loc[[1, 2], "user_id"] = None
    table, notes = conform(ibis.memtable(events), "events")
    assert int(table.count().execute()) == 8
    assert notes[0].name == "events: missing user_id" and "2 of 10 rows" in notes[0].detail


def test_counted_conform_counts_the_rows_it_keeps() -> None:
    events = tiny_tables()["events"].copy()
    events.loc[events.index[:3], "event"] = None
    events.loc[events.index[2:5], "user_id"] = None
    table, notes, rows = conform_counted(ibis.memtable(events), "events")
    assert rows == int(table.count().execute()) == len(events) - 5
    assert conform_counted(ibis.memtable(events), "unknown")[2] is None


def _parquet_events(tmp_path, events: pd.DataFrame, name: str = "events.parquet"):
    """Write `events` (split over two row groups) and open it as the workbench does."""
    from workbench.parameters import SourceSpec

    path = tmp_path / name
    events.to_parquet(path, row_group_size=max(len(events) // 2, 1))
    spec = SourceSpec(path=name, format="parquet")
    return ibis.read_parquet(path), spec


def test_parquet_footer_counts_replace_the_scan_only_when_they_answer_every_check(tmp_path):
    from workbench.sources import parquet_counts

    events = tiny_tables()["events"].copy()
    table, spec = _parquet_events(tmp_path, events)
    known = parquet_counts(spec, tmp_path)
    assert known.rows == len(events)
    assert known.nulls == {"user_id": 0, "event": 0, "timestamp": 0}
    fast, notes, rows = conform_counted(table, "events", known)
    assert rows == len(events) and notes == []
    # the same table and count as the scanning path
    scanned, _, scanned_rows = conform_counted(table, "events")
    assert scanned_rows == rows
    pd.testing.assert_frame_equal(
        fast.order_by(list(fast.columns)).execute(),
        scanned.order_by(list(scanned.columns)).execute(),
    )

    # missing values: the footer shows them, so the scan runs, drops and notes them
    holes = events.copy()
    holes.loc[holes.index[:4], "user_id"] = None
    table, spec = _parquet_events(tmp_path, holes, "holes.parquet")
    known = parquet_counts(spec, tmp_path)
    assert known.nulls["user_id"] == 4
    kept, notes, rows = conform_counted(table, "events", known)
    assert rows == int(kept.count().execute()) == len(events) - 4
    assert notes[0].name == "events: missing user_id" and "4 of" in notes[0].detail


def test_parquet_footer_counts_follow_the_column_mapping_and_skip_other_sources(tmp_path):
    from workbench.parameters import SourceSpec
    from workbench.sources import parquet_counts

    events = tiny_tables()["events"].rename(columns={"user_id": "uid"})
    _, spec = _parquet_events(tmp_path, events)
    known = parquet_counts(spec, tmp_path, {"user_id": "uid"})
    assert known.nulls["user_id"] == 0 and "uid" not in known.nulls
    csv = tmp_path / "events.csv"
    events.to_csv(csv, index=False)
    assert parquet_counts(SourceSpec(path="events.csv", format="csv"), tmp_path) is None
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    assert parquet_counts(SourceSpec(path="broken.parquet", format="parquet"), tmp_path) is None
