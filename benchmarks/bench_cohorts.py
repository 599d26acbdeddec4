"""Cohort adoption at scale: engine (Ibis on DuckDB) against a plain pandas retention matrix.

    python benchmarks/bench_cohorts.py                       # 1M users / ~50M events
    python benchmarks/bench_cohorts.py --users 100000        # a smaller run
    python benchmarks/bench_cohorts.py --events-parquet E --users-parquet U

Without Parquet paths the data is generated into --out (default /tmp/bench_cohorts) with
`workbench.sample.generate_sample` (or, with --generator synthetic or when the sample generator
is unavailable, a simple numpy log), and reused on the next run with the same size. Each part
runs in its own process so its peak resident memory is its own:

- engine: weekly retention (12 periods) + adoption of 5 features + stickiness, from Parquet
  (extras, timed separately: lifecycle, segment comparison by plan, data checks)
- pandas (plain): the same weekly retention matrix the straightforward way (merge every event
  with its user's cohort, count distinct users per cell); pandas (tuned): duplicates of
  (user, week) dropped before the merge. Both are checked against the engine's numbers.

Prints a table of wall seconds, CPU seconds and peak RSS per part (with the load average when
the part started) and the speed-up. `--pandas tuned` leaves out the plain pandas version, whose
merge of every event with its cohort peaks at about 11 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FEATURES = {
    "reports": "report_created",
    "shared_dashboards": "dashboard_shared",
    "integrations": "integration_connected",
    "alerts": "alert_configured",
    "csv_export": "export_csv",
}
PERIODS = 12


def peak_mib() -> float:
    """This process's peak resident memory in MiB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """CPU seconds (user + system, every thread) this process has used so far: with wall time
    it shows how much of the machine the part got (2 cores: wall ≈ cpu / 2 when idle)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- data ----------------------------------------------------------------------------------------


def ensure_data(args: argparse.Namespace) -> tuple[Path, Path, str]:
    """Parquet paths of events and users, generating them when needed."""
    if args.events_parquet and args.users_parquet:
        return Path(args.events_parquet), Path(args.users_parquet), "given"
    out = Path(args.out) / f"{args.generator}-{args.users}"
    events, users = out / "events.parquet", out / "users.parquet"
    if events.exists() and users.exists():
        return events, users, f"{args.generator} (cached in {out})"
    started = time.perf_counter()
    if args.generator == "sample":
        try:
            from workbench.sample import generate_sample

            generate_sample(out, args.users)
        except Exception as exc:  # the sample generator is optional here
            print(f"sample generator unavailable ({exc}); using the synthetic log", flush=True)
            args.generator = "synthetic"
            return ensure_data(args)
    else:
        synthetic_log(out, args.users, seed=7)
    print(f"generated {args.generator} data in {time.perf_counter() - started:.0f} s", flush=True)
    return events, users, f"{args.generator} (generated)"


def synthetic_log(out: Path, n_users: int, *, seed: int, events_per_user: float = 50.0) -> None:
    """A simple event log: signups over 26 weeks, sessions decaying after signup, features."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    start = np.datetime64("2026-03-02T00:00:00", "us").astype("int64")
    day = 86_400_000_000
    horizon = 26 * 7 * day
    plans = np.array(["free", "pro", "enterprise"])
    signup = start + rng.integers(0, horizon, n_users)
    plan = rng.choice(3, n_users, p=[0.5, 0.35, 0.15])
    ids = np.array([f"u{i:07d}" for i in range(n_users)])
    pq.write_table(
        pa.table(
            {
                "user_id": ids,
                "signup_at": pa.array(signup, pa.timestamp("us", tz="UTC")),
                "plan": plans[plan],
            }
        ),
        out / "users.parquet",
    )
    names = np.array(["session_start", "page_view", "search", *FEATURES.values()])
    weights = np.array([0.3, 0.55, 0.08, 0.02, 0.015, 0.01, 0.01, 0.015])
    schema = pa.schema(
        [
            ("user_id", pa.string()),
            ("event", pa.string()),
            ("timestamp", pa.timestamp("us", tz="UTC")),
        ]
    )
    with pq.ParquetWriter(out / "events.parquet", schema) as writer:
        for lo in range(0, n_users, 50_000):
            hi = min(lo + 50_000, n_users)
            counts = rng.poisson(events_per_user * (0.5 + plan[lo:hi]), hi - lo)
            who = np.repeat(np.arange(lo, hi), counts)
            life = start + horizon - signup[who]
            offset = (rng.exponential(0.25, len(who)) * life).astype("int64") % np.maximum(life, 1)
            at = signup[who] + offset
            kind = rng.choice(len(names), len(who), p=weights / weights.sum())
            writer.write_table(
                pa.table(
                    {
                        "user_id": ids[who],
                        "event": names[kind],
                        "timestamp": pa.array(at, pa.timestamp("us", tz="UTC")),
                    },
                    schema=schema,
                )
            )


# --- the parts (each in its own process) ---------------------------------------------------------


def run_engine_retention(events: str, users: str, timezone: str) -> dict:
    """The weekly retention matrix alone in the engine (no features): like for like with pandas."""
    from workbench.cohorts import cohort_activity, retention_matrix
    from workbench.sources import connect_duckdb

    started, cpu_started = time.perf_counter(), cpu_seconds()
    con = connect_duckdb()
    con.raw_sql("SET enable_progress_bar = false")
    u, e = con.read_parquet(users), con.read_parquet(events)
    with cohort_activity(u, e, period="week", periods=PERIODS, timezone=timezone) as act:
        retention_matrix(act)
    return {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": cpu_seconds() - cpu_started,
        "peak_mib": peak_mib(),
    }


def run_engine(events: str, users: str, timezone: str, extras: bool) -> dict:
    """Weekly retention + adoption of 5 features + stickiness in the engine.

    Library imports (ibis, pandas, statsmodels) happen before the clock starts, as for pandas.
    """
    import statsmodels.duration.survfunc  # noqa: F401
    import statsmodels.stats.proportion  # noqa: F401

    from workbench.cohorts import (
        cohort_activity,
        cohort_checks,
        feature_adoption,
        lifecycle,
        retention_matrix,
        segment_comparison,
        stickiness,
    )
    from workbench.sources import connect_duckdb

    timings = {}
    started, cpu_started = time.perf_counter(), cpu_seconds()
    con = connect_duckdb()
    con.raw_sql("SET enable_progress_bar = false")
    u, e = con.read_parquet(users), con.read_parquet(events)
    segments = ["plan"] if "plan" in u.columns else []
    t = time.perf_counter()
    act = cohort_activity(
        u,
        e,
        period="week",
        periods=PERIODS,
        features=FEATURES,
        timezone=timezone,
        segments=segments,
    )
    timings["per-unit activity table"] = time.perf_counter() - t
    t = time.perf_counter()
    matrix = retention_matrix(act)
    timings["retention matrix"] = time.perf_counter() - t
    t = time.perf_counter()
    adoption = feature_adoption(act)
    timings["adoption (5 features, KM)"] = time.perf_counter() - t
    t = time.perf_counter()
    sticky = stickiness(act)
    timings["stickiness"] = time.perf_counter() - t
    core = time.perf_counter() - started
    core_cpu = cpu_seconds() - cpu_started
    core_peak = peak_mib()
    if extras:
        t = time.perf_counter()
        lifecycle(act)
        timings["extra: lifecycle"] = time.perf_counter() - t
        if segments:
            t = time.perf_counter()
            segment_comparison(act, at_periods=[1, 4])
            timings["extra: segments (plan)"] = time.perf_counter() - t
        t = time.perf_counter()
        cohort_checks(act)
        timings["extra: data checks"] = time.perf_counter() - t
    act.close()
    on = matrix[matrix["state"] == "complete"]
    return {
        "seconds": core,
        "cpu_seconds": core_cpu,
        "extras_seconds": sum(v for k, v in timings.items() if k.startswith("extra")),
        "peak_mib": core_peak,
        "peak_mib_with_extras": peak_mib(),
        "timings": timings,
        "cells": {
            f"{c:%Y-%m-%d}|{p}": int(r)
            for c, p, r in zip(on["cohort"], on["period"], on["retained"], strict=True)
        },
        "units": int(matrix.loc[matrix["period"] == 0, "cohort_size"].sum()),
        "adoption": adoption.summary[["feature", "rate"]].to_dict(orient="records"),
        "dau_mau_last": float(sticky.weekly["dau_mau"].dropna().iloc[-1])
        if len(sticky.weekly)
        else None,
    }


def run_pandas(events: str, users: str, timezone: str, style: str) -> dict:
    """The same weekly matrix ('on' retention, Monday weeks) in plain pandas.

    plain: what an analyst writes first — merge every event with its user's cohort, then count
    distinct users per (cohort, period). tuned: drop duplicate (user, week) pairs before the
    merge, so the merge and the count see far fewer rows.
    """
    import pandas as pd

    def week(col: pd.Series) -> pd.Series:
        local = col.dt.tz_convert(timezone).dt.tz_localize(None)
        return local.dt.to_period("W-SUN").dt.start_time

    started, cpu_started = time.perf_counter(), cpu_seconds()
    u = pd.read_parquet(users, columns=["user_id", "signup_at"])
    e = pd.read_parquet(events, columns=["user_id", "timestamp"])
    last = e["timestamp"].max().tz_convert(timezone).tz_localize(None).normalize()
    last += pd.Timedelta(days=1)
    u["cohort"] = week(u["signup_at"])
    if style == "plain":
        df = e.merge(u[["user_id", "cohort"]], on="user_id")
        del e
        df["period"] = (week(df["timestamp"]) - df["cohort"]).dt.days // 7
        df = df[(df["period"] >= 1) & (df["period"] <= PERIODS)]
        counts = df.groupby(["cohort", "period"])["user_id"].nunique()
    else:
        e["week"] = week(e["timestamp"])
        active = e[["user_id", "week"]].drop_duplicates()
        del e
        df = active.merge(u[["user_id", "cohort"]], on="user_id")
        df["period"] = (df["week"] - df["cohort"]).dt.days // 7
        df = df[(df["period"] >= 1) & (df["period"] <= PERIODS)]
        counts = df.groupby(["cohort", "period"]).size()
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
    cells = {}
    for (cohort, period), n in counts.items():
        if cohort + pd.Timedelta(weeks=int(period) + 1) <= last:  # complete cells only
            cells[f"{cohort:%Y-%m-%d}|{period}"] = int(n)
    return {"seconds": seconds, "cpu_seconds": cpu, "peak_mib": peak_mib(), "cells": cells}


def child(part: str, args: argparse.Namespace, events: Path, users: Path) -> dict:
    command = [
        sys.executable,
        __file__,
        "--part",
        part,
        "--events-parquet",
        str(events),
        "--users-parquet",
        str(users),
        "--timezone",
        args.timezone,
    ]
    if args.extras:
        command.append("--extras")
    load = os.getloadavg()[0]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    if done.returncode:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"{part} part failed")
    return json.loads(done.stdout.strip().splitlines()[-1]) | {"load": load}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--generator", choices=("sample", "synthetic"), default="sample")
    parser.add_argument("--out", default="/tmp/bench_cohorts")
    parser.add_argument("--events-parquet")
    parser.add_argument("--users-parquet")
    parser.add_argument("--timezone", default="UTC")
    parser.add_argument(
        "--extras", action="store_true", help="also time lifecycle, segments, checks"
    )
    parser.add_argument(
        "--pandas",
        default="plain,tuned",
        help="pandas versions to time: plain,tuned (plain needs about 11 GB), tuned, or none",
    )
    parser.add_argument(
        "--part", choices=("engine", "retention", "plain", "tuned"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)

    if args.part == "engine":
        print(
            json.dumps(
                run_engine(args.events_parquet, args.users_parquet, args.timezone, args.extras)
            )
        )
        return 0
    if args.part == "retention":
        print(
            json.dumps(run_engine_retention(args.events_parquet, args.users_parquet, args.timezone))
        )
        return 0
    if args.part in ("plain", "tuned"):
        result = run_pandas(args.events_parquet, args.users_parquet, args.timezone, args.part)
        print(json.dumps(result))
        return 0

    events, users, source = ensure_data(args)
    import pyarrow.parquet as pq

    n_events = pq.ParquetFile(events).metadata.num_rows
    n_users = pq.ParquetFile(users).metadata.num_rows
    load = os.getloadavg()[0]
    engine = child("engine", args, events, users)
    retention_only = child("retention", args, events, users)
    styles = [p for p in args.pandas.split(",") if p in ("plain", "tuned")]
    pandas = {p: child(p, args, events, users) for p in styles}

    print(f"data: {source}; {n_users:,} users, {n_events:,} events; timezone {args.timezone}")
    print(
        f"machine: {os.cpu_count()} cores, load average {load:.2f} at start; python "
        f"{sys.version.split()[0]}"
    )
    print()
    print("| part | load at start | wall s | CPU s | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|")
    print(
        f"| engine: weekly retention + adoption (5 features) + stickiness | {engine['load']:.2f} | "
        f"{engine['seconds']:.1f} | {engine['cpu_seconds']:.1f} | {engine['peak_mib']:,.0f} |"
    )
    for name, seconds in engine["timings"].items():
        print(f"| &nbsp;&nbsp;{name} | | {seconds:.1f} | | |")
    if args.extras:
        print(
            f"| engine extras (lifecycle, segments, checks) | | {engine['extras_seconds']:.1f} | "
            f"| {engine['peak_mib_with_extras']:,.0f} |"
        )
    print(
        f"| engine: weekly retention matrix only | {retention_only['load']:.2f} | "
        f"{retention_only['seconds']:.1f} | {retention_only['cpu_seconds']:.1f} | "
        f"{retention_only['peak_mib']:,.0f} |"
    )
    for style, result in pandas.items():
        print(
            f"| pandas ({style}): weekly retention matrix only | {result['load']:.2f} | "
            f"{result['seconds']:.1f} | {result['cpu_seconds']:.1f} | {result['peak_mib']:,.0f} |"
        )
    print()
    for style, result in pandas.items():
        common = set(engine["cells"]) & set(result["cells"])
        differ = [k for k in common if engine["cells"][k] != result["cells"][k]]
        missing = {k for k, v in result["cells"].items() if v} - set(engine["cells"])
        same = "yes" if not differ and not missing else f"NO ({len(differ)} differ)"
        print(
            f"pandas ({style}) retention ÷ engine retention: "
            f"{result['seconds'] / retention_only['seconds']:.1f}×; ÷ engine retention + "
            f"adoption + stickiness: {result['seconds'] / engine['seconds']:.1f}×; "
            f"{len(common):,} complete cells compared, identical: {same}"
        )
    print(f"units in cohorts: {engine['units']:,}; last weekly DAU/MAU: {engine['dau_mau_last']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
