"""Sentiment, NPS by theme and theme trends (volume, share, spikes, emerging themes)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import stats

PERIODS = {"day": "D", "week": "W-SUN", "month": "M"}


# --- Sentiment ---------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _analyzer():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def sentiment(texts: Sequence[str], n_jobs: int = 1) -> np.ndarray:
    """VADER compound score per text, from -1 (most negative) to +1 (most positive); 0 if empty.

    VADER is a lexicon and rule-based model tuned to short social-media style text; its lexicon
    ships with the `vaderSentiment` package. Only the first 1,000 characters are scored.
    `n_jobs` > 1 scores large inputs in that many worker processes (same results).
    """
    texts = list(texts)
    if n_jobs > 1 and len(texts) >= 20_000:
        from concurrent.futures import ProcessPoolExecutor

        chunks = np.array_split(np.arange(len(texts)), n_jobs * 4)
        with ProcessPoolExecutor(n_jobs) as pool:
            parts = pool.map(sentiment, [[texts[i] for i in chunk] for chunk in chunks])
            return np.concatenate(list(parts))
    analyzer = _analyzer()
    out = np.zeros(len(texts), dtype=np.float64)
    for i, text in enumerate(texts):
        if text:
            out[i] = analyzer.polarity_scores(text[:1000])["compound"]
    return out


# --- NPS ---------------------------------------------------------------------------------------


def nps(scores: np.ndarray | pd.Series) -> float:
    """Net promoter score: % promoters (9-10) minus % detractors (0-6); NaN without scores."""
    values = pd.to_numeric(pd.Series(scores), errors="coerce").dropna().to_numpy(dtype=float)
    if len(values) == 0:
        return float("nan")
    return float(100.0 * ((values >= 9).mean() - (values <= 6).mean()))


def nps_by_theme(scores: pd.Series, membership: pd.DataFrame) -> pd.DataFrame:
    """Per theme (columns of the boolean `membership`, rows aligned with `scores`): responses,
    NPS of the theme's items and its impact = overall NPS minus NPS without the theme's items.

    A negative impact means the theme's respondents pull the overall NPS down.
    """
    values = pd.to_numeric(scores, errors="coerce").to_numpy(dtype=float)
    rated = ~np.isnan(values)
    promoter = (values >= 9) & rated
    detractor = (values <= 6) & rated
    total_n = rated.sum()
    overall = 100.0 * (promoter.sum() - detractor.sum()) / total_n if total_n else np.nan
    rows = []
    for theme in membership.columns:
        member = membership[theme].to_numpy(dtype=bool)
        n_in = int((member & rated).sum())
        n_out = int((~member & rated).sum())
        inside = (
            100.0 * ((promoter & member).sum() - (detractor & member).sum()) / n_in
            if n_in
            else np.nan
        )
        outside = (
            100.0 * ((promoter & ~member).sum() - (detractor & ~member).sum()) / n_out
            if n_out
            else np.nan
        )
        rows.append(
            {
                "theme_id": theme,
                "nps_responses": n_in,
                "nps": inside,
                "nps_impact": overall - outside if n_in and n_out else np.nan,
            }
        )
    frame = pd.DataFrame(rows, columns=["theme_id", "nps_responses", "nps", "nps_impact"])
    frame.attrs["overall_nps"] = overall
    frame.attrs["responses"] = int(total_n)
    return frame


# --- Trends ------------------------------------------------------------------------------------


def period_start(times: pd.Series, period: str, timezone: str = "UTC") -> pd.Series:
    """Start of the period (day, week starting Monday, month) of each time, in `timezone`,
    returned as a timezone-naive local date-time."""
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}, not {period!r}")
    local = pd.to_datetime(times, utc=True).dt.tz_convert(timezone).dt.tz_localize(None)
    return local.dt.to_period(PERIODS[period]).dt.start_time


def _next_start(start: pd.Timestamp, period: str) -> pd.Timestamp:
    if period == "day":
        return start + pd.Timedelta(days=1)
    if period == "week":
        return start + pd.Timedelta(days=7)
    return start + pd.offsets.MonthBegin(1)


def theme_trends(
    periods: pd.Series,
    membership: pd.DataFrame,
    *,
    period: str = "week",
    data_end: pd.Timestamp | None = None,
    baseline_periods: int = 8,
    recent_periods: int = 1,
    min_theme_size: int = 10,
    min_lift: float = 2.0,
    alpha: float = 0.01,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Volume and share per period and theme, spikes and emerging themes.

    `periods` holds each item's period start (rows aligned with the boolean `membership`).
    Returns (trends, flags):

    - trends: period, theme_id, count, items (all analysed items in the period), share,
      complete (the period ended before `data_end`), expected (from the trailing baseline),
      p_value and spike.
    - flags, one row per theme: recent_count, baseline_count, recent_share, baseline_share,
      lift, p_value, emerging, spike (in the latest period).

    Spike: a one-sided Poisson test of a period's count against the count expected from the
    theme's share over the `baseline_periods` before it, scaled to the period's volume (so
    overall growth and a partial last period do not look like spikes); flagged when p <
    `alpha` / number of themes (Bonferroni), the count is at least 5 and the lift >= 1.5.
    Emerging: over the last `recent_periods` periods against the `baseline_periods` before
    them, the share grew at least `min_lift`-fold (shares smoothed by half an item), the theme
    has at least `min_theme_size` recent items, and the Poisson test passes the same bar.
    """
    themes = list(membership.columns)
    all_periods = _period_range(periods, period)
    counts = (
        membership.groupby(periods.to_numpy()).sum().reindex(all_periods, fill_value=0)
        if len(themes)
        else pd.DataFrame(index=all_periods)
    )
    totals = periods.value_counts().reindex(all_periods, fill_value=0)
    if data_end is None:
        data_end = periods.max() if len(periods) else None
    ends = [_next_start(p, period) for p in all_periods]
    complete = [data_end is not None and end <= data_end for end in ends]
    bar = alpha / max(len(themes), 1)

    rows = []
    for t in themes:
        c = counts[t].to_numpy(dtype=float) if len(themes) else np.zeros(0)
        n = totals.to_numpy(dtype=float)
        for j, start in enumerate(all_periods):
            expected = p_value = np.nan
            spike = False
            if j >= baseline_periods and n[j] > 0:
                base_c = c[j - baseline_periods : j].sum()
                base_n = n[j - baseline_periods : j].sum()
                if base_n > 0:
                    expected = n[j] * (base_c + 0.5) / (base_n + 1.0)
                    p_value = float(stats.poisson.sf(c[j] - 1, expected))
                    spike = bool(p_value < bar and c[j] >= 5 and c[j] >= 1.5 * expected)
            rows.append(
                {
                    "period": start,
                    "theme_id": t,
                    "count": int(c[j]),
                    "items": int(n[j]),
                    "share": c[j] / n[j] if n[j] else np.nan,
                    "complete": bool(complete[j]),
                    "expected": expected,
                    "p_value": p_value,
                    "spike": spike,
                }
            )
    trends = pd.DataFrame(
        rows,
        columns=[
            "period",
            "theme_id",
            "count",
            "items",
            "share",
            "complete",
            "expected",
            "p_value",
            "spike",
        ],
    )

    flag_rows = []
    n = totals.to_numpy(dtype=float)
    enough = len(all_periods) >= recent_periods + 1
    for t in themes:
        c = counts[t].to_numpy(dtype=float)
        row = {
            "theme_id": t,
            "recent_count": 0,
            "baseline_count": 0,
            "recent_share": np.nan,
            "baseline_share": np.nan,
            "lift": np.nan,
            "trend_p_value": np.nan,
            "emerging": False,
            "spike": False,
        }
        if enough:
            recent = slice(len(c) - recent_periods, len(c))
            base = slice(
                max(0, len(c) - recent_periods - baseline_periods), len(c) - recent_periods
            )
            rc, rn, bc, bn = c[recent].sum(), n[recent].sum(), c[base].sum(), n[base].sum()
            if rn > 0 and bn > 0:
                recent_share, base_share = rc / rn, (bc + 0.5) / (bn + 1.0)
                expected = rn * base_share
                p_value = float(stats.poisson.sf(rc - 1, expected))
                lift = recent_share / base_share
                row |= {
                    "recent_count": int(rc),
                    "baseline_count": int(bc),
                    "recent_share": recent_share,
                    "baseline_share": bc / bn,
                    "lift": lift,
                    "trend_p_value": p_value,
                    "emerging": bool(lift >= min_lift and rc >= min_theme_size and p_value < bar),
                }
            last = trends[(trends["theme_id"] == t)].tail(1)
            row["spike"] = bool(len(last) and last["spike"].iloc[0])
        flag_rows.append(row)
    flags = pd.DataFrame(
        flag_rows,
        columns=[
            "theme_id",
            "recent_count",
            "baseline_count",
            "recent_share",
            "baseline_share",
            "lift",
            "trend_p_value",
            "emerging",
            "spike",
        ],
    )
    return trends, flags


def _period_range(periods: pd.Series, period: str) -> list[pd.Timestamp]:
    """Every period start from the first to the last item's period, gaps included."""
    if len(periods) == 0:
        return []
    first, last = periods.min(), periods.max()
    out, current = [], first
    while current <= last:
        out.append(current)
        current = _next_start(current, period)
    return out
