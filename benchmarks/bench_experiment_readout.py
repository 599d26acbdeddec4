"""Benchmark: the experiment readout over N assigned users × 10 metrics from Parquet.

    python benchmarks/bench_experiment_readout.py                  # 10M users (data generated once)
    python benchmarks/bench_experiment_readout.py --users 1000000  # a smaller run
    python benchmarks/bench_experiment_readout.py --memory-limit 1.5GB  # cap DuckDB's memory
    python benchmarks/bench_experiment_readout.py --order time   # the event log in time order

The generator writes each block of 1M users' events one event name after another (`--order
generated`). `--order time` rewrites the same events sorted by timestamp, as an append-only
event log usually is; `--order user` sorts them by user id, as a log clustered by user is. The
rewritten copy sits beside the generated data and is reused.

Data comes from `benchmarks/experiment_bench_data.py` into --data (reused when its manifest
matches). The readout runs in a fresh process, exactly as the notebook does it (validate
parameters, open the Parquet sources with their contract checks, `experiment_readout`), and
reports wall seconds per step, CPU seconds and the process's peak resident memory (DuckDB runs
in-process, so its memory is included). Targets at 10M users: under 15 s and under 2 GB.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

METRICS = [
    {"name": "report_conversion", "type": "conversion", "events": ["report_created"]},
    {
        "name": "sessions",
        "type": "mean",
        "events": ["session_start"],
        "role": "secondary",
        "covariate_days": 14,
    },
    {
        "name": "page_views",
        "type": "mean",
        "events": ["page_view"],
        "role": "secondary",
        "covariate_days": 14,
        "winsorize": 0.99,
    },
    {
        "name": "revenue",
        "type": "mean",
        "events": ["invoice_paid"],
        "value": "revenue",
        "role": "guardrail",
        "margin": 0.05,
        "winsorize": 0.999,
    },
    {"name": "searched", "type": "conversion", "events": ["search"], "role": "secondary"},
    {"name": "exported", "type": "conversion", "events": ["export_csv"], "role": "secondary"},
    {"name": "reports", "type": "mean", "events": ["report_created"], "role": "secondary"},
    {
        "name": "views_per_session",
        "type": "ratio",
        "events": ["page_view"],
        "denominator_events": ["session_start"],
        "role": "secondary",
    },
    {
        "name": "revenue_per_session",
        "type": "ratio",
        "events": ["invoice_paid"],
        "value": "revenue",
        "denominator_events": ["session_start"],
        "role": "guardrail",
        "margin": 0.05,
    },
    {
        "name": "active_7d",
        "type": "conversion",
        "events": ["session_start", "page_view"],
        "window_days": 7,
        "role": "guardrail",
        "margin": 0.01,
    },
]


def peak_mib() -> float:
    """This process's peak resident memory in MiB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_s() -> float:
    """CPU seconds (user + system) this process has used: less sensitive to a busy machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def readout(data: Path, segments: list[str], memory_limit: str | None = None) -> dict:
    """Run the readout in this process; wall seconds per step and peak memory."""
    from workbench.experiment import experiment_readout
    from workbench.notebook import NotebookRun
    from workbench.parameters import validate_parameters

    t0 = time.perf_counter()
    raw = {
        "title": "Benchmark experiment",
        "sources": {
            "assignments": str(data / "assignments.parquet"),
            "events": str(data / "events.parquet"),
        },
        "experiment": "bench_checklist",
        "control": "control",
        "variants": {"control": 0.5, "treatment": 0.5},
        "metrics": METRICS,
        "segments": segments,
    }
    params = validate_parameters("experiment_readout", raw, root=data)
    t1 = time.perf_counter()
    run = NotebookRun({"_workbench": {"root": str(data)}})
    tables = run.load_tables(params)
    if memory_limit:
        run.con.raw_sql(f"SET memory_limit = '{memory_limit}'")
    t2 = time.perf_counter()
    result = experiment_readout(tables, params)
    t3 = time.perf_counter()
    return {
        "validate_s": round(t1 - t0, 2),
        "load_s": round(t2 - t1, 2),
        "analysis_s": round(t3 - t2, 2),
        "total_s": round(t3 - t0, 2),
        "cpu_s": round(cpu_s(), 1),
        "memory_limit": memory_limit,
        "peak_mib": round(peak_mib()),
        "comparisons": len(result.tables["metrics"]),
        "verdict": result.decision.verdict,
        "outcomes": dict(
            zip(
                result.tables["metrics"]["metric"], result.tables["metrics"]["outcome"], strict=True
            )
        ),
        "exposed": int(result.tables["srm"]["users"].sum()),
    }


FLOOR_SQL = """
CREATE TEMP TABLE exposed AS
SELECT user_id, min(variant) AS variant, epoch_us(min(assigned_at)) AS exposed_us
FROM read_parquet('{data}/assignments.parquet')
WHERE experiment = 'bench_checklist'
GROUP BY user_id HAVING min(variant) = max(variant);
SELECT count(*), sum(sessions), sum(sessions_before), sum(views), sum(views_before),
  sum(reports), sum(searches), sum(exports), sum(revenue), sum(active_7d)
FROM (
  SELECT e.user_id,
    count(*) FILTER (k = 1 AND o >= 0) AS sessions,
    count(*) FILTER (k = 1 AND o < 0) AS sessions_before,
    count(*) FILTER (k = 2 AND o >= 0) AS views,
    count(*) FILTER (k = 2 AND o < 0) AS views_before,
    count(*) FILTER (k = 3 AND o >= 0) AS reports,
    count(*) FILTER (k = 4 AND o >= 0) AS searches,
    count(*) FILTER (k = 5 AND o >= 0) AS exports,
    sum(revenue) FILTER (k = 6 AND o >= 0) AS revenue,
    count(*) FILTER (k IN (1, 2) AND o >= 0 AND o < 604800000000) AS active_7d
  FROM (
    SELECT e.user_id, e.revenue, epoch_us(e.timestamp) - x.exposed_us AS o,
      CASE e.event WHEN 'session_start' THEN 1 WHEN 'page_view' THEN 2
        WHEN 'report_created' THEN 3 WHEN 'search' THEN 4 WHEN 'export_csv' THEN 5
        WHEN 'invoice_paid' THEN 6 ELSE 0 END AS k
    FROM read_parquet('{data}/events.parquet') e JOIN exposed x ON e.user_id = x.user_id
    WHERE epoch_us(e.timestamp) >= x.exposed_us - 1209600000000
      AND epoch_us(e.timestamp) < x.exposed_us + 1209600000000
  ) e GROUP BY e.user_id
)
"""


def floor(data: Path) -> dict:
    """The least any readout of these metrics must do, in hand-written DuckDB SQL: one pass
    over the assignments (first exposure per user) and one over the events (joined to the
    exposed users, 9 per-user counts and sums, all summed at the end so that none is optimised
    away). No contract checks, caps, CUPED, segments,
    statistics or daily view: a floor for the engine part on this machine, not a readout."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    t0 = time.perf_counter()
    for statement in FLOOR_SQL.format(data=data).split(";"):
        rows = con.execute(statement).fetchall()
    return {
        "floor_s": round(time.perf_counter() - t0, 2),
        "cpu_s": round(cpu_s(), 1),
        "peak_mib": round(peak_mib()),
        "users_with_events": rows[0][0],
    }


ORDERS = {"generated": None, "time": "timestamp", "user": "user_id"}


def ensure_data(users: int, data: Path) -> dict:
    """Generate the benchmark data unless a matching copy is already there."""
    from experiment_bench_data import generate

    manifest = data / "manifest.json"
    if manifest.exists() and json.loads(manifest.read_text()).get("users") == users:
        return json.loads(manifest.read_text())
    return generate(users, data)


def reordered_path(data: Path, order: str) -> Path:
    """Where `reordered` keeps the copy of `data` in `order`."""
    return data.with_name(f"{data.name}_{order}")


def reordered(data: Path, order: str) -> Path:
    """A copy of `data` whose events are sorted as `order` names (made once, then reused)."""
    column = ORDERS[order]
    if column is None:
        return data
    target = reordered_path(data, order)
    manifest = json.loads((data / "manifest.json").read_text())
    done = target / "manifest.json"
    if done.exists() and json.loads(done.read_text()) == {**manifest, "order": order}:
        return target
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(data / "assignments.parquet", target / "assignments.parquet")
    # In its own process: Linux carries a process's peak memory over into the children it
    # starts, so a sort run here would show up in the readout's peak.
    in_fresh_process(["--sort-child", "--data", str(data), "--order", order])
    done.write_text(json.dumps({**manifest, "order": order}, indent=2))
    return target


def sort_events(data: Path, order: str) -> None:
    """Write `data`'s events sorted by the `order` column into the copy `reordered` makes."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    target = reordered_path(data, order) / "events.parquet"
    con.execute(
        f"COPY (SELECT * FROM read_parquet('{data / 'events.parquet'}') "
        f"ORDER BY {ORDERS[order]}) TO '{target}' (FORMAT parquet)"
    )
    print("sorted")


def in_fresh_process(arguments: list[str]) -> str:
    """Run this script with `arguments` in a new process; its last line of output."""
    child = subprocess.run(
        [sys.executable, __file__, *arguments],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    if child.returncode != 0:
        sys.exit(child.stderr)
    return child.stdout.strip().splitlines()[-1]


def main() -> None:
    """Command line: generate (once), run the readout in a fresh process, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000_000)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--segments", default="plan", help="comma-separated, '' for none")
    parser.add_argument(
        "--memory-limit", default="", help="DuckDB memory_limit for the analysis, e.g. 1.5GB"
    )
    parser.add_argument(
        "--floor", action="store_true", help="also time the minimal engine pass in plain SQL"
    )
    parser.add_argument(
        "--order", choices=sorted(ORDERS), default="generated", help="order of the event log"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--floor-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sort-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    data = args.data or Path(f"/tmp/bench_experiment_{args.users}")
    segments = [s for s in args.segments.split(",") if s]
    if args.child:
        print(json.dumps(readout(data, segments, args.memory_limit or None)))
        return
    if args.floor_child:
        print(json.dumps(floor(data)))
        return
    if args.sort_child:
        sort_events(data, args.order)
        return
    manifest = ensure_data(args.users, data)
    data = reordered(data, args.order)
    print(
        f"data: {manifest['rows']['assignments']:,} assignments, "
        f"{manifest['rows']['events']:,} events, in {args.order} order"
    )
    result = json.loads(
        in_fresh_process(
            ["--child", "--data", str(data), "--segments", args.segments]
            + (["--memory-limit", args.memory_limit] if args.memory_limit else [])
        )
    )
    print(
        f"{'users':>12} {'metrics':>7} {'load s':>7} {'analysis s':>10} {'total s':>8} "
        f"{'CPU s':>7} {'peak MiB':>9}"
    )
    print(
        f"{args.users:>12,} {len(METRICS):>7} {result['load_s']:>7} {result['analysis_s']:>10} "
        f"{result['total_s']:>8} {result['cpu_s']:>7} {result['peak_mib']:>9,}"
    )
    print(json.dumps(result))
    if args.floor:
        print("floor (plain DuckDB SQL, exposures + one pass over the events):")
        print(in_fresh_process(["--floor-child", "--data", str(data)]))


if __name__ == "__main__":
    main()
