"""The experiment readout: each variant against control, trust checks first, then a decision.

Heavy work (exposures, per-user metric values, per-arm sums) runs in the engine through
`workbench.experiment_data`; the statistics come from `workbench.experiment_stats` on those
sums, so no per-user frame ever reaches pandas.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from html import escape

import altair as alt
import ibis
import numpy as np
import pandas as pd
from ibis import _

from workbench.experiment_data import (
    ExperimentDataError,
    ExperimentStats,
    MetricDefinition,
    daily_stats,
    experiment_stats,
    exposed_too_late,
)
from workbench.experiment_stats import (
    SRM_THRESHOLD,
    MetricPlan,
    SrmResult,
    assess,
    compare_to_control,
)
from workbench.parameters import ExperimentMetric, ExperimentReadoutParameters
from workbench.readout import Section
from workbench.results import AnalysisResult, Check, KeyNumber

ROLE_ORDER = {"primary": 0, "guardrail": 1, "secondary": 2}
VERDICT_BADGE = {
    "ship": "ok",
    "don't ship": "failed",
    "inconclusive": "warning",
    "invalid": "failed",
}
METRIC_COLUMNS = (
    "metric",
    "role",
    "metric_type",
    "variant",
    "control",
    "n_control",
    "n_variant",
    "mean_control",
    "mean_variant",
    "effect",
    "ci_low",
    "ci_high",
    "relative_effect",
    "relative_ci_low",
    "relative_ci_high",
    "p_value",
    "p_value_adjusted",
    "significant",
    "outcome",
    "cuped",
    "variance_reduction",
    "mean_control_unadjusted",
    "mean_variant_unadjusted",
    "effect_unadjusted",
    "ci_low_unadjusted",
    "ci_high_unadjusted",
    "relative_effect_unadjusted",
    "relative_ci_low_unadjusted",
    "relative_ci_high_unadjusted",
    "p_value_unadjusted",
    "mde",
    "mde_relative",
    "target_relative_effect",
    "n_needed",
    "n_additional",
    "direction",
    "margin",
    "margin_type",
    "ni_bound",
    "ni_p_value",
    "non_inferior",
    "cs_low",
    "cs_high",
    "relative_cs_low",
    "relative_cs_high",
    "sequential_p_value",
    "chance_to_beat_control",
    "valid",
    "reason",
    "note",
)
TREND_COLUMNS = (
    "metric",
    "variant",
    "day",
    "date",
    "n_control",
    "n_variant",
    "effect",
    "ci_low",
    "ci_high",
    "relative_effect",
    "relative_ci_low",
    "relative_ci_high",
)
SEGMENT_COLUMNS = (
    "segment_column",
    "segment",
    "metric",
    "variant",
    "n_control",
    "n_variant",
    "mean_control",
    "mean_variant",
    "effect",
    "ci_low",
    "ci_high",
    "relative_effect",
    "relative_ci_low",
    "relative_ci_high",
    "p_value",
    "valid",
    "reason",
)


# --------------------------------------------------------------------------------------------
# The decision
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """The verdict for the experiment (or one variant) and the reasons, in plain words."""

    verdict: str
    reasons: tuple[str, ...]
    variant: str | None = None


def _pct(value: float) -> str:
    return f"{value:+.1%}" if np.isfinite(value) else "not estimable"


def _interval(row: pd.Series, level: float, sequential: bool) -> str:
    kind = "always-valid" if sequential else f"{level:.0%}"
    if np.isfinite(row["relative_effect"]):
        return (
            f"{_pct(row['relative_effect'])} ({kind} CI {_pct(row['relative_ci_low'])} to "
            f"{_pct(row['relative_ci_high'])})"
        )
    return (
        f"{row['effect']:+.4g} ({kind} CI {row['ci_low']:+.4g} to {row['ci_high']:+.4g}; "
        "relative change undefined)"
    )


def _metric_reason(row: pd.Series, alpha: float, sequential: bool) -> str:
    """One sentence on one metric × variant comparison."""
    label = f"{row['metric']} ({row['role']}, {row['variant']} vs {row['control']})"
    if not row["valid"]:
        return f"{label}: not estimable — {row['reason']}."
    if row["role"] == "guardrail":
        margin = (
            f"{row['margin']:.1%}" if row["margin_type"] == "relative" else f"{row['margin']:g}"
        )
        harm = "drop" if row["direction"] == "increase" else "rise"
        bound = (
            _pct(row["ni_bound"]) if row["margin_type"] == "relative" else f"{row['ni_bound']:+.4g}"
        )
        if row["non_inferior"]:
            return f"{label}: no {harm} worse than {margin} (worst plausible change {bound})."
        if row["outcome"] == "harm":
            return f"{label}: harmed — {_interval(row, 1 - alpha, sequential)}."
        text = (
            f"{label}: a {harm} worse than the {margin} margin cannot be ruled out "
            f"(worst plausible change {bound}; observed {_interval(row, 1 - alpha, sequential)})"
        )
        if row["margin_type"] == "relative" and row.get("mean_control") == 0:
            text += (
                "; a relative margin needs a control mean other than zero: give this guardrail "
                "margin_type: absolute"
            )
        more = row.get("n_additional")
        if more is not None and np.isfinite(more) and more > 0:
            text += f"; about {more:,.0f} more users are needed to confirm the margin"
        return text + "."
    p = f"adjusted p = {row['p_value_adjusted']:.2g}"
    if row["outcome"] in ("better", "worse"):
        return f"{label}: {row['outcome']} — {_interval(row, 1 - alpha, sequential)}, {p}."
    text = f"{label}: no clear change — {_interval(row, 1 - alpha, sequential)}, {p}"
    target, mde_rel = row.get("target_relative_effect"), row.get("mde_relative")
    if target is not None and np.isfinite(target) and np.isfinite(mde_rel) and mde_rel > target:
        more = row.get("n_additional")
        extra = f"; about {more:,.0f} more users are needed" if np.isfinite(more) else ""
        text += (
            f"; underpowered: the smallest effect this sample can detect (MDE) is "
            f"{mde_rel:.1%}, above the {target:.1%} target{extra}"
        )
    return text + "."


def decide(
    metrics: pd.DataFrame,
    srm: SrmResult,
    *,
    alpha: float = 0.05,
    early: str | None = None,
    sequential: bool = False,
) -> tuple[Decision, list[Decision]]:
    """Ship / don't ship / inconclusive / invalid for the experiment and for each variant.

    A variant ships when at least one primary metric is significantly better, none is worse and
    every guardrail is shown non-inferior; it is "don't ship" when a primary is worse or a
    guardrail is harmed (its whole interval on the harmful side); "invalid" when the SRM gate
    fails or no primary comparison can be estimated; otherwise "inconclusive" (including a
    better primary with a guardrail that cannot yet be shown non-inferior). `early` (a
    sentence) turns a "ship" into "inconclusive". The reasons name every metric's result and,
    last, the sample ratio test (first, and alone, when it fails).
    """
    srm_failed = bool(np.isfinite(srm.p_value) and srm.p_value < SRM_THRESHOLD)
    srm_reason = (
        f"Sample ratio mismatch: the split of users differs from the plan (χ² p = "
        f"{srm.p_value:.2g} < {SRM_THRESHOLD}); assignment or logging is broken, so no effect "
        "can be trusted."
    )
    srm_passed = (
        f"Trust check passed: the split of users matches the plan (sample ratio test p = "
        f"{srm.p_value:.2g}; it fails below {SRM_THRESHOLD})."
        if np.isfinite(srm.p_value)
        else "Trust check not available: the sample ratio test could not be computed."
    )
    per_variant = []
    for variant, rows in metrics.groupby("variant", sort=False):
        primary = rows[rows["role"] == "primary"]
        guard = rows[rows["role"] == "guardrail"]
        ordered = rows.sort_values("role", key=lambda r: r.map(ROLE_ORDER), kind="stable")
        reasons = [_metric_reason(r, alpha, sequential) for _, r in ordered.iterrows()]
        reasons = [srm_reason, *reasons] if srm_failed else [*reasons, srm_passed]
        if srm_failed:
            verdict = "invalid"
        elif not primary["valid"].any():
            verdict = "invalid"
            reasons.insert(0, "No primary metric can be estimated for this variant.")
        elif (primary["outcome"] == "worse").any() or (guard["outcome"] == "harm").any():
            verdict = "don't ship"
        elif (primary["outcome"] == "better").any() and guard["outcome"].eq("pass").all():
            verdict = "ship"
        else:
            verdict = "inconclusive"
        if early and verdict == "ship":
            verdict = "inconclusive"
            reasons.insert(0, early + " A fixed-horizon result is not final before then.")
        per_variant.append(Decision(verdict, tuple(reasons), str(variant)))

    def every_reason(decisions: list[Decision]) -> tuple[str, ...]:
        # each variant's reasons in turn, and the trust-check sentence they share once, last
        shared = [r for d in decisions for r in d.reasons if r != srm_passed]
        return (*dict.fromkeys(shared), srm_passed)

    if srm_failed:
        overall = Decision("invalid", (srm_reason,))
    elif all(d.verdict == "invalid" for d in per_variant):
        overall = Decision("invalid", every_reason(per_variant))
    elif any(d.verdict == "ship" for d in per_variant):
        best = _best_variant(metrics, [d.variant for d in per_variant if d.verdict == "ship"])
        chosen = next(d for d in per_variant if d.variant == best)
        overall = Decision("ship", chosen.reasons, best)
    elif all(d.verdict == "don't ship" for d in per_variant):
        overall = Decision("don't ship", every_reason(per_variant))
    else:
        overall = Decision("inconclusive", every_reason(per_variant))
    if early and overall.verdict != "invalid" and early not in " ".join(overall.reasons):
        overall = Decision(overall.verdict, (early, *overall.reasons), overall.variant)
    return overall, per_variant


def _best_variant(metrics: pd.DataFrame, candidates: list[str]) -> str:
    """Among shippable variants, the largest improvement on the first primary metric it beats."""
    better = metrics[
        (metrics["role"] == "primary")
        & (metrics["outcome"] == "better")
        & metrics["variant"].isin(candidates)
    ]
    first = better[better["metric"] == better["metric"].iloc[0]]
    sign = np.where(first["direction"] == "decrease", -1.0, 1.0)
    score = sign * first["effect"].to_numpy(dtype=float)
    return str(first["variant"].iloc[int(np.argmax(score))])


# --------------------------------------------------------------------------------------------
# The result object
# --------------------------------------------------------------------------------------------


@dataclass
class DecisionBlock(Section):
    """The decision first: verdict badge, the variant it concerns and the reasons."""

    decision: Decision

    def to_html(self) -> str:
        """The decision box (every reason escaped)."""
        badge = VERDICT_BADGE.get(self.decision.verdict, "warning")
        which = f" — {escape(self.decision.variant)}" if self.decision.variant else ""
        reasons = "".join(f"<li>{escape(r)}</li>" for r in self.decision.reasons)
        return (
            '<section class="wb-readout wb-decision"><h2>Decision</h2>'
            f'<p class="wb-headline"><span class="wb-badge wb-{badge}">'
            f"{escape(self.decision.verdict)}</span>{which}</p><ul>{reasons}</ul></section>"
        )


@dataclass
class ExperimentReadout(AnalysisResult):
    """Each variant against control: SRM, metric comparisons, decision, time and segment views."""

    decision: Decision = field(default_factory=lambda: Decision("invalid", ()))
    variant_decisions: list[Decision] = field(default_factory=list)
    alpha: float = 0.05
    sequential: bool = False

    @property
    def metric_names(self) -> list[str]:
        """Metrics in the order of the parameter file."""
        return list(dict.fromkeys(self.tables["metrics"]["metric"]))

    @property
    def primary_metric(self) -> str:
        """The first primary metric (the first metric when none is primary)."""
        m = self.tables["metrics"]
        primary = m.loc[m["role"] == "primary", "metric"]
        return str(primary.iloc[0]) if len(primary) else self.metric_names[0]

    @property
    def metrics_primary_first(self) -> list[str]:
        """Metric names with the first primary metric first (the default of a metric control)."""
        first = self.primary_metric
        return [first, *[name for name in self.metric_names if name != first]]

    def forest_omitted(self) -> list[str]:
        """The comparisons the forest plot cannot show, each with why."""
        m = self.tables["metrics"]
        missing = m[~np.isfinite(m["relative_effect"].astype(float))]
        out = []
        for r in missing.itertuples():
            if not r.valid:
                why = f"not estimable: {r.reason}"
            else:
                why = (
                    f"control mean is zero, so no relative change (absolute {r.effect:+.4g}, "
                    f"CI {r.ci_low:+.4g} to {r.ci_high:+.4g})"
                )
            out.append(f"{r.metric} · {r.variant}: {why}")
        return out

    @property
    def variant_names(self) -> list[str]:
        """Variants compared with control."""
        return list(dict.fromkeys(self.tables["metrics"]["variant"]))

    @property
    def segment_columns(self) -> list[str]:
        """Segment columns broken down in the segment view."""
        seg = self.tables.get("segments")
        return [] if seg is None or seg.empty else list(dict.fromkeys(seg["segment_column"]))

    def decision_block(self) -> DecisionBlock:
        """The decision section, shown before anything else."""
        return DecisionBlock(self.decision)

    def forest_chart(self) -> alt.Chart:
        """Relative effect with its CI for every metric × variant, with zero marked."""
        m = self.tables["metrics"]
        frame = m[np.isfinite(m["relative_effect"].astype(float))].copy()
        frame["comparison"] = frame["metric"] + " · " + frame["variant"]
        frame["label"] = frame["metric"] + " (" + frame["role"] + ")"
        order = list(dict.fromkeys(frame["comparison"]))
        base = alt.Chart(frame).encode(
            y=alt.Y("comparison:N", sort=order, title=None),
        )
        interval = "Always-valid CI" if self.sequential else f"{1 - self.alpha:.0%} CI"
        tooltip = [
            alt.Tooltip("metric:N"),
            alt.Tooltip("role:N"),
            alt.Tooltip("variant:N"),
            alt.Tooltip("relative_effect:Q", title="Relative effect", format="+.2%"),
            alt.Tooltip("relative_ci_low:Q", title=f"{interval} low", format="+.2%"),
            alt.Tooltip("relative_ci_high:Q", title=f"{interval} high", format="+.2%"),
            alt.Tooltip("p_value_adjusted:Q", title="Adjusted p", format=".3g"),
            alt.Tooltip("outcome:N"),
        ]
        bars = base.mark_rule(strokeWidth=2).encode(
            x=alt.X(
                "relative_ci_low:Q",
                title=f"Relative effect vs control ({interval})",
                axis=alt.Axis(format="+%"),
            ),
            x2="relative_ci_high:Q",
            color=alt.Color("outcome:N", title="Outcome", scale=_outcome_scale()),
            tooltip=tooltip,
        )
        points = base.mark_point(filled=True, size=70).encode(
            x="relative_effect:Q",
            color=alt.Color("outcome:N", scale=_outcome_scale()),
            tooltip=tooltip,
        )
        zero = (
            alt.Chart(pd.DataFrame({"zero": [0.0]})).mark_rule(color="#9aa5b1").encode(x="zero:Q")
        )
        guard = frame[frame["role"] == "guardrail"].copy()
        # an absolute margin sits at margin / |control mean| on this relative axis
        scale = np.where(guard["margin_type"] == "relative", 1.0, 1.0 / guard["mean_control"].abs())
        guard["margin_at"] = (
            np.where(guard["direction"] == "decrease", 1, -1) * guard["margin"] * scale
        )
        margins = (
            alt.Chart(guard)
            .mark_tick(color="#a4262c", thickness=2, size=18)
            .encode(
                x="margin_at:Q",
                y=alt.Y("comparison:N", sort=order),
                tooltip=[
                    alt.Tooltip("metric:N"),
                    alt.Tooltip("margin_at:Q", title="Non-inferiority margin", format="+.1%"),
                ],
            )
        )
        omitted = self.forest_omitted()
        title = alt.TitleParams(
            "Effects by metric and variant",
            subtitle=["Not shown: " + "; ".join(omitted)] if omitted else [],
        )
        return alt.layer(zero, margins, bars, points, title=title).properties(height=alt.Step(28))

    def time_chart(self, metric: str | None = None, variant: str | None = None) -> alt.Chart:
        """Cumulative relative effect by day since the start, with its CI band."""
        daily = self.tables["daily"]
        shown = list(dict.fromkeys(daily["metric"]))
        metric = metric if metric in shown else shown[0]
        frame = daily[daily["metric"] == metric]
        if variant is not None:
            frame = frame[frame["variant"] == variant]
        frame = frame[np.isfinite(frame["relative_effect"].astype(float))].copy()
        frame["date"] = pd.to_datetime(frame["date"])
        tooltip = [
            alt.Tooltip("date:T"),
            alt.Tooltip("variant:N"),
            alt.Tooltip("relative_effect:Q", title="Cumulative effect", format="+.2%"),
            alt.Tooltip("relative_ci_low:Q", title="CI low", format="+.2%"),
            alt.Tooltip("relative_ci_high:Q", title="CI high", format="+.2%"),
            alt.Tooltip("n_variant:Q", title="Users in variant", format=","),
        ]
        base = alt.Chart(frame).encode(
            x=alt.X("date:T", title=None), color=alt.Color("variant:N", title=None)
        )
        band = base.mark_area(opacity=0.18).encode(
            y=alt.Y("relative_ci_low:Q", title="Effect vs control", axis=alt.Axis(format="+%")),
            y2="relative_ci_high:Q",
        )
        line = base.mark_line().encode(y="relative_effect:Q", tooltip=tooltip)
        zero = (
            alt.Chart(pd.DataFrame({"zero": [0.0]})).mark_rule(color="#9aa5b1").encode(y="zero:Q")
        )
        return alt.layer(band, zero, line, title=f"Cumulative effect on {metric} by day")

    def segment_chart(
        self, segment: str | None = None, metric: str | None = None, variant: str | None = None
    ) -> alt.Chart | None:
        """Relative effect with CI per segment value (exploratory), for one metric."""
        seg = self.tables.get("segments")
        if seg is None or seg.empty:
            return None
        segment = segment or self.segment_columns[0]
        metric = metric or self.primary_metric
        frame = seg[(seg["segment_column"] == segment) & (seg["metric"] == metric)]
        if variant is not None:
            frame = frame[frame["variant"] == variant]
        frame = frame[np.isfinite(frame["relative_effect"].astype(float))].copy()
        order = list(dict.fromkeys(frame["segment"]))
        tooltip = [
            alt.Tooltip("segment:N", title=segment),
            alt.Tooltip("variant:N"),
            alt.Tooltip("relative_effect:Q", title="Relative effect", format="+.2%"),
            alt.Tooltip("relative_ci_low:Q", title="CI low", format="+.2%"),
            alt.Tooltip("relative_ci_high:Q", title="CI high", format="+.2%"),
            alt.Tooltip("n_variant:Q", title="Users in variant", format=","),
            alt.Tooltip("n_control:Q", title="Users in control", format=","),
        ]
        base = alt.Chart(frame).encode(
            y=alt.Y("segment:N", sort=order, title=segment),
            color=alt.Color("variant:N", title=None),
            yOffset="variant:N",
        )
        rules = base.mark_rule(strokeWidth=2).encode(
            x=alt.X(
                "relative_ci_low:Q",
                title=f"Relative effect on {metric} (unadjusted CI)",
                axis=alt.Axis(format="+%"),
            ),
            x2="relative_ci_high:Q",
            tooltip=tooltip,
        )
        points = base.mark_point(filled=True, size=60).encode(
            x="relative_effect:Q", tooltip=tooltip
        )
        zero = (
            alt.Chart(pd.DataFrame({"zero": [0.0]})).mark_rule(color="#9aa5b1").encode(x="zero:Q")
        )
        return alt.layer(
            zero, rules, points, title=f"{metric} by {segment} (exploratory)"
        ).properties(height=alt.Step(30))

    def explore_view(
        self, metric: str | None = None, variant: str | None = None, segment: str | None = None
    ) -> alt.VConcatChart | alt.LayerChart:
        """The analyst's view: time and segment charts for one metric, variant and segment."""
        time = self.time_chart(metric, variant)
        seg = self.segment_chart(segment, metric, variant)
        return time if seg is None else alt.vconcat(time, seg)

    def results_table(self) -> pd.DataFrame:
        """The results table a PM reads: one row per metric × variant."""
        m = self.tables["metrics"]
        interval = "always-valid CI" if self.sequential else f"{1 - self.alpha:.0%} CI"
        out = pd.DataFrame(
            {
                "metric": m["metric"],
                "role": m["role"],
                "variant": m["variant"],
                "users (control / variant)": [
                    f"{c:,.0f} / {v:,.0f}"
                    for c, v in zip(m["n_control"], m["n_variant"], strict=True)
                ],
                "control": m["mean_control"],
                "variant mean": m["mean_variant"],
                "relative effect": [_pct(v) for v in m["relative_effect"]],
                interval: [
                    f"{_pct(lo)} to {_pct(hi)}"
                    for lo, hi in zip(m["relative_ci_low"], m["relative_ci_high"], strict=True)
                ],
                "p": m["p_value"],
                "adjusted p": m["p_value_adjusted"],
                "CUPED variance reduction": [
                    f"{v:.0%}" if np.isfinite(v) else "–" for v in m["variance_reduction"]
                ],
                "without CUPED": [
                    f"{_pct(e)} ({_pct(lo)} to {_pct(hi)})" if cuped else "–"
                    for e, lo, hi, cuped in zip(
                        m["relative_effect_unadjusted"],
                        m["relative_ci_low_unadjusted"],
                        m["relative_ci_high_unadjusted"],
                        m["cuped"],
                        strict=True,
                    )
                ],
                "MDE (power)": [f"{v:.1%}" if np.isfinite(v) else "–" for v in m["mde_relative"]],
                "users still needed": [
                    f"{v:,.0f}" if np.isfinite(v) and v > 0 else "–" for v in m["n_additional"]
                ],
                "guardrail (margin; worst plausible)": [
                    _guardrail_cell(r) for _, r in m.iterrows()
                ],
                "outcome": m["outcome"],
            }
        )
        if "chance_to_beat_control" in m:
            out["chance to beat control (Bayesian)"] = [
                f"{v:.0%}" if np.isfinite(v) else "–" for v in m["chance_to_beat_control"]
            ]
        return out

    def results_json(self) -> dict[str, list[dict]]:
        """`results` of summary.json: srm, metrics, decision, daily and segments."""
        out = super().results_json()
        decisions = [self.decision, *self.variant_decisions]
        out["decision"] = [
            {
                "scope": "experiment" if i == 0 else "variant",
                "variant": d.variant,
                "verdict": d.verdict,
                "reasons": list(d.reasons),
            }
            for i, d in enumerate(decisions)
        ]
        return out


def _guardrail_cell(row: pd.Series) -> str:
    if row["role"] != "guardrail" or not np.isfinite(row["margin"]):
        return "–"
    if row["margin_type"] == "relative":
        sign = "−" if row["direction"] == "increase" else "+"
        return f"{sign}{row['margin']:.1%}; {_pct(row['ni_bound'])}"
    return f"{row['margin']:g} absolute; {row['ni_bound']:+.4g}"


def _outcome_scale() -> alt.Scale:
    return alt.Scale(
        domain=["better", "worse", "inconclusive", "pass", "fail", "harm", "invalid"],
        range=["#3f9a6b", "#b04a6f", "#8c8c8c", "#2f5d8a", "#e07b39", "#a4262c", "#c2c2c2"],
    )


# --------------------------------------------------------------------------------------------
# The analysis
# --------------------------------------------------------------------------------------------


def metric_definition(metric: ExperimentMetric) -> MetricDefinition:
    """The engine-side definition of a metric from its parameters."""
    return MetricDefinition(
        name=metric.name,
        type=metric.type,
        events=tuple(metric.events),
        value=metric.value,
        denominator_events=tuple(metric.denominator_events),
        denominator_value=metric.denominator_value,
        window_days=metric.window_days,
        covariate_days=metric.covariate_days,
        winsorize=metric.winsorize,
    )


def metric_plan(metric: ExperimentMetric) -> MetricPlan:
    """How a metric is judged (role, direction, margin)."""
    return MetricPlan(metric.role, metric.direction, metric.margin, metric.margin_type)


def _data_end(params: ExperimentReadoutParameters) -> pd.Timestamp | None:
    """Exclusive end of the data: the day after window.end, at midnight in the timezone."""
    if params.window.end is None:
        return None
    day = pd.Timestamp(params.window.end + dt.timedelta(days=1))
    return day.tz_localize(params.timezone).tz_convert("UTC")


def _data_start(params: ExperimentReadoutParameters) -> pd.Timestamp | None:
    if params.window.start is None:
        return None
    return pd.Timestamp(params.window.start).tz_localize(params.timezone).tz_convert("UTC")


def _check_variants(stats: ExperimentStats, params: ExperimentReadoutParameters) -> None:
    """Planned and observed variants must agree; every problem in one message."""
    seen = set(stats.arms["variant"].astype(str))
    planned = set(params.variants)
    problems = []
    missing = sorted(planned - seen)
    extra = sorted(seen - planned)
    if params.control not in seen:
        problems.append(f"control {params.control!r} has no exposed users")
    if missing:
        problems.append(f"planned variant(s) {missing} have no exposed users")
    if extra:
        problems.append(f"the data has variant(s) {extra} that are not in 'variants'")
    if problems:
        raise ExperimentDataError(
            f"experiment {params.experiment!r}: "
            + "; ".join(problems)
            + f" (data has {sorted(seen)})"
        )


def experiment_readout(
    tables: dict[str, ibis.Table], params: ExperimentReadoutParameters
) -> ExperimentReadout:
    """Read out an experiment: trust checks, each variant against control, and a decision."""
    assignments = tables["assignments"]
    events = tables["events"]
    end = _data_end(params)
    definitions = [metric_definition(m) for m in params.metrics]
    plans = {m.name: metric_plan(m) for m in params.metrics}
    stats = experiment_stats(
        assignments,
        events,
        params.experiment,
        definitions,
        end=end,
        segments=params.segments,
        top_k=params.segment_top,
        first_times=[d.name for d in _time_view_metrics(params, definitions)],
    )
    _check_variants(stats, params)

    srm = stats.srm(params.variants)
    srm_table = _srm_table(stats, params, srm)
    planned_n = _planned_pairs(params) if params.inference == "sequential" else None
    targets = {m.name: m.target_effect or params.target_effect for m in params.metrics}
    compared = compare_to_control(
        stats.stats,
        control=params.control,
        alpha=params.alpha,
        power=params.power,
        planned_n=planned_n,
        target_effect=targets,
    )
    sequential = params.inference == "sequential"
    if sequential:
        compared = _always_valid(compared)
    assessed = assess(
        compared,
        plans,
        correction=params.correction,
        alpha=params.alpha,
        chance_to_beat=params.chance_to_beat,
        power=params.power,
    )
    if sequential:
        assessed = _sequential_guardrails(assessed)
    assessed = _flag_guardrail_harm(assessed)
    metrics = assessed[[c for c in METRIC_COLUMNS if c in assessed.columns]].reset_index(drop=True)

    reach = _data_reach(events, end)
    last_day = _last_day(reach, end, params.timezone)
    early = _early_note(params, last_day)
    overall, per_variant = decide(
        metrics, srm, alpha=params.alpha, early=early, sequential=sequential
    )

    late: dict[float, int] = {}
    try:
        if reach is not None and stats.prepared is not None:
            windows = [d.window_days for d in definitions if d.window_days is not None]
            late = exposed_too_late(stats.prepared, reach, windows)
        daily = _trend(assignments, events, params, definitions, stats, end)
    finally:
        if stats.prepared is not None:
            stats.prepared.release()
    segments = _segments(stats, params)
    windows = _window_checks(late, stats, definitions, reach, params.timezone)
    checks = _checks(
        stats, params, srm, srm_table, metrics, events, definitions, end, early, windows
    )
    window = {
        "start": _iso(stats.first_exposure),
        "end": last_day.isoformat() if last_day is not None else None,
    }
    return ExperimentReadout(
        headline=_headline(overall, metrics, params),
        bullets=_bullets(overall, srm_table, srm, metrics, stats),
        key_numbers=_key_numbers(metrics, srm_table, srm),
        checks=checks,
        method=_method(params, stats, segments),
        tables={"srm": srm_table, "metrics": metrics, "daily": daily, "segments": segments},
        data_window=window,
        decision=overall,
        variant_decisions=per_variant,
        alpha=params.alpha,
        sequential=sequential,
    )


def _planned_pairs(params: ExperimentReadoutParameters) -> dict[str, float]:
    """Planned users in each variant-vs-control comparison (tuning of the confidence sequence)."""
    control = params.variants[params.control]
    return {
        v: params.planned_users * (share + control)
        for v, share in params.variants.items()
        if v != params.control
    }


def _always_valid(compared: pd.DataFrame) -> pd.DataFrame:
    """Sequential mode: intervals and p-values become the always-valid ones."""
    out = compared.copy()
    out["p_value"] = out["sequential_p_value"]
    for side in ("low", "high"):
        out[f"ci_{side}"] = out[f"cs_{side}"]
        out[f"relative_ci_{side}"] = out[f"relative_cs_{side}"]
    return out


def _sequential_guardrails(assessed: pd.DataFrame) -> pd.DataFrame:
    """Sequential mode: a guardrail passes when its always-valid bound stays within the margin."""
    out = assessed.copy()
    guard = (out["role"] == "guardrail") & out["valid"]
    relative = out["margin_type"] == "relative"
    sign = np.where(out["direction"] == "decrease", -1.0, 1.0)
    low = np.where(relative, out["relative_cs_low"], out["cs_low"])
    high = np.where(relative, out["relative_cs_high"], out["cs_high"])
    bound = np.where(sign > 0, low, high)
    passed = guard & (sign * bound > -out["margin"].to_numpy(dtype=float))
    out.loc[guard, "ni_bound"] = bound[guard]
    out.loc[guard, "ni_p_value"] = np.nan
    out.loc[guard, "non_inferior"] = passed[guard]
    out.loc[guard, "outcome"] = np.where(passed[guard], "pass", "fail")
    return out


def _flag_guardrail_harm(assessed: pd.DataFrame) -> pd.DataFrame:
    """A guardrail whose whole interval lies on the harmful side is 'harmed', not just unproven."""
    out = assessed.copy()
    sign = np.where(out["direction"] == "decrease", -1.0, 1.0)
    worst_good = np.where(sign > 0, out["ci_high"], out["ci_low"]).astype(float)
    harmed = (out["outcome"] == "fail") & (sign * worst_good < 0)
    out.loc[harmed, "outcome"] = "harm"
    return out


def _srm_table(
    stats: ExperimentStats, params: ExperimentReadoutParameters, srm: SrmResult
) -> pd.DataFrame:
    counts = stats.arms.set_index("variant")["users"]
    total = int(counts.sum())
    rows = []
    for variant, share in params.variants.items():
        users = int(counts.get(variant, 0))
        rows.append(
            {
                "variant": variant,
                "users": users,
                "planned_share": share,
                "observed_share": users / total if total else math.nan,
                "expected_users": share * total,
                "chi2": srm.chi2,
                "p_value": srm.p_value,
            }
        )
    return pd.DataFrame(rows)


def _data_reach(events: ibis.Table, end: pd.Timestamp | None) -> pd.Timestamp | None:
    """Where the data stops (UTC): the window's end, or the last event when the log stops
    before it (a readout refreshed mid-experiment with a window end still in the future)."""
    last = events.aggregate(last=_.timestamp.max()).execute()["last"].iloc[0]
    if pd.isna(last):
        return end
    last = pd.Timestamp(last)
    last = last.tz_localize("UTC") if last.tzinfo is None else last.tz_convert("UTC")
    return end if end is not None and last >= end else last


def _last_day(reach: pd.Timestamp | None, end: pd.Timestamp | None, zone: str) -> dt.date | None:
    """The last day with data, in the readout's timezone: window.end, or the last event's day."""
    if reach is None:
        return None
    if end is not None and reach >= end:
        return (end.tz_convert(zone) - pd.Timedelta(days=1)).date()
    return reach.tz_convert(zone).date()


def _window_checks(
    late: dict[float, int],
    stats: ExperimentStats,
    definitions: list[MetricDefinition],
    reach: pd.Timestamp | None,
    zone: str,
) -> list[Check]:
    """Attribution windows cut short by the end of the data, one check per window length."""
    exposed = int(stats.arms["users"].sum())
    checks = []
    for days, count in sorted(late.items(), reverse=True):
        names = ", ".join(d.name for d in definitions if d.window_days == days)
        when = reach.tz_convert(zone).strftime("%Y-%m-%d %H:%M") if reach is not None else "?"
        if count:
            detail = (
                f"{count:,} of {exposed:,} exposed users ({count / max(exposed, 1):.1%}) were "
                f"exposed less than {days:g} days before the data ends ({when} {zone}): their "
                f"windows for {names} are cut short, so those metrics count fewer days for them "
                "(the comparison stays fair while exposure is balanced over time; wait for the "
                "windows to close before a final readout)"
            )
        else:
            detail = (
                f"every exposed user's {days:g}-day window ({names}) closes before the data ends"
            )
        checks.append(
            Check(f"{days:g}-day attribution windows", "warn" if count else "pass", detail)
        )
    return checks


def _early_note(params: ExperimentReadoutParameters, last_day: dt.date | None) -> str | None:
    if params.inference != "fixed" or params.planned_end is None or last_day is None:
        return None
    if last_day >= params.planned_end:
        return None
    return (
        f"Early look: the data ends {last_day.isoformat()}, before the planned end "
        f"{params.planned_end.isoformat()}; repeated fixed-horizon looks inflate false positives "
        "(use inference: sequential for readouts refreshed while the experiment runs)."
    )


def _time_view_metrics(
    params: ExperimentReadoutParameters, definitions: list[MetricDefinition]
) -> list[MetricDefinition]:
    """The metrics the cumulative time view shows: the primary ones, or all."""
    roles = {m.name: m.role for m in params.metrics}
    return [d for d in definitions if params.time_view == "all" or roles[d.name] == "primary"]


def _trend(
    assignments: ibis.Table,
    events: ibis.Table,
    params: ExperimentReadoutParameters,
    definitions: list[MetricDefinition],
    stats: ExperimentStats,
    end: pd.Timestamp | None,
) -> pd.DataFrame:
    """Cumulative effect as of each day since the start (unadjusted, no CUPED)."""
    shown = _time_view_metrics(params, definitions)
    by_day = daily_stats(
        assignments,
        events,
        params.experiment,
        shown,
        start=_data_start(params),
        end=end,
        caps=stats.caps,
        prepared=stats.prepared,
    )
    compared = compare_to_control(
        by_day,
        control=params.control,
        alpha=params.alpha,
        keys=("metric", "day", "date"),
        cuped=False,
        planned_n=_planned_pairs(params) if params.inference == "sequential" else None,
    )
    if params.inference == "sequential":
        compared = _always_valid(compared)
    return compared[list(TREND_COLUMNS)].reset_index(drop=True)


def _segments(stats: ExperimentStats, params: ExperimentReadoutParameters) -> pd.DataFrame:
    """Each variant against control within the top segment values (exploratory, unadjusted)."""
    if stats.segments is None:
        return pd.DataFrame(columns=list(SEGMENT_COLUMNS))
    compared = compare_to_control(
        stats.segments,
        control=params.control,
        alpha=params.alpha,
        keys=("segment_column", "metric", "segment"),
        cuped=False,
    )
    return compared[list(SEGMENT_COLUMNS)].reset_index(drop=True)


def _checks(
    stats: ExperimentStats,
    params: ExperimentReadoutParameters,
    srm: SrmResult,
    srm_table: pd.DataFrame,
    metrics: pd.DataFrame,
    events: ibis.Table,
    definitions: list[MetricDefinition],
    end: pd.Timestamp | None,
    early: str | None,
    windows: list[Check],
) -> list[Check]:
    """The data checks: SRM and exposures first, then `windows` (attribution windows cut short
    by the end of the data), users in two variants, missing and negative values, small arms
    and comparisons that cannot be estimated, an early look."""
    counts = ", ".join(
        f"{r.variant} {r.users:,} ({r.observed_share:.2%} vs planned {r.planned_share:.2%})"
        for r in srm_table.itertuples()
    )
    srm_ok = not (np.isfinite(srm.p_value) and srm.p_value < SRM_THRESHOLD)
    checks = [
        Check(
            "sample ratio mismatch",
            "pass" if srm_ok else "fail",
            f"χ² = {srm.chi2:.2f}, p = {srm.p_value:.3g} (fails below {SRM_THRESHOLD}): {counts}",
        ),
        Check("exposed users", "pass", f"{int(stats.arms['users'].sum()):,} users: {counts}"),
        *windows,
    ]
    total = int(stats.arms["users"].sum()) + stats.multi_variant_users
    multi = stats.multi_variant_users
    checks.append(
        Check(
            "users in more than one variant",
            "warn" if multi else "pass",
            f"{multi:,} of {total:,} assigned users ({multi / max(total, 1):.2%}) saw more "
            "than one variant; they are left out of every metric"
            if multi
            else "every assigned user saw exactly one variant",
        )
    )
    silent = stats.users_without_events
    exposed = int(stats.arms["users"].sum())
    checks.append(
        Check(
            "exposed users without events",
            "warn" if exposed and silent / exposed > 0.5 else "pass",
            f"{silent:,} of {exposed:,} exposed users ({silent / max(exposed, 1):.1%}) have "
            "none of the metrics' events inside a metric's window after exposure; they count "
            "with zeros",
        )
    )
    totals = stats.stats.groupby("metric", sort=False)[["sum_y", "sum_y2"]].sum()
    for d in definitions:
        if totals.loc[d.name, "sum_y2"] == 0:
            checks.append(
                Check(
                    f"metric {d.name}: no data",
                    "fail",
                    f"no exposed user has {', '.join(d.events)}"
                    + (f" with a non-zero {d.value}" if d.value else "")
                    + " in the window after exposure",
                )
            )
    checks += _missing_value_checks(events, definitions, end)
    checks += _negative_value_checks(events, definitions, end)
    small = int(stats.arms["users"].min())
    if small < 100:
        checks.append(Check("small sample", "warn", f"the smallest arm has {small:,} users"))
    for row in metrics[~metrics["valid"]].itertuples():
        checks.append(
            Check(
                f"{row.metric} · {row.variant}: not estimable",
                "warn",
                f"{row.reason}; no effect is reported",
            )
        )
    if early:
        checks.append(Check("fixed horizon before the planned end", "warn", early))
    return checks


def _summed_properties(
    definitions: list[MetricDefinition],
) -> list[tuple[int, str, MetricDefinition, tuple[str, ...], str]]:
    """Every event property a metric sums: (metric index, "value" or "denominator", metric,
    its events, property)."""
    return [
        (i, part, d, names, prop)
        for i, d in enumerate(definitions)
        for part, names, prop in (
            ("value", d.events, d.value),
            ("denominator", d.denominator_events, d.denominator_value),
        )
        if prop
    ]


def _missing_value_checks(
    events: ibis.Table, definitions: list[MetricDefinition], end: pd.Timestamp | None
) -> list[Check]:
    """Metric events without the property a metric sums: they count as 0, so say how many."""
    parts = _summed_properties(definitions)
    if not parts:
        return []
    names = sorted({e for part in parts for e in part[3]})
    rows = events.filter(events.event.isin(names))
    if end is not None:
        rows = rows.filter(rows.timestamp < ibis.literal(end.to_pydatetime()))
    wanted = {}
    for i, (_index, _part, _d, names_i, prop) in enumerate(parts):
        mine = rows.event.isin(list(names_i))
        wanted[f"all_{i}"] = mine.cast("int64").sum()
        wanted[f"null_{i}"] = (mine & rows[prop].isnull()).cast("int64").sum()
    found = rows.aggregate(**wanted).execute().iloc[0].fillna(0)
    checks = []
    for i, (_index, _part, d, names_i, prop) in enumerate(parts):
        missing, total = int(found[f"null_{i}"]), int(found[f"all_{i}"])
        if missing:
            checks.append(
                Check(
                    f"metric {d.name}: missing {prop}",
                    "warn",
                    f"{missing:,} of {total:,} {', '.join(names_i)} events "
                    f"({missing / total:.1%}) have no {prop}; they count as 0",
                )
            )
    return checks


def _negative_value_checks(
    events: ibis.Table, definitions: list[MetricDefinition], end: pd.Timestamp | None
) -> list[Check]:
    """Negative property values where a metric sums them (refunds?) or divides by them."""
    wanted, props = {}, set()
    for i, part, _d, names, prop in _summed_properties(definitions):
        rows = events.event.isin(list(names)) & (events[prop] < 0)
        wanted[f"{part}__{i}"] = rows.cast("int64").sum()
        props.add(prop)
    if not wanted:
        return []
    # Only rows with a negative value can count: filtering on that first lets the engine skip
    # every block whose statistics say the property is never negative (all of it, usually).
    negative = ibis.or_(*[events[p] < 0 for p in sorted(props)])
    events = events.filter(negative)
    if end is not None:
        events = events.filter(events.timestamp < ibis.literal(end.to_pydatetime()))
    found = events.aggregate(**wanted).execute().iloc[0].fillna(0)
    checks = []
    for key, count in found.items():
        if not count:
            continue
        part, i = key.split("__")
        d = definitions[int(i)]
        prop = d.value if part == "value" else d.denominator_value
        status = "fail" if part == "denominator" else "warn"
        checks.append(
            Check(
                f"metric {d.name}: negative {prop}",
                status,
                f"{int(count):,} events in the source (before the end of the window, any user) "
                f"have a negative {prop}; those inside an exposed user's window are summed as "
                "they are"
                + (" — a ratio's denominator should not be negative" if status == "fail" else ""),
            )
        )
    return checks


def _headline(
    decision: Decision, metrics: pd.DataFrame, params: ExperimentReadoutParameters
) -> str:
    verdict = decision.verdict.capitalize()
    if decision.verdict == "invalid":
        return f"{verdict}: {decision.reasons[0]}" if decision.reasons else f"{verdict}."
    primary = metrics[(metrics["role"] == "primary") & metrics["valid"]]
    if decision.variant is not None:
        primary = primary[primary["variant"] == decision.variant]
    if primary.empty:
        return f"{verdict}: no primary metric can be estimated."
    row = primary.iloc[0]
    interval = "always-valid" if params.inference == "sequential" else f"{1 - params.alpha:.0%}"
    effect = (
        f"{_pct(row['relative_effect'])} ({interval} CI {_pct(row['relative_ci_low'])} to "
        f"{_pct(row['relative_ci_high'])})"
        if np.isfinite(row["relative_effect"])
        else f"{row['effect']:+.4g} (absolute)"
    )
    who = f"{decision.variant}" if decision.variant else f"{row['variant']}"
    return f"{verdict}: {row['metric']} {effect} for {who} vs {params.control}."


def _bullets(
    decision: Decision,
    srm_table: pd.DataFrame,
    srm: SrmResult,
    metrics: pd.DataFrame,
    stats: ExperimentStats,
) -> list[str]:
    users = ", ".join(f"{r.variant} {r.users:,}" for r in srm_table.itertuples())
    bullets = [f"Exposed users: {users}; sample ratio test p = {srm.p_value:.3g}."]
    guard = metrics[metrics["role"] == "guardrail"]
    if len(guard):
        held = int(guard["non_inferior"].sum())
        bullets.append(
            f"Guardrails: {held} of {len(guard)} shown non-inferior within their margins."
        )
    cuped = metrics[metrics["cuped"]]
    if len(cuped):
        best = cuped.loc[cuped["variance_reduction"].idxmax()]
        bullets.append(
            f"CUPED reduced the variance of {len(cuped)} comparison(s), up to "
            f"{best['variance_reduction']:.0%} ({best['metric']})."
        )
    underpowered = metrics[
        metrics["valid"] & (metrics["role"] != "guardrail") & (metrics["n_additional"] > 0)
    ]
    if len(underpowered):
        bullets.append(
            f"{len(underpowered)} comparison(s) cannot detect the target effect yet: "
            + ", ".join(f"{r.metric} ({r.variant})" for r in underpowered.itertuples())
            + "."
        )
    if decision.verdict == "invalid" and decision.reasons:
        bullets.append(decision.reasons[0])
    return bullets[:5]


def _key_numbers(metrics: pd.DataFrame, srm_table: pd.DataFrame, srm: SrmResult) -> list[KeyNumber]:
    numbers = [KeyNumber("Exposed users", int(srm_table["users"].sum()), "users")]
    for row in metrics[metrics["role"] == "primary"].itertuples():
        ok = row.valid and np.isfinite(row.relative_effect)
        numbers.append(
            KeyNumber(
                f"{row.metric}: {row.variant} vs {row.control}",
                float(row.relative_effect) if ok else None,
                "share",
                float(row.relative_ci_low) if ok else None,
                float(row.relative_ci_high) if ok else None,
            )
        )
    numbers.append(KeyNumber("Sample ratio test p-value", float(srm.p_value), ""))
    return numbers[:6]


def _method(
    params: ExperimentReadoutParameters, stats: ExperimentStats, segments: pd.DataFrame
) -> list[str]:
    level = f"{1 - params.alpha:.0%}"
    items = [
        f"Exposure: a user's first assignment to experiment '{params.experiment}'; users assigned "
        "to more than one variant are left out. Every exposed user counts, with zeros when they "
        "have no events.",
        "Metrics per user from events in the attribution window after exposure: "
        + "; ".join(_describe_metric(m) for m in params.metrics)
        + ".",
        "Tests: Welch's t-test (Welch–Satterthwaite degrees of freedom) for means; a z-test with "
        "variance p(1−p) per arm for conversions; the delta method for ratio metrics. Relative "
        "effects are (variant − control) / |control| with a delta-method interval (for a "
        "negative control mean too, a negative change means a decrease). All statistics come from "
        "per-arm sums computed in the engine.",
        f"Sample ratio mismatch: χ² goodness of fit against the planned split "
        f"{_split(params.variants)}; p < {SRM_THRESHOLD} fails the trust gate and the decision "
        "becomes 'invalid'.",
        {
            "bh": "Multiple comparisons: Benjamini–Hochberg adjusted p-values",
            "holm": "Multiple comparisons: Holm adjusted p-values",
            "none": "Multiple comparisons: no correction",
        }[params.correction]
        + f" across primary and secondary metrics × variants; significant means adjusted p < "
        f"{params.alpha:g}. Guardrails are one-sided non-inferiority tests at α = "
        f"{params.alpha:g} against their margins, outside the correction family.",
        "Decision: ship when a primary metric is significantly better, none is worse and every "
        "guardrail is shown non-inferior; don't ship when a primary metric is significantly "
        "worse or a guardrail is harmed (its whole interval on the harmful side); otherwise "
        "inconclusive (a guardrail that cannot yet be shown non-inferior blocks shipping).",
    ]
    cuped = [m for m in params.metrics if m.covariate_days]
    if cuped:
        items.append(
            "CUPED: each of "
            + ", ".join(
                f"{m.name} (same metric over {m.covariate_days:g} days before exposure)"
                for m in cuped
            )
            + " is adjusted with θ pooled across arms (equal to OLS of the metric on variant and "
            "covariate); unadjusted results are kept alongside and the variance reduction is shown."
        )
    wins = [m for m in params.metrics if m.winsorize]
    if wins:
        caps = "; ".join(
            f"{m.name} at its {m.winsorize:.1%} percentile"
            + (
                f" ({stats.caps[m.name]['value']:.4g})"
                if "value" in stats.caps.get(m.name, {})
                else ""
            )
            for m in wins
        )
        items.append(f"Winsorization: per-user values capped, percentile pooled over arms: {caps}.")
    if params.inference == "sequential":
        items.append(
            "Sequential inference: intervals and p-values are always valid (asymptotic confidence "
            f"sequence, normal mixture tuned for {params.planned_users:,} planned users), so the "
            "readout can be refreshed while the experiment runs."
        )
    else:
        items.append(
            f"Fixed-horizon inference: {level} confidence intervals, valid for one look at the "
            "planned end" + (f" ({params.planned_end})" if params.planned_end else "") + "."
        )
    targets = {
        m.target_effect or params.target_effect for m in params.metrics if m.role != "guardrail"
    }
    target = (
        f"the target effect ({', '.join(f'{t:.1%}' for t in sorted(targets))})"
        if targets
        else "the target effect"
    )
    items.append(
        f"Power: for primary and secondary metrics the MDE is the smallest relative effect "
        f"detectable at {params.power:.0%} power with two-sided α = {params.alpha:g} given the "
        f"observed variance and users; when it exceeds {target} the users still needed are "
        f"shown. For a guardrail it is the smallest margin its one-sided test would confirm at "
        f"{params.power:.0%} power if the true effect were zero, and the users needed are those "
        "that bring it down to the guardrail's margin."
        + (
            " These are for one look at a fixed horizon; the always-valid intervals are wider."
            if params.inference == "sequential"
            else ""
        )
    )
    if params.chance_to_beat:
        items.append(
            "Chance to beat control (Bayesian): posterior probability that the relative effect is "
            "in the desired direction, normal approximation with a flat prior. It is not 1 − p."
        )
    if params.segments:
        n = int(segments["valid"].sum()) if len(segments) else 0
        items.append(
            f"Segments ({', '.join(params.segments)}): top {params.segment_top} values plus "
            f"'other', unadjusted {level} intervals — exploratory: with {n} segment comparisons, "
            f"about {n * params.alpha:.0f} would look significant by chance alone."
        )
    items.append(
        f"Time view ({'every metric' if params.time_view == 'all' else 'primary metrics'}): the "
        "cumulative effect as a readout would have shown it at the end of each day since the "
        "start (unadjusted); a trend that fades suggests novelty, one that drifts suggests a "
        "changing population."
    )
    return items


def _describe_metric(m: ExperimentMetric) -> str:
    window = f"{m.window_days:g} days" if m.window_days else "until the end of the data"
    events = "/".join(m.events)
    what = {
        "conversion": f"share of users with {events}",
        "mean": f"{'sum of ' + m.value + ' over' if m.value else 'count of'} {events} per user",
        "ratio": f"Σ {m.value or 'count'} of {events} / Σ {m.denominator_value or 'count'} of "
        f"{'/'.join(m.denominator_events)}",
    }[m.type]
    extra = f", margin {m.margin:g} {m.margin_type}" if m.role == "guardrail" else ""
    return f"{m.name} ({m.role}, {m.direction}{extra}): {what} within {window}"


def _split(variants: dict[str, float]) -> str:
    return " / ".join(f"{v} {s:.0%}" for v, s in variants.items())


def _iso(value: pd.Timestamp | None) -> str | None:
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).date().isoformat()
