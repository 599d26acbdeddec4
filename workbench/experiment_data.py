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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import ibis
import ibis.expr.datatypes as idt
import pandas as pd
from ibis import _

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
        """Exposed users with no event in the longest metric window after exposure."""
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
) -> ibis.Table:
    """One row per assigned user: variant count, first variant, first exposure (and segments).

    `segment` gives a column named "segment"; each of `segment_columns` a column "seg{j}".
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
    for name, column in wanted.items():
        value = rows[column].cast("string").fill_null(MISSING_SEGMENT)
        extra[name] = value.argmin(rows.assigned_at)
    return rows.group_by("user_id").aggregate(
        variants=_.variant.nunique(),
        variant=_.variant.min(),
        exposed_at=_.assigned_at.min(),
        **extra,
    )


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


def _seconds(days: float) -> ibis.Value:
    return ibis.interval(seconds=int(round(days * _DAY_S)))


def _property_column(prop: str) -> str:
    """Internal name of an event property in joined tables (no clash with our columns)."""
    return f"property__{prop}"


def _events(events: ibis.Table, metrics: Sequence[MetricDefinition], end: object) -> ibis.Table:
    """The event columns the metrics need, renamed so they cannot clash with user columns."""
    props = sorted({p for m in metrics for p in (m.value, m.denominator_value) if p})
    ev = events.select(
        ev_user=_.user_id,
        event=_.event,
        timestamp=_.timestamp,
        **{_property_column(p): events[p] for p in props},
    )
    return ev.filter(_.timestamp < _timestamp(end)) if end is not None else ev


def _amount(t: ibis.Table, names: tuple[str, ...], prop: str | None) -> ibis.Value:
    """Per-event contribution: the property (missing = 0) or 1, for the listed events; else 0."""
    column = _property_column(prop) if prop else None
    value = t[column].cast("float64").fill_null(0.0) if column else ibis.literal(1.0)
    return ibis.ifelse(t.event.isin(list(names)), value, 0.0)


def _microseconds(days: float) -> int:
    return int(round(days * _DAY_S)) * 1_000_000


def _with_offset(joined: ibis.Table) -> ibis.Table:
    """Joined rows with the event's offset from exposure in µs, computed once for all metrics."""
    return joined.mutate(offset_us=joined.timestamp.delta(joined.exposed_at, unit="microsecond"))


def _post(t: ibis.Table, metric: MetricDefinition) -> ibis.Value:
    inside = t.offset_us >= 0
    if metric.window_days is not None:
        inside &= t.offset_us < _microseconds(metric.window_days)
    return inside


def _pre(t: ibis.Table, metric: MetricDefinition) -> ibis.Value:
    return (t.offset_us < 0) & (t.offset_us >= -_microseconds(metric.covariate_days))


def _joined(
    users: ibis.Table, events: ibis.Table, metrics: Sequence[MetricDefinition], end: object
) -> ibis.Table:
    """Users left-joined to their events in the widest window any metric needs."""
    ev = _events(events, metrics, end)
    lookback = max((m.covariate_days or 0) for m in metrics)
    predicates = [users.user_id == ev.ev_user]
    predicates.append(
        ev.timestamp >= (users.exposed_at - _seconds(lookback) if lookback else users.exposed_at)
    )
    if all(m.window_days is not None for m in metrics):
        horizon = max(m.window_days for m in metrics)
        predicates.append(ev.timestamp < users.exposed_at + _seconds(horizon))
    return _with_offset(users.left_join(ev, predicates))


def _value_columns(t: ibis.Table, metrics: Sequence[MetricDefinition]) -> dict[str, ibis.Value]:
    """Per-user aggregates (y, d, x per metric) over the joined rows `t`, named m{i}_{y,d,x}."""
    out: dict[str, ibis.Value] = {}
    for i, m in enumerate(metrics):
        post = _post(t, m)
        y = ibis.ifelse(post, _amount(t, m.events, m.value), 0.0)
        if m.type == "conversion":
            out[f"m{i}_y"] = (y > 0).cast("float64").max().fill_null(0.0)
        else:
            out[f"m{i}_y"] = y.sum().fill_null(0.0)
        if m.type == "ratio":
            d = ibis.ifelse(post, _amount(t, m.denominator_events, m.denominator_value), 0.0)
            out[f"m{i}_d"] = d.sum().fill_null(0.0)
        if m.covariate_days is not None:
            x = ibis.ifelse(_pre(t, m), _amount(t, m.events, m.value), 0.0)
            if m.type == "conversion":
                out[f"m{i}_x"] = (x > 0).cast("float64").max().fill_null(0.0)
            else:
                out[f"m{i}_x"] = x.sum().fill_null(0.0)
    return out


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
    joined = _joined(users, events, metrics, end)
    keys = ["user_id", "variant", "exposed_at"] + (["segment"] if segment else [])
    keys += [f"seg{j}" for j in range(len(segment_columns))]
    values = _value_columns(joined, metrics)
    seen = ibis.ifelse(joined.timestamp >= joined.exposed_at, 1, 0).max().fill_null(0)
    return joined.group_by(keys).aggregate(has_events=seen, **values)


def _winsor_caps(per_user: ibis.Table, metrics: Sequence[MetricDefinition]) -> dict[str, float]:
    """Pooled (all arms) percentile of each winsorized per-user value, by engine column name."""
    wanted = {}
    for i, m in enumerate(metrics):
        if m.winsorize is None:
            continue
        wanted[f"m{i}_y"] = per_user[f"m{i}_y"].quantile(m.winsorize)
        if m.covariate_days is not None:
            wanted[f"m{i}_x"] = per_user[f"m{i}_x"].quantile(m.winsorize)
    if not wanted:
        return {}
    row = per_user.aggregate(**wanted).execute().iloc[0]
    return {name: float(row[name]) for name in wanted if pd.notna(row[name])}


def _capped(per_user: ibis.Table, caps: dict[str, float]) -> ibis.Table:
    if not caps:
        return per_user
    return per_user.mutate(**{c: ibis.least(per_user[c], cap) for c, cap in caps.items()})


def _caps_by_metric(caps: dict[str, float], metrics: Sequence[MetricDefinition]) -> dict:
    out: dict[str, dict[str, float]] = {}
    for column, cap in caps.items():
        index, part = column[1:].split("_")
        out.setdefault(metrics[int(index)].name, {})[{"y": "value", "x": "covariate"}[part]] = cap
    return out


def _sums(t: ibis.Table, metrics: Sequence[MetricDefinition]) -> dict[str, ibis.Value]:
    """Aggregates of per-user columns m{i}_{y,d,x} into per-arm sufficient statistics."""
    out: dict[str, ibis.Value] = {}
    for i, m in enumerate(metrics):
        y = t[f"m{i}_y"]
        out[f"m{i}__sum_y"] = y.sum()
        out[f"m{i}__sum_y2"] = (y * y).sum()
        if m.type == "ratio":
            d = t[f"m{i}_d"]
            out[f"m{i}__sum_d"] = d.sum()
            out[f"m{i}__sum_d2"] = (d * d).sum()
            out[f"m{i}__sum_yd"] = (y * d).sum()
        if m.covariate_days is not None:
            x = t[f"m{i}_x"]
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


def experiment_stats(
    assignments: ibis.Table,
    events: ibis.Table,
    experiment: str,
    metrics: Sequence[MetricDefinition],
    *,
    end: object = None,
    segments: Sequence[str] = (),
    top_k: int = 10,
) -> ExperimentStats:
    """Per-arm sufficient statistics of every metric, plus assignment and event-quality counts.

    With `segments`, the same engine pass also gives the statistics per segment value (the
    top_k largest values of each column, the rest as "other"), in `ExperimentStats.segments`:
    per-arm sums are additive, so one GROUP BY over the segment labels serves them all.
    """
    _check_metrics(metrics, events)
    if top_k < 1:
        raise ExperimentDataError("top_k must be at least 1")
    assigned = _assignment_users(assignments, experiment, segment=None, end=end)
    summary = (
        assigned.group_by(["variant", (_.variants > 1).name("multiple")])
        .aggregate(users=_.count(), first=_.exposed_at.min(), last=_.exposed_at.max())
        .execute()
    )
    if summary.empty:
        found = assignments.select("experiment").distinct().limit(20).execute()["experiment"]
        raise ExperimentDataError(
            f"no assignments for experiment {experiment!r}; experiments found: "
            f"{sorted(map(str, found))}"
        )
    multiple = summary["multiple"].astype(bool)
    clean = summary[~multiple]
    multi_users = int(summary.loc[multiple, "users"].sum())
    if clean.empty:
        raise ExperimentDataError(
            f"experiment {experiment!r}: every assigned user is in more than one variant"
        )

    segments = list(segments)
    per_user = per_user_values(
        assignments, events, experiment, metrics, end=end, segment_columns=segments
    )
    caps = _pooled_caps(assignments, events, experiment, metrics, end)
    per_user = _capped(per_user, caps)
    labels = _top_segment_labels(assignments, experiment, segments, top_k, end)
    relabel = {
        f"seg{j}": ibis.ifelse(per_user[f"seg{j}"].isin(top), per_user[f"seg{j}"], OTHER_SEGMENT)
        for j, top in enumerate(labels)
        if top
    }
    labelled = per_user.mutate(**relabel) if relabel else per_user
    by_label = (
        labelled.group_by(["variant", *[f"seg{j}" for j in range(len(segments))]])
        .aggregate(n=_.count(), with_events=_.has_events.sum(), **_sums(labelled, metrics))
        .execute()
    )
    sums = [c for c in by_label.columns if c == "n" or c == "with_events" or "__sum_" in c]
    wide = by_label.groupby("variant", as_index=False)[sums].sum()
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
        caps=_caps_by_metric(caps, metrics),
        first_exposure=pd.Timestamp(clean["first"].min()),
        last_exposure=pd.Timestamp(clean["last"].max()),
        segments=_segment_frames(by_label, sums, segments, labels, metrics),
    )


def _pooled_caps(
    assignments: ibis.Table,
    events: ibis.Table,
    experiment: str,
    metrics: Sequence[MetricDefinition],
    end: object,
) -> dict[str, float]:
    """Winsorization caps from a pass over only the winsorized metrics and their events."""
    winsorized = [m for m in metrics if m.winsorize is not None]
    if not winsorized:
        return {}
    needed = sorted({e for m in winsorized for e in m.events})
    subset = per_user_values(
        assignments, events.filter(events.event.isin(needed)), experiment, winsorized, end=end
    )
    caps = _caps_by_metric(_winsor_caps(subset, winsorized), winsorized)
    return _cap_columns(caps, metrics)


def _top_segment_labels(
    assignments: ibis.Table, experiment: str, segments: list[str], top_k: int, end: object
) -> list[list[str]]:
    """The top_k most common values of each segment column among exposed users."""
    if not segments:
        return []
    users = exposures(assignments, experiment, end=end, segment_columns=segments)
    labels = []
    for j in range(len(segments)):
        ranked = (
            users.group_by(f"seg{j}")
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
    if top_k < 1:
        raise ExperimentDataError("top_k must be at least 1")
    per_user = per_user_values(assignments, events, experiment, metrics, segment=segment, end=end)
    users = exposures(assignments, experiment, segment=segment, end=end)
    ranked = (
        users.group_by("segment")
        .aggregate(users=_.count())
        .order_by([ibis.desc("users"), "segment"])
        .limit(top_k)
        .execute()
    )
    top = [str(s) for s in ranked["segment"]]
    cap_columns = _cap_columns(caps, metrics) if caps is not None else None
    per_user = _capped(
        per_user, cap_columns if cap_columns is not None else _winsor_caps(per_user, metrics)
    )
    labelled = per_user.mutate(
        segment=ibis.ifelse(_.segment.isin(top), _.segment, OTHER_SEGMENT) if top else _.segment
    )
    wide = (
        labelled.group_by(["segment", "variant"])
        .aggregate(n=_.count(), **_sums(labelled, metrics))
        .execute()
    )
    out = _long(wide, metrics, ["segment", "variant"])
    rank = {s: i for i, s in enumerate([*top, OTHER_SEGMENT])}
    out["segment_rank"] = out["segment"].map(rank).astype("int64")
    return out.sort_values(
        ["segment_rank", "metric", "variant"], kind="stable", key=_metric_order(metrics)
    ).reset_index(drop=True)


def _cap_columns(
    caps: dict[str, dict[str, float]], metrics: Sequence[MetricDefinition]
) -> dict[str, float]:
    out = {}
    for i, m in enumerate(metrics):
        for part, name in (("y", "value"), ("x", "covariate")):
            if name in caps.get(m.name, {}):
                out[f"m{i}_{part}"] = caps[m.name][name]
    return out


def daily_stats(
    assignments: ibis.Table,
    events: ibis.Table,
    experiment: str,
    metrics: Sequence[MetricDefinition],
    *,
    start: object = None,
    end: object = None,
    caps: dict[str, dict[str, float]] | None = None,
) -> pd.DataFrame:
    """Cumulative sufficient statistics as of the end of each day since the experiment start."""
    _check_metrics(metrics, events)
    per_user = per_user_values(assignments, events, experiment, metrics, end=end)
    cap_columns = (
        _cap_columns(caps, metrics) if caps is not None else _winsor_caps(per_user, metrics)
    )
    if start is None:
        exposed = exposures(assignments, experiment, end=end)
        first = exposed.aggregate(first=_.exposed_at.min()).execute()["first"].iloc[0]
        if pd.isna(first):
            raise ExperimentDataError(f"no exposed users in experiment {experiment!r}")
        start = _utc(first).floor("D")
    start = _utc(start)
    start_epoch = int(start.timestamp())

    def day(ts: ibis.Value) -> ibis.Value:
        return (ts.epoch_seconds().cast("int64") - start_epoch) // _DAY_S

    # Users enter on their exposure day with their covariate (known at exposure).
    covariates = [f"m{i}_x" for i, m in enumerate(metrics) if m.covariate_days is not None]
    if covariates:
        users = per_user.select("user_id", "variant", "exposed_at", *covariates)
    else:
        users = exposures(assignments, experiment, end=end)
    users = _capped(users, {c: v for c, v in cap_columns.items() if c in covariates})
    entries = {}
    for column in covariates:
        i = column[1:].split("_")[0]
        entries[f"m{i}__sum_x"] = users[column].sum()
        entries[f"m{i}__sum_x2"] = (users[column] * users[column]).sum()
    entered = (
        users.group_by(["variant", day(users.exposed_at).name("day")])
        .aggregate(n=_.count(), **entries)
        .execute()
    )

    # Per (user, day) increments of each metric's numerator and denominator in its window.
    ev = _events(events, metrics, end)
    ev = ev.filter(
        ev.event.isin(sorted({e for m in metrics for e in (*m.events, *m.denominator_events)}))
    )
    predicates = [users.user_id == ev.ev_user, ev.timestamp >= users.exposed_at]
    if all(m.window_days is not None for m in metrics):
        horizon = max(m.window_days for m in metrics)
        predicates.append(ev.timestamp < users.exposed_at + _seconds(horizon))
    joined = _with_offset(users.join(ev, predicates))
    increments = {}
    for i, m in enumerate(metrics):
        post = _post(joined, m)
        increments[f"i{i}_y"] = ibis.ifelse(post, _amount(joined, m.events, m.value), 0.0).sum()
        if m.type == "ratio":
            increments[f"i{i}_d"] = ibis.ifelse(
                post, _amount(joined, m.denominator_events, m.denominator_value), 0.0
            ).sum()
    keys = ["user_id", "variant", *covariates]
    daily = joined.group_by([*keys, day(joined.timestamp).name("day")]).aggregate(**increments)
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
    con = ibis.duckdb.connect()
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
