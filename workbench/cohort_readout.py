"""The cohort adoption readout: the engine's cohort frames turned into a summary, charts and checks.

`cohort_readout(tables, params)` runs `workbench.cohorts.cohort_adoption` with the settings of a
validated parameter file and writes the headline, bullets, key numbers and method from the
numbers; `CohortReadout` draws the charts; `CohortExplorer` is the analysts' live view (period,
retention mode, feature, segment) in JupyterLab.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import altair as alt
import ibis
import pandas as pd
from statsmodels.stats.proportion import proportion_confint

from workbench.charts import PALETTE
from workbench.cohorts import CohortAdoption, CohortSettings, cohort_adoption
from workbench.parameters import CohortAdoptionParameters
from workbench.readout import Heading, Note, Table
from workbench.results import AnalysisResult, KeyNumber

STATE_LABELS = {
    "complete": "complete",
    "in_progress": "in progress (so far)",
    "not_observable": "not observable yet",
}
ADJECTIVES = {"day": "daily", "week": "weekly", "month": "monthly"}
MAX_DRAWN_COHORTS = 60  # cohorts drawn in the heatmap and curves (about a page)
LIFECYCLE_COLORS = {
    "new": PALETTE[0],
    "returning": PALETTE[2],
    "resurrecting": PALETTE[1],
    "dormant": PALETTE[3],
}


def cohort_settings(params: CohortAdoptionParameters, **overrides: Any) -> dict[str, Any]:
    """The engine's cohort settings from a parameter file (window.start is the first cohort,
    window.end or as_of the end of observation)."""
    settings = {
        "unit": params.unit,
        "cohort_by": params.cohort_by,
        "period": params.period,
        "week_start": params.week_start,
        "timezone": params.timezone,
        "periods": params.periods,
        "activity": params.activity,
        "retention": params.retention,
        "min_events": params.min_events,
        "features": params.features,
        "adoption_window_days": params.adoption_window_days,
        "segments": tuple(params.segments),
        "as_of": params.as_of or params.window.end,
        "start": params.window.start,
        "min_cohort_size": params.min_cohort_size,
    }
    return settings | overrides


@dataclass
class CohortReadout(AnalysisResult):
    """Retention, adoption, stickiness, lifecycle and segment comparison, with their charts."""

    settings: CohortSettings | None = None

    @property
    def period_word(self) -> str:
        """'day', 'week' or 'month'."""
        return self.settings.period if self.settings else "period"

    def drawn_cohorts(self) -> pd.DataFrame:
        """The retention matrix of the latest MAX_DRAWN_COHORTS cohorts (what charts draw, so a
        daily readout stays small; summary.json keeps every cohort)."""
        frame = self.tables["retention"]
        latest = sorted(frame["cohort"].unique())[-MAX_DRAWN_COHORTS:]
        return frame[frame["cohort"].isin(latest)]

    def _cohorts_note(self) -> str:
        total, drawn = self.tables["retention"]["cohort"].nunique(), self.drawn_cohorts()
        shown = drawn["cohort"].nunique()
        return f" — latest {shown} of {total} cohorts" if shown < total else ""

    def retention_heatmap(self) -> alt.Chart:
        """Cohort × period rates; in-progress cells faded and marked, unobservable cells blank."""
        frame = self.drawn_cohorts().copy()
        frame["cohort"] = frame["cohort"].dt.strftime("%Y-%m-%d")
        frame["cell"] = frame["state"].map(STATE_LABELS)
        frame["label"] = [
            "·" if s == "not_observable" else f"{r:.0%}" + ("…" if s == "in_progress" else "")
            for r, s in zip(frame["rate"], frame["state"], strict=True)
        ]
        frame = frame[["cohort", "period", "cohort_size", "retained", "rate", "cell", "label"]]
        frame = frame.assign(shown_rate=frame["rate"].where(frame["period"] > 0))
        tooltip = [
            alt.Tooltip("cohort:O", title="cohort"),
            alt.Tooltip("period:O", title=f"{self.period_word}s since"),
            alt.Tooltip("cohort_size:Q", title="cohort size", format=","),
            alt.Tooltip("retained:Q", format=","),
            alt.Tooltip("rate:Q", format=".1%"),
            alt.Tooltip("cell:N", title="cell"),
        ]
        n = frame["cohort"].nunique()
        mode = "on or after" if self.settings and self.settings.retention == "on_or_after" else "on"
        title = (
            f"{ADJECTIVES.get(self.period_word, '').capitalize()} retention by cohort ('{mode}')"
            + self._cohorts_note()
        )
        base = alt.Chart(frame, title=title.strip()).encode(
            x=alt.X("period:O", title=f"{self.period_word.capitalize()}s since the cohort"),
            y=alt.Y("cohort:O", title="Cohort", sort="ascending"),
        )
        cells = base.mark_rect(stroke="white", strokeWidth=1).encode(
            color=alt.condition(
                "datum.cell == 'not observable yet' || datum.period == 0",
                alt.value("#f4f6f8"),
                alt.Color(
                    "shown_rate:Q",
                    title="retained",
                    scale=alt.Scale(scheme="blues", domain=[0, 1]),
                    legend=alt.Legend(format="%", orient="right"),
                ),
            ),
            opacity=alt.Opacity(
                "cell:N",
                title="cell",
                scale=alt.Scale(
                    domain=list(STATE_LABELS.values()),
                    range=[1.0, 0.45, 1.0],
                ),
                legend=None,
            ),
            tooltip=tooltip,
        )
        running = base.transform_filter("datum.cell == 'in progress (so far)'").mark_rect(
            fill=None, stroke="#52606d", strokeDash=[3, 2], strokeWidth=1
        )
        text = base.mark_text(fontSize=10).encode(
            text="label:N",
            color=alt.condition(
                "datum.shown_rate > 0.55", alt.value("white"), alt.value("#1f2933")
            ),
            tooltip=tooltip,
        )
        return (cells + running + text).properties(
            height=alt.Step(20) if n else 40, width=alt.Step(44)
        )

    def average_curve_chart(self) -> alt.Chart:
        """The weighted average curve over complete cells, labelled with its number of cohorts."""
        curve = self.tables["average_retention"]
        curve = curve[curve["rate"].notna()][["period", "n_cohorts", "cohort_size", "rate"]]
        base = alt.Chart(
            curve, title="Average retention over complete cohorts (weighted by cohort size)"
        ).encode(
            x=alt.X("period:Q", title=f"{self.period_word.capitalize()}s since the cohort"),
            y=alt.Y("rate:Q", title="Retained", axis=alt.Axis(format="%")),
            tooltip=[
                alt.Tooltip("period:Q", title=f"{self.period_word}"),
                alt.Tooltip("rate:Q", format=".1%"),
                alt.Tooltip("n_cohorts:Q", title="cohorts"),
                alt.Tooltip("cohort_size:Q", title="units", format=","),
            ],
        )
        labels = base.mark_text(dy=-12, fontSize=10, color="#52606d").encode(
            text=alt.Text("n_cohorts:Q", format="d")
        )
        return base.mark_line() + labels

    def cohort_curves_chart(self) -> alt.Chart:
        """One retention curve per cohort (complete cells only), newer cohorts darker."""
        frame = self.drawn_cohorts()
        frame = frame[frame["state"].eq("complete")][["cohort", "period", "rate", "cohort_size"]]
        title = "Retention curve of each cohort (complete cells)" + self._cohorts_note()
        return (
            alt.Chart(frame, title=title)
            .mark_line(point=False, strokeWidth=1.6)
            .encode(
                x=alt.X("period:Q", title=f"{self.period_word.capitalize()}s since the cohort"),
                y=alt.Y("rate:Q", title="Retained", axis=alt.Axis(format="%")),
                color=alt.Color(
                    "cohort:T", title="cohort", scale=alt.Scale(scheme="viridis"), legend=None
                ),
                tooltip=[
                    alt.Tooltip("cohort:T", format="%Y-%m-%d"),
                    alt.Tooltip("period:Q"),
                    alt.Tooltip("rate:Q", format=".1%"),
                    alt.Tooltip("cohort_size:Q", format=","),
                ],
            )
        )

    def segment_curves_chart(self, segment: str | None = None) -> alt.Chart | None:
        """Average retention curve of each value of a segment column (every column by default)."""
        frame = self.tables["segment_retention"]
        if frame.empty:
            return None
        columns = [segment] if segment else list(dict.fromkeys(frame["segment"]))
        charts = []
        for column in columns:
            part = frame[(frame["segment"] == column) & frame["rate"].notna()]
            part = part.assign(value=part["value"].astype(str))
            charts.append(
                alt.Chart(part, title=f"Average retention by {column}")
                .mark_line()
                .encode(
                    x=alt.X("period:Q", title=f"{self.period_word.capitalize()}s since the cohort"),
                    y=alt.Y("rate:Q", title="Retained", axis=alt.Axis(format="%")),
                    color=alt.Color("value:N", title=column),
                    tooltip=[
                        alt.Tooltip("value:N", title=column),
                        alt.Tooltip("period:Q"),
                        alt.Tooltip("rate:Q", format=".1%"),
                        alt.Tooltip("n_cohorts:Q", title="cohorts"),
                        alt.Tooltip("cohort_size:Q", title="units", format=","),
                    ],
                )
            )
        return (
            charts[0]
            if len(charts) == 1
            else alt.vconcat(*charts).resolve_scale(color="independent")
        )

    @property
    def has_features(self) -> bool:
        """Whether the readout was given features to measure adoption of."""
        return bool(self.settings and self.settings.features)

    def adoption_heading(self) -> Heading | Note:
        """The feature adoption heading, or a one-line note when no features are configured."""
        if not self.has_features:
            return Note("Feature adoption: no features are configured (parameter `features`).")
        return Heading(
            "Feature adoption",
            "Share of each cohort that adopted a feature within the window (only units whose "
            "window has ended count), and how fast they got there.",
            level=3,
        )

    def adoption_summary_table(self) -> Table | None:
        """Adoption per feature over all cohorts as a readout table (None without features)."""
        if not self.has_features:
            return None
        return Table(
            self.adoption_table(),
            caption="Adoption per feature over all cohorts: Wilson 95% intervals, days to first "
            "use.",
            units={
                "rate": "share",
                "95% CI low": "share",
                "95% CI high": "share",
                "repeat_rate": "share",
            },
        )

    def adoption_chart(self) -> alt.Chart | None:
        """Share of eligible units adopting each feature in the window, with 95% intervals."""
        summary = self.tables["adoption_summary"]
        if summary.empty:
            return None
        frame = summary[["feature", "eligible", "adopted", "rate", "ci_low", "ci_high"]]
        window = self.settings.adoption_window_days if self.settings else ""
        base = alt.Chart(frame, title=f"Feature adoption within {window} days (95% CI)").encode(
            y=alt.Y("feature:N", sort="-x", title=None)
        )
        tooltip = [
            alt.Tooltip("feature:N"),
            alt.Tooltip("rate:Q", format=".1%"),
            alt.Tooltip("ci_low:Q", format=".1%", title="CI low"),
            alt.Tooltip("ci_high:Q", format=".1%", title="CI high"),
            alt.Tooltip("adopted:Q", format=","),
            alt.Tooltip("eligible:Q", format=","),
        ]
        bars = base.mark_bar().encode(
            x=alt.X("rate:Q", title="Adopted", axis=alt.Axis(format="%")), tooltip=tooltip
        )
        rules = base.mark_rule(color="#1f2933").encode(x="ci_low:Q", x2="ci_high:Q")
        return (bars + rules).properties(height=alt.Step(26))

    def adoption_by_cohort_chart(self) -> alt.Chart | None:
        """Adoption rate of each feature by cohort (cohorts with a complete window only)."""
        frame = self.tables["adoption"]
        frame = frame[frame["eligible"] > 0][["feature", "cohort", "eligible", "rate"]]
        if frame.empty:
            return None
        return (
            alt.Chart(frame, title="Feature adoption by cohort")
            .mark_line()
            .encode(
                x=alt.X("cohort:T", title="Cohort"),
                y=alt.Y("rate:Q", title="Adopted", axis=alt.Axis(format="%")),
                color=alt.Color("feature:N", title=None),
                tooltip=[
                    alt.Tooltip("feature:N"),
                    alt.Tooltip("cohort:T", format="%Y-%m-%d"),
                    alt.Tooltip("rate:Q", format=".1%"),
                    alt.Tooltip("eligible:Q", format=","),
                ],
            )
        )

    def time_to_adopt_chart(self, feature: str | None = None) -> alt.Chart | None:
        """Kaplan–Meier share adopted by days since the anchor (units in their window censored)."""
        curve = self.tables["time_to_adopt"]
        if feature:
            curve = curve[curve["feature"] == feature]
        if curve.empty:
            return None
        frame = curve[["feature", "days", "adopted_share", "at_risk"]].copy()
        frame["days"] = (frame["days"] * 4).round() / 4  # quarter days: enough to draw
        frame = frame.groupby(["feature", "days"], as_index=False, sort=False).last()
        return (
            alt.Chart(frame, title="Time to first use (Kaplan–Meier, share adopted)")
            .mark_line(interpolate="step-after", point=False)
            .encode(
                x=alt.X("days:Q", title="Days since the cohort anchor"),
                y=alt.Y("adopted_share:Q", title="Adopted", axis=alt.Axis(format="%")),
                color=alt.Color("feature:N", title=None),
                tooltip=[
                    alt.Tooltip("feature:N"),
                    alt.Tooltip("days:Q", format=".1f"),
                    alt.Tooltip("adopted_share:Q", format=".1%", title="adopted"),
                    alt.Tooltip("at_risk:Q", format=",", title="not yet adopted"),
                ],
            )
        )

    def breadth_chart(self) -> alt.Chart | None:
        """How many of the features each eligible unit adopted in its window."""
        frame = self.tables["breadth"]
        if frame.empty:
            return None
        return (
            alt.Chart(frame, title="Breadth: features adopted per unit in the window")
            .mark_bar()
            .encode(
                x=alt.X("breadth:O", title="Features adopted"),
                y=alt.Y("share:Q", title="Share of eligible units", axis=alt.Axis(format="%")),
                tooltip=[
                    alt.Tooltip("breadth:O"),
                    alt.Tooltip("units:Q", format=","),
                    alt.Tooltip("share:Q", format=".1%"),
                ],
            )
        )

    def stickiness_chart(self) -> alt.Chart | None:
        """DAU/MAU and WAU/MAU per complete week."""
        weekly = self.tables["stickiness"]
        weekly = weekly[weekly["complete"]]
        if weekly.empty:
            return None
        long = weekly.melt(
            id_vars=["week", "mau"], value_vars=["dau_mau", "wau_mau"], var_name="ratio"
        )
        long["ratio"] = long["ratio"].map({"dau_mau": "DAU / MAU", "wau_mau": "WAU / MAU"})
        return (
            alt.Chart(long, title="Stickiness per week")
            .mark_line()
            .encode(
                x=alt.X("week:T", title=None),
                y=alt.Y("value:Q", title="Share of MAU", axis=alt.Axis(format="%")),
                color=alt.Color("ratio:N", title=None),
                tooltip=[
                    alt.Tooltip("ratio:N"),
                    alt.Tooltip("week:T", format="%Y-%m-%d"),
                    alt.Tooltip("value:Q", format=".1%"),
                    alt.Tooltip("mau:Q", format=",", title="MAU"),
                ],
            )
        )

    def active_days_chart(self) -> alt.Chart | None:
        """Distribution of active days per week among the units active that week."""
        frame = self.tables["active_days"]
        frame = frame[frame["complete"]][["week", "active_days", "units", "share"]]
        if frame.empty:
            return None
        return (
            alt.Chart(frame, title="Active days per week (units active that week)")
            .mark_bar()
            .encode(
                x=alt.X("week:T", title=None),
                y=alt.Y("share:Q", stack="normalize", title="Share", axis=alt.Axis(format="%")),
                color=alt.Color(
                    "active_days:O", title="active days", scale=alt.Scale(scheme="blues")
                ),
                order=alt.Order("active_days:O"),
                tooltip=[
                    alt.Tooltip("week:T", format="%Y-%m-%d"),
                    alt.Tooltip("active_days:O", title="active days"),
                    alt.Tooltip("units:Q", format=","),
                    alt.Tooltip("share:Q", format=".1%"),
                ],
            )
        )

    def lifecycle_chart(self) -> alt.Chart | None:
        """New, returning and resurrecting units above zero, dormant below, per period."""
        frame = self.tables["lifecycle"]
        if frame.empty:
            return None
        long = frame.melt(
            id_vars=["period", "state"],
            value_vars=list(LIFECYCLE_COLORS),
            var_name="status",
            value_name="units",
        )
        long["shown"] = long["units"].where(long["status"] != "dormant", -long["units"])
        long["cell"] = long["state"].map(STATE_LABELS)
        return (
            alt.Chart(long, title=f"Lifecycle per {self.period_word}")
            .mark_bar()
            .encode(
                x=alt.X("period:T", title=None),
                y=alt.Y("shown:Q", title="Units (dormant below zero)"),
                color=alt.Color(
                    "status:N",
                    title=None,
                    scale=alt.Scale(
                        domain=list(LIFECYCLE_COLORS), range=list(LIFECYCLE_COLORS.values())
                    ),
                ),
                opacity=alt.condition("datum.cell == 'complete'", alt.value(1.0), alt.value(0.45)),
                tooltip=[
                    alt.Tooltip("period:T", format="%Y-%m-%d"),
                    alt.Tooltip("status:N"),
                    alt.Tooltip("units:Q", format=","),
                    alt.Tooltip("cell:N", title="period"),
                ],
            )
        )

    def adoption_table(self) -> pd.DataFrame:
        """Adoption per feature over all cohorts, the columns a PM reads."""
        columns = ["feature", "events", "eligible", "adopted", "rate", "ci_low", "ci_high"]
        frame = self.tables["adoption_summary"]
        return frame[[*columns, "median_days", "repeat_rate"]].rename(
            columns={"ci_low": "95% CI low", "ci_high": "95% CI high"}
        )

    def segment_table(self) -> pd.DataFrame:
        """The segment comparisons as a PM reads them: rates with intervals, the difference with
        its interval (log-rank rows: the test statistic), the adjusted p-value."""
        frame = self.tables["segments"]
        if frame.empty:
            return frame
        rows = []
        for r in frame.to_dict(orient="records"):
            ranked = r["metric"] == "time_to_adopt"
            rows.append(
                {
                    "segment": r["segment"],
                    "metric": r["metric"].replace("_", " ")
                    + ": "
                    + str(r["detail"]).replace("period", self.period_word),
                    "groups": f"{r['group_a']} vs {r['group_b']}",
                    "rates (95% CI)": f"{_rate(r, 'a')} vs {_rate(r, 'b')}",
                    "difference (95% CI)": f"log-rank χ² {r['statistic']:.1f}"
                    if ranked
                    else _points(r["difference"], r["diff_ci_low"], r["diff_ci_high"]),
                    "adjusted p": _p(r["p_adjusted"]),
                }
            )
        return pd.DataFrame(rows)


def cohort_readout(
    tables: dict[str, ibis.Table], params: CohortAdoptionParameters, **overrides: Any
) -> CohortReadout:
    """Run the cohort analysis in the engine and write the readout from its numbers.

    `overrides` replace cohort settings (period, retention, …) for an analyst's view.
    """
    settings = cohort_settings(params, **overrides)
    at = [n for n in params.compare_at if n <= settings["periods"]]
    found = cohort_adoption(
        tables["users"], tables["events"], at_periods=at, correction=params.correction, **settings
    )
    return _readout(found, at, params)


def _readout(
    found: CohortAdoption, at: list[int], params: CohortAdoptionParameters
) -> CohortReadout:
    s, cal, t = found.settings, found.calendar, found.tables
    noun = "accounts" if s.unit == "account" else "users"
    retention = t["retention"]
    sizes = retention[retention["period"] == 0]
    n_units, n_cohorts = int(sizes["cohort_size"].sum()), len(sizes)
    first = sizes["cohort"].min() if n_cohorts else None
    last = sizes["cohort"].max() if n_cohorts else None
    curve = t["average_retention"].set_index("period") if len(t["average_retention"]) else None
    key_numbers = [KeyNumber(f"{noun.capitalize()} in cohorts", n_units, noun)]
    points = [n for n in dict.fromkeys([1, *at]) if n <= s.periods]
    for n in points:
        row = curve.loc[n] if curve is not None and n in curve.index else None
        if row is not None and row["cohort_size"] > 0:
            low, high = _wilson(int(row["retained"]), int(row["cohort_size"]))
            key_numbers.append(
                KeyNumber(
                    f"{_pname(s.period, n)} retention", float(row["rate"]), "share", low, high
                )
            )
    adoption = t["adoption_summary"]
    adoption_ok = adoption[adoption["eligible"] > 0]
    top = adoption_ok.sort_values("rate", ascending=False).iloc[0] if len(adoption_ok) else None
    if top is not None:
        key_numbers.append(
            KeyNumber(
                f"Adopt {top['feature']} within {s.adoption_window_days} days",
                float(top["rate"]),
                "share",
                top["ci_low"],
                top["ci_high"],
            )
        )
    weekly = t["stickiness"]
    done_weeks = weekly[weekly["complete"] & weekly["dau_mau"].notna()]
    if len(done_weeks):
        key_numbers.append(
            KeyNumber(
                "DAU / MAU (last complete week)", float(done_weeks["dau_mau"].iloc[-1]), "share"
            )
        )

    headline = _headline(s, noun, n_units, n_cohorts, first, last, curve, points, top)
    bullets = _bullets(found, curve, noun, done_weeks)
    window = {
        "start": first.date().isoformat() if first is not None else None,
        "end": cal.observed_until.date().isoformat()
        if cal.observed_until.time() != pd.Timestamp(0).time()
        else (cal.observed_until - pd.Timedelta(days=1)).date().isoformat(),
    }
    results = {
        name: t[name]
        for name in (
            "retention",
            "average_retention",
            "segment_retention",
            "adoption",
            "adoption_summary",
            "time_to_adopt",
            "breadth",
            "lifecycle",
            "stickiness",
            "daily_active",
            "active_days",
            "segments",
        )
    }
    return CohortReadout(
        headline=headline,
        bullets=bullets,
        key_numbers=key_numbers,
        checks=found.checks,
        method=_method(s, at, params),
        tables=results,
        data_window=window,
        settings=s,
    )


def _headline(
    s: CohortSettings,
    noun: str,
    n_units: int,
    n_cohorts: int,
    first: pd.Timestamp | None,
    last: pd.Timestamp | None,
    curve: pd.DataFrame | None,
    points: list[int],
    top: pd.Series | None,
) -> str:
    if not n_cohorts:
        return f"No {noun} joined in the window, so there is no cohort to read."
    joined = "signed up" if s.cohort_by == "signup" else "were first active"
    cohorts = f"{ADJECTIVES[s.period]} cohort" + ("s" if n_cohorts != 1 else "")
    span = f"{first:%Y-%m-%d}" + (f" to {last:%Y-%m-%d}" if n_cohorts > 1 else "")
    text = (
        f"Of {n_units:,} {noun if n_units != 1 else noun[:-1]} who {joined} in {n_cohorts} "
        f"{cohorts} ({span})"
    )
    rates = [
        f"{curve.loc[n, 'rate']:.0%} were active in {_pname(s.period, n).lower()}"
        for n in points
        if curve is not None and n in curve.index and pd.notna(curve.loc[n, "rate"])
    ]
    text += ", " + " and ".join(rates) if rates else ", no cohort has a complete period yet"
    if top is not None:
        text += (
            f"; {top['feature']} is the most adopted feature "
            f"({top['rate']:.0%} within {s.adoption_window_days} days)"
        )
    return text + "."


def _bullets(
    found: CohortAdoption,
    curve: pd.DataFrame | None,
    noun: str,
    done_weeks: pd.DataFrame,
) -> list[str]:
    s, t = found.settings, found.tables
    bullets = []
    retention = t["retention"]
    one = retention[(retention["period"] == 1) & retention["state"].eq("complete")]
    if len(one) and curve is not None and 1 in curve.index:
        latest = one.sort_values("cohort").iloc[-1]
        low, high = _wilson(int(latest["retained"]), int(latest["cohort_size"]))
        average = float(curve.loc[1, "rate"])
        gap = (latest["rate"] - average) * 100
        bullets.append(
            f"{_pname(s.period, 1)} retention of the latest complete cohort "
            f"({latest['cohort']:%Y-%m-%d}, {int(latest['cohort_size']):,} {noun}) is "
            f"{latest['rate']:.0%} (95% CI {low:.0%}–{high:.0%}), {abs(gap):.0f} points "
            f"{'above' if gap >= 0 else 'below'} the average of "
            f"{int(curve.loc[1, 'n_cohorts'])} cohorts ({average:.0%})."
        )
    adoption = t["adoption_summary"]
    adoption = adoption[adoption["eligible"] > 0].sort_values("rate", ascending=False)
    if len(adoption):
        parts = [
            f"{r['feature']} {r['rate']:.0%}"
            + (f" (median {r['median_days']:.1f} days)" if pd.notna(r["median_days"]) else "")
            for _, r in adoption.iterrows()
        ]
        breadth = t["breadth"]
        none = breadth[breadth["breadth"] == 0]["share"]
        tail = (
            f"; {none.iloc[0]:.0%} adopt none of them"
            if len(none) and pd.notna(none.iloc[0])
            else ""
        )
        bullets.append(
            f"Within {s.adoption_window_days} days of "
            f"{'signup' if s.cohort_by == 'signup' else 'first activity'}: "
            + ", ".join(parts)
            + tail
            + "."
        )
    sentence = _segment_sentence(t["segments"], s, noun)
    if sentence:
        bullets.append(sentence)
    life = t["lifecycle"]
    life_done = life[life["state"].eq("complete")]
    if len(done_weeks) and len(life_done):
        now = done_weeks.iloc[-1]
        last = life_done.iloc[-1]
        bullets.append(
            f"DAU/MAU was {now['dau_mau']:.0%} in the week of {now['week']:%Y-%m-%d}; in the "
            f"{s.period} of {last['period']:%Y-%m-%d}, {int(last['new']):,} {noun} were new, "
            f"{int(last['returning']):,} returning, {int(last['resurrecting']):,} resurrecting "
            f"and {int(last['dormant']):,} went dormant."
        )
    issues = [c for c in found.checks if c.status != "pass"]
    bullets.append(
        f"{len(issues)} data check(s) need attention: " + "; ".join(c.name for c in issues) + "."
        if issues
        else "All data checks pass."
    )
    return bullets


def _segment_sentence(segments: pd.DataFrame, s: CohortSettings, noun: str) -> str | None:
    """'Pro users retain better at week 4: 52% vs 38%, difference 14 points (95% CI 11–17)'."""
    rows = segments[segments["metric"] == "retention"] if len(segments) else segments
    if not len(rows):
        return None
    rows = rows.assign(
        size=rows["difference"].abs(), period=rows["detail"].str.split().str[1].astype(int)
    ).sort_values(["significant", "period", "size"], ascending=False)
    r = rows.iloc[0]
    better, worse = (
        (r["group_a"], r["group_b"]) if r["difference"] >= 0 else (r["group_b"], r["group_a"])
    )
    hi_rate, lo_rate = max(r["rate_a"], r["rate_b"]), min(r["rate_a"], r["rate_b"])
    sign = 1 if r["difference"] >= 0 else -1
    low, high = sorted((sign * r["diff_ci_low"] * 100, sign * r["diff_ci_high"] * 100))
    when = _pname(s.period, int(r["period"])).lower()
    numbers = (
        f"{hi_rate:.0%} vs {lo_rate:.0%}, difference {abs(r['difference']) * 100:.0f} points "
        f"(95% CI {low:.0f}–{high:.0f}; {_p(r['p_adjusted'], 'adjusted p')} over "
        f"{len(segments)} comparisons)"
    )
    if r["significant"]:
        return f"{str(better).capitalize()} {noun} retain better at {when}: {numbers}."
    return (
        f"No {r['segment']} retains significantly differently; the largest gap is at {when}, "
        f"{better} over {worse}: {numbers}."
    )


def _method(s: CohortSettings, at: list[int], params: CohortAdoptionParameters) -> list[str]:
    unit = "account (its users' activity pooled)" if s.unit == "account" else "user"
    activity = "any event" if not s.activity else "one of " + ", ".join(s.activity)
    mode = (
        "active in exactly that period"
        if s.retention == "on"
        else "active in that period or any later one"
    )
    items = [
        f"Unit: {unit}. Cohort: the calendar {s.period} of "
        f"{'signup' if s.cohort_by == 'signup' else 'first activity'} in {s.timezone}"
        + (f"; weeks start on {s.week_start_name}" if s.period == "week" else "")
        + ".",
        f"Retention '{s.retention}' period N: {mode}; active means at least {s.min_events} "
        f"activity event(s) ({activity}) in the period. Period 0 is the cohort size.",
        "Cells are complete, in progress (the period overlaps the end of observation; shown "
        "faded and dashed, with '…') or not observable (the period starts after it; shown '·', "
        "never 0). The average curve pools complete cells only, weighted by cohort size; the "
        "number on each point is how many cohorts are behind it.",
        f"Adoption: first use of a feature's event(s) within {s.adoption_window_days} days of the "
        "cohort anchor; only units whose window has ended count in the denominator. Time to "
        "first use is a Kaplan–Meier curve (statsmodels) that treats units still inside their "
        "window as censored. Breadth counts the features adopted; repeat use means a later "
        "day of use inside the window.",
        "Stickiness: average daily active units over the week divided by the units active in "
        "the 30 days ending on the week's last day. Lifecycle: new (first-ever activity, from "
        "the full event history), returning (active this period and the last), resurrecting "
        "(active, not last period, but before), dormant (active last period, not this one).",
    ]
    if s.segments:
        correction = "Holm" if params.correction == "holm" else "Benjamini–Hochberg"
        items.append(
            f"Segments ({', '.join(s.segments)}): retention at {s.period}s "
            f"{', '.join(map(str, at))} (complete cells pooled) and adoption rates with Wilson "
            "95% intervals; differences with Newcombe 95% intervals and two-proportion z tests; "
            f"time to adopt by log-rank; p-values adjusted by {correction} over every "
            "comparison in the readout."
        )
    items.append(
        "Where these definitions differ from PostHog's (week start, 'new', first-time cohorts, "
        "calendar periods) is listed in the workbench README."
    )
    return items


class CohortExplorer:
    """The analysts' live view: switch period, retention mode, feature and segment.

    Each (period, retention) is computed once in the engine and kept for the session.
    """

    def __init__(self, tables: dict[str, ibis.Table], params: CohortAdoptionParameters) -> None:
        self.tables, self.params = tables, params
        self._seen: dict[tuple[str, str], CohortReadout] = {}

    def choices(self) -> dict[str, list[Any]]:
        """The controls' options, the parameter file's choice first."""
        p = self.params
        return {
            "period": list(dict.fromkeys([p.period, "day", "week", "month"])),
            "retention": list(dict.fromkeys([p.retention, "on", "on_or_after"])),
            "feature": list(p.features) or ["(no features)"],
            "segment": list(p.segments) or ["(no segments)"],
        }

    def view(self, period: str, retention: str, feature: str, segment: str) -> alt.VConcatChart:
        """Heatmap, segment curves and the feature's time to first use for the picked options."""
        key = (period, retention)
        if key not in self._seen:
            self._seen[key] = cohort_readout(
                self.tables, self.params, period=period, retention=retention
            )
        result = self._seen[key]
        charts = [result.retention_heatmap()]
        for chart in (
            result.segment_curves_chart(segment if segment in self.params.segments else None),
            result.time_to_adopt_chart(feature if feature in self.params.features else None),
        ):
            if chart is not None:
                charts.append(chart)
        return alt.vconcat(*charts)


def _wilson(x: int, n: int) -> tuple[float | None, float | None]:
    if not n:
        return None, None
    low, high = proportion_confint(x, n, alpha=0.05, method="wilson")
    return float(low), float(high)


def _pname(period: str, n: int) -> str:
    return f"{period.capitalize()} {n}"


def _rate(row: dict[str, Any], side: str) -> str:
    rate, low, high = row[f"rate_{side}"], row[f"ci_low_{side}"], row[f"ci_high_{side}"]
    if rate is None or pd.isna(rate):
        return "–"
    if low is None or pd.isna(low):
        return f"{rate:.1%}"
    return f"{rate:.1%} ({low:.0%}–{high:.0%})"


def _points(d: float, lo: float, hi: float) -> str:
    return f"{d * 100:+.1f} pts ({lo * 100:+.1f} to {hi * 100:+.1f})"


def _p(p: float, name: str = "") -> str:
    prefix = f"{name} " if name else ""
    if p is None or pd.isna(p):
        return f"{prefix}–".strip()
    return f"{prefix}< 0.001" if p < 0.001 else f"{prefix}= {p:.3f}" if name else f"{p:.3f}"
