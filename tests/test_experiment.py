"""The experiment readout end to end in Python: numbers vs scipy/statsmodels, truth, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import yaml
from scipy import stats
from statsmodels.stats import proportion
from statsmodels.stats.multitest import multipletests

from tests.conftest import REPO
from workbench.errors import ParameterError, WorkbenchError
from workbench.experiment import Decision, decide, experiment_readout
from workbench.experiment_stats import srm_check
from workbench.notebook import NotebookRun
from workbench.parameters import check_parameter_file, validate_parameters

REL = 1e-6
START = pd.Timestamp("2026-07-06", tz="UTC")
DAY = pd.Timedelta(days=1)
SPLIT = {"control": 0.4, "treatment": 0.4, "wide": 0.2}
METRICS = [
    {"name": "converted", "type": "conversion", "events": ["report_created"], "role": "primary"},
    {
        "name": "sessions",
        "type": "mean",
        "events": ["session_start"],
        "role": "secondary",
        "covariate_days": 14,
    },
    {
        "name": "revenue",
        "type": "mean",
        "events": ["invoice_paid"],
        "value": "revenue",
        "role": "guardrail",
        "margin": 0.5,
    },
    {
        "name": "views_per_session",
        "type": "ratio",
        "events": ["page_view"],
        "denominator_events": ["session_start"],
        "role": "secondary",
    },
]


def make_experiment(seed: int = 11, users: int = 900) -> dict[str, pd.DataFrame]:
    """Assignments and events of a three-arm experiment with a lift in conversion and sessions."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"u{i:04d}" for i in range(users)])
    variant = rng.choice(list(SPLIT), users, p=list(SPLIT.values()))
    exposed = START + pd.to_timedelta(rng.integers(0, 10 * 24 * 60, users), unit="min")
    assignments = pd.DataFrame(
        {
            "user_id": ids,
            "experiment": "checklist",
            "variant": variant,
            "assigned_at": exposed,
            "plan": rng.choice(["free", "pro", "enterprise"], users, p=[0.6, 0.3, 0.1]),
        }
    )
    rate = rng.gamma(2.0, 1.5, users)
    lift = np.where(variant == "treatment", 1.25, 1.0)
    rows = []

    def add(who: np.ndarray, event: str, offsets_h: np.ndarray, revenue=None) -> None:
        rows.append(
            pd.DataFrame(
                {
                    "user_id": ids[who],
                    "event": event,
                    "timestamp": exposed[who] + pd.to_timedelta(np.round(offsets_h * 3600), "s"),
                    "revenue": np.nan if revenue is None else revenue,
                }
            )
        )

    post = rng.poisson(rate * lift)
    pre = rng.poisson(rate)
    who = np.repeat(np.arange(users), post)
    add(who, "session_start", rng.uniform(0.01, 20 * 24, len(who)))  # some fall after 14 days
    who = np.repeat(np.arange(users), pre)
    add(who, "session_start", -rng.uniform(0.01, 13.9 * 24, len(who)))
    views = rng.poisson(1.7, len(np.repeat(np.arange(users), post)))
    who = np.repeat(np.repeat(np.arange(users), post), views)
    add(who, "page_view", rng.uniform(0.01, 13.9 * 24, len(who)))
    converts = rng.random(users) < np.where(variant == "treatment", 0.45, 0.3)
    who = np.flatnonzero(converts)
    add(who, "report_created", rng.uniform(0.01, 13.9 * 24, len(who)))
    pays = np.flatnonzero(rng.random(users) < 0.3)
    add(pays, "invoice_paid", rng.uniform(0.01, 13.9 * 24, len(pays)), rng.gamma(2, 40, len(pays)))
    events = pd.concat(rows, ignore_index=True).sort_values("timestamp", ignore_index=True)
    return {"assignments": assignments, "events": events}


def parameters(frames: dict[str, pd.DataFrame], root: Path, **overrides: object):
    """Validated readout parameters over in-memory frames."""
    raw = {
        "title": "Checklist",
        "sources": dict(frames),
        "experiment": "checklist",
        "control": "control",
        "variants": SPLIT,
        "metrics": METRICS,
        "segments": ["plan"],
    }
    raw.update(overrides)
    return validate_parameters("experiment_readout", raw, root=root)


def read_out(frames: dict[str, pd.DataFrame], root: Path, **overrides: object):
    """Run the readout the way the notebook does."""
    params = parameters(frames, root, **overrides)
    run = NotebookRun({})
    return experiment_readout(run.load_tables(params), params)


def reference_values(frames: dict[str, pd.DataFrame], window_days: float = 14) -> pd.DataFrame:
    """Per-user metric values computed in plain pandas (independent of the engine code)."""
    a, e = frames["assignments"], frames["events"]
    users = a[["user_id", "variant", "assigned_at"]].copy()
    joined = e.merge(users, on="user_id")
    offset = joined["timestamp"] - joined["assigned_at"]
    post = (offset >= pd.Timedelta(0)) & (offset < pd.Timedelta(days=window_days))
    pre = (offset < pd.Timedelta(0)) & (offset >= -pd.Timedelta(days=14))

    def per_user(mask: pd.Series, event: str, value: str | None = None) -> pd.Series:
        rows = joined[mask & (joined["event"] == event)]
        counts = rows.groupby("user_id")[value].sum() if value else rows.groupby("user_id").size()
        return users["user_id"].map(counts).fillna(0.0).astype(float)

    out = users.copy()
    out["converted"] = (per_user(post, "report_created") > 0).astype(float)
    out["sessions"] = per_user(post, "session_start")
    out["sessions_pre"] = per_user(pre, "session_start")
    out["revenue"] = per_user(post, "invoice_paid", "revenue")
    out["views"] = per_user(post, "page_view")
    return out


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    return make_experiment()


@pytest.fixture(scope="module")
def readout(frames, tmp_path_factory):
    return read_out(frames, tmp_path_factory.mktemp("root"), chance_to_beat=True)


def row(result, metric: str, variant: str = "treatment") -> pd.Series:
    m = result.tables["metrics"]
    return m[(m["metric"] == metric) & (m["variant"] == variant)].iloc[0]


def close(actual: float, expected: float) -> None:
    assert actual == pytest.approx(expected, rel=REL, abs=1e-12)


@pytest.mark.parametrize("variant", ["treatment", "wide"])
def test_mean_metric_matches_scipy_welch_on_raw_values(frames, readout, variant) -> None:
    ref = reference_values(frames)
    y_t = ref.loc[ref["variant"] == variant, "sessions"]
    y_c = ref.loc[ref["variant"] == "control", "sessions"]
    r = row(readout, "sessions", variant)
    test = stats.ttest_ind(y_t, y_c, equal_var=False)
    ci = test.confidence_interval(0.95)
    close(r["effect_unadjusted"], y_t.mean() - y_c.mean())
    close(r["p_value_unadjusted"], test.pvalue)
    close(r["ci_low_unadjusted"], ci.low)
    close(r["ci_high_unadjusted"], ci.high)
    close(r["mean_control_unadjusted"], y_c.mean())
    assert (r["n_control"], r["n_variant"]) == (len(y_c), len(y_t))
    v_t, v_c = y_t.var() / len(y_t), y_c.var() / len(y_c)
    rel_se = np.sqrt(v_t / y_c.mean() ** 2 + y_t.mean() ** 2 * v_c / y_c.mean() ** 4)
    q = stats.t.ppf(0.975, test.df)
    close(r["relative_ci_low_unadjusted"], y_t.mean() / y_c.mean() - 1 - q * rel_se)


def test_cuped_effect_is_the_ols_coefficient_with_the_covariate(frames, readout) -> None:
    ref = reference_values(frames)
    design = pd.get_dummies(ref["variant"])[["treatment", "wide"]].astype(float)
    design["x"] = ref["sessions_pre"]
    fit = sm.OLS(ref["sessions"], sm.add_constant(design)).fit()
    for variant in ("treatment", "wide"):
        r = row(readout, "sessions", variant)
        assert r["cuped"]
        close(r["effect"], fit.params[variant])
    r = row(readout, "sessions")
    rho2 = np.corrcoef(ref["sessions"], ref["sessions_pre"])[0, 1] ** 2
    assert r["variance_reduction"] == pytest.approx(rho2, abs=0.08)
    assert r["variance_reduction"] > 0.1


def test_conversion_matches_statsmodels_two_proportion_wald(frames, readout) -> None:
    ref = reference_values(frames)
    t = ref.loc[ref["variant"] == "treatment", "converted"]
    c = ref.loc[ref["variant"] == "control", "converted"]
    r = row(readout, "converted")
    counts = (t.sum(), len(t), c.sum(), len(c))
    test = proportion.test_proportions_2indep(*counts, method="wald")
    low, high = proportion.confint_proportions_2indep(*counts, method="wald")
    close(r["effect"], t.mean() - c.mean())
    close(r["p_value"], test.pvalue)
    close(r["ci_low"], low)
    close(r["ci_high"], high)


def test_ratio_metric_is_the_delta_method_on_raw_values(frames, readout) -> None:
    ref = reference_values(frames)
    r = row(readout, "views_per_session")

    def arm(variant: str) -> tuple[float, float]:
        g = ref[ref["variant"] == variant]
        y, d = g["views"].to_numpy(), g["sessions"].to_numpy()
        ratio = y.sum() / d.sum()
        linear = (y - ratio * d) / d.mean()  # delta-method linearisation
        return ratio, linear.var(ddof=1) / len(g)

    (r_t, v_t), (r_c, v_c) = arm("treatment"), arm("control")
    close(r["mean_variant"], r_t)
    close(r["effect"], r_t - r_c)
    z = (r_t - r_c) / np.sqrt(v_t + v_c)
    close(r["p_value"], 2 * stats.norm.sf(abs(z)))


def test_adjusted_p_values_are_benjamini_hochberg_over_primary_and_secondary(
    frames, readout
) -> None:
    m = readout.tables["metrics"]
    family = m[m["role"] != "guardrail"]
    expected = multipletests(family["p_value"], method="fdr_bh")[1]
    np.testing.assert_allclose(family["p_value_adjusted"], expected, rtol=REL)
    assert m.loc[m["role"] == "guardrail", "p_value_adjusted"].isna().all()
    guard = row(readout, "revenue")
    assert guard["margin"] == 0.5
    # the non-inferiority bound from the raw per-user revenue: relative effect minus the
    # one-sided t quantile times its delta-method standard error
    ref = reference_values(frames)
    y_t = ref.loc[ref["variant"] == "treatment", "revenue"]
    y_c = ref.loc[ref["variant"] == "control", "revenue"]
    v_t, v_c = y_t.var(ddof=1) / len(y_t), y_c.var(ddof=1) / len(y_c)
    rel = (y_t.mean() - y_c.mean()) / abs(y_c.mean())
    se = np.sqrt(v_t / y_c.mean() ** 2 + y_t.mean() ** 2 * v_c / y_c.mean() ** 4)
    df = (v_t + v_c) ** 2 / (v_t**2 / (len(y_t) - 1) + v_c**2 / (len(y_c) - 1))
    bound = rel - stats.t.ppf(0.95, df) * se
    close(guard["ni_bound"], bound)
    assert guard["outcome"] == ("pass" if bound > -0.5 else "fail")


def test_holm_correction_and_mde(frames, tmp_path) -> None:
    result = read_out(frames, tmp_path, correction="holm", segments=[])
    m = result.tables["metrics"]
    family = m[m["role"] != "guardrail"]
    np.testing.assert_allclose(
        family["p_value_adjusted"], multipletests(family["p_value"], method="holm")[1], rtol=REL
    )
    r = row(result, "converted")
    se = (r["ci_high"] - r["ci_low"]) / (2 * stats.norm.ppf(0.975))
    close(r["mde"], (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * se)


def test_readout_shape_decision_and_summary_json(readout) -> None:
    # planted: treatment lifts conversion 0.30 -> 0.45 and sessions 25%, revenue unchanged;
    # wide has no effect. Treatment is the variant to ship, on its primary metric's result.
    assert row(readout, "converted")["outcome"] == "better"
    assert row(readout, "converted", "wide")["outcome"] == "inconclusive"
    assert row(readout, "revenue")["outcome"] == "pass"
    assert (readout.decision.verdict, readout.decision.variant) == ("ship", "treatment")
    assert readout.decision.reasons[0].startswith("converted (primary, treatment vs control)")
    results = readout.results_json()
    assert {"srm", "metrics", "decision", "daily", "segments"} <= set(results)
    assert results["decision"][0]["scope"] == "experiment"
    assert {r["variant"] for r in results["decision"][1:]} == {"treatment", "wide"}
    assert len(results["metrics"]) == len(METRICS) * 2
    json.dumps(results, allow_nan=False)
    assert "nan" not in readout.headline.lower()
    srm = results["srm"]
    assert [r["variant"] for r in srm] == list(SPLIT)
    observed = [r["users"] for r in srm]
    assert srm[0]["p_value"] == pytest.approx(srm_check(observed, list(SPLIT.values())).p_value)
    daily = readout.tables["daily"]
    last = daily[(daily["metric"] == "converted") & (daily["variant"] == "treatment")].iloc[-1]
    close(last["effect"], row(readout, "converted")["effect"])
    seg = readout.tables["segments"]
    assert set(seg["segment"]) == {"free", "pro", "enterprise"}
    assert "chance_to_beat_control" in readout.tables["metrics"]
    for chart in (readout.forest_chart(), readout.time_chart(), readout.segment_chart()):
        assert chart.to_dict()
    assert readout.explore_view("sessions", "wide", "plan").to_dict()


# --------------------------------------------------------------------------------------------
# The decision
# --------------------------------------------------------------------------------------------


def comparison(metric: str, role: str, outcome: str, **extra: object) -> dict:
    base = {
        "metric": metric,
        "role": role,
        "variant": "treatment",
        "control": "control",
        "valid": outcome != "invalid",
        "reason": "no variation in either arm" if outcome == "invalid" else "",
        "outcome": outcome,
        "direction": "increase",
        "effect": 0.02,
        "ci_low": 0.01,
        "ci_high": 0.03,
        "relative_effect": 0.1,
        "relative_ci_low": 0.05,
        "relative_ci_high": 0.15,
        "p_value_adjusted": 0.01,
        "margin": 0.05 if role == "guardrail" else np.nan,
        "margin_type": "relative",
        "ni_bound": -0.01,
        "non_inferior": outcome == "pass",
        "target_relative_effect": 0.05,
        "mde_relative": 0.04,
        "n_additional": 0.0,
    }
    return base | extra


GOOD_SRM = srm_check([5000, 5020], [0.5, 0.5])


@pytest.mark.parametrize(
    ("primary", "guardrail", "verdict"),
    [
        ("better", "pass", "ship"),
        ("better", "fail", "inconclusive"),
        ("better", "harm", "don't ship"),
        ("worse", "pass", "don't ship"),
        ("inconclusive", "pass", "inconclusive"),
        ("invalid", "pass", "invalid"),
    ],
)
def test_decision_rules(primary: str, guardrail: str, verdict: str) -> None:
    metrics = pd.DataFrame(
        [comparison("conv", "primary", primary), comparison("revenue", "guardrail", guardrail)]
    )
    overall, per_variant = decide(metrics, GOOD_SRM)
    assert overall.verdict == verdict
    assert per_variant == [Decision(verdict, per_variant[0].reasons, "treatment")]
    assert any("conv" in r for r in overall.reasons)
    trust = [r for r in overall.reasons if "sample ratio test" in r]
    assert trust == [overall.reasons[-1]]  # SRM is a reason even when it passes, once, last
    assert trust[0].startswith("Trust check passed") and f"p = {GOOD_SRM.p_value:.2g}" in trust[0]


def test_srm_failure_makes_the_decision_invalid_whatever_the_metrics() -> None:
    metrics = pd.DataFrame([comparison("conv", "primary", "better")])
    overall, _ = decide(metrics, srm_check([505_000, 495_000], [0.5, 0.5]))
    assert overall.verdict == "invalid"
    assert "Sample ratio mismatch" in overall.reasons[0]


def test_early_fixed_horizon_look_cannot_ship() -> None:
    metrics = pd.DataFrame([comparison("conv", "primary", "better")])
    overall, _ = decide(metrics, GOOD_SRM, early="Early look: the data ends 2026-07-20.")
    assert overall.verdict == "inconclusive"
    assert overall.reasons[0].startswith("Early look")


def test_multi_arm_ships_the_best_shippable_variant() -> None:
    metrics = pd.DataFrame(
        [
            comparison("conv", "primary", "better", variant="b", effect=0.01),
            comparison("conv", "primary", "better", variant="c", effect=0.03),
            comparison("conv", "primary", "worse", variant="d", effect=-0.02),
        ]
    )
    overall, per_variant = decide(metrics, GOOD_SRM)
    assert (overall.verdict, overall.variant) == ("ship", "c")
    assert [d.verdict for d in per_variant] == ["ship", "ship", "don't ship"]
    metrics.loc[metrics["variant"] == "c", "outcome"] = "inconclusive"
    metrics.loc[metrics["variant"] == "b", "outcome"] = "inconclusive"
    overall, _ = decide(metrics, GOOD_SRM)  # every variant's reasons, the shared one once
    assert overall.verdict == "inconclusive" and len(overall.reasons) == 4
    assert sum("sample ratio test" in r for r in overall.reasons) == 1


# --------------------------------------------------------------------------------------------
# Planted truth in the sample data and SRM at scale
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_readout():
    if not (REPO / "data/sample/manifest.json").exists():
        pytest.skip("sample data missing: run `make sample`")
    params = check_parameter_file(REPO / "parameters/experiment_readout/sample.yaml")
    run = NotebookRun({"_workbench": {"root": str(REPO)}})
    truth = json.loads((REPO / "data/sample/truth.json").read_text())["experiment"]
    return experiment_readout(run.load_tables(params), params), truth


def test_sample_experiment_recovers_the_planted_effects(sample_readout) -> None:
    result, truth = sample_readout
    assert result.tables["srm"]["users"].tolist() == [
        truth["assigned_users"]["control"],
        truth["assigned_users"]["treatment"],
    ]
    for metric in ("report_conversion", "sessions"):
        r = row(result, metric)
        true = truth["metrics"][metric]
        assert r["ci_low"] <= true["effect_abs"] <= r["ci_high"], metric
        assert r["relative_ci_low"] <= true["effect_rel"] <= r["relative_ci_high"], metric
        assert r["relative_effect"] > 0, metric
    guard = row(result, "revenue")
    assert guard["ci_low"] <= 0 <= guard["ci_high"]
    assert guard["outcome"] != "harm"
    assert result.decision.verdict != "don't ship"
    assert row(result, "sessions")["variance_reduction"] > 0.1
    assert result.checks[0].name == "sample ratio mismatch" and result.checks[0].status == "pass"


@pytest.mark.slow
def test_a_larger_sample_detects_the_planted_effects(tmp_path) -> None:
    """At 50,000 users (about 22,000 exposed) the planted lifts are not just covered by the
    intervals but detected: significant, in the planted direction; revenue (no planted
    effect) is not harmed."""
    from workbench.sample import generate_sample

    generate_sample(tmp_path / "data/sample", users=50_000, feedback=0)
    raw = yaml.safe_load((REPO / "parameters/experiment_readout/sample.yaml").read_text())
    params = validate_parameters("experiment_readout", raw, root=tmp_path)
    run = NotebookRun({"_workbench": {"root": str(tmp_path)}})
    result = experiment_readout(run.load_tables(params), params)
    truth = json.loads((tmp_path / "data/sample/truth.json").read_text())["experiment"]
    for metric in ("report_conversion", "sessions"):
        r = row(result, metric)
        assert r["outcome"] == "better", metric
        assert r["ci_low"] <= truth["metrics"][metric]["effect_abs"] <= r["ci_high"], metric
    guard = row(result, "revenue")
    assert guard["ci_low"] <= 0 <= guard["ci_high"] and guard["outcome"] != "harm"
    assert result.decision.verdict != "don't ship"


def test_srm_catches_a_planted_50_5_to_49_5_split_at_one_million_users(tmp_path) -> None:
    n = 1_000_000
    variant = np.where(np.arange(n) < 505_000, "treatment", "control")
    assignments = pd.DataFrame(
        {
            "user_id": np.arange(n).astype(str),
            "experiment": "big",
            "variant": variant,
            "assigned_at": START + pd.to_timedelta(np.arange(n) % 600_000, unit="s"),
        }
    )
    events = pd.DataFrame(
        {
            "user_id": np.arange(0, n, 7).astype(str),
            "event": "report_created",
            "timestamp": START + 8 * DAY,
        }
    )
    result = read_out(
        {"assignments": assignments, "events": events},
        tmp_path,
        experiment="big",
        variants={"control": 0.5, "treatment": 0.5},
        metrics=[METRICS[0]],
        segments=[],
    )
    assert result.decision.verdict == "invalid"
    assert result.tables["srm"]["p_value"].iloc[0] < 1e-10
    assert next(c for c in result.checks if c.name == "sample ratio mismatch").status == "fail"
    assert result.headline.startswith("Invalid: Sample ratio mismatch")


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


def test_parameter_mistakes_are_all_reported_at_once(frames, tmp_path) -> None:
    bad_metrics = [
        {"name": "g", "type": "mean", "events": ["x"], "role": "guardrail"},
        {"name": "g", "type": "ratio", "events": ["x"], "role": "secondary"},
    ]
    with pytest.raises(ParameterError) as info:
        parameters(
            frames,
            tmp_path,
            control="baseline",
            variants={"control": 0.7, "treatment": 0.7},
            metrics=bad_metrics,
            inference="sequential",
            correction="bonferroni",
        )
    text = str(info.value)
    for expected in (
        "metrics.0: Value error, a guardrail needs",
        "metrics.1: Value error, a ratio metric needs 'denominator_events'",
        "variants: planned traffic shares must sum to 1",
        "correction: Input should be 'bh', 'holm' or 'none'",
    ):
        assert expected.replace("Value error, ", "") in text, text


def test_unknown_variants_in_a_parameter_file_are_reported_before_any_kernel(
    frames, tmp_path
) -> None:
    (tmp_path / "parameters" / "experiment_readout").mkdir(parents=True)
    for name, frame in frames.items():
        frame.to_parquet(tmp_path / f"{name}.parquet")
    raw = {
        "title": "x",
        "sources": {"assignments": "assignments.parquet", "events": "events.parquet"},
        "experiment": "checklist",
        "control": "control",
        "variants": {"control": 0.4, "treatment": 0.4, "wider": 0.1, "narrow": 0.1},
        "metrics": METRICS[:1],
    }
    with pytest.raises(ParameterError) as info:
        validate_parameters("experiment_readout", raw, root=tmp_path)
    assert "variant(s) ['wider', 'narrow'] have no assignments" in str(info.value)
    assert "the data has ['control', 'treatment', 'wide']" in str(info.value)
    raw["variants"] = {"control": 0.5, "treatment": 0.5}
    with pytest.raises(ParameterError, match=r"the data has variant\(s\) \['wide'\]"):
        validate_parameters("experiment_readout", raw, root=tmp_path)
    raw["experiment"] = "nope"
    with pytest.raises(ParameterError, match="experiment 'nope' has no assignments"):
        validate_parameters("experiment_readout", raw, root=tmp_path)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"variants": {"control": 0.5, "treatment": 0.5}}, r"variant\(s\) \['wide'\] that are not"),
        (
            {"variants": {"control": 0.4, "treatment": 0.4, "wide": 0.1, "x": 0.1}},
            r"planned variant\(s\) \['x'\] have no exposed users",
        ),
        ({"experiment": "missing"}, "no assignments for experiment 'missing'"),
    ],
)
def test_variants_that_do_not_match_the_data_are_clear_errors(
    frames, tmp_path, overrides, message
) -> None:
    with pytest.raises(WorkbenchError, match=message):
        read_out(frames, tmp_path, segments=[], **overrides)


def test_missing_control_is_a_clear_error(frames, tmp_path) -> None:
    a = frames["assignments"]
    only = {**frames, "assignments": a[a["variant"] != "control"]}
    with pytest.raises(WorkbenchError, match="control 'control' has no exposed users"):
        read_out(only, tmp_path, segments=[])


def test_event_that_never_occurs_and_zero_variance_give_checks_not_nan(frames, tmp_path) -> None:
    metrics = [
        {"name": "never", "type": "conversion", "events": ["no_such_event"], "role": "primary"},
        {"name": "converted", "type": "conversion", "events": ["report_created"]},
    ]
    result = read_out(frames, tmp_path, metrics=metrics, segments=[])
    checks = {c.name: c for c in result.checks}
    assert checks["metric never: no data"].status == "fail"
    assert "no_such_event" in checks["metric never: no data"].detail
    assert checks["never · treatment: not estimable"].status == "warn"
    never = row(result, "never")
    assert not never["valid"] and never["outcome"] == "invalid"
    assert "nan" not in result.headline.lower()
    json.dumps(result.results_json(), allow_nan=False)


def test_single_user_is_invalid_not_a_crash(frames, tmp_path) -> None:
    a = frames["assignments"]
    tiny = pd.concat([a[a["variant"] == "control"].head(1), a[a["variant"] == "treatment"].head(1)])
    result = read_out(
        {**frames, "assignments": tiny},
        tmp_path,
        variants={"control": 0.5, "treatment": 0.5},
        metrics=[{**METRICS[1], "role": "primary"}],
        segments=[],
    )
    assert result.decision.verdict == "invalid"
    assert "nan" not in result.headline.lower()
    assert any(c.name == "small sample" for c in result.checks)


def test_negative_values_and_users_in_two_variants_are_flagged(frames, tmp_path) -> None:
    events = frames["events"].copy()
    pays = events.index[events["event"] == "invoice_paid"]
    events.loc[pays[:3], "revenue"] = -25.0
    events.loc[pays[3:7], "revenue"] = np.nan  # no value: counted as 0, and said so
    a = frames["assignments"]
    crossed = a.head(5).assign(
        variant=lambda f: np.where(f["variant"] == "control", "treatment", "control")
    )
    metrics = [
        METRICS[0],
        {**METRICS[2], "role": "secondary", "margin": None},
        {
            "name": "revenue_per_payer",
            "type": "ratio",
            "events": ["report_created"],
            "denominator_events": ["invoice_paid"],
            "denominator_value": "revenue",
            "role": "secondary",
        },
    ]
    result = read_out(
        {"assignments": pd.concat([a, crossed]), "events": events},
        tmp_path,
        metrics=metrics,
        segments=[],
    )
    checks = {c.name: c for c in result.checks}
    assert checks["metric revenue: negative revenue"].status == "warn"
    assert checks["metric revenue: negative revenue"].detail.startswith("3 events")
    assert checks["metric revenue_per_payer: negative revenue"].status == "fail"
    for name in ("revenue", "revenue_per_payer"):
        missing = checks[f"metric {name}: missing revenue"]
        assert missing.status == "warn"
        assert missing.detail.startswith(f"4 of {len(pays):,} invoice_paid events")
    assert checks["users in more than one variant"].status == "warn"
    assert checks["users in more than one variant"].detail.startswith("5 of 900")
    assert result.tables["srm"]["users"].sum() == 895


def test_sequential_mode_uses_always_valid_intervals(frames, tmp_path) -> None:
    fixed = read_out(frames, tmp_path, segments=[])
    seq = read_out(frames, tmp_path, segments=[], inference="sequential", planned_users=2000)
    f, s = row(fixed, "converted"), row(seq, "converted")
    assert s["ci_low"] < f["ci_low"] and s["ci_high"] > f["ci_high"]
    assert s["p_value"] >= f["p_value"]
    assert s["ci_low"] == s["cs_low"]
    assert any("always valid" in m for m in seq.method)


def test_fixed_readout_before_the_planned_end_warns(frames, tmp_path) -> None:
    result = read_out(frames, tmp_path, segments=[], planned_end="2026-12-31")
    early = next(c for c in result.checks if c.name == "fixed horizon before the planned end")
    assert early.status == "warn" and "2026-12-31" in early.detail
    assert result.decision.verdict != "ship"


def test_a_window_end_in_the_future_still_warns_of_an_early_look(frames, tmp_path) -> None:
    """A scheduled readout with window.end set ahead: the data ends at the last event."""
    result = read_out(
        frames, tmp_path, segments=[], planned_end="2026-11-30", window={"end": "2026-12-31"}
    )
    last = frames["events"]["timestamp"].max()
    assert result.data_window["end"] == last.date().isoformat()
    early = next(c for c in result.checks if c.name == "fixed horizon before the planned end")
    assert last.date().isoformat() in early.detail and early.status == "warn"
    assert result.decision.verdict != "ship"


@pytest.mark.parametrize("zone", ["UTC", "Asia/Tokyo"])
def test_attribution_windows_cut_short_by_the_end_of_the_data_are_counted(
    frames, tmp_path, zone
) -> None:
    a = frames["assignments"]
    result = read_out(frames, tmp_path, segments=[], window={"end": "2026-07-26"}, timezone=zone)
    end = pd.Timestamp("2026-07-27").tz_localize(zone).tz_convert("UTC")  # after 2026-07-26
    cutoff = end - pd.Timedelta(days=14)
    late = int((a["assigned_at"] > cutoff).sum())  # one assignment per user in these frames
    assert 0 < late < len(a)
    check = next(c for c in result.checks if c.name == "14-day attribution windows")
    assert check.status == "warn"
    assert check.detail.startswith(f"{late:,} of {len(a):,} exposed users")
    assert "converted, sessions, revenue, views_per_session" in check.detail
    assert result.data_window["end"] == "2026-07-26"  # the window's last day, in its timezone
    whole = read_out(frames, tmp_path, segments=[])  # the log runs 20 days past every exposure
    check = next(c for c in whole.checks if c.name == "14-day attribution windows")
    assert check.status == "pass" and "closes before the data ends" in check.detail


def test_exposure_is_the_assignments_source_given_once(frames, tmp_path) -> None:
    events_only = {"events": frames["events"]}
    params = parameters(events_only, tmp_path, exposure=frames["assignments"])
    assert set(params.sources) == {"events", "assignments"}
    with pytest.raises(ParameterError, match="give the assignments once"):
        parameters(frames, tmp_path, exposure=frames["assignments"])
    with pytest.raises(ParameterError, match="no assignments: set 'exposure'"):
        parameters(events_only, tmp_path)


def test_explore_controls_switch_metric_variant_and_segment(readout, monkeypatch) -> None:
    import ipywidgets

    from workbench.interactive import explore

    monkeypatch.delenv("WORKBENCH_SCHEDULED", raising=False)
    shown = []

    def view(**picked):
        shown.append(picked)
        return readout.explore_view(**picked)

    panel = explore(
        view,
        metric=readout.metric_names,
        variant=readout.variant_names,
        segment=readout.segment_columns,
    )
    assert isinstance(panel, ipywidgets.interactive)
    assert [w.description for w in panel.kwargs_widgets] == ["Metric", "Variant", "Segment"]
    metric, variant, _segment = panel.kwargs_widgets
    metric.value = "sessions"
    variant.value = "wide"
    assert shown[-1] == {"metric": "sessions", "variant": "wide", "segment": "plan"}
    chart = readout.explore_view(**shown[-1]).to_dict()
    assert "sessions by plan" in json.dumps(chart)


def with_beta_feature(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The events plus a 'beta_feature' that only 40 treatment users use (control mean 0)."""
    a = frames["assignments"]
    treated = a.loc[a["variant"] == "treatment", ["user_id", "assigned_at"]].head(40)
    beta = pd.DataFrame(
        {
            "user_id": treated["user_id"].to_numpy(),
            "event": "beta_feature",
            "timestamp": (treated["assigned_at"] + pd.Timedelta(hours=2)).to_numpy(),
            "revenue": np.nan,
        }
    )
    return pd.concat([frames["events"], beta], ignore_index=True)


def test_segment_view_defaults_to_the_primary_metric_and_forest_names_what_it_leaves_out(
    frames, tmp_path
) -> None:
    """A guardrail listed first must not take the primary metric's place in the segment view,
    and a comparison without a relative change (control mean zero) is named under the forest
    plot instead of vanishing from it."""
    events = with_beta_feature(frames)
    beta_metric = {"name": "beta_use", "type": "mean", "events": ["beta_feature"]}
    metrics = [METRICS[2], METRICS[0], {**beta_metric, "role": "secondary"}]
    result = read_out({**frames, "events": events}, tmp_path, metrics=metrics)
    assert result.metric_names[0] == "revenue" and result.primary_metric == "converted"
    assert result.metrics_primary_first == ["converted", "revenue", "beta_use"]
    chart = json.dumps(result.segment_chart().to_dict())
    assert "converted by plan" in chart and "revenue by plan" not in chart
    beta_row = row(result, "beta_use")
    assert beta_row["mean_control"] == 0 and beta_row["valid"]
    omitted = result.forest_omitted()
    assert [o.split(":")[0] for o in omitted] == ["beta_use · treatment", "beta_use · wide"]
    assert "control mean is zero" in omitted[0]
    assert "not estimable: no variation in either arm" in omitted[1]  # nobody in wide uses it
    forest = result.forest_chart().to_dict()
    assert any("beta_use · treatment" in line for line in forest["title"]["subtitle"])
    shown = {r.get("comparison") for rows in forest["datasets"].values() for r in rows}
    assert "beta_use · treatment" not in shown and "converted · treatment" in shown


def test_guardrail_margins_on_the_forest_and_a_relative_margin_without_a_baseline(
    frames, tmp_path
) -> None:
    """An absolute margin gets its tick too (at margin / |control mean| on the relative axis);
    a relative margin on a metric whose control mean is zero says to use an absolute one."""
    metrics = [
        METRICS[0],
        {**METRICS[2], "margin": 5.0, "margin_type": "absolute"},
        {
            "name": "beta_use",
            "type": "mean",
            "events": ["beta_feature"],
            "role": "guardrail",
            "direction": "increase",
            "margin": 0.1,
        },
    ]
    events = with_beta_feature(frames)
    result = read_out({**frames, "events": events}, tmp_path, metrics=metrics, segments=[])
    revenue = row(result, "revenue")
    forest = result.forest_chart().to_dict()
    ticks = {
        (r["metric"], r["variant"]): r["margin_at"]
        for rows in forest["datasets"].values()
        for r in rows
        if "margin_at" in r and r["metric"] == "revenue"
    }
    close(ticks[("revenue", "treatment")], -5.0 / abs(revenue["mean_control"]))
    beta_row = row(result, "beta_use")  # more use is no harm, but no relative margin either
    assert beta_row["mean_control"] == 0 and beta_row["outcome"] == "fail"
    reason = next(r for r in result.variant_decisions[0].reasons if r.startswith("beta_use"))
    assert "margin_type: absolute" in reason
