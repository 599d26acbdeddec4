"""Engine seams: the few operations whose SQL differs between backends, with portable fallbacks."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import ibis
import ibis.expr.datatypes as idt


@ibis.udf.scalar.builtin(name="timezone")
def _timezone(zone: str, ts: idt.Timestamp(timezone="UTC")) -> idt.Timestamp(timezone=None):
    """DuckDB's and PostgreSQL's timezone(zone, timestamptz): local wall-clock time."""


def local_time(ts: ibis.Value, zone: str) -> ibis.Value:
    """Wall-clock time in `zone` of a UTC timestamp (UTC needs no conversion on any backend)."""
    return ts.cast(idt.Timestamp(timezone=None)) if zone == "UTC" else _timezone(zone, ts)


@ibis.udf.scalar.builtin(name="epoch_us")
def _epoch_us(ts: idt.Timestamp(timezone="UTC")) -> idt.int64:
    """DuckDB's epoch_us(timestamptz): microseconds since 1970-01-01 UTC."""


@ibis.udf.agg.builtin(name="arg_min")
def _arg_min_string(arg: idt.string, key: idt.Timestamp(timezone="UTC")) -> idt.string:
    """DuckDB's arg_min(arg, key): the value of `arg` on the row with the smallest `key`."""


@ibis.udf.agg.builtin(name="arg_min")
def _arg_min_int16(arg: idt.int16, key: idt.Timestamp(timezone="UTC")) -> idt.int16:
    """DuckDB's arg_min(arg, key) for small integer codes."""


def epoch_microseconds(ts: ibis.Value) -> ibis.Value:
    """Microseconds since the epoch of a UTC timestamp, as an integer.

    Offsets between events and exposures are differences of these: on DuckDB this is several
    times faster than a timestamp difference (`date_diff`) over tens of millions of rows.
    """
    if ts.type().is_timestamp() and ts.type().timezone is None:
        ts = ts.cast(idt.Timestamp(timezone="UTC"))  # naive times are UTC in the workbench
    return _epoch_us(ts)


def first_string(value: ibis.Value, by: ibis.Value) -> ibis.Value:
    """The string `value` on the row with the smallest `by` in each group (ties: any one).

    DuckDB's arg_min, about twice as fast as the ordered FIRST that Ibis's argmin compiles to.
    """
    return _arg_min_string(value, by)


def _duckdb_backend(table: ibis.Table) -> object | None:
    """The DuckDB backend `table` runs on, or None on any other engine."""
    backend = table._find_backend(use_default=True)
    return backend if getattr(backend, "name", None) == "duckdb" else None


_SIZE = re.compile(r"([\d.]+)\s*(bytes|B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)")
_UNITS = {"bytes": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
_UNITS |= {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


def duckdb_memory(table: ibis.Table) -> tuple[int, int] | None:
    """(memory limit in bytes, threads) of the DuckDB database `table` runs on; None on any
    other engine or when the limit cannot be read."""
    backend = _duckdb_backend(table)
    if backend is None:
        return None
    limit, threads = backend.raw_sql(
        "SELECT current_setting('memory_limit'), current_setting('threads')"
    ).fetchone()
    size = _SIZE.fullmatch(str(limit).strip())
    if size is None:
        return None
    return int(float(size.group(1)) * _UNITS[size.group(2)]), int(threads)


@contextmanager
def joins_as_written(table: ibis.Table) -> Iterator[None]:
    """Run the block with DuckDB's join reordering off: a hash join builds on its right input.

    DuckDB picks the build side from cardinality estimates, and a filtered Parquet scan (the
    contract's not-null checks, an event-name filter) is estimated far below its real size:
    at 10M exposed users it built the hash table on ~59M events instead of the users, twice
    as slow and four times the memory. Queries run inside this block put the smaller,
    exactly known side on the right. Other backends are left alone.
    """
    backend = _duckdb_backend(table)
    if backend is None:
        yield
        return
    previous = backend.raw_sql("SELECT current_setting('disabled_optimizers')").fetchone()[0]
    backend.raw_sql("SET disabled_optimizers = 'join_order,build_side_probe_side'")
    try:
        yield
    finally:
        backend.raw_sql(f"SET disabled_optimizers = '{previous}'")


def cache_with_row_ids(table: ibis.Table) -> tuple[ibis.Table, ibis.Table]:
    """Materialise `table` (Ibis `cache`) and number its rows: (cached, numbered).

    `numbered` is the cached table with a `row_id` column, unique and fixed for the life of the
    cache: an integer key that is cheaper to group and join on than a string user id. On
    DuckDB it is the table's own `rowid` (no extra work); elsewhere a row number computed once,
    before caching, so that every query sees the same numbers. `cached.release()` drops it.
    """
    backend = _duckdb_backend(table)
    if backend is None:
        cached = table.mutate(row_id=ibis.row_number()).cache()
        return cached, cached
    cached = table.cache()
    name = cached.op().name
    numbered = backend.sql(f'SELECT rowid AS row_id, * FROM "{name}"')
    return cached, numbered


def first_code(value: ibis.Value, by: ibis.Value) -> ibis.Value:
    """`first_string` for a small integer code (int16): the value on the row with the smallest
    `by` in each group."""
    return _arg_min_int16(value.cast("int16"), by)
