"""Deterministic sample product data for a fictional B2B SaaS, with the truth that was planted.

`generate_sample` writes accounts, users, events, experiment assignments and customer feedback
as Parquet, plus `truth.json` and `feedback_truth.parquet`: the retention curve, feature adoption
by plan, the experiment's true effects, the theme of every feedback item (one theme emerges
late) and the data-quality quirks, so that tests can check that each analysis recovers them.

Events are generated in fixed-size chunks of users with vectorised numpy and streamed to Parquet,
so a million users (about fifty million events) fit in bounded memory. Every random stream is
derived from the seed with `numpy.random.SeedSequence`, and the calendar is fixed, so the same
seed and number of users give byte-identical files.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import shutil
import string
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from numbers import Integral
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["generate_sample"]

GENERATOR_VERSION = "1.0"

# --- Calendar: fixed, never "now" -----------------------------------------------------------------

SECOND_US = 1_000_000
MINUTE_US = 60 * SECOND_US
HOUR_US = 60 * MINUTE_US
DAY_US = 24 * HOUR_US
NEVER = np.iinfo(np.int64).max


def _instant(day: str) -> int:
    """Microseconds since the epoch of midnight UTC on an ISO date."""
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp()) * SECOND_US


def _iso(us: int) -> str:
    """ISO 8601 UTC text for microseconds since the epoch."""
    return datetime.fromtimestamp(us / SECOND_US, tz=UTC).isoformat().replace("+00:00", "Z")


SIGNUP_START = _instant("2026-03-02")  # a Monday
SIGNUP_END = _instant("2026-08-31")  # exclusive: the last signup day is 2026-08-30
DATA_END = _instant("2026-09-01")  # exclusive: the last event is on 2026-08-31 before midnight
LAST_DAY = DATA_END // DAY_US - 1  # index of the last calendar day with data
SIGNUP_DAYS = (SIGNUP_END - SIGNUP_START) // DAY_US

# --- Accounts and users ---------------------------------------------------------------------------

PLANS = ("free", "pro", "enterprise")
ACCOUNT_PLAN_SHARE = (0.60, 0.30, 0.10)
ACCOUNT_SIZE_WEIGHT = (1.0, 1.6, 3.5)  # paid accounts invite more colleagues
USERS_PER_ACCOUNT = 6
INVITE_DELAY_DAYS = 10.0  # mean days between an account's creation and a colleague's signup
WEEKLY_SIGNUP_GROWTH = 0.02
WEEKDAY_SIGNUP_FACTOR = (1.0, 1.0, 1.0, 1.0, 0.9, 0.35, 0.3)  # Monday first
INDUSTRIES = (
    "software",
    "fintech",
    "retail",
    "healthcare",
    "education",
    "manufacturing",
    "media",
    "logistics",
)
INDUSTRY_SHARE = (0.26, 0.14, 0.13, 0.11, 0.1, 0.1, 0.08, 0.08)
COUNTRIES = ("US", "GB", "DE", "FR", "ES", "NL", "CA", "AU", "BR", "IN", "SE", "JP")
COUNTRY_SHARE = (0.34, 0.12, 0.1, 0.07, 0.05, 0.05, 0.06, 0.05, 0.05, 0.05, 0.03, 0.03)
ROLES = ("admin", "manager", "analyst", "engineer", "sales", "support")
COLLEAGUE_ROLE_SHARE = (0.05, 0.2, 0.3, 0.2, 0.15, 0.1)
PLATFORMS = ("web", "ios", "android")
PLATFORM_SHARE = (0.72, 0.17, 0.11)
WEB = 0
PRICE_PER_SEAT = (0.0, 29.0, 79.0)  # monthly, by plan
ENTERPRISE_DISCOUNTS = (0.0, 0.1, 0.2)
BILLING_PERIOD_DAYS = 30
EARLY_EVENT_SHARE = 0.001  # users with one event a few hours before signup, as real exports have

# --- Activity: who comes back, and how much they do ---------------------------------------------

# Some users stay; the others churn after an exponential number of weeks. While retained, a user
# has a session in a week with their own regularity (Beta-distributed); after churning, only
# rarely. Active weeks bring 1 + Poisson(session rate) sessions, the rate log-normal per user, so
# heavy users stay heavy (what makes a pre-period covariate predictive), and users who churn
# were lighter users to begin with.
STAY_SHARE = (0.22, 0.34, 0.42)  # by plan: users who never churn within the calendar
CHURN_MEAN_WEEKS = 1.0  # mean weeks retained of users who churn
SESSION_RATE_FACTOR_STAYING, SESSION_RATE_FACTOR_CHURNING = 2.2, 0.45
REGULARITY_MEAN = 0.85  # chance of a session in a week while retained
REGULARITY_CONCENTRATION = 4.0
RESURRECTION_PER_WEEK = 0.04  # chance of a session in a week after churning
MAX_WEEKS = (LAST_DAY - SIGNUP_START // DAY_US) // 7 + 1
EXTRA_SESSIONS_MEAN = (1.1, 1.4, 1.6)  # per active week, on top of the first, by plan
EXTRA_SESSIONS_SPREAD = 0.7  # log-normal sigma of a user's session rate
SESSION_ON_PRIMARY_PLATFORM = 0.8
PAGE_VIEWS_PER_SESSION = 1.7
SEARCH_PER_SESSION = 0.3
RETENTION_REPORTED_WEEKS = 12

EVENTS = (
    "session_start",
    "page_view",
    "search",
    "report_created",
    "dashboard_shared",
    "integration_connected",
    "alert_configured",
    "export_csv",
    "invoice_paid",
)
SESSION, PAGE_VIEW, SEARCH = 0, 1, 2
FIRST_FEATURE_CODE = 3
INVOICE = EVENTS.index("invoice_paid")


@dataclass(frozen=True)
class Feature:
    """A core feature: its event, planted adoption and repeat use."""

    name: str
    event: str
    rate_by_plan: tuple[float, float, float]  # P(first use within ADOPTION_WINDOW_DAYS)
    median_days: float  # median of the exponential time to first use of eventual adopters
    repeat_per_session: float  # chance that a later session of an adopter uses it again
    description: str

    @property
    def eventual_rate_by_plan(self) -> tuple[float, ...]:
        """Probability of ever adopting, so that adoption within the window matches the rate."""
        within_window = 1 - 0.5 ** (ADOPTION_WINDOW_DAYS / self.median_days)
        return tuple(rate / within_window for rate in self.rate_by_plan)


ADOPTION_WINDOW_DAYS = 14
FEATURES = (
    Feature("reports", "report_created", (0.30, 0.45, 0.60), 1.5, 0.08, "creates a report"),
    Feature(
        "shared_dashboards",
        "dashboard_shared",
        (0.20, 0.45, 0.60),
        4.0,
        0.05,
        "shares a dashboard with a colleague",
    ),
    Feature(
        "integrations",
        "integration_connected",
        (0.08, 0.30, 0.50),
        5.0,
        0.01,
        "connects an integration (Slack, Jira, a warehouse)",
    ),
    Feature(
        "alerts", "alert_configured", (0.12, 0.25, 0.35), 6.0, 0.03, "configures a metric alert"
    ),
    Feature("csv_export", "export_csv", (0.25, 0.35, 0.40), 3.0, 0.06, "exports a table to CSV"),
)
assert [FIRST_FEATURE_CODE + i for i in range(len(FEATURES))] == [
    EVENTS.index(f.event) for f in FEATURES
]

# --- Experiment -----------------------------------------------------------------------------------

EXPERIMENT_ID = "onboarding_checklist"
VARIANTS = ("control", "treatment")
PLANNED_SPLIT = (0.5, 0.5)
EXPERIMENT_START = _instant("2026-07-06")
EXPERIMENT_END = _instant("2026-08-03")  # exclusive: exposure window 2026-07-06 .. 2026-08-02
METRIC_WINDOW_DAYS = 14
METRIC_WINDOW_US = METRIC_WINDOW_DAYS * DAY_US
REPORT_CONVERSION_BOOST = 0.04  # treatment: P(a non-converter converts anyway)
SESSION_LIFT = 0.05  # treatment: each post-exposure session brings an extra one with this chance
EVENTS_CHUNK_USERS = 25_000
assert EVENTS_CHUNK_USERS < 2**18 and DATA_END - SIGNUP_START + DAY_US < 2**44

# --- Stream keys of SeedSequence(seed, spawn_key=...) ---------------------------------------------

POPULATION_STREAM, FEEDBACK_STREAM, EVENTS_STREAM = 0, 1, 2
ORGANIC, ASSIGNMENT, TREATMENT = 0, 1, 2

OWNED_FILES = (
    "accounts.parquet",
    "users.parquet",
    "events.parquet",
    "assignments.parquet",
    "feedback.parquet",
    "feedback_truth.parquet",
    "truth.json",
    "manifest.json",
)

TIMESTAMP = pa.timestamp("us", tz="UTC")
SCHEMAS = {
    "accounts": pa.schema(
        [
            ("account_id", pa.string()),
            ("plan", pa.string()),
            ("industry", pa.string()),
            ("created_at", TIMESTAMP),
        ]
    ),
    "users": pa.schema(
        [
            ("user_id", pa.string()),
            ("account_id", pa.string()),
            ("signup_at", TIMESTAMP),
            ("plan", pa.string()),
            ("country", pa.string()),
            ("role", pa.string()),
        ]
    ),
    "events": pa.schema(
        [
            ("user_id", pa.string()),
            ("event", pa.string()),
            ("timestamp", TIMESTAMP),
            ("platform", pa.string()),
            ("revenue", pa.float64()),
        ]
    ),
    "assignments": pa.schema(
        [
            ("user_id", pa.string()),
            ("experiment", pa.string()),
            ("variant", pa.string()),
            ("assigned_at", TIMESTAMP),
            ("plan", pa.string()),
        ]
    ),
    "feedback": pa.schema(
        [
            ("feedback_id", pa.string()),
            ("created_at", TIMESTAMP),
            ("text", pa.string()),
            ("source", pa.string()),
            ("score", pa.int64()),
            ("user_id", pa.string()),
            ("account_id", pa.string()),
            ("plan", pa.string()),
        ]
    ),
    "feedback_truth": pa.schema(
        [
            ("feedback_id", pa.string()),
            ("themes", pa.list_(pa.string())),
            ("is_duplicate_of", pa.string()),
            ("near_duplicate_of", pa.string()),
            ("language", pa.string()),
            ("quirks", pa.list_(pa.string())),
        ]
    ),
}


def generate_sample(
    out: str | Path,
    users: int = 5000,
    *,
    feedback: int | None = None,
    seed: int = 7,
    experiment_split: tuple[float, float] = PLANNED_SPLIT,
) -> dict:
    """Write the sample dataset into `out` and return its manifest (table -> rows, paths)."""
    _check_arguments(users, feedback, seed, experiment_split)
    users, seed = int(users), int(seed)
    n_feedback = _default_feedback_items(users) if feedback is None else int(feedback)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"sample output {out} exists and is not a folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        manifest = _write_dataset(staging, users, n_feedback, seed, tuple(experiment_split))
        _publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _default_feedback_items(users: int) -> int:
    """Feedback items written when none are asked for: 0.6 per user, at most 100,000."""
    return min(round(0.6 * users), 100_000)


def _check_arguments(
    users: int, feedback: int | None, seed: int, experiment_split: tuple[float, float]
) -> None:
    """Raise ValueError naming every argument that cannot produce a dataset."""
    problems = []
    if not _is_count(users, minimum=1):
        problems.append(f"users must be a whole number of at least 1, got {users!r}")
    if feedback is not None and not _is_count(feedback, minimum=0):
        problems.append(f"feedback must be a whole number of at least 0, got {feedback!r}")
    if not _is_count(seed, minimum=0):
        problems.append(f"seed must be a non-negative whole number, got {seed!r}")
    split = tuple(experiment_split)
    if (
        len(split) != 2
        or not all(isinstance(s, int | float) and 0 <= s <= 1 for s in split)
        or not math.isclose(sum(split), 1.0)
    ):
        problems.append(
            f"experiment_split must be two shares (control, treatment) summing to 1, "
            f"got {experiment_split!r}"
        )
    if problems:
        raise ValueError("; ".join(problems))


def _is_count(value: object, minimum: int) -> bool:
    """Whether `value` is a whole number (not a bool) of at least `minimum`."""
    return isinstance(value, Integral) and not isinstance(value, bool) and value >= minimum


def _publish(staging: Path, out: Path) -> None:
    """Move the finished files into `out`, replacing only the files the generator owns."""
    if not out.exists():
        staging.rename(out)
        return
    for name in OWNED_FILES:  # manifest.json last: it marks a complete dataset
        os.replace(staging / name, out / name)
    staging.rmdir()


def _stream(seed: int, *key: int) -> np.random.Generator:
    """An independent random generator for one named part of the dataset."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _write_dataset(
    folder: Path, n_users: int, n_feedback: int, seed: int, split: tuple[float, float]
) -> dict:
    """Generate every table into `folder`; return the manifest."""
    population = _build_population(n_users, _stream(seed, POPULATION_STREAM))
    rows = {
        "accounts": _write_table(folder / "accounts.parquet", population.accounts_table()),
        "users": _write_table(folder / "users.parquet", population.users_table()),
    }
    tally = _Tally()
    assignment_parts = []
    with pq.ParquetWriter(
        folder / "events.parquet", SCHEMAS["events"], compression="zstd"
    ) as writer:
        for index, start in enumerate(range(0, n_users, EVENTS_CHUNK_USERS)):
            stop = min(start + EVENTS_CHUNK_USERS, n_users)
            events, assignments = _generate_chunk(
                population, start, stop, seed, index, split, tally
            )
            writer.write_table(events, row_group_size=len(events) or None)
            assignment_parts.append(assignments)
            tally.events += len(events)
    rows["events"] = tally.events
    rows["assignments"] = _write_table(
        folder / "assignments.parquet",
        pa.concat_tables(assignment_parts)
        if assignment_parts
        else SCHEMAS["assignments"].empty_table(),
    )
    feedback = _generate_feedback(population, n_feedback, seed)
    rows["feedback"] = _write_table(folder / "feedback.parquet", feedback.table)
    rows["feedback_truth"] = _write_table(folder / "feedback_truth.parquet", feedback.truth_table)

    truth = {
        "generator": {
            "name": "workbench.sample",
            "version": GENERATOR_VERSION,
            "seed": seed,
            "users": n_users,
        },
        "calendar": _calendar(),
        "plans": _plan_truth(population),
        "retention": tally.retention_truth(),
        "adoption": tally.adoption_truth(),
        "experiment": tally.experiment_truth(split),
        "feedback": feedback.truth,
        "data_quality": {
            "events_before_signup": {
                "users": int(population.early_event.sum()),
                "events": tally.early_events,
                "hours_before_signup": [1, 6],
                "event": "page_view",
            },
            **feedback.quirk_counts,
        },
    }
    _write_json(folder / "truth.json", truth)
    paths = {table: f"{table}.parquet" for table in rows}
    manifest = {
        "generator": "workbench.sample",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "users": n_users,
        "feedback": n_feedback,
        "experiment_split": {
            variant: share for variant, share in zip(VARIANTS, split, strict=True)
        },
        "calendar": _calendar(),
        "rows": rows,
        "paths": {**paths, "truth": "truth.json"},
    }
    _write_json(folder / "manifest.json", manifest)
    return manifest


def _write_table(path: Path, table: pa.Table) -> int:
    """Write one table as Parquet and return its row count."""
    pq.write_table(table, path, compression="zstd")
    return table.num_rows


def _write_json(path: Path, document: dict) -> None:
    """Write a JSON document readably, ending in a newline."""
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _calendar() -> dict:
    """The fixed calendar of the sample, as ISO text."""
    return {
        "signup_start": _iso(SIGNUP_START),
        "signup_end_exclusive": _iso(SIGNUP_END),
        "data_end_exclusive": _iso(DATA_END),
        "experiment_exposure_start": _iso(EXPERIMENT_START),
        "experiment_exposure_end_exclusive": _iso(EXPERIMENT_END),
        "emerging_theme_start": _iso(EMERGING_START),
    }


def _plan_truth(population: _Population) -> dict:
    """Accounts and users per plan, and the activity and price planted for each plan."""
    return {
        plan: {
            "accounts": int((population.account_plan == p).sum()),
            "users": int((population.plan == p).sum()),
            "stay_share": STAY_SHARE[p],
            "extra_sessions_per_active_week": EXTRA_SESSIONS_MEAN[p],
            "price_per_seat_month": PRICE_PER_SEAT[p],
        }
        for p, plan in enumerate(PLANS)
    }


# --- Accounts and users ---------------------------------------------------------------------------


@dataclass
class _Population:
    """Every account and user, in memory (small even at a million users), users by signup."""

    account_plan: np.ndarray
    account_created: np.ndarray
    account_industry: np.ndarray
    account_discount: np.ndarray
    user_account: np.ndarray
    signup: np.ndarray
    is_owner: np.ndarray
    country: np.ndarray
    role: np.ndarray
    platform: np.ndarray
    churn_week: np.ndarray  # weeks after signup when the user churns (inf: stays)
    regularity: np.ndarray  # chance of a session in a week while retained
    session_rate: np.ndarray  # extra sessions in an active week
    early_event: np.ndarray  # planted quirk: one event a few hours before signup
    account_ids: pa.Array = field(init=False)
    user_ids: pa.Array = field(init=False)
    seat_keys: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.account_ids = _ids("a", len(self.account_plan), 5)
        self.user_ids = _ids("u", len(self.signup), 7)
        self.seat_keys = np.sort(_seat_key(self.user_account, self.signup))

    @property
    def plan(self) -> np.ndarray:
        """Plan of every user (their account's)."""
        return self.account_plan[self.user_account]

    def accounts_table(self) -> pa.Table:
        """The accounts table."""
        return pa.table(
            [
                self.account_ids,
                _labels(PLANS, self.account_plan),
                _labels(INDUSTRIES, self.account_industry),
                pa.array(self.account_created, TIMESTAMP),
            ],
            schema=SCHEMAS["accounts"],
        )

    def users_table(self) -> pa.Table:
        """The users table."""
        return pa.table(
            [
                self.user_ids,
                self.account_ids.take(self.user_account),
                pa.array(self.signup, TIMESTAMP),
                _labels(PLANS, self.plan),
                _labels(COUNTRIES, self.country),
                _labels(ROLES, self.role),
            ],
            schema=SCHEMAS["users"],
        )

    def seats(self, account: np.ndarray, at: np.ndarray) -> np.ndarray:
        """Users of each account who had signed up by the given instants."""
        first = np.searchsorted(self.seat_keys, _seat_key(account, np.full_like(at, SIGNUP_START)))
        last = np.searchsorted(self.seat_keys, _seat_key(account, at), side="right")
        return last - first


def _ids(prefix: str, count: int, min_digits: int) -> pa.Array:
    """Sequential zero-padded ids such as u0000001."""
    digits = max(min_digits, len(str(count)))
    return pa.array([f"{prefix}{i:0{digits}d}" for i in range(1, count + 1)], pa.string())


def _labels(names: tuple[str, ...], codes: np.ndarray) -> pa.Array:
    """A string column from integer codes into `names`."""
    return pa.array(names, pa.string()).take(pa.array(codes))


def _seat_key(account: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Sortable (account, second since the signup start) key."""
    return account.astype(np.int64) * 2**32 + (at - SIGNUP_START) // SECOND_US


def _business_time_of_day(rng: np.random.Generator, size: int) -> np.ndarray:
    """Microseconds after midnight UTC, peaking in European and American working hours."""
    hours = rng.normal(14.5, 3.5, size) % 24
    return (hours * HOUR_US).astype(np.int64)


def _build_population(n_users: int, rng: np.random.Generator) -> _Population:
    """Accounts (created over the signup period) and their users, owners first."""
    n_accounts = min(n_users, max(1, round(n_users / USERS_PER_ACCOUNT)))
    days = np.arange(SIGNUP_DAYS)
    weights = (1 + WEEKLY_SIGNUP_GROWTH * days / 7) * np.take(WEEKDAY_SIGNUP_FACTOR, days % 7)
    account_day = rng.choice(SIGNUP_DAYS, size=n_accounts, p=weights / weights.sum())
    created = np.sort(SIGNUP_START + account_day * DAY_US + _business_time_of_day(rng, n_accounts))
    account_plan = rng.choice(len(PLANS), size=n_accounts, p=ACCOUNT_PLAN_SHARE).astype(np.int8)
    account_industry = rng.choice(len(INDUSTRIES), size=n_accounts, p=INDUSTRY_SHARE)
    account_country = rng.choice(len(COUNTRIES), size=n_accounts, p=COUNTRY_SHARE)
    discount = np.where(
        account_plan == PLANS.index("enterprise"),
        rng.choice(ENTERPRISE_DISCOUNTS, size=n_accounts),
        0.0,
    )

    # The owner signs up when the account is created; colleagues join later.
    n_colleagues = n_users - n_accounts
    size_weight = np.take(ACCOUNT_SIZE_WEIGHT, account_plan) * rng.lognormal(0, 0.9, n_accounts)
    colleague_account = rng.choice(n_accounts, size=n_colleagues, p=size_weight / size_weight.sum())
    room = SIGNUP_END - 1 - created[colleague_account]
    delay = (rng.exponential(INVITE_DELAY_DAYS * DAY_US, n_colleagues) + SECOND_US).astype(np.int64)
    late = delay > room
    delay[late] = (rng.random(late.sum()) * room[late]).astype(np.int64)

    user_account = np.concatenate([np.arange(n_accounts), colleague_account])
    signup = np.concatenate([created, created[colleague_account] + delay])
    is_owner = np.arange(n_users) < n_accounts
    order = np.lexsort((~is_owner, signup))
    user_account, signup, is_owner = user_account[order], signup[order], is_owner[order]

    plan = account_plan[user_account]
    country = np.where(
        rng.random(n_users) < 0.85,
        account_country[user_account],
        rng.choice(len(COUNTRIES), size=n_users, p=COUNTRY_SHARE),
    )
    role = np.where(
        is_owner, ROLES.index("admin"), rng.choice(len(ROLES), size=n_users, p=COLLEAGUE_ROLE_SHARE)
    )
    platform = rng.choice(len(PLATFORMS), size=n_users, p=PLATFORM_SHARE)
    stays = rng.random(n_users) < np.take(STAY_SHARE, plan)
    churn_week = np.where(stays, np.inf, rng.exponential(CHURN_MEAN_WEEKS, n_users))
    regularity = rng.beta(
        REGULARITY_MEAN * REGULARITY_CONCENTRATION,
        (1 - REGULARITY_MEAN) * REGULARITY_CONCENTRATION,
        n_users,
    )
    spread = EXTRA_SESSIONS_SPREAD
    session_rate = (
        np.take(EXTRA_SESSIONS_MEAN, plan)
        * np.where(stays, SESSION_RATE_FACTOR_STAYING, SESSION_RATE_FACTOR_CHURNING)
        * rng.lognormal(-(spread**2) / 2, spread, n_users)
    )
    early_event = np.zeros(n_users, dtype=bool)
    eligible = np.flatnonzero(signup >= SIGNUP_START + DAY_US)
    n_early = min(len(eligible), max(1, round(EARLY_EVENT_SHARE * n_users)))
    early_event[rng.choice(eligible, size=n_early, replace=False)] = True
    return _Population(
        account_plan,
        created,
        account_industry,
        discount,
        user_account,
        signup,
        is_owner,
        country,
        role,
        platform,
        churn_week,
        regularity,
        session_rate,
        early_event,
    )


# --- Events, chunk by chunk -----------------------------------------------------------------------


class _EventBuffer:
    """Columns of generated events, appended part by part and joined once."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, ...]] = []

    def add(
        self,
        user: np.ndarray,
        code: int | np.ndarray,
        at: np.ndarray,
        platform: np.ndarray | int,
        revenue: np.ndarray | None = None,
    ) -> None:
        """Append events; `code` and `platform` may be one value for all."""
        n = len(user)
        self.parts.append(
            (
                user.astype(np.int64),
                np.broadcast_to(np.asarray(code, dtype=np.int8), (n,)),
                np.minimum(at, DATA_END - 1),
                np.broadcast_to(np.asarray(platform, dtype=np.int8), (n,)),
                np.full(n, np.nan) if revenue is None else revenue,
            )
        )

    def columns(self) -> tuple[np.ndarray, ...]:
        """user, code, timestamp, platform and revenue of every event appended."""
        return tuple(np.concatenate(column) for column in zip(*self.parts, strict=True))


def _in_session_offset(rng: np.random.Generator, size: int) -> np.ndarray:
    """Delay of an event after its session started."""
    return 5 * SECOND_US + rng.exponential(6 * MINUTE_US, size).astype(np.int64)


def _generate_chunk(
    population: _Population,
    start: int,
    stop: int,
    seed: int,
    chunk: int,
    split: tuple[float, float],
    tally: _Tally,
) -> tuple[pa.Table, pa.Table]:
    """Events and experiment assignments of users start..stop, tallying the realised truth."""
    rng = _stream(seed, EVENTS_STREAM, chunk, ORGANIC)
    users = slice(start, stop)
    n = stop - start
    signup, plan, platform = (
        population.signup[users],
        population.plan[users],
        population.platform[users],
    )
    buffer = _EventBuffer()

    first_use = _first_uses(rng, signup, plan)
    session_user, session_at, session_platform = _sessions(rng, population, users)
    # Each first use of a feature happens in a session that starts a few minutes earlier.
    feature_used, feature_user = np.nonzero(first_use != NEVER)
    first_used_at = first_use[feature_used, feature_user]
    first_use_session_at = np.maximum(
        first_used_at - rng.integers(MINUTE_US, 10 * MINUTE_US, len(feature_user)),
        signup[feature_user],
    )
    first_use_platform = np.where(rng.random(len(feature_user)) < 0.75, WEB, platform[feature_user])
    buffer.add(feature_user, FIRST_FEATURE_CODE + feature_used, first_used_at, first_use_platform)
    session_user = np.concatenate([session_user, feature_user])
    session_at = np.concatenate([session_at, first_use_session_at])
    session_platform = np.concatenate([session_platform, first_use_platform])
    buffer.add(session_user, SESSION, session_at, session_platform)
    page_views = np.repeat(
        np.arange(len(session_user)), rng.poisson(PAGE_VIEWS_PER_SESSION, len(session_user))
    )
    buffer.add(
        session_user[page_views],
        PAGE_VIEW,
        session_at[page_views] + _in_session_offset(rng, len(page_views)),
        session_platform[page_views],
    )
    searches = np.flatnonzero(rng.random(len(session_user)) < SEARCH_PER_SESSION)
    buffer.add(
        session_user[searches],
        SEARCH,
        session_at[searches] + _in_session_offset(rng, len(searches)),
        session_platform[searches],
    )

    for index, feature in enumerate(FEATURES):
        repeats = np.flatnonzero(
            (rng.random(len(session_user)) < feature.repeat_per_session)
            & (session_at > first_use[index, session_user])
        )
        buffer.add(
            session_user[repeats],
            FIRST_FEATURE_CODE + index,
            session_at[repeats] + _in_session_offset(rng, len(repeats)),
            session_platform[repeats],
        )

    _add_invoices(rng, population, users, buffer)
    early = np.flatnonzero(population.early_event[users])
    buffer.add(
        early,
        PAGE_VIEW,
        signup[early] - rng.integers(HOUR_US, 6 * HOUR_US, len(early)),
        platform[early],
    )
    tally.early_events += len(early)

    assignments = _run_experiment(seed, chunk, split, population, users, buffer, tally)
    user, code, at, event_platform, revenue = buffer.columns()
    tally.add_adoption(plan, signup, user, code, at)
    tally.add_retention(plan, signup, user, code, at)

    # One int64 key (user, microseconds since a day before the calendar) sorts twice as fast
    # as a lexsort; chunks have fewer than 2**18 users and the calendar spans under 2**44 us.
    order = np.argsort((user << 44) | (at - (SIGNUP_START - DAY_US)), kind="stable")
    user, code, at = user[order], code[order], at[order]
    revenue = revenue[order]
    events = pa.table(
        [
            population.user_ids.slice(start, n).take(pa.array(user)),
            pa.array(EVENTS, pa.string()).take(pa.array(code)),
            pa.array(at, TIMESTAMP),
            pa.array(PLATFORMS, pa.string()).take(pa.array(event_platform[order])),
            pa.array(revenue, pa.float64(), mask=np.isnan(revenue)),
        ],
        schema=SCHEMAS["events"],
    )
    return events, assignments


def _first_uses(rng: np.random.Generator, signup: np.ndarray, plan: np.ndarray) -> np.ndarray:
    """When each user first uses each feature (rows), NEVER if not within the calendar."""
    first_use = np.full((len(FEATURES), len(signup)), NEVER)
    for index, feature in enumerate(FEATURES):
        adopts = rng.random(len(signup)) < np.take(feature.eventual_rate_by_plan, plan)
        delay = rng.exponential(feature.median_days / math.log(2) * DAY_US, len(signup))
        at = signup + np.minimum(delay, DATA_END - SIGNUP_START).astype(np.int64)
        first_use[index] = np.where(adopts & (at < DATA_END), at, NEVER)
    return first_use


def _sessions(
    rng: np.random.Generator, population: _Population, users: slice
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Session starts (user, time, platform): one at signup, then active weeks until churn."""
    signup = population.signup[users]
    n = len(signup)
    signup_day = signup // DAY_US
    days_after_signup_day = LAST_DAY - signup_day
    week = np.arange(MAX_WEEKS)
    observed = 7 * week[None, :] <= days_after_signup_day[:, None]
    retained = week[None, :] < population.churn_week[users, None]
    active = rng.random((n, MAX_WEEKS)) < np.where(
        retained, population.regularity[users, None], RESURRECTION_PER_WEEK
    )
    active[:, 0] = True  # the signup session, below, plus the week's extra sessions
    sessions = np.where(
        active & observed,
        (week >= 1) + rng.poisson(population.session_rate[users, None], (n, MAX_WEEKS)),
        0,
    )
    cell = np.repeat(np.arange(n * MAX_WEEKS), sessions.ravel())
    user, user_week = cell // MAX_WEEKS, cell % MAX_WEEKS
    days_in_week = np.minimum(7, days_after_signup_day[user] - 7 * user_week + 1)
    day = signup_day[user] + 7 * user_week + (rng.random(len(cell)) * days_in_week).astype(np.int64)
    at = day * DAY_US + _business_time_of_day(rng, len(cell))
    too_early = np.flatnonzero(at < signup[user])  # same day as signup, but before it
    rest_of_day = (signup_day[user[too_early]] + 1) * DAY_US - signup[user[too_early]]
    at[too_early] = signup[user[too_early]] + (rng.random(len(too_early)) * rest_of_day).astype(
        np.int64
    )

    user = np.concatenate([np.arange(n), user])
    at = np.concatenate([signup + rng.integers(SECOND_US, MINUTE_US, n), at])
    platform = population.platform[users][user]
    elsewhere = rng.random(len(user)) >= SESSION_ON_PRIMARY_PLATFORM
    platform[elsewhere] = rng.choice(len(PLATFORMS), size=elsewhere.sum(), p=PLATFORM_SHARE)
    return user, at, platform


def _add_invoices(
    rng: np.random.Generator, population: _Population, users: slice, buffer: _EventBuffer
) -> None:
    """Monthly invoice_paid events of paid accounts, on their owner, priced by seats."""
    local_owner = np.flatnonzero(population.is_owner[users] & (population.plan[users] > 0))
    account = population.user_account[users][local_owner]
    cycles = np.arange((DATA_END - SIGNUP_START) // (BILLING_PERIOD_DAYS * DAY_US) + 1)
    due = (
        population.account_created[account][:, None]
        + cycles[None, :] * BILLING_PERIOD_DAYS * DAY_US
        + rng.integers(HOUR_US, 3 * HOUR_US, (len(account), len(cycles)))
    )
    owner_index, cycle = np.nonzero(due < DATA_END)
    account, paid_at = account[owner_index], due[owner_index, cycle]
    plan = population.account_plan[account]
    amount = (
        population.seats(account, paid_at)
        * np.take(PRICE_PER_SEAT, plan)
        * (1 - population.account_discount[account])
    )
    buffer.add(local_owner[owner_index], INVOICE, paid_at, WEB, np.round(amount, 2))


def _run_experiment(
    seed: int,
    chunk: int,
    split: tuple[float, float],
    population: _Population,
    users: slice,
    buffer: _EventBuffer,
    tally: _Tally,
) -> pa.Table:
    """Assign users active in the exposure window, plant the treatment effects, tally the truth.

    Both potential outcomes are drawn for every assigned user (from streams that do not depend
    on the split), so the truth is the effect over everyone assigned and a dataset generated with
    everyone in one arm shows exactly that arm's outcomes.
    """
    user, code, at, platform, revenue = buffer.columns()
    n = users.stop - users.start
    in_window = (code != INVOICE) & (at >= EXPERIMENT_START) & (at < EXPERIMENT_END)
    exposure = np.full(n, NEVER)
    np.minimum.at(exposure, user[in_window], at[in_window])
    assigned = exposure != NEVER
    exposed_at = np.where(assigned, exposure, 0)[user]
    after = assigned[user] & (at >= exposed_at) & (at < exposed_at + METRIC_WINDOW_US)
    before = assigned[user] & (at >= exposed_at - METRIC_WINDOW_US) & (at < exposed_at)
    report_code = EVENTS.index("report_created")
    converted = np.bincount(user[after & (code == report_code)], minlength=n) > 0
    post_sessions = np.flatnonzero(after & (code == SESSION))
    sessions = np.bincount(user[post_sessions], minlength=n)
    pre_sessions = np.bincount(user[before & (code == SESSION)], minlength=n)
    revenue_after = np.bincount(
        user[after & (code == INVOICE)], weights=revenue[after & (code == INVOICE)], minlength=n
    )

    treated = assigned & (_stream(seed, EVENTS_STREAM, chunk, ASSIGNMENT).random(n) < split[1])
    rng = _stream(seed, EVENTS_STREAM, chunk, TREATMENT)
    boosted = assigned & ~converted & (rng.random(n) < REPORT_CONVERSION_BOOST)
    extra_sessions = rng.binomial(sessions, SESSION_LIFT)

    # Extra sessions land a little after one of the user's post-exposure sessions.
    post_sessions = post_sessions[np.argsort(user[post_sessions], kind="stable")]
    first_session = np.concatenate([[0], np.cumsum(sessions)[:-1]])
    extra_user = np.repeat(np.arange(n), extra_sessions)
    pick = post_sessions[
        first_session[extra_user]
        + (rng.random(len(extra_user)) * sessions[extra_user]).astype(np.int64)
    ]
    window_end = exposure[extra_user] + METRIC_WINDOW_US - 1
    extra_at = np.minimum(
        at[pick] + rng.integers(30 * MINUTE_US, 3 * HOUR_US, len(pick)), window_end
    )
    view_at = np.minimum(
        extra_at + rng.integers(10 * SECOND_US, 2 * MINUTE_US, len(pick)), window_end
    )
    report_user = np.flatnonzero(boosted)
    report_at = exposure[report_user] + rng.integers(MINUTE_US, 20 * MINUTE_US, len(report_user))
    for chosen, event_code, event_at, event_platform in (
        (extra_user, SESSION, extra_at, platform[pick]),
        (extra_user, PAGE_VIEW, view_at, platform[pick]),
        (report_user, report_code, report_at, WEB),
    ):
        keep = treated[chosen]
        buffer.add(
            chosen[keep],
            event_code,
            event_at[keep],
            event_platform if np.isscalar(event_platform) else event_platform[keep],
        )

    tally.add_experiment(
        assigned,
        treated,
        {
            "converted_0": converted,
            "converted_1": converted | boosted,
            "sessions_0": sessions,
            "sessions_1": sessions + extra_sessions,
            "revenue_0": revenue_after,
            "revenue_1": revenue_after,  # the guardrail: no effect
            "pre_sessions": pre_sessions,
        },
    )
    local = np.flatnonzero(assigned)
    return pa.table(
        [
            population.user_ids.slice(users.start, n).take(pa.array(local)),
            pa.array([EXPERIMENT_ID] * len(local), pa.string()),
            _labels(VARIANTS, treated[local].astype(np.int8)),
            pa.array(exposure[local], TIMESTAMP),
            _labels(PLANS, population.plan[users][local]),
        ],
        schema=SCHEMAS["assignments"],
    )


class _Tally:
    """Realised truth accumulated over chunks: adoption, retention, experiment outcomes."""

    def __init__(self) -> None:
        self.events = 0
        self.early_events = 0
        self.adoption_users = np.zeros(len(PLANS), dtype=np.int64)
        self.adopters = np.zeros((len(FEATURES), len(PLANS)), dtype=np.int64)
        weeks = RETENTION_REPORTED_WEEKS + 1
        self.retention_users = np.zeros((len(PLANS), weeks), dtype=np.int64)
        self.retained = np.zeros((len(PLANS), weeks), dtype=np.int64)
        self.assigned = np.zeros(len(VARIANTS), dtype=np.int64)
        self.sums: dict[str, float] = {}

    def add_adoption(
        self,
        plan: np.ndarray,
        signup: np.ndarray,
        user: np.ndarray,
        code: np.ndarray,
        at: np.ndarray,
    ) -> None:
        """Count users with a full adoption window and those who used each feature in it."""
        observable = signup + ADOPTION_WINDOW_DAYS * DAY_US <= DATA_END
        self.adoption_users += np.bincount(plan[observable], minlength=len(PLANS))
        for index in range(len(FEATURES)):
            uses = code == FIRST_FEATURE_CODE + index
            first_use = np.full(len(signup), NEVER)
            np.minimum.at(first_use, user[uses], at[uses])
            adopted = observable & (first_use - signup <= ADOPTION_WINDOW_DAYS * DAY_US)
            self.adopters[index] += np.bincount(plan[adopted], minlength=len(PLANS))

    def add_retention(
        self,
        plan: np.ndarray,
        signup: np.ndarray,
        user: np.ndarray,
        code: np.ndarray,
        at: np.ndarray,
    ) -> None:
        """Count users active (any non-billing event) in each full week after their signup day."""
        weeks = RETENTION_REPORTED_WEEKS + 1
        week = (at // DAY_US - signup[user] // DAY_US) // 7
        counted = (code != INVOICE) & (week >= 0) & (week < weeks)
        active = np.zeros((len(signup), weeks), dtype=bool)
        active[user[counted], week[counted]] = True
        full_week = 7 * np.arange(weeks)[None, :] + 6 <= (LAST_DAY - signup // DAY_US)[:, None]
        for p in range(len(PLANS)):
            mine = plan == p
            self.retention_users[p] += full_week[mine].sum(axis=0)
            self.retained[p] += (full_week & active)[mine].sum(axis=0)

    def add_experiment(
        self, assigned: np.ndarray, treated: np.ndarray, outcomes: dict[str, np.ndarray]
    ) -> None:
        """Add up both potential outcomes (_0, _1) and the covariate over assigned users."""
        self.assigned += [int((assigned & ~treated).sum()), int(treated.sum())]
        values = {name: o[assigned].astype(np.float64) for name, o in outcomes.items()}
        values["pre_sessions_sq"] = values["pre_sessions"] ** 2
        values["sessions_0_sq"] = values["sessions_0"] ** 2
        values["pre_x_sessions_0"] = values["pre_sessions"] * values["sessions_0"]
        for name, value in values.items():
            self.sums[name] = self.sums.get(name, 0.0) + float(value.sum())

    def adoption_truth(self) -> dict:
        """truth.json["adoption"]: planted rates, time to first use, realised rates."""
        return {
            "window_days": ADOPTION_WINDOW_DAYS,
            "definition": (
                "a user adopts a feature if their first event of it is at most window_days "
                "after signup_at; only users with signup_at + window_days <= data end count"
            ),
            "features": {
                feature.name: {
                    "event": feature.event,
                    "description": feature.description,
                    "rate_by_plan": dict(zip(PLANS, feature.rate_by_plan, strict=True)),
                    "median_days": feature.median_days,
                    "time_to_first_use": "exponential among eventual adopters",
                    "eventual_rate_by_plan": {
                        plan: round(rate, 6)
                        for plan, rate in zip(PLANS, feature.eventual_rate_by_plan, strict=True)
                    },
                    "repeat_use_per_session": feature.repeat_per_session,
                    "realised_by_plan": {
                        plan: {
                            "users": int(self.adoption_users[p]),
                            "adopters": int(self.adopters[index, p]),
                            "rate": _ratio(self.adopters[index, p], self.adoption_users[p]),
                        }
                        for p, plan in enumerate(PLANS)
                    },
                }
                for index, feature in enumerate(FEATURES)
            },
            "note": (
                "rate_by_plan is the population parameter. Treatment users of the experiment who "
                "sign up during its exposure window also get its report_created boost, which "
                "moves the realised reports rate by well under a point."
            ),
        }

    def retention_truth(self) -> dict:
        """truth.json["retention"]: the planted mechanism and the realised weekly retention."""
        weeks = range(RETENTION_REPORTED_WEEKS + 1)
        all_users = self.retention_users.sum(axis=0)
        all_retained = self.retained.sum(axis=0)
        return {
            "definition": (
                "week N = calendar days 7N..7N+6 after the UTC day of signup_at; a user is "
                "retained in week N with any event other than invoice_paid in it; only users "
                "whose week N ended before the data end count"
            ),
            "weeks": list(weeks),
            "mechanism": {
                "stay_share_by_plan": dict(zip(PLANS, STAY_SHARE, strict=True)),
                "churn_mean_weeks": CHURN_MEAN_WEEKS,
                "weekly_session_chance_while_retained": REGULARITY_MEAN,
                "weekly_session_chance_after_churn": RESURRECTION_PER_WEEK,
                "note": "users either stay or churn after an exponential number of weeks; a "
                "first use of a feature also brings a session, so realised retention "
                "is the reference for analyses",
            },
            "realised": {
                "all": [_ratio(all_retained[w], all_users[w]) for w in weeks],
                **{
                    plan: [_ratio(self.retained[p, w], self.retention_users[p, w]) for w in weeks]
                    for p, plan in enumerate(PLANS)
                },
            },
            "realised_users": [int(u) for u in all_users],
        }

    def experiment_truth(self, split: tuple[float, float]) -> dict:
        """truth.json["experiment"]: design, assignment counts and true metric effects."""
        n = int(self.assigned.sum())
        sums = self.sums

        def effect(outcome: str) -> dict:
            control = _ratio(sums.get(f"{outcome}_0", 0.0), n)
            treatment = _ratio(sums.get(f"{outcome}_1", 0.0), n)
            absolute = None if control is None else treatment - control
            relative = None if not control else absolute / control
            return {
                "control_value": control,
                "treatment_value": treatment,
                "effect_abs": absolute,
                "effect_rel": relative,
            }

        return {
            "id": EXPERIMENT_ID,
            "control": VARIANTS[0],
            "variants": list(VARIANTS),
            "planned_split": dict(zip(VARIANTS, PLANNED_SPLIT, strict=True)),
            "assignment_probability": dict(zip(VARIANTS, split, strict=True)),
            "sample_ratio_mismatch_planted": not all(
                math.isclose(a, b) for a, b in zip(split, PLANNED_SPLIT, strict=True)
            ),
            "exposure_window": {"start": "2026-07-06", "end": "2026-08-02", "inclusive": True},
            "assignment_rule": (
                "users (new and existing) with any event other than invoice_paid in the exposure "
                "window; assigned_at = their first such event"
            ),
            "assigned_users": {
                "total": n,
                **dict(zip(VARIANTS, (int(a) for a in self.assigned), strict=True)),
            },
            "truth_kind": (
                "control_value and treatment_value are the means of each potential outcome over "
                "all assigned users (both are generated for everyone), so effect_abs is the "
                "sample average treatment effect; population_effect gives the design parameter"
            ),
            "metrics": {
                "report_conversion": {
                    "role": "primary",
                    "type": "proportion",
                    "event": "report_created",
                    "window_days": METRIC_WINDOW_DAYS,
                    "definition": "at least one report_created in [assigned_at, assigned_at + "
                    "14 days)",
                    **effect("converted"),
                    "population_effect": {
                        "mechanism": f"a treatment user who would not convert converts with "
                        f"probability {REPORT_CONVERSION_BOOST}",
                        "effect_abs": "conversion_boost * (1 - control_value)",
                        "conversion_boost": REPORT_CONVERSION_BOOST,
                    },
                },
                "sessions": {
                    "role": "secondary",
                    "type": "mean",
                    "event": "session_start",
                    "window_days": METRIC_WINDOW_DAYS,
                    "definition": "count of session_start in [assigned_at, assigned_at + 14 days)",
                    **effect("sessions"),
                    "population_effect": {"effect_rel": SESSION_LIFT},
                },
                "revenue": {
                    "role": "guardrail",
                    "type": "mean",
                    "event": "invoice_paid",
                    "value_column": "revenue",
                    "window_days": METRIC_WINDOW_DAYS,
                    "definition": "sum of revenue of invoice_paid in [assigned_at, assigned_at + "
                    "14 days), 0 without any",
                    **effect("revenue"),
                    "population_effect": {"effect_abs": 0.0, "effect_rel": 0.0},
                },
            },
            "covariate": {
                "metric": "sessions",
                "event": "session_start",
                "window_days": METRIC_WINDOW_DAYS,
                "definition": "count of session_start in [assigned_at - 14 days, assigned_at)",
                "correlation_with_sessions": _correlation(sums, n),
            },
        }


def _ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator, or None when nothing was counted."""
    return float(numerator) / float(denominator) if denominator else None


def _correlation(sums: dict[str, float], n: int) -> float | None:
    """Pearson correlation of pre-exposure and post-exposure sessions under control."""
    if n < 2:
        return None
    mean_x, mean_y = sums["pre_sessions"] / n, sums["sessions_0"] / n
    var_x = sums["pre_sessions_sq"] / n - mean_x**2
    var_y = sums["sessions_0_sq"] / n - mean_y**2
    if var_x <= 0 or var_y <= 0:
        return None
    return (sums["pre_x_sessions_0"] / n - mean_x * mean_y) / math.sqrt(var_x * var_y)


# --- Feedback -------------------------------------------------------------------------------------

SOURCES = ("nps", "support", "feature_request")
SOURCE_SHARE = (0.45, 0.35, 0.20)
NPS, FEATURE_REQUEST = SOURCES.index("nps"), SOURCES.index("feature_request")
EMERGING_THEME = "data_sync"
EMERGING_START = _instant("2026-08-03")
EMERGING_SHARE_BY_SOURCE = (0.20, 0.40, 0.10)  # share of items on or after EMERGING_START
SECOND_THEME_SHARE = 0.12
LANGUAGES = ("es", "de", "fr")
NEUTRAL_NPS = (1, 1, 2, 3, 5, 7, 9, 10, 8, 4, 2)


@dataclass(frozen=True)
class Theme:
    """A feedback theme: its codebook entry and how its items are written and scored."""

    name: str
    label: str
    description: str
    examples: tuple[str, ...]
    templates: tuple[str, ...]
    slots: dict[str, tuple[str, ...]]
    source_weights: tuple[float, float, float]  # relative frequency within nps/support/requests
    nps_weights: tuple[float, ...]  # relative frequency of scores 0..10
    translations: dict[str, str]


SHARED_SLOTS = {
    "timeframe": (
        "the last release",
        "last month",
        "the redesign",
        "a few weeks ago",
        "the update",
    ),
    "competitor": ("Looker", "Metabase", "a cheaper competitor", "Google Sheets", "other tools"),
}

THEMES = (
    Theme(
        "pricing",
        "Pricing too expensive",
        "The price, per-seat fees or renewal increases feel too high for the value received.",
        (
            "too expensive",
            "price went up at renewal",
            "per-seat pricing is steep",
            "can't justify the cost",
            "cheaper alternative",
            "need a discount",
        ),
        (
            "{price} is {expensive} for a team our size.",
            "We like the product but {price} {went_up} and I can't justify it to finance.",
            "Honestly {price} feels {expensive} compared to {competitor}.",
            "{plan_name} costs {too_much} for what we actually use.",
            "Please offer {cheaper_option}, {price} is {expensive}.",
            "Our renewal came in {increase} higher than last year, {unacceptable}.",
            "We're looking at {competitor} mostly because of {price}.",
        ),
        {
            "price": (
                "the price",
                "the pricing",
                "the per-seat price",
                "the subscription cost",
                "the monthly bill",
                "your pricing",
            ),
            "expensive": (
                "too expensive",
                "way too high",
                "hard to justify",
                "steep",
                "more than we can afford",
                "overpriced",
            ),
            "too_much": ("way too much", "too much", "a lot", "more than it's worth"),
            "went_up": (
                "went up again",
                "keeps going up",
                "doubled at renewal",
                "jumped this year",
            ),
            "plan_name": ("The Pro plan", "Enterprise", "Every extra seat", "The analytics add-on"),
            "cheaper_option": (
                "a cheaper tier",
                "a startup discount",
                "usage-based pricing",
                "a nonprofit discount",
                "monthly billing without a seat minimum",
            ),
            "increase": ("30%", "almost double", "40 percent", "way"),
            "unacceptable": (
                "that's not ok",
                "that's hard to swallow",
                "which is a lot for us",
                "that's unacceptable",
            ),
        },
        (18, 5, 3),
        (2, 2, 4, 6, 8, 9, 9, 7, 4, 2, 1),
        {
            "es": "El precio es demasiado caro para un equipo pequeño como el nuestro.",
            "de": "Der Preis ist für unser kleines Team viel zu hoch.",
            "fr": "Le prix est beaucoup trop élevé pour une petite équipe comme la nôtre.",
        },
    ),
    Theme(
        "performance",
        "Slow dashboards / performance",
        "Dashboards, reports or the app load slowly, time out or freeze.",
        (
            "dashboards are slow",
            "takes forever to load",
            "keeps timing out",
            "laggy app",
            "performance got worse",
            "loading spinner never ends",
        ),
        (
            "Dashboards {slow} {when}.",
            "{page} takes {duration} to load, {impact}.",
            "The app is {slow_adj} {when}, {impact}.",
            "{page} keeps {timing_out} when we {action}.",
            "Performance has {degraded} since {timeframe}.",
            "Loading {page_lower} is painfully slow {when}.",
        ),
        {
            "slow": ("are really slow", "load so slowly", "take forever", "are sluggish", "crawl"),
            "when": (
                "in the morning",
                "with more than a few charts",
                "on big accounts",
                "every Monday",
                "lately",
                "once filters are applied",
            ),
            "page": (
                "The main dashboard",
                "The reports page",
                "Every dashboard",
                "The home screen",
                "The chart editor",
            ),
            "page_lower": ("dashboards", "the reports page", "big charts", "the home screen"),
            "duration": ("30+ seconds", "almost a minute", "forever", "ages", "over 20 seconds"),
            "impact": (
                "which kills our weekly review",
                "so people just give up",
                "it's really frustrating",
                "we lose a lot of time",
            ),
            "slow_adj": ("very slow", "laggy", "super sluggish", "unusably slow"),
            "timing_out": ("timing out", "spinning", "freezing", "hanging"),
            "action": ("open it", "change the date range", "add a filter", "share it"),
            "degraded": ("gotten worse", "degraded a lot", "dropped noticeably"),
        },
        (14, 20, 7),
        (4, 4, 6, 8, 8, 8, 6, 4, 2, 1, 1),
        {
            "es": "Los paneles tardan muchísimo en cargar.",
            "de": "Die Dashboards laden extrem langsam.",
            "fr": "Les tableaux de bord sont très lents à charger.",
        },
    ),
    Theme(
        "export",
        "CSV/Excel export",
        "Requests for, or problems with, exporting data to CSV or Excel.",
        (
            "export to CSV",
            "Excel export",
            "download as xlsx",
            "export cuts off rows",
            "export drops columns",
            "scheduled export",
        ),
        (
            "Please let us {export_verb} {what} to {file_format}.",
            "The {file_format} export {export_problem}.",
            "We need {file_format} export for {purpose}.",
            "Exporting {what} to {file_format} {export_problem}.",
            "Can you add an {file_format} export with {detail}?",
        ),
        {
            "export_verb": ("export", "download", "pull"),
            "what": (
                "reports",
                "the raw data",
                "dashboard tables",
                "chart data",
                "filtered results",
            ),
            "file_format": ("CSV", "Excel", "xlsx", "csv", "Excel/CSV"),
            "export_problem": (
                "drops columns",
                "breaks the date format",
                "cuts off at 10k rows",
                "garbles accented names",
                "is missing headers",
                "only exports the first page",
            ),
            "purpose": (
                "our finance team",
                "board reporting",
                "monthly reconciliation",
                "sharing with clients",
            ),
            "detail": (
                "all columns",
                "the applied filters",
                "proper number formatting",
                "scheduled delivery",
            ),
        },
        (6, 15, 30),
        NEUTRAL_NPS,
        {
            "es": "Necesitamos exportar los informes a Excel y CSV.",
            "de": "Der CSV-Export schneidet Spalten ab.",
            "fr": "L'export CSV perd des colonnes.",
        },
    ),
    Theme(
        "sso_login",
        "SSO / login problems",
        "Single sign-on, two-factor, password reset or session problems that block access.",
        (
            "SSO login fails",
            "can't log in",
            "Okta / SAML error",
            "logged out constantly",
            "2FA code problems",
            "password reset email never arrives",
        ),
        (
            "{sso} login {login_problem}.",
            "We can't {login_verb} since {timeframe}, {sso} {login_problem}.",
            "Users keep {logged_out} {frequency}.",
            "{mfa} {login_problem} for half of our team.",
            "Please support {sso_provider} SSO, {sso_reason}.",
            "Password reset emails {never_arrive}.",
        ),
        {
            "sso": ("SSO", "Okta", "Azure AD", "Google SSO", "SAML"),
            "sso_provider": ("Okta", "Azure AD", "OneLogin", "Google Workspace"),
            "login_problem": (
                "keeps failing",
                "is broken",
                "throws an error",
                "redirects in a loop",
                "stopped working",
            ),
            "login_verb": ("log in", "sign in", "get into our workspace"),
            "logged_out": ("getting logged out", "being kicked out", "losing their session"),
            "frequency": ("every hour", "several times a day", "randomly", "after every deploy"),
            "mfa": ("Two-factor", "The 2FA code", "MFA", "The magic link"),
            "sso_reason": (
                "security won't approve us otherwise",
                "it's required by IT",
                "we can't roll out to the whole company without it",
            ),
            "never_arrive": ("never arrive", "take an hour to arrive", "land in spam"),
        },
        (5, 22, 10),
        (2, 2, 3, 5, 7, 8, 8, 6, 4, 2, 1),
        {
            "es": "No podemos iniciar sesión con SSO desde ayer.",
            "de": "Die Anmeldung über SSO funktioniert nicht mehr.",
            "fr": "Impossible de se connecter avec le SSO depuis hier.",
        },
    ),
    Theme(
        "integrations",
        "Slack/Jira integrations",
        "Requests for, or problems with, the Slack, Jira and similar tool integrations.",
        (
            "Slack integration",
            "Jira tickets",
            "notifications in Slack",
            "integration disconnects",
            "Teams integration",
            "create a Jira issue from a chart",
        ),
        (
            "The {tool} integration {integration_problem}.",
            "Please add {integration_kind} with {tool}.",
            "{tool} notifications {notification_problem}.",
            "We rely on {tool} and the connection {integration_problem}.",
            "Would love an integration with {tool} so {integration_benefit}.",
        ),
        {
            "tool": ("Slack", "Jira", "Slack", "Jira Cloud", "Microsoft Teams", "Asana"),
            "integration_problem": (
                "stopped posting",
                "keeps disconnecting",
                "posts duplicates",
                "needs reauthorizing every week",
                "is missing fields",
            ),
            "integration_kind": (
                "a two-way integration",
                "a native integration",
                "ticket creation",
                "better notifications",
            ),
            "notification_problem": (
                "arrive late",
                "go to the wrong channel",
                "are too noisy",
                "don't include a link",
            ),
            "integration_benefit": (
                "alerts land where the team works",
                "we can create tickets from a chart",
                "PMs don't have to copy-paste",
            ),
        },
        (7, 12, 28),
        NEUTRAL_NPS,
        {
            "es": "La integración con Slack dejó de funcionar.",
            "de": "Die Jira-Integration trennt sich ständig.",
            "fr": "L'intégration Slack ne publie plus rien.",
        },
    ),
    Theme(
        "mobile_app",
        "Mobile app",
        "The iOS or Android app crashes, lacks features or is hard to use on a phone.",
        (
            "mobile app crashes",
            "iOS / Android app",
            "app on my phone",
            "missing features on mobile",
            "push notifications",
            "charts unreadable on mobile",
        ),
        (
            "The {mobile} app {mobile_problem}.",
            "Please {mobile_request} in the mobile app.",
            "On my {device} the app {mobile_problem}.",
            "On mobile, {mobile_view} is {mobile_adj}.",
            "I check numbers on my phone a lot and the app {mobile_problem}.",
        ),
        {
            "mobile": ("iOS", "Android", "mobile", "iPhone", "iPad"),
            "device": ("iPhone", "Pixel", "Samsung", "iPad", "phone"),
            "mobile_problem": (
                "crashes on launch",
                "is missing half the features",
                "drains the battery",
                "won't load charts",
                "is hard to use",
            ),
            "mobile_request": (
                "add dark mode",
                "support push alerts",
                "let us edit dashboards",
                "allow offline viewing",
            ),
            "mobile_view": ("the chart view", "the layout", "navigation", "the dashboard view"),
            "mobile_adj": ("unreadable", "cramped", "clunky", "tiny and hard to tap"),
        },
        (8, 10, 17),
        NEUTRAL_NPS,
        {
            "es": "La aplicación móvil se cierra al abrirla.",
            "de": "Die App auf dem iPhone stürzt ständig ab.",
            "fr": "L'application mobile plante au démarrage.",
        },
    ),
    Theme(
        "praise",
        "Great support / praise",
        "Thanks and praise for the product or for the support team.",
        (
            "great support",
            "love the product",
            "super helpful team",
            "fixed our issue quickly",
            "saves me hours",
            "keep it up",
        ),
        (
            "{person} {helped}, {outcome}!",
            "Love the product, {reason}.",
            "{great} support team, {outcome}.",
            "Great tool, {reason}. Keep it up!",
            "Thanks to {helper} for {helping}.",
            "Best {tool_kind} we've used, {reason}.",
        ),
        {
            "person": (
                "Maria from support",
                "The support team",
                "Your support rep",
                "Dan in support",
                "The customer success team",
                "Priya from CS",
            ),
            "helper": ("Maria", "the support team", "Dan", "Priya", "your CS team"),
            "helped": (
                "fixed our issue in minutes",
                "went above and beyond",
                "answered within the hour",
                "walked us through everything",
            ),
            "helping": (
                "the quick help",
                "going above and beyond",
                "the patient walkthrough",
                "sorting out our setup",
            ),
            "outcome": (
                "amazing service",
                "super helpful",
                "really impressed",
                "you guys rock",
                "thank you so much",
            ),
            "great": ("Great", "Fantastic", "Excellent", "Amazing", "Really responsive"),
            "reason": (
                "it saves me hours every week",
                "the team loves it",
                "reports are so easy now",
                "it just works",
                "everyone on the team uses it daily",
            ),
            "tool_kind": ("analytics tool", "reporting tool", "BI tool", "product"),
        },
        (30, 6, 0),
        (0, 0, 0, 0, 0, 0.5, 1, 3, 10, 20, 25),
        {
            "es": "¡El equipo de soporte es excelente, muchas gracias!",
            "de": "Super Support, vielen Dank für die schnelle Hilfe!",
            "fr": "Support génial, merci beaucoup pour votre aide !",
        },
    ),
    Theme(
        "onboarding",
        "Onboarding confusing",
        "Getting started, setup or first steps are confusing or poorly documented.",
        (
            "onboarding is confusing",
            "didn't know where to start",
            "setup is overwhelming",
            "hard to get started",
            "need a guided tour",
            "docs don't match the UI",
        ),
        (
            "Onboarding was {confusing}, {detail}.",
            "It took us {took} to figure out how to {first_task}.",
            "{newcomers} {struggle} to {first_task}.",
            "The {setup} is {confusing} and {docs_problem}.",
            "Wish there had been {help} when we started.",
        ),
        {
            "confusing": (
                "confusing",
                "overwhelming",
                "not intuitive",
                "hard to follow",
                "really unclear",
            ),
            "detail": (
                "I didn't know where to start",
                "too many steps",
                "the docs don't match the UI",
                "we got lost after the first screen",
            ),
            "took": ("a week", "days", "way too long", "two hours"),
            "first_task": (
                "set up our first dashboard",
                "invite the team",
                "connect our data",
                "build a report",
                "get started",
            ),
            "newcomers": (
                "New team members",
                "Our new hires",
                "People on my team",
                "First-time users",
            ),
            "struggle": ("struggle", "can't figure out how", "get stuck trying", "need help"),
            "setup": ("setup wizard", "getting started guide", "initial setup", "first-run tour"),
            "docs_problem": (
                "the help docs are out of date",
                "it skips important steps",
                "nothing explains the basics",
            ),
            "help": (
                "a checklist",
                "a guided tour",
                "a sample dashboard",
                "a short video",
                "templates",
            ),
        },
        (12, 10, 5),
        NEUTRAL_NPS,
        {
            "es": "La configuración inicial es muy confusa.",
            "de": "Das Onboarding ist sehr verwirrend.",
            "fr": "La prise en main est vraiment déroutante.",
        },
    ),
    Theme(
        EMERGING_THEME,
        "Data sync failures",
        "Data syncs from connected sources fail or stall, so numbers are stale or missing.",
        (
            "data sync failed",
            "sync keeps failing",
            "data not refreshed",
            "stale numbers",
            "connector error",
            "nightly sync broken",
        ),
        (
            "Data sync {sync_fail} {sync_when}.",
            "Our {source} sync {sync_fail} and {sync_impact}.",
            "Numbers are {stale} because the {source} sync {sync_fail}.",
            "Getting '{sync_error}' on every sync since {recently}.",
            "The nightly sync {sync_fail}, {sync_impact}.",
            "{source} data hasn't refreshed {refresh_since}.",
        ),
        {
            "sync_fail": (
                "keeps failing",
                "failed again",
                "is broken",
                "silently fails",
                "stops halfway",
                "errors out",
            ),
            "sync_when": (
                "since last week",
                "every night",
                "for a few days now",
                "after the update",
            ),
            "source": ("Salesforce", "HubSpot", "Postgres", "Snowflake", "BigQuery", "Stripe"),
            "sync_impact": (
                "dashboards show yesterday's data",
                "our reports are wrong",
                "we had to pull numbers by hand",
                "leadership noticed the gaps",
            ),
            "stale": ("stale", "out of date", "days old", "missing"),
            "sync_error": (
                "sync failed: timeout",
                "connector error 502",
                "job aborted",
                "partial sync",
            ),
            "recently": ("Monday", "the last update", "early August", "last week"),
            "refresh_since": ("since Tuesday", "in three days", "all week", "since the update"),
        },
        (0, 0, 0),
        (8, 8, 8, 8, 6, 4, 3, 2, 1, 0.5, 0.5),
        {
            "es": "La sincronización de datos falla todas las noches.",
            "de": "Die Datensynchronisierung schlägt jede Nacht fehl.",
            "fr": "La synchronisation des données échoue chaque nuit.",
        },
    ),
)
THEME_NAMES = tuple(theme.name for theme in THEMES)
EMERGING_INDEX = THEME_NAMES.index(EMERGING_THEME)
TEMPLATE_FIELDS = {
    template: tuple(name for _, name, _, _ in string.Formatter().parse(template) if name)
    for theme in THEMES
    for template in theme.templates
}

OPENERS = ("Hi,", "Hey team,", "Hello!", "Quick feedback:", "Honestly,", "FYI", "To be honest,")
REQUEST_PREFIXES = ("Feature request:", "Request:", "Idea:", "Would be great to see this:")
CLOSERS = (
    "Thanks!",
    "Thanks.",
    "Please fix.",
    "Otherwise great.",
    "Cheers",
    "thx",
    "Appreciate it.",
    "Hope this helps.",
)
LONG_FILLERS = (
    "We have been customers since 2024 and use the product across three teams.",
    "I manage the analytics for our sales org, around forty people.",
    "Most of our usage is weekly business reviews and monthly board decks.",
    "I've raised this a couple of times through different channels.",
    "Our IT team also asked me to pass this on.",
    "I tried the suggestions in the help center first.",
    "This matters because we present these numbers to leadership every Monday.",
    "Happy to jump on a call if that helps.",
    "Some context: we're a mid-sized company with offices in two time zones.",
    "To be fair, most other things work well for us.",
)
EMPTY_TEXTS = ("", " ", "   ", "\n", "\t", " \n ")
NOISE_TEXTS = ("asdf", "test", "n/a", "-", "ok", "?", "...", "no comment", "idk", "lorem ipsum")
URLS = (
    "See https://app.example.com/dashboards/4821 for an example.",
    "Screenshot: https://imgur.com/a/Xk29fQe",
    "(ticket https://support.example.com/tickets/88213)",
    "Details here: http://bit.ly/3xYzAbc",
    "Loom video: https://www.loom.com/share/5f2c9e1d",
)
HANDLES = (
    "cc @maria_ops",
    "@dan.k can you take a look?",
    "/cc @it-team",
    "ping @priya_s",
    "thanks @supportbot",
)
FIRST_NAMES = ("jane", "omar", "li", "sofia", "tom", "aisha", "lukas", "emma")
LAST_NAMES = ("doe", "khan", "chen", "garcia", "miller", "okafor", "schmidt", "martin")
EMAIL_DOMAINS = ("acme-corp.com", "northwind.io", "globex.example", "initech.co")
PHONES = (
    "+1 (415) 555-0134",
    "+44 20 7946 0958",
    "+49 30 1234567",
    "(212) 555-0199",
    "+33 1 23 45 67 89",
)
PHONE_SENTENCES = ("Call me at {phone}.", "My number is {phone} if you need it.", "Phone: {phone}")
SIGNATURES = (
    "\n\n-- Sent from my iPhone",
    "\n\nSent from my iPhone",
    "\n\n--\nJane Miller | Head of Ops | Northwind",
    "\n\nGet Outlook for Android",
)
SCRIPT_HTML = '<script>alert("x")</script>'
NEAR_DUPLICATE_PREFIXES = ("Following up: ", "Again: ", "UPDATE: ", "Reposting: ")
NEAR_DUPLICATE_SUFFIXES = (" Thanks.", " Please!!", " (again)", " Any update?", "!!")

# Quirks planted on items with text: tag -> share of those items (at least one when there are
# enough items). Exact duplicates, near duplicates, empty and noise items are planted apart.
TEXT_QUIRK_SHARE = {
    "non_english": 0.006,
    "very_long": 0.003,
    "url": 0.015,
    "email": 0.007,
    "phone": 0.005,
    "handle": 0.01,
    "signature": 0.015,
    "html_script": 0.001,
    "html_bold": 0.002,
}
EMPTY_SHARE, NOISE_SHARE = 0.01, 0.005
EXACT_DUPLICATE_SHARE, NEAR_DUPLICATE_SHARE = 0.02, 0.005
MIN_ITEMS_FOR_QUIRKS = 50
VERY_LONG_CHARACTERS = 1200
MAX_REWRITES = 20  # attempts at a text its author has not sent before


def _planted_count(n: int, share: float) -> int:
    """How many of n items get a quirk: its share, at least one once there are enough items."""
    if n < MIN_ITEMS_FOR_QUIRKS:
        return 0
    return max(1, round(share * n))


def _theme_probabilities(source: int, emerging: bool, exclude: int | None = None) -> np.ndarray:
    """Chance of each theme for an item from `source`, before or after the emerging start."""
    weights = np.array([theme.source_weights[source] for theme in THEMES], dtype=np.float64)
    if exclude is not None:
        weights[exclude] = 0.0
    probabilities = weights / weights.sum()
    if emerging and exclude != EMERGING_INDEX:
        share = EMERGING_SHARE_BY_SOURCE[source]
        probabilities *= 1 - share
        probabilities[EMERGING_INDEX] = share
    return probabilities


class _TextWriter:
    """Writes feedback texts from theme templates with synonyms, noise and planted quirks."""

    def __init__(self, rnd: random.Random) -> None:
        self.rnd = rnd
        self.signatures = itertools.cycle(SIGNATURES)  # in turn: the first is the iPhone one

    def sentence(self, theme: Theme) -> str:
        """One sentence about `theme`."""
        template = self.rnd.choice(theme.templates)
        values = {
            name: self.rnd.choice(theme.slots.get(name) or SHARED_SLOTS[name])
            for name in TEMPLATE_FIELDS[template]
        }
        text = template.format(**values)
        return text[0].upper() + text[1:]

    def compose(self, themes: list[Theme], source: int, language: str, quirks: list[str]) -> str:
        """A feedback text about `themes`; appends the noise it added to `quirks`."""
        rnd = self.rnd
        if language != "en":
            text = themes[0].translations[language]
        else:
            parts = []
            if rnd.random() < 0.15:
                parts.append(rnd.choice(OPENERS))
            if source == FEATURE_REQUEST and rnd.random() < 0.35:
                parts.append(rnd.choice(REQUEST_PREFIXES))
            parts.append(self.sentence(themes[0]))
            if rnd.random() < 0.3:
                parts.append(self.sentence(themes[0]))
            parts.extend(self.sentence(theme) for theme in themes[1:])
            if "very_long" in quirks:
                while sum(len(part) + 1 for part in parts) < VERY_LONG_CHARACTERS:
                    parts.append(
                        rnd.choice(LONG_FILLERS)
                        if rnd.random() < 0.5
                        else self.sentence(rnd.choice(themes))
                    )
            if rnd.random() < 0.2:
                parts.append(rnd.choice(CLOSERS))
            text = self._roughen(" ".join(parts), quirks)
        return self._decorate(text, quirks)

    def _roughen(self, text: str, quirks: list[str]) -> str:
        """Light noise: typos, casing, missing final punctuation, doubled spaces."""
        rnd = self.rnd
        if rnd.random() < 0.08:
            words = text.split(" ")
            candidates = [i for i, word in enumerate(words) if len(word) >= 5 and word.isalpha()]
            for i in rnd.sample(candidates, min(len(candidates), rnd.randint(1, 2))):
                words[i] = self._typo(words[i])
            if candidates:
                text = " ".join(words)
                quirks.append("typo")
        casing = rnd.random()
        if casing < 0.04:
            text = text.lower()
            quirks.append("lowercase")
        elif casing < 0.055:
            text = text.upper()
            quirks.append("shouting")
        if rnd.random() < 0.1:
            text = text.rstrip(".")
        if rnd.random() < 0.03:
            text = text.replace(" ", "  ", 1)
        return text

    def _typo(self, word: str) -> str:
        """The word with two letters swapped, one dropped or one doubled."""
        i = self.rnd.randrange(1, len(word) - 1)
        kind = self.rnd.randrange(3)
        if kind == 0:
            return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        if kind == 1:
            return word[:i] + word[i + 1 :]
        return word[:i] + word[i] + word[i:]

    def _decorate(self, text: str, quirks: list[str]) -> str:
        """Add the planted quirks: HTML, URLs, handles, contact details, signature."""
        rnd = self.rnd
        if "html_bold" in quirks:
            words = text.split(" ")
            i = rnd.choice([i for i, word in enumerate(words) if word] or [0])
            words[i] = f"<b>{words[i]}</b>"
            text = " ".join(words)
        if "url" in quirks:
            text += " " + rnd.choice(URLS)
        if "handle" in quirks:
            text += " " + rnd.choice(HANDLES)
        if "email" in quirks:
            address = (
                f"{rnd.choice(FIRST_NAMES)}.{rnd.choice(LAST_NAMES)}@{rnd.choice(EMAIL_DOMAINS)}"
            )
            text += f" You can reach me at {address}."
        if "phone" in quirks:
            text += " " + rnd.choice(PHONE_SENTENCES).format(phone=rnd.choice(PHONES))
        if "html_script" in quirks:
            text += " " + SCRIPT_HTML
        if "signature" in quirks:
            text += next(self.signatures)
        return text

    def near_duplicate(self, text: str) -> str:
        """The text lightly edited, as when someone re-sends a slightly changed message."""
        if self.rnd.random() < 0.5:
            return self.rnd.choice(NEAR_DUPLICATE_PREFIXES) + text
        return text + self.rnd.choice(NEAR_DUPLICATE_SUFFIXES)


@dataclass
class _Feedback:
    """Generated feedback: the table, its truth table and the truth.json sections."""

    table: pa.Table
    truth_table: pa.Table
    truth: dict
    quirk_counts: dict


def _generate_feedback(population: _Population, n_items: int, seed: int) -> _Feedback:
    """Feedback items over the calendar, written around known themes, with planted quirks."""
    rng = _stream(seed, FEEDBACK_STREAM)
    writer = _TextWriter(random.Random(int(rng.integers(2**63))))
    n_copies = _planted_count(n_items, EXACT_DUPLICATE_SHARE)
    n_near = _planted_count(n_items, NEAR_DUPLICATE_SHARE)
    n_base = n_items - n_copies - n_near

    # Each user writes at a steady rate while a customer (regular users more), so volume grows
    # with the customer base.
    weight = population.regularity * (DATA_END - population.signup)
    user = rng.choice(len(population.signup), size=n_base, p=weight / weight.sum())
    signup = population.signup[user]
    created = signup + (rng.random(n_base) * (DATA_END - signup)).astype(np.int64)
    source = rng.choice(len(SOURCES), size=n_base, p=SOURCE_SHARE)
    late = created >= EMERGING_START
    primary = np.zeros(n_base, dtype=np.int64)
    for s in range(len(SOURCES)):
        for emerging in (False, True):
            group = np.flatnonzero((source == s) & (late == emerging))
            primary[group] = rng.choice(
                len(THEMES), size=len(group), p=_theme_probabilities(s, emerging)
            )

    shuffled = rng.permutation(n_base)
    n_empty = _planted_count(n_base, EMPTY_SHARE)
    n_noise = _planted_count(n_base, NOISE_SHARE)
    empty, noise = (
        set(shuffled[:n_empty].tolist()),
        set(shuffled[n_empty : n_empty + n_noise].tolist()),
    )
    with_text = np.sort(shuffled[n_empty + n_noise :])
    quirks: list[list[str]] = [[] for _ in range(n_base)]
    for tag, share in TEXT_QUIRK_SHARE.items():
        candidates = with_text
        if tag == "very_long":  # long texts are written in English only
            candidates = np.array([i for i in with_text.tolist() if "non_english" not in quirks[i]])
        count = min(len(candidates), _planted_count(len(with_text), share))
        for i in rng.choice(candidates, size=count, replace=False):
            quirks[i].append(tag)
    second_draw = rng.random(n_base) < SECOND_THEME_SHARE
    scores = _nps_scores(rng, primary, source, with_text)
    texts, themes, languages = _write_texts(
        writer, user, source, late, primary, second_draw, empty, noise, quirks
    )

    # Re-sent items: exact copies and lightly edited ones, by the same user a little later.
    originals = rng.choice(
        with_text, size=n_copies + n_near, replace=len(with_text) < n_copies + n_near
    )
    resent_at = np.minimum(
        created[originals] + rng.integers(30 * SECOND_US, 6 * HOUR_US, len(originals)), DATA_END - 1
    )
    copy_of: list[int | None] = [None] * n_base + originals[:n_copies].tolist() + [None] * n_near
    edit_of: list[int | None] = [None] * (n_base + n_copies) + originals[n_copies:].tolist()
    for k, original in enumerate(originals.tolist()):
        exact = k < n_copies
        texts.append(texts[original] if exact else writer.near_duplicate(texts[original]))
        themes.append(themes[original])
        languages.append(languages[original])
        quirks.append(quirks[original] + ["exact_duplicate" if exact else "near_duplicate"])
    user = np.concatenate([user, user[originals]])
    created = np.concatenate([created, resent_at])
    source = np.concatenate([source, source[originals]])
    scores = np.concatenate([scores, scores[originals]])

    order = np.lexsort((np.arange(n_items), created))
    rank = np.empty(n_items, dtype=np.int64)
    rank[order] = np.arange(n_items)
    ids = _ids("f", n_items, 6)
    id_text = ids.to_pylist()

    def id_of(item: int | None) -> str | None:
        return None if item is None else id_text[rank[item]]

    ordered = order.tolist()
    account = population.user_account[user[order]]
    table = pa.table(
        [
            ids,
            pa.array(created[order], TIMESTAMP),
            pa.array([texts[i] for i in ordered], pa.string()),
            _labels(SOURCES, source[order]),
            pa.array(scores[order], pa.int64(), mask=scores[order] < 0),
            population.user_ids.take(pa.array(user[order])),
            population.account_ids.take(pa.array(account)),
            _labels(PLANS, population.account_plan[account]),
        ],
        schema=SCHEMAS["feedback"],
    )
    # Through pandas once, so the file's pandas metadata reads the score back as nullable Int64.
    frame = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    table = pa.Table.from_pandas(frame, schema=SCHEMAS["feedback"], preserve_index=False)
    truth_table = pa.table(
        [
            ids,
            pa.array([themes[i] for i in ordered], pa.list_(pa.string())),
            pa.array([id_of(copy_of[i]) for i in ordered], pa.string()),
            pa.array([id_of(edit_of[i]) for i in ordered], pa.string()),
            pa.array([languages[i] for i in ordered], pa.string()),
            pa.array([quirks[i] for i in ordered], pa.list_(pa.string())),
        ],
        schema=SCHEMAS["feedback_truth"],
    )
    return _Feedback(
        table,
        truth_table,
        _feedback_truth(themes, created, source, scores, languages),
        {"feedback_quirks": _quirk_counts(quirks)},
    )


def _write_texts(
    writer: _TextWriter,
    user: np.ndarray,
    source: np.ndarray,
    late: np.ndarray,
    primary: np.ndarray,
    second_draw: np.ndarray,
    empty: set[int],
    noise: set[int],
    quirks: list[list[str]],
) -> tuple[list[str], list[list[str]], list[str | None]]:
    """Text, themes and language of each original item; tags go into `quirks`.

    No user sends the same text twice by chance, so the planted duplicates are the only ones.
    """
    texts: list[str] = []
    themes: list[list[str]] = []
    languages: list[str | None] = []
    sent: set[tuple[int, str]] = set()
    foreign_languages = itertools.cycle(LANGUAGES)  # in turn, so each appears
    for i, author in enumerate(user.tolist()):
        if i in empty or i in noise:
            options = EMPTY_TEXTS if i in empty else NOISE_TEXTS
            text = writer.rnd.choice([o for o in options if (author, o) not in sent] or options)
            item_themes, language = [], None
            quirks[i].append("empty" if i in empty else "noise")
        else:
            language = next(foreign_languages) if "non_english" in quirks[i] else "en"
            item_themes = [int(primary[i])]
            if second_draw[i] and language == "en":
                weights = _theme_probabilities(int(source[i]), bool(late[i]), item_themes[0])
                item_themes += writer.rnd.choices(range(len(THEMES)), weights=weights.tolist())
            planted = quirks[i]
            for _ in range(MAX_REWRITES):
                quirks[i] = list(planted)
                text = writer.compose(
                    [THEMES[t] for t in item_themes], int(source[i]), language, quirks[i]
                )
                if (author, text) not in sent:
                    break
                if language != "en":
                    language = writer.rnd.choice(LANGUAGES)
        sent.add((author, text))
        texts.append(text)
        themes.append([THEME_NAMES[t] for t in item_themes])
        languages.append(language)
    return texts, themes, languages


def _nps_scores(
    rng: np.random.Generator, primary: np.ndarray, source: np.ndarray, with_text: np.ndarray
) -> np.ndarray:
    """NPS score of nps items (depending on their main theme), -1 for other sources."""
    scores = np.full(len(primary), -1, dtype=np.int64)
    has_text = np.zeros(len(primary), dtype=bool)
    has_text[with_text] = True
    nps = source == NPS
    groups = [(nps & ~has_text, NEUTRAL_NPS)] + [
        (nps & has_text & (primary == t), theme.nps_weights) for t, theme in enumerate(THEMES)
    ]
    for members, weights in groups:
        chosen = np.flatnonzero(members)
        p = np.asarray(weights, dtype=np.float64)
        scores[chosen] = rng.choice(11, size=len(chosen), p=p / p.sum())
    return scores


def _feedback_truth(
    themes: list[list[str]],
    created: np.ndarray,
    source: np.ndarray,
    scores: np.ndarray,
    languages: list[str | None],
) -> dict:
    """truth.json["feedback"]: the codebook, the emerging theme and realised counts."""
    after = created >= EMERGING_START
    mentions = {name: [i for i, item in enumerate(themes) if name in item] for name in THEME_NAMES}
    nps_by_theme = {}
    for name in THEME_NAMES:
        rated = [
            scores[i] for i, item in enumerate(themes) if item[:1] == [name] and scores[i] >= 0
        ]
        nps_by_theme[name] = {
            "responses": len(rated),
            "mean_score": float(np.mean(rated)) if rated else None,
        }
    return {
        "sources": list(SOURCES),
        "themes": {
            theme.name: {
                "label": theme.label,
                "description": theme.description,
                "examples": list(theme.examples),
                "emerging": theme.name == EMERGING_THEME,
            }
            for theme in THEMES
        },
        "emerging_theme": {
            "name": EMERGING_THEME,
            "start": _iso(EMERGING_START),
            "share_of_items_after_start_by_source": dict(
                zip(SOURCES, EMERGING_SHARE_BY_SOURCE, strict=True)
            ),
            "items_before_start": sum(1 for i in mentions[EMERGING_THEME] if not after[i]),
            "items_after_start": sum(1 for i in mentions[EMERGING_THEME] if after[i]),
        },
        "two_theme_share": SECOND_THEME_SHARE,
        "truth_table": "feedback_truth.parquet: themes of every item (first = main theme), "
        "exact and near duplicates, language, planted quirks",
        "counts": {
            "items": len(themes),
            "items_after_emerging_start": int(after.sum()),
            "by_source": {name: int((source == s).sum()) for s, name in enumerate(SOURCES)},
            "by_theme": {name: len(items) for name, items in mentions.items()},
            "with_two_themes": sum(1 for item in themes if len(item) == 2),
            "without_theme": sum(1 for item in themes if not item),
            "by_language": {language: languages.count(language) for language in ("en", *LANGUAGES)},
        },
        "nps_by_main_theme": nps_by_theme,
    }


def _quirk_counts(quirks: list[list[str]]) -> dict[str, int]:
    """How many feedback items carry each planted quirk."""
    counts: dict[str, int] = {}
    for item in quirks:
        for tag in item:
            counts[tag] = counts.get(tag, 0) + 1
    return dict(sorted(counts.items()))
