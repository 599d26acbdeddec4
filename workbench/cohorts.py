"""Cohort adoption: retention matrices, feature adoption, stickiness, lifecycle and segment tests.

Everything heavy runs in the engine (Ibis, DuckDB by default) and only small frames come back.
`cohort_activity` reduces the events to one row per unit (user or account) — its cohort, its
segment values and the local days it was active as a bitmask (56 days per 64-bit word: eight
whole weeks) — and, for features, one row per unit and feature used inside its adoption
window. That is one GROUP BY per user over the raw events plus one over the feature events
only, instead of a DISTINCT over (user, period) and a self-join; every other function is a
query over those small tables, materialised once as temporary tables.

Local time: on DuckDB, `timezone()` and casting a timestamptz to a naive timestamp (what
`workbench.engine.local_time` compiles to) go through ICU and cost tens of seconds per 50M rows,
so local days are computed as epoch microseconds plus the zone's UTC offset, taken from a small
CASE over the offset changes (from zoneinfo) inside the data's span. Other backends, and spans
too long for that table, use `local_time`. Both paths are tested to agree with pandas.

Definitions (and where they differ from PostHog, whose words analysts often know):

- **Cohort** — the calendar period (day, week or month, in the analysis timezone) of the unit's
  signup (`cohort_by="signup"`) or first activity (`"first_activity"`). Each unit belongs to
  exactly one cohort, like PostHog's "first time" retention; PostHog's default "recurring"
  retention lets a user re-enter a cohort every period in which they do the start event.
- **Weeks** start on Monday unless `week_start` says otherwise; PostHog's default week starts on
  Sunday (a project setting there).
- **Periods are calendar periods** in local time (a daylight-saving week is 167 or 169 hours);
  PostHog can instead count 24-hour windows from the start event.
- **Retention "on" period N** — active in exactly period N after the cohort period; **"on or
  after" N** — active in N or any later period observed up to `as_of` (PostHog: "cumulative").
  Period 0 is the cohort size by definition (retention 100%), whatever the unit did in it.
- **Active** — at least `min_events` activity events (any event, or the listed ones) in the
  period; PostHog calls this "minimum occurrences".
- **Cell states** — `complete` (the period ended by the end of observation), `in_progress` (it
  overlaps the end) or `not_observable` (it starts after the end): such cells have no count and
  no rate, never a 0. The average curve uses complete cells only, weighted by cohort size, with
  the number of cohorts behind each point (PostHog offers a simple or a weighted mean).
- **Lifecycle** — new: active, and the period holds the unit's first-ever activity in the full
  event history (PostHog: the person or group profile was *created* in the period, so a user who
  signs up in week 1 and is first active in week 3 is "resurrecting" in PostHog and "new" here);
  returning: active this period and the previous one; resurrecting: active, not in the previous
  period, but active at some time before; dormant: active in the previous period, not in this
  one. Counts are positive here; charts draw dormant below zero.
- **Adoption** — a unit adopts a feature if its first use is at most `adoption_window_days`
  after its cohort anchor (signup or first activity); only units whose window ended by `as_of`
  count in the denominator. Time to first use is a Kaplan–Meier curve (statsmodels
  `SurvfuncRight`) that censors units still inside their window, to the hour. Events before the
  anchor never count as a use. Repeat use: the adopter used the feature again on a later local
  day inside the window. Breadth: how many of the listed features a unit adopted in its window.
- **Stickiness** — per calendar week: the average daily active units over the week divided by
  MAU, the units active on any of the 30 days ending on the week's last day (also WAU / MAU);
  daily active units per day; and the distribution of active days per week among the units
  active that week. PostHog's "stickiness" insight is the distribution of active intervals.
- **End of observation** — `as_of`; by default the local day of the last event, counted as fully
  observed. A date means "through the end of that local day"; a timestamp is an exact instant.
  Events after it are ignored. `start` is rounded down to the start of its period and is the
  first cohort; by default it is the first signup's day, or the first event's day when signups
  go back more than one period before the first event (old users in a recent event log).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import itertools
import math
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import ibis
import ibis.expr.datatypes as idt
import numpy as np
import pandas as pd
from ibis import _

from workbench.engine import local_time
from workbench.errors import DataContractError, ParameterError
from workbench.results import Check

__all__ = [
    "CohortActivity",
    "CohortAdoption",
    "CohortSettings",
    "FeatureAdoption",
    "Stickiness",
    "average_retention",
    "cohort_activity",
    "cohort_adoption",
    "cohort_checks",
    "feature_adoption",
    "lifecycle",
    "retention_matrix",
    "segment_comparison",
    "stickiness",
]

Period = Literal["day", "week", "month"]
Unit = Literal["user", "account"]
CohortBy = Literal["signup", "first_activity"]
Retention = Literal["on", "on_or_after"]
State = Literal["complete", "in_progress", "not_observable"]

SECOND_US = 1_000_000
HOUR_US = 3600 * SECOND_US
DAY_US = 24 * HOUR_US
BLOCK = 56  # days (or periods) per bitmask word: eight whole weeks, well inside 63 bits
MAX_WORDS = 64  # about ten years of days; longer windows must set `start`
MAX_ZONE_CHANGES = 400  # UTC-offset changes inlined as a CASE before falling back to local_time
MAX_SPAN_YEARS = 150  # longer spans of timestamps use local_time (the portable path)
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MAU_DAYS, WAU_DAYS = 30, 7
ONE = ibis.literal(1).cast("int64")


# --- Settings ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CohortSettings:
    """The cohort analysis settings, validated; every problem is reported at once.

    `activity` is None for "any event" or a tuple of event names; `features` maps a feature
    name to the tuple of events that count as using it; `week_start` is 0 (Monday) … 6 (Sunday)
    after validation; `as_of` and `start` stay as given and are resolved against the data.
    """

    unit: Unit = "user"
    cohort_by: CohortBy = "signup"
    period: Period = "week"
    week_start: int | str = "monday"
    timezone: str = "UTC"
    periods: int = 12
    activity: tuple[str, ...] | str | None = None
    retention: Retention = "on"
    min_events: int = 1
    features: Mapping[str, Any] = field(default_factory=dict)
    adoption_window_days: int = 14
    segments: tuple[str, ...] | str = ()
    as_of: date | datetime | str | None = None
    start: date | str | None = None
    min_cohort_size: int = 30

    def __post_init__(self) -> None:
        problems: list[str] = []
        choice = {
            "unit": ("user", "account"),
            "cohort_by": ("signup", "first_activity"),
            "period": ("day", "week", "month"),
            "retention": ("on", "on_or_after"),
        }
        for name, allowed in choice.items():
            if getattr(self, name) not in allowed:
                problems.append(f"{name}: {getattr(self, name)!r} is not one of {list(allowed)}")
        set_ = object.__setattr__
        set_(self, "week_start", _week_start(self.week_start, problems))
        try:
            ZoneInfo(str(self.timezone))
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(f"timezone: {self.timezone!r} is not an IANA timezone name")
        for name, low in (
            ("periods", 0),
            ("min_events", 1),
            ("adoption_window_days", 1),
            ("min_cohort_size", 1),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
                problems.append(f"{name}: must be a whole number ≥ {low}, not {value!r}")
        set_(self, "activity", _event_list(self.activity, "activity", problems, allow_none=True))
        features = {}
        if not isinstance(self.features, Mapping):
            problems.append("features: must map a feature name to an event or a list of events")
        else:
            for name, events in self.features.items():
                if not isinstance(name, str) or not name.strip():
                    problems.append(f"features: feature names must be text, not {name!r}")
                    continue
                features[name] = _event_list(events, f"features.{name}", problems)
        set_(self, "features", features)
        segments = (self.segments,) if isinstance(self.segments, str) else self.segments
        try:
            segments = tuple(segments or ())
        except TypeError:
            segments = ()
            problems.append(f"segments: must be a column name or a list, not {self.segments!r}")
        if any(not isinstance(s, str) or not s for s in segments):
            problems.append(f"segments: column names must be text, not {list(segments)!r}")
        set_(self, "segments", segments)
        for name in ("as_of", "start"):
            try:
                _as_date_or_time(getattr(self, name), name)
            except ValueError as exc:
                problems.append(str(exc))
        if problems:
            raise ParameterError(problems, source="cohort settings")

    @property
    def week_start_name(self) -> str:
        """The week's first day as a name ("Monday")."""
        return WEEKDAYS[int(self.week_start)].capitalize()


def _week_start(value: object, problems: list[str]) -> int:
    if isinstance(value, int | np.integer) and not isinstance(value, bool) and 0 <= value <= 6:
        return int(value)
    if isinstance(value, str):
        key = value.strip().lower()
        for i, name in enumerate(WEEKDAYS):
            if key in (name, name[:3]):
                return i
    problems.append(f"week_start: {value!r} is not a weekday name (monday … sunday) or 0–6")
    return 0


def _event_list(
    value: object, name: str, problems: list[str], *, allow_none: bool = False
) -> tuple[str, ...] | None:
    if value is None and allow_none:
        return None
    events = (value,) if isinstance(value, str) else value
    try:
        events = tuple(events)  # type: ignore[arg-type]
    except TypeError:
        events = ()
    if not events or any(not isinstance(e, str) or not e for e in events):
        problems.append(
            f"{name}: must be an event name or a non-empty list of names, not {value!r}"
        )
        return () if not allow_none else None
    return tuple(dict.fromkeys(events))


def _as_date_or_time(value: object, name: str) -> date | pd.Timestamp | None:
    """None, a date (a whole local day) or a timestamp (naive = local wall-clock time)."""
    if value is None:
        return None
    if isinstance(value, pd.Timestamp | datetime):
        return pd.Timestamp(value)
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
        try:
            return pd.Timestamp(text)
        except ValueError:
            pass
    raise ValueError(f"{name}: {value!r} is not a date (YYYY-MM-DD) or a timestamp")


# --- Calendar: local days, periods, UTC offsets --------------------------------------------------


def _offset_us(zone: ZoneInfo, utc_seconds: int) -> int:
    local = datetime.fromtimestamp(utc_seconds, tz=zone)
    return int(local.utcoffset().total_seconds()) * SECOND_US


def _zone_changes(
    zone: ZoneInfo, lo_us: int, hi_us: int
) -> tuple[int, list[tuple[int, int]]] | None:
    """The UTC offset at `lo_us` and every change up to `hi_us` as (UTC instant, new offset).

    None when the span is too long to walk (timestamps decades apart, e.g. sentinel dates).
    """
    step = 86400
    lo, hi = lo_us // SECOND_US - step, hi_us // SECOND_US + step
    if hi - lo > MAX_SPAN_YEARS * 366 * 86400:
        return None
    first = previous = _offset_us(zone, lo)
    changes: list[tuple[int, int]] = []
    t = lo
    while t < hi:
        nxt = min(t + step, hi)
        if _offset_us(zone, nxt) != previous:
            a, b = t, nxt  # offset(a) == previous != offset(b): bisect to the second
            while b - a > 1:
                mid = (a + b) // 2
                if _offset_us(zone, mid) == previous:
                    a = mid
                else:
                    b = mid
            previous = _offset_us(zone, b)
            changes.append((b * SECOND_US, previous))
            if len(changes) > MAX_ZONE_CHANGES:
                return None
            nxt = b  # look again from the change: two changes may share a day
        t = nxt
    return first, changes


@dataclass(frozen=True)
class _Clock:
    """UTC timestamps to epoch microseconds and local day numbers, inside the engine.

    On DuckDB, `timezone()` and the cast of a timestamptz to a naive timestamp go through ICU
    (tens of seconds on 50M rows), so the fast path reads `epoch_us` and adds the zone's UTC
    offset from a small CASE over the offset changes inside the data's time span (computed with
    zoneinfo). Elsewhere the portable path uses `workbench.engine.local_time`.
    """

    zone: str
    fast: bool
    first_offset: int = 0
    changes: tuple[tuple[int, int], ...] = ()

    @classmethod
    def build(cls, zone: str, lo_us: int, hi_us: int, *, duckdb: bool) -> _Clock:
        found = _zone_changes(ZoneInfo(zone), lo_us, hi_us) if duckdb else None
        if found is None:
            return cls(zone, False)
        return cls(zone, True, found[0], tuple(found[1]))

    def epoch_us(self, ts: ibis.Value) -> ibis.Value:
        """Microseconds since 1970-01-01 UTC of a UTC timestamp column."""
        return _epoch_us(ts, self.fast)

    def local_us(self, us: ibis.Value) -> ibis.Value:
        """Local wall-clock microseconds (fast path only) from UTC epoch microseconds."""
        if not self.changes:
            return us + self.first_offset if self.first_offset else us
        branches, previous = [], self.first_offset
        for at, offset in self.changes:
            branches.append((us < at, previous))
            previous = offset
        return us + ibis.cases(*branches, else_=previous)

    def columns(self, ts: ibis.Value) -> tuple[ibis.Value, ibis.Value]:
        """(UTC epoch microseconds, local day number) of a UTC timestamp column."""
        us = self.epoch_us(ts)
        if self.fast:
            return us, _quotient(self.local_us(us), DAY_US, duckdb=True)
        seconds = local_time(ts, self.zone).epoch_seconds()
        return us, (seconds // 86400).cast("int64")

    def local_day_of(self, utc_us: int) -> int:
        """The local day number of one UTC instant (Python side)."""
        return (utc_us + _offset_us(ZoneInfo(self.zone), utc_us // SECOND_US)) // DAY_US


@ibis.udf.scalar.builtin(name="epoch_us")
def _duckdb_epoch_us(ts: idt.Timestamp(timezone="UTC")) -> idt.int64:
    """DuckDB's epoch_us(timestamptz): plain integer microseconds, no calendar work."""


@ibis.udf.scalar.builtin(name="divide")
def _duckdb_divide(a: idt.int64, b: idt.int64) -> idt.int64:
    """DuckDB's integer division (truncating, so only used on values ≥ 0)."""


def _quotient(a: ibis.Value, b: int, *, duckdb: bool) -> ibis.Value:
    """⌊a / b⌋ for a ≥ 0: DuckDB's integer `divide`, else the portable floor division (which
    Ibis compiles through a float division, exact here because |a| < 2**53)."""
    if duckdb:
        return _duckdb_divide(a.cast("int64"), ibis.literal(b, type="int64"))
    return (a // b).cast("int64")


def _epoch_us(ts: ibis.Value, duckdb: bool) -> ibis.Value:
    """Epoch microseconds: DuckDB's builtin, else the portable `epoch_seconds` (any backend)."""
    if duckdb:
        return _duckdb_epoch_us(ts)
    return (ts.epoch_seconds() * SECOND_US).cast("int64")


def _day_to_date(day: int) -> date:
    return date.fromordinal(day + EPOCH_ORDINAL)


def _date_to_day(d: date) -> int:
    return d.toordinal() - EPOCH_ORDINAL


@dataclass(frozen=True)
class Calendar:
    """Periods, the observation window and the bitmask layout of one cohort analysis.

    Day numbers count local days since 1970-01-01; period numbers are days, weeks since a week
    start, or months since year 0. `d0` is the first day in the activity bitmask.
    """

    period: Period
    week_start: int
    timezone: str
    obs_end_us: int  # end of observation, exclusive, UTC epoch microseconds
    obs_end_local_us: int  # the same instant as local wall-clock microseconds
    p_first: int  # first cohort period
    p_last: int  # last (possibly in-progress) period
    d0: int
    words: int
    first_event_day: int | None

    @classmethod
    def spanning(
        cls,
        s: CohortSettings,
        obs_end_us: int,
        obs_end_local_us: int,
        start_day: int,
        first_event_day: int | None,
    ) -> Calendar:
        """The calendar from the first cohort's day to the end of observation, with a bitmask
        reaching back one period and one MAU window before the first cohort."""
        ws = int(s.week_start)
        last_day = (obs_end_local_us - 1) // DAY_US
        p_first = _period_of(start_day, s.period, ws)
        p_last = _period_of(last_day, s.period, ws)
        d0 = min(
            _period_start_day(p_first - 1, s.period, ws),
            _period_start_day(p_first, s.period, ws) - (MAU_DAYS - 1),
        )
        d0 -= (d0 + 3 - ws) % 7  # align to a week start: weeks never straddle words
        words = max(1, -(-(last_day - d0 + 1) // BLOCK))
        if words > MAX_WORDS:
            raise ParameterError(
                [
                    f"start: the window spans {last_day - d0 + 1:,} days from "
                    f"{_day_to_date(d0)}; at most {MAX_WORDS * BLOCK:,} are supported — set "
                    "start (or as_of) to a shorter window"
                ],
                source="cohort settings",
            )
        return cls(
            s.period,
            ws,
            s.timezone,
            obs_end_us,
            obs_end_local_us,
            p_first,
            p_last,
            d0,
            words,
            first_event_day,
        )

    # Python-side period arithmetic on local day numbers
    def period_of(self, day: int) -> int:
        """The period number of a local day."""
        return _period_of(day, self.period, self.week_start)

    def start_day(self, p: int) -> int:
        """The first local day of period `p`."""
        return _period_start_day(p, self.period, self.week_start)

    def end_day(self, p: int) -> int:
        """The first local day after period `p`."""
        return self.start_day(p + 1)

    def start(self, p: int) -> pd.Timestamp:
        """The local start of period `p` (naive)."""
        return pd.Timestamp(_day_to_date(self.start_day(p)))

    def state(self, p: int) -> State:
        """complete / in_progress / not_observable for period `p`."""
        if self.end_day(p) * DAY_US <= self.obs_end_local_us:
            return "complete"
        if self.start_day(p) * DAY_US < self.obs_end_local_us:
            return "in_progress"
        return "not_observable"

    @property
    def last_day(self) -> int:
        """The last local day with any observation."""
        return (self.obs_end_local_us - 1) // DAY_US

    @property
    def empty(self) -> bool:
        """Whether the window holds no cohort period."""
        return self.p_first > self.p_last

    @property
    def cohort_periods(self) -> range:
        """Every cohort period in the window."""
        return range(self.p_first, self.p_last + 1)

    @property
    def observed_until(self) -> pd.Timestamp:
        """The end of observation as local wall-clock time (naive)."""
        return pd.Timestamp(self.obs_end_local_us, unit="us")


def _period_of(day: int, period: Period, week_start: int) -> int:
    """The period number of a local day number (Python side)."""
    if period == "day":
        return day
    if period == "week":
        return (day + 3 - week_start) // 7
    d = _day_to_date(day)
    return d.year * 12 + d.month - 1


def _period_start_day(p: int, period: Period, week_start: int) -> int:
    """The first local day number of period `p` (Python side)."""
    if period == "day":
        return p
    if period == "week":
        return 7 * p - 3 + week_start
    return _date_to_day(date(p // 12, p % 12 + 1, 1))


def _period_expr(day: ibis.Value, period: Period, week_start: int) -> ibis.Value:
    """The period number of a local day number, inside the engine (integer arithmetic only)."""
    if period == "day":
        return day
    if period == "week":
        return ((day + (3 - week_start)) // 7).cast("int64")
    # civil-from-days (proleptic Gregorian), valid for days after 0000-03-01
    z = day + 719468
    era = (z // 146097).cast("int64")
    doe = z - era * 146097
    yoe = ((doe - doe // 1460 + doe // 36524 - doe // 146096) // 365).cast("int64")
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = ((5 * doy + 2) // 153).cast("int64")
    month = ibis.cases((mp < 10, mp + 3), else_=mp - 9)
    year = yoe + era * 400 + ibis.cases((month <= 2, 1), else_=0)
    return (year * 12 + month - 1).cast("int64")


# --- Input checks --------------------------------------------------------------------------------


def _require(table: ibis.Table, name: str, columns: dict[str, str]) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataContractError(
            name,
            f"required column(s) {missing} missing; found {list(table.columns)}",
            column=missing[0],
        )
    for column, kind in columns.items():
        dtype = table[column].type()
        if dtype.is_null():  # an empty column from an empty frame: nothing to check
            continue
        if kind == "id":
            if not (dtype.is_string() or dtype.is_integer()):
                raise DataContractError(
                    name,
                    f"ids must be text or whole numbers, not {dtype} "
                    "(a column mixing numbers and text needs one type: conform it first)",
                    column=column,
                )
        elif kind == "timestamp":
            if not dtype.is_timestamp():
                raise DataContractError(
                    name, f"expected a UTC timestamp, found {dtype}", column=column
                )
            if dtype.timezone is None:
                raise DataContractError(
                    name,
                    "timestamps have no timezone, so local periods would be guessed; conform "
                    "the table first (workbench.contracts.conform reads them as UTC and notes it)",
                    column=column,
                )
        elif kind == "text" and not dtype.is_string():
            raise DataContractError(name, f"expected text, found {dtype}", column=column)


def _normalise(
    users: ibis.Table, events: ibis.Table, s: CohortSettings
) -> tuple[ibis.Table, ibis.Table]:
    user_columns = {"user_id": "id", "signup_at": "timestamp"}
    if s.unit == "account":
        user_columns["account_id"] = "id"
    _require(users, "users", user_columns)
    _require(events, "events", {"user_id": "id", "event": "text", "timestamp": "timestamp"})
    unknown = [c for c in s.segments if c not in users.columns]
    if unknown:
        raise ParameterError(
            [f"segments: column(s) {unknown} not in the users table {list(users.columns)}"],
            source="cohort settings",
        )
    reserved = {"user_id", "signup_at", "account_id"}
    clash = [c for c in s.segments if c in reserved]
    if clash:
        raise ParameterError([f"segments: {clash} cannot be a segment"], source="cohort settings")
    utc = idt.Timestamp(timezone="UTC")

    def cast(col: ibis.Value, to: Any) -> ibis.Value:
        return col if col.type() == to else col.cast(to)

    if events.event.type().is_null():
        events = events.mutate(event=events.event.cast(idt.string))

    u = {
        "user_id": cast(users.user_id, idt.string),
        "signup_at": cast(users.signup_at, utc),
    }
    if s.unit == "account":
        u["account_id"] = cast(users.account_id, idt.string)
    for c in s.segments:
        u[c] = users[c]
    users_n = users.select(**u)
    users_n = users_n.filter(users_n.user_id.notnull(), users_n.signup_at.notnull())
    # no filter on events: rows with a null id, event or timestamp drop out of every join,
    # IN list and time bound by themselves, and an unfiltered scan can use Parquet statistics
    events_n = events.select(
        user_id=cast(events.user_id, idt.string),
        event=events.event,
        timestamp=cast(events.timestamp, utc),
    )
    return users_n, events_n


# --- The per-unit activity table ----------------------------------------------------------------


@dataclass
class CohortActivity:
    """One row per unit in the engine, plus the calendar and settings that produced it.

    Columns of `table`: unit_id, anchor_us (UTC epoch µs of signup or first activity), cohort
    (period number), in_cohort (cohort inside the window), the segment columns, `pre` (activity
    before the bitmask starts) and `w0…` (active local days, bit i of word j = day d0+56j+i);
    with `min_events` > 1 also `mpre`/`m0…` (active periods, bit per period from p_first - 1).
    `uses` (when features are given) has one row per unit in a cohort and feature index fi it
    used inside its adoption window: first (µs of first use), dmin / dmax (local days of first
    and last use), n (uses), and the unit's anchor_us, cohort and segment columns.
    """

    table: ibis.Table
    settings: CohortSettings
    calendar: Calendar
    users: ibis.Table
    events: ibis.Table
    stats: dict[str, Any]
    store: _TempTables | None = None
    uses: ibis.Table | None = None
    computed: dict[Any, pd.DataFrame] = field(default_factory=dict, repr=False)

    @property
    def features(self) -> dict[str, tuple[str, ...]]:
        """Feature name → events, in the order given."""
        return dict(self.settings.features)

    def close(self) -> None:
        """Drop the temporary engine tables (they also go when the connection closes)."""
        if self.store is not None:
            self.store.drop_all()

    def __enter__(self) -> CohortActivity:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # expressions over `table`
    def _words(self, kind: Literal["day", "period"]) -> tuple[str, int]:
        if kind == "period" and self.settings.min_events > 1:
            return "m", self.calendar.p_first - 1
        return "w", self.calendar.d0

    def _any(self, prefix: str, lo: int, hi: int) -> ibis.Value:
        """Whether any bit in positions [lo, hi) of the `prefix` words is set."""
        n_words = self.stats["mark_words"] if prefix == "m" else self.calendar.words
        lo, hi = max(lo, 0), min(hi, n_words * BLOCK)
        if lo >= hi:
            return ibis.literal(False)
        t = self.table
        parts = []
        for j in range(lo // BLOCK, (hi - 1) // BLOCK + 1):
            a, b = max(lo, j * BLOCK) - j * BLOCK, min(hi, (j + 1) * BLOCK) - j * BLOCK
            mask = ((1 << (b - a)) - 1) << a
            parts.append((t[f"{prefix}{j}"] & ibis.literal(mask).cast("int64")) != 0)
        out = parts[0]
        for p in parts[1:]:
            out = out | p
        return out

    def active_in(self, p: int) -> ibis.Value:
        """Whether the unit was active in period `p` (meeting `min_events`)."""
        prefix, origin = self._words("period")
        if prefix == "m":
            return self._any("m", p - origin, p - origin + 1)
        cal = self.calendar
        return self._any("w", cal.start_day(p) - origin, cal.end_day(p) - origin)

    def active_from(self, p: int) -> ibis.Value:
        """Whether the unit was active in period `p` or any later observed period."""
        prefix, origin = self._words("period")
        lo = p - origin if prefix == "m" else self.calendar.start_day(p) - origin
        return self._any(prefix, lo, 10**9)

    def active_before(self, p: int) -> ibis.Value:
        """Whether the unit was ever active before period `p` (full history)."""
        prefix, origin = self._words("period")
        hi = p - origin if prefix == "m" else self.calendar.start_day(p) - origin
        pre = self.table["mpre" if prefix == "m" else "pre"]
        return pre | self._any(prefix, 0, hi)

    def active_days(self, lo_day: int, hi_day: int) -> ibis.Value:
        """Whether the unit had an activity event on any local day in [lo_day, hi_day)."""
        d0 = self.calendar.d0
        return self._any("w", lo_day - d0, hi_day - d0)


def cohort_activity(users: ibis.Table, events: ibis.Table, **settings: Any) -> CohortActivity:
    """Reduce the events to one row per unit in the engine and materialise it (see module doc).

    `users` and `events` are conformed Ibis tables (users: user_id, signup_at, optional
    account_id and segment columns; events: user_id, event, timestamp in UTC). Keyword settings
    are those of `CohortSettings`. Raises ParameterError for bad settings and DataContractError
    for tables that cannot be analysed (missing columns, timestamps without timezone, ids that
    are neither text nor whole numbers, no events and no `as_of`). Close the result (or use it
    as a context manager) to drop its temporary tables early.
    """
    s = CohortSettings(**settings)
    users, events = _normalise(users, events, s)
    backend = ibis.get_backend(events)
    duckdb = getattr(backend, "name", "") == "duckdb"

    # min / max / count of plain columns: answered from Parquet statistics where possible
    span_e = (
        events.aggregate(
            n=events.timestamp.count(), lo=events.timestamp.min(), hi=events.timestamp.max()
        )
        .execute()
        .iloc[0]
    )
    span_u = (
        users.aggregate(n=_.count(), lo=users.signup_at.min(), hi=users.signup_at.max())
        .execute()
        .iloc[0]
    )
    n_events, n_users = int(span_e["n"]), int(span_u["n"])
    ev_lo, ev_hi = _us_or_none(span_e["lo"]), _us_or_none(span_e["hi"])
    us_lo, us_hi = _us_or_none(span_u["lo"]), _us_or_none(span_u["hi"])
    zone = ZoneInfo(s.timezone)

    as_of = _as_date_or_time(s.as_of, "as_of")
    if as_of is None and ev_hi is None:
        raise DataContractError(
            "events", "no events, so the end of observation is unknown; give as_of", rows=0
        )
    for name, value in (("events", ev_hi), ("users", us_hi), ("events", ev_lo), ("users", us_lo)):
        if value is not None and not _PLAUSIBLE[0] <= value < _PLAUSIBLE[1]:
            column = "timestamp" if name == "events" else "signup_at"
            raise DataContractError(
                name,
                "timestamps outside the years 1970–2999 (a placeholder date?); filter them out "
                "first",
                column=column,
                example=str(pd.Timestamp(value, unit="us", tz="UTC")),
            )
    obs_end_us, obs_end_local_us = _observation_end(as_of, ev_hi, zone)

    known = [v for v in (ev_lo, ev_hi, us_lo, us_hi, obs_end_us) if v is not None]
    clock = _Clock.build(s.timezone, min(known), max(known), duckdb=duckdb)

    start = _as_date_or_time(s.start, "start")
    if isinstance(start, pd.Timestamp):
        start = start.date()
    if start is not None and as_of is not None and _date_to_day(start) * DAY_US >= obs_end_local_us:
        raise ParameterError(
            [f"start: {start} is after the end of observation (as_of {s.as_of})"],
            source="cohort settings",
        )
    first_event_day = clock.local_day_of(ev_lo) if ev_lo is not None else None
    last_day = (obs_end_local_us - 1) // DAY_US
    if start is not None:
        start_day = _date_to_day(start)
    else:
        start_day = _default_start(s, first_event_day, us_lo, clock, last_day)
    cal = Calendar.spanning(s, obs_end_us, obs_end_local_us, start_day, first_event_day)
    p_first, p_last = cal.p_first, cal.p_last
    mark_words = max(1, -(-(p_last - (p_first - 1) + 1) // BLOCK)) if s.min_events > 1 else 0

    store = _TempTables(backend)
    try:
        table, units, mapping = _per_unit_table(users, events, s, cal, clock, mark_words, store)
        table = store.materialise(table)
        uses = None
        if s.features:
            uses = store.materialise(_feature_uses(events, clock, mapping, units, s, cal))
        future_users = (
            int(users.filter(users.signup_at >= _utc_literal(obs_end_us)).count().execute())
            if us_hi is not None and us_hi >= obs_end_us
            else 0
        )
    except BaseException:
        store.drop_all()
        raise
    stats = {
        "events": n_events,
        "users": n_users,
        "first_event_us": ev_lo,
        "last_event_us": ev_hi,
        "future_users": future_users,
        "mark_words": mark_words,
        "duckdb": duckdb,
        "zone_changes": len(clock.changes),
        "fast_clock": clock.fast,
    }
    return CohortActivity(table, s, cal, users, events, stats, store, uses)


def _default_start(
    s: CohortSettings,
    event_day: int | None,
    first_signup_us: int | None,
    clock: _Clock,
    last_day: int,
) -> int:
    """The first signup's day, unless that is more than one period before the first event's day
    (old users in a recent event log): then the first event's day. Cohorts by first activity
    start at the first event."""
    if s.cohort_by == "first_activity" or first_signup_us is None:
        day = event_day if event_day is not None else last_day
    else:
        day = clock.local_day_of(first_signup_us)
        ws = int(s.week_start)
        if event_day is not None and _period_of(day, s.period, ws) < (
            _period_of(event_day, s.period, ws) - 1
        ):
            day = event_day
    return min(day, last_day)


_PLAUSIBLE = (2 * DAY_US, (date(3000, 1, 1).toordinal() - EPOCH_ORDINAL) * DAY_US)  # 1970 … 2999


class _TempTables:
    """Temporary engine tables of one analysis, dropped together."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.names: list[str] = []

    def materialise(self, expr: ibis.Table) -> ibis.Table:
        """Execute `expr` once into a temporary table (or keep the expression if impossible)."""
        name = f"wb_cohort_{uuid.uuid4().hex[:12]}"
        try:
            table = self.backend.create_table(name, expr, temp=True)
        except Exception:  # a backend without temporary tables: recompute when queried
            return expr
        self.names.append(name)
        return table

    def drop_all(self) -> None:
        """Drop every table made here."""
        while self.names:
            _drop_table(self.backend, self.names.pop())


def _utc_literal(us: int) -> ibis.Value:
    return ibis.literal(pd.Timestamp(us, unit="us", tz="UTC"), type=idt.Timestamp(timezone="UTC"))


def _int0(value: object) -> int:
    """An engine count as int: NULL (no rows) and NaN become 0."""
    return 0 if value is None or pd.isna(value) else int(value)


def _us_or_none(value: object) -> int | None:
    if value is None or (not isinstance(value, pd.Timestamp | datetime) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp | datetime):
        ts = pd.Timestamp(value)
        if ts is pd.NaT:
            return None
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        return (ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(microseconds=1)
    return int(value)


def _observation_end(
    as_of: date | pd.Timestamp | None, last_event_us: int | None, zone: ZoneInfo
) -> tuple[int, int]:
    """(UTC µs, local wall-clock µs) of the exclusive end of observation."""

    def midnight_after(day: date) -> tuple[int, int]:
        nxt = day + timedelta(days=1)
        instant = datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone)
        utc_us = int(instant.timestamp()) * SECOND_US
        return utc_us, _date_to_day(nxt) * DAY_US

    if as_of is None:
        local = datetime.fromtimestamp(last_event_us // SECOND_US, tz=zone)
        return midnight_after(local.date())
    if isinstance(as_of, pd.Timestamp):
        if as_of.tzinfo is None:
            instant = pd.Timestamp(as_of.to_pydatetime().replace(tzinfo=zone))
        else:
            instant = as_of
        utc_us = _us_or_none(instant)
        off = _offset_us(zone, utc_us // SECOND_US)
        return utc_us, utc_us + off
    return midnight_after(as_of)


def _event_days(
    events: ibis.Table, clock: _Clock, obs_end_us: int, *extra: ibis.Value
) -> ibis.Table:
    """(user_id, event, us, day) of the events before the end of observation.

    Each engine pass builds its own filtered relation: a relation shared by two passes becomes a
    common table expression, which DuckDB may materialise in full (every event, in memory).
    """
    kept = events.filter(*extra, clock.epoch_us(events.timestamp) < obs_end_us)
    us, day = clock.columns(kept.timestamp)
    return kept.select("user_id", "event", us=us, day=day)


def _per_unit_table(
    users: ibis.Table,
    events: ibis.Table,
    s: CohortSettings,
    cal: Calendar,
    clock: _Clock,
    mark_words: int,
    store: _TempTables,
) -> tuple[ibis.Table, ibis.Table, ibis.Table]:
    """The engine expression of the per-unit table (small steps are materialised on the way),
    with the units (unit_id, anchor_us, cohort, …) and the user → unit mapping it used."""
    obs_end = cal.obs_end_us
    is_activity = (events.event.isin(list(s.activity)),) if s.activity is not None else ()

    # users → (user_id, unit_id, anchor_us, anchor_day, segments)
    u_us, u_day = clock.columns(users.signup_at)
    u = users.mutate(anchor_us=u_us, anchor_day=u_day)
    if s.cohort_by == "first_activity":
        act = _event_days(events, clock, obs_end, *is_activity)
        first = act.group_by("user_id").aggregate(
            first_us=act.us.min(), first_day=act.day.argmin(act.us)
        )
        first = store.materialise(first)
        u = u.join(first, "user_id").mutate(anchor_us=_.first_us, anchor_day=_.first_day)
        u = u.drop("first_us", "first_day")
    if s.unit == "account":
        u = u.filter(u.account_id.notnull())
        accounts = u.group_by("account_id").aggregate(
            anchor_us=u.anchor_us.min(),
            anchor_day=u.anchor_day.argmin(u.anchor_us),
            **{c: u[c].argmin(u.anchor_us) for c in s.segments},
        )
        mapping = u.select("user_id", unit_id=u.account_id)
        units = accounts.rename(unit_id="account_id")
    else:
        mapping = u.select("user_id", unit_id=u.user_id)
        units = u.select(
            unit_id=u.user_id,
            anchor_us=u.anchor_us,
            anchor_day=u.anchor_day,
            **{c: u[c] for c in s.segments},
        )
    units = units.filter(units.anchor_us < obs_end)
    cohort = _period_expr(units.anchor_day, s.period, int(s.week_start))
    units = units.mutate(cohort=cohort).drop("anchor_day")
    units = units.mutate(in_cohort=(units.cohort >= cal.p_first) & (units.cohort <= cal.p_last))
    units = store.materialise(units)
    if s.unit == "account":
        mapping = store.materialise(mapping)

    # activity days: one GROUP BY user over the raw events, one bitmask word per 56 days
    act = _event_days(events, clock, obs_end, *is_activity)
    days = act.select("user_id", rel=act.day - cal.d0)
    per_user = _day_words(days, "user_id", cal.words, "pre")
    if s.unit == "user":
        pivot = per_user.rename(unit_id="user_id")
    else:
        mapped = per_user.join(mapping, "user_id")
        pivot = mapped.group_by("unit_id").aggregate(
            pre=mapped.pre.any(),
            **{f"w{j}": mapped[f"w{j}"].bit_or() for j in range(cal.words)},
        )

    unit_table = units.left_join(pivot, "unit_id").drop("unit_id_right")
    fills = {f"w{j}": 0 for j in range(cal.words)} | {"pre": False}

    if s.min_events > 1:
        act = _event_days(events, clock, obs_end, *is_activity)
        period = _period_expr(act.day, s.period, int(s.week_start))
        counts = act.mutate(p=period).group_by(["user_id", "p"]).aggregate(n=_.count())
        counts = counts.join(mapping, "user_id")
        counts = counts.group_by(["unit_id", "p"]).aggregate(n=counts.n.sum())
        counts = counts.filter(counts.n >= s.min_events)
        rel_p = counts.p - (cal.p_first - 1)
        pword = (rel_p // BLOCK).cast("int64")
        marks = counts.select("unit_id", m=pword, bits=ONE << (rel_p - pword * BLOCK))
        mpivot = store.materialise(_pivot_words(marks, "unit_id", "m", mark_words, "mpre"))
        unit_table = unit_table.left_join(mpivot, "unit_id").drop("unit_id_right")
        fills |= {f"m{j}": 0 for j in range(mark_words)} | {"mpre": False}

    return unit_table.fill_null(fills), units, mapping


def _day_words(rows: ibis.Table, key: str, n_words: int, pre: str) -> ibis.Table:
    """Rows (key, rel: day number from the bitmask start) → one row per key: `pre` (any row
    before day 0) and the words w0…, bit i of word j set when day 56j + i has a row.

    One CASE per word on `rel` itself: no word number or shift is computed per row first,
    which DuckDB would evaluate for each of tens of millions of rows.
    """
    rel = rows.rel
    aggs = {pre: (rel < 0).any()}
    for j in range(n_words):
        lo, hi = j * BLOCK, (j + 1) * BLOCK
        inside = (rel >= lo) & (rel < hi)
        aggs[f"w{j}"] = ibis.cases((inside, ONE << (rel - lo)), else_=0).bit_or()
    return rows.group_by(key).aggregate(**aggs)


def _pivot_words(rows: ibis.Table, key: str, word: str, n_words: int, pre: str) -> ibis.Table:
    """Rows (key, word number, bit) → one row per key: `pre` (any row before word 0) and the
    words {word}0…, each the OR of its bits (null when no row falls in it)."""
    bit = rows[rows.columns[-1]]
    aggs = {pre: (rows[word] < 0).any()}
    for j in range(n_words):  # CASE, not FILTER: DuckDB runs it faster over many rows
        aggs[f"{word}{j}"] = ibis.cases((rows[word] == j, bit), else_=0).bit_or()
    return rows.group_by(key).aggregate(**aggs)


def _feature_uses(
    events: ibis.Table,
    clock: _Clock,
    mapping: ibis.Table,
    units: ibis.Table,
    s: CohortSettings,
    cal: Calendar,
) -> ibis.Table:
    """Rows (unit_id, fi, first, dmin, dmax, n, anchor_us, cohort, segments…) for each unit in a
    cohort and feature fi it used inside its adoption window: first use (UTC µs), first and last
    local day of use, and uses, with the unit's columns that adoption queries group by.

    One pass over the feature events only, with plain aggregates; kept long (one row per unit
    and feature used) rather than pivoted, which would cost another pass of a million rows, and
    carrying the unit's columns so that no adoption query joins it back to the units.
    """
    feature_events = list(s.features.values())
    wanted = sorted({e for events in feature_events for e in events})
    fe = _event_days(events, clock, cal.obs_end_us, events.event.isin(wanted))
    carried = ["anchor_us", "cohort", *s.segments]
    in_window = units.filter(units.in_cohort)
    if s.unit == "user":
        anchors = in_window.select("unit_id", *carried, user_id=in_window.unit_id)
    else:
        anchors = mapping.join(in_window.select("unit_id", *carried), "unit_id")
    fe = fe.join(anchors, "user_id")
    window = s.adoption_window_days * DAY_US
    fe = fe.filter(fe.us >= fe.anchor_us, fe.us <= fe.anchor_us + window)
    if len(wanted) == sum(len(e) for e in feature_events):  # no event in two features
        fi = ibis.cases(*[(fe.event.isin(list(e)), i) for i, e in enumerate(feature_events)])
        rows = fe.mutate(fi=fi.cast("int64"))
    else:
        rows = ibis.union(
            *[
                fe.filter(fe.event.isin(list(e))).mutate(fi=ibis.literal(i, type="int64"))
                for i, e in enumerate(feature_events)
            ]
        )
    return rows.group_by(["unit_id", "fi"]).aggregate(
        first=rows.us.min(),
        dmin=rows.day.min(),
        dmax=rows.day.max(),
        n=_.count(),
        **{c: rows[c].arbitrary() for c in carried},
    )


def _drop_table(backend: Any, name: str) -> None:
    try:
        backend.drop_table(name, force=True)
    except Exception:  # ibis 12 with sqlglot 30 emits DROP without a name; plain SQL instead
        with contextlib.suppress(Exception):
            backend.raw_sql(f'DROP TABLE IF EXISTS "{name}"')


def _accepts_tables(func: Callable[..., Any]) -> Callable[..., Any]:
    """Let an analysis function take either a CohortActivity or (users, events, **settings).

    With tables, the keyword arguments the function itself declares are its options and the
    others are cohort settings; the temporary per-unit tables are dropped afterwards.
    """
    options = set(inspect.signature(func).parameters) - {"act"}

    @functools.wraps(func)
    def wrapper(data: Any, events: ibis.Table | None = None, **kwargs: Any) -> Any:
        if isinstance(data, CohortActivity):
            if events is not None:
                raise TypeError(f"{func.__name__}: give a CohortActivity or tables, not both")
            return func(data, **kwargs)
        if events is None:
            raise TypeError(f"{func.__name__}: give a CohortActivity, or users and events tables")
        own = {k: kwargs.pop(k) for k in list(kwargs) if k in options}
        with cohort_activity(data, events, **kwargs) as act:
            return func(act, **own)

    return wrapper


# --- Retention -----------------------------------------------------------------------------------

RETENTION_COLUMNS = ["cohort", "period", "cohort_size", "retained", "rate", "state"]


@_accepts_tables
def retention_matrix(
    act: CohortActivity,
    *,
    retention: Retention | None = None,
    by: str | None = None,
) -> pd.DataFrame:
    """Cohort × periods since the cohort: cohort_size, retained, rate and the cell's state.

    Like every analysis function here, it takes a CohortActivity, or the users and events
    tables followed by keyword settings (then the function's own options are taken out of them).
    `retention` overrides the settings' mode ("on" = active in exactly period N, "on_or_after"
    = active in N or later). Period 0 holds the cohort size. Cells whose period starts after the
    end of observation are `not_observable`, with no count and no rate (never 0); cells whose
    period is under way are `in_progress` and hold the activity so far. `by` adds a segment
    column (one of the settings' segments) in front.
    """
    s, cal = act.settings, act.calendar
    mode = retention or s.retention
    if mode not in ("on", "on_or_after"):
        raise ParameterError([f"retention: {mode!r} is not 'on' or 'on_or_after'"])
    keys = _keys(act, by)
    columns = keys + RETENTION_COLUMNS
    if cal.empty:
        return _typed_retention(pd.DataFrame(columns=columns))
    t = act.table.filter(act.table.in_cohort)
    aggs: dict[str, Any] = {"cohort_size": _.count()}
    for p in cal.cohort_periods:
        if p == cal.p_first:
            continue  # period 0 of the first cohort: the cohort size
        flag = act.active_in(p) if mode == "on" else act.active_from(p)
        aggs[f"r{p - cal.p_first}"] = flag.cast("int64").sum()
    sums = t.group_by(["cohort", *keys]).aggregate(**aggs).execute()
    rows = []
    for rec in sums.to_dict(orient="records"):
        c, size = int(rec["cohort"]), int(rec["cohort_size"])
        for k in range(s.periods + 1):
            p = c + k
            state = cal.state(p)
            if k == 0:
                retained: float | None = size
            elif state == "not_observable":
                retained = None
            else:
                retained = _int0(rec[f"r{p - cal.p_first}"])
            row = {key: rec[key] for key in keys}
            row |= {
                "cohort": cal.start(c),
                "period": k,
                "cohort_size": size,
                "retained": retained,
                "rate": retained / size if retained is not None and size else None,
                "state": state,
            }
            rows.append(row)
    frame = pd.DataFrame(rows, columns=columns)
    return _typed_retention(frame.sort_values([*keys, "cohort", "period"], ignore_index=True))


def _typed_retention(frame: pd.DataFrame) -> pd.DataFrame:
    frame["cohort"] = pd.to_datetime(frame["cohort"])
    frame["period"] = frame["period"].astype("int64")
    frame["cohort_size"] = frame["cohort_size"].astype("int64")
    frame["retained"] = frame["retained"].astype("Int64")
    frame["rate"] = frame["rate"].astype("float64")
    frame["state"] = frame["state"].astype("object")
    return frame


def _keys(act: CohortActivity, by: str | None) -> list[str]:
    if by is None:
        return []
    if by not in act.settings.segments:
        raise ParameterError(
            [f"by: {by!r} is not one of the segments {list(act.settings.segments)}"],
            source="cohort settings",
        )
    return [by]


def average_retention(matrix: pd.DataFrame, *, by: str | None = None) -> pd.DataFrame:
    """The average curve: per period, Σ retained / Σ cohort size over complete cells only.

    Each point says how many cohorts and units are behind it (n_cohorts, cohort_size); a period
    no cohort has completed yet has no rate.
    """
    keys = [by] if by else []
    columns = [*keys, "period", "n_cohorts", "cohort_size", "retained", "rate"]
    if matrix.empty:
        return pd.DataFrame(columns=columns)
    done = matrix.assign(
        done=matrix["state"].eq("complete"),
        size_done=matrix["cohort_size"].where(matrix["state"].eq("complete"), 0),
        kept_done=matrix["retained"].astype("float64").where(matrix["state"].eq("complete"), 0.0),
    )
    out = (
        done.groupby([*keys, "period"], sort=True)
        .agg(
            n_cohorts=("done", "sum"),
            cohort_size=("size_done", "sum"),
            retained=("kept_done", "sum"),
        )
        .reset_index()
    )
    out["n_cohorts"] = out["n_cohorts"].astype("int64")
    out["cohort_size"] = out["cohort_size"].astype("int64")
    out["retained"] = out["retained"].astype("int64")
    out["rate"] = (out["retained"] / out["cohort_size"]).where(out["cohort_size"] > 0)
    return out[columns]


# --- Feature adoption -----------------------------------------------------------------------------


@dataclass
class FeatureAdoption:
    """Feature adoption frames.

    by_cohort: feature, cohort, eligible, adopted, rate, median_days, repeat_users, repeat_rate
    summary: one row per feature over all cohorts, with a Wilson 95% CI, the Kaplan–Meier median
      and the mean uses per adopter
    curve: Kaplan–Meier share adopted by day since the anchor (1 − S(t)), with pointwise 95% CI
    breadth: how many of the features each eligible unit adopted (breadth, units, share)
    """

    by_cohort: pd.DataFrame
    summary: pd.DataFrame
    curve: pd.DataFrame
    breadth: pd.DataFrame


ADOPTION_COLUMNS = [
    "feature",
    "cohort",
    "eligible",
    "adopted",
    "rate",
    "median_days",
    "repeat_users",
    "repeat_rate",
]


@_accepts_tables
def feature_adoption(
    act: CohortActivity,
    *,
    by: str | None = None,
) -> FeatureAdoption:
    """Adoption of each feature within `adoption_window_days` of the anchor (see module doc).

    Eligible units are those whose window ended by the end of observation. median_days is the
    median time to first use among eligible adopters (it exists even when fewer than half
    adopt); km_median_days in the summary is the Kaplan–Meier median over every unit in the
    window, with units still inside their window censored: the first time the curve of units
    not yet adopting drops below 50% (statsmodels' rule; none while at least half have not).
    """
    s, cal = act.settings, act.calendar
    keys = _keys(act, by)
    names = list(s.features)
    t = act.table.filter(act.table.in_cohort)
    window = s.adoption_window_days * DAY_US
    eligible = (t.anchor_us + window) <= cal.obs_end_us
    if not names or cal.empty:
        empty = pd.DataFrame(columns=keys + ADOPTION_COLUMNS)
        return FeatureAdoption(
            empty,
            _summary_frame([], keys),
            _curve_frame([], keys),
            pd.DataFrame(columns=[*keys, "breadth", "units", "share"]),
        )

    # units in the window, their eligibility, and their feature uses (only units that used one)
    units = t.mutate(eligible=eligible)
    uses = act.uses
    used = uses.filter((uses.anchor_us + window) <= cal.obs_end_us)
    per_use = {
        "adopted": _.count(),
        "repeat": (used.dmax > used.dmin).cast("int64").sum(),
        "uses": used.n.sum(),
        "median": ((used["first"] - used.anchor_us) / DAY_US).median(),
    }
    sizes = (
        units.group_by(["cohort", *keys])
        .aggregate(eligible=units.eligible.cast("int64").sum())
        .execute()
    )
    per_cohort = used.group_by(["cohort", *keys, "fi"]).aggregate(**per_use).execute()
    overall = used.group_by([*keys, "fi"]).aggregate(**per_use).execute()

    rows = []
    found = per_cohort.set_index(["cohort", *keys, "fi"]).to_dict(orient="index")
    for rec in sizes.to_dict(orient="records"):
        group = tuple(rec[k] for k in keys)
        for i, name in enumerate(names):
            hit = found.get((rec["cohort"], *group, i), {})
            rows.append(
                dict(zip(keys, group, strict=True))
                | {"feature": name, "cohort": cal.start(int(rec["cohort"]))}
                | _adoption_numbers(rec["eligible"], hit)
            )
    by_cohort = pd.DataFrame(rows, columns=keys + ADOPTION_COLUMNS)
    by_cohort["feature"] = pd.Categorical(by_cohort["feature"], names)  # the order given
    by_cohort = by_cohort.sort_values([*keys, "feature", "cohort"], ignore_index=True).astype(
        {"feature": "object"}
    )

    curves, km_medians = _km_curves(act, names, keys)
    totals = (
        sizes.groupby(keys)["eligible"].sum().to_dict() if keys else {(): sizes["eligible"].sum()}
    )
    found = overall.set_index([*keys, "fi"]).to_dict(orient="index")
    summary_rows = []
    for group, n_eligible in totals.items():
        group = group if isinstance(group, tuple) else (group,)
        for i, name in enumerate(names):
            hit = found.get((*group, i) if keys else i, {})
            numbers = _adoption_numbers(n_eligible, hit)
            low, high = _wilson(numbers["adopted"], numbers["eligible"])
            uses_n = _int0(hit.get("uses"))
            summary_rows.append(
                dict(zip(keys, group, strict=True))
                | {
                    "feature": name,
                    "events": ", ".join(s.features[name]),
                    "eligible": numbers["eligible"],
                    "adopted": numbers["adopted"],
                    "rate": numbers["rate"],
                    "ci_low": low,
                    "ci_high": high,
                    "median_days": numbers["median_days"],
                    "km_median_days": km_medians.get((*group, name)),
                    "repeat_rate": numbers["repeat_rate"],
                    "uses_per_adopter": uses_n / numbers["adopted"] if numbers["adopted"] else None,
                }
            )
    summary = _summary_frame(summary_rows, keys)

    breadth = (
        used.group_by(["unit_id", *keys])
        .aggregate(breadth=_.count())
        .group_by([*keys, "breadth"])
        .aggregate(units=_.count())
        .execute()
    )
    breadth = _complete_breadth(breadth, keys, len(names), totals)
    return FeatureAdoption(by_cohort, summary, curves, breadth)


def _adoption_numbers(eligible: object, hit: dict[str, Any]) -> dict[str, Any]:
    eligible, adopted, repeat = _int0(eligible), _int0(hit.get("adopted")), _int0(hit.get("repeat"))
    median = hit.get("median")
    return {
        "eligible": eligible,
        "adopted": adopted,
        "rate": adopted / eligible if eligible else None,
        "median_days": None if median is None or pd.isna(median) else float(median),
        "repeat_users": repeat,
        "repeat_rate": repeat / adopted if adopted else None,
    }


def _summary_frame(rows: list[dict[str, Any]], keys: list[str]) -> pd.DataFrame:
    columns = keys + [
        "feature",
        "events",
        "eligible",
        "adopted",
        "rate",
        "ci_low",
        "ci_high",
        "median_days",
        "km_median_days",
        "repeat_rate",
        "uses_per_adopter",
    ]
    return pd.DataFrame(rows, columns=columns)


def _curve_frame(rows: list[dict[str, Any]], keys: list[str]) -> pd.DataFrame:
    columns = ["feature", *keys, "days", "adopted_share", "ci_low", "ci_high", "at_risk", "adopted"]
    return pd.DataFrame(rows, columns=columns)


def _complete_breadth(
    frame: pd.DataFrame, keys: list[str], n_features: int, totals: dict[tuple, int]
) -> pd.DataFrame:
    """Breadth 0…n for every group; units with no feature used make up breadth 0."""
    rows = []
    counts = frame.set_index([*keys, "breadth"])["units"].to_dict()
    for group, n_eligible in totals.items():
        group = group if isinstance(group, tuple) else (group,)
        used = {b: _int0(counts.get((*group, b) if keys else b)) for b in range(1, n_features + 1)}
        used[0] = _int0(n_eligible) - sum(used.values())
        for b in range(n_features + 1):
            share = used[b] / _int0(n_eligible) if _int0(n_eligible) else None
            rows.append(
                dict(zip(keys, group, strict=True))
                | {"breadth": b, "units": used[b], "share": share}
            )
    return pd.DataFrame(rows, columns=[*keys, "breadth", "units", "share"]).astype(
        {"share": "float64"}
    )


def _time_to_adopt(act: CohortActivity, keys: list[str]) -> pd.DataFrame:
    """(fi, keys…, hours, adopted, units) for every feature fi: time to first use to the hour,
    censored at the end of the window or of observation, over every unit in the window.

    Adopters come from the uses table; the units that did not adopt a feature are all units at
    their censoring hour minus that feature's adopters at the same censoring hour.
    """
    key = ("time_to_adopt", *keys)
    if key not in act.computed:  # the Kaplan–Meier curves and the log-rank tests share it
        act.computed[key] = _count_time_to_adopt(act, keys)
    return act.computed[key]


def _count_time_to_adopt(act: CohortActivity, keys: list[str]) -> pd.DataFrame:
    s, cal = act.settings, act.calendar
    t = act.table.filter(act.table.in_cohort)
    window_h = s.adoption_window_days * 24

    def censor(table: ibis.Table) -> ibis.Value:
        observed = ((cal.obs_end_us - table.anchor_us) // HOUR_US).cast("int64")
        return ibis.least(observed, window_h)

    everyone = t.group_by([*keys, censor(t).name("censor")]).aggregate(units=_.count()).execute()
    uses = act.uses
    hours = ((uses["first"] - uses.anchor_us) // HOUR_US).cast("int64")
    adopters = (
        uses.group_by(["fi", *keys, hours.name("hours"), censor(uses).name("censor")])
        .aggregate(units=_.count())
        .execute()
    )
    parts = []
    for i in range(len(s.features)):
        mine = adopters[adopters["fi"] == i]
        events = mine.groupby([*keys, "hours"], as_index=False)["units"].sum()
        taken = mine.groupby([*keys, "censor"], as_index=False)["units"].sum()
        rest = everyone.merge(taken, on=[*keys, "censor"], how="left", suffixes=("", "_used"))
        rest["units"] = rest["units"] - rest["units_used"].fillna(0).astype("int64")
        rest = rest[rest["units"] > 0].rename(columns={"censor": "hours"})
        parts.append(events.assign(fi=i, adopted=True))
        parts.append(rest[[*keys, "hours", "units"]].assign(fi=i, adopted=False))
    columns = ["fi", *keys, "hours", "adopted", "units"]
    frames = [p[columns] for p in parts if len(p)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def _expand(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    counts = frame["units"].to_numpy(dtype="int64")
    times = np.repeat(frame["hours"].to_numpy(dtype="float64") / 24.0, counts)
    status = np.repeat(frame["adopted"].to_numpy(dtype="int64"), counts)
    return times, status


def _km_curves(
    act: CohortActivity, names: list[str], keys: list[str]
) -> tuple[pd.DataFrame, dict[tuple, float | None]]:
    from statsmodels.duration.survfunc import SurvfuncRight

    rows, medians = [], {}
    everything = _time_to_adopt(act, keys)
    for i, name in enumerate(names):
        frame = everything[everything["fi"] == i]
        groups = frame.groupby(keys, sort=True) if keys else [((), frame)]
        for key, part in groups:
            key = key if isinstance(key, tuple) else (key,)
            times, status = _expand(part)
            if not len(times):
                continue
            label = dict(zip(keys, key, strict=True))
            if not status.any():
                medians[(*key, name)] = None
                rows.append(
                    label
                    | {
                        "feature": name,
                        "days": 0.0,
                        "adopted_share": 0.0,
                        "ci_low": 0.0,
                        "ci_high": 0.0,
                        "at_risk": len(times),
                        "adopted": 0,
                    }
                )
                continue
            sf = SurvfuncRight(times, status)
            median = sf.quantile(0.5)  # first time S(t) < 0.5 (statsmodels' and SAS's rule)
            medians[(*key, name)] = None if np.isnan(median) else float(median)
            se = np.nan_to_num(sf.surv_prob_se)
            for day, prob, err, risk, n in zip(
                sf.surv_times, sf.surv_prob, se, sf.n_risk, sf.n_events, strict=True
            ):
                rows.append(
                    label
                    | {
                        "feature": name,
                        "days": float(day),
                        "adopted_share": float(1 - prob),
                        "ci_low": float(max(0.0, 1 - prob - 1.96 * err)),
                        "ci_high": float(min(1.0, 1 - prob + 1.96 * err)),
                        "at_risk": int(risk),
                        "adopted": int(n),
                    }
                )
    return _curve_frame(rows, keys), medians


# --- Stickiness ----------------------------------------------------------------------------------


@dataclass
class Stickiness:
    """Stickiness frames.

    daily: date, dau, complete — units active on each local day
    weekly: week, avg_dau, wau, mau, dau_mau, wau_mau, complete — avg_dau is the mean daily
      active units over the week's observed days; mau counts units active on any of the 30 days
      ending on the week's last observed day
    active_days: week, active_days (1–7), units, share, complete — among units active in the
      week, how many were active on exactly that many days
    """

    daily: pd.DataFrame
    weekly: pd.DataFrame
    active_days: pd.DataFrame


DAILY_COLUMNS = ["date", "dau", "complete"]
WEEKLY_COLUMNS = ["week", "avg_dau", "wau", "mau", "dau_mau", "wau_mau", "complete"]
ACTIVE_DAYS_COLUMNS = ["week", "active_days", "units", "share", "complete"]


@_accepts_tables
def stickiness(
    act: CohortActivity,
) -> Stickiness:
    """DAU, weekly DAU / MAU and active days per week over all units (calendar weeks).

    Weeks start on the settings' week start and run from the week holding the first cohort
    period's start to the last observed day. A week is `complete` when it was fully observed
    and its 30-day MAU window lies inside the data (on or after the first event's day).
    `min_events` does not apply here: a day counts with one activity event.

    Engine work: one GROUP BY over (week, 7-day activity pattern) and one row of 30-day sums,
    whatever the number of units.
    """
    cal = act.calendar
    empty = Stickiness(
        pd.DataFrame(columns=DAILY_COLUMNS),
        pd.DataFrame(columns=WEEKLY_COLUMNS),
        pd.DataFrame(columns=ACTIVE_DAYS_COLUMNS),
    )
    if cal.empty:
        return empty
    t = act.table
    first_day, last_day = cal.start_day(cal.p_first), cal.last_day
    ws = int(act.settings.week_start)
    week0 = first_day - (first_day + 3 - ws) % 7
    weeks = list(range(week0, last_day + 1, 7))

    slices = []
    for w in weeks:
        rel = w - cal.d0  # a multiple of 7 inside one word: d0 is a week start, 56 = 8 weeks
        word, shift = t[f"w{rel // BLOCK}"], rel % BLOCK
        pattern = (word >> shift) & 127
        slices.append(t.select(week=ibis.literal(w, type="int64"), pattern=pattern))
    stacked = ibis.union(*slices)
    stacked = stacked.filter(stacked.pattern != 0)
    patterns = stacked.group_by(["week", "pattern"]).aggregate(units=_.count()).execute()

    ends = {w: min(w + 6, last_day) for w in weeks}
    mau = (
        t.aggregate(
            **{
                f"m{w}": act.active_days(e - MAU_DAYS + 1, e + 1).cast("int64").sum()
                for w, e in ends.items()
            }
        )
        .execute()
        .iloc[0]
    )

    bits = np.array([[(p >> i) & 1 for i in range(7)] for p in range(128)], dtype="int64")
    first_data = cal.first_event_day if cal.first_event_day is not None else last_day + 1
    daily_rows, weekly_rows, day_rows = [], [], []
    for w in weeks:
        part = patterns[patterns["week"] == w]
        counts = part["units"].to_numpy(dtype="int64")
        pats = part["pattern"].to_numpy(dtype="int64")
        per_day = (bits[pats] * counts[:, None]).sum(axis=0) if len(part) else np.zeros(7, "int64")
        n_days = bits[pats].sum(axis=1) if len(part) else np.zeros(0, "int64")
        observed = [d for d in range(w, w + 7) if d <= last_day]
        for d in observed:
            if d >= first_day:
                daily_rows.append(
                    {
                        "date": pd.Timestamp(_day_to_date(d)),
                        "dau": int(per_day[d - w]),
                        "complete": (d + 1) * DAY_US <= cal.obs_end_local_us,
                    }
                )
        wau, m = int(counts.sum()), _int0(mau[f"m{w}"])
        avg_dau = float(per_day[: len(observed)].sum()) / len(observed)
        complete = (w + 7) * DAY_US <= cal.obs_end_local_us and ends[w] - MAU_DAYS + 1 >= first_data
        weekly_rows.append(
            {
                "week": pd.Timestamp(_day_to_date(w)),
                "avg_dau": avg_dau,
                "wau": wau,
                "mau": m,
                "dau_mau": avg_dau / m if m else None,
                "wau_mau": wau / m if m else None,
                "complete": complete,
            }
        )
        for k in range(1, 8):
            units = int(counts[n_days == k].sum()) if len(part) else 0
            day_rows.append(
                {
                    "week": pd.Timestamp(_day_to_date(w)),
                    "active_days": k,
                    "units": units,
                    "share": units / wau if wau else None,
                    "complete": (w + 7) * DAY_US <= cal.obs_end_local_us,
                }
            )
    return Stickiness(
        pd.DataFrame(daily_rows, columns=DAILY_COLUMNS),
        pd.DataFrame(weekly_rows, columns=WEEKLY_COLUMNS).astype(
            {"dau_mau": "float64", "wau_mau": "float64"}
        ),
        pd.DataFrame(day_rows, columns=ACTIVE_DAYS_COLUMNS).astype({"share": "float64"}),
    )


# --- Lifecycle -----------------------------------------------------------------------------------

LIFECYCLE_COLUMNS = ["period", "new", "returning", "resurrecting", "dormant", "active", "state"]


@_accepts_tables
def lifecycle(
    act: CohortActivity,
    *,
    by: str | None = None,
) -> pd.DataFrame:
    """New / returning / resurrecting / dormant units per period (definitions in the module doc).

    Covers every unit in the users table (not only those in cohorts); "new" uses the unit's
    first-ever activity over the full event history, not only the window. new + returning +
    resurrecting = active. Dormant is a positive count here (charts draw it below zero).
    """
    cal = act.calendar
    keys = _keys(act, by)
    if cal.empty:
        return pd.DataFrame(columns=keys + LIFECYCLE_COLUMNS)
    t = act.table
    aggs = {}
    for p in cal.cohort_periods:
        now, prev, before = act.active_in(p), act.active_in(p - 1), act.active_before(p)
        aggs[f"n{p}"] = (now & ~before).cast("int64").sum()
        aggs[f"r{p}"] = (now & prev).cast("int64").sum()
        aggs[f"s{p}"] = (now & ~prev & before).cast("int64").sum()
        aggs[f"d{p}"] = (~now & prev).cast("int64").sum()
    sums = (t.group_by(keys) if keys else t).aggregate(**aggs).execute()
    rows = []
    for rec in sums.to_dict(orient="records"):
        for p in cal.cohort_periods:
            new, ret, res, dor = (_int0(rec[f"{x}{p}"]) for x in "nrsd")
            rows.append(
                {k: rec[k] for k in keys}
                | {
                    "period": cal.start(p),
                    "new": new,
                    "returning": ret,
                    "resurrecting": res,
                    "dormant": dor,
                    "active": new + ret + res,
                    "state": cal.state(p),
                }
            )
    return pd.DataFrame(rows, columns=keys + LIFECYCLE_COLUMNS).sort_values(
        [*keys, "period"], ignore_index=True
    )


# --- Segment comparison --------------------------------------------------------------------------

SEGMENT_COLUMNS = [
    "segment",
    "metric",
    "detail",
    "group_a",
    "group_b",
    "n_a",
    "x_a",
    "rate_a",
    "ci_low_a",
    "ci_high_a",
    "n_b",
    "x_b",
    "rate_b",
    "ci_low_b",
    "ci_high_b",
    "difference",
    "diff_ci_low",
    "diff_ci_high",
    "test",
    "statistic",
    "p_value",
    "p_adjusted",
    "significant",
]


@_accepts_tables
def segment_comparison(
    act: CohortActivity,
    *,
    segment: str | None = None,
    at_periods: Sequence[int] = (1, 4),
    retention: Retention | None = None,
    correction: Literal["holm", "bh"] = "holm",
    alpha: float = 0.05,
    reference: Any = None,
) -> pd.DataFrame:
    """Compare segments (e.g. plan) on retention at `at_periods` and on feature adoption.

    For each pair of segment values (or each value against `reference`): counts and rates with
    Wilson 95% intervals, the difference a − b with a Newcombe (hybrid score) interval and a
    two-proportion z test (pooled; the same as a 2×2 chi-square without continuity correction).
    Retention pools complete cells of period N over all cohorts. For time to adopt, a log-rank
    test (statsmodels `survdiff`'s statistic, computed from counts) over every unit in the
    window, censored as in the Kaplan–Meier curve; its rates are the Kaplan–Meier share adopted
    by the end of the window.
    All p-values of the call form one family, adjusted by Holm (default) or Benjamini–Hochberg;
    `significant` means p_adjusted < alpha.
    """
    from statsmodels.stats.multitest import multipletests

    s = act.settings
    segments = [segment] if segment else list(s.segments)
    if not segments:
        raise ParameterError(["segment: no segment column given (settings.segments is empty)"])
    if correction not in ("holm", "bh"):
        raise ParameterError([f"correction: {correction!r} is not 'holm' or 'bh'"])
    bad = [n for n in at_periods if not isinstance(n, int | np.integer) or not 1 <= n <= s.periods]
    if bad:
        raise ParameterError([f"at_periods: {bad} outside 1…{s.periods}"])
    rows: list[dict[str, Any]] = []
    for column in segments:
        matrix = retention_matrix(act, retention=retention, by=column)
        done = matrix[matrix["state"].eq("complete")]
        for n in at_periods:
            cells = done[done["period"] == n]
            groups = cells.groupby(column, sort=True).agg(
                n=("cohort_size", "sum"), x=("retained", "sum")
            )
            label = f"period {n} ({retention or s.retention})"
            rows += _proportion_pairs(column, "retention", label, groups, reference)
        if s.features:
            adoption = feature_adoption(act, by=column)
            times = _time_to_adopt(act, [column])
            for name in s.features:
                part = adoption.summary[adoption.summary["feature"] == name].set_index(column)
                groups = part.rename(columns={"eligible": "n", "adopted": "x"})[["n", "x"]]
                rows += _proportion_pairs(column, "adoption", name, groups, reference)
                rows += _logrank_pairs(act, column, name, adoption.curve, times, reference)
    frame = pd.DataFrame(rows, columns=SEGMENT_COLUMNS)
    ok = frame["p_value"].notna().to_numpy()
    frame["p_adjusted"] = np.nan
    if ok.any():
        method = "holm" if correction == "holm" else "fdr_bh"
        frame.loc[ok, "p_adjusted"] = multipletests(
            frame.loc[ok, "p_value"].to_numpy(dtype=float), alpha=alpha, method=method
        )[1]
    frame["significant"] = frame["p_adjusted"] < alpha
    return frame


def _pairs(values: Iterable[Any], reference: Any) -> list[tuple[Any, Any]]:
    values = list(values)
    if reference is None:
        return list(itertools.combinations(values, 2))
    if reference not in values:
        return []
    return [(v, reference) for v in values if v != reference]


def _wilson(x: int, n: int, alpha: float = 0.05) -> tuple[float | None, float | None]:
    from statsmodels.stats.proportion import proportion_confint

    if not n:
        return None, None
    low, high = proportion_confint(x, n, alpha=alpha, method="wilson")
    return float(low), float(high)


def _proportion_pairs(
    column: str, metric: str, detail: str, groups: pd.DataFrame, reference: Any
) -> list[dict[str, Any]]:
    from scipy.stats import norm
    from statsmodels.stats.proportion import confint_proportions_2indep

    groups = groups[groups["n"] > 0]
    out = []
    for a, b in _pairs(groups.index, reference):
        n_a, x_a = int(groups.loc[a, "n"]), int(groups.loc[a, "x"])
        n_b, x_b = int(groups.loc[b, "n"]), int(groups.loc[b, "x"])
        p_a, p_b = x_a / n_a, x_b / n_b
        low, high = confint_proportions_2indep(x_a, n_a, x_b, n_b, method="newcomb", compare="diff")
        pooled = (x_a + x_b) / (n_a + n_b)
        se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
        z = (p_a - p_b) / se if se > 0 else 0.0
        out.append(
            {
                "segment": column,
                "metric": metric,
                "detail": detail,
                "group_a": a,
                "group_b": b,
                "n_a": n_a,
                "x_a": x_a,
                "rate_a": p_a,
                "ci_low_a": _wilson(x_a, n_a)[0],
                "ci_high_a": _wilson(x_a, n_a)[1],
                "n_b": n_b,
                "x_b": x_b,
                "rate_b": p_b,
                "ci_low_b": _wilson(x_b, n_b)[0],
                "ci_high_b": _wilson(x_b, n_b)[1],
                "difference": p_a - p_b,
                "diff_ci_low": float(low),
                "diff_ci_high": float(high),
                "test": "two-proportion z",
                "statistic": z,
                "p_value": float(2 * norm.sf(abs(z))),
            }
        )
    return out


def _logrank_pairs(
    act: CohortActivity,
    column: str,
    name: str,
    curve: pd.DataFrame,
    times: pd.DataFrame,
    reference: Any,
) -> list[dict[str, Any]]:
    i = list(act.settings.features).index(name)
    frame = times[times["fi"] == i]
    frame = frame[frame[column].notna()]
    mine = curve[curve["feature"] == name]
    out = []
    for a, b in _pairs(sorted(frame[column].unique()), reference):
        fa, fb = frame[frame[column] == a], frame[frame[column] == b]
        n_a, n_b = int(fa["units"].sum()), int(fb["units"].sum())
        if not n_a or not n_b:
            continue
        x_a = int(fa.loc[fa["adopted"].astype(bool), "units"].sum())
        x_b = int(fb.loc[fb["adopted"].astype(bool), "units"].sum())
        row = {
            "segment": column,
            "metric": "time_to_adopt",
            "detail": name,
            "group_a": a,
            "group_b": b,
            "n_a": n_a,
            "x_a": x_a,
            "n_b": n_b,
            "x_b": x_b,
            "test": "log-rank",
        }
        for g, suffix in ((a, "a"), (b, "b")):
            part = mine[mine[column] == g]
            row[f"rate_{suffix}"] = float(part["adopted_share"].iloc[-1]) if len(part) else None
        if x_a + x_b == 0:
            row |= {"statistic": 0.0, "p_value": 1.0}
        else:
            chi2, p = _logrank(fa, fb)
            row |= {"statistic": chi2, "p_value": p}
        out.append(row)
    return out


def _logrank(a: pd.DataFrame, b: pd.DataFrame) -> tuple[float, float]:
    """Two-group log-rank test (chi-square, p) from counted rows (hours, adopted, units).

    The statistic of statsmodels' `survdiff` on the same units one row each (its variance
    formula, times with fewer than two at risk left out), computed from the counts at each
    distinct time instead of a million expanded rows.
    """
    from scipy.stats import chi2 as chi2_dist

    hours = np.unique(np.concatenate([a["hours"].to_numpy(), b["hours"].to_numpy()]))

    def at_risk_and_events(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        at = np.searchsorted(hours, frame["hours"].to_numpy())
        units = frame["units"].to_numpy(dtype="float64")
        adopted = frame["adopted"].to_numpy(dtype=bool)
        leaving = np.bincount(at, weights=units, minlength=len(hours))
        events = np.bincount(at, weights=units * adopted, minlength=len(hours))
        return np.cumsum(leaving[::-1])[::-1], events

    n_a, d_a = at_risk_and_events(a)
    n_b, d_b = at_risk_and_events(b)
    n, d = n_a + n_b, d_a + d_b
    keep = n > 1
    share_b = n_b / np.clip(n, 1e-10, None)
    observed_minus_expected = (d_b - share_b * d)[keep].sum()
    variance = (share_b * (1 - share_b) * d * (n - d) / np.clip(n - 1, 1e-10, None))[keep].sum()
    if variance <= 0:
        return 0.0, 1.0
    statistic = float(observed_minus_expected**2 / variance)
    return statistic, float(chi2_dist.sf(statistic, 1))


# --- Data checks ---------------------------------------------------------------------------------


def cohort_checks(act: CohortActivity) -> list[Check]:
    """Data checks for a cohort readout, each with the number behind it.

    Timezone and calendar in force; events before signup; users without activity; events
    outside the window (after as_of: ignored; before the first cohort: history only); events
    from users missing in the users table; incomplete last period; tiny cohorts; features or
    activity events that never occur; users without an account (unit = account). One extra
    engine pass joins the events to the users.
    """
    s, cal, st = act.settings, act.calendar, act.stats
    checks = []
    zone_note = (
        f"{st['zone_changes']} UTC-offset change(s) in the data's span"
        if st["zone_changes"]
        else "no UTC-offset change in the data's span"
    )
    checks.append(
        Check(
            "timezone in force",
            "pass",
            f"periods are calendar {s.period}s in {s.timezone} ({zone_note}); weeks start on "
            f"{s.week_start_name}; observation ends {cal.observed_until:%Y-%m-%d %H:%M} local time",
        )
    )
    if cal.empty:
        checks.append(
            Check(
                "cohorts in window",
                "fail",
                f"no cohort period between the start and the end of observation "
                f"({cal.observed_until:%Y-%m-%d})",
            )
        )
    duckdb = st["duckdb"]
    users, events = act.users, act.events
    anchor = users.select("user_id", signup_us=_epoch_us(users.signup_at, duckdb))
    ev = events.select("user_id", us=_epoch_us(events.timestamp, duckdb))
    joined = ev.left_join(anchor, "user_id")
    start_us = _local_midnight_utc(cal.start_day(cal.p_first), s.timezone)
    early = joined.us < joined.signup_us
    unknown = joined.signup_us.isnull()
    row = (
        joined.aggregate(
            events=_.count(),
            before_signup=early.cast("int64").sum(),
            before_signup_users=joined.user_id.nunique(where=early),
            unknown=unknown.cast("int64").sum(),
            unknown_users=joined.user_id.nunique(where=unknown),
            after_end=(joined.us >= cal.obs_end_us).cast("int64").sum(),
            before_start=(joined.us < start_us).cast("int64").sum(),
        )
        .execute()
        .iloc[0]
    )
    n = {k: _int0(v) for k, v in row.items()}

    if s.cohort_by == "signup":
        checks.append(
            Check(
                "events before signup",
                "warn" if n["before_signup"] else "pass",
                f"{n['before_signup']:,} events from {n['before_signup_users']:,} users happen "
                "before their signup; they count as history (lifecycle) but never toward "
                "retention or adoption"
                if n["before_signup"]
                else "no event precedes its user's signup",
            )
        )
    checks.append(
        Check(
            "events from unknown users",
            "warn" if n["unknown"] else "pass",
            f"{n['unknown']:,} events from {n['unknown_users']:,} users missing from the users "
            "table are left out"
            if n["unknown"]
            else "every user in events is in the users table",
        )
    )
    checks.append(
        Check(
            "events outside the window",
            "pass",
            f"{n['after_end']:,} of {n['events']:,} events are after the end of observation "
            f"and ignored; {n['before_start']:,} are before the first cohort "
            f"({cal.start(cal.p_first):%Y-%m-%d}) and count only as history"
            + (
                f"; {st['future_users']:,} users signed up after the end and are left out"
                if st["future_users"]
                else ""
            ),
        )
    )

    t = act.table
    words = [t[f"w{j}"] != 0 for j in range(cal.words)]
    any_activity = t.pre
    for w in words:
        any_activity = any_activity | w
    unit_row = (
        t.aggregate(
            units=_.count(),
            in_cohort=t.in_cohort.cast("int64").sum(),
            silent=(t.in_cohort & ~any_activity).cast("int64").sum(),
            earlier=(t.cohort < cal.p_first).cast("int64").sum(),
        )
        .execute()
        .iloc[0]
    )
    units, in_cohort, silent, earlier = (
        _int0(unit_row[k]) for k in ("units", "in_cohort", "silent", "earlier")
    )
    noun = "accounts" if s.unit == "account" else "users"
    if earlier:
        checks.append(
            Check(
                f"{noun} before the first cohort",
                "pass",
                f"{earlier:,} {noun} joined before the first cohort "
                f"({cal.start(cal.p_first):%Y-%m-%d}); they are in no cohort but count in "
                "lifecycle and stickiness (set start to include them)",
            )
        )
    if s.cohort_by == "first_activity":
        never = max(st["users"] - st["future_users"] - _users_with_activity(act), 0)
        checks.append(
            Check(
                "users without activity",
                "warn" if never else "pass",
                f"{never:,} users have no activity event before the end of observation and "
                "belong to no cohort"
                if never
                else "every user has activity",
            )
        )
    else:
        share = silent / in_cohort if in_cohort else 0.0
        checks.append(
            Check(
                f"{noun} without activity",
                "warn" if share > 0.5 else "pass",
                f"{silent:,} of {in_cohort:,} {noun} in cohorts ({share:.1%}) have no activity "
                "event at all (they stay in the denominators)",
            )
        )
    if s.unit == "account":
        no_account = _int0(act.users.account_id.isnull().cast("int64").sum().execute())
        checks.append(
            Check(
                "users without an account",
                "warn" if no_account else "pass",
                f"{no_account:,} users have no account_id and are left out"
                if no_account
                else "every user has an account",
            )
        )

    if not cal.empty:
        last = cal.p_last
        if cal.state(last) == "in_progress":
            checks.append(
                Check(
                    "incomplete last period",
                    "warn",
                    f"the {s.period} of {cal.start(last):%Y-%m-%d} is observed through "
                    f"{cal.observed_until:%Y-%m-%d %H:%M} only; its cells are marked "
                    "in_progress and left out of averages",
                )
            )
        else:
            checks.append(
                Check("incomplete last period", "pass", f"the last {s.period} is complete")
            )
        sizes = t.filter(t.in_cohort).group_by("cohort").aggregate(n=_.count()).execute()
        tiny = sizes[sizes["n"] < s.min_cohort_size]
        if len(sizes) == 0:
            checks.append(Check("cohorts in window", "fail", f"no {noun} joined in the window"))
        checks.append(
            Check(
                "tiny cohorts",
                "warn" if len(tiny) else "pass",
                f"{len(tiny)} of {len(sizes)} cohorts have fewer than {s.min_cohort_size} "
                f"{noun} (smallest: {int(tiny['n'].min())}); their rates are noisy"
                if len(tiny)
                else f"every cohort has at least {s.min_cohort_size} {noun}",
            )
        )

    wanted = set(s.activity or ()) | {e for evs in s.features.values() for e in evs}
    if wanted:
        present = set(
            events.filter(events.event.isin(sorted(wanted)))
            .select("event")
            .distinct()
            .execute()["event"]
        )
        for name, evs in s.features.items():
            missing = [e for e in evs if e not in present]
            if len(missing) == len(evs):
                checks.append(
                    Check(
                        f"feature '{name}'",
                        "warn",
                        f"its event(s) {missing} never occur: adoption is 0",
                    )
                )
            elif missing:
                checks.append(Check(f"feature '{name}'", "warn", f"event(s) {missing} never occur"))
        if s.activity:
            missing = [e for e in s.activity if e not in present]
            if missing:
                status = "fail" if len(missing) == len(s.activity) else "warn"
                checks.append(
                    Check("activity events", status, f"activity event(s) {missing} never occur")
                )
    return checks


def _users_with_activity(act: CohortActivity) -> int:
    s, cal = act.settings, act.calendar
    ev = act.events
    us = _epoch_us(ev.timestamp, act.stats["duckdb"])
    ev = ev.filter(us < cal.obs_end_us)
    if s.activity:
        ev = ev.filter(ev.event.isin(list(s.activity)))
    known = ev.select("user_id").distinct().join(act.users.select("user_id"), "user_id")
    return int(known.count().execute())


def _local_midnight_utc(day: int, zone: str) -> int:
    d = _day_to_date(day)
    return int(datetime(d.year, d.month, d.day, tzinfo=ZoneInfo(zone)).timestamp()) * SECOND_US


# --- Everything at once --------------------------------------------------------------------------


@dataclass
class CohortAdoption:
    """Every cohort-adoption result frame (`tables`) and the data checks."""

    tables: dict[str, pd.DataFrame]
    checks: list[Check]
    calendar: Calendar
    settings: CohortSettings


def cohort_adoption(
    users: ibis.Table,
    events: ibis.Table,
    *,
    at_periods: Sequence[int] = (1, 4),
    correction: Literal["holm", "bh"] = "holm",
    **settings: Any,
) -> CohortAdoption:
    """Run every cohort computation over one per-unit table and collect the result frames.

    tables: retention, average_retention, segment_retention (the average curve of each value of
    each segment column), adoption (by cohort), adoption_summary, time_to_adopt, breadth,
    stickiness (weekly DAU/MAU), daily_active, active_days, lifecycle, segments.
    """
    with cohort_activity(users, events, **settings) as act:
        s = act.settings
        matrix = retention_matrix(act)
        adoption = feature_adoption(act)
        sticky = stickiness(act)
        tables = {
            "retention": matrix,
            "average_retention": average_retention(matrix),
            "adoption": adoption.by_cohort,
            "adoption_summary": adoption.summary,
            "time_to_adopt": adoption.curve,
            "breadth": adoption.breadth,
            "lifecycle": lifecycle(act),
            "stickiness": sticky.weekly,
            "daily_active": sticky.daily,
            "active_days": sticky.active_days,
        }
        tables["segment_retention"] = _segment_retention(act)
        periods = [n for n in at_periods if n <= s.periods]
        if s.segments and not act.calendar.empty and periods:
            tables["segments"] = segment_comparison(act, at_periods=periods, correction=correction)
        else:
            tables["segments"] = pd.DataFrame(columns=SEGMENT_COLUMNS)
        checks = cohort_checks(act)
        return CohortAdoption(tables, checks, act.calendar, s)


SEGMENT_RETENTION_COLUMNS = [
    "segment",
    "value",
    "period",
    "n_cohorts",
    "cohort_size",
    "retained",
    "rate",
]


def _segment_retention(act: CohortActivity) -> pd.DataFrame:
    """The average retention curve of every value of every segment column, stacked."""
    parts = []
    for column in act.settings.segments:
        curve = average_retention(retention_matrix(act, by=column), by=column)
        curve = curve.rename(columns={column: "value"}).assign(segment=column)
        parts.append(curve.astype({"value": "object"}))
    if not parts:
        return pd.DataFrame(columns=SEGMENT_RETENTION_COLUMNS)
    return pd.concat(parts, ignore_index=True)[SEGMENT_RETENTION_COLUMNS]
