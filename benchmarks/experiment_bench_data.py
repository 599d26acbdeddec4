"""Benchmark data for the experiment readout: N assigned users and their events, as Parquet.

The sample generator simulates a whole product (signups, churn, feedback) and at 10M users would
write hundreds of millions of events; this one writes only what an experiment readout reads:
one assignment per user (plus a few users crossed into both arms) and a compact event log around
each user's exposure, in chunks so memory stays flat.

    python benchmarks/experiment_bench_data.py --users 10000000 --out /tmp/bench_experiment

Events per user (Poisson means, half before and half after exposure for the sessions and page
views so CUPED covariates have data): session_start 2, page_view 2.5, report_created 0.4,
search 0.6, export_csv 0.15, invoice_paid 0.1 (with revenue). About 5.8 events per user.
Treatment users get +5% sessions and +10% reports; revenue has no effect.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

START_US = 1_783_296_000_000_000  # 2026-07-06T00:00:00Z in microseconds
DAY_US = 86_400_000_000
EXPOSURE_DAYS = 28
EVENTS = {  # name: (mean per user, treatment multiplier, share before exposure)
    "session_start": (2.0, 1.05, 0.5),
    "page_view": (2.5, 1.05, 0.5),
    "report_created": (0.4, 1.10, 0.3),
    "search": (0.6, 1.0, 0.3),
    "export_csv": (0.15, 1.0, 0.3),
    "invoice_paid": (0.1, 1.0, 0.3),
}
CHUNK = 1_000_000
TIMESTAMP = pa.timestamp("us", tz="UTC")


def _ids(start: int, stop: int) -> pa.Array:
    return pa.array(np.char.add("u", np.arange(start, stop).astype("U9")))


def generate(users: int, out: Path, seed: int = 7) -> dict:
    """Write assignments.parquet and events.parquet for `users` users into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    a_schema = pa.schema(
        [
            ("user_id", pa.string()),
            ("experiment", pa.string()),
            ("variant", pa.string()),
            ("assigned_at", TIMESTAMP),
            ("plan", pa.string()),
            ("platform", pa.string()),
        ]
    )
    e_schema = pa.schema(
        [
            ("user_id", pa.string()),
            ("event", pa.string()),
            ("timestamp", TIMESTAMP),
            ("revenue", pa.float64()),
        ]
    )
    names = list(EVENTS)
    rows = {"assignments": 0, "events": 0}
    started = time.perf_counter()
    with (
        pq.ParquetWriter(out / "assignments.parquet", a_schema) as a_writer,
        pq.ParquetWriter(out / "events.parquet", e_schema) as e_writer,
    ):
        for chunk, start in enumerate(range(0, users, CHUNK)):
            stop = min(start + CHUNK, users)
            n = stop - start
            rng = np.random.default_rng([seed, chunk])
            treated = rng.random(n) < 0.5
            exposed = START_US + rng.integers(0, EXPOSURE_DAYS * DAY_US, n)
            ids = _ids(start, stop)
            plan = rng.choice(np.array(["free", "pro", "enterprise"]), n, p=[0.6, 0.3, 0.1])
            platform = rng.choice(np.array(["web", "ios", "android"]), n, p=[0.7, 0.2, 0.1])
            variant = np.where(treated, "treatment", "control")
            a_writer.write_table(
                pa.table(
                    [
                        ids,
                        pa.array(np.full(n, "bench_checklist")),
                        pa.array(variant),
                        pa.array(exposed, TIMESTAMP),
                        pa.array(plan),
                        pa.array(platform),
                    ],
                    schema=a_schema,
                )
            )
            rows["assignments"] += n
            crossed = np.flatnonzero(rng.random(n) < 0.0005)  # also shown the other variant
            a_writer.write_table(
                pa.table(
                    [
                        ids.take(pa.array(crossed)),
                        pa.array(np.full(len(crossed), "bench_checklist")),
                        pa.array(np.where(treated[crossed], "control", "treatment")),
                        pa.array(exposed[crossed] + DAY_US, TIMESTAMP),
                        pa.array(plan[crossed]),
                        pa.array(platform[crossed]),
                    ],
                    schema=a_schema,
                )
            )
            rows["assignments"] += len(crossed)
            activity = rng.gamma(2.0, 0.5, n)  # per-user propensity, shared by all events
            for code, (mean, lift, before) in EVENTS.items():
                rate = mean * activity * np.where(treated, lift, 1.0)
                count = rng.poisson(rate)
                user = np.repeat(np.arange(n), count)
                pre = rng.random(len(user)) < before
                offset = rng.integers(1, 14 * DAY_US, len(user))
                at = exposed[user] + np.where(pre, -offset, offset)
                revenue = (
                    np.round(rng.gamma(2.0, 40.0, len(user)), 2) if code == "invoice_paid" else None
                )
                e_writer.write_table(
                    pa.table(
                        [
                            ids.take(pa.array(user)),
                            pa.array(np.full(len(user), names[names.index(code)])),
                            pa.array(at, TIMESTAMP),
                            pa.array(revenue, pa.float64())
                            if revenue is not None
                            else pa.nulls(len(user), pa.float64()),
                        ],
                        schema=e_schema,
                    )
                )
                rows["events"] += len(user)
    manifest = {"users": users, "seed": seed, "rows": rows}
    manifest["seconds"] = round(time.perf_counter() - started, 1)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def main() -> None:
    """Command line: generate the data and print the manifest."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000_000)
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_experiment"))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(json.dumps(generate(args.users, args.out, args.seed), indent=2))


if __name__ == "__main__":
    main()
