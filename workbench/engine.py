"""Engine seams: the few operations whose SQL differs between backends, with portable fallbacks."""

from __future__ import annotations

import ibis
import ibis.expr.datatypes as idt


@ibis.udf.scalar.builtin(name="timezone")
def _timezone(zone: str, ts: idt.Timestamp(timezone="UTC")) -> idt.Timestamp(timezone=None):
    """DuckDB's and PostgreSQL's timezone(zone, timestamptz): local wall-clock time."""


def local_time(ts: ibis.Value, zone: str) -> ibis.Value:
    """Wall-clock time in `zone` of a UTC timestamp (UTC needs no conversion on any backend)."""
    return ts.cast(idt.Timestamp(timezone=None)) if zone == "UTC" else _timezone(zone, ts)
