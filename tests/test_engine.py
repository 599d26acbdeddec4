"""Engine seams: the DuckDB shortcuts and their portable fallbacks give the same answers."""

from __future__ import annotations

import ibis
import pandas as pd

from workbench.engine import cache_with_row_ids


def _users() -> ibis.Table:
    con = ibis.duckdb.connect()
    frame = pd.DataFrame({"user_id": [f"u{i}" for i in range(50)], "v": range(50)})
    return con.create_table("users", frame, temp=True).filter(ibis._.v % 3 != 0)


def _check_numbering(cached: ibis.Table, numbered: ibis.Table) -> None:
    first = numbered.order_by("user_id").execute()
    again = numbered.order_by("user_id").execute()
    assert first["row_id"].is_unique and len(first) == 33
    pd.testing.assert_frame_equal(first, again)  # fixed for the life of the cache
    # a join on the numbers finds each user once
    pairs = numbered.join(numbered.select("row_id", other="user_id"), "row_id").execute()
    assert (pairs["user_id"] == pairs["other"]).all() and len(pairs) == 33
    cached.release()


def test_row_ids_on_duckdb_are_the_cached_tables_own_rowid() -> None:
    cached, numbered = cache_with_row_ids(_users())
    assert "rowid" in ibis.to_sql(numbered)
    _check_numbering(cached, numbered)


def test_row_ids_elsewhere_are_a_row_number_computed_before_caching(monkeypatch) -> None:
    import workbench.engine as engine

    monkeypatch.setattr(engine, "_duckdb_backend", lambda table: None)
    cached, numbered = cache_with_row_ids(_users())
    assert cached is numbered and "rowid" not in ibis.to_sql(numbered)
    _check_numbering(cached, numbered)
