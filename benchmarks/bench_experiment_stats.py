"""Benchmark: experiment statistics for 1,000 metric × variant comparisons from sufficient stats.

Compares the vectorised `workbench.experiment_stats.compare_to_control` (+ `assess`) with the
same math done one comparison at a time in a Python loop calling scipy per comparison (the style
of gbstats), checks the two agree, and prints a table of median times over several repeats.

    python benchmarks/bench_experiment_stats.py [--comparisons 1000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import pandas as pd
from scipy import stats as sps

from workbench.experiment_stats import MetricPlan, assess, compare_to_control

TYPES = ("conversion", "mean", "ratio")


def make_stats(comparisons: int, seed: int = 1) -> pd.DataFrame:
    """Sufficient statistics: comparisons/2 metrics × (control + 2 variants), mixed types."""
    rng = np.random.default_rng(seed)
    metrics = comparisons // 2
    rows = []
    for m in range(metrics):
        kind = TYPES[m % 3]
        cuped = kind != "ratio" and m % 2 == 0
        for v, variant in enumerate(("control", "b", "c")):
            n = int(rng.integers(20_000, 60_000))
            if kind == "conversion":
                y = (rng.random(n) < 0.1 + 0.005 * v).astype(float)
            else:
                y = rng.gamma(2.0, 5.0 + 0.1 * v, n)
            row = {"metric": f"m{m:04d}", "variant": variant, "metric_type": kind, "n": n}
            row |= {"sum_y": y.sum(), "sum_y2": (y * y).sum()}
            if cuped:
                x = 0.6 * y + rng.normal(0, 1, n)
                row |= {"sum_x": x.sum(), "sum_x2": (x * x).sum(), "sum_xy": (x * y).sum()}
            if kind == "ratio":
                d = rng.poisson(3, n) + 1.0
                row |= {"sum_d": d.sum(), "sum_d2": (d * d).sum(), "sum_yd": (y * d).sum()}
            rows.append(row)
    return pd.DataFrame(rows)


def _moments(a: dict, kind: str) -> tuple[float, float]:
    """One arm's estimate and per-user variance (delta method for ratios), scalar math."""
    n = a["n"]
    mean = a["sum_y"] / n
    if kind == "conversion":
        return mean, mean * (1 - mean)
    var = (a["sum_y2"] - a["sum_y"] * mean) / (n - 1)
    if kind == "ratio":
        md = a["sum_d"] / n
        r = a["sum_y"] / a["sum_d"]
        sdd = (a["sum_d2"] - a["sum_d"] * md) / (n - 1)
        syd = (a["sum_yd"] - a["sum_y"] * md) / (n - 1)
        return r, (var - 2 * r * syd + r * r * sdd) / md**2
    return mean, var


def loop_compare(frame: pd.DataFrame, alpha: float = 0.05) -> list[dict]:
    """The same statistics, one comparison at a time (scalar math + scipy.stats per call)."""
    out = []
    records = frame.to_dict("records")
    by_metric: dict[str, list[dict]] = {}
    for r in records:
        by_metric.setdefault(r["metric"], []).append(r)
    for metric, arms in by_metric.items():
        kind = arms[0]["metric_type"]
        ddof = 0 if kind == "conversion" else 1

        has_x = all(not pd.isna(a.get("sum_x", np.nan)) for a in arms)
        theta, x_all = math.nan, math.nan
        if has_x and kind != "ratio":
            sxy = sum(a["sum_xy"] - a["sum_x"] * a["sum_y"] / a["n"] for a in arms)
            sxx = sum(a["sum_x2"] - a["sum_x"] ** 2 / a["n"] for a in arms)
            theta = sxy / sxx
            x_all = sum(a["sum_x"] for a in arms) / sum(a["n"] for a in arms)
        control = next(a for a in arms if a["variant"] == "control")
        for arm in arms:
            if arm is control:
                continue
            est = []
            for a in (arm, control):
                mean, var = _moments(a, kind)
                if not math.isnan(theta):
                    mx = a["sum_x"] / a["n"]
                    vx = (a["sum_x2"] - a["sum_x"] * mx) / (a["n"] - ddof)
                    cxy = (a["sum_xy"] - a["sum_x"] * a["sum_y"] / a["n"]) / (a["n"] - ddof)
                    mean, var = mean - theta * (mx - x_all), var - 2 * theta * cxy + theta**2 * vx
                est.append((mean, var / a["n"], a["n"]))
            (m_t, v_t, n_t), (m_c, v_c, n_c) = est
            effect, se = m_t - m_c, math.sqrt(v_t + v_c)
            if kind == "mean":
                df = (v_t + v_c) ** 2 / (v_t**2 / (n_t - 1) + v_c**2 / (n_c - 1))
                p = 2 * sps.t.sf(abs(effect / se), df)
                q = sps.t.ppf(1 - alpha / 2, df)
            else:
                p = 2 * sps.norm.sf(abs(effect / se))
                q = sps.norm.ppf(1 - alpha / 2)
            rel = m_t / m_c - 1
            rel_se = math.sqrt(v_t / m_c**2 + m_t**2 * v_c / m_c**4)
            mde = (sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(0.8)) * se
            out.append(
                {
                    "metric": metric,
                    "variant": arm["variant"],
                    "effect": effect,
                    "ci_low": effect - q * se,
                    "ci_high": effect + q * se,
                    "p_value": p,
                    "relative_ci_low": rel - q * rel_se,
                    "mde": mde,
                }
            )
    return out


def timed(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comparisons", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    frame = make_stats(args.comparisons)
    plans = {
        m: MetricPlan("primary" if i % 5 else "guardrail", margin=0.02)
        for i, m in enumerate(frame["metric"].unique())
    }
    compare_to_control(frame)  # warm up imports and caches

    t_vec, vec = timed(lambda: compare_to_control(frame), args.repeats)
    t_full, _ = timed(
        lambda: assess(
            compare_to_control(frame, planned_n=200_000, target_effect=0.01),
            plans,
            chance_to_beat=True,
        ),
        args.repeats,
    )
    t_loop, loop = timed(lambda: loop_compare(frame), max(3, args.repeats // 2))
    ref = pd.DataFrame(loop)
    merged = vec.merge(ref, on=["metric", "variant"], suffixes=("", "_loop"))
    columns = ["effect", "ci_low", "ci_high", "p_value", "relative_ci_low", "mde"]
    worst = max(
        float(
            np.nanmax(
                np.abs(merged[c] - merged[f"{c}_loop"]) / np.maximum(np.abs(merged[c]), 1e-12)
            )
        )
        for c in columns
    )
    n = len(vec)
    print(
        f"{n:,} metric × variant comparisons ({frame['metric'].nunique()} metrics × 2 variants; "
        f"conversion/mean/ratio mixed, CUPED on {int(vec['cuped'].sum())})"
    )
    print(f"{'method':<58}{'median ms':>10}{'µs/comparison':>15}")
    for label, seconds in [
        ("vectorised compare_to_control", t_vec),
        ("vectorised compare_to_control + CS + power + assess", t_full),
        ("per-comparison Python loop (scipy per call, gbstats style)", t_loop),
    ]:
        print(f"{label:<58}{seconds * 1e3:>10.1f}{seconds / n * 1e6:>15.1f}")
    print(
        f"speed-up of the vectorised path: {t_loop / t_vec:.0f}×; "
        f"largest relative difference loop vs vectorised: {worst:.1e}"
    )


if __name__ == "__main__":
    main()
