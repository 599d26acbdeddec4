"""Experiment statistics: every number against scipy/statsmodels on the raw per-user data."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats import proportion as sm_proportion
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.weightstats import ttest_ind as sm_ttest_ind

from workbench.errors import WorkbenchError
from workbench.experiment_stats import (
    ExperimentInputError,
    MetricPlan,
    adjust_pvalues,
    arm_moments,
    assess,
    chance_to_beat_control,
    compare_to_control,
    confidence_sequence,
    mde,
    non_inferiority,
    rho_for_planned_n,
    sample_size_needed,
    sequential_multiplier,
    sequential_p_value,
    srm_check,
)

REL = 1e-6
PROPERTY = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
SIMULATION = settings(PROPERTY, max_examples=8)


def sums(y: np.ndarray, x: np.ndarray | None = None, d: np.ndarray | None = None) -> dict:
    """Sufficient statistics of one arm, as the engine would compute them."""
    y = np.asarray(y, dtype=float)
    row = {"n": len(y), "sum_y": y.sum(), "sum_y2": (y * y).sum()}
    if x is not None:
        row |= {"sum_x": x.sum(), "sum_x2": (x * x).sum(), "sum_xy": (x * y).sum()}
    if d is not None:
        row |= {"sum_d": d.sum(), "sum_d2": (d * d).sum(), "sum_yd": (y * d).sum()}
    return row


def stats_frame(arms: dict, metric: str = "m", metric_type: str = "mean", **cols) -> pd.DataFrame:
    """One metric's sufficient-statistics rows from raw per-arm data: {variant: (y, x, d)}."""
    rows = []
    for variant, data in arms.items():
        y, x, d = (*data, None, None)[:3] if isinstance(data, tuple) else (data, None, None)
        rows.append(
            {"metric": metric, "variant": variant, "metric_type": metric_type} | sums(y, x, d)
        )
    return pd.DataFrame(rows)


def close(actual: object, expected: object, rel: float = REL) -> None:
    np.testing.assert_allclose(np.asarray(actual, float), np.asarray(expected, float), rtol=rel)


def row(result: pd.DataFrame, variant: str, metric: str | None = None) -> pd.Series:
    mask = result["variant"] == variant
    if metric is not None:
        mask &= result["metric"] == metric
    (index,) = np.flatnonzero(mask)
    return result.iloc[index]


@pytest.fixture(scope="module")
def rng() -> np.random.Generator:
    return np.random.default_rng(20260706)


# --- means, proportions, ratios against scipy / statsmodels -------------------------------------


def test_welch_t_test_matches_scipy_for_each_variant(rng: np.random.Generator) -> None:
    arms = {
        "control": rng.lognormal(3.0, 1.0, 900),
        "b": rng.lognormal(3.1, 1.2, 1100),
        "c": rng.lognormal(2.9, 0.8, 700),
    }
    result = compare_to_control(stats_frame(arms), alpha=0.1)
    assert len(result) == 2 and result["valid"].all()
    for variant in ("b", "c"):
        r = row(result, variant)
        ref = stats.ttest_ind(arms[variant], arms["control"], equal_var=False)
        ci = ref.confidence_interval(0.9)
        close(r.effect, arms[variant].mean() - arms["control"].mean())
        close([r.statistic, r.df, r.p_value], [ref.statistic, ref.df, ref.pvalue])
        close([r.ci_low, r.ci_high], [ci.low, ci.high])
        close([r.n_control, r.n_variant], [900, len(arms[variant])])
        close(r.mean_control, arms["control"].mean())
        assert not r.cuped and np.isnan(r.theta)
        close(r.p_value_unadjusted, r.p_value)


def test_proportions_match_statsmodels_wald_and_pooled(rng: np.random.Generator) -> None:
    arms = {"control": rng.random(5000) < 0.10, "treatment": rng.random(4000) < 0.115}
    frame = stats_frame({k: v.astype(float) for k, v in arms.items()}, metric_type="conversion")
    c1, n1 = arms["treatment"].sum(), arms["treatment"].size
    c0, n0 = arms["control"].sum(), arms["control"].size
    wald = compare_to_control(frame).iloc[0]
    ref = sm_proportion.test_proportions_2indep(c1, n1, c0, n0, method="wald", compare="diff")
    low, high = sm_proportion.confint_proportions_2indep(
        c1, n1, c0, n0, method="wald", compare="diff"
    )
    close(
        [wald.effect, wald.statistic, wald.p_value], [c1 / n1 - c0 / n0, ref.statistic, ref.pvalue]
    )
    close([wald.ci_low, wald.ci_high], [low, high])
    assert np.isinf(wald.df)
    pooled = compare_to_control(frame, proportion_test="pooled").iloc[0]
    z, p = sm_proportion.proportions_ztest([c1, c0], [n1, n0])
    close([pooled.statistic, pooled.p_value], [z, p])
    close([pooled.ci_low, pooled.ci_high], [low, high])  # the CI stays Wald


def test_ratio_metric_delta_method_matches_linearised_per_user_values(
    rng: np.random.Generator,
) -> None:
    def arm(n: int, rate: float) -> tuple[np.ndarray, None, np.ndarray]:
        sessions = rng.poisson(4, n).astype(float)
        revenue = rng.gamma(2.0, rate, n) * sessions
        return revenue, None, sessions

    arms = {"control": arm(3000, 5.0), "treatment": arm(3200, 5.4)}
    r = compare_to_control(stats_frame(arms, metric_type="ratio")).iloc[0]
    est, var = {}, {}
    for name, (y, _, d) in arms.items():
        est[name] = y.sum() / d.sum()
        linearised = (y - est[name] * d) / d.mean()  # per-user influence values
        var[name] = linearised.var(ddof=1) / len(y)
    se = np.sqrt(var["treatment"] + var["control"])
    effect = est["treatment"] - est["control"]
    z = effect / se
    close([r.mean_control, r.mean_variant], [est["control"], est["treatment"]])
    close([r.effect, r.std_error, r.statistic], [effect, se, z])
    close(r.p_value, 2 * stats.norm.sf(abs(z)))
    close([r.ci_low, r.ci_high], effect + np.array([-1, 1]) * stats.norm.ppf(0.975) * se)


def test_relative_effect_ci_matches_numerical_delta_method(rng: np.random.Generator) -> None:
    arms = {"control": rng.normal(10, 3, 800), "treatment": rng.normal(10.6, 3.5, 900)}
    r = compare_to_control(stats_frame(arms)).iloc[0]
    m = np.array([arms["treatment"].mean(), arms["control"].mean()])
    cov = np.diag([arms["treatment"].var(ddof=1) / 900, arms["control"].var(ddof=1) / 800])
    h = 1e-6 * m
    g = lambda v: v[0] / v[1] - 1  # noqa: E731
    grad = np.array([(g(m + h * e) - g(m - h * e)) / (2 * h @ e) for e in np.eye(2)])
    se = np.sqrt(grad @ cov @ grad)
    q = stats.t.ppf(0.975, r.df)  # the reference distribution of the absolute effect
    close(r.relative_effect, g(m))
    close(r.relative_std_error, se, rel=1e-5)
    close([r.relative_ci_low, r.relative_ci_high], g(m) + np.array([-q, q]) * se, rel=1e-5)


# --- CUPED ---------------------------------------------------------------------------------------


def _cuped_data(rng: np.random.Generator, binary: bool = False) -> dict:
    arms = {}
    for variant, (n, lift) in {"control": (2000, 0), "b": (2100, 0.4), "c": (1900, -0.2)}.items():
        x = rng.gamma(2.0, 2.0, n)
        y = 1.0 + 0.8 * x + lift + rng.normal(0, 2.0, n)
        if binary:
            y = (rng.random(n) < 1 / (1 + np.exp(-(y - 4) / 2))).astype(float)
        arms[variant] = (y, x)
    return arms


@pytest.mark.parametrize("binary", [False, True], ids=["mean", "conversion"])
def test_cuped_effect_equals_ols_coefficient_with_covariate(
    rng: np.random.Generator, binary: bool
) -> None:
    arms = _cuped_data(rng, binary)
    kind = "conversion" if binary else "mean"
    result = compare_to_control(stats_frame(arms, metric_type=kind))
    raw = pd.concat(pd.DataFrame({"y": y, "x": x, "variant": v}) for v, (y, x) in arms.items())
    ols = smf.ols("y ~ C(variant, Treatment('control')) + x", raw).fit()
    for variant in ("b", "c"):
        r = row(result, variant)
        assert r.cuped
        close(r.effect, ols.params[f"C(variant, Treatment('control'))[T.{variant}]"], rel=1e-9)
        close(r.theta, ols.params["x"], rel=1e-9)
        # θ is fixed, so the adjusted test is Welch's test on y − θ·x per user.
        adj_t = arms[variant][0] - r.theta * arms[variant][1]
        adj_c = arms["control"][0] - r.theta * arms["control"][1]
        ddof = 0 if binary else 1
        se = np.sqrt(adj_t.var(ddof=ddof) / adj_t.size + adj_c.var(ddof=ddof) / adj_c.size)
        close(r.std_error, se)
        if binary:
            close(r.p_value, 2 * stats.norm.sf(abs(r.effect / se)))
        else:
            ref = stats.ttest_ind(adj_t, adj_c, equal_var=False)
            ci = ref.confidence_interval()
            close([r.statistic, r.df, r.p_value], [ref.statistic, ref.df, ref.pvalue])
            close([r.ci_low, r.ci_high], [ci.low, ci.high])
        # unadjusted results are reported alongside, and the variance reduction links the two
        close(r.effect_unadjusted, arms[variant][0].mean() - arms["control"][0].mean())
        close(r.variance_reduction, 1 - r.std_error**2 / r.std_error_unadjusted**2)
        assert r.variance_reduction > (0.05 if binary else 0.2)


@SIMULATION
@given(rho=st.floats(-0.95, 0.95), seed=st.integers(0, 2**32 - 1))
def test_cuped_variance_reduction_is_about_rho_squared(rho: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    arms = {}
    for variant in ("control", "treatment"):
        x, e = rng.standard_normal((2, 20_000))
        arms[variant] = (3 + rho * x + np.sqrt(1 - rho**2) * e, x)
    r = compare_to_control(stats_frame(arms)).iloc[0]
    assert abs(r.variance_reduction - rho**2) < 0.02


def test_cuped_not_applied_without_covariate_variation_or_for_ratios(rng) -> None:
    y = rng.normal(5, 1, (2, 300))
    flat_x = {"control": (y[0], np.ones(300)), "treatment": (y[1], np.ones(300))}
    r = compare_to_control(stats_frame(flat_x)).iloc[0]
    assert r.valid and not r.cuped and "covariate" in r.note
    close(r.effect, y[1].mean() - y[0].mean())
    frame = stats_frame(
        {"control": (y[0], y[0], np.ones(300)), "treatment": (y[1], y[1], np.ones(300))},
        metric_type="ratio",
    )
    r = compare_to_control(frame).iloc[0]
    assert r.valid and not r.cuped and "ratio" in r.note
    assert not compare_to_control(stats_frame(flat_x), cuped=False).iloc[0].cuped


# --- delta method: property tests ----------------------------------------------------------------


@PROPERTY
@given(
    mean=st.floats(-50, 50),
    sd=st.floats(0.1, 20),
    denominator=st.floats(0.5, 30),
    n=st.integers(3, 400),
    seed=st.integers(0, 2**32 - 1),
)
def test_ratio_with_constant_denominator_is_a_scaled_mean(mean, sd, denominator, n, seed) -> None:
    rng = np.random.default_rng(seed)
    y = {v: rng.normal(mean, sd, n + i) for i, v in enumerate(("control", "treatment"))}
    d = {v: np.full(len(y[v]), denominator) for v in y}
    ratio = compare_to_control(
        stats_frame({v: (y[v], None, d[v]) for v in y}, metric_type="ratio")
    ).iloc[0]
    mean_ = compare_to_control(stats_frame(y)).iloc[0]
    welch_se = np.sqrt(sum(v.var(ddof=1) / v.size for v in y.values()))
    close(ratio.effect * denominator, mean_.effect, rel=1e-8)
    close(ratio.std_error * denominator, welch_se, rel=1e-6)
    close(mean_.std_error, welch_se, rel=1e-6)


@SIMULATION
@given(
    corr=st.floats(-0.8, 0.8),
    cv_d=st.floats(0.05, 0.4),
    seed=st.integers(0, 2**32 - 1),
)
def test_ratio_delta_variance_matches_simulation(corr: float, cv_d: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    reps, n = 1000, 400
    z1, z2 = rng.standard_normal((2, reps, n))
    d = 5 * (1 + cv_d * z1)
    y = 10 + 3 * (corr * z1 + np.sqrt(1 - corr**2) * z2)
    simulated = (y.sum(1) / d.sum(1)).var(ddof=1)
    first = stats_frame(
        {"control": (y[0], None, d[0]), "treatment": (y[1], None, d[1])}, metric_type="ratio"
    )
    moments = arm_moments(first)
    predicted = np.mean(moments["std_error"] ** 2)
    assert predicted == pytest.approx(simulated, rel=0.2)


def test_relative_ci_covers_at_nominal_rate_in_simulation() -> None:
    rng = np.random.default_rng(7)
    reps, n = 2000, 300
    c = rng.exponential(10, (reps, n))
    t = rng.exponential(11, (reps, n))
    frame = pd.DataFrame(
        {
            "metric": np.repeat(np.arange(reps), 2),
            "variant": np.tile(["control", "treatment"], reps),
            "n": n,
            "sum_y": np.column_stack([c.sum(1), t.sum(1)]).ravel(),
            "sum_y2": np.column_stack([(c * c).sum(1), (t * t).sum(1)]).ravel(),
        }
    )
    result = compare_to_control(frame, metric_type="mean")
    covered = (result["relative_ci_low"] < 0.1) & (result["relative_ci_high"] > 0.1)
    assert 0.93 < covered.mean() < 0.97


# --- SRM, corrections, guardrails, power ---------------------------------------------------------


def test_srm_catches_planted_imbalance_at_one_million_users() -> None:
    planted = srm_check([505_000, 495_000], [0.5, 0.5])
    ref = stats.chisquare([505_000, 495_000], [500_000, 500_000])
    close([planted.chi2, planted.p_value], [ref.statistic, ref.pvalue])
    assert planted.chi2 == pytest.approx(100.0) and not planted.passed()
    chi2, p = srm_check([500_300, 499_700], [0.5, 0.5])
    assert p > 0.5 and srm_check([500_300, 499_700], [0.5, 0.5]).passed()
    three = srm_check([2000, 3050, 4950], [0.2, 0.3, 0.5])
    ref = stats.chisquare([2000, 3050, 4950], [2000, 3000, 5000])
    close([three.chi2, three.p_value], [ref.statistic, ref.pvalue])
    with pytest.raises(ExperimentInputError):
        srm_check([10, 20], [0.6, 0.6])
    with pytest.raises(ExperimentInputError):
        srm_check([10, 20, 30], [0.5, 0.5])


@PROPERTY
@given(
    p=st.lists(
        st.one_of(st.floats(0, 1), st.sampled_from([0.01, 0.02, 0.5])), min_size=1, max_size=40
    ),
    method=st.sampled_from(["bh", "holm"]),
)
def test_adjust_pvalues_matches_statsmodels(p: list[float], method: str) -> None:
    reference = multipletests(p, method={"bh": "fdr_bh", "holm": "holm"}[method])[1]
    close(adjust_pvalues(p, method), reference, rel=1e-12)


def test_adjust_pvalues_leaves_nan_out_of_the_family() -> None:
    adjusted = adjust_pvalues([0.01, np.nan, 0.04, 0.03], "bh")
    assert np.isnan(adjusted[1])
    close(adjusted[[0, 2, 3]], multipletests([0.01, 0.04, 0.03], method="fdr_bh")[1])
    close(adjust_pvalues([0.2, 0.01], "none"), [0.2, 0.01])
    with pytest.raises(ExperimentInputError):
        adjust_pvalues([0.1], "bonferroni")


@pytest.mark.parametrize("direction", ["increase", "decrease"])
def test_guardrail_non_inferiority_matches_statsmodels_one_sided_welch(rng, direction) -> None:
    arms = {"control": rng.normal(20, 4, 1500), "treatment": rng.normal(19.8, 4.5, 1400)}
    plans = {"m": MetricPlan("guardrail", direction, margin=0.5, margin_type="absolute")}
    r = assess(compare_to_control(stats_frame(arms)), plans).iloc[0]
    if direction == "increase":  # harm is a decrease: H0 effect ≤ −0.5
        ref = sm_ttest_ind(
            arms["treatment"], arms["control"], alternative="larger", usevar="unequal", value=-0.5
        )
    else:  # harm is an increase: H0 effect ≥ +0.5
        ref = sm_ttest_ind(
            arms["treatment"], arms["control"], alternative="smaller", usevar="unequal", value=0.5
        )
    close(r.ni_p_value, ref[1])
    assert np.isnan(r.p_value_adjusted) and r.outcome == ("pass" if r.non_inferior else "fail")
    assert r.non_inferior == (ref[1] < 0.05)
    q = stats.t.ppf(0.95, r.df)
    bound = r.effect - q * r.std_error if direction == "increase" else r.effect + q * r.std_error
    close(r.ni_bound, bound)


def test_relative_margin_uses_delta_method_relative_effect() -> None:
    ni = non_inferiority(
        [-0.01, -0.01, 0.02],
        [0.01, 0.01, 0.01],
        0.02,
        direction=["increase", "decrease", "decrease"],
    )
    close(ni.p_value, stats.norm.sf([(-0.01 + 0.02) / 0.01, (0.02 + 0.01) / 0.01, 0.0]))
    assert list(ni.passed) == [False, True, False]


@pytest.mark.parametrize(("treatment_mean", "outcome"), [(-60.0, "fail"), (-10.0, "pass")])
def test_relative_change_of_a_negative_baseline_keeps_the_sign_of_the_difference(
    rng: np.random.Generator, treatment_mean: float, outcome: str
) -> None:
    """Net revenue after refunds: control −20 per user. A fall to −60 is a −200% change, not +200%,
    so a guardrail with a relative margin fails; a rise to −10 is +50% and passes."""
    arms = {"control": rng.normal(-20, 5, 4000), "treatment": rng.normal(treatment_mean, 5, 4000)}
    r = compare_to_control(stats_frame(arms)).iloc[0]
    m_t, m_c = arms["treatment"].mean(), arms["control"].mean()
    close(r.relative_effect, (m_t - m_c) / abs(m_c))
    assert np.sign(r.relative_effect) == np.sign(r.effect) == np.sign(treatment_mean + 20)
    # the same delta-method standard error as m_t / m_c − 1 (a sign flip does not change it)
    v_t, v_c = arms["treatment"].var(ddof=1) / 4000, arms["control"].var(ddof=1) / 4000
    close(r.relative_std_error, np.sqrt(v_t / m_c**2 + m_t**2 * v_c / m_c**4))
    assert r.relative_ci_low < r.relative_effect < r.relative_ci_high
    plans = {"m": MetricPlan("guardrail", margin=0.1)}
    guard = assess(compare_to_control(stats_frame(arms)), plans)
    assert guard.iloc[0].outcome == outcome
    assert guard.iloc[0].non_inferior == (outcome == "pass")


def test_assess_corrects_primary_and_secondary_only(rng) -> None:
    frames = []
    for metric, lift in [("a", 0.3), ("b", 0.0), ("g", 0.0)]:
        arms = {v: rng.normal(5 + lift * (v != "control"), 1, 500) for v in ("control", "v1", "v2")}
        frames.append(stats_frame(arms, metric=metric))
    results = compare_to_control(pd.concat(frames))
    plans = {
        "a": MetricPlan("primary"),
        "b": MetricPlan("secondary", "decrease"),
        "g": MetricPlan("guardrail", margin=0.05),
    }
    out = assess(results, plans, correction="holm", chance_to_beat=True)
    family = out["role"] != "guardrail"
    close(
        out.loc[family, "p_value_adjusted"],
        multipletests(out.loc[family, "p_value"], method="holm")[1],
    )
    assert out.loc[~family, "p_value_adjusted"].isna().all()
    assert (out.loc[out.metric == "a", "outcome"] == "better").all()
    assert set(out.loc[out.metric == "g", "outcome"]) <= {"pass", "fail"}
    ctbc = out.loc[out.metric == "a", "chance_to_beat_control"]
    assert (ctbc > 0.99).all()
    with pytest.raises(ExperimentInputError, match="no plan"):
        assess(results, {"a": plans["a"]})
    with pytest.raises(ExperimentInputError):
        MetricPlan("guardrail")


def test_mde_and_sample_size_match_statsmodels_power() -> None:
    sigma, n_arm = 2.0, 1000
    se = sigma * np.sqrt(2 / n_arm)
    effect = mde(se, alpha=0.05, power=0.8)
    # statsmodels' one-sided power at α/2 is the normal-approximation two-sided power formula
    power = NormalIndPower().power(effect / sigma, n_arm, alpha=0.025, alternative="larger")
    close(power, 0.8)
    needed = sample_size_needed(se, 2 * n_arm, 0.1)
    n1 = NormalIndPower().solve_power(0.1 / sigma, alpha=0.025, power=0.8, alternative="larger")
    close(needed, np.ceil(2 * n1), rel=1e-6)


@pytest.mark.parametrize("margin_type", ["relative", "absolute"])
def test_guardrail_power_is_for_its_one_sided_test_at_its_margin(rng, margin_type) -> None:
    """A guardrail's MDE is the margin its non-inferiority test (one-sided α) confirms at 80%
    power when the true effect is zero; the users needed bring that down to its own margin."""
    arms = {"control": rng.normal(10, 2, 1000), "treatment": rng.normal(10, 2, 1000)}
    results = compare_to_control(stats_frame(arms), target_effect={"m": 0.05})
    margin = 0.01 if margin_type == "relative" else 0.1
    plan = MetricPlan("guardrail", margin=margin, margin_type=margin_type)
    r = assess(results, {"m": plan}).iloc[0]
    sigma = r.std_error / np.sqrt(2 / 1000)  # the per-user sd these two equal arms imply
    power = NormalIndPower().power(r.mde / sigma, 1000, alpha=0.05, alternative="larger")
    close(power, 0.8)
    close(r.mde_relative, r.mde / abs(r.mean_control))
    margin_abs = margin * abs(r.mean_control) if margin_type == "relative" else margin
    close(r.target_relative_effect, margin_abs / abs(r.mean_control))
    n1 = NormalIndPower().solve_power(
        margin_abs / sigma, alpha=0.05, power=0.8, alternative="larger"
    )
    assert abs(r.n_needed - 2 * n1) <= 1  # ceil of the same number
    close(r.n_additional, max(r.n_needed - 2000, 0))
    primary = assess(results, {"m": MetricPlan("primary")}).iloc[0]  # left as compare gave it
    close([primary.mde, primary.n_needed], [results.iloc[0].mde, results.iloc[0].n_needed])


def test_compare_reports_power_and_users_still_needed(rng) -> None:
    arms = {"control": rng.normal(10, 2, 1000), "treatment": rng.normal(10, 2, 1000)}
    r = compare_to_control(stats_frame(arms), target_effect={"m": 0.01}).iloc[0]
    close(r.mde, 2.8015852 * r.std_error, rel=1e-6)
    close(r.mde_relative, r.mde / r.mean_control)
    close(r.n_needed, sample_size_needed(r.std_error, 2000, 0.01 * r.mean_control))
    assert r.n_additional == r.n_needed - 2000 > 0


# --- sequential and Bayesian ---------------------------------------------------------------------


def test_confidence_sequence_is_the_normal_mixture_boundary_tuned_at_planned_n() -> None:
    alpha, planned = 0.05, 10_000
    rho = float(rho_for_planned_n(planned, alpha=alpha))
    n = np.array([100, 1_000, 10_000, 100_000])
    u = n * rho**2
    paper = np.sqrt(2 * (u + 1) / (n**2 * rho**2) * np.log(np.sqrt(u + 1) / alpha)) * np.sqrt(n)
    close(sequential_multiplier(n, alpha=alpha, rho=rho), paper, rel=1e-12)
    assert (sequential_multiplier(n, alpha=alpha, rho=rho) > stats.norm.ppf(0.975)).all()
    grid = rho * np.r_[1.0, np.linspace(0.5, 2, 301)]
    widths = sequential_multiplier(planned, alpha=alpha, rho=grid)
    assert widths[0] <= widths.min() * 1.002  # tuned ρ is (close to) the tightest at planned n
    low, high = confidence_sequence(1.0, 0.2, 500, alpha=alpha, planned_n=planned)
    half = sequential_multiplier(500, alpha=alpha, rho=rho) * 0.2
    close([low, high], [1 - half, 1 + half])
    with pytest.raises(ExperimentInputError):
        confidence_sequence(1.0, 0.2, 500)


def test_sequential_p_value_is_dual_to_the_confidence_sequence() -> None:
    rho = float(rho_for_planned_n(5_000, alpha=0.05))
    estimate, se, n = np.array([0.3, 0.8, 1.2]), 0.25, 4_000
    p = sequential_p_value(estimate, se, n, rho=rho)
    low, _ = confidence_sequence(estimate, se, n, alpha=0.05, rho=rho)
    assert list(p < 0.05) == list(low > 0)
    for value, pv in zip(estimate, p, strict=True):
        if pv < 1:
            edge, _ = confidence_sequence(value, se, n, alpha=pv, rho=rho)
            assert edge == pytest.approx(0.0, abs=1e-9)


def test_confidence_sequence_covers_uniformly_over_time() -> None:
    rng = np.random.default_rng(11)
    paths, steps = 1000, 2000
    y = rng.exponential(1.0, (paths, steps)) - 1.0  # true mean 0
    n = np.arange(1, steps + 1)
    mean = np.cumsum(y, 1) / n
    var = (np.cumsum(y * y, 1) - n * mean**2) / np.maximum(n - 1, 1)
    low, high = confidence_sequence(mean, np.sqrt(var / n), n, alpha=0.05, planned_n=steps)
    looks = n >= 30
    ever_missed = ((low[:, looks] > 0) | (high[:, looks] < 0)).any(1).mean()
    fixed = np.abs(mean[:, looks] / np.sqrt(var[:, looks] / n[looks])) > 1.96
    assert ever_missed < 0.06 < fixed.any(1).mean()  # peeking at fixed CIs does not hold up


def test_compare_to_control_adds_sequential_columns(rng) -> None:
    arms = {"control": rng.normal(10, 2, 800), "treatment": rng.normal(10.3, 2, 800)}
    r = compare_to_control(stats_frame(arms), planned_n=4000).iloc[0]
    low, high = confidence_sequence(r.effect, r.std_error, 1600, planned_n=4000)
    close([r.cs_low, r.cs_high], [low, high])
    assert r.cs_low < r.ci_low and r.cs_high > r.ci_high
    assert r.relative_cs_low < r.relative_ci_low


def test_chance_to_beat_control_is_a_posterior_probability_not_one_minus_p() -> None:
    effect, se = np.array([0.02, -0.01]), np.array([0.01, 0.01])
    flat = chance_to_beat_control(effect, se)
    close(flat, stats.norm.cdf(effect / se))
    p = 2 * stats.norm.sf(np.abs(effect / se))
    assert not np.allclose(flat, 1 - p)
    close(chance_to_beat_control(effect, se, direction="decrease"), 1 - flat)
    tau = 0.02
    post_var = 1 / (1 / tau**2 + 1 / se**2)
    post_mean = post_var * effect / se**2
    close(
        chance_to_beat_control(effect, se, prior_sd=tau),
        stats.norm.cdf(post_mean / np.sqrt(post_var)),
    )
    assert abs(chance_to_beat_control(0.02, 0.01, prior_sd=tau) - 0.5) < abs(flat[0] - 0.5)


# --- degenerate inputs and caller mistakes -------------------------------------------------------


def test_degenerate_rows_are_flagged_not_crashing() -> None:
    frame = pd.DataFrame(
        [
            # zero variance in both arms
            {"metric": "flat", "variant": "control", "n": 10, "sum_y": 10, "sum_y2": 10},
            {"metric": "flat", "variant": "t", "n": 12, "sum_y": 12, "sum_y2": 12},
            # one user in an arm
            {"metric": "tiny", "variant": "control", "n": 1, "sum_y": 3, "sum_y2": 9},
            {"metric": "tiny", "variant": "t", "n": 50, "sum_y": 100, "sum_y2": 300},
            # empty arm
            {"metric": "empty", "variant": "control", "n": 0, "sum_y": 0, "sum_y2": 0},
            {"metric": "empty", "variant": "t", "n": 5, "sum_y": 5, "sum_y2": 9},
            # no control for this metric
            {"metric": "orphan", "variant": "t", "n": 50, "sum_y": 100, "sum_y2": 300},
            # control mean zero: absolute effect fine, relative undefined
            {"metric": "zero", "variant": "control", "n": 10, "sum_y": 0, "sum_y2": 20},
            {"metric": "zero", "variant": "t", "n": 10, "sum_y": 5, "sum_y2": 20},
        ]
    )
    ratio = pd.DataFrame(
        [
            {
                "metric": "r",
                "variant": "control",
                "n": 10,
                "sum_y": 0,
                "sum_y2": 0,
                "sum_d": 0,
                "sum_d2": 0,
                "sum_yd": 0,
            },
            {
                "metric": "r",
                "variant": "t",
                "n": 10,
                "sum_y": 5,
                "sum_y2": 9,
                "sum_d": 4,
                "sum_d2": 6,
                "sum_yd": 7,
            },
        ]
    )
    types = {
        "flat": "mean",
        "tiny": "mean",
        "empty": "mean",
        "orphan": "mean",
        "zero": "mean",
        "r": "ratio",
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = compare_to_control(
            pd.concat([frame, ratio]), metric_type=types, planned_n=100, target_effect=0.1
        )
    by = out.set_index("metric")
    assert not by.loc[["flat", "tiny", "empty", "orphan", "r"], "valid"].any()
    assert "no variation" in by.loc["flat", "reason"]
    assert "too few" in by.loc["tiny", "reason"] and "too few" in by.loc["empty", "reason"]
    assert "no 'control' arm" in by.loc["orphan", "reason"]
    assert "denominator" in by.loc["r", "reason"]
    assert by.loc[["flat", "tiny", "orphan", "r"], "p_value"].isna().all()
    zero = by.loc["zero"]
    assert zero.valid and np.isfinite(zero.p_value) and np.isnan(zero.relative_effect)
    assert "control mean is zero" in zero.note
    plans = {m: MetricPlan() for m in types}
    assessed = assess(out, plans)
    assert (assessed.set_index("metric").loc[["flat", "orphan"], "outcome"] == "invalid").all()


def test_caller_mistakes_raise_workbench_errors(rng) -> None:
    good = stats_frame({"control": rng.normal(size=20), "t": rng.normal(size=20)})
    for bad, kwargs, match in [
        (good.drop(columns="sum_y"), {}, "sum_y"),
        (good, {"control": "ctrl"}, "control variant 'ctrl' not found"),
        (good.assign(metric_type="median"), {}, "unknown metric type"),
        (good.drop(columns="metric_type"), {}, "metric_type"),
        (pd.concat([good, good]), {}, "must appear once"),
        (good.drop(columns="sum_y2"), {}, "sum_y2"),
        (good.assign(metric_type="ratio"), {}, "sum_d"),
        (good, {"alpha": 1.5}, "alpha"),
    ]:
        with pytest.raises(ExperimentInputError, match=match):
            compare_to_control(bad, **kwargs)
    assert issubclass(ExperimentInputError, WorkbenchError)


def test_vectorised_rows_equal_one_metric_at_a_time(rng) -> None:
    frames = [
        stats_frame({"control": rng.normal(3, 1, 200), "t": rng.normal(3.2, 1, 210)}, "a"),
        stats_frame(
            {"control": (rng.random(300) < 0.3) * 1.0, "t": (rng.random(290) < 0.35) * 1.0},
            "b",
            "conversion",
        ),
        stats_frame(
            {
                "control": (rng.gamma(2, 1, 250), None, rng.poisson(3, 250) + 1.0),
                "t": (rng.gamma(2, 1.1, 260), None, rng.poisson(3, 260) + 1.0),
            },
            "c",
            "ratio",
        ),
    ]
    together = compare_to_control(pd.concat(frames[::-1])).set_index("metric").sort_index()
    alone = pd.concat(compare_to_control(f) for f in frames).set_index("metric").sort_index()
    pd.testing.assert_frame_equal(together, alone)


def test_arm_moments_and_segment_keys(rng) -> None:
    frames = []
    for seg in ("free", "pro"):
        arms = {v: rng.normal(2, 1, 100) for v in ("control", "t")}
        frames.append(stats_frame(arms).assign(segment=seg))
    stacked = pd.concat(frames)
    moments = arm_moments(stacked)
    close(moments["std_error"], np.sqrt(moments["variance"] / moments["n"]))
    by_segment = compare_to_control(stacked, keys=("metric", "segment"))
    assert list(by_segment["segment"]) == ["free", "pro"]
    close(by_segment["effect"], [compare_to_control(f).effect.iloc[0] for f in frames])


def test_one_user_conversion_arm_and_infinite_values_are_not_estimable(rng) -> None:
    """A control arm of one converted user once gave p ≈ 1e-205 and a ship; an infinite
    revenue gave −inf and NaN in the headline. Both are 'not estimable', with the reason."""
    arms = {"control": np.array([1.0]), "treatment": (rng.random(500) < 0.3).astype(float)}
    r = compare_to_control(stats_frame(arms, metric_type="conversion")).iloc[0]
    assert not r.valid and r.reason == "too few users in an arm" and np.isnan(r.p_value)
    revenue = rng.gamma(2, 40, 400)
    revenue[7] = np.inf
    arms = {"control": rng.gamma(2, 40, 400), "treatment": revenue}
    r = compare_to_control(stats_frame(arms)).iloc[0]
    assert not r.valid and "infinite or overflowing" in r.reason
    assert np.isnan(r.effect) and np.isnan(r.relative_effect)
