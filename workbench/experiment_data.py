"""Experiment data in the engine: exposures, per-user metric values, per-arm sufficient statistics.

Everything per user stays in the engine (Ibis); what reaches pandas is one small frame per call:
one row per metric × variant (× day or segment) with ``n, sum_y, sum_y2`` (+ ``sum_x, sum_x2,
sum_xy`` for a CUPED covariate, + ``sum_d, sum_d2, sum_yd`` for a ratio's denominator), ready for
`workbench.experiment_stats.compare_to_control`.

Definitions (for the readout's method section):

* Exposure: a user's first ``assigned_at`` in the experiment. Users assigned to more than one
  variant are excluded and counted. Every remaining exposed user counts in ``n``, with zeros when
  they have no events.
* Metric value per user, from events with ``exposed_at ≤ timestamp < exposed_at + window_days``
  (and before ``end``): ``conversion`` = 1 if any of the metric's events happened, else 0;
  ``mean`` = the number of those events, or the sum of a property over them; ``ratio`` = such a
  numerator and a denominator per user, the metric being Σ numerator / Σ denominator over users.
* CUPED covariate: the same per-user value over the ``covariate_days`` before exposure.
* Winsorization: per-user values (a ratio's numerator; the covariate separately) are capped at
  their ``winsorize`` percentile computed over all exposed users of all arms pooled (linear
  interpolation, DuckDB ``quantile_cont``).
* Daily view: for each day k since the experiment start (UTC), the statistics a readout would
  have shown at the end of that day: users exposed by then, with events up to then; caps are the
  final ones.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import ibis
import ibis.expr.datatypes as idt
import numpy as np
import pandas as pd
from ibis import _

from workbench.engine import (
    cache_with_row_ids,
    duckdb_memory,
    epoch_microseconds,
    first_code,
    first_string,
    joins_as_written,
)
from workbench.errors import WorkbenchError
from workbench.experiment_stats import SrmResult, srm_check

MetricType = Literal["conversion", "mean", "ratio"]
OTHER_SEGMENT = "other"
MISSING_SEGMENT = "(missing)"
_UTC = idt.Timestamp(timezone="UTC")
_DAY_S = 86_400
_SUM_COLUMNS = ("sum_y", "sum_y2", "sum_x", "sum_x2", "sum_xy", "sum_d", "sum_d2", "sum_yd")


class MetricDefinitionError(WorkbenchError):
    """A metric definition cannot be computed (unknown type, missing event or property …)."""


class ExperimentDataError(WorkbenchError):
    """The experiment's data cannot be analysed as asked (no assignments, unknown segment …)."""


@dataclass(frozen=True)
class MetricDefinition:
    """One experiment metric: what to count or sum per user, over which window after exposure."""

    name: str
    type: MetricType
    events: tuple[str, ...]
    value: str | None = None
    denominator_events: tuple[str, ...] = ()
    denominator_value: str | None = None
    window_days: float | None = 14
    covariate_days: float | None = None
    winsorize: float | None = None

    def __post_init__(self) -> None:
        """Normalise event lists and reject definitions that cannot be computed."""
        for attr in ("events", "denominator_events"):
            value = getattr(self, attr)
            object.__setattr__(self, attr, (value,) if isinstance(value, str) else tuple(value))
        where = f"metric {self.name!r}"
        if not self.name:
            raise MetricDefinitionError("a metric needs a name")
        if self.type not in ("conversion", "mean", "ratio"):
            raise MetricDefinitionError(
                f"{where}: type must be conversion, mean or ratio, not {self.type!r}"
            )
        if not self.events:
            raise MetricDefinitionError(f"{where}: name at least one event")
        if self.type == "conversion" and self.value is not None:
            raise MetricDefinitionError(f"{where}: a conversion counts users, it sums no property")
        if self.type == "ratio" and not self.denominator_events:
            raise MetricDefinitionError(f"{where}: a ratio metric needs denominator_events")
        if self.type != "ratio" and (self.denominator_events or self.denominator_value):
            raise MetricDefinitionError(f"{where}: only ratio metrics have a denominator")
        for attr in ("window_days", "covariate_days"):
            days = getattr(self, attr)
            if days is not None and not (isinstance(days, int | float) and days > 0):
                raise MetricDefinitionError(f"{where}: {attr} must be a positive number of days")
        if self.type == "ratio" and self.covariate_days is not None:
            raise MetricDefinitionError(f"{where}: CUPED covariates are not supported for ratios")
        if self.winsorize is not None:
            if self.type == "conversion":
                raise MetricDefinitionError(f"{where}: conversions (0/1) are not winsorized")
            if not (isinstance(self.winsorize, float) and 0 < self.winsorize < 1):
                raise MetricDefinitionError(
                    f"{where}: winsorize is a percentile between 0 and 1 (e.g. 0.99)"
                )


@dataclass
class ExperimentStats:
    """Per-arm sufficient statistics of an experiment's metrics, and its data-quality counts."""

    stats: pd.DataFrame
    arms: pd.DataFrame
    multi_variant_users: int
    caps: dict[str, dict[str, float]] = field(default_factory=dict)
    first_exposure: pd.Timestamp | None = None
    last_exposure: pd.Timestamp | None = None
    segments: pd.DataFrame | None = None
    prepared: PreparedExperiment | None = field(default=None, repr=False, compare=False)

    def srm(self, planned_split: Mapping[str, float]) -> SrmResult:
        """Sample ratio mismatch of the exposed users against the planned split by variant."""
        counts = self.arms.set_index("variant")["users"]
        unplanned = sorted(set(counts.index) - set(planned_split))
        if unplanned:
            raise ExperimentDataError(
                f"variant(s) {unplanned} have users but no planned share in {dict(planned_split)}"
            )
        variants = list(planned_split)
        observed = [int(counts.get(v, 0)) for v in variants]
        return srm_check(observed, [planned_split[v] for v in variants])

    @property
    def users_without_events(self) -> int:
        """Exposed users with none of the metrics' events in the longest window after exposure."""
        return int(self.arms["users_without_events"].sum())


# --------------------------------------------------------------------------------------------
# Exposures
# --------------------------------------------------------------------------------------------


def _utc(value: object) -> pd.Timestamp:
    """A timestamp in UTC (naive values are read as UTC)."""
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _timestamp(value: object) -> ibis.Value:
    return ibis.literal(_utc(value).to_pydatetime(), type=_UTC)


def _assignment_users(
    assignments: ibis.Table,
    experiment: str,
    *,
    segment: str | None,
    end: object,
    segment_columns: Sequence[str] = (),
    times: bool = True,
    variant_names: Sequence[str] | None = None,
    segment_values: Sequence[Sequence[str] | None] = (),
) -> ibis.Table:
    """One row per assigned user: variant count, first variant, first exposure (and segments).

    `segment` gives a column named "segment"; each of `segment_columns` a column "seg{j}".
    The first exposure is `exposed_us` (epoch µs) and, unless `times` is false, `exposed_at`.
    `variant_names` (every variant name in these rows) lets the per-user aggregation compare
    small integer codes instead of strings; `segment_values` (every value of each segment
    column, or None) does the same for "seg{j}". Coded columns are returned as int16 codes
    (positions in the sorted names, see `_decoded`), which keeps a materialised table narrow.
    """
    for column in ("user_id", "experiment", "variant", "assigned_at"):
        if column not in assignments.columns:
            raise ExperimentDataError(f"assignments: required column {column!r} missing")
    wanted = {"segment": segment} if segment is not None else {}
    wanted |= {f"seg{j}": column for j, column in enumerate(segment_columns)}
    unknown = [c for c in wanted.values() if c not in assignments.columns]
    if unknown:
        raise ExperimentDataError(
            f"segment column(s) {unknown} not in assignments; found {list(assignments.columns)}"
        )
    rows = assignments.filter(_.experiment == experiment, _.user_id.notnull())
    if end is not None:
        rows = rows.filter(_.assigned_at < _timestamp(end))
    extra = {}
    dictionaries = {f"seg{j}": values for j, values in enumerate(segment_values)}
    for name, column in wanted.items():
        value = rows[column].cast("string").fill_null(MISSING_SEGMENT)
        if dictionaries.get(name):
            extra[name] = first_code(_coded(value, dictionaries[name]), rows.assigned_at)
        else:
            extra[name] = first_string(value, rows.assigned_at)
    if times:
        extra = {"exposed_at": rows.assigned_at.min(), **extra}
    variant = rows.variant
    coded = bool(variant_names)
    if coded:
        variant = _coded(variant, variant_names).cast("int16")
    grouped = rows.group_by("user_id").aggregate(
        first_variant=variant.min(),
        last_variant=variant.max(),
        exposed_us=epoch_microseconds(rows.assigned_at).min(),
        **extra,
    )
    # variants: 1, or 2 for "more than one" (cheaper than counting distinct variants)
    return grouped.select(
        "user_id",
        variants=ibis.ifelse(grouped.first_variant == grouped.last_variant, 1, 2),
        variant=grouped.first_variant,
        exposed_us=grouped.exposed_us,
        **{name: grouped[name] for name in extra},
    )


def _decoded(
    table: ibis.Table,
    variant_names: Sequence[str] | None,
    segment_values: Sequence[Sequence[str] | None],
) -> ibis.Table:
    """`table` (from `_assignment_users` with these dictionaries) with its coded variant and
    segment columns back as strings."""
    dictionaries = {"variant": variant_names}
    dictionaries |= {f"seg{j}": values for j, values in enumerate(segment_values)}
    decoded = {c: _named(table[c], names) for c, names in dictionaries.items() if names}
    return table.mutate(**decoded) if decoded else table


def _coded(value: ibis.Value, names: Sequence[str]) -> ibis.Value:
    """A string's position among the sorted `names` (len(names) for any other value)."""
    ordered = sorted(names)
    return value.substitute({v: i for i, v in enumerate(ordered)}, else_=len(ordered))


def _named(code: ibis.Value, names: Sequence[str]) -> ibis.Value:
    """The inverse of `_coded`: the name at each position (null for any other code)."""
    return code.substitute(dict(enumerate(sorted(names))), else_=ibis.null("string"))


def exposures(
    assignments: ibis.Table,
    experiment: str,
    *,
    segment: str | None = None,
    end: object = None,
    segment_columns: Sequence[str] = (),
) -> ibis.Table:
    """Users exposed to exactly one variant, with their first exposure (an engine expression)."""
    users = _assignment_users(
        assignments, experiment, segment=segment, end=end, segment_columns=segment_columns
    )
    return users.filter(_.variants == 1).drop("variants")


# --------------------------------------------------------------------------------------------
# Per-user metric values
# --------------------------------------------------------------------------------------------


def _check_metrics(metrics: Sequence[MetricDefinition], events: ibis.Table) -> None:
    if not metrics:
        raise MetricDefinitionError("define at least one metric")
    names = [m.name for m in metrics]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise MetricDefinitionError(f"metric names must be unique; repeated: {repeated}")
    for column in ("user_id", "event", "timestamp"):
        if column not in events.columns:
            raise ExperimentDataError(f"events: required column {column!r} missing")
    schema = events.schema()
    for metric in metrics:
        for prop in (metric.value, metric.denominator_value):
            if prop is None:
                continue
            if prop not in schema:
                raise MetricDefinitionError(
                    f"metric {metric.name!r}: property {prop!r} is not a column of events; "
                    f"found {list(events.columns)}"
                )
            if not schema[prop].is_numeric():
                raise MetricDefinitionError(
                    f"metric {metric.name!r}: property {prop!r} is {schema[prop]}, not a number"
                )


def _property_column(prop: str) -> str:
    """Internal name of an event property in joined tables (no clash with our columns)."""
    return f"property__{prop}"


def _metric_events(metrics: Sequence[MetricDefinition]) -> list[str]:
    """Every event name a metric counts or sums, numerators and denominators."""
    return sorted({e for m in metrics for e in (*m.events, *m.denominator_events)})


def _event_codes(metrics: Sequence[MetricDefinition]) -> dict[str, int]:
    """A small integer per metric event name (from 1), compared instead of strings."""
    return {name: code for code, name in enumerate(_metric_events(metrics), start=1)}


def _join_bounds(metrics: Sequence[MetricDefinition]) -> tuple[int, int | None]:
    """The offsets from exposure (µs) that the join keeps: [-longest lookback, longest window),
    unbounded above when a metric has no window."""
    lookback = max((m.covariate_days or 0) for m in metrics)
    if all(m.window_days is not None for m in metrics):
        return -_microseconds(lookback), _microseconds(max(m.window_days for m in metrics))
    return -_microseconds(lookback), None


def _events(
    events: ibis.Table,
    metrics: Sequence[MetricDefinition],
    end: object,
    exposure_us: tuple[int, int] | None = None,
) -> ibis.Table:
    """The metrics' events and the columns they need, renamed so they cannot clash with users'.

    Only events some metric uses are kept: the join to exposures never sees the others. With
    `exposure_us` (first and last exposure, epoch µs) only events that some exposed user's
    window can hold are read; a constant time range, so an engine can skip whole Parquet row
    groups (or partitions) of a long event log by their statistics.
    """
    props = sorted({p for m in metrics for p in (m.value, m.denominator_value) if p})
    # The event's code (0 for events no metric uses), compared instead of the name from here
    # on; filtering on it is cheaper than an IN list, which DuckDB runs as a join.
    ev = events.mutate(event_code=events.event.substitute(_event_codes(metrics), else_=0))
    ev = ev.filter(ev.event_code != 0)
    if end is not None:
        ev = ev.filter(ev.timestamp < _timestamp(end))
    if exposure_us is not None:
        lo, hi = _join_bounds(metrics)
        ev = ev.filter(ev.timestamp >= _timestamp(_microseconds_to_time(exposure_us[0] + lo)))
        if hi is not None:
            ev = ev.filter(ev.timestamp < _timestamp(_microseconds_to_time(exposure_us[1] + hi)))
    return ev.select(
        ev_user=_.user_id,
        event=_.event,
        timestamp=_.timestamp,
        ev_us=epoch_microseconds(ev.timestamp),
        event_code=_.event_code,
        **{_property_column(p): ev[p] for p in props},
    )


def _amount(t: ibis.Table, names: tuple[str, ...], prop: str | None) -> ibis.Value:
    """Per-event contribution: the property (missing = 0) or 1, for the listed events; else 0."""
    column = _property_column(prop) if prop else None
    value = t[column].cast("float64").fill_null(0.0) if column else ibis.literal(1.0)
    return ibis.ifelse(t.event.isin(list(names)), value, 0.0)


def _microseconds(days: float) -> int:
    return int(round(days * _DAY_S)) * 1_000_000


def _with_offset(joined: ibis.Table) -> ibis.Table:
    """Joined rows with the event's offset from exposure in µs, computed once for all metrics."""
    return joined.mutate(offset_us=joined.ev_us - joined.exposed_us)


def _post(t: ibis.Table, metric: MetricDefinition) -> ibis.Value:
    inside = t.offset_us >= 0
    if metric.window_days is not None:
        inside &= t.offset_us < _microseconds(metric.window_days)
    return inside


def _joined(
    users: ibis.Table,
    events: ibis.Table,
    metrics: Sequence[MetricDefinition],
    end: object,
    how: Literal["inner", "left"] = "inner",
    exposure_us: tuple[int, int] | None = None,
) -> ibis.Table:
    """Exposed users joined to their metric events in the widest window any metric needs.

    With the inner join, users without such events have no row: they contribute zeros to every
    sum, and their count comes from the exposures.
    """
    ev = _events(events, metrics, end, exposure_us)
    lo, hi = _join_bounds(metrics)
    predicates = [users.user_id == ev.ev_user, ev.ev_us >= users.exposed_us + lo]
    if hi is not None:
        predicates.append(ev.ev_us < users.exposed_us + hi)
    return _with_offset(ev.join(users, predicates, how="right" if how == "left" else how))


@dataclass(frozen=True)
class _Component:
    """A per-user quantity: Σ amount over the user's `events` with offset in [lo_us, hi_us).

    The amount is `prop` (missing = 0) or 1 (a count). Metrics that need the same quantity
    (page views as a mean and as a ratio's numerator, sessions as a denominator twice …)
    share one component, so the pass over the events computes each once.
    """

    events: tuple[str, ...]
    prop: str | None
    lo_us: int
    hi_us: int | None


@dataclass(frozen=True)
class _MetricColumns:
    """Which components give a metric's value (y), denominator (d) and covariate (x)."""

    y: int
    d: int | None = None
    x: int | None = None


def _components(
    metrics: Sequence[MetricDefinition],
) -> tuple[list[_Component], list[_MetricColumns]]:
    components: list[_Component] = []

    def index(component: _Component) -> int:
        if component not in components:
            components.append(component)
        return components.index(component)

    columns = []
    for m in metrics:
        hi = _microseconds(m.window_days) if m.window_days is not None else None
        y = index(_Component(tuple(sorted(set(m.events))), m.value, 0, hi))
        d = x = None
        if m.type == "ratio":
            d = index(
                _Component(tuple(sorted(set(m.denominator_events))), m.denominator_value, 0, hi)
            )
        if m.covariate_days is not None:
            pre = -_microseconds(m.covariate_days)
            x = index(_Component(tuple(sorted(set(m.events))), m.value, pre, 0))
        columns.append(_MetricColumns(y, d, x))
    return components, columns


def _component_values(
    t: ibis.Table, components: Sequence[_Component], metrics: Sequence[MetricDefinition]
) -> dict[str, ibis.Value]:
    """Per-user aggregates k{j} of the joined rows `t`, one per component."""
    codes = _event_codes(metrics)
    event_code = t.event_code
    join_lo, join_hi = _join_bounds(metrics)  # offsets the join already guarantees
    out: dict[str, ibis.Value] = {}
    for j, c in enumerate(components):
        wanted = [codes[e] for e in c.events]
        inside = event_code == wanted[0] if len(wanted) == 1 else event_code.isin(wanted)
        if c.lo_us > join_lo:
            inside &= t.offset_us >= c.lo_us
        if c.hi_us is not None and (join_hi is None or c.hi_us < join_hi):
            inside &= t.offset_us < c.hi_us
        if c.prop:  # missing values count as 0, so the sum is null only without events
            amount = t[_property_column(c.prop)].cast("float64").fill_null(0.0)
            out[f"k{j}"] = amount.sum(where=inside)
        else:
            out[f"k{j}"] = t.count(where=inside)
    return out


def _has_events(t: ibis.Table, components: Sequence[_Component]) -> ibis.Value:
    """Whether a user of the per-user table `t` has any metric event inside a metric's window
    after exposure (counts above 0; sums of a property not null)."""
    post = [(j, c) for j, c in enumerate(components) if c.lo_us >= 0]
    return ibis.or_(*[t[f"k{j}"].notnull() if c.prop else t[f"k{j}"] > 0 for j, c in post])


# Sort the joined events by user before the per-user aggregation when DuckDB's tables would
# not fit (estimated bytes per user and aggregate state, per thread) and the first
# _LOCALITY_SAMPLE metric events in scan order hold more than _NO_LOCALITY × as many distinct
# users as events. Measured on the 10M-user benchmark: 0.88 in time order, 0.37 in its
# generated order (blocks of users), 0.16 sorted by user.
_STATE_BYTES = 16
_ROW_BYTES = 32
_LOCALITY_SAMPLE = 65_536
_NO_LOCALITY = 0.75


def _sort_by_user(
    events: ibis.Table,
    metrics: Sequence[MetricDefinition],
    end: object,
    exposure_us: tuple[int, int] | None,
    users: int,
    states: int,
) -> bool:
    """Whether the per-user pass should sort the joined events by user first (DuckDB only).

    DuckDB's hash aggregation keeps one table per thread, which grows towards every user it
    meets. In an event log without user locality (an append-only log in time order, where
    almost no two consecutive events share a user) each thread meets nearly every user; at
    10M users the tables outgrow the memory cap and spill partial rows. Sorted by user first,
    each user's rows arrive together: the 10M-user benchmark in time order takes 26 s instead
    of 34 s (medians). Where the events have locality, or the tables fit, the sort only costs
    (12 s → 18 s for the per-user query on the generated order; 2.2 s → 2.5-3.0 s for the
    whole readout at 1M users in time order), so both conditions must hold. The check reads
    only the first metric events.
    """
    memory = duckdb_memory(events)
    if memory is None:
        return False
    limit, threads = memory
    if users * (_ROW_BYTES + _STATE_BYTES * states) * threads <= limit:
        return False
    first = _events(events, metrics, end, exposure_us).select("ev_user").limit(_LOCALITY_SAMPLE)
    seen = first.aggregate(rows=_.count(), users=_.ev_user.nunique()).execute()
    rows, distinct = int(seen["rows"].iloc[0]), int(seen["users"].iloc[0])
    return rows > 0 and distinct > _NO_LOCALITY * rows


def _user_components(
    users: ibis.Table,
    events: ibis.Table,
    metrics: Sequence[MetricDefinition],
    end: object,
    key: str = "user_id",
    firsts: Mapping[str, MetricDefinition] | None = None,
    exposure_us: tuple[int, int] | None = None,
    sort_by_user: bool = False,
) -> ibis.Table:
    """One row per exposed user with metric events in the window, by the users' `key` column:
    k{j}, and for each of `firsts` (column name → conversion metric) the epoch µs
    of the user's first qualifying event.

    An integer `key` (a row number, with anything else constant per user folded into it) is
    cheaper to aggregate on than the string user id, and needs no per-user state to carry.
    `sort_by_user` orders the joined events by `key` before aggregating (see `_sort_by_user`).
    """
    components, _ = _components(metrics)
    joined = _joined(users, events, metrics, end, exposure_us=exposure_us)
    if sort_by_user:
        joined = joined.order_by(key)
    values = _component_values(joined, components, metrics)
    codes = _event_codes(metrics)
    for name, m in (firsts or {}).items():
        inside = _post(joined, m) & joined.event_code.isin([codes[e] for e in m.events])
        values[name] = joined.ev_us.min(where=inside)
    per_user = joined.group_by(key).aggregate(**values)
    # Counts are stored as 32-bit integers (a cast that overflows fails, never wraps): the
    # materialised table is then about half as wide, which matters at 10M users.
    narrow = {
        f"k{j}": per_user[f"k{j}"].cast("int32") for j, c in enumerate(components) if not c.prop
    }
    return per_user.mutate(**narrow) if narrow else per_user


def _first_time_columns(
    metrics: Sequence[MetricDefinition], names: Sequence[str]
) -> dict[str, MetricDefinition]:
    """Column name → metric for the conversion metrics (without covariate) named in `names`."""
    wanted = set(names)
    return {
        f"first{i}": m
        for i, m in enumerate(metrics)
        if m.name in wanted and m.type == "conversion" and m.covariate_days is None
    }


def _metric_value(
    t: ibis.Table, metric: MetricDefinition, component: int, part: str, cap: float | None = None
) -> ibis.Value:
    """A metric's per-user value (part y, d or x) from a component column (missing = 0)."""
    column = t[f"k{component}"]
    if metric.type == "conversion" and part != "d":
        value = ibis.ifelse(column > 0, 1.0, 0.0)  # a missing count is no conversion
    else:
        value = column.cast("float64").fill_null(0.0)
    return ibis.least(value, cap) if cap is not None else value


def per_user_values(
    assignments: ibis.Table,
    events: ibis.Table,
    experiment: str,
    metrics: Sequence[MetricDefinition],
    *,
    segment: str | None = None,
    end: object = None,
    segment_columns: Sequence[str] = (),
) -> ibis.Table:
    """Engine expression, one row per exposed user: variant, exposed_at, m{i}_y / _d / _x."""
    _check_metrics(metrics, events)
    users = exposures(
        assignments, experiment, segment=segment, end=end, segment_columns=segment_columns
    )
    keys = ["user_id", "variant", "exposed_at"] + (["segment"] if segment else [])
    keys += [f"seg{j}" for j in range(len(segment_columns))]
    components, columns = _components(metrics)
    joined = _joined(users, events, metrics, end, how="left")
    found = joined.group_by(keys).aggregate(**_component_values(joined, components, metrics))
    values = {}
    for i, (m, cols) in enumerate(zip(metrics, columns, strict=True)):
        for part in ("y", "d", "x"):
            if getattr(cols, part) is not None:
                values[f"m{i}_{part}"] = _metric_value(found, m, getattr(cols, part), part)
    has_events = ibis.ifelse(_has_events(found, components), 1, 0)
    return found.select(*keys, has_events=has_events, **values)


def _quantile_from_counts(values: np.ndarray, counts: np.ndarray, q: float) -> float:
    """The linear-interpolation quantile (numpy's default, DuckDB's quantile_cont) of a
    population given as distinct values and their counts."""
    order = np.argsort(values, kind="stable")
    values, cumulative = values[order], np.cumsum(counts[order])
    total = int(cumulative[-1])
    position = (total - 1) * q
    below = int(np.floor(position))
    low = values[np.searchsorted(cumulative, below, side="right")]
    high = values[np.searchsorted(cumulative, min(below + 1, total - 1), side="right")]
    return float(low + (position - below) * (high - low))


def _pooled_caps(
    found: ibis.Table,
    exposed: int,
    metrics: Sequence[MetricDefinition],
    columns: Sequence[_MetricColumns],
) -> dict[str, float]:
    """Winsorization caps by engine column name m{i}_{y,x}: the pooled (all arms) percentile
    over every exposed user, those without events counting as zeros.

    Each is computed from the distinct per-user values and their counts, which the engine
    returns (a few thousand rows at most for counts), so no per-user column reaches pandas.
    """
    wanted = []
    for i, (m, cols) in enumerate(zip(metrics, columns, strict=True)):
        if m.winsorize is None:
            continue
        wanted.append((f"m{i}_y", m, cols.y, "y"))
        if cols.x is not None:
            wanted.append((f"m{i}_x", m, cols.x, "x"))
    if not wanted or exposed == 0:
        return {}
    with_events = int(found.count().execute())
    caps = {}
    for name, m, component, part in wanted:
        counted = (
            found.select(v=_metric_value(found, m, component, part))
            .group_by("v")
            .aggregate(n=_.count())
            .execute()
        )
        values = np.append(counted["v"].to_numpy(float), 0.0)
        counts = np.append(counted["n"].to_numpy(np.int64), exposed - with_events)
        caps[name] = _quantile_from_counts(values, counts, m.winsorize)
    return caps


def _caps_by_metric(caps: dict[str, float], metrics: Sequence[MetricDefinition]) -> dict:
    out: dict[str, dict[str, float]] = {}
    for column, cap in caps.items():
        index, part = column[1:].split("_")
        out.setdefault(metrics[int(index)].name, {})[{"y": "value", "x": "covariate"}[part]] = cap
    return out


def _sums(
    t: ibis.Table,
    metrics: Sequence[MetricDefinition],
    columns: Sequence[_MetricColumns],
    caps: Mapping[str, float],
) -> dict[str, ibis.Value]:
    """Aggregates of per-user component columns into per-arm sufficient statistics."""
    out: dict[str, ibis.Value] = {}
    for i, (m, cols) in enumerate(zip(metrics, columns, strict=True)):
        y = _metric_value(t, m, cols.y, "y", caps.get(f"m{i}_y"))
        out[f"m{i}__sum_y"] = y.sum()
        out[f"m{i}__sum_y2"] = (y * y).sum()
        if cols.d is not None:
            d = _metric_value(t, m, cols.d, "d")
            out[f"m{i}__sum_d"] = d.sum()
            out[f"m{i}__sum_d2"] = (d * d).sum()
            out[f"m{i}__sum_yd"] = (y * d).sum()
        if cols.x is not None:
            x = _metric_value(t, m, cols.x, "x", caps.get(f"m{i}_x"))
            out[f"m{i}__sum_x"] = x.sum()
            out[f"m{i}__sum_x2"] = (x * x).sum()
            out[f"m{i}__sum_xy"] = (x * y).sum()
    return out


def _long(
    wide: pd.DataFrame, metrics: Sequence[MetricDefinition], keys: Sequence[str]
) -> pd.DataFrame:
    """Wide engine output (m{i}__sum_*) to one row per metric × keys."""
    parts = []
    for i, m in enumerate(metrics):
        prefix = f"m{i}__"
        cols = {c: c[len(prefix) :] for c in wide.columns if c.startswith(prefix)}
        part = wide[[*keys, "n", *cols]].rename(columns=cols)
        part.insert(0, "metric_type", m.type)
        part.insert(0, "metric", m.name)
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    sums = [c for c in _SUM_COLUMNS if c in out.columns]
    out = out[[c for c in out.columns if c not in sums] + sums]
    out[sums] = out[sums].astype("float64")
    out["n"] = out["n"].astype("int64")
    return out.sort_values(
        ["metric", *keys], kind="stable", key=_metric_order(metrics)
    ).reset_index(drop=True)


def _metric_order(metrics: Sequence[MetricDefinition]):
    order = {m.name: i for i, m in enumerate(metrics)}

    def key(column: pd.Series) -> pd.Series:
        return column.map(order) if column.name == "metric" else column

    return key


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------


@dataclass
class PreparedExperiment:
    """The engine tables one readout reuses: every assigned user, and the per-user components.

    Both are materialised once in the engine (Ibis `cache`, a temporary table), so the statistics,
    the caps, the segments and the daily view read them instead of re-joining the raw events.
    `assigned` numbers its users (`row_id`); `found` has one row per exposed user with metric
    events, keyed by `key` = row_id × cells + cell, the user's variant × segment labels as one
    integer (decoded with `levels`). `release()` drops both.
    """

    metrics: tuple[MetricDefinition, ...]
    end: object
    assigned: ibis.Table
    found: ibis.Table
    columns: tuple[_MetricColumns, ...]
    levels: tuple[tuple[str, ...], ...]
    first_times: tuple[str, ...]
    materialised: tuple[ibis.Table, ...]
    # exposed users per cell and UTC day of exposure (days since 1970-01-01): columns
    # cell, epoch_day, n; and the first exposure in epoch µs
    entered: pd.DataFrame
    first_exposure_us: int

    @property
    def exposed(self) -> ibis.Table:
        """Users exposed to exactly one variant."""
        return self.assigned.filter(_.variants == 1).drop("variants")

    @property
    def cells(self) -> int:
        """How many variant × segment label cells the integer keys encode."""
        return _cell_count(self.levels)

    def cell(self, table: ibis.Table) -> ibis.Value:
        """The cell code of each row of `found` (or a table with its `key`)."""
        return (table.key % self.cells).name("cell")

    def release(self) -> None:
        """Drop the materialised tables (they are rebuilt if used again)."""
        for table in self.materialised:
            with contextlib.suppress(Exception):  # not cached on this backend, or released
                table.release()


def _distinct_values(
    assignments: ibis.Table,
    experiment: str,
    column: str,
    *,
    missing: str | None = None,
    limit: int = 1000,
) -> list[str] | None:
    """The distinct values (as strings) of `column` in an experiment's assignments: one cheap
    scan. Missing values read as `missing`; None when there are more than `limit` values, when
    a value is missing and `missing` is None (the aggregation then compares the strings), or
    when there is no such column (`_assignment_users` names it)."""
    if column not in assignments.columns:
        return None
    rows = assignments.filter(_.experiment == experiment, _.user_id.notnull())
    value = rows[column].cast("string")
    if missing is not None:
        value = value.fill_null(missing)
    found = rows.select(value.name("value")).distinct().limit(limit + 1).execute()["value"]
    if len(found) > limit or found.isna().any():
        return None
    return [str(v) for v in found]


def _cell_count(levels: Sequence[Sequence[str]]) -> int:
    """How many cells (variant × segment labels) `levels` number."""
    return int(np.prod([len(v) for v in levels]))


def _epoch_day(epoch_us: ibis.Value) -> ibis.Value:
    """Engine expression: the UTC day (days since 1970-01-01) of an epoch-µs value."""
    return (epoch_us // (_DAY_S * 1_000_000)).name("epoch_day")


def _cell_code(exposed: ibis.Table, levels: Sequence[Sequence[str]]) -> ibis.Value:
    """Each exposed user's cell (variant × segment labels) as one integer, decoded by
    `_decode_cells`: the per-user aggregation carries a number, not strings."""
    cell = ibis.literal(0, type="int64")
    for j, values in enumerate(levels):
        column = exposed.variant if j == 0 else exposed[f"seg{j - 1}"]
        code = column.substitute({v: i for i, v in enumerate(values)}, else_=len(values) - 1)
        cell = cell * len(values) + code.cast("int64")
    return cell


_EPOCH = pd.Timestamp(0, tz="UTC")


def _microseconds_to_time(value: object) -> pd.Timestamp:
    return pd.Timestamp(int(value), unit="us", tz="UTC")


def experiment_stats(
    assignments: ibis.Table,
    events: ibis.Table,
    experiment: str,
    metrics: Sequence[MetricDefinition],
    *,
    end: object = None,
    segments: Sequence[str] = (),
    top_k: int = 10,
    caps: dict[str, dict[str, float]] | None = None,
    first_times: Sequence[str] = (),
) -> ExperimentStats:
    """Per-arm sufficient statistics of every metric, plus assignment and event-quality counts.

    `first_times` names conversion metrics whose first qualifying event time the per-user pass
    keeps too, so that `daily_stats` of those metrics needs no other pass over the events.

    One pass over the assignments gives every assigned user (materialised, numbered); one pass
    over the metric events joined to the exposed users gives each user's metric components
    (materialised, by an integer key that also encodes the user's cell). Everything else reads
    those two tables: per-arm sums are additive, so one GROUP BY over the cells serves every
    segment column (the top_k largest values of each, the rest as "other", in
    `ExperimentStats.segments`). `caps` replaces the pooled winsorization caps (by metric name:
    {"value": …, "covariate": …}).
    """
    _check_metrics(metrics, events)
    if top_k < 1:
        raise ExperimentDataError("top_k must be at least 1")
    segments = list(segments)
    # Variants and segment labels are stored as small codes (a narrower table to hold while
    # the events are aggregated) and read back as strings through `_decoded`.
    names = _distinct_values(assignments, experiment, "variant")
    values = [
        _distinct_values(assignments, experiment, column, missing=MISSING_SEGMENT)
        for column in segments
    ]
    cached_assigned, numbered = cache_with_row_ids(
        _assignment_users(
            assignments,
            experiment,
            segment=None,
            end=end,
            segment_columns=segments,
            times=False,
            variant_names=names,
            segment_values=values,
        )
    )
    assigned = _decoded(numbered, names, values)
    groups = _exposure_groups(assigned, segments)
    if groups is not None:
        summary = groups.groupby(["variant", "multiple"], as_index=False).agg(
            users=("users", "sum"), first=("first", "min"), last=("last", "max")
        )
    else:
        summary = (
            assigned.group_by(["variant", (_.variants > 1).name("multiple")])
            .aggregate(users=_.count(), first=_.exposed_us.min(), last=_.exposed_us.max())
            .execute()
        )
    if summary.empty:
        cached_assigned.release()
        found = assignments.select("experiment").distinct().limit(20).execute()["experiment"]
        raise ExperimentDataError(
            f"no assignments for experiment {experiment!r}; experiments found: "
            f"{sorted(map(str, found))}"
        )
    multiple = summary["multiple"].astype(bool)
    clean = summary[~multiple]
    multi_users = int(summary.loc[multiple, "users"].sum())
    if clean.empty:
        cached_assigned.release()
        raise ExperimentDataError(
            f"experiment {experiment!r}: every assigned user is in more than one variant"
        )

    exposed = assigned.filter(_.variants == 1).drop("variants")
    if groups is not None:
        groups = groups[~groups["multiple"].astype(bool)]
        labels = [_top_labels(groups, f"seg{j}", top_k) for j in range(len(segments))]
    else:
        labels = _top_segment_labels(exposed, segments, top_k)
    variants = sorted(str(v) for v in clean["variant"])
    levels = [variants] + [[*top, OTHER_SEGMENT] for top in labels]
    cells = _cell_count(levels)
    cell = _cell_code(exposed, levels)
    labelled = exposed.select("user_id", "exposed_us", key=exposed.row_id * cells + cell)
    firsts = _first_time_columns(metrics, first_times)
    span = (int(clean["first"].min()), int(clean["last"].max()))
    total = int(clean["users"].sum())
    components, columns = _components(metrics)
    sort = _sort_by_user(events, metrics, end, span, total, len(components) + len(firsts))
    found = _user_components(
        labelled, events, metrics, end, "key", firsts, exposure_us=span, sort_by_user=sort
    )
    with joins_as_written(found):  # build the join on the exposed users, not the events
        found = found.cache()
    cap_columns = (
        _cap_columns(caps, metrics)
        if caps is not None
        else _pooled_caps(found, total, metrics, columns)
    )
    if groups is not None:
        entered = _entered(groups, levels)
    else:
        entered = exposed.group_by([cell.name("cell"), _epoch_day(exposed.exposed_us)])
        entered = entered.aggregate(n=_.count())
        entered = entered.execute().astype({"cell": "int64", "epoch_day": "int64", "n": "int64"})
    entered = entered.sort_values(["cell", "epoch_day"], ignore_index=True)
    counts = entered.groupby("cell", as_index=False)["n"].sum()
    sums = (
        found.group_by((found.key % cells).name("cell"))
        .aggregate(
            with_events=_has_events(found, components).cast("int64").sum(),
            **_sums(found, metrics, columns, cap_columns),
        )
        .execute()
    )
    keys = ["variant", *[f"seg{j}" for j in range(len(segments))]]
    by_label = _decode_cells(counts.merge(sums, on="cell", how="left"), keys, levels)
    summed = [c for c in by_label.columns if c == "n" or c == "with_events" or "__sum_" in c]
    by_label[summed] = by_label[summed].fillna(0.0)
    wide = by_label.groupby("variant", as_index=False)[summed].sum()
    arms = (
        wide[["variant", "n", "with_events"]]
        .rename(columns={"n": "users"})
        .assign(users_without_events=lambda f: f["users"] - f["with_events"])
        .drop(columns="with_events")
        .sort_values("variant")
        .reset_index(drop=True)
    )
    arms = arms.astype({"users": "int64", "users_without_events": "int64"})
    return ExperimentStats(
        stats=_long(wide, metrics, ["variant"]),
        arms=arms,
        multi_variant_users=multi_users,
        caps=_caps_by_metric(cap_columns, metrics),
        first_exposure=_microseconds_to_time(clean["first"].min()),
        last_exposure=_microseconds_to_time(clean["last"].max()),
        segments=_segment_frames(by_label, summed, segments, labels, metrics),
        prepared=PreparedExperiment(
            tuple(metrics),
            end,
            assigned,
            found,
            tuple(columns),
            levels=tuple(tuple(v) for v in levels),
            first_times=tuple(m.name for m in firsts.values()),
            materialised=(found, cached_assigned),
            entered=entered,
            first_exposure_us=int(clean["first"].min()),
        ),
    )


def _decode_cells(frame: pd.DataFrame, keys: list[str], levels: list[list[str]]) -> pd.DataFrame:
    """Replace the integer `cell` column by its variant and segment label columns."""
    code = frame["cell"].to_numpy(np.int64)
    decoded = {}
    for key, values in zip(reversed(keys), reversed(levels), strict=True):
        decoded[key] = np.asarray(values, dtype=object)[code % len(values)]
        code = code // len(values)
    out = frame.drop(columns="cell")
    for key in keys:
        out.insert(keys.index(key), key, decoded[key])
    return out


_GROUPS_LIMIT = 100_000


def _exposure_groups(assigned: ibis.Table, segments: Sequence[str]) -> pd.DataFrame | None:
    """Assigned users per variant, "in more than one variant" flag, segment values and UTC day
    of exposure (days since 1970-01-01), with their first and last exposure (epoch µs).

    One small query that gives the assignment summary, the top segment values and the users
    per cell and day. None when there are more than _GROUPS_LIMIT such groups (segment columns
    with very many values): the caller then asks the engine for each of those separately.
    """
    keys = [
        assigned.variant,
        (assigned.variants > 1).name("multiple"),
        *[assigned[f"seg{j}"] for j in range(len(segments))],
        _epoch_day(assigned.exposed_us),
    ]
    frame = (
        assigned.group_by(keys)
        .aggregate(users=_.count(), first=_.exposed_us.min(), last=_.exposed_us.max())
        .limit(_GROUPS_LIMIT + 1)
        .execute()
    )
    names = [k.get_name() for k in keys]
    if len(frame) > _GROUPS_LIMIT or frame[names].isna().any().any():
        return None
    return frame


def _top_labels(groups: pd.DataFrame, column: str, top_k: int) -> list[str]:
    """The top_k values of `column` by users (ties by value), from `_exposure_groups` rows."""
    users = groups.groupby(column)["users"].sum()
    ranked = sorted(users.index, key=lambda v: (-int(users[v]), str(v)))
    return [str(v) for v in ranked[:top_k]]


def _entered(groups: pd.DataFrame, levels: Sequence[Sequence[str]]) -> pd.DataFrame:
    """Exposed users per cell (as `_cell_code` numbers them) and epoch day."""
    cell = np.zeros(len(groups), dtype=np.int64)
    for j, values in enumerate(levels):
        column = groups["variant" if j == 0 else f"seg{j - 1}"].astype(str)
        code = column.map({v: i for i, v in enumerate(values)}).fillna(len(values) - 1)
        cell = cell * len(values) + code.to_numpy(np.int64)
    frame = pd.DataFrame({"cell": cell, "epoch_day": groups["epoch_day"].to_numpy(np.int64)})
    frame["n"] = groups["users"].to_numpy(np.int64)
    return frame.groupby(["cell", "epoch_day"], as_index=False)["n"].sum()


def _top_segment_labels(exposed: ibis.Table, segments: list[str], top_k: int) -> list[list[str]]:
    """The top_k most common values of each segment column among exposed users."""
    labels = []
    for j in range(len(segments)):
        ranked = (
            exposed.group_by(f"seg{j}")
            .aggregate(users=_.count())
            .order_by([ibis.desc("users"), f"seg{j}"])
            .limit(top_k)
            .execute()
        )
        labels.append([str(s) for s in ranked[f"seg{j}"]])
    return labels


def _segment_frames(
    by_label: pd.DataFrame,
    sums: list[str],
    segments: list[str],
    labels: list[list[str]],
    metrics: Sequence[MetricDefinition],
) -> pd.DataFrame | None:
    """Per segment column, the statistics per (segment value, variant), summed over the rest."""
    if not segments:
        return None
    parts = []
    for j, column in enumerate(segments):
        wide = by_label.groupby([f"seg{j}", "variant"], as_index=False)[sums].sum()
        part = _long(wide.rename(columns={f"seg{j}": "segment"}), metrics, ["segment", "variant"])
        rank = {s: i for i, s in enumerate([*labels[j], OTHER_SEGMENT])}
        part["segment_rank"] = part["segment"].map(rank).astype("int64")
        part = part.sort_values(
            ["segment_rank", "metric", "variant"], kind="stable", key=_metric_order(metrics)
        )
        parts.append(part.assign(segment_column=column))
    return pd.concat(parts, ignore_index=True)


def segment_stats(
    assignments: ibis.Table,
    events: ibis.Table,
    experiment: str,
    metrics: Sequence[MetricDefinition],
    segment: str,
    *,
    top_k: int = 10,
    end: object = None,
    caps: dict[str, dict[str, float]] | None = None,
) -> pd.DataFrame:
    """Per-arm sufficient statistics per segment value: the top_k largest, the rest as "other"."""
    result = experiment_stats(
        assignments,
        events,
        experiment,
        metrics,
        end=end,
        segments=[segment],
        top_k=top_k,
        caps=caps,
    )
    result.prepared.release()
    return result.segments.drop(columns="segment_column").reset_index(drop=True)


def _cap_columns(
    caps: dict[str, dict[str, float]], metrics: Sequence[MetricDefinition]
) -> dict[str, float]:
    out = {}
    for i, m in enumerate(metrics):
        for part, name in (("y", "value"), ("x", "covariate")):
            if name in caps.get(m.name, {}):
                out[f"m{i}_{part}"] = caps[m.name][name]
    return out


def exposed_too_late(
    prepared: PreparedExperiment, reach: object, windows_days: Sequence[float]
) -> dict[float, int]:
    """Exposed users whose attribution window of each length in `windows_days` runs past
    `reach` (where the data stops): those exposed less than that many days before it. One
    query over the materialised exposures."""
    reach_us = int(_utc(reach).value // 1000)
    lengths = sorted(set(windows_days))
    if not lengths:
        return {}
    exposed = prepared.exposed
    counts = exposed.aggregate(
        **{
            f"w{i}": (exposed.exposed_us > reach_us - _microseconds(days)).cast("int64").sum()
            for i, days in enumerate(lengths)
        }
    ).execute()
    return {days: int(counts[f"w{i}"].fillna(0).iloc[0]) for i, days in enumerate(lengths)}


def daily_stats(
    assignments: ibis.Table,
    events: ibis.Table,
    experiment: str,
    metrics: Sequence[MetricDefinition],
    *,
    start: object = None,
    end: object = None,
    caps: dict[str, dict[str, float]] | None = None,
    prepared: PreparedExperiment | None = None,
) -> pd.DataFrame:
    """Cumulative sufficient statistics as of the end of each day since the experiment start.

    `prepared` (from `experiment_stats` with the same assignments, events and end, and metrics
    that include these) reuses its exposures and covariates instead of recomputing them.
    """
    _check_metrics(metrics, events)
    own = prepared is None or not set(metrics) <= set(prepared.metrics) or prepared.end != end
    if own:
        result = experiment_stats(
            assignments,
            events,
            experiment,
            metrics,
            end=end,
            caps=caps,
            first_times=[m.name for m in metrics],
        )
        prepared, caps = result.prepared, result.caps
    elif caps is None:
        caps = _caps_by_metric(
            _pooled_caps(
                prepared.found,
                int(prepared.exposed.count().execute()),
                prepared.metrics,
                prepared.columns,
            ),
            prepared.metrics,
        )
    try:
        if set(m.name for m in metrics) <= set(prepared.first_times):
            return _daily_from_first_times(prepared, experiment, metrics, start, end)
        return _daily(
            prepared, events, experiment, metrics, start, end, _cap_columns(caps, metrics)
        )
    finally:
        if own:
            prepared.release()


def _day_number(start: pd.Timestamp) -> Callable[[ibis.Value], ibis.Value]:
    """Engine expression: the day since `start` (day 0) of an epoch-µs value."""
    start_us = int(start.timestamp()) * 1_000_000
    day_us = _DAY_S * 1_000_000

    def day(epoch_us: ibis.Value) -> ibis.Value:
        return (epoch_us - start_us) // day_us

    return day


def _start_of(prepared: PreparedExperiment, start: object) -> pd.Timestamp:
    """The daily view's day 0: `start`, or the UTC day of the first exposure."""
    if start is None:
        return _microseconds_to_time(prepared.first_exposure_us).floor("D")
    return _utc(start)


def _daily_from_first_times(
    prepared: PreparedExperiment,
    experiment: str,
    metrics: Sequence[MetricDefinition],
    start: object,
    end: object,
) -> pd.DataFrame:
    """Daily view of conversions from the per-user pass: users enter on their exposure day and
    convert (0 → 1) on the day of their first qualifying event, so counts per day are all."""
    start = _start_of(prepared, start)
    day = _day_number(start)
    keys = ["variant", *[f"seg{j}" for j in range(len(prepared.levels) - 1)]]
    if start == start.floor("D"):
        # users by exposure day, from the counts experiment_stats kept
        entered = _decode_cells(prepared.entered, keys, [list(v) for v in prepared.levels])
        entered["day"] = entered.pop("epoch_day") - (start - _EPOCH).days
        entered = entered.groupby(["variant", "day"], as_index=False)["n"].sum()
    else:
        exposed = prepared.exposed
        entered = (
            exposed.group_by(["variant", day(exposed.exposed_us).name("day")])
            .aggregate(n=_.count())
            .execute()
        )
    found, index = prepared.found, {m.name: i for i, m in enumerate(prepared.metrics)}
    parts = []
    for i, m in enumerate(metrics):
        first = found[f"first{index[m.name]}"]
        converted = (
            found.filter(first.notnull())
            .group_by([prepared.cell(found), day(first).name("day")])
            .aggregate(count=_.count())
            .execute()
        )
        converted = _decode_cells(converted, keys, [list(v) for v in prepared.levels])
        converted = converted.groupby(["variant", "day"], as_index=False)["count"].sum()
        count = converted.pop("count").astype("float64")
        parts.append(converted.assign(**{f"m{i}__sum_y": count, f"m{i}__sum_y2": count}))
    return _cumulative_days(entered, pd.concat(parts, ignore_index=True), metrics, start, end)


def _daily(
    prepared: PreparedExperiment,
    events: ibis.Table,
    experiment: str,
    metrics: Sequence[MetricDefinition],
    start: object,
    end: object,
    cap_columns: dict[str, float],
) -> pd.DataFrame:
    exposed = prepared.exposed
    start = _start_of(prepared, start)
    day = _day_number(start)

    # Users enter on their exposure day with their covariate (known at exposure).
    index = {m: i for i, m in enumerate(prepared.metrics)}
    covariates = {
        f"m{i}_x": (m, prepared.columns[index[m]].x)
        for i, m in enumerate(metrics)
        if m.covariate_days is not None
    }
    users = exposed.select("user_id", "variant", "exposed_us", "row_id")
    if covariates:
        found = prepared.found
        known = found.select(
            (found.key // prepared.cells).name("x_row"),
            *[found[f"k{j}"] for j in sorted({j for _m, j in covariates.values()})],
        )
        users = users.left_join(known, users.row_id == known.x_row)
        users = users.select(
            "user_id",
            "variant",
            "exposed_us",
            **{
                name: _metric_value(users, m, j, "x", cap_columns.get(name))
                for name, (m, j) in covariates.items()
            },
        )
    entries = {}
    for column in covariates:
        i = column[1:].split("_")[0]
        entries[f"m{i}__sum_x"] = users[column].sum()
        entries[f"m{i}__sum_x2"] = (users[column] * users[column]).sum()
    entered = (
        users.group_by(["variant", day(users.exposed_us).name("day")])
        .aggregate(n=_.count(), **entries)
        .execute()
    )

    # Per (user, day) increments of each metric's numerator and denominator in its window.
    ev = _events(events, metrics, end)
    predicates = [users.user_id == ev.ev_user, ev.ev_us >= users.exposed_us]
    if all(m.window_days is not None for m in metrics):
        horizon = max(m.window_days for m in metrics)
        predicates.append(ev.ev_us < users.exposed_us + _microseconds(horizon))
    joined = _with_offset(users.join(ev, predicates))
    changes = _daily_changes(joined, metrics, day(joined.ev_us), covariates, cap_columns)

    return _cumulative_days(entered, changes, metrics, start, end)


def _cumulative_days(
    entered: pd.DataFrame,
    changes: pd.DataFrame,
    metrics: Sequence[MetricDefinition],
    start: pd.Timestamp,
    end: object,
) -> pd.DataFrame:
    """Per-day entries and changes to cumulative statistics on every day from 0 to the last.

    Anything before day 0 (users exposed before a given `start`, and their events) is already
    in the statistics of day 0, so the last day always matches the readout's totals."""
    entered = entered.assign(day=entered["day"].clip(lower=0))
    changes = changes.assign(day=changes["day"].clip(lower=0))
    days_seen = int(pd.concat([entered["day"], changes["day"]]).max())
    last_day = days_seen if end is None else (_utc(end) - start).ceil("D").days - 1
    variants = sorted(entered["variant"].unique())
    grid = pd.MultiIndex.from_product(
        [variants, range(0, max(last_day, 0) + 1)], names=["variant", "day"]
    )
    total = (
        pd.concat([entered, changes])
        .astype({"day": "int64"})
        .groupby(["variant", "day"])
        .sum(min_count=1)
        .reindex(grid)
        .fillna(0.0)
        .groupby(level="variant")
        .cumsum()
        .reset_index()
    )
    for column in [c for c in _expected_columns(metrics) if c not in total]:
        total[column] = 0.0
    total["n"] = total["n"].astype("int64")
    out = _long(total, metrics, ["day", "variant"])
    out = out[out["n"] > 0].reset_index(drop=True)
    out.insert(3, "date", (start + pd.to_timedelta(out["day"], unit="D")).dt.date)
    return out


def _daily_changes(
    joined: ibis.Table,
    metrics: Sequence[MetricDefinition],
    day: ibis.Value,
    covariates: Mapping[str, object],
    cap_columns: Mapping[str, float],
) -> pd.DataFrame:
    """Daily changes of every sum from per (user, day) increments and per-user running sums."""
    increments = {}
    for i, m in enumerate(metrics):
        post = _post(joined, m)
        increments[f"i{i}_y"] = ibis.ifelse(post, _amount(joined, m.events, m.value), 0.0).sum()
        if m.type == "ratio":
            increments[f"i{i}_d"] = ibis.ifelse(
                post, _amount(joined, m.denominator_events, m.denominator_value), 0.0
            ).sum()
    keys = ["user_id", "variant", *covariates]
    daily = joined.group_by([*keys, day.name("day")]).aggregate(**increments)
    running = ibis.window(group_by="user_id", order_by="day", rows=(None, 0))
    daily = daily.mutate(**{f"c{name[1:]}": daily[name].sum().over(running) for name in increments})

    def value(i: int, cumulative: ibis.Value, metric: MetricDefinition) -> ibis.Value:
        if metric.type == "conversion":
            return ibis.ifelse(cumulative > 0, 1.0, 0.0)
        cap = cap_columns.get(f"m{i}_y")
        return ibis.least(cumulative, cap) if cap is not None else cumulative

    deltas = {}
    for i, m in enumerate(metrics):
        cum_y = daily[f"c{i}_y"]
        prev_y = cum_y - daily[f"i{i}_y"]
        y_now, y_before = value(i, cum_y, m), value(i, prev_y, m)
        deltas[f"m{i}__sum_y"] = (y_now - y_before).sum()
        deltas[f"m{i}__sum_y2"] = (y_now * y_now - y_before * y_before).sum()
        if m.type == "ratio":
            d_now = daily[f"c{i}_d"]
            d_before = d_now - daily[f"i{i}_d"]
            deltas[f"m{i}__sum_d"] = daily[f"i{i}_d"].sum()
            deltas[f"m{i}__sum_d2"] = (d_now * d_now - d_before * d_before).sum()
            deltas[f"m{i}__sum_yd"] = (y_now * d_now - y_before * d_before).sum()
        if m.covariate_days is not None:
            deltas[f"m{i}__sum_xy"] = (daily[f"m{i}_x"] * (y_now - y_before)).sum()
    changes = daily.group_by(["variant", "day"]).aggregate(**deltas).execute()
    return changes


def _expected_columns(metrics: Sequence[MetricDefinition]) -> list[str]:
    names = []
    for i, m in enumerate(metrics):
        names += [f"m{i}__sum_y", f"m{i}__sum_y2"]
        if m.type == "ratio":
            names += [f"m{i}__sum_d", f"m{i}__sum_d2", f"m{i}__sum_yd"]
        if m.covariate_days is not None:
            names += [f"m{i}__sum_x", f"m{i}__sum_x2", f"m{i}__sum_xy"]
    return names


def planned_variants_missing(
    path: str | Path,
    file_format: str | None,
    experiment: str,
    variants: Sequence[str],
    columns: Mapping[str, str] | None = None,
) -> list[str]:
    """Problems with planned variants in an assignments file: a cheap scan before any kernel.

    Returns one message per problem (experiment absent, planned variants without assignments),
    or nothing when the file cannot be read here (the run then reports it as a data error).
    """
    columns = dict(columns or {})
    experiment_column = columns.get("experiment", "experiment")
    variant_column = columns.get("variant", "variant")
    from workbench.sources import connect_duckdb  # sources imports parameters, which imports us

    con = connect_duckdb()  # capped, with a spill folder of its own
    reader = {"parquet": con.read_parquet, "csv": con.read_csv, "json": con.read_json}
    try:
        table = reader.get(file_format or "parquet", con.read_parquet)(str(path))
        found = (
            table.filter(table[experiment_column].cast("string") == experiment)
            .select(v=table[variant_column].cast("string"))
            .distinct()
            .limit(1000)
            .execute()["v"]
        )
        others = (
            table.select(e=table[experiment_column].cast("string")).distinct().limit(20).execute()
        )
    except Exception:  # noqa: BLE001 - unreadable here; the run's contract check names it
        return []
    finally:
        con.disconnect()
    seen = {str(v) for v in found if v is not None}
    if not seen:
        return [
            f"experiment {experiment!r} has no assignments in {Path(path).name}; experiments "
            f"found: {sorted(map(str, others['e'].dropna()))}"
        ]
    problems = []
    unknown = [v for v in variants if v not in seen]
    if unknown:
        problems.append(
            f"variant(s) {unknown} have no assignments in experiment {experiment!r}; "
            f"the data has {sorted(seen)}"
        )
    unplanned = sorted(seen - set(variants))
    if unplanned:
        problems.append(
            f"the data has variant(s) {unplanned} in experiment {experiment!r} that 'variants' "
            "does not plan (give each a planned share)"
        )
    return problems
