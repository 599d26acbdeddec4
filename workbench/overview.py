"""The data overview readout: what is in the data, over which dates, and can it be trusted."""

from __future__ import annotations

from dataclasses import dataclass

import altair as alt
import ibis
import pandas as pd
from ibis import _

from workbench import charts
from workbench.engine import local_time
from workbench.parameters import DataOverviewParameters
from workbench.results import AnalysisResult, Check, KeyNumber

TIME_COLUMNS = {
    "users": "signup_at",
    "events": "timestamp",
    "assignments": "assigned_at",
    "feedback": "created_at",
}


@dataclass
class DataOverview(AnalysisResult):
    """Row counts, date ranges, weekly activity and top events, with data checks."""

    def activity_chart(self) -> alt.Chart:
        """Weekly active users and new signups, complete weeks only."""
        weekly = self.tables["weekly_activity"]
        long = weekly[weekly["complete"]].melt(
            id_vars="week",
            value_vars=["active_users", "signups"],
            var_name="series",
            value_name="users",
        )
        long["series"] = long["series"].map(
            {"active_users": "Active users", "signups": "New signups"}
        )
        return charts.line_over_time(
            long, "week", "users", title="Users per week", y_title="Users", color="series"
        )

    def top_events_chart(self) -> alt.Chart:
        """The most frequent events with the number of users doing them."""
        return charts.ranked_bars(
            self.tables["top_events"],
            "event",
            "events",
            title="Top events",
            value_title="Events",
            extra_tooltips=("users",),
        )


def data_overview(tables: dict[str, ibis.Table], params: DataOverviewParameters) -> DataOverview:
    """Summarise the declared tables; heavy work runs in the engine, small frames come back."""
    zone = params.timezone
    users, events = tables["users"], tables["events"]
    events = _in_window(events, "timestamp", params, zone)
    checks: list[Check] = []

    inventory = []
    for name, table in tables.items():
        column = TIME_COLUMNS.get(name)
        t = _in_window(table, column, params, zone) if name == "events" else table
        agg = {"rows": t.count()}
        if column:
            local = local_time(t[column], zone)
            agg |= {"start": local.min(), "end": local.max()}
        row = t.aggregate(**agg).execute().iloc[0].to_dict()
        inventory.append(
            {
                "table": name,
                "rows": int(row["rows"]),
                "start": row.get("start"),
                "end": row.get("end"),
            }
        )
    inventory = pd.DataFrame(inventory)
    ev = inventory.set_index("table").loc["events"]
    if ev["rows"] == 0:
        checks.append(Check("events in window", "fail", "no events fall inside the data window"))
    data_end = pd.Timestamp(ev["end"]) if ev["rows"] else None

    week = local_time(events.timestamp, zone).truncate("W")
    activity = (
        events.mutate(week=week)
        .group_by("week")
        .aggregate(active_users=_.user_id.nunique(), events=_.count())
        .execute()
    )
    signup_week = local_time(users.signup_at, zone).truncate("W")
    signups = users.mutate(week=signup_week).group_by("week").aggregate(signups=_.count()).execute()
    weekly = activity.merge(signups, on="week", how="outer").fillna(0).sort_values("week")
    weekly = weekly.astype({"active_users": "int64", "events": "int64", "signups": "int64"})
    weekly["week"] = pd.to_datetime(weekly["week"])
    if data_end is not None:
        weekly = weekly[weekly["week"] <= data_end]
        weekly["complete"] = weekly["week"] + pd.Timedelta(
            days=7
        ) <= data_end.normalize() + pd.Timedelta(days=1)
    else:
        weekly["complete"] = False
    weekly = weekly.reset_index(drop=True)

    total_events = int(ev["rows"])
    top = (
        events.group_by("event")
        .aggregate(events=_.count(), users=_.user_id.nunique())
        .order_by([ibis.desc("events"), "event"])
        .limit(params.top_events)
        .execute()
    )
    top["share_of_events"] = top["events"] / total_events if total_events else 0.0
    distinct_events = int(events.event.nunique().execute())

    checks += _quality_checks(users, events, tables, params, weekly, data_end)
    n_users = int(inventory.set_index("table").loc["users", "rows"])
    complete = weekly[weekly["complete"]]
    last = complete.iloc[-1] if len(complete) else None
    wau = int(last["active_users"]) if last is not None else 0
    active_weeks = int(complete["active_users"].sum())
    per_user = complete["events"].sum() / active_weeks if active_weeks else 0.0

    window = {"start": _date(ev["start"]), "end": _date(ev["end"])}
    headline = (
        f"{n_users:,} users and {total_events:,} events from {window['start']} to {window['end']}; "
        + (
            f"{wau:,} users were active in the last complete week ({last['week']:%Y-%m-%d})."
            if last is not None
            else "no complete week of activity yet."
        )
    )
    bullets = _bullets(weekly, top, distinct_events, checks)
    result_tables = {"tables": inventory, "weekly_activity": weekly, "top_events": top}
    if "feedback" in tables:
        result_tables["recent_feedback"] = recent_feedback(tables["feedback"])
    return DataOverview(
        headline=headline,
        bullets=bullets,
        key_numbers=[
            KeyNumber("Users", n_users, "users"),
            KeyNumber("Events", total_events, "events"),
            KeyNumber("Weekly active users (last complete week)", wau, "users"),
            KeyNumber("Events per active user per week", round(float(per_user), 2), "events"),
        ],
        checks=checks,
        method=[
            "Weeks start on Monday and are taken in the analysis timezone "
            f"({zone}); a week counts as complete when the data covers all of its seven days.",
            "Active user: a user with at least one event in the week. New signups: users whose "
            "signup_at falls in the week.",
            "Counts come from the whole events table inside the data window; nothing is sampled.",
            "Top events are ranked by number of events; 'users' counts distinct users per event.",
        ],
        tables=result_tables,
        data_window=window,
    )


def _quality_checks(
    users: ibis.Table,
    events: ibis.Table,
    tables: dict[str, ibis.Table],
    params: DataOverviewParameters,
    weekly: pd.DataFrame,
    data_end: pd.Timestamp | None,
) -> list[Check]:
    checks = []
    joined = events.join(users.select("user_id", "signup_at"), "user_id")
    before = int((joined.timestamp < joined.signup_at).sum().execute() or 0)
    checks.append(
        Check(
            "events before signup",
            "warn" if before else "pass",
            f"{before:,} events happen before their user's signup_at"
            if before
            else "no event precedes its user's signup",
        )
    )
    event_users = events.select("user_id").distinct()
    unknown = int(event_users.anti_join(users, "user_id").count().execute())
    checks.append(
        Check(
            "events from unknown users",
            "warn" if unknown else "pass",
            f"{unknown:,} users in events are missing from the users table"
            if unknown
            else "every user in events is in the users table",
        )
    )
    silent = int(users.anti_join(event_users, "user_id").count().execute())
    n_users = int(users.count().execute())
    checks.append(
        Check(
            "users without events",
            "warn" if n_users and silent / n_users > 0.5 else "pass",
            f"{silent:,} of {n_users:,} users ({silent / max(n_users, 1):.1%}) "
            "have no event in the window",
        )
    )
    dupes = events.group_by(["user_id", "event", "timestamp"]).aggregate(n=_.count())
    duplicate_rows = int((dupes.n - 1).sum().execute() or 0)
    checks.append(
        Check(
            "duplicate events",
            "warn" if duplicate_rows else "pass",
            f"{duplicate_rows:,} events repeat the same user, event and timestamp"
            if duplicate_rows
            else "no repeated (user, event, timestamp) rows",
        )
    )
    if data_end is not None and len(weekly) and not bool(weekly["complete"].iloc[-1]):
        checks.append(
            Check(
                "incomplete last week",
                "warn",
                f"the week of {weekly['week'].iloc[-1]:%Y-%m-%d} has data through "
                f"{data_end:%Y-%m-%d} only; it is left out of weekly numbers",
            )
        )
    if params.window.start or params.window.end:
        all_events = int(tables["events"].count().execute())
        kept = int(events.count().execute())
        checks.append(
            Check(
                "events outside the window",
                "pass",
                f"{all_events - kept:,} of {all_events:,} events fall outside the window "
                "and are left out",
            )
        )
    if n_users < 100:
        checks.append(Check("small sample", "warn", f"only {n_users:,} users"))
    if "feedback" in tables:
        fb = tables["feedback"]
        empty = int((fb.text.strip().length() == 0).sum().execute() or 0)
        checks.append(
            Check(
                "empty feedback",
                "warn" if empty else "pass",
                f"{empty:,} feedback items have no text"
                if empty
                else "every feedback item has text",
            )
        )
    if "assignments" in tables:
        a = tables["assignments"]
        multi = a.group_by(["experiment", "user_id"]).aggregate(v=_.variant.nunique())
        crossed = int((multi.v > 1).sum().execute() or 0)
        checks.append(
            Check(
                "users in more than one variant",
                "warn" if crossed else "pass",
                f"{crossed:,} users are assigned to more than one variant of an experiment"
                if crossed
                else "every assigned user has exactly one variant per experiment",
            )
        )
    return checks


def _bullets(
    weekly: pd.DataFrame, top: pd.DataFrame, distinct_events: int, checks: list[Check]
) -> list[str]:
    bullets = []
    complete = weekly[weekly["complete"]]
    if len(complete) >= 5:
        now, before = complete.iloc[-1], complete.iloc[-5]
        change = (now["active_users"] - before["active_users"]) / max(before["active_users"], 1)
        bullets.append(
            f"Weekly active users: {now['active_users']:,} in the week of {now['week']:%Y-%m-%d}, "
            f"{change:+.0%} against four weeks earlier ({before['active_users']:,})."
        )
        bullets.append(
            f"New signups: {now['signups']:,} in the last complete week; "
            f"{int(complete['signups'].sum()):,} over {len(complete)} complete weeks."
        )
    if len(top):
        first = top.iloc[0]
        bullets.append(
            f"{distinct_events} distinct events; the most frequent is '{first['event']}' "
            f"({first['share_of_events']:.0%} of events, {first['users']:,} users)."
        )
    issues = [c for c in checks if c.status != "pass"]
    bullets.append(
        f"{len(issues)} data check(s) need attention: " + "; ".join(c.name for c in issues) + "."
        if issues
        else "All data checks pass."
    )
    return bullets


def _in_window(
    table: ibis.Table, column: str | None, params: DataOverviewParameters, zone: str
) -> ibis.Table:
    if column is None or not (params.window.start or params.window.end):
        return table
    day = local_time(table[column], zone).date()
    if params.window.start:
        table = table.filter(day >= params.window.start)
    if params.window.end:
        table = table.filter(day <= params.window.end)
    return table


def _date(value: object) -> str | None:
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).date().isoformat()


def event_trend(
    tables: dict[str, ibis.Table], params: DataOverviewParameters, event: str
) -> alt.Chart:
    """Weekly users and events for one event (the analyst's explorer view)."""
    events = _in_window(tables["events"], "timestamp", params, params.timezone)
    one = events.filter(events.event == event)
    weekly = (
        one.mutate(week=local_time(one.timestamp, params.timezone).truncate("W"))
        .group_by("week")
        .aggregate(users=_.user_id.nunique())
        .order_by("week")
        .execute()
    )
    return charts.line_over_time(
        weekly, "week", "users", title=f"Weekly users of '{event}'", y_title="Users"
    )


def recent_feedback(feedback: ibis.Table, n: int = 5, width: int = 160) -> pd.DataFrame:
    """The latest non-empty feedback items, shortened: a glance at what customers write."""
    text = feedback.text.strip()
    latest = (
        feedback.filter(text.length() > 0)
        .order_by([ibis.desc("created_at"), "feedback_id"])
        .limit(n)
        .select("feedback_id", "created_at", "text")
        .execute()
    )
    latest["text"] = [t if len(t) <= width else t[: width - 1] + "…" for t in latest["text"]]
    return latest
