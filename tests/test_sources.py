"""Sources: every declared kind opens as an Ibis table on DuckDB, with mapping and provenance."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from tests.conftest import tiny_tables
from workbench.errors import SourceError
from workbench.parameters import SourceSpec
from workbench.sources import apply_columns, connect_duckdb, fingerprint, open_source


@pytest.fixture
def events() -> pd.DataFrame:
    return tiny_tables()["events"]


def rows(table) -> int:
    return int(table.count().execute())


def test_parquet_csv_and_glob(tmp_path, events):
    events.to_parquet(tmp_path / "e.parquet")
    events.iloc[:100].to_csv(tmp_path / "part1.csv", index=False)
    events.iloc[100:].to_csv(tmp_path / "part2.csv", index=False)
    con = connect_duckdb()
    pq = open_source(
        "events",
        SourceSpec.model_validate("e.parquet", context={"root": tmp_path}),
        root=tmp_path,
        con=con,
    )
    assert rows(pq) == len(events)
    spec = SourceSpec.model_validate("part*.csv", context={"root": tmp_path})
    assert spec.format == "csv"
    both = open_source("events", spec, root=tmp_path, con=con)
    assert rows(both) == len(events)


def test_duckdb_file_table_query_and_url(tmp_path, events):
    db = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(db)) as raw:
        raw.register("frame", events)
        raw.execute("CREATE TABLE events AS SELECT * FROM frame")
    con = connect_duckdb()
    root = tmp_path
    table = open_source(
        "events", SourceSpec(duckdb="warehouse.duckdb", table="events"), root=root, con=con
    )
    assert rows(table) == len(events)
    query = open_source(
        "events",
        SourceSpec(duckdb=str(db), query="SELECT * FROM events WHERE event = 'export_csv'"),
        root=root,
        con=con,
    )
    assert rows(query) == int((events.event == "export_csv").sum())
    via_url = open_source(
        "events",
        SourceSpec(url=f"duckdb://{db}?read_only=true", table="events"),
        root=root,
        con=con,
    )
    assert rows(via_url) == len(events)


def test_frame_from_a_notebook(events):
    spec = SourceSpec.model_validate(events)
    assert spec.kind == "frame"
    table = open_source("events", spec, root=".", con=connect_duckdb())
    assert rows(table) == len(events)
    assert fingerprint("events", spec, table, root=".") == fingerprint(
        "events", spec, table, root="."
    )


def test_columns_mapping_renames_theirs_to_ours(tmp_path, events):
    theirs = events.rename(columns={"user_id": "uid", "timestamp": "ts"})
    table = open_source("events", SourceSpec(frame=theirs), root=tmp_path, con=connect_duckdb())
    mapped = apply_columns(table, {"user_id": "uid", "timestamp": "ts"}, name="events")
    assert {"user_id", "timestamp", "event"} <= set(mapped.columns)
    with pytest.raises(SourceError, match="user_id ← 'userid'"):
        apply_columns(table, {"user_id": "userid"}, name="events")


def test_unreadable_file_is_a_source_error(tmp_path):
    (tmp_path / "bad.parquet").write_text("this is not parquet")
    spec = SourceSpec.model_validate("bad.parquet", context={"root": tmp_path})
    with pytest.raises(SourceError, match="source 'events' \\(bad.parquet\\): cannot be opened"):
        open_source("events", spec, root=tmp_path, con=connect_duckdb()).count().execute()


def test_fingerprint_follows_content(tmp_path, events):
    path = tmp_path / "e.parquet"
    events.to_parquet(path)
    spec = SourceSpec(path="e.parquet", format="parquet")
    first = fingerprint("events", spec, None, root=tmp_path)
    assert first == fingerprint("events", spec, None, root=tmp_path)
    events.iloc[:-1].to_parquet(path)
    assert fingerprint("events", spec, None, root=tmp_path) != first


def test_connections_spill_apart(monkeypatch) -> None:
    """Two capped databases spill at once; closing one leaves the other's spilled data intact
    (with one shared spill folder the first to close deleted it, and the other failed)."""
    monkeypatch.setenv("WORKBENCH_DUCKDB_MEMORY_LIMIT", "60MB")
    first, second = connect_duckdb(), connect_duckdb()
    spills = (
        "SELECT count(*), sum(s) FROM "
        "(SELECT i % 3000000 AS k, sum(i) AS s FROM range(9000000) r(i) GROUP BY k)"
    )
    expected = [(3_000_000, sum(range(9_000_000)))]
    folders = []
    for con in (first, second):
        con.raw_sql("SET threads = 1")
        assert con.raw_sql(spills).fetchall() == expected
        folders.append(Path(con.raw_sql("SELECT current_setting('temp_directory')").fetchone()[0]))
    assert folders[0] != folders[1]
    first.disconnect()
    assert second.raw_sql(spills).fetchall() == expected
    second.disconnect()
    assert not any(folder.exists() for folder in folders)  # DuckDB removes what it created


def test_duckdb_memory_is_capped_and_configurable(monkeypatch) -> None:
    def setting(con, name: str) -> str:
        return con.raw_sql(f"SELECT current_setting('{name}')").fetchone()[0]

    monkeypatch.delenv("WORKBENCH_DUCKDB_MEMORY_LIMIT", raising=False)
    con = connect_duckdb()
    assert setting(con, "memory_limit") == "1.1 GiB"  # 1.2 GB, as DuckDB reports it
    assert Path(setting(con, "temp_directory")).name.startswith("workbench-duckdb-")
    monkeypatch.setenv("WORKBENCH_DUCKDB_MEMORY_LIMIT", "3GB")
    assert setting(connect_duckdb(), "memory_limit").startswith("2.7")  # DuckDB reports GiB
    monkeypatch.setenv("WORKBENCH_DUCKDB_MEMORY_LIMIT", "3GB'; DROP TABLE x; --")
    with pytest.raises(SourceError, match="not a memory size"):
        connect_duckdb()
